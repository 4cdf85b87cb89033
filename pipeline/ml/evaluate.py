"""``vigil eval``: run the full pipeline over labelled videos and score what it reports.

Each video of a ``vigil synth`` folder becomes a camera in file mode (every frame). The real
pipeline runs (Ray actors, detector, tracker, ViT, clip head, event engine, an embedded Redis);
the cameras also record each frame's raw detections and scene label. Then:

- detection: mAP50 and mAP50-95 per class (ultralytics' ``ap_per_class``) of the recorded
  detections against the ground-truth boxes, at the config's detector confidence threshold;
- scene: accuracy of the per-frame scene label;
- attributes (with a crop classifier, the ViT's or ``models.zero_shot.attributes``): accuracy of the
  person crop labels ``down`` / ``upright`` against the posture the script gives (down inside a fall
  segment of that person once it has settled, upright otherwise), each labelled box matched to a
  true person box at IoU >= 0.5;
- events: the clip events published to Redis, as segments ``[start_frame_id, last frame_id]`` per
  incident, matched one-to-one to ground-truth activity segments of the same label at temporal
  IoU >= 0.5 -> precision, recall, F1 (once per clip head);
- rules (with ``--rules``, a camera's ``analytics`` section put on every camera): the zone and line
  events against the same analytics run over the ground-truth tracks (``TrackAnalytics`` on the
  true boxes, ids and classes, frame by frame at the video's fps): crossings counted per line and
  direction; zone entries matched one-to-one (same zone, first frames inside within ``MATCH_S``,
  the predicted box at the event's frame over the true object's box at IoU >= 0.5) -> F1; the
  dwell error of matched stays; the speed error of matched crossings against the world's speed of
  the object (``speed_px_s``, in sets made with ``vigil synth --scenario rules``);
- fps: frames processed per second of wall time, all cameras together.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.core.config import CameraConfig, CameraMode, VigilConfig
from pipeline.core.config.analytics import AnalyticsConfig
from pipeline.ml.synth.actors import CLASSES
from pipeline.ml.synth.dataset import load_set
from pipeline.ml.synth.posture import true_posture

Progress = Callable[[str, float, float], None]
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
TIOU = 0.5
MATCH_S = 1.0  # rules: a predicted entry or crossing this close in time to a true one may match it
MATCH_IOU = 0.5  # ... and its box must overlap the true object's box this much at the event's frame
MIN_TRUE_CROSSINGS = 10  # rules: a line and direction with fewer true crossings has no count error
SEARCH_DEPTH = 10_000  # results read back per query when scoring search
CONFIG_RUN = "models"  # the run of the config's own models, where no clip heads are given
EVAL_MAXLEN = 10_000_000  # events kept in each stream of an evaluation's own Redis


class EvalError(RuntimeError):
    """The evaluation could not run (pipeline failed to start, Redis unavailable, ...)."""


def evaluate(
    cfg: VigilConfig,
    data: Path,
    heads: dict[str, Path],
    progress: Progress | None = None,
    rules: AnalyticsConfig | None = None,
) -> dict[str, Any]:
    """Run the pipeline once per clip head over ``data``; return the figures (see module doc).
    With ``rules`` (a camera's analytics section) the first run also scores zones and lines; a
    config without a clip head then runs once, for the rules (and the scenes, with a ViT)."""
    off = [f"models.{key}" for key in ("classifier", "temporal") if getattr(cfg.models, key) is None]
    if cfg.models.scene_model is not None and "models.classifier" in off:
        off.remove("models.classifier")  # the scenes come from models.zero_shot
    if off and rules is None and cfg.models.zero_shot is None:
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
    runs: dict[str, Path | None] = dict(heads) if cfg.models.temporal is not None else {}
    if not runs:
        runs = {CONFIG_RUN: None}  # no heads given: one run of the config's own models
    with tempfile.TemporaryDirectory(prefix="vigil-eval-") as tmp:
        for n, (kind, weights) in enumerate(runs.items()):
            record = Path(tmp) / f"record-{kind}"
            run_cfg = eval_config(cfg, videos, weights, Path(tmp) / f"spool-{kind}", rules)
            queries = activity_queries(run_cfg) if n == 0 else None
            published, seconds, processed, ranked = run_pipeline(run_cfg, record, kind, progress, queries)
            if ranked:
                report["search"] = score_search(videos, published, ranked)
            fps.append(processed / seconds)
            if weights is not None or run_cfg.models.temporal is not None:
                events[kind] = score_events(videos, [ev for ev in published if ev.kind == "clip"])
            if n == 0:
                recorded = {p.stem: _read_jsonl(p) for p in record.glob("*.jsonl")}
                report["detection"] = score_detection(videos, recorded)
                if cfg.models.scene_model is not None:
                    report["scene"] = score_scenes(videos, recorded)
                if cfg.models.crop_model is not None:
                    report["attributes"] = score_attributes(videos, recorded)
                if rules is not None:
                    report["rules"] = score_rules(videos, published, rules)
    report["events"] = events
    report["fps"] = float(np.mean(fps))
    return report


def eval_config(
    cfg: VigilConfig,
    videos: list[tuple[Path, dict[str, Any]]],
    weights: Path | None,
    spool: Path,
    rules: AnalyticsConfig | None = None,
) -> VigilConfig:
    """The user's models and event settings; one file-mode camera per video, with the analytics
    ``rules``; the clip head ``weights`` (None: the config's models as they are); an embedded Redis."""
    cameras = [
        CameraConfig(
            id=video.stem, url=str(video.resolve()), mode=CameraMode.FILE, fps=gt["fps"], loop=False, analytics=rules
        )
        for video, gt in videos
    ]
    models = cfg.models
    if weights is not None:
        # A checkpoint brings its own head architecture and labels; window and stride stay the config's.
        assert cfg.models.temporal is not None  # evaluate() runs heads only with a clip head
        temporal = cfg.models.temporal.model_copy(update={"weights": weights})
        zs = cfg.models.zero_shot  # the head under test labels with its own labels, not prompts
        if zs is not None and zs.activities:
            rest = zs.model_copy(update={"activities": {}})
            zs = rest if rest.scenes or rest.attributes else None
        models = cfg.models.model_copy(update={"temporal": temporal, "zero_shot": zs})
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
            # Keep every event of the run: a small stream_maxlen would drop the first ones before they are scored.
            "redis": cfg.redis.model_copy(
                update={"url": None, "stream_maxlen": max(cfg.redis.stream_maxlen, EVAL_MAXLEN)}
            ),
        }
    )


def run_pipeline(
    cfg: VigilConfig,
    record: Path,
    kind: str,
    progress: Progress | None,
    queries: dict[str, npt.NDArray[np.float32]] | None = None,
) -> tuple[list[Any], float, int, dict[str, list[str]]]:
    """Run until every camera's file has ended; return (the events published, seconds, frames
    processed, and for each of ``queries`` (label -> a vector in the clip head's text space) the
    ids of the clip events ``vigil events search`` ranks for it, best first)."""
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
            published = [ev for ev in client.replay(datetime.fromtimestamp(0, UTC)) if ev.kind != "object"]
            ranked = {}
            if queries:
                import redis

                from pipeline.events.search import EmbeddingIndex
                from workers.clip_head import TEXT_SPACE

                index = EmbeddingIndex(redis.Redis.from_url(server.url))
                for label, query in queries.items():
                    hits = index.search(query, TEXT_SPACE, kinds=["clip"], count=SEARCH_DEPTH)
                    ranked[label] = [hit.event_id for hit in hits]
        finally:
            client.close()
        return published, seconds, processed, ranked


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


def score_attributes(
    videos: list[tuple[Path, dict[str, Any]]], recorded: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """Person crop labels (``down`` / ``upright``) against the true posture: each recorded labelled
    box matched to the true person box it overlaps most (IoU >= 0.5); per-label recall beside."""
    hits = total = 0
    per_label: dict[str, dict[str, int]] = defaultdict(lambda: {"true": 0, "found": 0})
    for video, gt in videos:
        for row in recorded.get(video.stem, []):
            f = row["frame_id"]
            if f >= len(gt["frames"]) or not row.get("crops"):
                continue
            people = [o for o in gt["frames"][f]["objects"] if o["class"] == "person"]
            if not people:
                continue
            truth_boxes = np.array([o["xyxy"] for o in people], np.float64)
            for *box, label, _conf in row["crops"]:
                iou = box_iou(np.array([box], np.float64), truth_boxes)[0]
                k = int(iou.argmax())
                if iou[k] < MATCH_IOU or (want := true_posture(gt, f, people[k]["track_id"])) is None:
                    continue
                total += 1
                hits += label == want
                per_label[want]["true"] += 1
                per_label[want]["found"] += label == want
    recall = {k: v["found"] / v["true"] for k, v in sorted(per_label.items()) if v["true"]}
    return {"accuracy": hits / total if total else None, "crops": total, "recall": recall}


# -- events ----------------------------------------------------------------------------------------


def activity_queries(cfg: VigilConfig) -> dict[str, npt.NDArray[np.float32]] | None:
    """With ``models.zero_shot.activities``: each activity's query for event search, its prompts as the
    clip head sees them (the same mean text embedding)."""
    zs = cfg.models.zero_shot
    if zs is None or not zs.activities or cfg.models.temporal is None:
        return None
    from workers.zero_shot import activity_head

    head = activity_head(cfg.models.temporal, zs)
    assert head is not None and hasattr(head, "prompt_embeddings")
    return {label: np.asarray(v, np.float32) for label, v in zip(head.labels, head.prompt_embeddings, strict=True)}


def score_search(videos: Videos, published: list[Any], ranked: dict[str, list[str]]) -> dict[str, Any]:
    """Event search by text: for each activity's prompt, the precision of its top R results, R the
    number of clip incidents that truly show that activity (their span overlaps a true segment of it
    at temporal IoU >= 0.5); an incident's start event carries its embedding."""
    spans: dict[str, dict[str, Any]] = {}
    for ev in published:
        if ev.kind != "clip":
            continue
        s = spans.setdefault(ev.incident_id, {"camera": ev.camera_id, "start": None, "end": 0, "event": None})
        if ev.phase == "start":
            s["event"] = ev.event_id
        first = ev.start_frame_id if ev.start_frame_id is not None else ev.frame_id
        s["start"] = first if s["start"] is None else min(s["start"], first)
        s["end"] = max(s["end"], ev.frame_id)
    truth_of: dict[str, str | None] = {}
    by_stem = {video.stem: gt for video, gt in videos}
    for s in spans.values():
        gt = by_stem.get(s["camera"])
        best = (TIOU, None)
        for a in gt["activities"] if gt else []:
            iou = temporal_iou((s["start"], s["end"]), (a["start_frame"], a["end_frame"]))
            if iou >= best[0]:
                best = (iou, a["label"])
        if s["event"] is not None:
            truth_of[s["event"]] = best[1]
    per_label: dict[str, Any] = {}
    for label, ids in ranked.items():
        r = sum(1 for t in truth_of.values() if t == label)
        if r == 0:
            continue
        top = [i for i in ids if i in truth_of][:r]
        per_label[label] = {"r": r, "r_precision": sum(truth_of[i] == label for i in top) / r}
    mean = float(np.mean([v["r_precision"] for v in per_label.values()])) if per_label else None
    return {"r_precision": mean, "per_label": per_label, "searched": len(truth_of)}


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


# -- rules (zones and lines) -----------------------------------------------------------------------

Box = tuple[float, float, float, float]
Videos = list[tuple[Path, dict[str, Any]]]


@dataclass(frozen=True)
class Crossing:
    """A line crossing: true (the analytics on the ground-truth tracks) or predicted (a ``line`` event)."""

    line: str
    direction: str
    frame: int
    track_id: int
    bbox: Box | None = None
    speed: float | None = None
    speed_unit: str | None = None
    label: str = ""  # the object's class


@dataclass(frozen=True)
class Entry:
    """An object's stay in a zone: ``start_frame`` its first frame inside, ``frame`` the frame its
    entry was confirmed (the event's, whose box is ``bbox``), ``dwell_s`` from its first to its last
    frame inside (None where an end is not known)."""

    zone: str
    start_frame: int
    frame: int
    track_id: int
    bbox: Box | None = None
    dwell_s: float | None = None


def truth_rules(gt: dict[str, Any], rules: AnalyticsConfig) -> tuple[list[Crossing], list[Entry]]:
    """What the track analytics sees on a video's ground truth: the true boxes, track ids and
    classes, frame by frame at the video's fps. A stay has a dwell only where both its ends are in
    the video: not one inside on the first frame, nor one still inside when the video ends."""
    from pipeline.core.messages import Detections
    from workers.analytics import TrackAnalytics

    fps = float(gt["fps"])
    analytics = TrackAnalytics(rules, fps)
    names = tuple(gt.get("classes", CLASSES))
    size = (int(gt["width"]), int(gt["height"]))
    crossings: list[Crossing] = []
    entries: list[Entry] = []
    open_stays: dict[tuple[str, int], int] = {}  # (zone, object) -> its entry

    def take(hits: Iterable[Any], video_ended: bool) -> None:
        for hit in hits:
            if hit.what == "cross":
                where = (hit.line or "", hit.direction or "")
                crossings.append(
                    Crossing(*where, hit.frame_id, hit.track_id, hit.bbox_xyxy, hit.speed, hit.speed_unit, hit.label)
                )
            elif hit.what == "enter":
                open_stays[(hit.zone or "", hit.object_key)] = len(entries)
                entries.append(Entry(hit.zone or "", hit.since_frame, hit.frame_id, hit.track_id, hit.bbox_xyxy))
            elif hit.what == "exit":
                i = open_stays.pop((hit.zone or "", hit.object_key), None)
                if i is not None and not video_ended and entries[i].start_frame > 0:
                    entries[i] = replace(entries[i], dwell_s=hit.dwell_s)

    for frame in gt["frames"]:
        objs = frame["objects"]
        det = Detections(
            xyxy=np.array([o["xyxy"] for o in objs], np.float32).reshape(-1, 4),
            confidence=np.ones(len(objs), np.float32),
            class_id=np.array([names.index(o["class"]) for o in objs], np.int64),
            tracker_id=np.array([o["track_id"] for o in objs], np.int64),
            class_names=names,
        )
        take(analytics.update(frame["frame"], frame["frame"] / fps, det, size).hits, video_ended=False)
    take(analytics.close(max(0, len(gt["frames"]) - 1)), video_ended=True)
    return crossings, entries


def predicted_rules(events: Iterable[Any]) -> dict[str, tuple[list[Crossing], list[Entry]]]:
    """camera -> (crossings, zone stays) of the published ``line`` and ``zone`` events; a stay's
    dwell comes from its ``end`` event."""
    out: dict[str, tuple[list[Crossing], list[Entry]]] = defaultdict(lambda: ([], []))
    starts: dict[str, tuple[str, int]] = {}  # incident -> (camera, its entry)
    dwell: dict[str, float | None] = {}
    for ev in events:
        if ev.kind == "line" and ev.line and ev.direction:
            crossing = Crossing(
                ev.line, ev.direction, ev.frame_id, _tid(ev.track_id), ev.bbox_xyxy, ev.speed, ev.speed_unit, ev.label
            )
            out[ev.camera_id][0].append(crossing)
        elif ev.kind == "zone" and ev.phase == "start":
            entries = out[ev.camera_id][1]
            starts[ev.incident_id] = (ev.camera_id, len(entries))
            first = ev.start_frame_id if ev.start_frame_id is not None else ev.frame_id
            entries.append(Entry(ev.zone or "", first, ev.frame_id, _tid(ev.track_id), ev.bbox_xyxy))
        elif ev.kind == "zone" and ev.phase == "end":
            dwell[ev.incident_id] = ev.dwell_s
    for incident, (camera, i) in starts.items():
        if dwell.get(incident) is not None:
            entries = out[camera][1]
            entries[i] = replace(entries[i], dwell_s=dwell[incident])
    return dict(out)


def _tid(track_id: int | None) -> int:
    return -1 if track_id is None else track_id


def _true_box(gt: dict[str, Any], frame: int, track_id: int) -> list[float] | None:
    if not 0 <= frame < len(gt["frames"]):
        return None
    return next((o["xyxy"] for o in gt["frames"][frame]["objects"] if o["track_id"] == track_id), None)


def match_rules(
    pred: list[Any], truth: list[Any], gt: dict[str, Any], place: Callable[[Any], Any], when: Callable[[Any], int]
) -> list[tuple[int, int]]:
    """One-to-one (prediction, truth) index pairs: the same ``place`` (zone; line and direction),
    ``when`` within MATCH_S, and the predicted box at the prediction's frame over the true object's
    box at that frame at IoU >= MATCH_IOU; the closest in time first, then the best overlap."""
    window = MATCH_S * float(gt["fps"]) + 1e-9
    candidates = []
    for i, p in enumerate(pred):
        if p.bbox is None:
            continue
        for j, t in enumerate(truth):
            dt = abs(when(p) - when(t))
            if place(p) != place(t) or dt > window:
                continue
            box = _true_box(gt, p.frame, t.track_id)
            if box is None:
                continue
            iou = float(box_iou(np.array([p.bbox], np.float64), np.array([box], np.float64))[0, 0])
            if iou >= MATCH_IOU:
                candidates.append((dt, -iou, i, j))
    pairs: list[tuple[int, int]] = []
    used_p: set[int] = set()
    used_t: set[int] = set()
    for _, _, i, j in sorted(candidates):
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            pairs.append((i, j))
    return pairs


def world_speed(gt: dict[str, Any], frame: int, track_id: int) -> float | None:
    """The object's true speed (``speed_px_s``) at ``frame``, or at the nearest frame within
    MATCH_S where it is in the ground truth; None where the set has no world speeds."""
    reach = round(MATCH_S * float(gt["fps"]))
    for d in range(reach + 1):
        for f in {frame - d, frame + d}:
            if 0 <= f < len(gt["frames"]):
                obj = next((o for o in gt["frames"][f]["objects"] if o["track_id"] == track_id), None)
                if obj is not None and "speed_px_s" in obj:
                    return float(obj["speed_px_s"])
    return None


def score_lines(
    videos: Videos,
    truth: dict[str, list[Crossing]],
    pred: dict[str, list[Crossing]],
    lines: Iterable[tuple[str, tuple[str, str]]] = (),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(lines, speed): crossings counted per line and direction over the set, the count error of the
    pairs with at least MIN_TRUE_CROSSINGS true crossings, the matching; and the speed error of the
    matched crossings against the world's speed (keyed by video stem)."""
    counts: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    for name, directions in lines:
        for d in directions:
            counts[name][d] = {"predicted": 0, "true": 0}
    by_class: dict[str, dict[str, int]] = defaultdict(lambda: {"predicted": 0, "true": 0})
    tp = fp = fn = 0
    missed: list[list[Any]] = []
    extra: list[list[Any]] = []
    errors: list[float] = []
    class_errors: dict[str, list[float]] = defaultdict(list)
    units: set[str] = set()
    has_world = any("speed_px_s" in o for _, gt in videos for fr in gt["frames"] for o in fr["objects"])
    for video, gt in videos:
        t, p = truth.get(video.stem, []), pred.get(video.stem, [])
        for c, key in [*((c, "true") for c in t), *((c, "predicted") for c in p)]:
            counts[c.line].setdefault(c.direction, {"predicted": 0, "true": 0})[key] += 1
            by_class[c.label or "?"][key] += 1
        pairs = match_rules(p, t, gt, lambda c: (c.line, c.direction), lambda c: c.frame)
        tp += len(pairs)
        fp += len(p) - len(pairs)
        fn += len(t) - len(pairs)
        matched_p, matched_t = {i for i, _ in pairs}, {j for _, j in pairs}
        missed += [
            [video.stem, c.line, c.direction, c.frame, c.track_id] for j, c in enumerate(t) if j not in matched_t
        ]
        extra += [[video.stem, c.line, c.direction, c.frame, c.track_id] for i, c in enumerate(p) if i not in matched_p]
        for i, j in pairs:
            c = p[i]
            if c.speed is None:
                continue
            units.add(c.speed_unit or "px/s")
            world = world_speed(gt, c.frame, t[j].track_id)
            if c.speed_unit in (None, "px/s") and world is not None and world > 0:
                errors.append(abs(c.speed - world) / world)
                class_errors[t[j].label or "?"].append(errors[-1])
    qualified = sorted(
        f"{line}/{d}" for line, dirs in counts.items() for d, v in dirs.items() if v["true"] >= MIN_TRUE_CROSSINGS
    )
    per_line: dict[str, dict[str, dict[str, Any]]] = {}
    per_pair: dict[str, float | None] = {}
    for line, dirs in counts.items():
        per_line[line] = {}
        for d, v in dirs.items():
            error = abs(v["predicted"] - v["true"]) / v["true"] if v["true"] else None
            per_line[line][d] = {**v, "error": error}
            per_pair[f"{line}/{d}"] = error
    count_error = max((e for k in qualified if (e := per_pair[k]) is not None), default=None)
    lines_out = {
        "per_line": per_line,
        "per_class": dict(sorted(by_class.items())),  # crossings of each class, all lines and directions
        "count_error": count_error,
        "count_error_pairs": qualified,
        "min_true": MIN_TRUE_CROSSINGS,
        "matched": _prf(tp, fp, fn),
        "missed": missed,  # [video, line, direction, frame, track id] of true crossings no event matched
        "extra": extra,  # ... of line events that matched no true crossing
    }
    speed: dict[str, Any] = {
        "mape": float(np.mean(errors)) if errors else None,
        "crossings": len(errors),
        "per_class": {k: {"mape": float(np.mean(v)), "crossings": len(v)} for k, v in sorted(class_errors.items())},
    }
    if not has_world:
        speed["note"] = "the set has no world speeds (speed_px_s): make it with `vigil synth --scenario rules`"
    elif units - {"px/s"}:
        speed["note"] = f"the events give speeds in {', '.join(sorted(units - {'px/s'}))}; world speeds are in px/s"
    elif not errors:
        speed["note"] = "no matched crossing with a speed"
    return lines_out, speed


def score_zones(
    videos: Videos, truth: dict[str, list[Entry]], pred: dict[str, list[Entry]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(zones, dwell): zone entries matched one-to-one (``match_rules`` on the first frames inside)
    -> precision, recall, F1; the mean absolute dwell error of matched stays whose ends are both
    known (keyed by video stem)."""
    tp = fp = fn = 0
    per_zone: dict[str, dict[str, int]] = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0})
    missed: list[list[Any]] = []
    extra: list[list[Any]] = []
    dwell_errors: list[float] = []
    for video, gt in videos:
        t, p = truth.get(video.stem, []), pred.get(video.stem, [])
        pairs = match_rules(p, t, gt, lambda e: e.zone, lambda e: e.start_frame)
        matched_p, matched_t = {i for i, _ in pairs}, {j for _, j in pairs}
        tp, fp, fn = tp + len(pairs), fp + len(p) - len(pairs), fn + len(t) - len(pairs)
        for i, j in pairs:
            per_zone[t[j].zone]["tp"] += 1
            pd, td = p[i].dwell_s, t[j].dwell_s
            if pd is not None and td is not None:
                dwell_errors.append(abs(pd - td))
        for i, e in enumerate(p):
            if i not in matched_p:
                per_zone[e.zone]["fp"] += 1
                extra.append([video.stem, e.zone, e.start_frame, e.frame, e.track_id])
        for j, e in enumerate(t):
            if j not in matched_t:
                per_zone[e.zone]["fn"] += 1
                missed.append([video.stem, e.zone, e.start_frame, e.frame, e.track_id])
    prf = _prf(tp, fp, fn)
    zones = {
        "entry_f1": prf["f1"],
        **{k: v for k, v in prf.items() if k != "f1"},
        "per_zone": {k: {**v, **_prf(v["tp"], v["fp"], v["fn"])} for k, v in sorted(per_zone.items())},
        "missed": missed,  # [video, zone, first frame inside, confirmed frame, track id] of true entries unmatched
        "extra": extra,  # ... of zone events that matched no true entry
    }
    dwell = {"mae_s": float(np.mean(dwell_errors)) if dwell_errors else None, "stays": len(dwell_errors)}
    return zones, dwell


def score_rules(videos: Videos, events: Iterable[Any], rules: AnalyticsConfig) -> dict[str, Any]:
    """The zone and line events against the same analytics on the ground truth (see module doc)."""
    truth = {video.stem: truth_rules(gt, rules) for video, gt in videos}
    pred = predicted_rules(events)
    lines, speed = score_lines(
        videos,
        {k: v[0] for k, v in truth.items()},
        {k: v[0] for k, v in pred.items()},
        [(ln.name, ln.directions) for ln in rules.lines],
    )
    zones, dwell = score_zones(videos, {k: v[1] for k, v in truth.items()}, {k: v[1] for k, v in pred.items()})
    return {"lines": lines, "zones": zones, "dwell": dwell, "speed": speed}


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
    zs = report.get("zero_shot")
    rows = [("", report)] if zs is None else [(" from prompts", zs), (" of the trained models", zs["trained"])]
    for where, figures in rows:
        if (scene := figures.get("scene")) is not None:
            table.add_row(f"scene accuracy{where}", f"{scene['accuracy']:.3f} ({scene['frames']} frames)")
        if (attrs := figures.get("attributes")) is not None:
            shown = "n/a" if attrs["accuracy"] is None else f"{attrs['accuracy']:.3f}"
            table.add_row(f"person posture accuracy{where}", f"{shown} ({attrs['crops']} crops)")
    heads = dict(report["events"])
    if zs is not None:
        heads = {f"{kind} (trained)": ev for kind, ev in (zs["trained"].get("events") or {}).items()}
        if zs.get("activities") is not None:
            heads = {"from prompts": zs["activities"], **heads}
    for kind, ev in heads.items():
        table.add_row(
            f"events, {kind} head: P / R / F1 (tIoU>=0.5)",
            f"{ev['precision']:.3f} / {ev['recall']:.3f} / {ev['f1']:.3f}",
        )
        for label, v in ev["per_label"].items():
            table.add_row(f"  {label}", f"tp {v['tp']} fp {v['fp']} fn {v['fn']}  F1 {v['f1']:.2f}")
    if zs is not None and (search := zs.get("search")) is not None and search["r_precision"] is not None:
        per = ", ".join(f"{k} {v['r_precision']:.2f}" for k, v in search["per_label"].items())
        table.add_row("event search by the prompts: mean R-precision", f"{search['r_precision']:.3f}")
        table.add_row(f"  ({search['searched']} clip events searched)", per)
    if "rules" in report:
        _rules_rows(table, report["rules"])
    table.add_row("pipeline frames/s (all cameras)", f"{report['fps']:.1f}")
    return table


def _rules_rows(table: Any, rules: dict[str, Any]) -> None:
    def fig(value: float | None, spec: str = ".3f") -> str:
        return "n/a" if value is None else format(value, spec)

    lines, zones, dwell, speed = rules["lines"], rules["zones"], rules["dwell"], rules["speed"]
    pairs = lines["count_error_pairs"]
    table.add_row(
        f"line count error (pairs with >= {lines['min_true']} true crossings)",
        f"{fig(lines['count_error'])} ({', '.join(pairs) if pairs else 'none'})",
    )
    for line, directions in lines["per_line"].items():
        for direction, v in directions.items():
            table.add_row(f"  {line} {direction}: predicted / true", f"{v['predicted']} / {v['true']}")
    m = lines["matched"]
    table.add_row("  crossings matched: P / R", f"{m['precision']:.3f} / {m['recall']:.3f}")
    table.add_row(
        "zone entries: P / R / F1",
        f"{zones['precision']:.3f} / {zones['recall']:.3f} / {zones['entry_f1']:.3f}",
    )
    table.add_row("  tp / fp / fn", f"{zones['tp']} / {zones['fp']} / {zones['fn']}")
    table.add_row(f"dwell MAE, s ({dwell['stays']} stays)", fig(dwell["mae_s"], ".2f"))
    table.add_row(f"speed MAPE at crossings ({speed['crossings']})", fig(speed["mape"]))
    if "note" in speed:
        table.add_row("  speed", speed["note"])
