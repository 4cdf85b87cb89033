"""Ray's local multi-node test cluster for the scripts that run Vigil on several raylets of this
machine (``tests.support.multinode``, ``tests.support.node_loss``), and running such a script."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray
from ray.cluster_utils import Cluster

from pipeline.runtime.driver import offline_env

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def local_cluster(head: dict[str, Any], *workers: dict[str, Any]) -> Iterator[tuple[Cluster, list[Any]]]:
    """A head node (``head``: its ``add_node`` arguments, without a dashboard) and one node per
    ``workers`` entry, with this process connected as Ray's driver; shut down after the block."""
    cluster = Cluster(initialize_head=True, head_node_args={"include_dashboard": False, **head})
    nodes = [cluster.add_node(**worker) for worker in workers]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, runtime_env={"env_vars": offline_env(False)}, logging_level="WARNING")
    try:
        yield cluster, nodes
    finally:
        ray.shutdown()
        cluster.shutdown()


def run_script(module: str, *args: str, timeout_s: float) -> dict[str, Any]:
    """Run ``python -m module args`` from the repository and return the JSON report on its last line
    of output (the test fails, with the end of its stderr, when it exits non-zero)."""
    run = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout_s, cwd=REPO
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return report
