"""`teleconsult serve`'s loop: the app on one TCP address until SIGTERM or SIGINT.

It stands in for `web.run_app`, which builds aiohttp's own runner: the runner given here
(a `HardenedRunner`) shapes the answers aiohttp writes itself, for this app only.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from aiohttp import web

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def serve_until_stopped(
    runner: web.AppRunner, host: str, port: int, listening: Callable[[str], None]
) -> None:
    """Start the app (`runner.setup`: its startup, the store opening), listen, call
    `listening` with the address bound (the real port when `port` is 0), and wait for a stop
    signal. Then stop as the runner was told: stop accepting, the app's `on_shutdown`, the
    grace for requests in flight (`shutdown_timeout`), the app's cleanup.

    The signal handlers are set first, so a stop asked during the start waits for it and
    then stops cleanly; they stay until the stop is done (a second signal changes nothing).
    A start that fails raises, as `web.run_app` does: nothing was served."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for number in STOP_SIGNALS:
        loop.add_signal_handler(number, stop.set)
    try:
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            listening(site.name)
            await stop.wait()
        finally:
            await runner.cleanup()
    finally:
        for number in STOP_SIGNALS:
            loop.remove_signal_handler(number)
