"""What the audit trail records of a request (its id, the client's address, its user agent),
and the one call handlers make to record an entry."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import hdrs, web

from teleconsult.api.client_address import client_address
from teleconsult.api.observe import REQUEST_ID
from teleconsult.core.audit import RequestTrace
from teleconsult.providers.protocols import Caller
from teleconsult.services import SERVICES


def trace_of(request: web.Request) -> RequestTrace:
    trusted = request.app[SERVICES].settings.http.trusted_proxies
    return RequestTrace(
        request_id=request[REQUEST_ID],
        client_address=client_address(
            request.remote, request.headers.getall(hdrs.X_FORWARDED_FOR, ()), trusted
        ),
        user_agent=request.headers.get(hdrs.USER_AGENT),
    )


async def audited(
    request: web.Request,
    action: str,
    teleconsultation_id: str | None,
    caller: Caller,
    *,
    participant: str | None = None,
    fields: Iterable[str] = (),
) -> None:
    """Append an entry for this request to the audit trail."""
    await request.app[SERVICES].audit.record(
        action,
        teleconsultation_id,
        caller.id,
        trace_of(request),
        participant=participant,
        fields=fields,
    )
