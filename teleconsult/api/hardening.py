"""Headers every answer carries, whatever wrote it, and the answers aiohttp writes itself.

`X-Content-Type-Options: nosniff` keeps browsers from guessing a type for our
JSON; the `Server` header names the service and no versions (aiohttp's default
names Python's and its own, a gift to anyone matching vulnerabilities).
Answers that carry a link or a token add `Cache-Control: no-store` themselves
(`NO_STORE`): a bearer credential must not rest in a shared cache.

aiohttp answers some requests before any app code or signal runs: one it cannot
parse, and one whose handler let an exception escape. `HardenedRunner` serves an
app with `HardenedRequestHandler`, whose `handle_error` writes those answers as
ours, for the apps it runs only: nothing of aiohttp is patched, so another app in
the process (a test's fake provider) keeps aiohttp's own answers.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import hdrs, web, web_protocol
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError, LineTooLong

from teleconsult.api.errors import error_response

SERVER_NAME = "teleconsult"
NO_STORE = {hdrs.CACHE_CONTROL: "no-store"}
HEADERS = {hdrs.SERVER: SERVER_NAME, "X-Content-Type-Options": "nosniff"}


async def harden_response(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(HEADERS)


def setup_hardening(app: web.Application) -> None:
    app.on_response_prepare.append(harden_response)


# -- The answers aiohttp writes itself -------------------------------------------------------
# aiohttp has no public hook for the class of its connection handler: `Server.__call__` makes
# it, and `AppRunner._make_server` makes the `Server`. These three classes are the whole
# private surface we override or read (`_make_server`, `Server._loop`, `Server._kwargs`),
# checked against aiohttp 3.14.5; tests/test_hardening.py fails if it changes.


class HardenedRequestHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler; the answers it writes itself are ours (`handle_error`)."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A request aiohttp cannot parse is a 400 `malformed_request` (431 for a line over
        the limit); a handler's escaped exception a 500 `internal` (aiohttp logs it). Neither
        the answer nor the log line quotes the request: its bytes may hold a token."""
        if isinstance(exc, HttpProcessingError):
            response = _malformed(exc, self.logger)
        else:
            super().handle_error(request, status, exc, message)  # logs; raises if answering began
            response = error_response(
                status, "The service failed unexpectedly; the error was logged.", "internal"
            )
            response.force_close()
        response.headers.update(HEADERS)
        return response


class HardenedServer(web.Server):
    """aiohttp's low-level server, making a `HardenedRequestHandler` for each connection."""

    def __call__(self) -> web_protocol.RequestHandler:
        return HardenedRequestHandler(self, loop=self._loop, **self._kwargs)


class HardenedRunner(web.AppRunner):
    """`web.AppRunner` (same arguments) whose server is a `HardenedServer`."""

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()  # aiohttp starts the app and makes its own server
        return HardenedServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **made._kwargs,
        )


def _malformed(error: HttpProcessingError, logger: logging.Logger) -> web.Response:
    """Our error body for a request aiohttp could not parse. aiohttp's own answer and log line
    quote the bytes it stopped at; here only the error's kind (and a line's limit) is named."""
    if isinstance(error, LineTooLong):
        limit = error.args[1]  # (line, limit, actual size)
        logger.warning("malformed HTTP request: a line longer than %s bytes", limit)
        response = error_response(
            431,
            f"The request line or a header is longer than {limit} bytes (the limit); "
            "send it shorter.",
            "header_too_large",
        )
    else:
        # Not HTTP at all (TLS sent to the HTTP port, a scanner) is noise: debug only.
        level = logging.DEBUG if isinstance(error, BadHttpMethod) else logging.WARNING
        logger.log(level, "malformed HTTP request: %s", type(error).__name__)
        message = "The request is not well-formed HTTP/1.1; none of it was read."
        response = error_response(400, message, "malformed_request")
    response.force_close()
    return response
