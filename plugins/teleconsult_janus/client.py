"""Janus's HTTP API, as the service speaks it: a session and a videoroom handle per
operation, one synchronous videoroom request, the session destroyed.

A session per operation keeps nothing in memory that another replica would need, and no
keep-alive to run (Janus drops an idle session after `session_timeout`). Every request
carries a signed token (`tokens.py`) for the service itself, since Janus runs with
`token_auth`. The HTTP transport answers 200 even when Janus refuses: the refusal is in the
body (`"janus": "error"`, or the videoroom's `error_code`), read here into a
`ProviderError` naming the operation (502); no connection is 503, no answer in time 504
(`OutboundClient`). Every call is safe to repeat: creating a session or a handle leaves at
worst an unused one that Janus drops, and the videoroom requests made here are reads,
creations under our own id (427 "already exists" is then the answer) and destructions
(426 "no such room" is then the answer).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from teleconsult.plugin import OutboundClient, ProviderError

PROVIDER = "janus"
VIDEOROOM = "janus.plugin.videoroom"
NO_SUCH_ROOM = 426
ROOM_EXISTS = 427


@dataclass(frozen=True)
class VideoroomError(Exception):
    """The videoroom refused a request: its code and reason."""

    code: int
    reason: str


class JanusClient:
    """The service's side of Janus's HTTP API (JANUS_URL)."""

    def __init__(self, outbound: OutboundClient, service_token: Callable[[], str]) -> None:
        self.outbound = outbound
        self.service_token = service_token

    async def close(self) -> None:
        await self.outbound.close()

    async def info(self) -> dict[str, Any]:
        """The server's description (no token needed): its version and plugins."""
        return await self._post("ask Janus who it is", "", {"janus": "info"})

    async def videoroom(self, operation: str, body: Mapping[str, object]) -> dict[str, Any]:
        """One synchronous videoroom request; its answer's data, or `VideoroomError`."""
        session = await self._post(operation, "", {"janus": "create"})
        session_path = f"/{_id(operation, session)}"
        try:
            handle = await self._post(
                operation, session_path, {"janus": "attach", "plugin": VIDEOROOM}
            )
            answer = await self._post(
                operation,
                f"{session_path}/{_id(operation, handle)}",
                {"janus": "message", "body": dict(body)},
            )
        finally:
            await self._post(operation, session_path, {"janus": "destroy"}, quiet=True)
        data = _plugin_data(operation, answer)
        if "error_code" in data:
            raise VideoroomError(int(data["error_code"]), str(data.get("error", "")))
        return data

    async def _post(
        self, operation: str, path: str, message: dict[str, object], *, quiet: bool = False
    ) -> dict[str, Any]:
        body = {**message, "transaction": secrets.token_hex(8), "token": self.service_token()}
        try:
            answer = await self.outbound.call(operation, "POST", path, safe=True, json_body=body)
        except ProviderError:
            if quiet:  # destroying our own session: Janus drops it anyway
                return {}
            raise
        found = answer.body
        if not isinstance(found, dict):
            raise ProviderError(PROVIDER, operation, "bad_answer", "the answer is not an object")
        if found.get("janus") == "error" and not quiet:
            error = found.get("error")
            detail = error if isinstance(error, dict) else {}
            raise ProviderError(
                PROVIDER,
                operation,
                "bad_answer",
                f"Janus error {detail.get('code')}: {str(detail.get('reason', ''))[:200]}",
            )
        return found


def refused(operation: str, error: VideoroomError) -> ProviderError:
    """The videoroom's refusal as a bad answer (502) naming the operation and Janus's reason."""
    return ProviderError(
        PROVIDER, operation, "bad_answer", f"videoroom error {error.code}: {error.reason[:200]}"
    )


def _id(operation: str, answer: Mapping[str, Any]) -> int:
    data = answer.get("data")
    found = data.get("id") if isinstance(data, dict) else None
    if not isinstance(found, int):
        raise ProviderError(PROVIDER, operation, "bad_answer", "no id in Janus's answer")
    return found


def _plugin_data(operation: str, answer: Mapping[str, Any]) -> dict[str, Any]:
    plugin = answer.get("plugindata")
    data = plugin.get("data") if isinstance(plugin, dict) else None
    if not isinstance(data, dict):
        raise ProviderError(PROVIDER, operation, "bad_answer", "no videoroom answer")
    return data


def field_of(operation: str, data: Mapping[str, Any], name: str, kind: type) -> Any:
    """`data[name]`, of type `kind`, or a bad answer (502) naming the operation."""
    value = data.get(name)
    if not isinstance(value, kind):
        raise ProviderError(PROVIDER, operation, "bad_answer", f"no {name} in Janus's answer")
    return value
