"""The bench's CPU meter: a sample taken after the window closed (the sampler thread's last one,
racing close_window) must not erase the window's CPU time."""

from __future__ import annotations

import os
import time

from pipeline.bench.meter import TreeMeter


def test_a_late_sample_does_not_erase_the_windows_cpu() -> None:
    meter = TreeMeter(os.getpid())  # the sampler thread is not started: samples are taken by hand
    meter.open_window()
    t0 = time.process_time()
    while time.process_time() - t0 < 0.3:  # burn CPU inside the window
        sum(i * i for i in range(10_000))
    meter.close_window()
    meter._sample()  # what the sampler thread may still do right after close_window
    result = meter.result()
    assert result["cpu_s"] >= 0.2, result


def test_the_window_accounts_for_every_core_of_the_machine() -> None:
    """Where the machine's CPU went while a mode ran: the tree's, others', idle, stolen: one sum."""
    meter = TreeMeter(os.getpid())
    meter.open_window()
    t0 = time.process_time()
    while time.process_time() - t0 < 0.3:
        sum(i * i for i in range(10_000))
    meter.close_window()
    result = meter.result()
    machine = result["machine"]
    cpus = os.cpu_count() or 1
    assert machine["cpus"] == cpus
    # This process burned CPU for the window: the tree's share is what it measured of itself.
    assert machine["tree_cores"] == result["cpu_s"] / result["window_s"] > 0.1, machine
    # Every CPU's time is somewhere: busy (this tree or the rest), idle, or stolen.
    accounted = machine["busy_cores"] + machine["idle_cores"] + machine["steal_cores"]
    assert abs(accounted - cpus) < 0.25 * cpus, machine
    assert machine["busy_cores"] >= machine["tree_cores"] - 0.1, machine  # the machine saw the burn too
