"""The pure rules, one by one."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from yarl import URL

from teleconsult.configuration.settings import Settings
from teleconsult.core import attendance_rules, domain
from teleconsult.core.domain import (
    Level,
    Participant,
    Privilege,
    Privileges,
    ProviderLimits,
    RecordState,
    Room,
    RoomParticipant,
    RoomPolicy,
    RoomSpec,
    Teleconsultation,
)
from teleconsult.errors import ConfigurationError, InvalidRequest, NoPlusUser
from teleconsult.plugin import (
    DeclaredSettings,
    JoinRequest,
    TokenWindow,
    WholeNumber,
    stable_user_id,
)
from teleconsult.providers.outbound import UnsafeSegment, segment_problem, url_path
from teleconsult.store.documents import from_document, is_object_id, new_object_id, to_document

PRIVILEGES = Privileges(
    basic=Privilege(frozenset({"patient"}), frozenset({"chat"})),
    plus=Privilege(frozenset({"doctor"}), frozenset({"chat", "whiteboard"})),
)
LIMITS = ProviderLimits()
START = datetime(2030, 2, 22, 15, 30, tzinfo=UTC)
UNLIMITED = RoomPolicy(unlimited=True, live=True, recording="none", immutable_period=timedelta(0))
LIMITED = RoomPolicy(
    unlimited=False, live=False, recording="manual", immutable_period=timedelta(minutes=10)
)


def participant(external_id: str, level: Level) -> Participant:
    groups = ("doctor",) if level is Level.PLUS else ("patient",)
    return Participant(external_id, groups, f"Name {external_id}", "it", level, f"p-{external_id}")


def record(number: int, *participants: Participant, room: Room | None = None) -> Teleconsultation:
    return Teleconsultation(
        id=new_object_id(),
        participants_number=number,
        participants=participants,
        start_date=START,
        end_date=START + timedelta(hours=1),
        room=room,
        state=RecordState.PUBLIC,
        version=1,
        created_at=START - timedelta(days=1),
        updated_at=START - timedelta(days=1),
        creator_id="creator",
        updater_id="creator",
    )


@pytest.mark.parametrize(
    ("groups", "level"),
    [
        (["doctor"], Level.PLUS),
        (["patient"], Level.BASIC),
        (["patient", "doctor"], Level.PLUS),
        (["visitor", "patient"], Level.BASIC),
        (["visitor"], None),
        ([], None),
    ],
)
def test_the_highest_matching_level_wins(groups: list[str], level: Level | None) -> None:
    assert PRIVILEGES.level_of(groups) == level


def test_a_participant_without_a_level_is_refused_by_name() -> None:
    with pytest.raises(InvalidRequest) as raised:
        domain.level_of_participant(PRIVILEGES, "x", ["visitor"], "participants.data[1]")
    message = (
        "Participant 'x' belongs to none of the configured groups (doctor, patient); "
        "got ['visitor']."
    )
    assert raised.value.message == message
    assert raised.value.details == ({"path": "participants.data[1]", "message": message},)


def test_plus_rule() -> None:
    domain.check_plus_rule([Level.BASIC, Level.PLUS])
    with pytest.raises(NoPlusUser) as raised:
        domain.check_plus_rule([Level.BASIC, Level.BASIC])
    assert raised.value.status == 400
    assert raised.value.message == (
        "At least one participant must belong to a group of the plus privilege level."
    )
    assert raised.value.error is None  # the API adds the documented string, which names the route


@pytest.mark.parametrize(
    ("number", "ids", "message"),
    [
        (2, ["a"], None),
        (25, [], None),
        (1, [], "participants.number must be between 2 and 25 for this video provider; got 1."),
        (2, ["a", "b", "c"], "3 participants were given but participants.number is 2."),
        (3, ["a", "a"], "Participant 'a' appears more than once."),
    ],
)
def test_participant_counts(number: int, ids: list[str], message: str | None) -> None:
    if message is None:
        domain.check_participant_counts(number, ids, LIMITS)
        return
    with pytest.raises(InvalidRequest) as raised:
        domain.check_participant_counts(number, ids, LIMITS)
    assert raised.value.message == message


@pytest.mark.parametrize(
    ("policy", "seconds", "message"),
    [
        (UNLIMITED, 1, None),
        (UNLIMITED, 0, "end_date must be after start_date."),
        (LIMITED, 300, None),
        (LIMITED, 86400, None),
        (LIMITED, 299, "A teleconsultation must last at least 300 seconds; this one lasts 299."),
        (
            LIMITED,
            86401,
            "A teleconsultation may last at most 86400 seconds with this video provider; "
            "this one lasts 86401.",
        ),
    ],
)
def test_schedule(policy: RoomPolicy, seconds: int, message: str | None) -> None:
    end = START + timedelta(seconds=seconds)
    if message is None:
        domain.check_schedule(START, end, START, policy, LIMITS)
        return
    with pytest.raises(InvalidRequest) as raised:
        domain.check_schedule(START, end, START, policy, LIMITS)
    assert raised.value.message == message


def test_lock_window() -> None:
    complete = record(2, participant("d", Level.PLUS), participant("p", Level.BASIC))
    incomplete = record(3, participant("d", Level.PLUS))
    opens = START - timedelta(minutes=10)

    assert domain.lock_time(complete, LIMITED) == opens
    assert not domain.is_locked(complete, LIMITED, opens - timedelta(microseconds=1))
    assert domain.is_locked(complete, LIMITED, opens)
    assert domain.is_locked(complete, UNLIMITED, START)
    assert not domain.is_locked(incomplete, LIMITED, START + timedelta(days=1))
    assert domain.locks_at(complete, LIMITED) == opens
    assert domain.locks_at(incomplete, LIMITED) is None


@pytest.mark.parametrize(
    ("now", "message"),
    [
        (START + timedelta(minutes=59, seconds=59), None),  # started: the call is on
        (
            START + timedelta(hours=1),
            "end_date 2030-02-22T16:30:00.000Z is already past (the service's time is "
            "2030-02-22T16:30:00.000Z): a teleconsultation must end in the future.",
        ),
    ],
)
def test_a_schedule_must_end_in_the_future(now: datetime, message: str | None) -> None:
    end = START + timedelta(hours=1)
    if message is None:
        domain.check_schedule(START, end, now, LIMITED, LIMITS)
        return
    with pytest.raises(InvalidRequest) as raised:
        domain.check_schedule(START, end, now, LIMITED, LIMITS)
    assert (raised.value.message, raised.value.details) == (
        message,
        ({"path": "end_date", "message": message},),
    )


def test_room_spec() -> None:
    complete = record(2, participant("d", Level.PLUS), participant("p", Level.BASIC))

    assert domain.room_spec(record(3, participant("d", Level.PLUS)), PRIVILEGES, LIMITED) is None
    assert domain.room_spec(complete, PRIVILEGES, LIMITED) == RoomSpec(
        participants=(
            RoomParticipant("p-d", is_admin=True, tools=("chat", "whiteboard")),
            RoomParticipant("p-p", is_admin=False, tools=("chat",)),
        ),
        duration_seconds=3600,
        live=False,
        recording="manual",
    )
    assert domain.room_spec(complete, PRIVILEGES, UNLIMITED) == RoomSpec(
        participants=(
            RoomParticipant("p-d", is_admin=True, tools=("chat", "whiteboard")),
            RoomParticipant("p-p", is_admin=False, tools=("chat",)),
        ),
        duration_seconds=None,
        live=True,
        recording="none",
    )


def test_records_survive_the_document_round_trip() -> None:
    members = (participant("d", Level.PLUS), participant("p", Level.BASIC))
    spec = domain.room_spec(record(2, *members), PRIVILEGES, LIMITED)
    assert spec is not None
    room = Room("room-1", spec, {"p-d": "https://link/d", "p-p": "https://link/p"})
    original = record(2, *members, room=room)

    document = to_document(original)

    assert document["_id"] == original.id
    assert document["__STATE__"] == "PUBLIC"
    assert document["teleconsultationState"] == "room_ready"
    assert document["providerRoomId"] == "room-1"
    assert from_document(document) == original
    as_text = {**document, "startDate": "2030-02-22T15:30:00+00:00"}
    assert from_document(as_text).start_date == START


def test_object_ids() -> None:
    ids = {new_object_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{24}", i) for i in ids)
    assert is_object_id(next(iter(ids)))
    assert not is_object_id("0123456789ABCDEF01234567")
    assert not is_object_id("abc")


@pytest.mark.parametrize(
    ("external_id", "kept"),
    [
        ("user.name_1-2", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("auth0|5f8d", False),
        ("mario@example.com", False),
        ("h-" + "0" * 64, False),
        ("h-readable", False),
    ],
)
def test_stable_user_ids_fit_the_provider_alphabet(external_id: str, kept: bool) -> None:
    user_id = stable_user_id(external_id)
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,128}", user_id)
    assert stable_user_id(external_id) == user_id  # derived, so creating a user is idempotent
    if kept:
        assert user_id == external_id
    else:
        assert re.fullmatch(r"h-[0-9a-f]{64}", user_id)
        assert user_id != stable_user_id(external_id + "!")


def test_a_derived_id_always_keeps_enough_of_its_digest() -> None:
    with pytest.raises(ValueError, match="leaves no room for a digest"):
        stable_user_id("a b", prefix="p" * 126)
    assert stable_user_id("a b", prefix="p" * 94) != stable_user_id("c d", prefix="p" * 94)


def test_a_kept_id_never_equals_a_digest() -> None:
    """An id that looks like another's digest must not become that user (issue 12, defect 2)."""
    victim = stable_user_id("doctor 1")
    assert victim.startswith("h-")
    assert stable_user_id(victim) != victim
    assert stable_user_id(victim, prefix="tc-") != stable_user_id("doctor 1", prefix="tc-")


DOTS = "'.' and '..' (in any spelling) would be dropped from a URL path"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "an empty value names nothing in a URL path"),
        (".", DOTS),
        ("..", DOTS),
        ("%2e", DOTS),
        ("%2E%2e", DOTS),
        (".%2E", DOTS),
        ("%252e%252e", DOTS),  # a server that decodes twice
        ("\u2025", DOTS),  # TWO DOT LEADER, ".." under NFKC
        ("\uff0e", DOTS),  # FULLWIDTH FULL STOP
        ("...", None),
        (".a", None),
        ("a..b", None),
        ("a/b", None),
        ("a%2F..", None),
        ("%", None),
        ("%zz", None),
    ],
)
def test_a_path_segment_is_never_a_dot_segment(value: str, problem: str | None) -> None:
    assert segment_problem(value) == problem


SAMPLE = [chr(code) for code in range(0x20, 0x300)] + ["\u2024", "\u3002", "\ufe52"]
"""Every ASCII and Latin character, and dots of other scripts."""


@pytest.mark.parametrize("suffix", ["", ".", "%2e", "/"])
def test_every_accepted_value_travels_as_one_whole_segment(suffix: str) -> None:
    """Whatever `url_path` accepts survives yarl's normalisation unchanged, as one segment."""
    for character in SAMPLE:
        value = character + suffix
        if segment_problem(value) is not None:
            continue
        path = url_path("/users/{id}/roles", id=value)
        sent = URL("http://auth.test" + path, encoded=True)
        assert sent.raw_path == path
        assert sent.parts[1:] == ("users", value, "roles")
        assert URL("http://auth.test" + path).parts[1:] == ("users", value, "roles")


def test_url_path_refuses_before_it_builds() -> None:
    with pytest.raises(UnsafeSegment) as raised:
        url_path("/v2/rooms/{room_id}", room_id="..")
    assert (raised.value.name, str(raised.value)) == (
        "room_id",
        f"room_id cannot be sent in a URL path: {DOTS}",
    )
    assert url_path("/v2/rooms/{room_id}", room_id="a b/c?d#e%") == "/v2/rooms/a%20b%2Fc%3Fd%23e%25"


OPENS = datetime(2030, 2, 22, 15, 0, tzinfo=UTC)
JOIN = JoinRequest(
    teleconsultation_id="t",
    provider_room_id="r",
    participant=RoomParticipant("u", False, ()),
    display_name="Jane",
    stored_link=None,
    language=None,
    background=False,
    opens_at=OPENS,
    starts_at=OPENS + timedelta(minutes=30),
    ends_at=OPENS + timedelta(minutes=90),
    limited=True,
)


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:3000"),
        ("0.0.0.0", "http://127.0.0.1:3000"),  # noqa: S104 - a wildcard is no address to open
        ("::", "http://127.0.0.1:3000"),
        ("::1", "http://[::1]:3000"),
        ("teleconsult.local", "http://teleconsult.local:3000"),
    ],
)
def test_the_server_url_is_an_address_a_browser_can_open(host: str, url: str) -> None:
    assert Settings.from_environ({"HTTP_HOST": host}).http.own_url == url


def test_a_join_window_runs_from_the_lock_to_the_end_plus_grace() -> None:
    grace, lifetime = timedelta(minutes=15), timedelta(hours=24)
    assert JOIN.window(grace, lifetime) == (OPENS, OPENS + timedelta(minutes=105))
    unlimited = replace(JOIN, limited=False)
    assert unlimited.window(grace, lifetime) == (OPENS, OPENS + timedelta(hours=24, minutes=30))


def test_a_token_window_is_whole_seconds_inside_the_join_window() -> None:
    window = TokenWindow(grace=timedelta(minutes=15), max_lifetime=timedelta(hours=24))
    opens = int(OPENS.timestamp())
    assert window.claims(JOIN) == (opens, opens + 105 * 60)

    fractional = replace(
        JOIN, opens_at=OPENS + timedelta(milliseconds=1), ends_at=OPENS + timedelta(seconds=1.9)
    )
    assert window.claims(fractional) == (opens + 1, opens + 15 * 60 + 1)  # never wider
    ended = replace(JOIN, ends_at=OPENS - timedelta(hours=1))
    assert window.claims(ended) == (opens, opens)  # a window in the past opens nothing


def test_a_token_window_is_read_from_the_providers_variables() -> None:
    class XSettings(DeclaredSettings):
        grace_ms: WholeNumber = TokenWindow.grace_setting("X", "x")
        lifetime_ms: WholeNumber = TokenWindow.lifetime_setting("X", "x")

    read = XSettings.from_environ({})
    assert TokenWindow.of(read.grace_ms, read.lifetime_ms) == TokenWindow(
        timedelta(minutes=15), timedelta(hours=24)
    )
    with pytest.raises(ConfigurationError) as raised:
        XSettings.from_environ({"X_MAX_LIFETIME_MS": "10"})
    assert (
        str(raised.value)
        == "X_MAX_LIFETIME_MS must be at least 60000 and at most 604800000; got 10."
    )


@pytest.mark.parametrize(
    ("users", "duration", "why"),
    [
        ((("a", True), ("b", False)), 600, None),
        ((("a", True), ("b", False)), None, None),
        ((("a", True),), None, "a room needs 2 to 25 participants, not 1"),
        ((("a", False), ("b", False)), None, "a room needs at least one admin"),
        ((("a", True), ("b", False)), 59, "duration 59s is out of bounds"),
    ],
)
def test_the_rooms_a_provider_refuses(
    users: tuple[tuple[str, bool], ...], duration: int | None, why: str | None
) -> None:
    spec = RoomSpec(
        participants=tuple(RoomParticipant(user, admin, ()) for user, admin in users),
        duration_seconds=duration,
        live=True,
        recording="none",
    )
    assert LIMITS.refusal(spec) == why


def test_a_change_names_the_fields_it_changed_never_their_values() -> None:
    before = record(3, participant("d", Level.PLUS), participant("p", Level.BASIC))
    later = START + timedelta(minutes=30)
    assert domain.changed_fields(before, replace(before, version=2)) == []
    assert domain.changed_fields(
        before, replace(before, participants_number=2, start_date=later)
    ) == ["participants.number", "start_date"]
    assert domain.changed_fields(
        before,
        replace(before, participants=(participant("d", Level.PLUS),), end_date=later),
    ) == ["participants", "end_date"]


# -- attendance: provider events -----------------------------------------------------------------


def _attending() -> domain.Teleconsultation:
    room = domain.Room("room-1", domain.RoomSpec((), None, True, "none"), {})
    doctor, patient = participant("doctor-1", Level.PLUS), participant("patient-1", Level.BASIC)
    return record(2, doctor, patient, room=room)


def test_a_join_is_recorded_once_and_a_leave_closes_it() -> None:
    t = _attending()
    at = t.start_date
    joined = attendance_rules.attend(t, attendance_rules.JOINED, "p-doctor-1", at)
    assert joined == domain.Attendance(presences=(domain.Presence("p-doctor-1", at),))
    t = replace(t, attendance=joined)
    assert (
        attendance_rules.attend(t, attendance_rules.JOINED, "p-doctor-1", at + timedelta(seconds=1))
        is None
    )
    assert (
        attendance_rules.attend(t, attendance_rules.LEFT, "p-patient-1", at) is None
    )  # never joined
    assert attendance_rules.attend(t, attendance_rules.JOINED, "stranger", at) is None
    left = attendance_rules.attend(
        t, attendance_rules.LEFT, "p-doctor-1", at - timedelta(seconds=1)
    )
    assert left == domain.Attendance(presences=(domain.Presence("p-doctor-1", at, at),))


def test_the_end_of_the_call_closes_every_stay_and_comes_once() -> None:
    t = _attending()
    at = t.start_date
    t = replace(t, attendance=domain.Attendance(presences=(domain.Presence("p-doctor-1", at),)))
    ended = attendance_rules.attend(t, attendance_rules.CALL_ENDED, None, at + timedelta(minutes=5))
    assert ended == domain.Attendance(
        call_ended_at=at + timedelta(minutes=5),
        presences=(domain.Presence("p-doctor-1", at, at + timedelta(minutes=5)),),
    )
    assert (
        attendance_rules.attend(replace(t, attendance=ended), attendance_rules.CALL_ENDED, None, at)
        is None
    )


def test_a_flapping_connection_cannot_grow_the_record_without_bound() -> None:
    t = _attending()
    at = t.start_date
    stays = tuple(
        domain.Presence("p-doctor-1", at, at) for _ in range(attendance_rules.MAX_PRESENCES)
    )
    t = replace(t, attendance=domain.Attendance(presences=stays))
    assert attendance_rules.attend(t, attendance_rules.JOINED, "p-doctor-1", at) is None


def test_no_show_lists_who_did_not_join_by_the_deadline() -> None:
    t = _attending()
    after = timedelta(minutes=10)
    deadline = t.start_date + after
    assert attendance_rules.no_show(t, after) == (deadline, t.participants)
    late = domain.Attendance(
        presences=(
            domain.Presence("p-doctor-1", t.start_date),
            domain.Presence("p-patient-1", deadline + timedelta(seconds=1)),
        )
    )
    assert attendance_rules.no_show(replace(t, attendance=late), after) == (
        deadline,
        t.participants[1:],
    )
    on_time = domain.Attendance(
        presences=tuple(domain.Presence(p.provider_user_id, deadline) for p in t.participants)
    )
    assert attendance_rules.no_show(replace(t, attendance=on_time), after) is None
    assert attendance_rules.no_show(replace(t, room=None), after) is None
