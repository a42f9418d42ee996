"""The client's address for the audit trail: the connection's peer, or what the trusted
proxies in front say.

`X-Forwarded-For` is believed only when the direct peer is in TRUSTED_PROXIES:
anyone else could write any address into it. Then the header is read from the
right (each proxy appends the address it saw) and the first address not in
TRUSTED_PROXIES is the client's; if every hop is trusted, the leftmost one. A hop
that is not an address ends the walk at the last trusted one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from teleconsult.configuration.checks import IPNetwork


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[IPNetwork]
) -> str | None:
    if peer is None or not trusted or not _trusted(peer, trusted):
        return peer  # without trusted proxies (the default), no address is parsed
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    address = peer
    for hop in reversed(hops):
        try:
            parsed = ipaddress.ip_address(hop)
        except ValueError:
            break
        address = str(parsed)
        if not _trusted(address, trusted):
            break
    return address


def _trusted(address: str, trusted: Sequence[IPNetwork]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in trusted)
