"""`teleconsult migrate` on a MongoDB database (mongomock) holding the original's documents:
the dry run's report, the migration, a second run, an interrupted run, a concurrent write by
the original, a record the original changed after its conversion, the command line."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient
from pymongo.errors import ServerSelectionTimeoutError

from teleconsult.cli import main
from teleconsult.migration import command
from teleconsult.migration.command import summary_text
from teleconsult.migration.runner import Options
from tests.fakes.kaleyra import FakeKaleyra
from tests.helpers import MakeClient, bandyer_env, join
from tests.migration.originals import (
    APPLY,
    DRY,
    FAILED_RECORDS,
    FAILED_SAMPLES,
    FAILED_USERS,
    RECORDS,
    SOON,
    USERS,
    doctor,
    environ,
    ids,
    migrate,
    oid,
    patient,
    seed,
    snapshot,
)


async def test_the_dry_run_counts_by_outcome_and_writes_nothing(
    database: Any, kaleyra: FakeKaleyra, kaleyra_url: str
) -> None:
    await seed(database, kaleyra)
    before = await snapshot(database)
    summary = await migrate(database, kaleyra_url, DRY)
    assert summary.as_json() == {
        "dryRun": True,
        "complete": True,
        "users": {
            "counts": {"would_migrate": 2, **FAILED_USERS},
            "samples": {
                "would_migrate": [str(oid(0x1001)), str(oid(0x1002))],
                "cannot_migrate:malformed_record": [str(oid(0x1003))],
                "cannot_migrate:duplicate_user_map_entry": [str(oid(0x1004))],
            },
        },
        "teleconsultations": {
            "counts": {"would_migrate": 5, **FAILED_RECORDS},
            "samples": {"would_migrate": ids(1, 2, 3, 4, 5), **FAILED_SAMPLES},
        },
        "unmigratedTeleconsultations": 9,
        "indexError": None,
    }
    assert summary.failed
    assert await snapshot(database) == before
    text = summary_text(summary)
    assert text.startswith("teleconsult migrate: dry run, nothing written (--apply to migrate)\n")
    assert f"  cannot_migrate:unknown_groups: 1 (e.g. {oid(7)})" in text
    for secret in ("Joe Smith", "Jane Doe", "doctor-1", "direct-rest-call-handler"):
        assert secret not in text
        assert secret not in str(summary.as_json())


async def test_migration_then_a_second_run_changes_nothing(
    database: Any, kaleyra: FakeKaleyra, kaleyra_url: str
) -> None:
    await seed(database, kaleyra)
    first = await migrate(database, kaleyra_url, APPLY)
    assert first.users.counts == {"migrated": 2, **FAILED_USERS}
    assert first.teleconsultations.counts == {"migrated": 5, **FAILED_RECORDS}
    assert (first.unmigrated, first.index_error, first.complete) == (4, None, True)
    migrated = await database[USERS].find_one({"_id": oid(0x1002)})
    assert (migrated["provider"], migrated["providerUserId"], migrated["receivedUserId"]) == (
        "bandyer",
        "kaleyra-patient-1",
        "patient-1",
    )
    assert migrated["auth0Id"] == "patient-1"
    assert migrated["bandyerId"] == "kaleyra-patient-1"
    after = await snapshot(database)
    second = await migrate(database, kaleyra_url, APPLY)
    assert second.users.counts == {"already_migrated": 2, **FAILED_USERS}
    assert second.teleconsultations.counts == {"already_migrated": 5, **FAILED_RECORDS}
    assert await snapshot(database) == after
    indexes = await database[RECORDS].index_information()
    assert {"startDate", "participant_startDate", "version"} <= set(indexes)


async def test_an_interrupted_run_resumed_ends_as_one_run(
    database: Any, kaleyra: FakeKaleyra, kaleyra_url: str
) -> None:
    await seed(database, kaleyra)
    stopped = await migrate(database, kaleyra_url, Options(apply=True, batch_size=2, limit=6))
    assert not stopped.complete
    assert stopped.teleconsultations.counts == {"migrated": 2}

    writes = 0

    async def crash_after_two(document: Mapping[str, Any]) -> None:
        nonlocal writes
        writes += 1
        if writes > 2:
            raise KeyboardInterrupt  # the operator's ^C, or a killed pod, mid-batch

    with pytest.raises(KeyboardInterrupt):
        await migrate(database, kaleyra_url, APPLY, hook=crash_after_two)
    resumed = await migrate(database, kaleyra_url, APPLY)
    assert resumed.teleconsultations.counts == {
        "already_migrated": 4,
        "migrated": 1,
        **FAILED_RECORDS,
    }
    # The same documents as one uninterrupted run's (but for the time of conversion).
    other: Any = AsyncMongoMockClient(tz_aware=True)["other"]
    await seed(other, FakeKaleyra())
    await migrate(other, kaleyra_url, APPLY)
    assert without_times(await snapshot(database)) == without_times(await snapshot(other))


def without_times(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    stripped = copy.deepcopy(documents)
    for document in stripped:
        document.get("migration", {}).pop("at", None)
    return stripped


async def test_a_write_by_the_original_during_the_run_is_not_lost(
    database: Any, kaleyra: FakeKaleyra, kaleyra_url: str
) -> None:
    await seed(database, kaleyra)
    moved = SOON + timedelta(days=1)

    async def the_original_writes(document: Mapping[str, Any]) -> None:
        if document["_id"] == oid(3) and document["startDate"] != moved:
            # A replica of the original adds the patient and moves the start, between our
            # read and our write.
            await database[RECORDS].update_one(
                {"_id": oid(3)},
                {
                    "$set": {
                        "participants": [doctor(), patient()],
                        "startDate": moved,
                        "endDate": moved + timedelta(hours=1),
                        "updatedAt": datetime.now(UTC),
                    }
                },
            )
        if document["_id"] == oid(5):  # a document the original keeps writing
            later = document["updatedAt"] + timedelta(seconds=1)
            await database[RECORDS].update_one({"_id": oid(5)}, {"$set": {"updatedAt": later}})

    summary = await migrate(database, kaleyra_url, APPLY, hook=the_original_writes)
    assert summary.teleconsultations.counts == {
        "migrated": 4,
        "cannot_migrate:changed_during_run": 1,
        **FAILED_RECORDS,
    }
    assert summary.teleconsultations.samples["cannot_migrate:changed_during_run"] == ids(5)
    third = await database[RECORDS].find_one({"_id": oid(3)})
    assert third["startDate"] == moved
    assert [(p["userExternalId"], p["providerUserId"]) for p in third["participants"]] == [
        ("doctor-1", "kaleyra-doctor-1"),
        ("patient-1", "kaleyra-patient-1"),
    ]
    assert "version" not in await database[RECORDS].find_one({"_id": oid(5)})
    # Once the original stops, the next run converts it.
    again = await migrate(database, kaleyra_url, APPLY)
    assert again.teleconsultations.counts["migrated"] == 1


async def test_a_record_the_original_changed_after_conversion_is_converted_again(
    database: Any, kaleyra: FakeKaleyra, kaleyra_url: str, make_client: MakeClient
) -> None:
    await seed(database, kaleyra)
    await migrate(database, kaleyra_url, APPLY)
    # The original (not stopped yet) adds the last participant its own way.
    await database[RECORDS].update_one(
        {"_id": oid(3)},
        {"$set": {"participants": [doctor(), patient()], "updatedAt": datetime.now(UTC)}},
    )
    client = await make_client(None, **environ(kaleyra_url))
    status, body = await join(client, str(oid(3)), "doctor-1")
    assert (status, body["code"]) == (500, "unreadable_record")
    again = await migrate(database, kaleyra_url, APPLY)
    assert again.teleconsultations.counts["converted_again"] == 1
    assert again.teleconsultations.samples["converted_again"] == ids(3)
    status, body = await join(client, str(oid(3)), "patient-1")
    assert status == 200
    assert body["participantsBandyerCall"] == [
        {"bandyerUserId": "kaleyra-doctor-1", "fullName": "Joe Smith"},
        {"bandyerUserId": "kaleyra-patient-1", "fullName": "Jane Doe"},
    ]


def test_the_command_refuses_sqlite_and_documents_every_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["migrate"], {"STORE_URL": "sqlite:///tmp/x.db"}) == 2
    assert capsys.readouterr().err == (
        "teleconsult: teleconsult migrate applies to the MongoDB store, where the original "
        "service kept its data: set STORE_URL to the original's MongoDB (mongodb://...). "
        "STORE_URL names SQLite, which holds no document of the original: nothing to migrate.\n"
    )
    with pytest.raises(SystemExit):
        main(["migrate", "--help"], {})
    help_text = capsys.readouterr().out
    for option in ("--dry-run", "--apply", "--batch-size N", "--limit N", "--json"):
        assert option in help_text
    assert main(["migrate", "--apply"], {"STORE_URL": "mongodb://127.0.0.1:9/x"}) == 2
    assert capsys.readouterr().err.startswith(
        "teleconsult: configuration error: teleconsult migrate takes over the original's "
        "Kaleyra rooms and users: it needs VIDEO_PROVIDER=bandyer"
    )


def test_a_mongodb_failure_stops_the_command_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As pymongo reports a server it cannot reach (a real one here would leave the driver's
    monitor socket behind at exit)."""

    async def unreachable(*_: object) -> None:
        raise ServerSelectionTimeoutError("127.0.0.1:9: [Errno 111] Connection refused")

    monkeypatch.setattr(command, "_migrate_url", unreachable)
    env = {"STORE_URL": "mongodb://127.0.0.1:9/original", **bandyer_env("http://127.0.0.1:9")}
    assert main(["migrate"], env) == 1
    assert capsys.readouterr().err == (
        "teleconsult: migrate stopped, MongoDB failed: 127.0.0.1:9: Connection refused. "
        "Documents converted so far stay converted; run the command again to go on.\n"
    )
