"""A frontend on another origin calls the API from a real browser (Debian's chromium).

The page is served from one loopback origin (127.0.0.1:<port A>) and calls the
API on another (127.0.0.1:<port B>) with fetch(): a JSON POST with the caller
header, which the browser preflights. Chromium itself decides, from our answers,
whether the page may send it and read the answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page

from teleconsult.services import SERVICES
from tests.helpers import DOCTOR, PATIENT, AppServing, teleconsultation

Server = Callable[..., Awaitable[TestServer]]

FRONTEND = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>A frontend on another origin</title></head>
<body>
<script>
  async function call(url, init) {
    try {
      const response = await fetch(url, init);
      return {
        status: response.status,
        requestId: response.headers.get("x-request-id"),
        body: await response.json(),
      };
    } catch (error) {
      return { error: String(error) };
    }
  }
  window.createTeleconsultation = (api, body) =>
    call(api + "/teleconsultation", {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "miauserid": "doctor-1",
        "x-request-id": "from-the-frontend",
      },
      body: JSON.stringify(body),
    });
</script>
</body>
</html>
"""


@pytest.fixture
async def frontend(aiohttp_server: Server) -> str:
    """The page's origin: a server of its own on loopback, serving one HTML page."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=FRONTEND, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def open_frontend(browser: Browser, frontend: str, console: list[str]) -> Page:
    page = await browser.new_page()
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    await page.goto(frontend + "/")
    return page


async def serve_api(
    app_server: AppServing, build_app: Callable[..., web.Application], **environ: str
) -> tuple[str, web.Application]:
    """The API on a loopback port of its own: its origin, and the app (to see what it answered)."""
    server = await app_server(build_app(**environ))
    return str(server.make_url("")).rstrip("/"), server.app


def answered(app: web.Application) -> list[tuple[str, str]]:
    """The method and status of every request the API answered, from its own metrics."""
    return sorted(
        (sample.labels["method"], sample.labels["status"])
        for metric in app[SERVICES].metrics.registry.collect()
        for sample in metric.samples
        if sample.name == "teleconsult_http_requests_total"
        for _ in range(int(sample.value))
    )


async def test_a_page_of_an_allowed_origin_creates_a_teleconsultation_and_reads_the_answer(
    app_server: AppServing,
    build_app: Callable[..., web.Application],
    browser: Browser,
    frontend: str,
) -> None:
    api, app = await serve_api(app_server, build_app, CORS_ALLOWED_ORIGINS=frontend)
    assert api.split(":")[:2] == frontend.split(":")[:2]  # one host, two ports: two origins
    assert api != frontend
    console: list[str] = []
    page = await open_frontend(browser, frontend, console)

    created: dict[str, Any] = await page.evaluate(
        "([api, body]) => window.createTeleconsultation(api, body)",
        [api, teleconsultation(2, DOCTOR, PATIENT)],
    )
    assert created.get("status") == 201, created
    assert created["requestId"] == "from-the-frontend"
    assert isinstance(created["body"]["roomId"], str)

    # An error's body is readable too: the frontend can show what to fix.
    refused: dict[str, Any] = await page.evaluate(
        "([api, body]) => window.createTeleconsultation(api, body)",
        [api, {"participants": {"number": 2, "data": []}}],
    )
    assert refused.get("status") == 400, refused
    assert refused["requestId"] == "from-the-frontend"
    assert refused["body"]["code"] == "validation"
    assert [line for line in console if not line.startswith("error: Failed to load")] == []
    # One preflight, whose answer the browser kept (Access-Control-Max-Age) for the second.
    assert answered(app) == [("OPTIONS", "204"), ("POST", "201"), ("POST", "400")]


@pytest.mark.parametrize(
    "allowed",
    [None, "https://app.example.org"],
    ids=["cors-unset", "another-origin-listed"],
)
async def test_a_page_of_an_origin_not_listed_cannot_call_the_api(
    app_server: AppServing,
    build_app: Callable[..., web.Application],
    browser: Browser,
    frontend: str,
    allowed: str | None,
) -> None:
    environ = {"CORS_ALLOWED_ORIGINS": allowed} if allowed else {}
    api, app = await serve_api(app_server, build_app, **environ)
    console: list[str] = []
    page = await open_frontend(browser, frontend, console)

    result = await page.evaluate(
        "([api, body]) => window.createTeleconsultation(api, body)",
        [api, teleconsultation(2, DOCTOR, PATIENT)],
    )
    assert result == {"error": "TypeError: Failed to fetch"}
    blocked = [line for line in console if "blocked by CORS policy" in line]
    assert len(blocked) == 1, console
    assert f"from origin '{frontend}'" in blocked[0], blocked
    # The browser stopped at the preflight: the POST itself never left it.
    assert "preflight" in blocked[0], blocked
    assert answered(app) == [("OPTIONS", "403" if allowed else "405")]
