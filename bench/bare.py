"""The floor: a bare aiohttp app answering a JSON body of a given size from memory."""

from __future__ import annotations

import json
import sys

from aiohttp import web


def main() -> None:
    port, size = int(sys.argv[1]), int(sys.argv[2])
    body = json.dumps({"padding": "x" * max(0, size - 15)}).encode()

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/", answer)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
