"""models.detector.export: the shipped detector exported to ONNX through ultralytics finds what the
.pt finds, the export is made once and reused, and impossible exports fail with a clear message."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from ultralytics import YOLO  # type: ignore[attr-defined]

from pipeline.core.config import DetectorConfig
from pipeline.ml.synth.render import render_video
from workers.detector import Detector, export_detector, export_path

PACK_DETECTOR = Path(__file__).resolve().parents[2] / "models" / "demo" / "detector.pt"


def test_onnx_export_matches_the_pt_weights_and_is_cached(tmp_path: Path) -> None:
    frames, gt = render_video(4321, "street", night=False, seconds=4, fps=10)
    picks = [frames[i] for i in range(0, len(frames), 5) if gt["frames"][i]["objects"]][:6]
    cfg = DetectorConfig(weights=str(PACK_DETECTOR), export="onnx", export_dir=tmp_path, max_batch=4)

    onnx_detector = Detector(cfg)
    exported = list(tmp_path.glob("*.onnx"))
    assert len(exported) == 1 and exported[0].stat().st_size > 1_000_000
    pt_detector = Detector(cfg.model_copy(update={"export": None}))

    found = 0
    for a, b in zip(onnx_detector.detect_batch(picks), pt_detector.detect_batch(picks), strict=True):
        assert len(a) == len(b)
        order_a, order_b = np.argsort(-a.confidence), np.argsort(-b.confidence)
        np.testing.assert_array_equal(a.class_id[order_a], b.class_id[order_b])
        np.testing.assert_allclose(a.xyxy[order_a], b.xyxy[order_b], atol=1.0)
        found += len(a)
    assert found >= len(picks)  # the frames have objects and both runtimes found them

    # ONNX Runtime keeps to the worker's one thread (its default: every core, spinning while idle).
    assert onnx_detector.runtime_threads == 1
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(3):
        onnx_detector.detect_batch(picks)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    assert cpu < 1.3 * wall, f"the ONNX detector used {cpu / wall:.2f} cores"

    # A second worker (another replica, a restart) reuses the export instead of making another.
    mtime = exported[0].stat().st_mtime_ns
    assert export_detector(cfg, "cpu") == exported[0] == export_path(cfg, "cpu")
    assert exported[0].stat().st_mtime_ns == mtime and len(list(tmp_path.glob("*.onnx"))) == 1
    # Whatever the export depends on is in its name, so a different batch cap, size or precision is
    # a different file: a stale export is never reused (the name is enough; no second export needed).
    for update in ({"max_batch": 2}, {"imgsz": cfg.imgsz + 32}):
        assert export_path(cfg.model_copy(update=update), "cpu") != exported[0]
    on_gpu = export_path(cfg, "cuda:0")
    assert on_gpu != exported[0] and export_path(cfg.model_copy(update={"half": not cfg.half}), "cuda:0") != on_gpu


def test_changed_weights_at_the_same_path_get_a_fresh_export(tmp_path: Path) -> None:
    """Weights retrained in place (same file name, new content): the next start exports them again
    instead of loading the cached export of the old weights."""
    weights = tmp_path / "tiny.pt"
    model = YOLO("yolo11n.yaml")
    model.save(weights)
    cfg = DetectorConfig(weights=str(weights), export="onnx", export_dir=tmp_path / "cache", imgsz=64, max_batch=1)
    first = export_detector(cfg, "cpu")
    first_bytes = first.read_bytes()
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # "retrained": one layer's weights change
    model.save(weights)
    second = export_detector(cfg, "cpu")
    assert second != first and second.is_file()
    assert second.read_bytes() != first_bytes  # made from the new weights, not a copy of the old export
    assert export_detector(cfg, "cpu") == second  # and reused from then on


def test_export_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=re.escape("export: 'model.onnx' is not .pt or .yaml weights")):
        DetectorConfig(weights="model.onnx", export="onnx")
    cfg = DetectorConfig(weights=str(PACK_DETECTOR), export="engine", export_dir=tmp_path)
    with pytest.raises(RuntimeError, match="engine \\(TensorRT\\) needs an NVIDIA GPU"):
        export_detector(cfg, "cpu")
