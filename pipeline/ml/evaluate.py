"""``vigil eval``: run the full pipeline over labelled videos and score what it reports.

Each video of a ``vigil synth`` folder becomes a camera in file mode (every frame). The real
pipeline runs (Ray actors, detector, tracker, ViT, clip head, event engine, an embedded Redis);
the cameras also record each frame's raw detections and scene label. Then:

- detection: mAP50 and mAP50-95 per class (ultralytics' ``ap_per_class``) of the recorded
  detections against the ground-truth boxes, at the config's detector confidence threshold;
- scene: accuracy of the per-frame scene label;
- events: the clip events published to Redis, as segments ``[start_frame_id, last frame_id]`` per
  incident, matched one-to-one to ground-truth activity segments of the same label at temporal
  IoU >= 0.5 -> precision, recall, F1 (once per clip head);
- fps: frames processed per second of wall time, all cameras together.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.core.config import CameraConfig, CameraMode, VigilConfig
from pipeline.ml.synth.actors import CLASSES
from pipeline.ml.synth.dataset import load_set

Progress = Callable[[str, float, float], None]
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
TIOU = 0.5


class EvalError(RuntimeError):
    """The evaluation could not run (pipeline failed to start, Redis unavailable, ...)."""


def evaluate(cfg: VigilConfig, data: Path, heads: dict[str, Path], progress: Progress | None = None) -> dict[str, Any]:
    """Run the pipeline once per clip head over ``data``; return the figures (see module doc)."""
    off = [f"models.{key}" for key in ("classifier", "temporal") if getattr(cfg.models, key) is None]
    if off:
        raise EvalError(
            f"{' and '.join(off)}: null in the config, and vigil eval scores the scene ViT and the clip heads; "
            "give a config that sets both (configs/demo.yaml does)"
        )
    videos = load_set(data)
    if not videos:
        raise EvalError(f"{data}: no videos")
    report: dict[str, Any] = {
        "data": str(data),
        "videos": len(videos),
        "frames": sum(gt["num_frames"] for _, gt in videos),
    }
    events: dict[str, Any] = {}
    fps: list[float] = []
    with tempfile.TemporaryDirectory(prefix="vigil-eval-") as tmp:
        for n, (kind, weights) in enumerate(heads.items()):
            record = Path(tmp) / f"record-{kind}"
            run_cfg = eval_config(cfg, videos, weights, Path(tmp) / f"spool-{kind}")
            clip_events, seconds, processed = run_pipeline(run_cfg, record, kind, progress)
            fps.append(processed / seconds)
            events[kind] = score_events(videos, clip_events)
            if n == 0:
                recorded = {p.stem: _read_jsonl(p) for p in record.glob("*.jsonl")}
                report["detection"] = score_detection(videos, recorded)
                report["scene"] = score_scenes(videos, recorded)
    report["events"] = events
    report["fps"] = float(np.mean(fps))
    return report


def eval_config(cfg: VigilConfig, videos: list[tuple[Path, dict[str, Any]]], weights: Path, spool: Path) -> VigilConfig:
    """The user's models and rules; one file-mode camera per video; the clip head ``weights``; an embedded Redis."""
    cameras = [
        CameraConfig(id=video.stem, url=str(video.resolve()), mode=CameraMode.FILE, fps=gt["fps"], loop=False)
        for video, gt in videos
    ]
    # A checkpoint brings its own head architecture and labels; window and stride stay the config's.
    assert cfg.models.temporal is not None  # evaluate() refuses a config without a clip head
    temporal = cfg.models.temporal.model_copy(update={"weights": weights})
    models = cfg.models.model_copy(update={"temporal": temporal})
    events = cfg.events.model_copy(
        update={
            "snapshots": cfg.events.snapshots.model_copy(update={"store": "off"}),
            "spool": cfg.events.spool.model_copy(update={"dir": spool}),
        }
    )
    metrics = cfg.metrics.model_copy(update={"port": 0})
    return cfg.model_copy(
        update={
            "cameras": cameras,
            "models": models,
            "events": events,
            "metrics": metrics,
            "redis": cfg.redis.model_copy(update={"url": None}),
        }
    )


def run_pipeline(cfg: VigilConfig, record: Path, kind: str, progress: Progress | None) -> tuple[list[Any], float, int]:
    """Run until every camera's file has ended; return (clip events, seconds, frames processed)."""
    from pipeline.events.client import EventClient
    from pipeline.runtime.driver import Pipeline, PipelineError, init_ray
    from pipeline.runtime.redis_server import EmbeddedRedis, RedisUnavailable

    with ExitStack() as stack:
        try:
            server = stack.enter_context(EmbeddedRedis())
        except RedisUnavailable as exc:
            raise EvalError(str(exc)) from None
        init_ray(cfg, log_to_driver=False)
        pipeline = Pipeline(cfg, server.url, record_dir=record)
        try:
            pipeline.start()
        except PipelineError as exc:
            raise EvalError(str(exc)) from None
        total = 0
        t0 = time.monotonic()

        def tick(statuses: list[Any]) -> None:
            nonlocal total
            total = sum(s.frames_processed for s in statuses)
            done = [s.progress or 0.0 for s in statuses]
            if progress is not None and done:
                progress(f"pipeline with the {kind} head (% of frames)", round(100 * sum(done) / len(done)), 100)

        try:
            pipeline.run(None, threading.Event(), tick)
            seconds = time.monotonic() - t0
        finally:
            final = pipeline.stop()
        processed = sum(s.frames_processed for s in final) or total
        client = EventClient(server.url)
        try:
            clip = [ev for ev in client.replay(datetime.fromtimestamp(0, UTC)) if ev.kind == "clip"]
        finally:
            client.close()
        return clip, seconds, processed


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- detection -------------------------------------------------------------------------------------


def box_iou(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """IoU matrix of xyxy boxes (N, 4) x (M, 4)."""
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(br - tl, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    iou: npt.NDArray[np.float64] = inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)
    return iou


def match_frame(
    pred: npt.NDArray[np.float64], gt_boxes: npt.NDArray[np.float64], gt_cls: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """(P, 10) true-positive flags: each GT box matched at most once, highest confidence first."""
    tp = np.zeros((len(pred), len(IOU_THRESHOLDS)), bool)
    if len(pred) == 0 or len(gt_boxes) == 0:
        return tp
    iou = box_iou(pred[:, :4], gt_boxes)
    iou[pred[:, 5][:, None].astype(np.int64) != gt_cls[None]] = 0.0
    order = np.argsort(-pred[:, 4], kind="stable")
    for t, thr in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(len(gt_boxes), bool)
        for i in order:
            cand = np.where(~taken & (iou[i] >= thr), iou[i], -1.0)
            j = int(cand.argmax())
            if cand[j] >= 0:
                taken[j] = True
                tp[i, t] = True
    return tp


def score_detection(
    videos: list[tuple[Path, dict[str, Any]]],
    recorded: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    from ultralytics.utils.metrics import ap_per_class

    tps, confs, pcls, tcls = [], [], [], []
    for video, gt in videos:
        for row in recorded.get(video.stem, []):
            objs = gt["frames"][row["frame_id"]]["objects"] if row["frame_id"] < len(gt["frames"]) else []
            gt_boxes = np.array([o["xyxy"] for o in objs], np.float64).reshape(-1, 4)
            gt_cls = np.array([CLASSES.index(o["class"]) for o in objs], np.int64)
            pred = np.array(row["boxes"], np.float64).reshape(-1, 6)
            tps.append(match_frame(pred, gt_boxes, gt_cls))
            confs.append(pred[:, 4])
            pcls.append(pred[:, 5])
            tcls.append(gt_cls)
    if not tps:
        raise EvalError("the pipeline recorded no frames")
    tp, conf, pred_cls, target_cls = (np.concatenate(x) for x in (tps, confs, pcls, tcls))
    result = ap_per_class(tp, conf, pred_cls, target_cls)
    ap, classes = result[5], result[6]
    per_class = {
        CLASSES[int(c)]: {
            "map50": float(ap[i, 0]),
            "map50_95": float(ap[i].mean()),
            "instances": int((target_cls == c).sum()),
        }
        for i, c in enumerate(classes)
    }
    for c, name in enumerate(CLASSES):  # a class never predicted scores 0, not "missing"
        if name not in per_class and (target_cls == c).any():
            per_class[name] = {"map50": 0.0, "map50_95": 0.0, "instances": int((target_cls == c).sum())}
    present = [v for v in per_class.values() if v["instances"] > 0]
    return {
        "map50": float(np.mean([v["map50"] for v in present])),
        "map50_95": float(np.mean([v["map50_95"] for v in present])),
        "per_class": per_class,
        "frames": len(tps),
    }


def score_scenes(
    videos: list[tuple[Path, dict[str, Any]]], recorded: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    hits = total = 0
    for video, gt in videos:
        for row in recorded.get(video.stem, []):
            if row["frame_id"] < len(gt["frames"]):
                total += 1
                hits += row["scene"] == gt["frames"][row["frame_id"]]["scene"]
    return {"accuracy": hits / max(1, total), "frames": total}


# -- events ----------------------------------------------------------------------------------------


def event_segments(clip_events: list[Any]) -> dict[str, list[tuple[str, int, int]]]:
    """camera -> [(label, start frame, end frame)] of each clip incident."""
    spans: dict[str, dict[str, Any]] = {}
    for ev in clip_events:
        s = spans.setdefault(ev.incident_id, {"camera": ev.camera_id, "label": ev.label, "start": None, "end": 0})
        if ev.start_frame_id is not None:
            s["start"] = ev.start_frame_id if s["start"] is None else min(s["start"], ev.start_frame_id)
        s["end"] = max(s["end"], ev.frame_id)
    out: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for s in spans.values():
        out[s["camera"]].append((s["label"], s["start"] if s["start"] is not None else s["end"], s["end"]))
    return out


def temporal_iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]) + 1)
    union = (a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter
    return inter / union if union > 0 else 0.0


def score_events(videos: list[tuple[Path, dict[str, Any]]], clip_events: list[Any]) -> dict[str, Any]:
    preds = event_segments(clip_events)
    per_label: dict[str, dict[str, int]] = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0})
    segments: dict[str, dict[str, list[list[Any]]]] = {}
    for video, gt in videos:
        truth = [(a["label"], a["start_frame"], a["end_frame"]) for a in gt["activities"]]
        pred = sorted(preds.get(video.stem, []), key=lambda p: p[1])
        segments[video.stem] = {"truth": [list(t) for t in truth], "predicted": [list(p) for p in pred]}
        used: set[int] = set()
        pairs = sorted(
            (
                (temporal_iou((p[1], p[2]), (t[1], t[2])), i, j)
                for i, p in enumerate(pred)
                for j, t in enumerate(truth)
                if p[0] == t[0]
            ),
            reverse=True,
        )
        matched_pred: set[int] = set()
        for iou, i, j in pairs:
            if iou < TIOU or i in matched_pred or j in used:
                continue
            matched_pred.add(i)
            used.add(j)
            per_label[truth[j][0]]["tp"] += 1
        for i, p in enumerate(pred):
            if i not in matched_pred:
                per_label[p[0]]["fp"] += 1
        for j, t in enumerate(truth):
            if j not in used:
                per_label[t[0]]["fn"] += 1
    tp = sum(v["tp"] for v in per_label.values())
    fp = sum(v["fp"] for v in per_label.values())
    fn = sum(v["fn"] for v in per_label.values())
    return {
        **_prf(tp, fp, fn),
        "per_label": {k: {**v, **_prf(v["tp"], v["fp"], v["fn"])} for k, v in sorted(per_label.items())},
        "segments": segments,  # per video: [label, start frame, end frame] of truth and of predictions
    }


def _prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "tp": tp, "fp": fp, "fn": fn}


def render_table(report: dict[str, Any]) -> Any:
    """A rich table of the figures."""
    from rich.table import Table

    table = Table(title=f"vigil eval: {report['videos']} videos, {report['frames']} frames ({report['data']})")
    table.add_column("what")
    table.add_column("figure", justify="right")
    det = report["detection"]
    table.add_row("detection mAP50 / mAP50-95", f"{det['map50']:.3f} / {det['map50_95']:.3f}")
    for name, v in det["per_class"].items():
        table.add_row(f"  {name} ({v['instances']} boxes)", f"{v['map50']:.3f} / {v['map50_95']:.3f}")
    table.add_row("scene accuracy", f"{report['scene']['accuracy']:.3f} ({report['scene']['frames']} frames)")
    for kind, ev in report["events"].items():
        table.add_row(
            f"events, {kind} head: P / R / F1 (tIoU>=0.5)",
            f"{ev['precision']:.3f} / {ev['recall']:.3f} / {ev['f1']:.3f}",
        )
        for label, v in ev["per_label"].items():
            table.add_row(f"  {label}", f"tp {v['tp']} fp {v['fp']} fn {v['fn']}  F1 {v['f1']:.2f}")
    table.add_row("pipeline frames/s (all cameras)", f"{report['fps']:.1f}")
    return table
