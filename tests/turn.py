"""A real TURN server for the tests: Debian's coturn (`turnserver`), started on a free port
with `use-auth-secret` as a hospital would run it, and a small TURN client that asks it
for an allocation (RFC 5766 Allocate with long-term credentials, RFC 5389 messages), so a
test asserts on what coturn itself answers to a credential.

`make test` installs coturn when it is missing, as it does chromium.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import shutil
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.netns import inside

TURNSERVER = "/usr/bin/turnserver"
REALM = "teleconsult.test"
MAGIC_COOKIE = 0x2112A442
BINDING, ALLOCATE = 0x0001, 0x0003
SUCCESS, ERROR = 0x0100, 0x0110
USERNAME, MESSAGE_INTEGRITY, ERROR_CODE = 0x0006, 0x0008, 0x0009
REALM_ATTRIBUTE, NONCE, XOR_RELAYED_ADDRESS, REQUESTED_TRANSPORT = 0x0014, 0x0015, 0x0016, 0x0019
UDP_PROTOCOL = 17
START_SECONDS = 10.0


@dataclass(frozen=True)
class Answer:
    """What the TURN server answered: 200 with the relayed address, or its error code."""

    code: int
    reason: str = ""
    relayed: tuple[str, int] | None = None


@dataclass
class Coturn:
    """A running `turnserver`: where it listens, its shared secret, and its log."""

    host: str
    port: int
    secret: str = field(repr=False)
    log: Path
    tls_port: int | None = None

    @property
    def url(self) -> str:
        return f"turn:{self.host}:{self.port}?transport=udp"

    @property
    def tls_url(self) -> str:
        return f"turns:{self.host}:{self.tls_port}?transport=tcp"


def ensure_installed() -> str:
    assert Path(TURNSERVER).exists(), f"{TURNSERVER} is missing: `make test` installs coturn (apt)"
    return TURNSERVER


def free_udp_and_tcp_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP (coturn listens on both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port


@contextlib.contextmanager
def coturn(
    folder: Path,
    *,
    listening: Sequence[str] = ("127.0.0.1",),
    relay: str = "127.0.0.1",
    certificate: tuple[Path, Path] | None = None,
    namespace: str | None = None,
) -> Iterator[Coturn]:
    """`turnserver` on `listening` (the first address is the one the URLs name), relaying
    from `relay`, with a random shared secret; TLS on a second port when a certificate and
    key are given; inside a network `namespace` when one is named. Killed and waited for on
    the way out."""
    port = free_udp_and_tcp_port()  # a new namespace has every port free
    tls_port = free_udp_and_tcp_port() if certificate else None
    secret = secrets.token_urlsafe(24)
    log = folder / "turnserver.log"
    arguments = [
        *(("ip", "netns", "exec", namespace) if namespace else ()),
        ensure_installed(),
        "-n",  # no configuration file: only these flags
        *(f"--listening-ip={address}" for address in listening),
        f"--listening-port={port}",
        f"--relay-ip={relay}",
        "--use-auth-secret",
        f"--static-auth-secret={secret}",
        f"--realm={REALM}",
        "--no-dtls",
        "--no-cli",
        "--log-file=stdout",
        "--simple-log",
        f"--pidfile={folder / 'turnserver.pid'}",
        f"--userdb={folder / 'turndb'}",
        "--min-port=49152",
        "--max-port=65535",
    ]
    if relay.startswith("127."):
        arguments.append("--allow-loopback-peers")  # the browsers' relays are on loopback
    if certificate:
        arguments += [f"--tls-listening-port={tls_port}", f"--cert={certificate[0]}"]
        arguments.append(f"--pkey={certificate[1]}")
    else:
        arguments.append("--no-tls")
    with log.open("wb") as out:
        process = subprocess.Popen(arguments, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        server = Coturn(listening[0], port, secret, log, tls_port)
        with inside(namespace) if namespace else contextlib.nullcontext():
            _wait_until_it_answers(server, process)
        yield server
    finally:
        process.kill()
        process.wait(timeout=10)


def _wait_until_it_answers(server: Coturn, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"turnserver exited: {server.log.read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            if binding(server.host, server.port).code == 200:
                return
        time.sleep(0.05)
    raise AssertionError(f"turnserver did not answer: {server.log.read_text()[-2000:]}")


# -- the client: STUN messages (RFC 5389) -------------------------------------------------------


def message(kind: int, transaction: bytes, attributes: Sequence[tuple[int, bytes]]) -> bytes:
    body = b"".join(_attribute(code, value) for code, value in attributes)
    return struct.pack("!HHI", kind, len(body), MAGIC_COOKIE) + transaction + body


def _attribute(code: int, value: bytes) -> bytes:
    return struct.pack("!HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def with_integrity(data: bytes, key: bytes) -> bytes:
    """`data` with MESSAGE-INTEGRITY: HMAC-SHA1 over the message whose length counts it."""
    length = struct.unpack("!H", data[2:4])[0] + 24
    head = data[:2] + struct.pack("!H", length) + data[4:]
    return head + _attribute(MESSAGE_INTEGRITY, hmac.new(key, head, hashlib.sha1).digest())


def parse(data: bytes) -> tuple[int, dict[int, bytes]]:
    kind, length, _ = struct.unpack("!HHI", data[:8])
    attributes: dict[int, bytes] = {}
    at = 20
    while at < 20 + length:
        code, size = struct.unpack("!HH", data[at : at + 4])
        attributes.setdefault(code, data[at + 4 : at + 4 + size])
        at += 4 + size + (-size % 4)
    return kind, attributes


def answer(data: bytes) -> Answer:
    kind, attributes = parse(data)
    if kind & 0x0110 == SUCCESS:
        relayed = attributes.get(XOR_RELAYED_ADDRESS)
        return Answer(200, relayed=_xor_address(relayed) if relayed else None)
    error = attributes[ERROR_CODE]
    return Answer(error[2] * 100 + error[3], error[4:].decode("utf-8", "replace"))


def _xor_address(value: bytes) -> tuple[str, int]:
    port = struct.unpack("!H", value[2:4])[0] ^ (MAGIC_COOKIE >> 16)
    address = struct.unpack("!I", value[4:8])[0] ^ MAGIC_COOKIE
    return socket.inet_ntoa(struct.pack("!I", address)), port


class Exchange:
    """One request, one answer, over UDP or TLS (STUN over a stream is framed by its length)."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        if tls is None:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.connect((host, port))
        else:
            connection = socket.create_connection((host, port), timeout=5)
            self.sock = tls.wrap_socket(connection, server_hostname=host)
        self.sock.settimeout(5)
        self.stream = tls is not None

    def __call__(self, request: bytes) -> bytes:
        self.sock.sendall(request)
        if not self.stream:
            return self.sock.recv(4096)
        head = self._read(20)
        return head + self._read(struct.unpack("!H", head[2:4])[0])

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("the TURN server closed the connection")
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


def binding(host: str, port: int) -> Answer:
    exchange = Exchange(host, port)
    try:
        return answer(exchange(message(BINDING, os.urandom(12), [])))
    finally:
        exchange.close()


def allocate(
    host: str, port: int, username: str, password: str, tls: ssl.SSLContext | None = None
) -> Answer:
    """An Allocate with these credentials, as a browser asks: first unauthenticated (coturn
    answers 401 with its realm and a nonce), then signed with the long-term key."""
    exchange = Exchange(host, port, tls)
    transport = (REQUESTED_TRANSPORT, bytes([UDP_PROTOCOL, 0, 0, 0]))
    try:
        challenge = parse(exchange(message(ALLOCATE, os.urandom(12), [transport])))[1]
        realm, nonce = challenge[REALM_ATTRIBUTE], challenge[NONCE]
        key = hashlib.md5(  # noqa: S324  # RFC 5389's long-term key is MD5, by definition
            f"{username}:{realm.decode()}:{password}".encode()
        ).digest()
        signed = message(
            ALLOCATE,
            os.urandom(12),
            [transport, (USERNAME, username.encode()), (REALM_ATTRIBUTE, realm), (NONCE, nonce)],
        )
        return answer(exchange(with_integrity(signed, key)))
    finally:
        exchange.close()


def self_signed(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate and key for `host`, made with openssl for this test only."""
    certificate, key = folder / "turn.crt", folder / "turn.key"
    openssl = shutil.which("openssl")
    assert openssl, "openssl is missing"
    subprocess.run(  # noqa: S603  # fixed arguments
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", f"/CN={host}", "-addext", f"subjectAltName=IP:{host}",
            "-keyout", str(key), "-out", str(certificate),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return certificate, key


def spki_sha256(certificate: Path) -> str:
    """The base64 SHA-256 of the certificate's public key, as Chromium's
    `--ignore-certificate-errors-spki-list` takes it: that browser then trusts this key only."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl is missing"
    pem = subprocess.run(  # noqa: S603  # fixed arguments
        [openssl, "x509", "-in", str(certificate), "-pubkey", "-noout"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    der = base64.b64decode("".join(line for line in pem.splitlines() if "-----" not in line))
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")
