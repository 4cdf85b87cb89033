import threading
import time

import pytest

from workers.batching import Batcher


def run_concurrently(batcher: Batcher[int, int], items: list[int]) -> dict[int, int]:
    results: dict[int, int] = {}
    barrier = threading.Barrier(len(items))

    def call(x: int) -> None:
        barrier.wait()
        results[x] = batcher.submit(x)

    threads = [threading.Thread(target=call, args=(x,)) for x in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_calls_share_batches_and_get_their_own_results() -> None:
    sizes: list[int] = []

    def double(batch: list[int]) -> list[int]:
        sizes.append(len(batch))
        time.sleep(0.02)  # a forward pass: more callers arrive meanwhile
        return [2 * x for x in batch]

    batcher: Batcher[int, int] = Batcher(double, max_batch=4, max_wait_s=0.05)
    results = run_concurrently(batcher, list(range(12)))
    assert results == {x: 2 * x for x in range(12)}
    assert max(sizes) > 1 and max(sizes) <= 4
    assert sum(sizes) == 12


def test_many_items_of_one_call_fill_batches_and_come_back_in_order() -> None:
    sizes: list[int] = []

    def square(batch: list[int]) -> list[int]:
        sizes.append(len(batch))
        return [x * x for x in batch]

    batcher: Batcher[int, int] = Batcher(square, max_batch=4, max_wait_s=0.05)
    assert batcher.submit_many([3, 1, 4, 1, 5, 9]) == [9, 1, 16, 1, 25, 81]
    assert sizes == [4, 2]
    assert batcher.submit_many([]) == []


def test_a_batch_made_by_the_caller_does_not_wait_for_more() -> None:
    # A camera host's coalesced call is a batch already: with a 10 s wait cap, a call made with
    # wait=False still returns at once (its frames alone form the batch).
    sizes: list[int] = []

    def ident(batch: list[int]) -> list[int]:
        sizes.append(len(batch))
        return batch

    batcher: Batcher[int, int] = Batcher(ident, max_batch=8, max_wait_s=10.0)
    t0 = time.monotonic()
    assert batcher.submit_many([1, 2, 3], wait=False) == [1, 2, 3]
    assert time.monotonic() - t0 < 2.0
    assert sizes == [3]


def test_a_lone_call_waits_at_most_max_wait() -> None:
    batcher: Batcher[int, int] = Batcher(lambda b: b, max_batch=8, max_wait_s=0.05)
    t0 = time.monotonic()
    assert batcher.submit(7) == 7
    assert time.monotonic() - t0 < 0.5


def test_errors_reach_every_caller_of_the_batch_and_the_batcher_goes_on() -> None:
    def fail_on_13(batch: list[int]) -> list[int]:
        if 13 in batch:
            raise RuntimeError("model failed")
        return batch

    batcher: Batcher[int, int] = Batcher(fail_on_13, max_batch=1, max_wait_s=0)
    with pytest.raises(RuntimeError, match="model failed"):
        batcher.submit(13)
    assert batcher.submit(5) == 5
