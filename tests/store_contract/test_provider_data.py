"""What providers keep: documents with compare-and-set and expiry, mailboxes, the purge."""

from __future__ import annotations

from datetime import timedelta

import pytest

from teleconsult.errors import VersionConflict
from teleconsult.store.provider_data import DocumentWrite
from tests.store_contract.helpers import NOW, Opener

LATER = NOW + timedelta(minutes=5)


async def test_documents_are_written_with_compare_and_set(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()  # two replicas
    data_a, data_b = first.provider_data, second.provider_data
    assert await data_a.put_document(DocumentWrite("webrtc", "room:1", {"n": 1}, None, None)) == 1
    with pytest.raises(VersionConflict):
        await data_b.put_document(DocumentWrite("webrtc", "room:1", {"n": 9}, None, None))  # exists
    assert await data_b.put_document(DocumentWrite("webrtc", "room:1", {"n": 2}, 1, None)) == 2
    with pytest.raises(VersionConflict):
        # Lost the race: version 1 is no longer the stored one.
        await data_a.put_document(DocumentWrite("webrtc", "room:1", {"n": 3}, 1, None))
    stored = await data_a.get_document("webrtc", "room:1", NOW)
    assert stored is not None
    assert (stored.key, stored.version, stored.document) == ("room:1", 2, {"n": 2})
    assert await data_a.get_document("other", "room:1", NOW) is None  # namespaces apart

    await data_a.delete_document("webrtc", "room:1")
    assert await data_b.get_document("webrtc", "room:1", NOW) is None


async def test_documents_expire_and_are_found_by_prefix(open_store: Opener) -> None:
    data = (await open_store()).provider_data
    await data.put_document(DocumentWrite("webrtc", "peer:r1:b", {"p": "b"}, None, LATER))
    await data.put_document(
        DocumentWrite("webrtc", "peer:r1:a", {"p": "a"}, None, NOW + timedelta(minutes=1))
    )
    await data.put_document(DocumentWrite("webrtc", "peer:r2:c", {"p": "c"}, None, None))
    found = await data.find_documents("webrtc", "peer:r1:", NOW)
    assert [d.key for d in found] == ["peer:r1:a", "peer:r1:b"]
    found = await data.find_documents("webrtc", "peer:r1:", NOW + timedelta(minutes=2))
    assert [d.key for d in found] == ["peer:r1:b"]  # a expired
    assert await data.get_document("webrtc", "peer:r1:a", NOW + timedelta(minutes=2)) is None
    assert await data.find_documents("webrtc", "peer:%", NOW) == []  # a prefix, not a pattern


async def test_mailboxes_deliver_each_message_once_in_order(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    for n in range(5):
        await first.provider_data.post("webrtc", "peer-b", {"n": n}, LATER)
    await first.provider_data.post("webrtc", "peer-c", {"n": 99}, LATER)
    assert await second.provider_data.take("webrtc", "peer-b", NOW) == [{"n": n} for n in range(5)]
    assert await second.provider_data.take("webrtc", "peer-b", NOW) == []
    assert await first.provider_data.take("webrtc", "peer-c", LATER) == []  # expired


async def test_a_replica_takes_all_its_mailboxes_at_once(open_store: Opener) -> None:
    """Every recipient named, in one take: each message once, in order, with its recipient,
    whatever the names (a page resumed on another replica keeps its id); the other
    mailboxes are left alone."""
    first, second = await open_store(), await open_store()
    await first.provider_data.post("webrtc", "r1.a", {"n": 1}, LATER)
    await first.provider_data.post("webrtc", "r2.a", {"n": 2}, LATER)
    await second.provider_data.post("webrtc", "r2.b", {"n": 3}, LATER)
    await second.provider_data.post("webrtc", "r1.a", {"n": 4}, LATER)
    await second.provider_data.post("webrtc", "r1.b", {"n": 5}, LATER)  # not named
    await second.provider_data.post("other", "r1.a", {"n": 6}, LATER)  # another namespace

    taken = await second.provider_data.take_for("webrtc", ["r1.a", "r2.b"], NOW)

    assert taken == [("r1.a", {"n": 1}), ("r2.b", {"n": 3}), ("r1.a", {"n": 4})]
    assert await first.provider_data.take_for("webrtc", ["r1.a", "r2.b"], NOW) == []
    assert await first.provider_data.take_for("webrtc", ["r2.a"], NOW) == [("r2.a", {"n": 2})]
    assert await first.provider_data.take_for("webrtc", [], NOW) == []
    assert await first.provider_data.take("webrtc", "r1.b", NOW) == [{"n": 5}]
    await first.provider_data.post("webrtc", "r1.c", {"n": 7}, NOW + timedelta(seconds=1))
    assert await first.provider_data.take_for("webrtc", ["r1.c"], LATER) == []  # expired


async def test_expired_entries_are_purged(open_store: Opener) -> None:
    data = (await open_store()).provider_data
    await data.put_document(DocumentWrite("webrtc", "old", {}, None, NOW + timedelta(seconds=1)))
    await data.put_document(DocumentWrite("webrtc", "kept", {}, None, None))
    await data.post("webrtc", "peer", {}, NOW + timedelta(seconds=1))
    assert await data.purge_expired(LATER, 10) == 2
    assert await data.purge_expired(LATER, 10) == 0
    assert await data.get_document("webrtc", "kept", LATER) is not None
