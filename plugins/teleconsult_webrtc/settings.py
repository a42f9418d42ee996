"""`WebRTCSettings`: the webrtc provider's own variables, declared once and checked whole."""

from __future__ import annotations

from teleconsult.plugin import BaseUrl, DeclaredSettings, WholeNumber, setting
from teleconsult.plugin import call_links as links

DAY_MS = 24 * 3600 * 1000


class WebRTCSettings(DeclaredSettings):
    public_url: BaseUrl | None = setting(
        "WEBRTC_PUBLIC_URL",
        None,
        "`webrtc` provider: where its links point, as participants' browsers reach this service; "
        "unset = `http://<HTTP_HOST>:<HTTP_PORT>` (`0.0.0.0` becomes `127.0.0.1`); https in "
        "production (browsers give the camera to secure pages only), http only to a loopback host",
    )
    link_secret: str = setting(
        "WEBRTC_LINK_SECRET",
        "",
        "`webrtc` provider: the key that signs every link (at least 32 characters, never logged); "
        "unset = one generated once and kept in the store, shared by every replica. Changing it "
        "invalidates the links handed out (the next poll hands out new ones)",
        secret=True,
    )
    link_grace_ms: WholeNumber = setting(
        "WEBRTC_LINK_GRACE_MS",
        900_000,
        "`webrtc` provider: how long after `end_date` a link still opens its call, for rooms with "
        "a duration (`UNLIMITED_TELECONSULTATION=false`)",
        minimum=0,
        maximum=7 * DAY_MS,
    )
    max_lifetime_ms: WholeNumber = setting(
        "WEBRTC_MAX_LIFETIME_MS",
        DAY_MS,
        "`webrtc` provider: for rooms without a duration, how long after `start_date` a link opens "
        "its call",
        minimum=60_000,
        maximum=30 * DAY_MS,
    )
    poll_interval_ms: WholeNumber = setting(
        "WEBRTC_POLL_INTERVAL_MS",
        250,
        "`webrtc` provider: how often a replica takes the signaling mailboxes of all its pages "
        "from the store, in one query (pages on the same replica hear each other at once): "
        "set-up latency across replicas against store reads (docs/operations.md)",
        minimum=10,
        maximum=5000,
    )
    heartbeat_ms: WholeNumber = setting(
        "WEBRTC_HEARTBEAT_MS",
        10_000,
        "`webrtc` provider: how often a replica writes which pages it serves (one document); a "
        "page no replica listed for three intervals is dropped",
        minimum=100,
        maximum=600_000,
    )

    def check(self) -> None:
        self.signing_key()

    def signing_key(self) -> bytes | None:
        """The link secret as key bytes; None when unset (the stored one is used)."""
        return links.configured_secret(self.link_secret)
