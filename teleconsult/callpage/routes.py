"""What every provider's call page routes share: finding the running provider, admitting a
request's credential to its seat, the page itself, the assets (the shared page's files and
the provider's transport), the route table, and the credential a join link signs.

A provider's `pages.py` makes one `ProviderPages` and adds what is its own (its info, its
tools, its way into the media: a WebSocket, a token)."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable
from importlib import resources
from typing import TYPE_CHECKING, Generic, TypeVar

from aiohttp import web

from teleconsult.callpage.links import Credential
from teleconsult.callpage.page import Asset, CallPage, default_call_page
from teleconsult.callpage.seats import Admit, Seat, seat_of
from teleconsult.services import VIDEO_PROVIDER

if TYPE_CHECKING:
    from datetime import timedelta

    from teleconsult.callpage.catalogs import Catalogs
    from teleconsult.providers.protocols import JoinRequest

P = TypeVar("P")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def join_credential(
    join: JoinRequest, grace: timedelta, max_lifetime: timedelta, catalogs: Catalogs
) -> Credential:
    """The credential of a participant's page link: their room, bounded by the consultation's
    window (`JoinRequest.window`), in their language, of their link generation."""
    opens, expires = join.window(grace, max_lifetime)
    return Credential(
        teleconsultation_id=join.teleconsultation_id,
        room_id=join.provider_room_id,
        user_id=join.participant.provider_user_id,
        opens_at=math.floor(opens.timestamp()),
        expires_at=math.ceil(expires.timestamp()),
        language=catalogs.match(join.language),
        generation=join.link_generation,
    )


class ProviderPages(Generic[P]):
    """One provider's call page routes. Every route finds the running provider under
    `VIDEO_PROVIDER` and answers as if it did not exist when another provider runs."""

    def __init__(
        self,
        kind: type[P],
        *,
        call_path: str,
        assets_path: str,
        page_of: Callable[[P], CallPage],
        admit_of: Callable[[P], Admit],
        package: str,
        transport: str,
    ) -> None:
        self.kind = kind
        self.page_path = call_path + "{credential}"
        self.assets_path = assets_path
        self.page_of = page_of
        self.admit_of = admit_of
        self.transport = transport
        self.own_assets = {
            transport: Asset.of(
                (resources.files(package) / "assets" / transport).read_bytes(), "text/javascript"
            )
        }
        """This provider's transport, served beside the shared page's files."""
        self.default_page = default_call_page()
        """The page's answers when another provider runs (its routes then open nothing)."""

    def provider(self, request: web.Request) -> P | None:
        provider = request.app[VIDEO_PROVIDER]
        return provider if isinstance(provider, self.kind) else None

    def page(self, provider: P | None) -> CallPage:
        return self.default_page if provider is None else self.page_of(provider)

    async def admit(
        self, request: web.Request, *, html: bool = True
    ) -> tuple[P, Seat] | web.Response:
        """The running provider and the seat a request's credential opens, or the answer
        that refuses it."""
        provider = self.provider(request)
        check = None if provider is None else self.admit_of(provider)
        found = await seat_of(request, self.page(provider), check, html=html)
        if isinstance(found, web.Response):
            return found
        assert provider is not None  # a seat comes only from a running provider's check
        return provider, found

    async def call_page(self, request: web.Request) -> web.Response:
        admitted = await self.admit(request)
        if isinstance(admitted, web.Response):
            return admitted
        provider, found = admitted
        page = self.page_of(provider)
        return page.page(self.language(request, page, found.language), self.transport)

    @staticmethod
    def language(request: web.Request, page: CallPage, language: str | None) -> str:
        """The participant's language, else the browser's, else the default."""
        return page.language(language, request.headers.get("Accept-Language"))

    async def asset(self, request: web.Request) -> web.Response:
        return self.page(self.provider(request)).asset(request, self.own_assets)

    def routes(
        self,
        *,
        info: Handler,
        tools: Handler,
        more: Iterable[web.AbstractRouteDef] = (),
        page: Handler | None = None,
    ) -> list[web.AbstractRouteDef]:
        """The page (`call_path` and the credential), its info and tools, the provider's own
        routes (`more`), and the assets under `assets_path`."""
        return [
            web.get(self.page_path, page or self.call_page),
            web.get(self.page_path + "/info", info),
            web.get(self.page_path + "/tools", tools),
            *more,
            web.get(self.assets_path + "{name}", self.asset),
        ]
