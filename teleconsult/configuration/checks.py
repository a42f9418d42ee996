"""The checks a setting's value passes, each saying what is wrong in one phrase.

A check raises `ValueError` with a phrase that follows the variable's name
(`must be true or false; got 'yes'.`); `declarations` puts the name in front, so
every setting, the core's or a plugin's, fails with one line alike. The checks
the configuration file shares (URLs, webhook secrets) take the place to name.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from urllib.parse import urlsplit

from teleconsult.errors import ConfigurationError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ORIGIN_HOST = re.compile(r"^([a-z0-9.-]+|[0-9a-f:.]+)$")
"""A host as browsers send it in an origin: a name in ASCII (punycode), IPv4, or IPv6."""
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105  # the form's prefix, not a secret


def boolean(value: object) -> object:
    """Strictly `true` or `false`, as the original read them (not `yes`, not `True`)."""
    if isinstance(value, bool):
        return value
    if value not in ("true", "false"):
        raise ValueError(f"must be true or false; got {value!r}.")
    return value == "true"


def whole_number(value: object) -> object:
    """An integer written in decimal digits (`1.5` is not one); the bounds are the field's."""
    if not isinstance(value, str):
        return value
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"must be a whole number; got {value!r}.") from None


def header_name(value: str) -> str:
    if not _HEADER_NAME.match(value):
        raise ValueError(f"must be an HTTP header name; got {value!r}.")
    return value.lower()


def collection_name(value: str) -> str:
    if not _COLLECTION_NAME.match(value):
        raise ValueError(f"must be 1 to 63 letters, digits, '_' or '-'; got {value!r}.")
    return value


def items(value: object) -> object:
    """A comma-separated list, blanks dropped."""
    if not isinstance(value, str):
        return value
    return [item.strip() for item in value.split(",") if item.strip()]


def names(value: object) -> object:
    """A comma-separated list of names (groups), blanks dropped."""
    found = items(value)
    return frozenset(found) if isinstance(found, list) else found


def networks(value: object) -> object:
    """A comma-separated list of CIDRs (an address alone is a /32 or /128)."""
    found = items(value)
    if not isinstance(found, list):
        return found
    result = []
    for item in found:
        try:
            result.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"must be comma-separated CIDRs like 10.0.0.0/8; got {item!r}."
            ) from None
    return tuple(result)


def origins(value: object) -> object:
    """A comma-separated list of web origins, each as browsers send it in `Origin`."""
    found = items(value)
    return frozenset(origin(item) for item in found) if isinstance(found, list) else found


def origin(text: str) -> str:
    """`text` as a browser serializes an origin (`https://app.example.org`, `http://[::1]:8080`).
    An origin is exact: no `*` (every site would be let in), no path; `http` only for a
    loopback host, since a page served in clear can be altered on its way to the browser
    that then calls us with the caller's token."""
    if "*" in text:
        raise ValueError(
            f"lists exact origins (https://app.example.org); '*' is not accepted; got {text!r}."
        )
    try:
        parts = urlsplit(text)
        port = parts.port
        hostname = parts.hostname or ""
        if ":" in hostname:  # IPv6, in the compressed form browsers write
            hostname = ipaddress.IPv6Address(hostname).compressed
    except ValueError:
        parts, port, hostname = urlsplit(""), None, ""
    if (
        parts.scheme not in _DEFAULT_PORTS
        or not _ORIGIN_HOST.match(hostname)
        or parts.username is not None
    ):
        raise ValueError(
            "must list origins such as https://app.example.org (a scheme, a host and "
            f"a port if not the default); got {text!r}."
        )
    if parts.path or parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValueError(f"must list origins without a path or a trailing slash; got {text!r}.")
    if parts.scheme == "http" and not loopback(hostname):
        raise ValueError(
            f"must list https origins (http is accepted for a loopback host only); got {text!r}."
        )
    host = f"[{hostname}]" if ":" in hostname else hostname
    shown_port = f":{port}" if port is not None and port != _DEFAULT_PORTS[parts.scheme] else ""
    return f"{parts.scheme}://{host}{shown_port}"


def web_origin(name: str, text: str) -> str:
    """`origin`, or one line naming the variable `name`."""
    try:
        return origin(text)
    except ValueError as error:
        raise ConfigurationError(f"{name} {error}") from None


def https_url(value: str) -> str:
    """`value` if it is an https URL, or an http one to a loopback host: a provider's
    credentials never travel in clear over a network."""
    try:
        scheme, hostname = urlsplit(value).scheme, urlsplit(value).hostname
    except ValueError:  # an unclosed [IPv6 literal, a bad port
        scheme, hostname = "", None
    if scheme not in ("http", "https") or not hostname:
        raise ValueError(f"must be an https URL; got {value!r}.")
    if scheme == "http" and not loopback(hostname):
        raise ValueError(
            f"must be an https URL (http is accepted for a loopback host only); got {value!r}."
        )
    return value


def secure_url(origin: str, value: str) -> str:
    """`https_url`, or one line naming `origin` (a variable, or a place in the file)."""
    try:
        return https_url(value)
    except ValueError as error:
        raise ConfigurationError(f"{origin} {error}") from None


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_webhook_secret(origin: str, secret: str) -> None:
    """A Standard Webhooks secret: `whsec_` and 24 to 64 bytes in base64. The error names
    where the secret came from, never the secret."""
    body = secret.removeprefix(WEBHOOK_SECRET_PREFIX)
    try:
        key = base64.b64decode(body, validate=True) if body != secret else b""
    except binascii.Error:
        key = b""
    if not 24 <= len(key) <= 64:
        raise ConfigurationError(
            f"{origin} must be {WEBHOOK_SECRET_PREFIX} followed by 24 to 64 bytes in base64 "
            f"(echo {WEBHOOK_SECRET_PREFIX}$(openssl rand -base64 32))."
        )
