"""models.detector.export: the shipped detector exported to ONNX through ultralytics finds what the
.pt finds, the export is made once and reused, and impossible exports fail with a clear message."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from pipeline.core.config import DetectorConfig
from pipeline.ml.synth.render import render_video
from workers.detector import Detector, export_detector

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
    assert export_detector(cfg, "cpu") == exported[0]
    assert exported[0].stat().st_mtime_ns == mtime and len(list(tmp_path.glob("*.onnx"))) == 1
    # A different batch cap is a different export: a stale file is never reused.
    assert export_detector(cfg.model_copy(update={"max_batch": 2}), "cpu") != exported[0]


def test_export_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=re.escape("export: 'model.onnx' is not .pt or .yaml weights")):
        DetectorConfig(weights="model.onnx", export="onnx")
    cfg = DetectorConfig(weights=str(PACK_DETECTOR), export="engine", export_dir=tmp_path)
    with pytest.raises(RuntimeError, match="engine \\(TensorRT\\) needs an NVIDIA GPU"):
        export_detector(cfg, "cpu")
