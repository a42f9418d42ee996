"""Every JSON answer the API writes, serialized in one place.

orjson writes a poll's answer in about a tenth of the standard library's time. The text
is compact JSON (no spaces after `:` and `,`, as the original service's JSON.stringify
wrote it) and UTF-8 (names as they are, not `\\u` escapes); a body orjson cannot write (a
key that is not a string, an integer past 64 bits, a lone surrogate: aiohttp reads a header
byte that is not UTF-8 as one, and an error message may quote the header) is written by the
standard library, in ASCII with escapes, which any text survives.
"""

from __future__ import annotations

import json

import orjson
from aiohttp import web
from aiohttp.typedefs import LooseHeaders


def json_answer(
    body: object, *, status: int = 200, headers: LooseHeaders | None = None
) -> web.Response:
    """`web.json_response`, faster: the same status, headers and content type."""
    try:
        text = orjson.dumps(body)
    except TypeError:  # orjson.JSONEncodeError included
        text = json.dumps(body, separators=(",", ":")).encode()
    return web.Response(
        body=text,
        status=status,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )
