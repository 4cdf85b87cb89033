"""``vigil bench --no-ray`` (the ``workers`` mode): Vigil's batched Detector/Classifier workers,
decoder and tracker in-process, without Ray or Redis, where Ray cannot be installed."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pipeline.bench.spec import ModeSpec, bench_cameras
from pipeline.bench.threads import Recorder, run_threads


def run_workers(spec: ModeSpec) -> dict[str, Any]:
    """Each camera: Vigil's decoder (file mode) -> the shared batched Detector and Classifier
    (called concurrently, as the camera actor does; no Classifier with ``models.classifier: null``)
    -> its own tracker. No clip head, no events."""
    from workers.classifier import Classifier
    from workers.decoder import FrameSource
    from workers.detector import Detector
    from workers.tracking import Tracker

    threads = spec.cfg.ray.detector.torch_threads
    cls_cfg = spec.cfg.models.classifier
    det = Detector(spec.cfg.models.detector, threads)
    cls = Classifier(cls_cfg, threads) if cls_cfg is not None else None
    cams = bench_cameras(spec)

    def camera(i: int, rec: Recorder, stop: threading.Event) -> None:
        source = FrameSource(cams[i], lambda state, reason: None, lambda reason: None)
        tracker = Tracker(frame_rate=cams[i].fps)
        source.start()
        with ThreadPoolExecutor(1) as pool:
            while not stop.is_set():
                packet = source.get(timeout_s=0.5)
                if packet is None:
                    continue
                scene = pool.submit(cls.classify, packet.image_bgr) if cls is not None else None
                tracker.update(det.detect(packet.image_bgr))
                if scene is not None:
                    scene.result()
                rec.add(i, time.perf_counter(), time.time() - packet.captured_at)
        source.stop()

    result = run_threads(spec, camera)
    result["variant"] = "workers (no Ray, no Redis, no clip head)"
    result["batch_mean"] = local_batch_means()
    return result


def local_batch_means() -> dict[str, float]:
    """Mean frames per forward pass of this process's workers (vigil_batch_size), warm-up included."""
    from pipeline.core.metrics import local_families

    sums: dict[str, dict[str, float]] = {}
    for fam in local_families():
        for s in fam.samples if fam.name == "vigil_batch_size" else []:
            if s.name.endswith(("_sum", "_count")):
                sums.setdefault(s.labels["model"], {})[s.name.rsplit("_", 1)[1]] = s.value
    return {m: v["sum"] / v["count"] for m, v in sums.items() if v.get("count")}
