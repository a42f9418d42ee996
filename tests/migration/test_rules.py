"""The conversion rules of `teleconsult migrate`, one document at a time (no database)."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from teleconsult.configuration.service_config import load_config
from teleconsult.core.domain import TOOLS, Phase, RoomPolicy
from teleconsult.migration.command import BarOnTerminal, print_summary, summary_text
from teleconsult.migration.rules import (
    CannotMigrate,
    Reason,
    Status,
    convert_record,
    convert_user,
    identity_entries,
    read_record,
    record_status,
)
from teleconsult.migration.runner import Summary, Tally
from teleconsult.providers.protocols import Identity
from teleconsult.store.documents import from_document
from tests.migration.originals import (
    CREATED,
    LATER,
    NOW,
    STATES,
    doctor,
    link,
    patient,
    record,
    user,
    with_room,
)

PRIVILEGES = load_config(None).privileges
POLICY = RoomPolicy(unlimited=True, live=True, recording="none", immutable_period=timedelta(0))


def converted(document: dict[str, Any], user_map: dict[str, str] | None = None) -> dict[str, Any]:
    """The document after conversion in static mode (groups and names as stored)."""
    original = read_record(document, NOW)
    identities = [
        Identity(e.external_id, e.groups or (), e.full_name or "")
        for e in identity_entries(original, resolves_bare_ids=False)
    ]
    conversion = convert_record(
        document, original, identities, user_map or {}, (PRIVILEGES, POLICY), NOW
    )
    return {**document, **conversion.fields}


def refusal(document: dict[str, Any], user_map: dict[str, str] | None = None) -> tuple[str, str]:
    with pytest.raises(CannotMigrate) as refused:
        converted(document, user_map)
    return refused.value.reason.value, refused.value.detail


def test_a_room_of_the_original_keeps_its_id_users_and_links() -> None:
    document = record(1, bandyerRoomId="room_k1", participants=with_room(doctor(), patient()))
    result = converted(document)
    assert result["_id"] == document["_id"]
    assert result["providerRoomId"] == "room_k1"
    assert result["bandyerRoomId"] == "room_k1"  # the original's field stays
    assert result["version"] == 1
    assert result["teleconsultationState"] == Phase.ROOM_READY.value
    assert result["participants"] == [
        {
            **with_room(doctor(), patient())[0],
            "level": "plus",
            "providerUserId": "kaleyra-doctor-1",
        },
        {
            **with_room(doctor(), patient())[1],
            "level": "basic",
            "providerUserId": "kaleyra-patient-1",
        },
    ]
    assert result["room"] == {
        "participants": [
            {"providerUserId": "kaleyra-doctor-1", "isAdmin": True, "tools": list(TOOLS)},
            {"providerUserId": "kaleyra-patient-1", "isAdmin": False, "tools": list(TOOLS)},
        ],
        "durationInSeconds": None,
        "live": True,
        "recording": "none",
        "links": {"kaleyra-doctor-1": link("c-0"), "kaleyra-patient-1": link("c-1")},
    }
    assert result["migration"] == {
        "at": NOW,
        "version": 1,
        "sourceUpdatedAt": document["updatedAt"],
        "original": {"teleconsultationState": "created"},  # the entries only gained keys
    }
    # Readable by the service, with the metadata and schedule unchanged.
    teleconsultation = from_document({**result, "_id": str(result["_id"])})
    assert (teleconsultation.created_at, teleconsultation.updated_at) == (
        CREATED,
        document["updatedAt"],
    )
    assert (teleconsultation.start_date, teleconsultation.end_date) == (
        LATER,
        LATER + timedelta(hours=1),
    )


@pytest.mark.parametrize("state", STATES)
def test_any_state_of_the_original_is_accepted_and_kept(state: str | None) -> None:
    document = record(2, participants=[doctor()], teleconsultationState=state)
    if state is None:
        del document["teleconsultationState"]
    result = converted(document, {"doctor-1": "kaleyra-doctor-1"})
    assert result["teleconsultationState"] == Phase.WAITING_FOR_PARTICIPANTS.value
    original = result["migration"]["original"]
    if state is None or state == Phase.WAITING_FOR_PARTICIPANTS.value:  # missing, or the same
        assert "teleconsultationState" not in original
    else:
        assert original["teleconsultationState"] == state


def test_a_trashed_record_is_cancelled() -> None:
    document = record(3, __STATE__="TRASH", bandyerRoomId="r", participants=with_room(doctor()))
    document["participantsNumber"] = 1
    assert converted(document)["teleconsultationState"] == Phase.CANCELLED.value


def test_missing_optional_fields_take_their_defaults() -> None:
    document = record(4, participants=[doctor()])
    for name in ("creatorId", "updaterId", "teleconsultationState", "endDate", "updatedAt"):
        del document[name]
    document["participants"][0].pop("language")
    document["duration"] = 1800  # early versions: a duration instead of an end
    result = converted(document, {"doctor-1": "kaleyra-doctor-1"})
    assert (result["creatorId"], result["updaterId"]) == ("public", "public")
    assert result["endDate"] == LATER + timedelta(seconds=1800)
    assert result["participants"][0]["language"] is None
    assert result["updatedAt"] == NOW == result["migration"]["sourceUpdatedAt"]


def test_the_alias_group_the_request_form_and_both_levels() -> None:
    both = {**patient(), "userExternalId": "chief", "groups": ["patient", "doctor"]}
    alias = {**patient(), "group": "patient"}
    del alias["groups"]
    document = record(5, participants={"number": 3, "data": [both, alias]})
    document.pop("participantsNumber")
    result = converted(document, {"chief": "k-chief", "patient-1": "k-patient"})
    assert [(p["level"], p["groups"]) for p in result["participants"]] == [
        ("plus", ["patient", "doctor"]),
        ("basic", ["patient"]),
    ]
    assert result["participantsNumber"] == 3
    assert result["migration"]["original"]["participants"] == {"number": 3, "data": [both, alias]}


def test_the_user_map_gives_a_participant_without_a_stored_kaleyra_user_its_user() -> None:
    document = record(6, participants=[doctor()])
    result = converted(document, {"doctor-1": "kaleyra-known"})
    assert result["participants"][0]["providerUserId"] == "kaleyra-known"


def test_iso_strings_with_an_offset_are_dates() -> None:
    document = record(7, participants=[doctor()])
    document["startDate"], document["endDate"] = "2030-02-22T15:30:00Z", "2030-02-22T16:30:00+00:00"
    document["createdAt"] = "2030-02-01T09:00:00.000Z"
    result = converted(document, {"doctor-1": "k"})
    assert (result["startDate"], result["createdAt"]) == (LATER, CREATED)
    assert result["migration"]["original"] == {
        "teleconsultationState": "created",
        "startDate": "2030-02-22T15:30:00Z",
        "endDate": "2030-02-22T16:30:00+00:00",
        "createdAt": "2030-02-01T09:00:00.000Z",
    }


def test_participants_whose_values_conversion_replaces_are_kept_as_they_were() -> None:
    """Groups the identity provider gives differ from those stored: the original's entries
    are kept under migration.original, for a rollback."""
    document = record(11, participants=[doctor()])
    original = read_record(document, NOW)
    identities = [Identity("doctor-1", ("doctor", "admin"), "Joe Smith")]
    conversion = convert_record(
        document, original, identities, {"doctor-1": "k"}, (PRIVILEGES, POLICY), NOW
    )
    assert conversion.fields["participants"][0]["groups"] == ["doctor", "admin"]
    assert conversion.fields["migration"]["original"]["participants"] == [doctor()]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"participantsNumber": None}, ("malformed_record", "participantsNumber is not a positive number")),
        ({"participants": "doctor-1"}, ("malformed_record", "participants is not a list of objects")),
        ({"participants": [{"fullName": "X"}]}, ("malformed_record", "participants[0].userExternalId is missing")),
        ({"participants": [doctor(), doctor()]}, ("malformed_record", "participants repeat a userExternalId or exceed their number")),
        ({"participants": [doctor(groups="doctor")]}, ("malformed_record", "participants[0].groups is not a list of strings")),
        ({"__STATE__": "DRAFT"}, ("malformed_record", "__STATE__ is neither PUBLIC nor TRASH")),
        ({"startDate": "tomorrow"}, ("malformed_dates", "startDate and endDate must be dates, endDate after startDate")),
        ({"startDate": "2030-02-22T15:30:00"}, ("malformed_dates", "startDate and endDate must be dates, endDate after startDate")),
        ({"endDate": LATER}, ("malformed_dates", "startDate and endDate must be dates, endDate after startDate")),
        ({"participants": [doctor(groups=["nurse"])]}, ("unknown_groups", "participants[0]: no group of a privilege level")),
        ({"participants": [patient()]}, ("missing_user_map_entry", "participants[0]: no Kaleyra user")),
        ({"bandyerRoomId": "r", "participants": [doctor(userBandyerId="k"), patient(userBandyerId="p")]}, ("room_without_links", "bandyerRoomId is set but not every expected participant has an accessLinkURL")),
        ({"bandyerRoomId": "r", "participants": with_room(doctor())}, ("room_without_links", "bandyerRoomId is set but not every expected participant has an accessLinkURL")),
    ],
)  # fmt: skip
def test_what_cannot_be_converted_says_why_without_names(
    change: dict[str, Any], expected: tuple[str, str]
) -> None:
    document = record(8, **{"participants": [doctor()], **change})
    assert refusal(document, {"doctor-1": "k"}) == expected


def test_a_document_converted_then_written_by_the_original_is_converted_again() -> None:
    document = record(9, participants=[doctor()])
    assert record_status(document) is Status.ORIGINAL
    first = converted(document, {"doctor-1": "k"})
    assert record_status(first) is Status.MIGRATED
    # The original writes as it does: its fields, a new updatedAt; our fields untouched.
    written = {
        **first,
        "participants": [doctor(), patient(userBandyerId="kp")],
        "updatedAt": first["updatedAt"] + timedelta(seconds=5),
    }
    assert record_status(written) is Status.CHANGED_BY_ORIGINAL
    second = converted(written, {"doctor-1": "k"})
    assert second["version"] == 2
    assert [p["providerUserId"] for p in second["participants"]] == ["k", "kp"]
    # The original's state is still the one it wrote, not ours.
    assert second["migration"]["original"]["teleconsultationState"] == "created"
    assert record_status(second) is Status.MIGRATED
    # Teleconsult's own write moves the version: never taken for the original's.
    ours = {**second, "version": 3, "updatedAt": datetime(2030, 3, 1, tzinfo=UTC)}
    assert record_status(ours) is Status.MIGRATED


def test_user_map_entries_get_the_provider_and_its_user() -> None:
    assert convert_user(user(1, "doctor-1", "kaleyra-doctor")) == {
        "provider": "bandyer",
        "providerUserId": "kaleyra-doctor",
        "receivedUserId": "doctor-1",
    }
    early = convert_user(user(2, "auth0|p", "kaleyra-p", field="auth0Id"))
    assert early["receivedUserId"] == "auth0|p"
    broken = user(3, "x", "")
    with pytest.raises(CannotMigrate) as refused:
        convert_user(broken)
    assert refused.value.reason is Reason.MALFORMED_RECORD


def test_with_an_identity_provider_only_ids_are_asked_for() -> None:
    original = read_record(record(10, participants=[doctor()]), NOW)
    [entry] = identity_entries(original, resolves_bare_ids=True)
    assert (entry.external_id, entry.groups, entry.full_name, entry.language) == (
        "doctor-1",
        None,
        None,
        "it",
    )
    [stored] = identity_entries(original, resolves_bare_ids=False)
    assert (stored.groups, stored.full_name) == (("doctor",), "Joe Smith")


def test_the_progress_bar_shows_counts_and_rate() -> None:
    stream = io.StringIO()
    bar = BarOnTerminal(stream)
    tally = Tally()
    tally.add("migrated", "a", 5)
    tally.add("cannot_migrate:unknown_groups", "b", 5)
    bar.advance("teleconsultations", 2, 4, tally)
    bar.advance("teleconsultations", 4, 4, tally)
    first, second = stream.getvalue().split("\r")[1:]
    assert re.fullmatch(
        r"teleconsultations    \[#{12}\.{12}\] 2/4 cannot_migrate:unknown_groups 1, migrated 1 "
        r"\d+/s",
        first,
    )
    assert second.startswith("teleconsultations    [########################] 4/4 ")
    assert second.endswith("/s\n")


def test_the_json_summary_is_one_document_and_the_text_names_each_outcome() -> None:
    summary = Summary(apply=True, unmigrated=1)
    summary.users.add("migrated", "u1", 5)
    summary.teleconsultations.add("cannot_migrate:malformed_dates", "t1", 5)
    stream = io.StringIO()
    print_summary(summary, True, stream)
    assert json.loads(stream.getvalue()) == {
        "dryRun": False,
        "complete": True,
        "users": {"counts": {"migrated": 1}, "samples": {"migrated": ["u1"]}},
        "teleconsultations": {
            "counts": {"cannot_migrate:malformed_dates": 1},
            "samples": {"cannot_migrate:malformed_dates": ["t1"]},
        },
        "unmigratedTeleconsultations": 1,
        "indexError": None,
    }
    assert summary.failed
    assert summary_text(summary) == (
        "teleconsult migrate: applied\n"
        "user map: 1 document(s)\n"
        "  migrated: 1 (e.g. u1)\n"
        "teleconsultations: 1 document(s)\n"
        "  cannot_migrate:malformed_dates: 1 (e.g. t1)\n"
        "teleconsultations not in teleconsult's form: 1"
    )
