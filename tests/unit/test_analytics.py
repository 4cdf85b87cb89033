"""Track analytics (zones, lines, dwell, speed): counts that do not drift when boxes jitter or ids switch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pipeline.core.config import ConfigError, parse_config
from pipeline.core.config.analytics import AnalyticsConfig
from pipeline.core.messages import AnalyticsFrame, AnalyticsHit, Detections
from pipeline.events.rules import EventEngine
from workers.analytics import GeometryOutsideFrame, TrackAnalytics, draw_geometry

W, H = 640, 360
FPS = 10.0
VERTICAL = {"name": "mid", "points": [[0.5, 0.0], [0.5, 1.0]], "directions": ["westbound", "eastbound"]}
RIGHT_HALF = {"name": "right", "polygon": [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]}


def analytics(**section: Any) -> TrackAnalytics:
    return TrackAnalytics(AnalyticsConfig.model_validate(section), FPS)


def boxes(*objects: tuple[int, float, float] | tuple[int, float, float, str]) -> Detections:
    """(track id, foot x, foot y[, class]) -> 20x60 boxes standing on that point."""
    names = ("person", "vehicle")
    xyxy = np.array([[x - 10, y - 60, x + 10, y] for _, x, y, *_ in objects], np.float32).reshape(-1, 4)
    cls = np.array([names.index(o[3]) if len(o) > 3 else 0 for o in objects], np.int64)  # type: ignore[misc]
    ids = np.array([o[0] for o in objects], np.int64)
    return Detections(xyxy, np.full(len(objects), 0.9, np.float32), cls, ids, names)


def run(stage: TrackAnalytics, frames: list[Detections], start: int = 0) -> list[AnalyticsHit]:
    hits: list[AnalyticsHit] = []
    for f, det in enumerate(frames, start=start):
        hits += stage.update(f, f / FPS, det, (W, H)).hits
    return hits


def walk(track: int, x0: float, x1: float, frames: int, y: float = 200.0) -> list[tuple[int, float, float]]:
    return [(track, x0 + (x1 - x0) * i / (frames - 1), y) for i in range(frames)]


def crossings(hits: list[AnalyticsHit]) -> list[tuple[str | None, str | None]]:
    return [(h.line, h.direction) for h in hits if h.what == "cross"]


# -- lines -------------------------------------------------------------------------------------------


def test_a_crossing_counts_once_with_its_direction() -> None:
    stage = analytics(lines=[VERTICAL])
    right = run(stage, [boxes(p) for p in walk(1, 100, 500, 40)])
    left = run(stage, [boxes(p) for p in walk(2, 500, 100, 40)], start=40)
    # Looking from the line's first point (top) to its last (bottom), its right is the picture's left.
    assert crossings(right) == [("mid", "eastbound")]
    assert crossings(left) == [("mid", "westbound")]


def test_a_box_jittering_on_the_line_is_never_counted() -> None:
    stage = analytics(lines=[VERTICAL])
    approach = walk(1, 200, 318, 20)
    jitter = [(1, 320 + (5 if i % 2 else -5), 200.0) for i in range(60)]  # +-5 px: inside the margin (6 px)
    back = walk(1, 318, 200, 20)
    assert crossings(run(stage, [boxes(p) for p in approach + jitter + back])) == []


def test_lingering_on_the_line_then_crossing_counts_one() -> None:
    stage = analytics(lines=[VERTICAL])
    path = walk(1, 200, 318, 20) + [(1, 320 + (5 if i % 2 else -5), 200.0) for i in range(40)] + walk(1, 322, 500, 20)
    assert crossings(run(stage, [boxes(p) for p in path])) == [("mid", "eastbound")]


def test_walking_round_the_end_of_a_line_is_not_a_crossing() -> None:
    short = {"name": "gate", "points": [[0.5, 0.6], [0.5, 1.0]]}  # from y=216 down
    stage = analytics(lines=[short])
    assert crossings(run(stage, [boxes(p) for p in walk(1, 100, 500, 40, y=150)])) == []
    assert len(crossings(run(stage, [boxes(p) for p in walk(2, 100, 500, 40, y=300)], start=40))) == 1


def test_a_polyline_counts_a_crossing_of_any_of_its_segments_once() -> None:
    bent = {"name": "kerb", "points": [[0.3, 0.0], [0.5, 0.5], [0.3, 1.0]]}
    stage = analytics(lines=[bent])
    assert len(crossings(run(stage, [boxes(p) for p in walk(1, 50, 600, 50, y=300)]))) == 1


def test_an_id_switch_on_the_same_side_is_not_counted_again() -> None:
    stage = analytics(lines=[VERTICAL])
    first = walk(1, 100, 400, 30)  # crosses at x=320
    switched = walk(7, 410, 600, 20)  # the tracker calls it 7 from here on
    hits = run(stage, [boxes(p) for p in first + switched])
    assert crossings(hits) == [("mid", "eastbound")]


def test_a_crossing_behind_an_occluder_counts_once_under_the_new_id() -> None:
    stage = analytics(lines=[VERTICAL])
    before = walk(1, 100, 290, 20)  # 10 px/frame, hidden from 300 to 340 (4 frames) ...
    hidden = [boxes() for _ in range(4)]
    after = walk(9, 340, 500, 16)  # ... and back as track 9 on the other side
    hits = run(stage, [boxes(p) for p in before] + hidden + [boxes(p) for p in after])
    assert crossings(hits) == [("mid", "eastbound")]
    assert [h.track_ids for h in hits if h.what == "cross"] == [(1, 9)]


def test_a_different_object_far_away_is_not_taken_for_a_lost_one() -> None:
    stage = analytics(lines=[VERTICAL])
    run(stage, [boxes(p) for p in walk(1, 100, 290, 20)])
    hits = run(stage, [boxes(p) for p in walk(5, 600, 400, 10)], start=20)  # appears far to the right
    assert crossings(hits) == []  # a new object: first seen right of the line, never crossed it
    hits = run(stage, [boxes(p) for p in walk(5, 390, 200, 10)], start=30)
    assert crossings(hits) == [("mid", "westbound")]


def test_classes_limit_what_a_line_counts() -> None:
    stage = analytics(lines=[{**VERTICAL, "classes": ["vehicle"]}])
    people = [boxes((1, x, 200.0)) for _, x, _ in walk(1, 100, 500, 30)]
    cars = [boxes((2, x, 300.0, "vehicle")) for _, x, _ in walk(2, 100, 500, 30)]
    hits = run(stage, people + cars)
    assert [h.label for h in hits if h.what == "cross"] == ["vehicle"]


# -- zones and dwell ---------------------------------------------------------------------------------


def test_entry_needs_min_frames_inside_and_is_dated_to_the_first_of_them() -> None:
    stage = analytics(zones=[{**RIGHT_HALF, "min_frames": 3}])
    path = walk(1, 305, 405, 11)  # x = 305, 315, 325, ...: inside from frame 2
    hits = run(stage, [boxes(p) for p in path])
    enters = [h for h in hits if h.what == "enter"]
    assert len(enters) == 1
    assert (enters[0].frame_id, enters[0].since_frame) == (4, 2)


def test_a_box_flickering_on_the_edge_does_not_enter_and_leave() -> None:
    stage = analytics(zones=[{**RIGHT_HALF, "min_frames": 3}])
    flicker = [(1, 320 + (4 if i % 2 else -4), 200.0) for i in range(40)]
    assert [h for h in run(stage, [boxes(p) for p in flicker]) if h.what in ("enter", "exit")] == []


def test_exit_carries_the_dwell_from_first_to_last_frame_inside() -> None:
    stage = analytics(zones=[{**RIGHT_HALF, "min_frames": 2}])
    path = walk(1, 400, 400, 30) + walk(1, 300, 100, 10)  # 30 frames inside (2.9 s), then out
    hits = run(stage, [boxes(p) for p in path])
    (exit_,) = [h for h in hits if h.what == "exit"]
    assert exit_.dwell_s == pytest.approx(2.9)
    assert exit_.since_frame == 0 and exit_.frame_id == 29


def test_a_lost_object_exits_its_zones_after_reid_s_with_its_dwell() -> None:
    stage = analytics(zones=[RIGHT_HALF], reid_s=1.0)
    hits = run(stage, [boxes(p) for p in walk(1, 400, 420, 21)] + [boxes() for _ in range(15)])
    (exit_,) = [h for h in hits if h.what == "exit"]
    assert exit_.dwell_s == pytest.approx(2.0) and exit_.bbox_xyxy is None


def test_an_occlusion_inside_a_zone_does_not_split_the_stay() -> None:
    stage = analytics(zones=[{**RIGHT_HALF, "min_frames": 1}])
    frames = [boxes(p) for p in walk(1, 400, 440, 10)] + [boxes() for _ in range(5)]
    frames += [boxes(p) for p in walk(4, 470, 500, 10)]
    hits = run(stage, frames)
    assert [h.what for h in hits if h.what in ("enter", "exit")] == ["enter"]
    zones = stage.update(len(frames), len(frames) / FPS, boxes((4, 505, 200)), (W, H)).zones_by_track
    assert zones == {4: ("right",)}


def test_dwell_event_fires_once_past_the_threshold() -> None:
    stage = analytics(zones=[{**RIGHT_HALF, "min_frames": 1, "dwell_s": 2.0}])
    hits = run(stage, [boxes((1, 400, 200)) for _ in range(60)])
    dwells = [h for h in hits if h.what == "dwell"]
    assert len(dwells) == 1 and dwells[0].frame_id == 20 and dwells[0].dwell_s == pytest.approx(2.0)


def test_occupancy_counts_objects_in_each_zone_by_class() -> None:
    stage = analytics(zones=[{**RIGHT_HALF, "min_frames": 1}])
    frame = stage.update(0, 0.0, boxes((1, 400, 200), (2, 500, 200), (3, 100, 200), (4, 450, 300, "vehicle")), (W, H))
    assert frame.occupancy == {("right", "person"): 2, ("right", "vehicle"): 1}
    assert frame.zones_by_track == {1: ("right",), 2: ("right",), 4: ("right",)}


# -- speed -------------------------------------------------------------------------------------------


def test_speed_in_pixels_per_second() -> None:
    stage = analytics(lines=[VERTICAL])
    frame = AnalyticsFrame()
    for f, p in enumerate(walk(1, 100, 290, 20)):  # 10 px per frame at 10 fps: 100 px/s
        frame = stage.update(f, f / FPS, boxes(p), (W, H))
    assert frame.speed_by_track[1] == pytest.approx(100.0) and frame.speed_unit == "px/s"


def test_calibrated_speed_in_metres_per_second_and_a_limit_in_km_h() -> None:
    # 640 px across the picture are 32 m on the ground: 100 px/s = 5 m/s = 18 km/h.
    calibration = {"image": [[0, 0], [1, 0], [1, 1], [0, 1]], "ground_m": [[0, 0], [32, 0], [32, 18], [0, 18]]}
    stage = analytics(calibration=calibration, speed={"limit": 15, "unit": "km/h", "min_duration_s": 0.5})
    hits = run(stage, [boxes(p) for p in walk(1, 100, 490, 40)])
    (fast,) = [h for h in hits if h.what == "speed"]
    assert fast.speed == pytest.approx(18.0) and fast.speed_unit == "km/h"
    slow = analytics(calibration=calibration, speed={"limit": 20, "unit": "km/h"})
    assert [h for h in run(slow, [boxes(p) for p in walk(1, 100, 490, 40)]) if h.what == "speed"] == []


# -- geometry and config -----------------------------------------------------------------------------


def test_pixel_geometry_outside_the_frame_fails_at_the_first_frame() -> None:
    stage = analytics(coordinates="pixels", lines=[{"name": "far", "points": [[10, 10], [900, 10]]}])
    with pytest.raises(GeometryOutsideFrame, match=r"lines\.far\.points: point \[900, 10\] is outside the 640x360"):
        stage.update(0, 0.0, boxes((1, 100, 100)), (W, H))


def camera_config(analytics_section: dict[str, Any]) -> dict[str, Any]:
    return {"cameras": [{"id": "door", "url": "rtsp://cam/1", "analytics": analytics_section}]}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"zones": [{"name": "bow", "polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]}]}, "polygon is not simple"),
        ({"zones": [{"name": "flat", "polygon": [[0, 0], [0.5, 0.5], [1, 1]]}]}, "no area"),
        ({"lines": [{"name": "dot", "points": [[0.2, 0.2], [0.2, 0.2]]}]}, "zero length"),
        ({"lines": [VERTICAL, VERTICAL]}, "the name 'mid' is used twice"),
        ({"zones": [{"name": "z", "polygon": [[0, 0], [2, 0], [2, 1]]}]}, "between 0 and 1"),
        ({"speed": {"limit": 30, "unit": "km/h"}}, "needs a calibration"),
        ({"lines": [{**VERTICAL, "directions": ["in", "in"]}]}, "different names"),
    ],
)
def test_bad_geometry_is_one_config_error_with_its_key_path(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(camera_config(section))
    text = str(err.value)
    assert "cameras.0.analytics" in text or "cameras[0].analytics" in text
    assert message in text


def test_drawn_geometry_shows_on_the_picture() -> None:
    stage = analytics(zones=[RIGHT_HALF], lines=[VERTICAL])
    stage.update(0, 0.0, boxes(), (W, H))
    assert stage.geometry is not None
    img = np.zeros((H, W, 3), np.uint8)
    draw_geometry(img, stage.geometry)
    assert img[:, 320].any() and img[180, 500].any()  # the line (and the zone's edge), the zone's fill
    assert not img[180, 100].any()  # left of the line: neither


# -- events ------------------------------------------------------------------------------------------


def test_zone_stays_become_incidents_and_crossings_instant_events() -> None:
    stage = analytics(zones=[{**RIGHT_HALF, "min_frames": 2}], lines=[VERTICAL])
    engine = EventEngine("door", parse_config(camera_config({})).events, epoch="e1")
    events = []
    path = walk(1, 200, 500, 31) + walk(1, 500, 500, 10) + walk(1, 500, 100, 41)
    for f, p in enumerate(path):
        frame = stage.update(f, 1000 + f / FPS, boxes(p), (W, H))
        events += engine.on_analytics(frame, 1000 + f / FPS)
    kinds = [(e.kind, e.phase, e.zone or e.line, e.direction) for e in events]
    assert sorted(kinds[:2]) == [("line", "instant", "mid", "eastbound"), ("zone", "start", "right", None)]
    assert sorted(kinds[2:]) == [("line", "instant", "mid", "westbound"), ("zone", "end", "right", None)]
    start, end = (next(e for e in events if e.kind == "zone" and e.phase == p) for p in ("start", "end"))
    assert start.incident_id == end.incident_id and start.event_id != end.event_id
    assert end.dwell_s == pytest.approx(end.duration_s) and end.dwell_s > 3.0
    assert start.start_frame_id == end.start_frame_id


def test_event_ids_are_the_same_for_the_same_frames() -> None:
    def ids() -> list[str]:
        stage = analytics(lines=[VERTICAL], zones=[RIGHT_HALF])
        engine = EventEngine("door", parse_config(camera_config({})).events, epoch="e1")
        out = []
        for f, p in enumerate(walk(1, 100, 500, 40)):
            out += [e.event_id for e in engine.on_analytics(stage.update(f, f / FPS, boxes(p), (W, H)), 5.0 + f)]
        return out

    assert ids() == ids() and len(ids()) == 2


def test_object_events_carry_the_zones_the_object_is_in() -> None:
    stage = analytics(zones=[{**RIGHT_HALF, "min_frames": 1}])
    cfg = parse_config(camera_config({})).events.model_copy(update={"object_min_duration_s": 0.0})
    engine = EventEngine("door", cfg)
    det = boxes((1, 400, 200))
    events = engine.on_detections(0, 1.0, det, analytics=stage.update(0, 1.0, det, (W, H)))
    assert [(e.kind, e.zones) for e in events] == [("object", ("right",))]


def test_instant_events_leave_no_incident_open(tmp_path: Any) -> None:
    """After a crash the outbox ends the incidents it holds open: a zone stay still inside, never a
    line crossing (one event, nothing to end)."""
    from pipeline.events.publisher import EventPublisher

    stage = analytics(zones=[{**RIGHT_HALF, "min_frames": 1}], lines=[VERTICAL])
    engine = EventEngine("door", parse_config(camera_config({})).events, epoch="e1")
    events = []
    for f, p in enumerate(walk(1, 100, 500, 40)):
        events += engine.on_analytics(stage.update(f, f / FPS, boxes(p), (W, H)), 1000.0 + f)
    assert {e.kind for e in events} == {"line", "zone"}
    publisher = EventPublisher("redis://127.0.0.1:1/0", "door", tmp_path / "door.sqlite")  # Redis never answers
    try:
        publisher.publish(events)
        assert [(e.kind, e.phase) for e in publisher.open_incidents()] == [("zone", "start")]
    finally:
        publisher.close()


def car(track: int, x1: float, x2: float, y: float = 250.0) -> tuple[int, list[float]]:
    return track, [x1, y - 50, x2, y]


def car_boxes(*cars: tuple[int, list[float]]) -> Detections:
    xyxy = np.array([b for _, b in cars], np.float32).reshape(-1, 4)
    ids = np.array([t for t, _ in cars], np.int64)
    return Detections(
        xyxy, np.full(len(cars), 0.9, np.float32), np.ones(len(cars), np.int64), ids, ("person", "vehicle")
    )


def test_a_car_a_pillar_cuts_in_two_crosses_once() -> None:
    """A 120 px car drives right past a pillar over the line (x 300..340): the detector sees its rear
    while the front comes out on the other side as a second track, then only the front."""
    stage = analytics(lines=[VERTICAL])
    frames = [car_boxes(car(1, x, x + 120)) for x in range(40, 180, 12)]  # whole, left of the pillar
    for front in range(352, 420, 12):  # rear shrinking into the pillar, front growing out of it
        rear_x1 = front - 172
        frames.append(car_boxes(car(1, rear_x1, 300), car(2, 340, front)))
    frames += [car_boxes(car(2, x - 120, x)) for x in range(470, 640, 12)]  # only the front's track goes on
    hits = run(stage, frames)
    assert crossings(hits) == [("mid", "eastbound")]
    assert [h.track_ids for h in hits if h.what == "cross"] == [(1, 2)]


def test_a_person_further_away_is_not_taken_for_a_lost_one() -> None:
    """A person lost at the line and another, smaller (further away) one appearing across it: two
    objects, no crossing."""
    stage = analytics(lines=[VERTICAL])
    run(stage, [boxes(p) for p in walk(1, 200, 300, 11, y=300)])
    far = [(2, x, 200.0) for x in range(345, 400, 5)]  # 60 px boxes 100 px higher up the picture
    assert crossings(run(stage, [boxes(p) for p in far], start=11)) == []


def test_the_speed_of_one_who_waited_is_measured_from_when_they_moved_off() -> None:
    stage = analytics(lines=[VERTICAL])
    path = [(1, 300.0, 200.0)] * 30 + walk(1, 300, 360, 7)  # stands by the line, then 100 px/s across it
    hits = run(stage, [boxes(p) for p in path])
    (cross,) = [h for h in hits if h.what == "cross"]
    assert cross.speed == pytest.approx(100.0, rel=0.15)


def test_a_tracker_id_swap_behind_a_pillar_counts_both_crossings() -> None:
    """Two people cross behind a pillar in opposite directions, at different depths, and the tracker
    gives the first one's id to the second: the track's foot jumps up the picture, so from there it
    is the second person, and each of them crosses once, under their own ids."""
    stage = analytics(lines=[VERTICAL])
    frames = [boxes((1, 200 + 10 * f, 300.0), (2, 440 - 10 * f, 250.0)) for f in range(10)]  # both approach
    # The first goes behind the pillar; id 1 jumps onto the second person, who walks on west.
    frames += [boxes((1, 340 - 10 * f, 250.0)) for f in range(4)]
    frames += [boxes((1, 300 - 10 * f, 250.0), (3, 340 + 10 * f, 300.0)) for f in range(7)]  # the first as 3
    hits = run(stage, frames)
    assert sorted(crossings(hits)) == [("mid", "eastbound"), ("mid", "westbound")]
    by_direction = {h.direction: h.track_ids for h in hits if h.what == "cross"}
    assert by_direction == {"eastbound": (1, 3), "westbound": (2, 1)}


def test_occupancy_and_hits_name_classes_on_a_frame_with_a_crossing() -> None:
    stage = analytics(zones=[{**RIGHT_HALF, "min_frames": 1}], lines=[VERTICAL])
    frame = AnalyticsFrame()
    for f, p in enumerate(walk(1, 300, 340, 5)):
        frame = stage.update(f, f / FPS, boxes(p, (2, 500, 300, "vehicle")), (W, H))
        if any(h.what == "cross" for h in frame.hits):
            break
    assert [h.label for h in frame.hits if h.what == "cross"] == ["person"]
    assert frame.occupancy == {("right", "person"): 1, ("right", "vehicle"): 1}


def test_an_id_that_comes_back_where_its_object_cannot_be_is_another_object() -> None:
    """The tracker loses a person behind a pillar and gives their id, a few frames later, to
    someone further away; the first person comes out under a new id and crosses once."""
    stage = analytics(lines=[VERTICAL])
    frames = [boxes((1, 200 + 10 * f, 300.0)) for f in range(10)]  # to x=290, then hidden
    frames += [boxes() for _ in range(3)]
    frames += [boxes((1, 300 - 10 * f, 200.0)) for f in range(3)]  # id 1 again, 100 px further up
    frames += [boxes((1, 270 - 10 * f, 200.0), (5, 350 + 10 * f, 300.0)) for f in range(6)]
    hits = run(stage, frames)
    assert [(h.direction, h.track_ids) for h in hits if h.what == "cross"] == [("eastbound", (1, 5))]


def test_a_tracker_id_that_turns_back_onto_another_person_counts_both_crossings() -> None:
    """Two people at the same depth cross behind a pillar in opposite directions, and the tracker
    keeps the first one's id on the second, who walks back the way the first came: the track turns
    straight back. From its turn it is the second person (who was lost a moment ago), and the first
    comes out under a new id: each crosses once."""
    stage = analytics(lines=[VERTICAL])
    frames = [boxes((1, 200 + 5 * f, 250.0), (2, 440 - 5 * f, 245.0)) for f in range(20)]  # A east, B west
    frames += [boxes((1, x, 250.0)) for x in (297, 299, 300, 300, 299, 298)]  # both behind the pillar
    frames += [boxes((1, 300 - 5 * f, 245.0)) for f in range(7)]  # id 1 is on B now
    frames += [boxes((1, 265 - 5 * f, 245.0), (3, 345 + 5 * f, 250.0)) for f in range(12)]  # A comes out as 3
    hits = run(stage, frames)
    by_direction = {h.direction: h.track_ids for h in hits if h.what == "cross"}
    assert by_direction == {"westbound": (2, 1), "eastbound": (1, 3)}


def test_a_person_who_turns_round_stays_one_object() -> None:
    left_half = {"name": "left", "polygon": [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]], "min_frames": 1}
    stage = analytics(zones=[left_half], lines=[VERTICAL])
    path = walk(1, 150, 300, 20) + walk(1, 295, 100, 30)  # straight back, nobody else about
    hits = run(stage, [boxes(p) for p in path])
    assert [h.what for h in hits] == ["enter"]
    assert crossings(hits) == []


def test_a_foot_that_rises_as_it_goes_out_of_sight_is_found_again_where_it_was() -> None:
    """Going behind a low occluder (a bench, a parked car) a box is cut from below and its foot seems
    to rise; back in sight beyond the line, the same person is found by where their foot was last
    seen, not where that rise would have taken it: one crossing, under both ids."""
    stage = analytics(lines=[VERTICAL])
    path = walk(1, 200, 260, 7, y=300)  # 10 px a frame
    path += [(1, 270 + 10 * i, 297 - 3 * i) for i in range(5)]  # the foot rises 3 px a frame: cut from below
    hidden = [boxes() for _ in range(7)]
    back = walk(9, 390, 480, 10, y=300)  # where the walk went on
    hits = run(stage, [boxes(p) for p in path] + hidden + [boxes(p) for p in back])
    assert crossings(hits) == [("mid", "eastbound")]
    assert [h.track_ids for h in hits if h.what == "cross"] == [(1, 9)]


def test_an_object_continued_by_a_new_track_keeps_its_motion_through_the_next_occlusion() -> None:
    """A box cut from below in one frame (its foot jumps up) is a new track of the same person, seen
    once before the person goes out of sight. Found again far along their way, they are that person:
    the new track carries the motion of the whole walk, and the crossing counts once."""
    stage = analytics(lines=[VERTICAL])
    path = walk(1, 160, 280, 13, y=300)  # 10 px a frame
    frames = [boxes(p) for p in path]
    frames.append(boxes((2, 290, 288)))  # the foot jumps 12 px up: another track, seen once
    frames += [boxes() for _ in range(8)]
    frames += [boxes(p) for p in walk(9, 380, 470, 10, y=300)]
    hits = run(stage, frames)
    assert crossings(hits) == [("mid", "eastbound")]
    assert [h.track_ids for h in hits if h.what == "cross"] == [(1, 2, 9)]
