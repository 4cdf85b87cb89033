"""Batching across cameras in the real model workers (Ray actors, real ultralytics YOLO and ViT)."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest
import ray

from pipeline.core.config import ClassifierConfig, DetectorConfig
from pipeline.runtime.vision import VisionWorker
from tests.support.configs import chatty_config
from tests.support.metrics import scrape, value
from tests.support.running import running_pipeline
from tests.support.wait import wait_for
from workers.classifier import Classifier
from workers.detector import Detector

PACK = Path(__file__).resolve().parents[2] / "models" / "demo"


def distinct_frames(video: Path, n: int) -> list[np.ndarray]:
    """``n`` different frames (one second apart) of a real video."""
    cap = cv2.VideoCapture(str(video))
    frames = []
    for i in range(n * 10):
        ok, frame = cap.read()
        assert ok
        if i % 10 == 0:
            frames.append(frame)
    cap.release()
    return frames


def batch_counts(families: list, model: str | None = None) -> dict[str, float]:  # type: ignore[type-arg]
    """Bucket counts of vigil_batch_size by upper bound, for one model's worker."""
    out: dict[str, float] = {}
    for fam in families:
        if fam.name == "vigil_batch_size":
            for s in fam.samples:
                if s.name.endswith("_bucket") and model in (None, s.labels["model"]):
                    out[s.labels["le"]] = s.value
    return out


def test_concurrent_calls_are_batched_and_each_caller_gets_its_own_result(ray_session: None, street_mp4: Path) -> None:
    """Frames sent one call each by concurrent callers run in shared forward passes, and each caller
    gets its own frame's result: the same boxes and embedding as that frame alone gives."""
    frames = distinct_frames(street_mp4, 4)
    clf = ray.remote(Classifier).options(max_concurrency=16).remote(ClassifierConfig(max_batch=4, max_wait_ms=200))
    # The shipped detector (an untrained one finds nothing, and empty results would compare equal).
    det_cfg = DetectorConfig(weights=str(PACK / "detector.pt"), max_batch=4, max_wait_ms=200)
    det = ray.remote(Detector).options(max_concurrency=16).remote(det_cfg)
    try:
        refs = [ray.put(f) for f in frames]
        batched_scenes = ray.get([clf.classify.remote(r) for r in refs])
        batched_dets = ray.get([det.detect.remote(r) for r in refs])
        single_scenes = [ray.get(clf.classify_batch.remote([f]))[0] for f in frames]
        single_dets = [ray.get(det.detect_batch.remote([f]))[0] for f in frames]
        clf_buckets = batch_counts(ray.get(clf.collect_metrics.remote()).families)
        det_buckets = batch_counts(ray.get(det.collect_metrics.remote()).families)
    finally:
        ray.kill(clf)
        ray.kill(det)
    for batched, single in zip(batched_scenes, single_scenes, strict=True):
        assert np.allclose(batched.embedding, single.embedding, atol=1e-4)
    assert not np.allclose(batched_scenes[0].embedding, batched_scenes[1].embedding, atol=1e-4)
    # The street frames have people and cars in them: every frame has boxes to compare, and the
    # frames differ (a result handed to the wrong caller shows).
    assert all(len(d) > 0 for d in single_dets), [len(d) for d in single_dets]
    assert len({(len(d), round(float(d.xyxy[:, 0].sum()))) for d in single_dets}) > 1
    for batched, single in zip(batched_dets, single_dets, strict=True):
        assert len(batched) == len(single)
        np.testing.assert_array_equal(batched.class_id, single.class_id)
        np.testing.assert_allclose(batched.xyxy, single.xyxy, atol=0.5)
        np.testing.assert_allclose(batched.confidence, single.confidence, atol=0.01)
        assert (batched.confidence >= det_cfg.confidence).all()  # models.detector.confidence holds
    assert clf_buckets["4.0"] - clf_buckets["2.0"] >= 1, f"the ViT ran no batch of 3-4 frames: {clf_buckets}"
    assert det_buckets["4.0"] - det_buckets["2.0"] >= 1, f"the detector ran no batch of 3-4 frames: {det_buckets}"


def test_several_cameras_share_forward_passes(ray_session: None, street_mp4: Path, tmp_path: Path) -> None:
    cameras = [{"id": f"cam{i}", "url": str(street_mp4), "fps": 10, "loop": True} for i in range(4)]
    cfg = chatty_config(cameras, tmp_path / "spool")
    with running_pipeline(cfg) as run:
        pipeline = run.pipeline

        def shared(model: str) -> bool:
            text = scrape(run.metrics_port)
            passes = exported(text, "vigil_batch_size_count", model=model)
            return passes > exported(text, "vigil_batch_size_bucket", model=model, le="1.0")

        wait_for(lambda: all(s.frames_processed >= 20 for s in pipeline.statuses()), 120, "frames on 4 cameras")
        # Live cameras' frames meet in a forward pass whenever they arrive while one runs: on a busy
        # machine at once, on an idle one sooner or later.
        for model in ("detector", "classifier"):
            wait_for(partial(shared, model), 120, f"a {model} forward pass with more than one frame")


def test_detector_replicas_share_every_cameras_frames(ray_session: None, street_mp4: Path, tmp_path: Path) -> None:
    """ray.detector.replicas: 2 starts two detector actors and each camera's frames reach both
    (cameras hand frames to the replicas in turn), with several frames in flight per camera. The
    clip head runs as its own actor here (ray.clip_head: actor) and labels every camera's windows."""
    cameras = [{"id": f"cam{i}", "url": str(street_mp4), "fps": 10, "loop": True, "max_in_flight": 3} for i in range(2)]
    cfg = chatty_config(cameras, tmp_path / "spool")
    cfg = cfg.model_copy(
        update={
            "ray": cfg.ray.model_copy(
                update={
                    "placement": "workers",
                    "detector": cfg.ray.detector.model_copy(update={"replicas": 2, "num_cpus": 0.5}),
                    "clip_head": "actor",
                }
            )
        }
    )
    with running_pipeline(cfg) as run:
        pipeline = run.pipeline
        wait_for(lambda: all(s.frames_processed >= 20 for s in pipeline.statuses()), 120, "frames on 2 cameras")
        assert pipeline.plan is not None and len(pipeline.plan.detectors) == 2
        processed = sum(s.frames_processed for s in pipeline.statuses())  # first: each went through a batch
        frames_per_replica = [batch_sum(ray.get(d.collect_metrics.remote()).families) for d in pipeline.plan.detectors]
        assert pipeline.plan.clip_head_actor is not None and pipeline.plan.clip_head is None
        wait_for(lambda: all(s.clip is not None for s in pipeline.statuses()), 60, "clip labels from the actor")
        head_windows = batch_sum(ray.get(pipeline.plan.clip_head_actor.collect_metrics.remote()).families)
    assert head_windows >= 2  # the ClipHead actor labelled both cameras' windows
    assert all(n >= 10 for n in frames_per_replica), frames_per_replica
    assert sum(frames_per_replica) >= processed  # every processed frame went through one of them


def batch_sum(families: list) -> float:  # type: ignore[type-arg]
    """Frames a model worker has run (the sum of vigil_batch_size), the warm-up pass excluded."""
    return sum(
        s.value for fam in families if fam.name == "vigil_batch_size" for s in fam.samples if s.name.endswith("_sum")
    )


def test_fused_worker_gives_each_caller_the_separate_models_results(ray_session: None, street_mp4: Path) -> None:
    """ray.placement: fused: one VisionWorker runs the detector and the ViT on the same batch; each concurrent
    caller gets its own frame's detections and scene, the same as the separate workers give."""
    frames = distinct_frames(street_mp4, 4)
    det_cfg = DetectorConfig(weights=str(PACK / "detector.pt"), max_batch=4, max_wait_ms=200)
    cls_cfg = ClassifierConfig(weights=PACK / "classifier.pt", max_batch=2)  # the ViT's own cap holds
    vision = ray.remote(VisionWorker).options(max_concurrency=16).remote((det_cfg, cls_cfg))
    try:
        fused = ray.get([vision.analyze.remote(ray.put(f)) for f in frames])
        families = ray.get(vision.collect_metrics.remote()).families
    finally:
        ray.kill(vision)
    detector, classifier = Detector(det_cfg), Classifier(cls_cfg)
    for frame, (dets, scene) in zip(frames, fused, strict=True):
        alone_dets, alone_scene = detector.detect_batch([frame])[0], classifier.classify_batch([frame])[0]
        assert len(dets) == len(alone_dets) > 0
        assert np.allclose(dets.xyxy, alone_dets.xyxy, atol=0.5)
        assert scene.label == alone_scene.label
        assert np.allclose(scene.embedding, alone_scene.embedding, atol=1e-4)
    assert not np.allclose(fused[0][1].embedding, fused[1][1].embedding, atol=1e-4)
    buckets = batch_counts(families, "detector")
    assert batch_sum(families) == 8  # 4 frames through the detector + 4 through the ViT, warm-up aside
    assert buckets["4.0"] - buckets["2.0"] >= 1, f"the detector never ran 3-4 frames at once: {buckets}"


def test_fused_pipeline_coalesces_calls_and_survives_a_killed_worker(
    ray_session: None, street_mp4: Path, tmp_path: Path
) -> None:
    # File mode (every frame, as fast as the workers go): where the camera host coalesces calls.
    cameras = [{"id": f"cam{i}", "url": str(street_mp4), "fps": 10, "loop": True, "mode": "file"} for i in range(3)]
    cfg = chatty_config(cameras, tmp_path / "spool")
    cfg = cfg.model_copy(update={"ray": cfg.ray.model_copy(update={"placement": "fused"})})
    with running_pipeline(cfg) as run:
        pipeline = run.pipeline
        wait_for(lambda: all(s.frames_processed >= 15 for s in pipeline.statuses()), 120, "frames on 3 cameras")
        statuses = pipeline.statuses()
        assert pipeline.plan is not None and pipeline.plan.classifiers == ()
        # ray.clip_head: hosts (the default): no ClipHead actor; the camera host labels clips.
        assert pipeline.plan.clip_head_actor is None and pipeline.plan.clip_head is not None
        wait_for(lambda: all(s.clip is not None for s in pipeline.statuses()), 60, "clip labels in the host")
        text = scrape(run.metrics_port)
        # The fused worker (this pipeline's own) dies mid-run: Ray restarts it, the calls it held are
        # retried or counted as lost, and every camera of the host goes on (the coalescer is not stuck).
        before = {s.camera_id: s.frames_processed for s in pipeline.statuses()}
        ray.kill(pipeline.plan.detectors[0], no_restart=False)
        wait_for(
            lambda: all(s.frames_processed > before[s.camera_id] + 10 for s in pipeline.statuses()),
            120,
            "every camera to process frames again after the worker was killed",
        )
    assert all(s.scene is not None for s in statuses)
    assert exported(text, "vigil_batch_size_count", model="temporal") >= 3  # the host's head, exported by the host
    vision_frames = exported(text, "vigil_stage_latency_seconds_count", stage="vision")
    assert vision_frames >= 45
    assert 'stage="detect"' not in text and 'stage="classify"' not in text  # one call per frame, not two
    single = exported(text, "vigil_batch_size_bucket", le="1.0", model="detector")
    assert exported(text, "vigil_batch_size_count", model="detector") > single
    # The camera host coalesces: the three cameras' frames that wait while the worker is busy leave
    # in one call. Every frame the cameras got back went in some call; some calls carried several.
    assert exported(text, "vigil_call_frames_sum") >= vision_frames
    assert exported(text, "vigil_call_frames_count") > exported(text, "vigil_call_frames_bucket", le="1.0")


def exported(text: str, name: str, **labels: str) -> float:
    """The one sample ``name`` with ``labels`` in a scrape; the test fails where it is not exported."""
    found = value(text, name, **labels)
    assert found is not None, f"{name}{labels} not exported"
    return found


def test_models_in_the_camera_hosts_batch_each_hosts_cameras(
    ray_session: None, street_mp4: Path, tmp_path: Path
) -> None:
    """placement hosts: no model actors; each camera host runs the detector and the ViT on its own
    cameras' frames (live and file cameras alike), several frames per forward pass, each model in
    passes of at most its own max_batch, and labels clips."""
    cameras = [
        {"id": f"cam{i}", "url": str(street_mp4), "fps": 10, "loop": True, "mode": "file" if i % 2 else "live"}
        for i in range(4)
    ]
    cfg = chatty_config(cameras, tmp_path / "spool")
    models = cfg.models.model_copy(update={"detector": cfg.models.detector.model_copy(update={"max_batch": 2})})
    cfg = cfg.model_copy(
        update={"models": models, "ray": cfg.ray.model_copy(update={"placement": "hosts", "cameras_per_host": 2})}
    )
    with running_pipeline(cfg) as run:
        pipeline = run.pipeline
        assert pipeline.plan is not None and pipeline.hosts is not None
        assert pipeline.plan.detectors == () and pipeline.plan.classifiers == ()
        assert len(pipeline.hosts.actors()) == 2
        wait_for(lambda: all(s.frames_processed >= 15 for s in pipeline.statuses()), 120, "frames on 4 cameras")
        wait_for(lambda: all(s.clip is not None for s in pipeline.statuses()), 60, "clip labels in the hosts")
        statuses = pipeline.statuses()
        text = scrape(run.metrics_port)
        host_families = [ray.get(h.collect_metrics.remote()).families for h in pipeline.hosts.actors()]
        # ray.pin_hosts (the default): the two hosts split this machine's cores between them.
        pids = [ray.get(h.process_stats.remote()).pid for h in pipeline.hosts.actors()]
        host_cores = [os.sched_getaffinity(pid) for pid in pids]
    cores = os.sched_getaffinity(0)
    assert all(len(c) == len(cores) // 2 for c in host_cores), host_cores
    assert not host_cores[0] & host_cores[1] and host_cores[0] | host_cores[1] <= cores
    assert all(s.scene is not None for s in statuses)
    vision_frames = exported(text, "vigil_stage_latency_seconds_count", stage="vision")
    assert vision_frames >= 60
    # The models ran in the hosts (their thread's CPU is the hosts' "vision" step), on batches of
    # several frames: each host's cameras' waiting frames leave together.
    for families in host_families:  # each host ran both models, on its "vision" thread
        vision_step = sum(
            s.value
            for f in families
            if f.name == "vigil_camera_cpu_seconds"
            for s in f.samples
            if s.name.endswith("_total") and s.labels["step"] == "vision"
        )
        models = {
            s.labels["model"]: s.value
            for f in families
            if f.name == "vigil_model_cpu_seconds"
            for s in f.samples
            if s.name.endswith("_total")
        }
        assert models.get("detector", 0) > 0 and models.get("classifier", 0) > 0, models
        # (read while frames flow, so a call's model counter may be in and its step lap not yet)
        assert models["detector"] + models["classifier"] == pytest.approx(vision_step, rel=0.2)
    assert exported(text, "vigil_batch_size_sum", model="detector") >= vision_frames
    assert exported(text, "vigil_batch_size_count", model="detector") > exported(
        text, "vigil_batch_size_bucket", le="1.0", model="detector"
    )
    # Batches up to the ViT's max_batch (8) leave together; the detector splits them into its own (2).
    for model, most in (("detector", 2), ("classifier", 8)):
        count = exported(text, "vigil_batch_size_count", model=model)
        assert exported(text, "vigil_batch_size_bucket", le=f"{most}.0", model=model) == count
    assert exported(text, "vigil_batch_size_count", model="classifier") > exported(
        text, "vigil_batch_size_bucket", le="2.0", model="classifier"
    ), "the ViT never ran more frames at once than the detector's max_batch"
