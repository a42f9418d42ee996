"""`IceSettings`: the STUN and TURN servers every call page's browsers are handed, and the
ICE transport policy; shared by the providers that serve the call page (`webrtc`, `janus`).

The names keep their `WEBRTC_` prefix: they were the `webrtc` provider's first, and
deployments set them.
"""

from __future__ import annotations

from teleconsult.callpage.ice import IceServers, IceTransportPolicy
from teleconsult.configuration.declarations import DeclaredSettings, setting


class IceSettings(DeclaredSettings):
    stun_urls: str = setting(
        "WEBRTC_STUN_URLS",
        "",
        "call page (`webrtc` and `janus` providers): comma-separated `stun:` or `stuns:` URLs "
        "handed to the browsers (to learn their public address)",
    )
    turn_urls: str = setting(
        "WEBRTC_TURN_URLS",
        "",
        "call page: comma-separated `turn:` or `turns:` URLs of a TURN server that relays media "
        "when browsers cannot reach each other (`turns:...:443?transport=tcp` passes hospital "
        "firewalls; docs/operations.md); needs `WEBRTC_TURN_SECRET`",
    )
    turn_secret: str = setting(
        "WEBRTC_TURN_SECRET",
        "",
        "call page: the TURN server's shared secret (coturn's `static-auth-secret`); each page "
        "gets credentials that expire with its link, at the latest when the consultation's "
        "window closes (never logged)",
        secret=True,
    )
    ice_transport_policy: IceTransportPolicy = setting(
        "WEBRTC_ICE_TRANSPORT_POLICY",
        "all",
        "call page: `all` (direct paths when possible, TURN otherwise) or `relay` (media only "
        "through the TURN server: participants never learn each other's IP addresses, a "
        "privacy choice; needs `WEBRTC_TURN_URLS`)",
    )

    def check(self) -> None:
        self.servers()

    def servers(self) -> IceServers:
        """The servers and policy, each URL checked (`ConfigurationError` names the variable)."""
        return IceServers.parse(
            self.stun_urls, self.turn_urls, self.turn_secret, self.ice_transport_policy
        )
