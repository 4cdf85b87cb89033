"""Scoring of `vigil eval`: box matching, mAP, event matching at temporal IoU >= 0.5, and the rules' zone
entries, line counts, dwell and speed against the analytics on the true tracks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.core.config import parse_config
from pipeline.core.config.analytics import AnalyticsConfig
from pipeline.core.messages import Event
from pipeline.ml.evaluate import (
    MIN_TRUE_CROSSINGS,
    Crossing,
    Entry,
    box_iou,
    eval_config,
    event_segments,
    match_frame,
    predicted_rules,
    render_table,
    score_attributes,
    score_detection,
    score_events,
    score_lines,
    score_rules,
    score_search,
    score_zones,
    temporal_iou,
    truth_rules,
)
from pipeline.ml.synth.posture import true_posture


def test_box_iou_and_greedy_matching() -> None:
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    assert box_iou(a, b)[0] == pytest.approx([1.0, 1 / 3, 0.0])
    gt = np.array([[0, 0, 10, 10]], float)
    pred = np.array([[0, 0, 10, 10, 0.6, 0], [0, 0, 10, 9, 0.9, 0], [0, 0, 10, 10, 0.9, 1]], float)
    tp = match_frame(pred, gt, np.array([0]))
    # The most confident box of the right class takes the one GT box; the duplicate is a false
    # positive; the wrong class never matches.
    assert tp[:, 0].tolist() == [False, True, False]
    assert tp[1, -1] == False  # noqa: E712  IoU 0.9 fails the 0.95 threshold


def _video(
    acts: list[tuple[str, int, int]], frames: list[list[tuple[str, list[float]]]] | None = None
) -> dict[str, Any]:
    return {
        "num_frames": 200,
        "activities": [{"label": lab, "start_frame": s, "end_frame": e, "track_ids": [1]} for lab, s, e in acts],
        "frames": [
            {"frame": i, "scene": "street", "objects": [{"class": c, "xyxy": box} for c, box in objs]}
            for i, objs in enumerate(frames or [])
        ],
    }


def test_detection_scores_perfect_and_missing_predictions() -> None:
    frames = [[("person", [10.0, 10.0, 30.0, 60.0]), ("bag", [40.0, 40.0, 60.0, 60.0])] for _ in range(5)]
    videos = [(Path("v0.mp4"), _video([], frames))]
    perfect = {"v0": [{"frame_id": i, "boxes": [[10, 10, 30, 60, 0.9, 0], [40, 40, 60, 60, 0.8, 2]]} for i in range(5)]}
    good = score_detection(videos, perfect)
    assert good["map50"] == pytest.approx(1.0, abs=0.01) and good["map50_95"] == pytest.approx(1.0, abs=0.01)
    no_bags = {"v0": [{"frame_id": i, "boxes": [[10, 10, 30, 60, 0.9, 0]]} for i in range(5)]}
    half = score_detection(videos, no_bags)
    assert half["per_class"]["bag"]["map50"] == 0.0 and half["map50"] == pytest.approx(0.5, abs=0.01)


def _clip(incident: str, label: str, start: int, frame: int, phase: str = "start") -> Event:
    return Event(
        incident_id=incident,
        phase=phase,
        camera_id="v0",
        kind="clip",
        label=label,
        confidence=0.9,
        peak_confidence=0.9,
        started_at="2026-01-01T00:00:00Z",
        duration_s=1.0,
        frame_id=frame,
        start_frame_id=start,
        captured_at=0.0,
    )


def test_events_match_at_temporal_iou_half() -> None:
    assert temporal_iou((0, 9), (5, 14)) == pytest.approx(5 / 15)
    videos = [(Path("v0.mp4"), _video([("fall", 20, 59), ("run", 100, 129), ("crowd", 150, 189)]))]
    events = [
        _clip("a", "fall", 16, 40),
        _clip("a", "fall", 16, 63, "end"),  # [16, 63] vs [20, 59]: tIoU 0.83
        _clip("b", "run", 120, 135),
        _clip("b", "run", 120, 150, "end"),  # [120, 150] vs [100, 129]: 0.24
        _clip("c", "loiter", 150, 190),  # wrong label
    ]
    assert event_segments(events)["v0"] == [("fall", 16, 63), ("run", 120, 150), ("loiter", 150, 190)]
    score = score_events(videos, events)
    assert (score["tp"], score["fp"], score["fn"]) == (1, 2, 2)
    assert score["precision"] == pytest.approx(1 / 3) and score["recall"] == pytest.approx(1 / 3)
    assert score["per_label"]["fall"]["f1"] == 1.0 and score["per_label"]["crowd"]["recall"] == 0.0
    # One prediction cannot count twice.
    twice = score_events([(Path("v0.mp4"), _video([("fall", 20, 59), ("fall", 22, 60)]))], events[:2])
    assert (twice["tp"], twice["fn"]) == (1, 1)


# -- rules: zones and lines ------------------------------------------------------------------------

RULES = AnalyticsConfig.model_validate(
    {
        "zones": [{"name": "centre", "polygon": [[0.36, 0.5], [0.64, 0.5], [0.64, 1.0], [0.36, 1.0]]}],
        "lines": [{"name": "middle", "points": [[0.5, 0.0], [0.5, 1.0]], "directions": ["westbound", "eastbound"]}],
    }
)


def _walker_gt(hidden: range = range(0)) -> dict[str, Any]:
    """One person walking east at 200 px/s (x = 100 + 20 f), foot at y 300, out of sight on ``hidden``."""
    frames = []
    for f in range(30):
        x = 100 + 20 * f
        objs = [] if f in hidden or x > 620 else [_obj(1, [x - 10, 240, x + 10, 300], speed=200.0)]
        frames.append({"frame": f, "scene": "street", "objects": objs})
    return _gt(frames)


def _obj(track_id: int, box: list[float], cls: str = "person", speed: float | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"track_id": track_id, "class": cls, "xyxy": box, "visibility": 1.0}
    if speed is not None:
        obj["speed_px_s"] = speed
    return obj


def _gt(frames: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "fps": 10,
        "width": 640,
        "height": 360,
        "num_frames": len(frames),
        "classes": ["person", "vehicle", "bag"],
        "activities": [],
        "frames": frames,
    }


def test_truth_is_the_analytics_on_the_true_tracks_through_an_occlusion() -> None:
    crossings, entries = truth_rules(_walker_gt(hidden=range(10, 14)), RULES)
    # Hidden around the line (x 300..360) with its id kept: one crossing, on reappearing; with the
    # line drawn top to bottom, its second direction is towards the right of the picture.
    assert [(c.line, c.direction, c.frame, c.track_id, c.label) for c in crossings] == [
        ("middle", "eastbound", 14, 1, "person")
    ]
    # Inside x 230..410 from frame 7 (x 240) to 15 (x 400): entered at 7, confirmed at 9, 0.8 s inside.
    (entry,) = entries
    assert (entry.zone, entry.start_frame, entry.frame, entry.track_id) == ("centre", 7, 9, 1)
    assert entry.dwell_s == pytest.approx(0.8)
    # Still inside when the video ends: no dwell (its exit is not known).
    (cut,) = truth_rules(_gt(_walker_gt()["frames"][:12]), RULES)[1]
    assert cut.dwell_s is None


def _event(kind: str, phase: str, incident: str, frame: int, box: tuple[float, ...], **fields: object) -> Event:
    return Event.model_validate(
        {
            "incident_id": incident,
            "phase": phase,
            "camera_id": "v0",
            "kind": kind,
            "label": "person",
            "confidence": 0.9,
            "peak_confidence": 0.9,
            "started_at": "2026-01-01T00:00:00Z",
            "duration_s": 0.0,
            "frame_id": frame,
            "bbox_xyxy": box,
            "captured_at": 0.0,
            **fields,
        }
    )


def _line_event(frame: int, direction: str, box: tuple[float, ...], speed: float = 50.0) -> Event:
    fields = {"track_id": 7, "line": "middle", "direction": direction, "speed": speed, "speed_unit": "px/s"}
    return _event("line", "instant", f"l{frame}{direction}", frame, box, **fields)


def _zone_event(
    incident: str, phase: str, start: int, frame: int, box: tuple[float, ...], dwell: float | None
) -> Event:
    fields = {"start_frame_id": start, "track_id": 3, "zone": "centre", "dwell_s": dwell}
    return _event("zone", phase, incident, frame, box, **fields)


def test_published_events_become_crossings_and_stays() -> None:
    box = (10.0, 10.0, 30.0, 60.0)
    events = [
        _line_event(5, "eastbound", box),
        _zone_event("z1", "start", 3, 5, box, None),
        _zone_event("z1", "end", 3, 9, box, 1.5),
        _zone_event("z2", "start", 20, 22, box, None),  # still open
        _zone_event("z3", "end", 1, 4, box, 0.7),  # its start was never seen
    ]
    ((crossing,), (first, second)) = predicted_rules(events)["v0"]
    assert (crossing.line, crossing.direction, crossing.frame, crossing.speed, crossing.label) == (
        "middle",
        "eastbound",
        5,
        50.0,
        "person",
    )
    assert (first.start_frame, first.frame, first.dwell_s) == (3, 5, 1.5)
    assert (second.start_frame, second.dwell_s) == (20, None)


def _box_at(f: int) -> list[float]:
    return [float(f), 100.0, f + 20.0, 160.0]


def _crossing_set(true_per_direction: int) -> dict[str, Any]:
    """Frames where track 1 + k sits at a box that moves with the frame; each has world speed 50."""
    frames = []
    for f in range(40 * true_per_direction):
        objs = [_obj(1 + k, _box_at(f), speed=50.0) for k in range(2)]
        frames.append({"frame": f, "scene": "street", "objects": objs})
    return _gt(frames)


def test_line_counts_errors_matching_and_speed() -> None:
    n = MIN_TRUE_CROSSINGS + 2
    gt = _crossing_set(n)
    truth = [Crossing("middle", "eastbound", 40 * i, 1, label="person") for i in range(n)]
    truth += [Crossing("middle", "westbound", 40 * i + 20, 2, label="person") for i in range(n)]
    truth += [Crossing("side", "in", 40 * i, 1, label="person") for i in range(3)]  # too few to count
    pred = [
        # east: one missed, one late by more than a second, the others 55 px/s (10 % fast)
        *(
            Crossing("middle", "eastbound", 40 * i + 1, 7, tuple(_box_at(40 * i + 1)), 55.0, "px/s")
            for i in range(n - 2)
        ),
        Crossing("middle", "eastbound", 40 * (n - 2) + 11, 7, tuple(_box_at(40 * (n - 2) + 11)), 55.0, "px/s"),
        # west: all found, one with a box that misses the true one (counted, not matched)
        *(
            Crossing("middle", "westbound", 40 * i + 20, 8, tuple(_box_at(40 * i + 20)), 50.0, "px/s")
            for i in range(n - 1)
        ),
        Crossing("middle", "westbound", 40 * (n - 1) + 20, 8, (500.0, 100.0, 520.0, 160.0), 50.0, "px/s"),
    ]
    lines, speed = score_lines(
        [(Path("v0.mp4"), gt)], {"v0": truth}, {"v0": pred}, [("middle", ("westbound", "eastbound"))]
    )
    east, west = lines["per_line"]["middle"]["eastbound"], lines["per_line"]["middle"]["westbound"]
    assert (east["predicted"], east["true"], west["predicted"], west["true"]) == (n - 1, n, n, n)
    assert lines["per_line"]["side"]["in"] == {"predicted": 0, "true": 3, "error": 1.0}
    assert lines["count_error_pairs"] == ["middle/eastbound", "middle/westbound"]
    assert lines["count_error"] == pytest.approx(1 / n)
    m = lines["matched"]
    assert (m["tp"], m["fp"], m["fn"]) == (2 * n - 3, 2, 3 + 3)
    # Matched: n - 2 east at 10 % and n - 1 west at 0 %.
    assert speed["crossings"] == 2 * n - 3
    assert speed["mape"] == pytest.approx(0.1 * (n - 2) / (2 * n - 3))
    assert "note" not in speed


def test_line_speed_needs_world_speeds() -> None:
    gt = _crossing_set(1)
    for frame in gt["frames"]:
        for obj in frame["objects"]:
            del obj["speed_px_s"]
    truth = [Crossing("middle", "eastbound", 5, 1)]
    pred = [Crossing("middle", "eastbound", 5, 7, tuple(_box_at(5)), 55.0, "px/s")]
    lines, speed = score_lines([(Path("v0.mp4"), gt)], {"v0": truth}, {"v0": pred})
    assert lines["count_error"] is None and lines["count_error_pairs"] == []  # 1 true crossing: too few
    assert speed["mape"] is None and "no world speeds" in speed["note"]


def test_zone_entries_match_one_to_one_within_a_second_and_score_dwell() -> None:
    gt = _crossing_set(2)  # track 1 (and 2) at _box_at(f) on every frame
    truth = [
        Entry("centre", 10, 12, 1, dwell_s=4.0),
        Entry("centre", 50, 52, 1, dwell_s=None),  # exit not known
        Entry("centre", 70, 72, 1, dwell_s=2.0),
    ]
    pred = [
        Entry("centre", 12, 14, 3, tuple(_box_at(14)), dwell_s=4.5),  # 0.2 s late: matches, 0.5 s off
        Entry("centre", 13, 15, 4, tuple(_box_at(15)), dwell_s=1.0),  # a duplicate: one-to-one, extra
        Entry("centre", 52, 54, 3, tuple(_box_at(54)), dwell_s=9.0),  # matches; no true dwell
        Entry("centre", 82, 84, 3, tuple(_box_at(84)), dwell_s=2.0),  # 1.2 s late: no match
        Entry("west", 70, 72, 3, tuple(_box_at(72)), dwell_s=2.0),  # another zone
    ]
    zones, dwell = score_zones([(Path("v0.mp4"), gt)], {"v0": truth}, {"v0": pred})
    assert (zones["tp"], zones["fp"], zones["fn"]) == (2, 3, 1)
    assert zones["entry_f1"] == pytest.approx(2 * (2 / 5) * (2 / 3) / (2 / 5 + 2 / 3))
    assert zones["missed"] == [["v0", "centre", 70, 72, 1]]
    assert dwell == {"mae_s": pytest.approx(0.5), "stays": 1}
    # The predicted box must overlap the true object's box at the event's frame.
    far = [Entry("centre", 10, 12, 3, (400.0, 100.0, 420.0, 160.0), dwell_s=4.0)]
    assert score_zones([(Path("v0.mp4"), gt)], {"v0": truth[:1]}, {"v0": far})[0]["tp"] == 0


def test_eval_config_puts_the_rules_on_every_camera_and_keeps_every_event(tmp_path: Path) -> None:
    cfg = parse_config({"cameras": [{"id": "a", "url": "/x.mp4"}], "redis": {"stream_maxlen": 2000}})
    videos = [(tmp_path / "v0000.mp4", {"fps": 10}), (tmp_path / "v0001.mp4", {"fps": 5})]
    run = eval_config(cfg, videos, None, tmp_path / "spool", RULES)
    assert [c.analytics for c in run.cameras] == [RULES, RULES]
    assert run.models == cfg.models  # no head given: the config's own
    assert run.redis.stream_maxlen > 100_000 and run.redis.url is None


def test_the_table_shows_the_rules_figures() -> None:
    from rich.console import Console

    gt = _walker_gt(hidden=range(10, 14))
    videos = [(Path("v0.mp4"), gt)]
    events = [_line_event(14, "eastbound", (370.0, 240.0, 390.0, 300.0), speed=190.0)]
    rules = score_rules(videos, events, RULES)
    assert rules["lines"]["per_line"]["middle"]["eastbound"] == {"predicted": 1, "true": 1, "error": 0.0}
    assert rules["speed"]["mape"] == pytest.approx(0.05)
    assert rules["zones"]["fn"] == 1 and rules["dwell"]["mae_s"] is None
    report = {
        "videos": 1,
        "frames": 30,
        "data": "d",
        "detection": {"map50": 1.0, "map50_95": 1.0, "per_class": {}},
        "events": {},
        "rules": rules,
        "fps": 10.0,
    }
    console = Console(width=150, record=True)
    console.print(render_table(report))
    text = console.export_text()
    assert "middle eastbound: predicted / true" in text and "speed MAPE at crossings (1)" in text
    assert "dwell MAE, s (0 stays)" in text and "scene accuracy" not in text


def test_rules_need_no_clip_head(tmp_path: Path) -> None:
    from pipeline.ml.evaluate import evaluate

    cfg = parse_config({"cameras": [{"id": "a", "url": "/x.mp4"}], "models": {"classifier": None, "temporal": None}})
    with pytest.raises(FileNotFoundError, match=r"no index\.json"):  # past the check of the models, at the data
        evaluate(cfg, tmp_path, {}, rules=RULES)


BAG = {"class": "bag", "track_id": 2, "xyxy": [100, 100, 120, 160]}  # not a person: its crops score nothing


def test_person_crops_are_scored_against_the_posture_the_script_gives() -> None:
    gt = {
        "fps": 10,
        "activities": [{"label": "fall", "start_frame": 10, "end_frame": 30, "track_ids": [1]}],
        "frames": [{"objects": [{"class": "person", "track_id": 1, "xyxy": [0, 0, 20, 60]}, BAG]} for _ in range(40)],
    }
    assert [true_posture(gt, f, 1) for f in (9, 10, 12, 13, 30, 31)] == [
        "upright",
        None,
        None,
        "down",
        "down",
        "upright",  # a fall's first 0.3 s is neither
    ]
    box = [1.0, 1.0, 21.0, 60.0]  # IoU 0.92 with the person's box
    recorded = {
        "v": [
            {"frame_id": 5, "crops": [[*box, "upright", 0.9], [100, 100, 120, 160, "down", 0.8]]},  # 2nd: nobody
            {"frame_id": 11, "crops": [[*box, "upright", 0.9]]},  # settling: not scored
            {"frame_id": 20, "crops": [[*box, "upright", 0.6]]},  # wrong
            {"frame_id": 21, "crops": [[*box, "down", 0.7]]},
            {"frame_id": 22, "crops": []},
        ]
    }
    scored = score_attributes([(Path("v.mp4"), gt)], recorded)
    assert scored == {"accuracy": 2 / 3, "crops": 3, "recall": {"down": 0.5, "upright": 1.0}}
    assert score_attributes([(Path("v.mp4"), gt)], {})["accuracy"] is None


def test_search_is_scored_by_r_precision_of_each_activitys_prompt() -> None:
    from types import SimpleNamespace

    gt = {
        "activities": [
            {"label": "fall", "start_frame": 10, "end_frame": 30},
            {"label": "run", "start_frame": 50, "end_frame": 70},
        ]
    }

    def clip(incident: str, phase: str, start: int, frame: int) -> Any:
        return SimpleNamespace(
            kind="clip",
            incident_id=incident,
            phase=phase,
            event_id=f"{incident}-{phase}",
            start_frame_id=start,
            frame_id=frame,
            camera_id="v",
        )

    published = [
        clip("a", "start", 10, 20),
        clip("a", "end", 10, 30),  # the fall
        clip("b", "start", 50, 60),
        clip("b", "end", 50, 70),  # the run
        clip("c", "start", 100, 110),  # nothing true there
    ]
    ranked = {"fall": ["c-start", "a-start", "b-start"], "run": ["b-start", "a-start"]}
    scored = score_search([(Path("v.mp4"), gt)], published, ranked)
    assert scored["per_label"] == {"fall": {"r": 1, "r_precision": 0.0}, "run": {"r": 1, "r_precision": 1.0}}
    assert scored["r_precision"] == 0.5 and scored["searched"] == 3
