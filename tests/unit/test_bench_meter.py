"""The bench's CPU meter: a sample taken after the window closed (the sampler thread's last one,
racing close_window) must not erase the window's CPU time."""

from __future__ import annotations

import os
import time

from pipeline.bench import TreeMeter


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
