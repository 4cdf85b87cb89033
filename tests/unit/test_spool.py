"""The on-disk outbox: order, durability across reopen, bounded with an explicit policy, readable by
another process while its owner holds it."""

from pathlib import Path

import pytest

from pipeline.events.spool import Spool, SpoolFullPolicy


def test_items_come_back_in_order_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "cam.sqlite"
    spool = Spool(path, max_items=100)
    for i in range(5):
        spool.put("object", f"id{i}", "cam", f'{{"n": {i}}}', b"jpg" if i == 2 else None)
    spool.remove_through(spool.peek(2)[-1].seq)
    spool.close()  # like a crash after these writes: nothing but the file remains
    reopened = Spool(path, max_items=100)
    recs = reopened.peek(10)
    assert [r.item_id for r in recs] == ["id2", "id3", "id4"]
    assert recs[0].snapshot_jpeg == b"jpg" and recs[1].snapshot_jpeg is None
    assert len(reopened) == 3


@pytest.mark.parametrize(
    ("policy", "kept"),
    [(SpoolFullPolicy.DROP_OLDEST, ["id2", "id3", "id4"]), (SpoolFullPolicy.DROP_NEWEST, ["id0", "id1", "id2"])],
)
def test_full_spool_follows_its_policy_and_counts(tmp_path: Path, policy: SpoolFullPolicy, kept: list[str]) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_items=3, policy=policy)
    discarded = sum(spool.put("clip", f"id{i}", "cam", "{}") for i in range(5))
    assert discarded == 2
    assert [r.item_id for r in spool.peek(10)] == kept


def test_read_lists_what_waits_without_taking_the_file(tmp_path: Path) -> None:
    """``Spool.read`` shows the pending items of a spool another owner holds open, and of one it closed."""
    path = tmp_path / "cam.sqlite"
    assert Spool.read(path) == []
    assert not path.exists(), "reading must not create an outbox"
    path.touch()  # what an owner that is still opening the file leaves: no table yet
    assert Spool.read(path) == []
    owner = Spool(path, max_items=100)
    assert Spool.read(path) == []
    for i in range(4):
        owner.put("status" if i == 1 else "object", f"id{i}", "cam", "{}", b"jpg" if i == 3 else None)
    owner.remove_through(owner.peek(1)[0].seq)
    assert Spool.read(path) == owner.peek(10)
    assert [(r.kind, r.item_id) for r in Spool.read(path)] == [("status", "id1"), ("object", "id2"), ("object", "id3")]
    owner.put("object", "id4", "cam", "{}")  # the owner keeps writing after a read
    owner.close()
    assert [r.item_id for r in Spool.read(path)] == ["id1", "id2", "id3", "id4"]
    assert Spool.read(path)[2].snapshot_jpeg == b"jpg"
