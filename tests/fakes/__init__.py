"""In-process stand-ins of vendors' servers, for the tests and `make bench`: never shipped."""

from aiohttp import web


def drop(request: web.Request) -> web.Response:
    """Close the request's connection unanswered; the response returned is never sent."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)
