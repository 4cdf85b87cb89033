"""Incident lifecycles: start -> update -> end with hysteresis, driven by capture times; the times
`vigil events replay --since/--until` takes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from pipeline.core.config import EventsConfig
from pipeline.core.messages import ClipLabel, Detections, Event, LabelScore
from pipeline.events.client import parse_since
from pipeline.events.rules import EventEngine

NAMES = ("person", "car", "bag")


def dets(rows: list[tuple[int, int, float]]) -> Detections:
    """rows: (track_id, class_id, confidence)."""
    n = len(rows)
    return Detections(
        xyxy=np.tile(np.array([[10, 20, 30, 60]], np.float32), (n, 1)),
        confidence=np.array([r[2] for r in rows], np.float32),
        class_id=np.array([r[1] for r in rows], np.int64),
        tracker_id=np.array([r[0] for r in rows], np.int64),
        class_names=NAMES,
    )


def run_objects(engine: EventEngine, frames: list[list[tuple[int, int, float]]], fps: float = 10) -> list[Event]:
    out: list[Event] = []
    for i, rows in enumerate(frames):
        out += engine.on_detections(i, 1000.0 + i / fps, dets(rows))
    return out


def test_object_lifecycle_start_update_end() -> None:
    cfg = EventsConfig(
        object_min_confidence=0.5, object_min_duration_s=0.5, object_cooldown_s=1.0, update_interval_s=2.0
    )
    engine = EventEngine("cam", cfg)
    confs = [0.6, 0.7, 0.9, 0.8] + [0.7] * 46  # 5 s of a person, peak 0.9
    events = run_objects(engine, [[(7, 0, c)] for c in confs] + [[]] * 20)
    assert [e.phase for e in events] == ["start", "update", "update", "end"]
    start, end = events[0], events[-1]
    assert start.frame_id == 5  # 0.5 s after the first sighting at 10 fps
    assert start.track_id == 7 and start.track_ids == (7,) and start.label == "person"
    assert len({e.incident_id for e in events}) == 1
    assert len({e.event_id for e in events}) == 4
    assert end.duration_s == pytest.approx(4.9)
    assert end.peak_confidence == pytest.approx(0.9)
    assert end.ts == "1970-01-01T00:16:44.900Z"  # the last sighting, not the moment the cooldown expired


def test_a_crop_label_change_that_holds_gives_an_update_at_once() -> None:
    cfg = EventsConfig(object_min_duration_s=0.2, update_interval_s=60, crop_min_frames=3)
    engine = EventEngine("cam", cfg)
    # A person upright for 1 s, one frame misread as down, then down for good from frame 15.
    labels = ["upright"] * 10 + ["down"] + ["upright"] * 4 + ["down"] * 10
    events: list[Event] = []
    for i, label in enumerate(labels):
        crops = {7: LabelScore(label, 0.9)}
        events += engine.on_detections(i, 1000.0 + i / 10, dets([(7, 0, 0.8)]), crops)
    assert [(e.phase, e.crop_label, e.frame_id) for e in events] == [("start", "upright", 2), ("update", "down", 17)]
    assert events[1].crop_confidence == pytest.approx(0.9)


def test_a_crop_label_only_reaches_incidents_of_the_class_it_was_made_for() -> None:
    """The camera classifies crops of the configured classes (person) only; a car whose track is
    read as a person in some frames keeps no posture."""
    engine = EventEngine("cam", EventsConfig(object_min_duration_s=0.2, update_interval_s=0.5))
    events: list[Event] = []
    for i in range(20):
        as_person = i % 2 == 1  # every other frame the detector calls the car a person
        crops = {4: LabelScore("down", 0.9)} if as_person else {}
        events += engine.on_detections(i, 1000.0 + i / 10, dets([(4, 0 if as_person else 1, 0.8)]), crops)
    assert events and {e.label for e in events} == {"car"}
    assert {e.crop_label for e in events} == {None}


def test_short_lived_or_weak_tracks_raise_nothing() -> None:
    engine = EventEngine("cam", EventsConfig(object_min_confidence=0.5, object_min_duration_s=1.0))
    blip = [[(1, 0, 0.9)]] * 3 + [[]] * 40  # 0.3 s: below min duration
    weak = [[(2, 0, 0.3)]] * 40
    assert run_objects(engine, blip) == []
    assert run_objects(engine, weak) == []


def test_object_classes_filter_and_untracked_boxes() -> None:
    engine = EventEngine("cam", EventsConfig(object_classes=("person",), object_min_duration_s=0))
    events = run_objects(engine, [[(1, 1, 0.9), (-1, 0, 0.9), (3, 0, 0.9)]])
    assert [(e.phase, e.track_id) for e in events] == [("start", 3)]


def clip(label: str, conf: float, end: int) -> ClipLabel:
    return ClipLabel("cam", label, conf, start_frame_id=end - 15, end_frame_id=end, head="lstm")


def run_clips(engine: EventEngine, labels: list[str], conf: float = 0.9) -> list[Event]:
    out: list[Event] = []
    for i, label in enumerate(labels):
        out += engine.on_clip(clip(label, conf, 16 + 8 * i), 1000.0 + 1.6 * i, track_ids=(i % 3,))
    return out


def test_flickering_clip_label_gives_one_start_and_one_end() -> None:
    cfg = EventsConfig(clip_min_windows=2, clip_end_windows=3, update_interval_s=1000)
    engine = EventEngine("cam", cfg)
    labels = [
        "normal",
        "fall",
        "normal",
        "fall",
        "fall",
        "normal",
        "fall",
        "normal",
        "fall",
        "fall",
        "normal",
        "normal",
        "normal",
        "normal",
    ]
    events = run_clips(engine, labels)
    assert [(e.phase, e.label) for e in events] == [("start", "fall"), ("end", "fall")]
    start, end = events
    assert start.frame_id == 16 + 8 * 3  # the second window with "fall"
    assert start.start_frame_id == 16 + 8 - 15  # where the first "fall" window began
    assert end.duration_s == pytest.approx(1.6 * (9 - 1))
    assert end.track_ids == (0, 1, 2)


def test_single_spurious_clip_label_is_forgotten() -> None:
    engine = EventEngine("cam", EventsConfig(clip_min_windows=2, clip_end_windows=2))
    assert run_clips(engine, ["normal", "run", "normal", "normal", "normal"]) == []


def test_unconfident_clip_labels_do_not_count() -> None:
    engine = EventEngine("cam", EventsConfig(clip_min_confidence=0.95))
    assert run_clips(engine, ["fall"] * 10, conf=0.9) == []


def test_close_ends_started_incidents() -> None:
    engine = EventEngine("cam", EventsConfig(object_min_duration_s=0, clip_min_windows=1))
    started = run_objects(engine, [[(4, 2, 0.9)]]) + run_clips(engine, ["loiter"])
    assert [e.phase for e in started] == ["start", "start"]
    ended = engine.close()
    assert sorted((e.kind, e.phase) for e in ended) == [("clip", "end"), ("object", "end")]
    assert {e.incident_id for e in ended} == {e.incident_id for e in started}


def test_close_forgets_incidents_that_never_started() -> None:
    """A camera that stops ends its started incidents only: a track or a clip label that had not
    reached its start raises nothing."""
    engine = EventEngine("cam", EventsConfig(object_min_duration_s=1.0, clip_min_windows=2))
    assert run_objects(engine, [[(4, 2, 0.9)]]) + run_clips(engine, ["loiter"]) == []
    assert engine.close() == []


def test_the_rules_count_the_given_clock_and_stamp_capture_times() -> None:
    """A file read 4x faster than real time: the rules run on the video's clock (10 fps), the
    events carry the wall-clock capture times (40 frames per wall second)."""
    cfg = EventsConfig(object_min_duration_s=0.5, object_cooldown_s=1.0, update_interval_s=60)
    engine = EventEngine("cam", cfg)
    events: list[Event] = []
    frames = [[(7, 0, 0.8)]] * 30 + [[]] * 15
    for i, rows in enumerate(frames):
        events += engine.on_detections(i, 2000.0 + i / 40, dets(rows), clock=1000.0 + i / 10)
    start, end = events
    assert (start.phase, start.frame_id) == ("start", 5)  # 0.5 s of video, not of wall time
    assert start.ts == "1970-01-01T00:33:20.125Z" and start.captured_at == pytest.approx(2000.125)
    assert start.started_at == "1970-01-01T00:33:20.000Z"
    assert end.phase == "end" and end.duration_s == pytest.approx(2.9)  # video seconds
    assert end.ts == "1970-01-01T00:33:20.725Z"  # the last sighting's capture time


def at(engine: EventEngine, t: float, rows: list[tuple[int, int, float]]) -> list[tuple[str, float]]:
    """One frame at capture time ``1000 + t``: the (phase, rules-time offset) of what it emits."""
    return [(e.phase, t) for e in engine.on_detections(int(t * 100), 1000.0 + t, dets(rows))]


@pytest.mark.parametrize(("confidence", "starts"), [(0.5, True), (0.49, False)], ids=["at", "below"])
def test_object_min_confidence_is_inclusive(confidence: float, starts: bool) -> None:
    """A track exactly at ``object_min_confidence`` counts; just below it raises nothing."""
    engine = EventEngine("cam", EventsConfig(object_min_confidence=0.5, object_min_duration_s=0))
    assert at(engine, 0.0, [(1, 0, confidence)]) == ([("start", 0.0)] if starts else [])


def test_object_start_comes_exactly_after_min_duration() -> None:
    """``object_min_duration_s`` after the first sighting, not a frame earlier, the track starts."""
    engine = EventEngine("cam", EventsConfig(object_min_duration_s=0.5, update_interval_s=60))
    person = [(1, 0, 0.9)]
    emitted = [ev for t in (0.0, 0.25, 0.375, 0.5, 0.75) for ev in at(engine, t, person)]
    assert emitted == [("start", 0.5)]


def test_object_ends_exactly_after_the_cooldown() -> None:
    """A track unseen for just under ``object_cooldown_s`` stays open; at the cooldown it ends."""
    engine = EventEngine("cam", EventsConfig(object_min_duration_s=0, object_cooldown_s=1.0, update_interval_s=60))
    assert at(engine, 0.0, [(1, 0, 0.9)]) == [("start", 0.0)]
    assert at(engine, 0.5, []) == []
    assert at(engine, 0.875, []) == []
    assert at(engine, 1.0, []) == [("end", 1.0)]
    assert at(engine, 2.0, []) == []  # ended once


def test_object_updates_come_at_most_once_per_interval() -> None:
    """An open track gets its ``update`` exactly ``update_interval_s`` after the previous event,
    not earlier, and the next one counts from that update."""
    engine = EventEngine("cam", EventsConfig(object_min_duration_s=0, update_interval_s=2.0, object_cooldown_s=60))
    person = [(1, 0, 0.9)]
    times = [0.0, 1.0, 1.75, 2.0, 2.25, 3.75, 4.0, 5.0]
    emitted = [ev for t in times for ev in at(engine, t, person)]
    assert emitted == [("start", 0.0), ("update", 2.0), ("update", 4.0)]


def window(engine: EventEngine, t: float, label: str, confidence: float = 0.9) -> list[str]:
    """One clip window ending at capture time ``1000 + t``: the ``phase label`` of what it emits."""
    frame = int(t * 100)
    return [f"{e.phase} {e.label}" for e in engine.on_clip(clip(label, confidence, frame + 16), 1000.0 + t)]


@pytest.mark.parametrize(("confidence", "starts"), [(0.5, True), (0.49, False)], ids=["at", "below"])
def test_clip_min_confidence_is_inclusive(confidence: float, starts: bool) -> None:
    """A clip label exactly at ``clip_min_confidence`` counts; just below it raises nothing."""
    engine = EventEngine("cam", EventsConfig(clip_min_confidence=0.5, clip_min_windows=1))
    assert window(engine, 0.0, "fall", confidence) == (["start fall"] if starts else [])


def test_clip_starts_on_exactly_min_windows() -> None:
    engine = EventEngine("cam", EventsConfig(clip_min_windows=3, update_interval_s=60))
    assert [window(engine, t, "fall") for t in (0.0, 1.0, 2.0)] == [[], [], ["start fall"]]


def test_clip_ends_after_exactly_end_windows_without_the_label() -> None:
    """One window less than ``clip_end_windows`` without the label keeps the incident open (and a
    window with the label starts the count again); the ``clip_end_windows``-th ends it. A window
    with another label is a window without this one."""
    engine = EventEngine("cam", EventsConfig(clip_min_windows=1, clip_end_windows=3, update_interval_s=60))
    labels = ["fall", "normal", "normal", "fall", "normal", "run", "normal", "normal"]
    phases = [window(engine, float(t), label) for t, label in enumerate(labels)]
    assert phases == [["start fall"], [], [], [], [], ["start run"], ["end fall"], []]


def test_ignored_clip_labels_raise_nothing() -> None:
    engine = EventEngine("cam", EventsConfig(clip_min_windows=1, clip_ignore_labels=("normal", "idle")))
    assert [window(engine, float(t), label) for t, label in enumerate(["normal", "idle", "fall"])] == [
        [],
        [],
        ["start fall"],
    ]


def test_clip_updates_come_at_most_once_per_interval() -> None:
    engine = EventEngine("cam", EventsConfig(clip_min_windows=1, update_interval_s=2.0))
    times = [0.0, 1.0, 1.75, 2.0, 2.5, 3.75, 4.0]
    phases = [window(engine, t, "fall") for t in times]
    assert phases == [["start fall"], [], [], ["update fall"], [], [], ["update fall"]]


NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "ago"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1.5h", timedelta(minutes=90)),
    ],
    ids=["seconds", "minutes", "hours", "days", "fraction"],
)
def test_relative_times_count_back_from_now(text: str, ago: timedelta) -> None:
    assert parse_since(text, now=NOW) == NOW - ago


def test_relative_times_default_to_the_current_time() -> None:
    before = datetime.now(UTC)
    parsed = parse_since("10m")
    assert before - timedelta(minutes=10) <= parsed <= datetime.now(UTC) - timedelta(minutes=10)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T10:00:00Z", datetime(2026, 11, 22, 10, 0, tzinfo=UTC)),
        ("2026-11-22T10:00:00+02:00", datetime(2026, 11, 22, 8, 0, tzinfo=UTC)),
        ("2026-11-22T10:00:00.250Z", datetime(2026, 11, 22, 10, 0, 0, 250_000, tzinfo=UTC)),
        ("2026-11-22 10:00", datetime(2026, 11, 22, 10, 0, tzinfo=UTC)),  # no zone: UTC
        ("2026-11-22", datetime(2026, 11, 22, tzinfo=UTC)),
    ],
    ids=["zulu", "offset", "milliseconds", "no-zone", "date"],
)
def test_iso_times_are_absolute_and_default_to_utc(text: str, expected: datetime) -> None:
    parsed = parse_since(text, now=NOW)
    assert parsed == expected
    assert parsed.utcoffset() is not None  # comparable with the events' aware times


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "15 minutes", "15", "-5m", "5w", "m", "2026-13-01"],
    ids=["empty", "word", "spelled-out", "no-unit", "negative", "weeks", "unit-only", "no-such-month"],
)
def test_anything_else_is_one_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a time: .*\(use ISO-8601 like 2026-11-22T10:00:00Z, or 15m, 2h, 1d\)"):
        parse_since(text, now=NOW)


def test_ids_derive_from_what_the_events_are() -> None:
    """The same frames under the same epoch give the same incident and event ids (a file processed
    again after a restart is de-duplicated by Redis); another epoch (another run of the camera) or
    another camera gives other ids, and every event of a run has its own."""
    cfg = EventsConfig(object_min_duration_s=0.2, object_cooldown_s=0.5, update_interval_s=0.5)
    frames = [[(1, 0, 0.9), (2, 1, 0.8)]] * 20 + [[]] * 10 + [[(1, 0, 0.9)]] * 10 + [[]] * 10

    def ids(camera: str, epoch: str) -> list[tuple[str, str]]:
        return [(e.incident_id, e.event_id) for e in run_objects(EventEngine(camera, cfg, epoch), frames)]

    first = ids("cam", "run1/cam/1")
    assert first == ids("cam", "run1/cam/1")
    assert len({event for _incident, event in first}) == len(first) > 6
    assert len({incident for incident, _event in first}) == 3  # track 1 twice, track 2 once
    for other in (ids("cam", "run1/cam/2"), ids("cam2", "run1/cam/1")):
        assert not {e for _i, e in other} & {e for _i, e in first}


def test_an_end_closed_by_the_pipeline_keeps_the_incident_and_says_why() -> None:
    from pipeline.events.rules import closed_by_pipeline

    engine = EventEngine("cam", EventsConfig(object_min_duration_s=0.2))
    [start] = [e for e in run_objects(engine, [[(4, 0, 0.9)]] * 5) if e.phase == "start"]
    end = closed_by_pipeline(start, "host restarted")
    assert (end.phase, end.incident_id, end.end_reason) == ("end", start.incident_id, "host restarted")
    assert end.event_id != start.event_id and end.event_id == closed_by_pipeline(start, "host restarted").event_id
