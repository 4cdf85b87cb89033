"""Runs Vigil on Ray's local multi-node test cluster (two raylets on this machine) and prints, as
JSON, which node each camera actor runs on and the driver's merged /metrics text.

    python -m tests.support.multinode VIDEO REDIS_URL SPOOL_DIR
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request

import ray

from pipeline.core.config import parse_config
from pipeline.runtime.driver import Pipeline
from tests.support.cluster import local_cluster


def main(video: str, redis_url: str, spool: str) -> None:
    head = {"num_cpus": 2, "resources": {"site_a": 1}}
    with local_cluster(head, {"num_cpus": 2, "resources": {"site_b": 1}}):
        cfg = parse_config(
            {
                "cameras": [
                    {"id": f"cam{i}", "url": video, "fps": 5, "loop": True, "ray_resources": {site: 0.01}}
                    for i, site in enumerate(("site_a", "site_b"))
                ],
                "metrics": {"port": 0},
                "models": {"temporal": {"window": 4, "stride": 2}},
                "events": {"spool": {"dir": spool}},
            }
        )
        pipeline = Pipeline(cfg, redis_url)
        pipeline.start()
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                statuses = pipeline.statuses()
                if len(statuses) == 2 and all(s.frames_processed >= 5 for s in statuses):
                    break
                time.sleep(0.5)
            body = urllib.request.urlopen(f"http://127.0.0.1:{pipeline.metrics_port}/metrics", timeout=10).read()
            nodes = {s.camera_id: s.node_id for s in statuses}
            print(json.dumps({"nodes": nodes, "cluster_nodes": len(ray.nodes()), "metrics": body.decode()}))
        finally:
            pipeline.stop()


if __name__ == "__main__":
    main(*sys.argv[1:4])
