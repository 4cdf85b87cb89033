"""Reconnect time after RTSP server restarts, and time to notice a frozen (SIGSTOPped) server.

    .venv/bin/python -m benchmarks.reconnect [--restarts 20] [--freezes 5]

Real GStreamer RTSP server (Debian's, via /usr/bin/python3), real OpenCV/FFmpeg decoder with the
default camera settings. Prints the distributions; not a test.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pipeline.core.config import CameraConfig
from pipeline.core.messages import CameraState
from pipeline.ml.synth.dataset import ensure_video
from pipeline.runtime.redis_server import free_port
from tests.support.rtsp import RtspServer
from tests.support.wait import wait_for
from tests.support.watched import Watched


def summary(values: list[float]) -> str:
    qs = statistics.quantiles(values, n=20, method="inclusive")
    return f"min {min(values):.2f}  p50 {statistics.median(values):.2f}  p95 {qs[18]:.2f}  max {max(values):.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--restarts", type=int, default=20)
    parser.add_argument("--freezes", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RtspServer(ensure_video(Path(tmp) / "v.mp4", seed=1, scene="street", seconds=10))
        server.start(port=free_port())
        recover, notice = [], []
        with Watched(CameraConfig(id="cam", url=server.url, fps=10)) as cam:
            wait_for(lambda: cam.frames_since(0) > 5, 20, "first frames")
            for _ in range(args.restarts):
                server.stop()
                wait_for(lambda: cam.state is CameraState.RECONNECTING, 10, "loss")
                server.start()
                t = time.monotonic()
                wait_for(lambda t=t: cam.frames_since(t) > 0, 20, "frames")  # type: ignore[misc]
                recover.append(cam.frame_times[-1] - t)
            for _ in range(args.freezes):
                server.freeze()
                t = time.monotonic()
                wait_for(lambda: cam.state is not CameraState.STREAMING, 20, "freeze noticed")
                notice.append(cam.states[-1][0] - t)
                server.thaw()
                t = time.monotonic()
                wait_for(lambda t=t: cam.frames_since(t) > 5, 30, "frames after thaw")  # type: ignore[misc]
        server.close()
    print(f"restart -> first frame ({len(recover)} restarts): {summary(recover)}")
    print(f"SIGSTOP -> left streaming ({len(notice)} freezes): {summary(notice)}")


if __name__ == "__main__":
    main()
