"""How the server listens, who may call it from a browser, and which proxies are believed."""

from __future__ import annotations

from teleconsult.configuration.declarations import (
    DeclaredSettings,
    Networks,
    Origins,
    WholeNumber,
    setting,
)


class HttpSettings(DeclaredSettings):
    host: str = setting("HTTP_HOST", "127.0.0.1", "address to listen on (`0.0.0.0` in a container)")
    port: WholeNumber = setting("HTTP_PORT", 3000, "port to listen on", minimum=0, maximum=65535)
    read_timeout_ms: WholeNumber = setting(
        "HTTP_READ_TIMEOUT_MS",
        30000,
        "how long a client may take to send a request's headers (from the moment it connects or "
        "got its last answer) and, separately, its body (else 408); an idle keep-alive connection "
        "is closed after the same time, so keep it above your load balancer's idle timeout",
        minimum=1000,
        maximum=3_600_000,
    )
    shutdown_grace_ms: WholeNumber = setting(
        "SHUTDOWN_GRACE_MS",
        25000,
        "on SIGTERM, how long in-flight requests may take to finish before the store and sessions "
        "close (keep it below Kubernetes' `terminationGracePeriodSeconds`)",
        minimum=0,
        maximum=3_600_000,
    )
    cors_allowed_origins: Origins = setting(
        "CORS_ALLOWED_ORIGINS",
        frozenset(),
        "comma-separated origins (`https://app.example.org`: scheme, host, port if not the "
        "default; no path, no `*`; `http` for a loopback host only) whose pages may call the API "
        "from a browser; unset = same-origin only; never with credentials (cookies); leave it "
        "unset behind a gateway that answers CORS itself",
    )
    trusted_proxies: Networks = setting(
        "TRUSTED_PROXIES",
        (),
        "comma-separated CIDRs (`10.0.0.0/8, 192.168.1.7/32`) of the proxies in front: only when "
        "the direct peer is in one is `X-Forwarded-For` believed for the client address the audit "
        "trail records (the rightmost address not in them); else the peer's address is recorded",
    )

    @property
    def own_url(self) -> str:
        """This server's own address as a browser on this machine reaches it
        (`http://<HTTP_HOST>:<HTTP_PORT>`, a wildcard host as 127.0.0.1): where the links of a
        provider that serves its own pages point when no public URL is configured."""
        host = self.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a listening address, not a bind
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"
