"""`vigil train clip` end to end on a tiny synthetic set: it trains a few steps, writes a checkpoint and
its model card with held-out zero-shot figures, and the result loads the way `models.zero_shot` loads
it (a config naming it with `kind: vigil`) and labels a frame from prompts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli.app import app
from pipeline.core.config import parse_config
from pipeline.ml.synth.dataset import synth_set
from pipeline.ml.synth.scenes import SCENES
from pipeline.ml.training.common import read_frames
from workers.zero_shot import PromptBank, load_clip

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_train_clip_writes_a_model_that_labels_frames_from_words(tmp_path: Path) -> None:
    data, out = tmp_path / "synth", tmp_path / "models" / "clip.pt"
    synth_set(data, videos=3, seed=5, seconds=6, fps=10)  # a street, a car park, a corridor
    args = ["--data", str(data), "--out", str(out), "--epochs", "1", "--people", "64", "--image-size", "64"]
    result = CliRunner().invoke(app, ["train", "clip", *args])
    assert result.exit_code == 0, result.output
    assert "held-out zero-shot scene accuracy" in result.output and str(out) in result.output

    card = json.loads(out.with_suffix(".card.json").read_text())
    assert card["data"]["held_out_videos"] == 1 and card["train_seconds"] > 0
    metrics = card["metrics"]
    assert 0 <= metrics["scene_accuracy"] <= 1 and 0 <= metrics["attribute_accuracy"] <= 1
    assert metrics["held_out_frames"] == 12 and metrics["held_out_person_crops"] > 0
    assert out.with_suffix(".card.md").read_text().startswith("# Model card: clip.pt")

    prompts = yaml.safe_load((REPO / "configs" / "zero-shot-eval.yaml").read_text())
    cfg = parse_config(
        {
            "cameras": [{"id": "a", "url": "rtsp://cam/s"}],
            "models": {"zero_shot": {"backend": {"kind": "vigil", "weights": str(out)}, **prompts}},
        }
    )
    zs = cfg.models.zero_shot
    assert zs is not None and cfg.models.missing_files() == []
    clip = load_clip(zs.backend, cfg.models.allow_download)
    bank = PromptBank.build(clip, zs.scenes, zs.templates)
    _, frame = next(read_frames(data / "v0000.mp4"))
    probs = bank.scores(clip.embed_images([np.ascontiguousarray(frame[..., ::-1])]))
    assert probs.shape == (1, len(SCENES)) and probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert bank.best(clip.embed_images([np.ascontiguousarray(frame[..., ::-1])]))[0][0] in SCENES
