"""``models.classifier: null`` and ``models.temporal: null`` switch the scene ViT and the clip head off:
the config takes them (and keeps today's defaults without them), a clip head without a ViT runs on
the detection summary alone when it uses no ViT embedding, and a camera host loads neither."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.core.config import (
    CameraConfig,
    ClassifierConfig,
    ConfigError,
    DetectorConfig,
    LSTMHead,
    TemporalConfig,
    TransformerHead,
    load_config,
    parse_config,
)
from pipeline.core.metrics import VIGIL_REGISTRY
from pipeline.ml.evaluate import EvalError, evaluate
from pipeline.runtime.clients import HostClients
from pipeline.runtime.placement import HostModelsSpec, HostPlan
from workers import clip_head as head_mod
from workers.clip_head import ClipHead, summary_dim

REPO = Path(__file__).resolve().parents[2]
CAMERAS = [{"id": "a", "url": "/x.mp4"}]
SUMMARY = summary_dim(3)  # the detection summary of a 3-class detector


def models(**section: Any) -> Any:
    return parse_config({"cameras": CAMERAS, "models": section}).models


@pytest.mark.parametrize(
    ("section", "classifier_on", "temporal_on"),
    [
        ({"classifier": None}, False, True),
        ({"temporal": None}, True, False),
        ({"classifier": None, "temporal": None}, False, False),
    ],
)
def test_null_switches_a_model_off(section: dict[str, Any], classifier_on: bool, temporal_on: bool) -> None:
    m = models(**section)
    assert (m.classifier is not None, m.temporal is not None) == (classifier_on, temporal_on)


def test_without_the_keys_the_defaults_are_unchanged() -> None:
    m = parse_config({"cameras": CAMERAS}).models
    assert m.classifier == ClassifierConfig() and m.temporal == TemporalConfig()
    assert m.input_px == max(m.detector.imgsz, ClassifierConfig().image_size)
    demo = load_config(REPO / "configs" / "demo.yaml")
    assert demo.models.classifier is not None and demo.models.classifier.weights is not None
    assert demo.models.temporal is not None and demo.models.temporal.weights is not None


def test_without_a_vit_frames_are_scaled_for_the_detector_alone() -> None:
    assert models(detector={"imgsz": 160}, classifier=None).input_px == 160


def test_switched_off_models_need_no_files_and_survive_a_dump_and_reload(tmp_path: Path) -> None:
    cfg = parse_config(
        {"cameras": CAMERAS, "models": {"classifier": None, "temporal": None, "detector": {"weights": "yolo11n.yaml"}}}
    )
    assert cfg.models.missing_files() == []
    again = parse_config(cfg.model_dump(mode="json"))  # as `vigil bench` hands a config to its modes
    assert again.models.classifier is None and again.models.temporal is None


def test_an_override_into_a_switched_off_model_leaves_it_off(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("cameras: [{id: a, url: /x.mp4}]\nmodels:\n  classifier: null\n")
    cfg = load_config(path, {"models.classifier.max_batch": 4, "models.detector.max_batch": 4})
    assert cfg.models.classifier is None and cfg.models.detector.max_batch == 4


def test_a_clip_head_without_a_classifier_is_a_valid_config() -> None:
    """The rule is the checkpoint's (below): the config cannot see what a head was trained on."""
    m = models(classifier=None, temporal={"weights": None, "window": 4, "stride": 2})
    assert m.classifier is None and m.temporal is not None and m.temporal.window == 4


def test_a_misspelt_null_section_still_names_its_key() -> None:
    with pytest.raises(ConfigError, match=r"models\.clasifier: unknown key; did you mean 'classifier'\?"):
        models(clasifier=None)


# -- a clip head on the detection summary alone ---------------------------------------------------


def _checkpoint(tmp_path: Path, head: LSTMHead | TransformerHead, emb_dim: int) -> Path:
    """A head trained on ``emb_dim`` ViT features + the 3-class summary, as `vigil train temporal` saves it."""
    in_dim = emb_dim + SUMMARY
    model = head_mod.build_head(head, in_dim, 2, emb_dim=emb_dim)
    path = tmp_path / f"{head.kind}-{head.embedding_features}.pt"
    head_mod.save_checkpoint(path, model, head, ("normal", "fall"), in_dim, emb_dim)
    return path


@pytest.mark.parametrize("head", [LSTMHead(hidden_size=16, embedding_features=0), TransformerHead(d_model=16)])
def test_a_head_that_leaves_the_embedding_out_runs_without_a_vit_and_labels_as_with_one(
    tmp_path: Path, head: LSTMHead | TransformerHead
) -> None:
    head = head.model_copy(update={"embedding_features": 0})  # `--embedding-features 0`, as the demo heads
    ckpt = _checkpoint(tmp_path, head, emb_dim=192)
    summaries = np.random.default_rng(0).normal(size=(6, SUMMARY)).astype(np.float32)
    embeddings = np.random.default_rng(1).normal(size=(6, 192)).astype(np.float32)
    without_vit = ClipHead(TemporalConfig(weights=ckpt), in_dim=SUMMARY, emb_dim=0)
    with_vit = ClipHead(TemporalConfig(weights=ckpt), in_dim=192 + SUMMARY, emb_dim=192)
    alone = without_vit.classify_batch([summaries])[0]
    beside = with_vit.classify_batch([np.concatenate([embeddings, summaries], axis=1)])[0]
    assert alone.label == beside.label and alone.confidence == pytest.approx(beside.confidence, abs=1e-5)


def test_a_head_that_uses_the_embedding_is_refused_without_a_vit(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path, LSTMHead(hidden_size=16, embedding_features=8), emb_dim=192)
    with pytest.raises(ValueError, match=r"uses the scene ViT's embedding .* models\.classifier is null"):
        ClipHead(TemporalConfig(weights=ckpt), in_dim=SUMMARY, emb_dim=0)
    assert ClipHead(TemporalConfig(weights=ckpt), in_dim=192 + SUMMARY, emb_dim=192).labels == ("normal", "fall")


def test_a_head_is_still_refused_for_another_detector(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path, LSTMHead(hidden_size=16, embedding_features=0), emb_dim=192)
    with pytest.raises(ValueError, match="trained on 209 features per frame"):
        ClipHead(TemporalConfig(weights=ckpt), in_dim=summary_dim(80), emb_dim=0)  # an 80-class detector


def test_a_pipeline_without_a_vit_refuses_at_start_a_head_that_needs_one(tmp_path: Path) -> None:
    """Placement hosts loads the models in the driver first: the refusal comes before any camera or
    Ray process starts, as one line naming the key."""
    from pipeline.runtime.driver import Pipeline, PipelineError

    ckpt = _checkpoint(tmp_path, LSTMHead(hidden_size=16, embedding_features=8), emb_dim=192)
    cfg = parse_config(
        {
            "cameras": CAMERAS,
            "models": {
                "detector": {"weights": "yolo11n.yaml", "imgsz": 160},
                "classifier": None,
                "temporal": {"weights": str(ckpt)},
            },
            "ray": {"placement": "hosts"},
        }
    )
    with pytest.raises(PipelineError, match=r"^models\.temporal\.weights: .* models\.classifier is null") as err:
        Pipeline(cfg, "redis://127.0.0.1:1/0").start()
    assert "\n" not in str(err.value)


def test_an_untrained_head_without_a_vit_reads_the_summary() -> None:
    head = ClipHead(TemporalConfig(labels=("a", "b")), in_dim=SUMMARY, emb_dim=0)
    assert head.classify_batch([np.zeros((4, SUMMARY), np.float32)])[0].label in ("a", "b")


# -- a camera host, and vigil eval --------------------------------------------------------------


def _loads(model: str) -> float:
    return VIGIL_REGISTRY.get_sample_value("vigil_model_load_seconds_count", {"model": model}) or 0.0


def test_a_camera_host_without_vit_and_clip_head_loads_neither_and_gives_no_scene() -> None:
    """``ray.placement: hosts`` with both off: the host loads the detector alone, a frame's scene is
    None, and its cameras have no clip-head client."""
    before = {m: _loads(m) for m in ("detector", "classifier")}
    plan = HostPlan("hosts", host_models=HostModelsSpec(DetectorConfig(weights="yolo11n.yaml", imgsz=160), None))
    clients = HostClients(plan).for_camera(CameraConfig(id="a", url="/x.mp4"))
    assert _loads("detector") == before["detector"] + 1 and _loads("classifier") == before["classifier"]
    assert clients.clip_head is None
    image = np.random.default_rng(0).integers(0, 255, (180, 320, 3), dtype=np.uint8)
    _detections, scene = clients.vision.submit(image).result(60.0)
    assert scene is None


@pytest.mark.parametrize("off", ["classifier", "temporal"])
def test_eval_refuses_a_config_without_the_models_it_scores(tmp_path: Path, off: str) -> None:
    cfg = parse_config({"cameras": CAMERAS, "models": {off: None}})
    with pytest.raises(EvalError, match=rf"^models\.{off}: null in the config, and vigil eval scores"):
        evaluate(cfg, tmp_path, {})
