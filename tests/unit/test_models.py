"""Model adapters with the real libraries (ultralytics, torchvision, timm), no Ray."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.core.config import ClassifierConfig, DetectorConfig, LSTMHead, TemporalConfig, TimmViT, TransformerHead
from pipeline.core.messages import Detections
from workers import classifier as cls_mod
from workers import clip_head as tmp_mod
from workers.classifier import Classifier
from workers.clip_head import ClipHead, FrameSummarizer, detection_summary, summary_dim
from workers.detector import Detector

REPO = Path(__file__).resolve().parents[2]


def frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (360, 640, 3), dtype=np.uint8)


def test_detector_builds_from_ultralytics_yaml_and_returns_detections() -> None:
    det = Detector(DetectorConfig(weights="yolo11n.yaml", imgsz=160))
    assert len(det.names()) == 80  # an architecture yaml has COCO's 80 (unnamed) classes
    out = det.detect_batch([frame(0), frame(1)])
    assert len(out) == 2 and all(isinstance(d, Detections) for d in out)


def test_classifier_gives_label_and_embedding() -> None:
    clf = Classifier(ClassifierConfig(labels=("a", "b", "c")))
    res = clf.classify_batch([frame(0), frame(1)])
    assert [r.embedding.shape for r in res] == [(192,), (192,)]
    assert all(r.label in ("a", "b", "c") and 0 <= r.confidence <= 1 for r in res)
    assert clf.embedding_dim() == 192


def test_timm_backend_builds_offline() -> None:
    model, dim = cls_mod.build_backbone(TimmViT(arch="vit_tiny_patch16_224"), 224)
    assert dim == 192
    assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 192)


def test_classifier_checkpoint_roundtrip(tmp_path: Path) -> None:
    cfg = ClassifierConfig(labels=("day", "night"))
    model = cls_mod.build_model(cfg.backend, cfg.labels, 224, seed=7)
    ckpt = tmp_path / "scene.pt"
    cls_mod.save_checkpoint(ckpt, model, cfg.backend, ("day", "night"), 224)
    loaded = Classifier(ClassifierConfig(weights=ckpt, labels=("ignored",)))
    assert loaded.labels == ("day", "night")
    x = cls_mod.preprocess([frame(3)], 224)
    with torch.inference_mode():
        expected = model.eval()(x)[1]
        got = loaded.model(x)[1]
    assert torch.allclose(expected, got)


def test_detection_summary_layout() -> None:
    det = Detections(
        np.array([[0, 0, 64, 36], [320, 180, 384, 216]], np.float32),
        np.array([0.8, 0.6], np.float32),
        np.array([0, 2]),
        np.array([1, 2]),
    )
    vec = detection_summary(det, (640, 360), num_classes=3)
    assert vec.shape == (summary_dim(3),)
    assert vec[0] == pytest.approx(0.2) and vec[1] == pytest.approx(0.7)
    assert vec[2] == pytest.approx(0.01)  # each box is 1 % of the frame
    assert list(vec[6:9]) == pytest.approx([0.1, 0.0, 0.1])  # per-class counts
    assert not vec[9:].any()  # motion stats need a tracker's history
    assert not detection_summary(Detections.empty(), (640, 360), 3).any()


@pytest.mark.parametrize("head", [LSTMHead(hidden_size=32), TransformerHead(d_model=32, num_heads=4)])
def test_temporal_heads_label_windows(head: LSTMHead | TransformerHead) -> None:
    cfg = TemporalConfig(head=head, labels=("normal", "fall"), window=8, stride=4)
    worker = ClipHead(cfg, in_dim=20, emb_dim=12)  # 12 ViT features + 8 summary features
    windows = [np.random.default_rng(i).normal(size=(8, 20)).astype(np.float32) for i in range(3)]
    scores = worker.classify_batch(windows)
    assert len(scores) == 3
    assert all(s.label in ("normal", "fall") and 0.5 <= s.confidence <= 1 for s in scores)
    assert worker.head_kind() == head.kind


def test_temporal_checkpoint_must_match_feature_size(tmp_path: Path) -> None:
    head = LSTMHead(hidden_size=16)
    model = tmp_mod.build_head(head, 20, 2)
    ckpt = tmp_path / "clip.pt"
    tmp_mod.save_checkpoint(ckpt, model, head, ("normal", "fall"), 20)
    assert ClipHead(TemporalConfig(weights=ckpt), in_dim=20).labels == ("normal", "fall")
    with pytest.raises(ValueError, match="trained on 20 features per frame"):
        ClipHead(TemporalConfig(weights=ckpt), in_dim=21)


def _frame_dets(boxes: list[tuple[float, float, float, float, int, int]]) -> Detections:
    """(x1, y1, x2, y2, class id, track id) rows -> tracked Detections over person/vehicle/bag."""
    arr = np.array(boxes, np.float32).reshape(-1, 6)
    return Detections(
        arr[:, :4],
        np.full(len(arr), 0.9, np.float32),
        arr[:, 4].astype(np.int64),
        arr[:, 5].astype(np.int64),
        ("person", "vehicle", "bag"),
    )


def test_frame_summarizer_motion_stats_tell_activities_apart() -> None:
    names = ("person", "vehicle", "bag")
    motion = slice(6 + 3, None)

    def run(frames: list[list[tuple[float, float, float, float, int, int]]], fps: float = 10.0) -> np.ndarray:
        s = FrameSummarizer(names)
        out = np.zeros(0)
        for i, boxes in enumerate(frames):
            out = s(_frame_dets(boxes), (640, 360), i / fps)
        return out[motion]

    # Boxes are 60 px tall: speeds are in body lengths per second (/4), so perspective cancels.
    runner = run([[(20 + 20 * i, 200, 40 + 20 * i, 260, 0, 1)] for i in range(20)])  # 200 px/s
    walker = run([[(20 + 5 * i, 200, 40 + 5 * i, 260, 0, 1)] for i in range(20)])  # 50 px/s
    assert runner[0] == pytest.approx(200 / 60 / 4, rel=0.05) and walker[0] == pytest.approx(50 / 60 / 4, rel=0.05)
    lying = run([[(100, 240, 160, 260, 0, 1)]] * 5)
    assert lying[2] == pytest.approx(1 / 3 / 4) and lying[3] == 1.0  # h/w = 1/3, and the one person is lying
    stayer = run([[(300, 200, 320, 260, 0, 1)]] * 40)
    assert stayer[4] == pytest.approx(1.0) and walker[4] == 0.0  # stillness needs >= 2 s of history
    group = run([[(300 + 12 * k, 200, 318 + 12 * k, 260, 0, k + 1) for k in range(5)]])
    assert group[5] == pytest.approx(0.5)
    bag, owner = (300, 240, 330, 260, 2, 9), (320, 200, 340, 260, 0, 1)
    left_bag = run([[bag, owner]] * 5 + [[bag, (320 + 30 * k, 200, 340 + 30 * k, 260, 0, 1)] for k in range(1, 21)])
    kept_bag = run([[bag, owner]] * 25)
    never_attended = run([[bag]] * 25)  # e.g. a static false detection
    assert left_bag[6] == 1.0 and kept_bag[6] == 0.0 and never_attended[6] == 0.0


# The digest of the FrameSummarizer at FEATURE_VERSION 6 on the sequence below (the features
# the shipped clip heads were trained on). A faster summarizer must give the same bytes; a
# different one changes what the heads see: retrain them and bump FEATURE_VERSION.
SUMMARY_DIGEST = "c009023867b66ca235ca0023ce11921e5c0234eefc7e403c294402bf2006e4c6"


def _summary_digest() -> str:
    """SHA-256 of the frame summaries of a fixed crowd of walkers, loiterers and bags."""
    rng = np.random.default_rng(2027)
    n = 14
    start, velocity = rng.uniform(0, 600, (n, 2)), rng.uniform(-8, 8, (n, 2)) * (rng.random((n, 1)) < 0.7)
    size, cls = rng.uniform(20, 70, n), np.where(rng.random(n) < 0.25, 2, 0)
    summarizer, rows = FrameSummarizer(("person", "vehicle", "bag")), []
    for f in range(300):
        seen = [i for i in range(n) if rng.random() > 0.1]
        boxes = []
        for i in seen:
            cx, cy = start[i] + velocity[i] * f + rng.normal(0, 1.5, 2)
            w, h = size[i] * rng.uniform(0.9, 1.1), (2 if cls[i] == 0 else 0.8) * size[i] * rng.uniform(0.9, 1.1)
            boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
        det = Detections(
            np.array(boxes, np.float32).reshape(-1, 4),
            rng.uniform(0.3, 0.95, len(seen)).astype(np.float32),
            cls[seen].astype(np.int64),
            np.full(len(seen), -1),
            ("person", "vehicle", "bag"),
        )
        rows.append(summarizer(det, (640, 360), f / 10))
    return hashlib.sha256(np.array(rows).tobytes()).hexdigest()


def test_frame_summaries_stay_bit_for_bit_what_the_heads_were_trained_on() -> None:
    assert tmp_mod.FEATURE_VERSION == 6
    assert _summary_digest() == SUMMARY_DIGEST


def test_models_for_the_camera_hosts_are_checked_once_where_the_pipeline_starts(tmp_path: Path) -> None:
    """placement hosts: the driver loads the detector and the ViT once (no Ray needed for that) and
    a broken checkpoint stops the start with the key path, before any camera host loads it."""
    from pipeline.core.config import parse_config
    from pipeline.core.metrics import PROCESS
    from pipeline.runtime.driver import Pipeline, PipelineError

    broken = tmp_path / "detector.pt"
    broken.write_bytes(b"not a checkpoint")
    cfg = parse_config(
        {
            "cameras": [{"id": "a", "url": "/x.mp4"}],
            "models": {"detector": {"weights": str(broken)}},
            "ray": {"placement": "hosts"},
        }
    )
    role, threads = PROCESS.actor, torch.get_num_threads()
    torch.set_num_threads(3)  # not what the models set (1), so a missing restore shows
    try:
        with pytest.raises(PipelineError, match=rf"^models.detector.weights: cannot load {broken}: "):
            Pipeline(cfg, "redis://127.0.0.1:1").start()
        assert PROCESS.actor == role and torch.get_num_threads() == 3  # the driver is still the driver
    finally:
        torch.set_num_threads(threads)


def test_preprocessing_on_the_device_matches_the_cpu_path() -> None:
    images = [frame(4), frame(5)[:200, :300]]  # any sizes: both resize to the ViT's square
    on_cpu = cls_mod.preprocess(images, 224)
    on_device = cls_mod.preprocess_on(images, 224, "cpu")
    assert on_device.shape == on_cpu.shape == (2, 3, 224, 224) and on_device.dtype == torch.float32
    assert torch.allclose(on_device, on_cpu, atol=1e-6)


def test_fp16_is_used_on_a_gpu_only_and_keeps_labels_and_embeddings() -> None:
    assert cls_mod.inference_dtype(True, "cuda:0") == torch.float16
    assert cls_mod.inference_dtype(False, "cuda:0") == torch.float32
    assert cls_mod.inference_dtype(True, "cpu") == torch.float32  # the config's default half stays fp32 here
    # The fp16 path itself (what a GPU runs), on the CPU's fp16 kernels: the same labels and
    # nearly the same embeddings as fp32 on frames of distinct content.
    cfg = ClassifierConfig(labels=("a", "b", "c", "d"))
    model = cls_mod.build_model(cfg.backend, cfg.labels, 224, seed=3).eval()
    images = [frame(i) for i in range(6)]
    with torch.inference_mode():
        emb32, logits32 = model(cls_mod.preprocess(images, 224))
        emb16, logits16 = model.half()(cls_mod.preprocess_on(images, 224, "cpu", torch.float16))
    assert emb16.dtype == torch.float16
    assert torch.equal(logits16.float().argmax(1), logits32.argmax(1))
    assert torch.nn.functional.cosine_similarity(emb16.float(), emb32).min() > 0.999


def test_bf16_is_used_on_a_cpu_with_native_bf16_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from workers import common

    monkeypatch.setattr(common, "_WARNED", set())
    monkeypatch.setattr(common, "native_bf16", lambda: True)
    assert cls_mod.inference_dtype(True, "cpu", "bf16") == torch.bfloat16
    assert cls_mod.inference_dtype(True, "cuda:0", "bf16") == torch.float16  # a GPU goes by half
    assert cls_mod.inference_dtype(False, "cuda:0", "bf16") == torch.float32
    assert cls_mod.inference_dtype(True, "cpu", "fp32") == torch.float32
    monkeypatch.setattr(common, "native_bf16", lambda: False)  # emulated bf16 would be slower: fp32, said once
    with caplog.at_level("WARNING", logger="workers.common"):
        assert cls_mod.inference_dtype(True, "cpu", "bf16") == torch.float32
        assert not common.use_bf16("bf16", "cpu", "classifier")
        assert cls_mod.inference_dtype(True, "cpu", "auto", "crops") == torch.float32  # auto: nothing to say
    assert [r.getMessage() for r in caplog.records] == [
        "classifier: cpu_precision bf16 asked for, but this CPU has no native bf16 (AMX or AVX512-BF16): fp32"
    ]
    monkeypatch.setattr(common, "native_bf16", lambda: True)
    assert cls_mod.inference_dtype(True, "cpu", "auto") == torch.bfloat16  # auto: bf16 where the CPU has it
    assert cls_mod.inference_dtype(True, "cuda:0", "auto") == torch.float16


def test_an_exported_detector_runs_as_exported_whatever_cpu_precision_asks(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from pipeline.core.config import DetectorConfig
    from workers import common
    from workers.detector import detector_precision

    monkeypatch.setattr(common, "native_bf16", lambda: True)
    cfg = DetectorConfig(weights="detector.pt", cpu_precision="bf16")
    assert detector_precision(cfg, "cpu") == "bf16"
    # bf16 is an autocast of the PyTorch model: an ONNX export runs fp32 (and vigil bench says so).
    assert detector_precision(cfg.model_copy(update={"export": "onnx"}), "cpu") == "fp32"
    assert detector_precision(cfg.model_copy(update={"export": "engine", "half": True}), "cuda:0") == "fp16"
    auto = cfg.model_copy(update={"cpu_precision": "auto"})
    assert detector_precision(auto, "cpu") == "bf16"
    monkeypatch.setattr(common, "_WARNED", set())
    caplog.clear()  # bf16 with an export, above, said it runs fp32: as it should
    with caplog.at_level("WARNING"):
        # auto asks for bf16 only where it applies: an export runs fp32 and nothing is said.
        assert detector_precision(auto.model_copy(update={"export": "onnx"}), "cpu") == "fp32"
        monkeypatch.setattr(common, "native_bf16", lambda: False)
        assert detector_precision(auto, "cpu") == "fp32"
    assert caplog.records == []


def test_cpu_precision_is_checked_with_its_key_path() -> None:
    from pipeline.core.config import ConfigError, load_config

    with pytest.raises(ConfigError) as err:
        load_config(REPO / "configs" / "demo.yaml", {"models.detector.cpu_precision": "fp16"})
    assert any("models.detector.cpu_precision" in p and "bf16" in p for p in err.value.problems)


def test_a_failed_download_says_what_to_do_offline_in_one_plain_line() -> None:
    from workers.detector import first_line

    exc = RuntimeError(
        "\x1b[31mERROR ❌️ Download failure for https://example/yolo11n.pt.\x1b[0m Environment may be offline.\nRetry"
    )
    assert first_line(exc) == "Download failure for https://example/yolo11n.pt. Environment may be offline."
