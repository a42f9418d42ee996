"""The ICE servers handed to each browser of the call page, whichever provider serves it:
STUN to learn its public address, TURN to relay media when no direct path exists, with
time-limited credentials, and the transport policy (`relay`: only through TURN).

TURN credentials follow the TURN REST API scheme that coturn's `use-auth-secret`
implements: username `<expiry>:<user>`, credential `base64(HMAC-SHA1(secret,
username))`. The TURN server checks them with the shared secret alone, so
teleconsult never talks to it. `<user>` lands in the TURN server's logs: it is an
opaque random id, never a name or a participant id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypedDict

from teleconsult.errors import ConfigurationError

IceTransportPolicy = Literal["all", "relay"]
SCHEMES = {"WEBRTC_STUN_URLS": ("stun:", "stuns:"), "WEBRTC_TURN_URLS": ("turn:", "turns:")}


class BrowserIce(TypedDict):
    """What a page's `RTCPeerConnection` is built with (its info carries both keys)."""

    iceServers: list[dict[str, object]]
    iceTransportPolicy: IceTransportPolicy


def turn_credentials(secret: str, user: str, expires_at: int) -> tuple[str, str]:
    """coturn `use-auth-secret` credentials for `user`, valid until `expires_at` (epoch s)."""
    username = f"{expires_at}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class IceServers:
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = field(default="", repr=False)
    policy: IceTransportPolicy = "all"

    @classmethod
    def parse(
        cls,
        stun_urls: str,
        turn_urls: str,
        turn_secret: str,
        policy: IceTransportPolicy = "all",
    ) -> IceServers:
        """From WEBRTC_STUN_URLS, WEBRTC_TURN_URLS, WEBRTC_TURN_SECRET and
        WEBRTC_ICE_TRANSPORT_POLICY; each URL checked."""
        given = {"WEBRTC_STUN_URLS": stun_urls, "WEBRTC_TURN_URLS": turn_urls}
        urls = {  # in the order given: browsers try them in that order
            name: tuple(url.strip() for url in given[name].split(",") if url.strip())
            for name in SCHEMES
        }
        for name, schemes in SCHEMES.items():
            for url in urls[name]:
                if not url.startswith(schemes):
                    raise ConfigurationError(
                        f"{name} must be a comma-separated list of {' or '.join(schemes)} URLs; "
                        f"got {url!r}."
                    )
        if urls["WEBRTC_TURN_URLS"] and not turn_secret:
            raise ConfigurationError(
                "WEBRTC_TURN_URLS needs WEBRTC_TURN_SECRET, the TURN server's static-auth-secret."
            )
        if policy == "relay" and not urls["WEBRTC_TURN_URLS"]:
            raise ConfigurationError(
                "WEBRTC_ICE_TRANSPORT_POLICY=relay needs WEBRTC_TURN_URLS and WEBRTC_TURN_SECRET: "
                "without a TURN server no call could connect."
            )
        return cls(urls["WEBRTC_STUN_URLS"], urls["WEBRTC_TURN_URLS"], turn_secret, policy)

    def for_anyone(self) -> BrowserIce:
        """The check page's: STUN only, gathered with policy `all`. TURN credentials would make
        the relay an open one for whoever loads a page that needs no link, and the check
        connects to no peer, so no address reaches anyone."""
        return {
            "iceServers": [{"urls": list(self.stun_urls)}] if self.stun_urls else [],
            "iceTransportPolicy": "all",
        }

    def for_browser(self, valid_until: datetime) -> BrowserIce:
        """A participant's: TURN credentials that expire no later than `valid_until` (the end
        of the link's window), and the policy."""
        servers: list[dict[str, object]] = []
        if self.stun_urls:
            servers.append({"urls": list(self.stun_urls)})
        if self.turn_urls:
            expires_at = math.floor(valid_until.timestamp())
            username, credential = turn_credentials(
                self.turn_secret, secrets.token_urlsafe(9), expires_at
            )
            servers.append(
                {"urls": list(self.turn_urls), "username": username, "credential": credential}
            )
        return {"iceServers": servers, "iceTransportPolicy": self.policy}


NO_ICE = IceServers()
"""No STUN, no TURN: browsers on one network (a provider's own tests)."""
