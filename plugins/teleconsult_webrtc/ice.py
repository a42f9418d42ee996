"""The ICE servers handed to each browser: STUN to learn its public address, TURN to relay
media when no direct path exists, with time-limited credentials.

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
import secrets
from dataclasses import dataclass, field

from teleconsult.plugin import ConfigurationError

SCHEMES = {"WEBRTC_STUN_URLS": ("stun:", "stuns:"), "WEBRTC_TURN_URLS": ("turn:", "turns:")}


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

    @classmethod
    def parse(cls, stun_urls: str, turn_urls: str, turn_secret: str) -> IceServers:
        """From WEBRTC_STUN_URLS, WEBRTC_TURN_URLS and WEBRTC_TURN_SECRET; each URL checked."""
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
        return cls(urls["WEBRTC_STUN_URLS"], urls["WEBRTC_TURN_URLS"], turn_secret)

    def for_anyone(self) -> list[dict[str, object]]:
        """The check page's servers: STUN only. TURN credentials would make the relay an open
        one for whoever loads a page that needs no link."""
        return [{"urls": list(self.stun_urls)}] if self.stun_urls else []

    def for_browser(self, expires_at: int) -> list[dict[str, object]]:
        """RTCIceServer entries; TURN credentials valid as long as the link that asks."""
        servers: list[dict[str, object]] = []
        if self.stun_urls:
            servers.append({"urls": list(self.stun_urls)})
        if self.turn_urls:
            username, credential = turn_credentials(
                self.turn_secret, secrets.token_urlsafe(9), expires_at
            )
            servers.append(
                {"urls": list(self.turn_urls), "username": username, "credential": credential}
            )
        return servers
