"""Camera hosts claim cores of their own (workers.common.claim_cores): no two processes of a
machine get the same core, and a core comes free when its holder exits."""

import os
import subprocess
import sys
from pathlib import Path

from workers import common
from workers.common import claim_cores


def release_all() -> None:
    for fd in common._CLAIMED:
        os.close(fd)
    common._CLAIMED.clear()


def test_claims_are_disjoint_groups_until_the_cores_run_out(tmp_path: Path) -> None:
    try:
        assert claim_cores(2, tmp_path, [0, 1, 2, 3, 4]) == (0, 1)
        assert claim_cores(2, tmp_path, [0, 1, 2, 3, 4]) == (2, 3)
        assert claim_cores(2, tmp_path, [0, 1, 2, 3, 4]) is None  # one core left: not a group of two
        assert claim_cores(1, tmp_path, [0, 1, 2, 3, 4]) == (4,)
        assert claim_cores(6, tmp_path, [0, 1, 2, 3, 4]) is None  # more than there are: no wait either
    finally:
        release_all()
    assert claim_cores(1, tmp_path, [0, 1]) == (0,)  # released: free again
    release_all()


def test_a_core_held_by_another_process_is_skipped_and_freed_when_it_exits(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from workers.common import claim_cores; "
            f"print(claim_cores(1, Path({str(tmp_path)!r}), [0, 1]), flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "(0,)"
        assert claim_cores(1, tmp_path, [0, 1]) == (1,)
        release_all()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert claim_cores(1, tmp_path, [0, 1]) == (0,)  # the holder exited: its core is free
    release_all()


def test_pinning_covers_the_process_threads() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    script = (
        "import os, threading; from workers.common import pin_process; "
        "t = threading.Thread(target=threading.Event().wait, daemon=True); t.start(); "
        f"pin_process(({allowed[0]},)); "
        "print(sorted({c for tid in os.listdir('/proc/self/task') for c in os.sched_getaffinity(int(tid))}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    assert out.strip() == str([allowed[0]])


def test_hosts_needed_counts_each_placement_group_apart() -> None:
    from pipeline.core.config import CameraConfig
    from pipeline.runtime.hosts import hosts_needed

    plain = [CameraConfig(id=f"c{i}", url=f"/v{i}.mp4") for i in range(5)]
    assert hosts_needed(plain, 2) == 3
    assert hosts_needed(plain, 8) == 1
    gpu = [CameraConfig(id="g", url="/g.mp4", ray_resources={"gpu_node": 1})]
    assert hosts_needed(plain + gpu, 8) == 2  # cameras that need other resources get hosts of their own
    assert hosts_needed([], 4) == 0


def test_a_lock_directory_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    """Another user could plant a link where the locks go; the host then runs unpinned instead of
    opening files through it."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "locks").symlink_to(tmp_path / "elsewhere")
    assert claim_cores(1, tmp_path / "locks", [0, 1]) is None
    assert list((tmp_path / "elsewhere").iterdir()) == []
