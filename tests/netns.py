"""Network namespaces a test makes and removes itself (as root, as CI runs): two participants'
networks that cannot reach each other, and a TURN server's that both reach.

    ns-a (10.228.1.2) ── veth ── (10.228.1.1) ns-turn (10.228.2.1) ── veth ── (10.228.2.2) ns-b
                                   10.228.0.1: coturn

Each participant's namespace has a route to the TURN server's address only, and ns-turn
forwards nothing (a new namespace's default), so a browser in ns-a never reaches ns-b but
through the TURN server's relay. Nothing of the machine's own network is touched.

The pytest process reaches into a namespace for a moment (`inside`, setns(2) on this
thread) to open a socket there: the app under test then also listens on 127.0.0.1 of each
participant's namespace, so a browser launched there (`chromium_in`) opens the same links.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWNET = 0x40000000
TURN_ADDRESS = "10.228.0.1"
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Networks:
    """The three namespaces' names (unique to this process)."""

    a: str
    b: str
    turn: str


def ip(*arguments: str) -> None:
    subprocess.run(["ip", *arguments], check=True, capture_output=True)  # noqa: S603, S607


@contextlib.contextmanager
def two_networks() -> Iterator[Networks]:
    """ns-a and ns-b, each linked to ns-turn only; removed (with their links) on the way out."""
    tag = f"{os.getpid() % 100000}"
    names = Networks(f"tc-a-{tag}", f"tc-b-{tag}", f"tc-turn-{tag}")
    try:
        for name in (names.a, names.b, names.turn):
            ip("netns", "add", name)
            ip("-n", name, "link", "set", "lo", "up")
        ip("-n", names.turn, "addr", "add", f"{TURN_ADDRESS}/32", "dev", "lo")
        for side, subnet in ((names.a, 1), (names.b, 2)):
            inner, outer = f"v{subnet}p", f"v{subnet}t"
            ip(
                "link",
                "add",
                inner,
                "netns",
                side,
                "type",
                "veth",
                "peer",
                outer,
                "netns",
                names.turn,
            )
            ip("-n", side, "addr", "add", f"10.228.{subnet}.2/24", "dev", inner)
            ip("-n", names.turn, "addr", "add", f"10.228.{subnet}.1/24", "dev", outer)
            ip("-n", side, "link", "set", inner, "up")
            ip("-n", names.turn, "link", "set", outer, "up")
            ip("-n", side, "route", "add", f"{TURN_ADDRESS}/32", "via", f"10.228.{subnet}.1")
        yield names
    finally:
        for name in (names.a, names.b, names.turn):
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)  # noqa: S603, S607


@contextlib.contextmanager
def inside(namespace: str) -> Iterator[None]:
    """This thread in `namespace` until the block ends: sockets opened there stay there."""
    with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{namespace}") as there:
        _setns(there.fileno())
        try:
            yield
        finally:
            _setns(home.fileno())


def _setns(descriptor: int) -> None:
    if _libc.setns(descriptor, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def listening_socket(namespace: str, port: int) -> socket.socket:
    """A TCP socket listening on 127.0.0.1:`port` of `namespace`, for the app to serve on."""
    with inside(namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(64)
    sock.setblocking(False)
    return sock


def chromium_in(namespace: str, folder: Path, chromium: str) -> str:
    """An executable Playwright launches as its browser: chromium inside `namespace`."""
    wrapper = folder / f"chromium-{namespace}"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {namespace} {chromium} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)
