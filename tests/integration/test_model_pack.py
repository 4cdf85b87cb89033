"""The shipped demo model pack: it loads the way a user's weights load, sees the synthetic world it
was trained for, and the full pipeline scores what docs/models.md reports; weights that do not load
stop `vigil run` with one line naming their config key."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pipeline.core.config import CameraConfig, load_config
from pipeline.core.config.analytics import AnalyticsConfig
from pipeline.core.messages import CameraState, Detections, Event
from pipeline.events.client import EventClient
from pipeline.ml.synth.render import render_video
from pipeline.runtime.redis_server import EmbeddedRedis
from tests.support.configs import demo_pack_config
from tests.support.evaluation import synth_and_eval
from tests.support.metrics import samples, scrape
from tests.support.running import running_pipeline
from tests.support.wait import wait_for
from workers.analytics import TrackAnalytics

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "models" / "demo"


def test_pack_is_small_and_complete() -> None:
    files = {p.name: p.stat().st_size for p in PACK.iterdir()}
    shipped = ("detector.pt", "classifier.pt", "crops.pt", "clip.pt", "temporal-lstm.pt", "temporal-transformer.pt")
    for name in (*shipped, "temporal-text.pt"):
        assert name in files, f"models/demo/{name} missing: run `make models`"
        card = json.loads((PACK / name).with_suffix(".card.json").read_text())
        assert card["metrics"] and card["command"].startswith("vigil train")
    assert sum(files.values()) <= 25 * 2**20


def test_pack_loads_through_the_config_path_a_users_weights_take(monkeypatch: pytest.MonkeyPatch) -> None:
    """configs/demo.yaml names the pack by path; the workers load it as they load any weights."""
    from workers.classifier import Classifier
    from workers.clip_head import ClipHead, summary_dim
    from workers.detector import Detector

    monkeypatch.setenv("VIGIL_MODELS_DIR", str(PACK))
    cfg = load_config(REPO / "configs" / "demo.yaml")
    assert Path(cfg.models.detector.weights).parent == PACK
    detector, classifier = Detector(cfg.models.detector), Classifier(cfg.models.classifier)
    assert detector.names() == ("person", "vehicle", "bag")
    emb = classifier.embedding_dim()
    head = ClipHead(cfg.models.temporal, emb + summary_dim(len(detector.names())), emb_dim=emb)
    assert head.labels == ("normal", "fall", "loiter", "run", "abandoned_object", "crowd")

    # A video of a seed the pack never saw: the detector finds the people the ground truth has,
    # and the ViT names the scene.
    frames, gt = render_video(98765, "corridor", night=True, seconds=6, fps=10)
    picks = [i for i in range(0, len(frames), 6) if any(o["class"] == "person" for o in gt["frames"][i]["objects"])]
    found = total = 0
    for i, det in zip(picks, detector.detect_batch([frames[i] for i in picks]), strict=True):
        for obj in gt["frames"][i]["objects"]:
            if obj["class"] != "person" or obj["visibility"] < 0.8:
                continue
            total += 1
            ious = [_iou(obj["xyxy"], box) for box, c in zip(det.xyxy, det.class_id, strict=True) if c == 0]
            found += max(ious, default=0.0) >= 0.5
    assert total >= 5 and found / total >= 0.8, (found, total)
    scenes = classifier.classify_batch(frames[::10])
    assert [s.label for s in scenes].count("corridor") >= 0.9 * len(scenes)


# Geometry on the street video: a line down the middle of the picture and a zone on its right half.
ANALYTICS = {
    "zones": [{"name": "east", "polygon": [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]], "min_frames": 2}],
    "lines": [{"name": "middle", "points": [[0.5, 0.0], [0.5, 1.0]], "directions": ["westbound", "eastbound"]}],
}


@pytest.fixture(scope="module")
def street_without_vit(
    ray_session: None, street_mp4: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The pack on the street video as a file camera with ``models.classifier: null`` and ANALYTICS:
    the camera's final status, its events, and the metrics before and after."""
    tmp = tmp_path_factory.mktemp("street")
    overrides = {
        "models.classifier": None,
        "metrics.port": 0,
        "events.clip_ignore_labels": [],  # every label counts: the street video has no scripted activity
        "events.clip_min_confidence": 0.0,
        "events.clip_min_windows": 1,
        "events.spool.dir": str(tmp / "spool"),
    }
    cfg = demo_pack_config(overrides)
    cam = CameraConfig.model_validate(
        {"id": "street", "url": str(street_mp4), "mode": "file", "fps": 10, "loop": False, "analytics": ANALYTICS}
    )
    cfg = cfg.model_copy(update={"cameras": (cam,)})
    assert cfg.models.classifier is None and cfg.models.temporal is not None
    with running_pipeline(cfg) as run:
        before = samples(scrape(run.metrics_port))  # earlier pipelines of this test process count too
        wait_for(lambda: [s.state for s in run.pipeline.statuses()] == [CameraState.STOPPED], 180, "the file to end")
        status = run.pipeline.statuses()[0]
        found = samples(scrape(run.metrics_port))
        client = EventClient(run.url)
        events = list(client.replay(datetime.fromtimestamp(0, UTC)))
        client.close()
    yield {"status": status, "events": events, "before": before, "after": found}


@pytest.mark.timeout(240)
def test_the_packs_clip_head_runs_without_the_scene_vit(street_without_vit: dict[str, Any]) -> None:
    """The pack's heads leave the ViT embedding out (trained with --embedding-features 0): with
    ``models.classifier: null`` the transformer head labels windows of the detection summary alone
    and raises clip events, while no ViT is called and the cameras show no scene."""
    clips = [ev for ev in street_without_vit["events"] if ev.kind == "clip"]
    status, before, found = (street_without_vit[k] for k in ("status", "before", "after"))
    assert clips and {ev.head for ev in clips} == {"transformer"}
    assert status.scene is None and status.clip is not None
    called = {
        dict(labels)["model"]
        for (name, labels), n in found.items()
        if name == "vigil_batch_size_count" and n > before.get((name, labels), 0)
    }
    assert "classifier" not in called and {"detector", "temporal"} <= called


def test_line_counts_and_zone_stays_match_the_true_tracks(street_without_vit: dict[str, Any], street_mp4: Path) -> None:
    """The pipeline's line crossings, per direction, are those of the video's true tracks under the
    same geometry; every zone stay starts and then ends with its dwell; object events name the zones
    they are in; the crossing counter counts the same."""
    events: list[Event] = street_without_vit["events"]
    crossings = [e for e in events if e.kind == "line"]
    stays: dict[str, list[Event]] = {}
    for e in events:
        if e.kind == "zone":
            stays.setdefault(e.incident_id, []).append(e)
    assert crossings and stays
    for e in crossings:
        assert (e.phase, e.line) == ("instant", "middle") and e.direction in ("westbound", "eastbound")
        assert e.speed is not None and e.speed > 0 and e.speed_unit == "px/s"
    for stay in stays.values():
        assert [e.phase for e in stay] == ["start", "end"] and stay[0].zone == "east"
        assert stay[1].dwell_s is not None and stay[1].dwell_s == pytest.approx(stay[1].duration_s)
    assert any("east" in e.zones for e in events if e.kind == "object"), "object events name their zones"

    gt = json.loads(street_mp4.with_suffix(".json").read_text())
    truth = TrackAnalytics(AnalyticsConfig.model_validate(ANALYTICS), gt["fps"])
    names = tuple(gt["classes"])
    true_counts: Counter[str] = Counter()
    for frame in gt["frames"]:
        objs = frame["objects"]
        det = Detections(
            np.array([o["xyxy"] for o in objs], np.float32).reshape(-1, 4),
            np.ones(len(objs), np.float32),
            np.array([names.index(o["class"]) for o in objs], np.int64),
            np.array([o["track_id"] for o in objs], np.int64),
            names,
        )
        hits = truth.update(frame["frame"], frame["frame"] / gt["fps"], det, (gt["width"], gt["height"])).hits
        true_counts.update(h.direction or "" for h in hits if h.what == "cross")
    assert Counter(e.direction for e in crossings) == true_counts
    before, found = street_without_vit["before"], street_without_vit["after"]
    counted = sum(
        n - before.get((name, labels), 0)
        for (name, labels), n in found.items()
        if name == "vigil_line_crossings_total" and ("camera", "street") in labels
    )
    assert counted == len(crossings)


def _iou(a: list[float], b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# docs/models.md, "Where the shipped pack stands": `make eval` on the 9-video set of seed 2000. Of the
# documented sets it is the one where the two clip heads score apart (transformer 0.923, LSTM
# 0.857), so a figure reported for the wrong head shows.
EVAL_SEED, EVAL_VIDEOS = 2000, 9
DOCUMENTED = {"map50": 0.937, "scene": 1.000, "transformer_f1": 0.923, "lstm_f1": 0.857}
# The same seed gives the same videos and file cameras process every frame, so on an idle machine
# the figures come out as documented (measured: 0.937, 1.000, 0.923, 0.857); what varies is float
# rounding (batch composition, CPU kernels) and, on a loaded machine, the odd clip window. Detection
# and scene figures average 2,700 frames: 0.01 is far more than rounding moves them. Event F1
# counts 26 activities: one event more or less moves it ~0.04, so 0.04 lets one event flip on a
# borderline window and still fails a real regression (or the LSTM's 0.857 reported as the transformer's).
TOL_FRAMES, TOL_F1 = 0.01, 0.04


@pytest.mark.timeout(1260)  # the two subprocesses' own limits; ~3 min on an idle 2-core machine
def test_eval_on_the_documented_set_reproduces_the_documented_figures(tmp_path: Path) -> None:
    """`vigil synth` + `vigil eval` as a user runs them (real Ray, real Redis) on the set docs/models.md
    reports: detection mAP50, scene accuracy and the event F1 of each clip head, scored alone (the
    transformer is the head configs/demo.yaml runs), reach the documented figures less a stated tolerance."""
    data, out = tmp_path / "eval", tmp_path / "eval.json"
    synth = ["--videos", str(EVAL_VIDEOS), "--seed", str(EVAL_SEED)]
    done = synth_and_eval(data, synth, ["--heads", "transformer,lstm", "--json", str(out)], eval_timeout_s=900)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert "detection mAP50" in done.stdout and "scene accuracy" in done.stdout
    assert report["frames"] == EVAL_VIDEOS * 300 and report["fps"] > 0
    assert report["detection"]["map50"] >= DOCUMENTED["map50"] - TOL_FRAMES, report["detection"]
    assert report["scene"]["accuracy"] >= DOCUMENTED["scene"] - TOL_FRAMES, report["scene"]
    events = report["events"]
    assert set(events) == {"transformer", "lstm"}
    # Each head on its own: one head's good figure cannot stand in for the other's.
    transformer, lstm = events["transformer"], events["lstm"]
    assert transformer["f1"] >= DOCUMENTED["transformer_f1"] - TOL_F1, {k: transformer[k] for k in ("tp", "fp", "fn")}
    assert lstm["f1"] >= DOCUMENTED["lstm_f1"] - TOL_F1, {k: lstm[k] for k in ("tp", "fp", "fn")}


def test_bf16_on_a_cpu_keeps_the_packs_boxes_and_scene_labels() -> None:
    """cpu_precision: bf16 (the box head kept fp32): the same objects within ~1 px and the same
    scene labels as fp32; on a CPU without native bf16 it falls back to fp32, exactly."""
    from pipeline.core.config import ClassifierConfig, DetectorConfig
    from workers.classifier import Classifier
    from workers.common import native_bf16
    from workers.detector import Detector

    frames, _gt = render_video(4242, "street", seconds=4, fps=10)
    det_cfg = DetectorConfig(weights=str(PACK / "detector.pt"), imgsz=320, max_batch=16)
    cls_cfg = ClassifierConfig(weights=PACK / "classifier.pt", image_size=112, max_batch=16)
    out = {}
    for precision in ("fp32", "bf16"):
        det = Detector(det_cfg.model_copy(update={"cpu_precision": precision}), batching=False, cpu=True)
        cls = Classifier(cls_cfg.model_copy(update={"cpu_precision": precision}), batching=False, cpu=True)
        out[precision] = (det.detect_batch(frames), cls.classify_batch(frames), det.precision, cls.dtype)
    (d32, s32, _, _), (d16, s16, bf16_det, bf16_dtype) = out["fp32"], out["bf16"]
    assert (bf16_det == "bf16") == native_bf16() and (bf16_dtype == torch.bfloat16) == native_bf16()
    worst = 0.0
    for a, b in zip(d32, d16, strict=True):
        assert len(a) == len(b)
        if not len(a):
            continue
        dist = np.abs(a.xyxy[:, None, :] - b.xyxy[None, :, :]).max(-1)  # each fp32 box's nearest bf16 box
        nearest = dist.argmin(1)
        assert (a.class_id == b.class_id[nearest]).all()
        assert np.abs(a.confidence - b.confidence[nearest]).max() < 0.05
        worst = max(worst, float(dist.min(1).max()))
    assert worst <= (2.0 if native_bf16() else 0.0), worst  # frames of 640x360: 2 px = 1 px at imgsz 320
    assert sum(x.label == y.label for x, y in zip(s32, s16, strict=True)) >= 0.95 * len(frames)
    assert sum(map(len, d32)) >= 20  # the street has people and vehicles in it: boxes were compared


@pytest.mark.parametrize(
    ("key", "weights", "code"),
    [
        ("models.detector.weights", "corrupt", 1),  # not a checkpoint at all
        ("models.classifier.weights", "detector", 1),  # a checkpoint of another model (a YOLO as the ViT)
        ("models.detector.weights", "missing", 2),  # no such file: a config error, found before any model loads
    ],
)
def test_run_with_weights_that_do_not_load_exits_with_one_line_naming_the_key(
    redis_server: EmbeddedRedis,
    vigil_cli: list[str],
    street_mp4: Path,
    tmp_path: Path,
    key: str,
    weights: str,
    code: int,
) -> None:
    """README: `vigil run` exits 1 when a model fails to load and 2 on a config error, each time with
    one line that names the config key of the file, and no traceback."""
    corrupt = tmp_path / "detector.pt"
    corrupt.write_bytes(b"not a checkpoint")
    path = {"corrupt": corrupt, "detector": PACK / "detector.pt", "missing": tmp_path / "nowhere" / "detector.pt"}
    models = {"detector": {"weights": str(PACK / "detector.pt"), "imgsz": 160}}
    models[key.split(".")[1]] = {"weights": str(path[weights])}
    config = tmp_path / "bad.yaml"
    config.write_text(json.dumps({"cameras": [{"id": "a", "url": str(street_mp4)}], "models": models}))
    # --duration: weights that load after all (a failure swallowed) run 5 s and exit 0.
    args = ["run", str(config), "--redis-url", redis_server.url, "--metrics-port", "0", "--duration", "5", "--no-view"]
    done = subprocess.run(
        [*vigil_cli, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and done.stderr.strip().splitlines()[-1] == errors[0], done.stderr  # nothing after it
    assert key in errors[0] and str(path[weights]) in errors[0], errors[0]
