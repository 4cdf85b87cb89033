"""Runs Vigil on Ray's local multi-node test cluster, removes the node that runs the camera hosts,
and prints, as JSON, what became of the cameras.

Nodes: the head (no custom resources), ``worker1`` with resources ``site`` and ``only1``, and,
added once both cameras stream, ``worker2`` with ``site`` only. Camera ``mover`` asks for ``site``
(either worker can run it), ``pinned`` for ``only1`` (only worker1). Then worker1 is removed.

    python -m tests.support.node_loss VIDEO REDIS_URL SPOOL_DIR
"""

from __future__ import annotations

import json
import sys
import time

from pipeline.core.config import parse_config
from pipeline.core.messages import CameraState
from pipeline.runtime.driver import Pipeline
from tests.support.cluster import local_cluster

LIVE = {"fps": 5, "mode": "live", "loop": True}


def wait(predicate: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.5)
    return False


def main(video: str, redis_url: str, spool: str) -> None:
    worker1_args = {"num_cpus": 1, "resources": {"site": 1, "only1": 1}}
    with local_cluster({"num_cpus": 1}, worker1_args) as (cluster, (worker1,)):
        cfg = parse_config(
            {
                "cameras": [
                    {"id": "mover", "url": video, **LIVE, "ray_resources": {"site": 0.01}},
                    {"id": "pinned", "url": video, **LIVE, "ray_resources": {"only1": 0.01}},
                ],
                "metrics": {"port": 0},
                "models": {
                    "detector": {"weights": "yolo11n.yaml", "imgsz": 320},
                    "temporal": {"window": 4, "stride": 2},
                },
                "events": {"spool": {"dir": spool}},
            }
        )
        pipeline = Pipeline(cfg, redis_url)
        pipeline.start()

        def states() -> dict[str, tuple[str, str, str]]:
            return {s.camera_id: (s.state.value, s.reason, s.node_id) for s in pipeline.statuses(10.0)}

        try:
            streaming = wait(lambda: all(s[0] == CameraState.STREAMING for s in states().values()), 180)
            before = states()
            worker2 = cluster.add_node(num_cpus=1, resources={"site": 1})
            cluster.wait_for_nodes()
            cluster.remove_node(worker1)
            removed_at = time.monotonic()
            moved = wait(
                lambda: (
                    states().get("mover", ("",))[0] == "streaming"
                    and states()["mover"][2] == worker2.node_id
                    and states().get("pinned", ("",))[0] == "failed"
                ),
                180,
            )
            print(
                json.dumps(
                    {
                        "streaming_before": streaming,
                        "before": before,
                        "after": states(),
                        "moved": moved,
                        "recovery_s": round(time.monotonic() - removed_at, 1),
                        "worker1": worker1.node_id,
                        "worker2": worker2.node_id,
                    }
                )
            )
        finally:
            pipeline.stop()


if __name__ == "__main__":
    main(*sys.argv[1:4])
