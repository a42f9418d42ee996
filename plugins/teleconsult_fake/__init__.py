"""An in-process video provider for local runs and tests.

It keeps users and rooms in memory, checks what a real provider checks
(2 to 25 participants, a room admin, duration bounds), and gives every
participant a distinct, unguessable link to a page this app serves, which shows
the room, the participant and who else is invited.

Memory does not survive a restart while the store does: a user the store maps
but this process never saw is taken as created before the restart, and links
to rooms made before it open a "not found" page.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape

from aiohttp import web

from teleconsult import plugin

JOIN_PATH = "/fake-video/join/{code}"


class FakeSettings(plugin.DeclaredSettings):
    """The provider's variables, with their defaults and meanings (rows of docs/settings.md)."""

    latency_ms: plugin.WholeNumber = plugin.setting(
        "FAKE_VIDEO_LATENCY_MS",
        0,
        "`fake` provider only: a delay before each of its calls, to try timeouts and benchmarks",
        minimum=0,
        maximum=600_000,
    )
    public_url: str = plugin.setting(
        "FAKE_VIDEO_PUBLIC_URL",
        "",
        "`fake` provider only: where its links point; unset = `http://<HTTP_HOST>:<HTTP_PORT>` "
        "(`0.0.0.0` becomes `127.0.0.1`)",
    )


@dataclass
class FakeRoom:
    id: str
    spec: plugin.RoomSpec
    codes: dict[str, str] = field(repr=False)
    """Provider user id -> join code."""
    created_at: str = ""
    generations: dict[str, int] = field(default_factory=dict)
    """Provider user id -> the lowest link generation its join page still opens."""


class FakeVideo:
    """Everything lives in this object: a fresh provider per app, gone at shutdown."""

    name = "fake"
    limits = plugin.ProviderLimits()
    credentials_seconds = (360, 24 * 3600)
    background_types = frozenset({"image/jpeg"})

    def __init__(self, public_url: str, latency_seconds: float = 0.0) -> None:
        self.public_url = public_url.rstrip("/")
        self.latency_seconds = latency_seconds
        self.users: dict[str, plugin.Level] = {}
        self.rooms: dict[str, FakeRoom] = {}
        self.created_room_count = 0
        self.uploads: dict[str, list[str]] = {}
        self.backgrounds: dict[str, str] = {}
        self.default_background: str | None = None

    async def ensure_user(self, external_id: str, level: plugin.Level) -> str:
        await self._wait()
        user_id = plugin.stable_user_id(external_id)
        self.users.setdefault(user_id, level)
        return user_id

    async def create_room(self, spec: plugin.RoomSpec) -> plugin.CreatedRoom:
        await self._wait()
        refusal = self.limits.refusal(spec)
        if refusal is not None:
            raise plugin.ProviderError(self.name, "create a room", "bad_answer", refusal)
        for participant in spec.participants:  # known before a restart (see the module doc)
            self.users.setdefault(
                participant.provider_user_id,
                plugin.Level.PLUS if participant.is_admin else plugin.Level.BASIC,
            )
        room_id = "fake-room-" + secrets.token_hex(8)
        codes = {p.provider_user_id: secrets.token_urlsafe(24) for p in spec.participants}
        created_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        self.rooms[room_id] = FakeRoom(id=room_id, spec=spec, codes=codes, created_at=created_at)
        self.created_room_count += 1
        links = {
            user: self.public_url + JOIN_PATH.format(code=code) for user, code in codes.items()
        }
        return plugin.CreatedRoom(provider_room_id=room_id, links=links)

    async def delete_room(self, provider_room_id: str) -> None:
        await self._wait()
        self.rooms.pop(provider_room_id, None)

    async def check(self) -> None:
        return None

    def join_link(self, join: plugin.JoinRequest) -> str:
        if join.stored_link is None:
            raise plugin.ProviderError(
                self.name, "make a join link", "bad_answer", "no stored link"
            )
        generation = str(join.link_generation) if join.link_generation else None
        return plugin.with_query(
            join.stored_link,
            {"l": join.language, "vb": "image" if join.background else None, "g": generation},
        )

    async def revoke_link(self, revocation: plugin.Revocation) -> None:
        """The link's generation (`g`) below the new one opens the "revoked" page."""
        await self._wait()
        room = self.rooms.get(revocation.provider_room_id)
        if room is not None:
            room.generations[revocation.provider_user_id] = revocation.generation

    async def describe_room(self, provider_room_id: str) -> dict[str, object]:
        room = self._room(provider_room_id, "describe a room")
        return {
            "recording": room.spec.recording,
            "recordingStatus": "stopped",
            "callType": "audio_video",
            "status": "pending",
            "disabled": False,
            "creationDate": room.created_at,
            "durationInSeconds": room.spec.duration_seconds,
            "durationUsedInSeconds": 0,
            "live": room.spec.live,
        }

    async def create_credentials(
        self, provider_user_id: str, expires_in: int
    ) -> plugin.Credentials:
        await self._wait()
        if provider_user_id not in self.users:
            raise plugin.ProviderError(
                self.name, "create SDK credentials", "bad_answer", "unknown user"
            )
        expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
        return plugin.Credentials(
            access_token="fake-token-" + secrets.token_urlsafe(24),
            expires_at=expires_at.isoformat().replace("+00:00", "Z"),
            provider_user_id=provider_user_id,
        )

    async def list_uploads(self, provider_room_id: str) -> list[str]:
        await self._wait()
        return list(self.uploads.get(provider_room_id, []))

    async def delete_upload(self, key: str) -> None:
        await self._wait()
        for room_keys in self.uploads.values():
            if key in room_keys:
                room_keys.remove(key)

    async def upload_background(self, upload: plugin.Upload) -> dict[str, object]:
        await self._wait()
        alias = "bg-" + secrets.token_hex(4)
        self.backgrounds[alias] = upload.filename
        return {
            "background_alias": alias,
            "url": f"{self.public_url}/fake-video/backgrounds/{alias}",
            "creation_date": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }

    async def set_default_background(self, alias: str) -> dict[str, object]:
        await self._wait()
        if alias not in self.backgrounds:
            raise plugin.NotFound(f"background_alias {alias!r} names no background of the company.")
        self.default_background = alias
        return {"name": "fake company", "default_background": alias}

    def _room(self, provider_room_id: str, operation: str) -> FakeRoom:
        room = self.rooms.get(provider_room_id)
        if room is None:
            raise plugin.ProviderError(self.name, operation, "bad_answer", "unknown room")
        return room

    async def close(self) -> None:
        self.rooms.clear()

    async def _wait(self) -> None:
        if self.latency_seconds:
            await asyncio.sleep(self.latency_seconds)

    def find_code(self, code: str) -> tuple[FakeRoom, str] | None:
        for room in self.rooms.values():
            for user, user_code in room.codes.items():
                if secrets.compare_digest(user_code, code):
                    return room, user
        return None


def _create(context: plugin.ProviderContext[FakeSettings]) -> FakeVideo:
    """Links point to FAKE_VIDEO_PUBLIC_URL, else to this server's own address."""
    settings = context.settings
    return FakeVideo(settings.public_url or context.server_url, settings.latency_ms / 1000)


UNKNOWN_LINK_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Link not found</title></head>
<body><h1>This link is unknown or its room was deleted.</h1>
<p>Ask for a new link: open the teleconsultation again in your application.</p></body></html>
"""


REVOKED_LINK_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Link revoked</title></head>
<body><h1>This link was revoked.</h1>
<p>Ask for a new link: open the teleconsultation again in your application.</p></body></html>
"""


async def join_page(request: web.Request) -> web.Response:
    """The page a fake link opens. Not found unless the fake provider is the one running."""
    provider = request.app[plugin.VIDEO_PROVIDER]
    found = (
        provider.find_code(request.match_info["code"]) if isinstance(provider, FakeVideo) else None
    )
    if found is None:  # a person opened it: a page, not an API error body
        return web.Response(status=404, content_type="text/html", text=UNKNOWN_LINK_PAGE)
    room, user = found
    generation = request.query.get("g", "0")
    if not generation.isdecimal() or int(generation) < room.generations.get(user, 0):
        return web.Response(status=410, content_type="text/html", text=REVOKED_LINK_PAGE)
    me = next(p for p in room.spec.participants if p.provider_user_id == user)
    others = "".join(
        f"<li>{escape(p.provider_user_id)}{' (admin)' if p.is_admin else ''}</li>"
        for p in room.spec.participants
        if p.provider_user_id != user
    )
    duration = (
        "unlimited" if room.spec.duration_seconds is None else f"{room.spec.duration_seconds} s"
    )
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fake video room</title></head>
<body>
<h1>Fake video room {escape(room.id)}</h1>
<p>You are <strong>{escape(user)}</strong>{" (room admin)" if me.is_admin else ""}.</p>
<p>Your tools: {escape(", ".join(me.tools) or "none")}.</p>
<p>Duration: {escape(duration)}; live: {"yes" if room.spec.live else "no"};
recording: {escape(room.spec.recording)}.</p>
<p>Language: {escape(request.query.get("l", "default"))}; virtual background:
{"on" if request.query.get("vb") else "off"}.</p>
<h2>Also invited</h2>
<ul>{others}</ul>
<p>This page stands in for a real video call: the fake provider serves it for local runs.</p>
</body></html>
"""
    return web.Response(
        text=body,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


@plugin.hookimpl
def register_video_providers() -> list[plugin.VideoProviderPlugin[FakeSettings]]:
    return [
        plugin.VideoProviderPlugin(
            name="fake",
            create=_create,
            description="In-process rooms and links, for local runs and tests.",
            link_markers=(JOIN_PATH.split("{")[0],),
            settings=FakeSettings,
        )
    ]


@plugin.hookimpl
def register_routes() -> list[web.AbstractRouteDef]:
    return [web.get(JOIN_PATH, join_page)]
