"""`teleconsult provider-check`: does the configured account answer as teleconsult expects?

Run with the service's own environment, against the real account (a sandbox
first). For the video provider it creates two throwaway users
(`teleconsult-check-plus`, `teleconsult-check-basic`: the same two at every run),
a room for them, makes each participant's link, reads the room's details, issues
SDK credentials and lists the room's files (each when the provider offers it),
then deletes the room; for the identity provider it looks up the user ids given.
It prints one line per step: the outcome, the time it took, and the answer's
shape (keys and value types, never values: no link, token or name is printed).
What it created is deleted even when a step fails; the exit code is 1 when any
step failed. Everything goes through the provider protocols: no provider's
name appears here.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, fields, is_dataclass
from datetime import timedelta
from functools import partial
from typing import Any, Literal, TextIO

from teleconsult.composition import open_providers, planned
from teleconsult.configuration.service_config import ServiceConfig
from teleconsult.configuration.settings import Settings
from teleconsult.core.clock import Clock, utc_now
from teleconsult.core.domain import TOOLS, Level, RoomParticipant, RoomSpec
from teleconsult.errors import ServiceError
from teleconsult.observability import redaction
from teleconsult.providers.helpers import shape, stable_user_id
from teleconsult.providers.protocols import (
    CAPABILITIES,
    Caller,
    CreatedRoom,
    IdentityProvider,
    JoinRequest,
    ParticipantEntry,
    RoomDetails,
    SdkCredentials,
    Uploads,
    VideoProvider,
)
from teleconsult.store import open_store

PREFIX = "teleconsult-check-"
PLUS_USER = PREFIX + "plus"
BASIC_USER = PREFIX + "basic"
Outcome = Literal["ok", "fail", "skipped"]


@dataclass
class Step:
    name: str
    outcome: Outcome
    milliseconds: float | None = None
    shape: object = None
    detail: str | None = None
    """A note (what was compared), or the failure's message."""


class Steps:
    """The steps run so far; each one timed, its failure kept rather than raised."""

    def __init__(self) -> None:
        self.done: list[Step] = []

    async def run(
        self,
        name: str,
        call: Callable[[], Awaitable[Any]],
        note: Callable[[Any], tuple[bool, str]] | None = None,
    ) -> Any:
        """Run one step; its answer, or None when it failed. `note` judges the answer."""
        started = time.perf_counter()
        try:
            answer = await call()
        except Exception as error:  # a step's failure is reported, never raised
            message = error.message if isinstance(error, ServiceError) else repr(error)
            self._add(Step(name, "fail", _ms(started), detail=redaction.redact(message)))
            return None
        ok, detail = note(answer) if note else (True, None)
        self._add(Step(name, "ok" if ok else "fail", _ms(started), _shape_of(answer), detail))
        return answer

    def skip(self, name: str, why: str) -> None:
        self._add(Step(name, "skipped", detail=why))

    def _add(self, step: Step) -> None:
        self.done.append(step)

    @property
    def failed(self) -> bool:
        return any(step.outcome == "fail" for step in self.done)


async def check(
    settings: Settings,
    config: ServiceConfig,
    environ: Mapping[str, str],
    user_ids: Sequence[str],
    *,
    extra_plugins: Sequence[object] = (),
    clock: Clock = utc_now,
) -> tuple[str, str, list[Step]]:
    """Run every step against the configured providers: (video name, identity name, steps).
    A step's failure is reported redacted as the app would log it (its secrets, its links)."""
    plan = planned(settings, config, environ, extra_plugins)
    plugins = plan.plugins
    redaction.use(plan.redactor)
    steps = Steps()
    async with AsyncExitStack() as stack:
        store = await open_store(settings)  # providers that keep state keep it in the store
        stack.push_async_callback(store.health.close)
        video, identity = await open_providers(stack, plan, clock, store)
        await _check_video(video, steps, clock)
        await _check_identity(identity, user_ids, steps)
    return plugins.video.name, plugins.identity.name, steps.done


async def _check_video(video: VideoProvider, steps: Steps, clock: Clock) -> None:
    plus = await steps.run(
        "create a user (plus)",
        lambda: video.ensure_user(PLUS_USER, Level.PLUS),
        lambda user: _derived(user, PLUS_USER),
    )
    await steps.run(
        "create the same user again",
        lambda: video.ensure_user(PLUS_USER, Level.PLUS),
        lambda user: (user == plus, "the same user" if user == plus else "another user"),
    )
    basic = await steps.run(
        "create a user (basic)",
        lambda: video.ensure_user(BASIC_USER, Level.BASIC),
        lambda user: _derived(user, BASIC_USER),
    )
    if plus is None or basic is None:
        steps.skip("create a room", "a user could not be created")
        return
    seats = (
        RoomParticipant(plus, True, TOOLS),
        RoomParticipant(basic, False, ("chat",)),
    )
    spec = RoomSpec(participants=seats, duration_seconds=None, live=True, recording="none")
    room: CreatedRoom | None = await steps.run("create a room", lambda: video.create_room(spec))
    if room is None:
        return
    deleted = False
    try:
        now = clock()
        for seat, name in zip(seats, ("plus", "basic"), strict=True):
            join = JoinRequest(
                teleconsultation_id="0" * 24,
                provider_room_id=room.provider_room_id,
                participant=seat,
                display_name=f"teleconsult check ({name})",
                stored_link=room.links.get(seat.provider_user_id),
                language="en",
                background=False,
                opens_at=now,
                starts_at=now,
                ends_at=now + timedelta(hours=1),
                limited=False,
            )
            await steps.run(
                f"make the {name} participant's link", _now(video.join_link, join), _url
            )
        await _capabilities(video, room, plus, steps)
        await steps.run("delete the room", lambda: video.delete_room(room.provider_room_id))
        deleted = steps.done[-1].outcome == "ok"
    finally:
        if not deleted:  # whatever failed, nothing is left behind that can be deleted
            await steps.run(
                "delete the room (clean-up)", lambda: video.delete_room(room.provider_room_id)
            )


async def _capabilities(video: VideoProvider, room: CreatedRoom, user: str, steps: Steps) -> None:
    if isinstance(video, RoomDetails):
        await steps.run(
            "read the room's details", lambda: video.describe_room(room.provider_room_id)
        )
    else:
        steps.skip("read the room's details", _not_offered(video, RoomDetails))
    if isinstance(video, SdkCredentials):
        seconds = video.credentials_seconds[0]
        await steps.run(
            "issue SDK credentials",
            lambda: video.create_credentials(user, seconds),
            lambda answer: (
                answer.provider_user_id == user,
                "for the user asked" if answer.provider_user_id == user else "for another user",
            ),
        )
    else:
        steps.skip("issue SDK credentials", _not_offered(video, SdkCredentials))
    if isinstance(video, Uploads):
        await steps.run(
            "list the room's files",
            lambda: video.list_uploads(room.provider_room_id),
            lambda keys: (True, f"{len(keys)} file(s)"),
        )
    else:
        steps.skip("list the room's files", _not_offered(video, Uploads))


async def _check_identity(
    identity: IdentityProvider, user_ids: Sequence[str], steps: Steps
) -> None:
    if not user_ids:
        steps.skip("look up users", "no user id given on the command line")
        return
    if not identity.resolves_bare_ids:
        steps.skip("look up users", f"the {identity.name} provider takes users from the request")
        return
    for index, user_id in enumerate(user_ids, start=1):
        entry = ParticipantEntry(user_id, None, None, None, path=f"user id {index}")
        await steps.run(
            f"look up user id {index}",
            partial(identity.identify, [entry], Caller(None)),
            lambda found: (True, f"{len(found[0].groups)} group(s)"),
        )


def _derived(user: str, external_id: str) -> tuple[bool, str]:
    """Whether the provider kept the id derived from ours: creating a user is idempotent only
    then (a provider that names its users itself makes a new one at every introduction)."""
    if user == stable_user_id(external_id):
        return True, "the id derived from ours"
    return False, "the provider answered another id than the one derived from ours"


def _url(link: str) -> tuple[bool, str]:
    scheme = link.split("://", 1)[0] if "://" in link else ""
    return scheme in ("https", "http"), f"an {scheme} URL" if scheme else "not a URL"


def _not_offered(video: VideoProvider, capability: type) -> str:
    return f"the {video.name} provider does not offer {CAPABILITIES[capability]}"


def _now(function: Callable[[JoinRequest], str], join: JoinRequest) -> Callable[[], Awaitable[str]]:
    async def call() -> str:
        return function(join)

    return call


def _shape_of(answer: object) -> object:
    """The shape of a provider's answer; our own records by their fields, where a mapping is
    keyed by data (user ids), so only its size and its values' shape are shown."""
    if is_dataclass(answer) and not isinstance(answer, type):
        return {field.name: _field_shape(getattr(answer, field.name)) for field in fields(answer)}
    return shape(answer)


def _field_shape(value: object) -> object:
    """A mapping of ours is keyed by data (user ids): its size and its values' shape only."""
    if isinstance(value, Mapping):
        values = list(value.values())
        return {f"<{len(values)} keys>": shape(values[0])} if values else {}
    return shape(value)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def report(
    video: str, identity: str, steps: Sequence[Step], *, as_json: bool, out: TextIO = sys.stdout
) -> None:
    failed = sum(step.outcome == "fail" for step in steps)
    if as_json:
        document = {
            "video": video,
            "identity": identity,
            "ok": failed == 0,
            "steps": [asdict(step) for step in steps],
        }
        print(json.dumps(document, indent=2), file=out)
        return
    print(
        f"teleconsult provider-check: video {video}, identity {identity}",
        file=out,
    )
    for step in steps:
        took = f"{step.milliseconds:.0f} ms" if step.milliseconds is not None else ""
        answer = json.dumps(step.shape) if step.shape not in (None, "null") else ""
        note = "; ".join(part for part in (answer, step.detail or "") if part)
        print(f"{step.outcome.upper():<8}{took:>8}  {step.name:<36}{note}".rstrip(), file=out)
    print(f"{failed} of {len(steps)} steps failed." if failed else "Every step passed.", file=out)
