"""The on-disk outbox: order, durability across reopen, bounded with an explicit policy."""

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
