"""The fake Kaleyra server, standing alone with a latency on every call (for the creation bench).

It lives in the tests' support package (`tests/fakes/kaleyra.py`): run this with the
repository root on PYTHONPATH, as bench/run.py does."""

from __future__ import annotations

import sys

from aiohttp import web

from tests.fakes.kaleyra import FakeKaleyra


def main() -> None:
    port, latency = int(sys.argv[1]), float(sys.argv[2])
    app = FakeKaleyra(api_key="bench-key", latency=latency).app()

    async def alive(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/-/alive", alive)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
