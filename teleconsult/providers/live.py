"""Capabilities of a provider whose calls run through something alive: its own connections,
its calls' counts, a media server that may forget its rooms.

Optional, as every protocol of `protocols.py` but `VideoProvider`: the core checks for each
with `isinstance` and does without when the provider has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@runtime_checkable
class LiveConnections(Protocol):
    """The provider holds long-lived connections of its own (its pages' WebSockets)."""

    async def close_connections(self) -> None:
        """Close them as the server begins to stop, before the grace given to requests in
        flight (which an open WebSocket would hold to its end); their clients reconnect to
        another replica. `close()` still comes later."""
        ...


@dataclass(frozen=True)
class CallCounts:
    """What a provider carrying its calls' signaling knows of them on this replica, for the
    operator's metrics (`/-/metrics`): gauges now, counters since the replica started."""

    pages_connected: int
    calls_in_progress: int
    """Calls with two pages or more connected, each counted by one replica only."""
    connected_direct: int
    connected_relay: int
    """Peer connections that connected, by the path their pages reported (relay: TURN)."""
    ice_failures: int
    reconnections: int


@runtime_checkable
class LiveCalls(Protocol):
    """The provider carries its calls' signaling (its pages' WebSockets): it counts them."""

    def call_counts(self) -> CallCounts:
        """Read from memory at every scrape: never waits."""
        ...


@runtime_checkable
class RoomRepair(Protocol):
    """The provider's media server keeps rooms in memory and may lose them (Janus, when it
    restarts): the reconciler asks it at every pass, on every replica, to make them again."""

    async def repair_rooms(self) -> int:
        """Make again each room of a live consultation that the server lost, under its id and
        with the access it gave (pages holding their credentials get back in without asking);
        return how many were made. The provider finds its live rooms itself (its storage, its
        roster): neither a cancelled consultation's room nor one whose window ended. Safe on
        several replicas at once (a room another one made meanwhile counts as made); raise
        `ProviderError` when the server fails: the next pass tries again."""
        ...
