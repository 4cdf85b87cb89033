"""`vigil eval --zero-shot` as a user runs it (real Ray, real Redis, the pack's CLIP tower and
text-space clip head): labels defined only by prompts worded unlike any training caption
(configs/zero-shot-eval.yaml) label a fresh set's scenes, people's postures and activities, and the
trained models' figures on the same videos stand beside them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.evaluation import synth_and_eval

SEED, VIDEOS, SECONDS = 9711, 3, 15


@pytest.mark.timeout(900)
def test_prompts_label_scenes_postures_and_activities_beside_the_trained_models(tmp_path: Path) -> None:
    data, out = tmp_path / "set", tmp_path / "zero-shot.json"
    synth = ["--videos", str(VIDEOS), "--seed", str(SEED), "--seconds", str(SECONDS)]
    scoring = ["--zero-shot", "configs/zero-shot-eval.yaml", "--heads", "transformer", "--json", str(out)]
    done = synth_and_eval(data, synth, scoring)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scene accuracy from prompts" in done.stdout and "of the trained models" in done.stdout
    zs = json.loads(out.read_text())["zero_shot"]
    assert zs["scene"]["frames"] == VIDEOS * SECONDS * 10
    assert zs["scene"]["accuracy"] >= 0.8, zs["scene"]
    assert zs["attributes"]["crops"] > 0 and zs["attributes"]["accuracy"] >= 0.7, zs["attributes"]
    assert zs["activities"] is not None and "f1" in zs["activities"]
    trained = zs["trained"]
    assert trained["scene"]["accuracy"] >= 0.95 and set(trained["events"]) == {"transformer"}
