"""The fake Kaleyra server, standing alone with a latency on every call (for the creation bench)."""

from __future__ import annotations

import sys

from aiohttp import web
from teleconsult_bandyer.fake_kaleyra import FakeKaleyra


def main() -> None:
    port, latency = int(sys.argv[1]), float(sys.argv[2])
    app = FakeKaleyra(api_key="bench-key", latency=latency).app()

    async def alive(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/-/alive", alive)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
