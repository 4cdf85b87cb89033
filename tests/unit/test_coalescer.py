"""The camera host's call coalescer: frames that wait while a replica is busy leave together."""

from __future__ import annotations

import queue
from concurrent.futures import Future
from typing import Any

import numpy as np
import pytest

from pipeline.runtime.coalescer import Coalescer, actor_sender


class FakeReplica:
    """Stands in for a Ray actor handle: ``analyze_many.remote(items).future()``; the test completes calls."""

    def __init__(self, name: str, calls: queue.Queue[tuple[str, list[Any], Future[list[Any]]]]) -> None:
        self.name, self._calls = name, calls
        self.analyze_many = self

    def remote(self, items: list[Any]) -> FakeReplica._Ref:
        future: Future[list[Any]] = Future()
        self._calls.put((self.name, items, future))
        return FakeReplica._Ref(future)

    class _Ref:
        def __init__(self, future: Future[list[Any]]) -> None:
            self._future = future

        def future(self) -> Future[list[Any]]:
            return self._future


def next_call(calls: queue.Queue[tuple[str, list[Any], Future[list[Any]]]]) -> tuple[str, list[Any], Future[list[Any]]]:
    return calls.get(timeout=5)


def answer(future: Future[list[Any]], items: list[Any]) -> None:
    future.set_result([f"result-{i}" for i in items])


def test_frames_waiting_for_a_busy_replica_leave_together_and_in_order() -> None:
    calls: queue.Queue[tuple[str, list[Any], Future[list[Any]]]] = queue.Queue()
    c = Coalescer((actor_sender(FakeReplica("a", calls), "analyze_many"),), max_frames=8, calls_per_replica=1)
    first = c.submit("f0")
    _, items, busy = next_call(calls)
    assert items == ["f0"]  # an idle replica gets a frame at once
    later = [c.submit(f"f{i}") for i in range(1, 5)]  # the replica is busy: these wait here
    assert calls.empty()
    answer(busy, items)
    assert first.get(5) == "result-f0"
    _, items, future = next_call(calls)
    assert items == ["f1", "f2", "f3", "f4"]  # one call for the four, in submission order
    answer(future, items)
    assert [p.get(5) for p in later] == ["result-f1", "result-f2", "result-f3", "result-f4"]
    c.close()


def test_items_submitted_together_leave_together_even_to_an_idle_replica() -> None:
    """A frame's crops: the first must not leave alone while the others are still being queued."""
    calls: queue.Queue[tuple[str, list[Any], Future[list[Any]]]] = queue.Queue()
    c = Coalescer((actor_sender(FakeReplica("a", calls), "analyze_many"),), max_frames=8)
    slots = c.submit_many(["c0", "c1", "c2"])
    _, items, future = next_call(calls)
    assert items == ["c0", "c1", "c2"]
    answer(future, items)
    assert [s.get(5) for s in slots] == ["result-c0", "result-c1", "result-c2"]
    c.close()


def test_max_frames_caps_a_call_and_idle_replicas_are_used_first() -> None:
    calls: queue.Queue[tuple[str, list[Any], Future[list[Any]]]] = queue.Queue()
    c = Coalescer(tuple(actor_sender(FakeReplica(n, calls), "analyze_many") for n in "ab"), max_frames=2)
    c.submit("f0")
    first = next_call(calls)
    c.submit("f1")
    second = next_call(calls)
    assert {first[0], second[0]} == {"a", "b"}  # both replicas busy with one frame each
    pending = [c.submit(f"f{i}") for i in range(2, 5)]
    answer(first[2], first[1])
    name, items, future = next_call(calls)
    assert (name, items) == (first[0], ["f2", "f3"])  # the freed replica; capped at max_frames
    answer(second[2], second[1])
    name, items, last = next_call(calls)
    assert (name, items) == (second[0], ["f4"])
    answer(future, ["f2", "f3"])
    answer(last, ["f4"])
    assert [p.get(5) for p in pending] == ["result-f2", "result-f3", "result-f4"]
    c.close()


def test_a_failed_call_fails_every_frame_it_carried_and_frees_the_replica() -> None:
    calls: queue.Queue[tuple[str, list[Any], Future[list[Any]]]] = queue.Queue()
    c = Coalescer((actor_sender(FakeReplica("a", calls), "analyze_many"),), max_frames=8)
    c.submit("f0")
    _, _, busy = next_call(calls)
    pending = [c.submit("f1"), c.submit("f2")]
    busy.set_exception(RuntimeError("worker died"))
    _, items, future = next_call(calls)
    future.set_exception(RuntimeError("worker died"))
    for p in pending:
        with pytest.raises(RuntimeError, match="worker died"):
            p.get(5)
    after = c.submit("f3")  # the replica is usable again
    _, items, future = next_call(calls)
    answer(future, items)
    assert after.get(5) == "result-f3"
    c.close()


def test_a_frame_never_sent_times_out() -> None:
    calls: queue.Queue[tuple[str, list[Any], Future[list[Any]]]] = queue.Queue()
    c = Coalescer((actor_sender(FakeReplica("a", calls), "analyze_many"),), max_frames=8)
    c.submit("f0")
    next_call(calls)  # never answered: the replica stays busy
    with pytest.raises(TimeoutError):
        c.submit("f1").get(0.2)
    c.close()


def test_a_call_stays_within_max_bytes_but_always_carries_a_frame() -> None:
    calls: queue.Queue[tuple[str, list[Any], Future[list[Any]]]] = queue.Queue()
    c = Coalescer((actor_sender(FakeReplica("a", calls), "analyze_many"),), max_frames=8, max_bytes=250)
    c.submit(np.zeros(10, np.uint8))
    _, items, busy = next_call(calls)
    big = [c.submit(np.zeros(n, np.uint8)) for n in (100, 100, 100, 400)]
    answer(busy, [0])
    sizes = []
    for _ in range(3):  # 100+100 | 100 | 400 (alone, over the cap: sent anyway)
        _, items, future = next_call(calls)
        sizes.append([len(i) for i in items])
        future.set_result(list(range(len(items))))
    assert sizes == [[100, 100], [100], [400]]
    assert [p.get(5) for p in big] == [0, 1, 0, 0]
    c.close()


def test_a_hung_call_stops_holding_its_replica_after_stale_after_s() -> None:
    calls: queue.Queue[tuple[str, list[Any], Future[list[Any]]]] = queue.Queue()
    c = Coalescer((actor_sender(FakeReplica("a", calls), "analyze_many"),), max_frames=8, stale_after_s=0.3)
    c.submit("f0")
    next_call(calls)  # never answered
    later = c.submit("f1")
    _, items, future = next_call(calls)  # sent once the first call went stale, not held forever
    assert items == ["f1"]
    answer(future, items)
    assert later.get(5) == "result-f1"
    c.close()
