"""The allocator tuning every Vigil process applies (workers.common.tune_allocator): buffers freed
and allocated again batch after batch stay in the heap instead of costing fresh pages each time."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Six 4 MiB buffers written and freed 50 times, as a batch's tensors are; prints whether the tuning
# took and the page faults the loop cost.
CHURN = """
import json, resource
import numpy as np
from workers.common import tune_allocator
tuned = tune_allocator()
def batch():
    bufs = [np.ones(1 << 19) for _ in range(6)]
    del bufs
batch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    batch()
print(json.dumps({"tuned": tuned, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""

glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc (Linux)")


def churn(**env: str) -> dict[str, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "VIGIL_TUNE_MALLOC"}
    clean["NUMPY_MADVISE_HUGEPAGE"] = "0"  # 4 KiB pages whatever the kernel's THP setting: counts comparable
    out = subprocess.run(
        [sys.executable, "-c", CHURN],
        env={**clean, **env},
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.splitlines()[-1])  # type: ignore[no-any-return]


@glibc
def test_a_tuned_process_reuses_freed_buffers_instead_of_faulting_in_new_pages() -> None:
    tuned, default = churn(), churn(VIGIL_TUNE_MALLOC="0")
    assert tuned["tuned"] and not default["tuned"]
    # 50 batches x 24 MiB: glibc's defaults hand the memory back and fault it in again (~150k
    # faults); tuned, the loop runs on pages it already has.
    assert tuned["faults"] < 1000 < default["faults"]


@pytest.mark.parametrize(
    "env",
    [
        {"VIGIL_TUNE_MALLOC": "0"},
        {"MALLOC_MMAP_THRESHOLD_": "131072"},
        {"MALLOC_TRIM_THRESHOLD_": "1000000"},
        {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1000000"},
        {"MALLOC_ARENA_MAX": "2"},
        {"LD_PRELOAD": "libjemalloc.so.2"},
    ],
)
def test_the_users_own_allocator_settings_are_left_alone(env: dict[str, str]) -> None:
    assert churn(**env)["tuned"] is False
