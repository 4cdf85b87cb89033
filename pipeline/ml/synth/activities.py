"""Scripting a synthetic video: background traffic, then the activities (fall, loiter, run,
abandoned_object, crowd) laid out in non-overlapping slots with exact start and end frames."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from pipeline.ml.synth.actors import Actor, Key, Occluder, perspective
from pipeline.ml.synth.scenes import LAYOUTS

ACTIVITIES = ("normal", "fall", "loiter", "run", "abandoned_object", "crowd")
LOITER_DWELL_S = 3.0  # a person in one area this long starts loitering


@dataclass(frozen=True)
class Activity:
    label: str
    start_frame: int
    end_frame: int
    track_ids: tuple[int, ...]


@dataclass
class Script:
    """Everything in one video: its actors and its activity segments."""

    scene: str
    night: bool
    size_wh: tuple[int, int]
    fps: int
    num_frames: int
    actors: list[Actor] = field(default_factory=list)
    activities: list[Activity] = field(default_factory=list)
    _next_id: int = 1
    scenario: str = "default"
    occluders: list[Occluder] = field(default_factory=list)  # static objects drawn in depth order with the actors

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1


@dataclass
class Plan:
    """An activity laid out from frame 0: its actors (with local ids) and ground-truth segment."""

    label: str
    seg_start: int
    seg_end: int
    actors: list[Actor]
    track_ids: tuple[int, ...]


class Director:
    """Writes a video's script: background traffic, then activities in non-overlapping slots."""

    def __init__(self, rng: np.random.Generator, script: Script) -> None:
        self.rng, self.s = rng, script
        self.w, self.h = script.size_wh
        self.fps = script.fps

    def sec(self, seconds: float) -> int:
        return max(1, round(seconds * self.fps))

    def color(self) -> tuple[int, int, int]:
        return tuple(int(c) for c in self.rng.integers(25, 235, 3))  # type: ignore[return-value]

    def person(self, keys: list[Key]) -> Actor:
        """A background person (gets a track id now; activity actors get theirs when committed)."""
        a = self._person(keys, self.s.new_id())
        self.s.actors.append(a)
        return a

    def bag(self) -> Actor:
        a = self._bag(self.s.new_id())
        self.s.actors.append(a)
        return a

    def person_y(self, activity: bool = False) -> float:
        layout = LAYOUTS[self.s.scene]
        lo, hi = layout.activity_y if activity and layout.activity_y else layout.person_y
        return float(self.rng.uniform(lo, hi)) * self.h

    def walk_keys(
        self,
        start: int,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        speed: float,
        pose: str = "walk",
    ) -> list[Key]:
        """Keys for moving from (x0, y0) to (x1, y1) at ``speed`` px/s (at scale 1), starting at ``start``."""
        s = perspective((y0 + y1) / 2, self.h)
        frames = max(1, round(math.hypot(x1 - x0, y1 - y0) / (speed * s) * self.fps))
        return [Key(start, x0, y0, pose), Key(start + frames, x1, y1, pose)]

    def offscreen_x(self, left: bool) -> float:
        return -40.0 if left else self.w + 40.0

    # background traffic -------------------------------------------------------------------

    def traffic(self) -> None:
        n = self.s.num_frames
        f = int(self.rng.integers(0, self.sec(2)))
        while f < n:
            left = self.rng.random() < 0.5
            y = self.person_y()
            speed = float(self.rng.uniform(38, 62))
            walker = self.person(
                self.walk_keys(
                    f,
                    self.offscreen_x(left),
                    y,
                    self.offscreen_x(not left),
                    y + float(self.rng.uniform(-15, 15)),
                    speed,
                )
            )
            if self.rng.random() < 0.3:
                bag = self.bag()
                bag.carrier, bag.carry_frames = walker, (walker.keys[0].frame, walker.keys[-1].frame)
            f += self.sec(float(self.rng.uniform(2.5, 6.0)))
        layout = LAYOUTS[self.s.scene]
        for lane in layout.vehicle_lanes:
            f = int(self.rng.integers(0, self.sec(4)))
            slow = self.s.scene == "parking"
            while f < n:
                left = self.rng.random() < 0.5
                speed = float(self.rng.uniform(50, 90) if slow else self.rng.uniform(120, 240))
                keys = self.walk_keys(
                    f,
                    -120 if left else self.w + 120,
                    lane * self.h,
                    self.w + 120 if left else -120,
                    lane * self.h,
                    speed,
                    "drive",
                )
                self.s.actors.append(
                    Actor(
                        self.s.new_id(),
                        "vehicle",
                        self.color(),
                        float(self.rng.uniform(46, 60)),
                        float(self.rng.uniform(110, 160)),
                        keys,
                    )
                )
                f += self.sec(float(self.rng.uniform(6, 12) if slow else self.rng.uniform(3, 8)))
        for row in layout.parked_rows:
            x = float(self.rng.uniform(40, 120))
            while x < self.w - 60:
                if self.rng.random() < 0.6:
                    keys = [Key(0, x, row * self.h, "drive"), Key(n - 1, x, row * self.h, "drive")]
                    self.s.actors.append(
                        Actor(
                            self.s.new_id(),
                            "vehicle",
                            self.color(),
                            float(self.rng.uniform(46, 58)),
                            float(self.rng.uniform(100, 130)),
                            keys,
                        )
                    )
                x += float(self.rng.uniform(120, 160))

    # activities ---------------------------------------------------------------------------
    # Each act_* draws all its randomness up front and returns a Plan laid out from frame 0; the
    # schedule shifts it so that ground-truth segments are at least GAP_S apart (lead-ins and
    # lead-outs of neighbouring activities may overlap: that is background traffic).

    GAP_S = 3.0

    def schedule(self, order: list[str]) -> None:
        prev_end = -self.sec(self.GAP_S) + self.sec(float(self.rng.uniform(0.5, 2.0)))
        for label in order:
            plan: Plan = getattr(self, f"act_{label}")()
            offset = prev_end + self.sec(self.GAP_S + float(self.rng.uniform(0, 1.5))) - plan.seg_start
            offset = max(offset, -plan.seg_start + self.sec(0.5))
            if plan.seg_end + offset >= self.s.num_frames - 1:
                continue
            self.commit(plan, offset)
            prev_end = plan.seg_end + offset

    def commit(self, plan: Plan, offset: int) -> None:
        ids: dict[int, int] = {}
        carriers: dict[int, Actor] = {}
        for k, actor in enumerate(plan.actors):
            actor.keys = [Key(key.frame + offset, key.x, key.y, key.pose) for key in actor.keys]
            actor.carry_frames = (actor.carry_frames[0] + offset, actor.carry_frames[1] + offset)
            if actor.track_id not in ids:
                ids[actor.track_id] = self.s.new_id()
            actor.track_id = ids[actor.track_id]
            carriers[k] = actor
            self.s.actors.append(actor)
        self.s.activities.append(
            Activity(plan.label, plan.seg_start + offset, plan.seg_end + offset, tuple(ids[t] for t in plan.track_ids))
        )

    def _person(self, keys: list[Key], track_id: int) -> Actor:
        return Actor(
            track_id,
            "person",
            self.color(),
            float(self.rng.uniform(66, 86)),
            float(self.rng.uniform(18, 26)),
            _dedupe(keys),
            fall_dir=1 if self.rng.random() < 0.5 else -1,
        )

    def _bag(self, track_id: int) -> Actor:
        return Actor(
            track_id, "bag", self.bag_color(), float(self.rng.uniform(22, 30)), float(self.rng.uniform(24, 34)), []
        )

    def bag_color(self) -> tuple[int, int, int]:
        """Saturated colours (red, blue, orange, ...) at varied brightness."""
        hue = int(self.rng.integers(0, 180))
        hsv = np.array([[[hue, int(self.rng.integers(150, 256)), int(self.rng.integers(120, 230))]]], np.uint8)
        b, g, r = (int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])
        return b, g, r

    def _spot(self, left: bool) -> tuple[float, float]:
        """A place not far from the side the actor enters from."""
        x = float(self.rng.uniform(0.2, 0.5)) * self.w
        return (x if left else self.w - x), self.person_y(activity=True)

    def _walk_in(self, left: bool, x: float, y: float) -> list[Key]:
        return self.walk_keys(0, self.offscreen_x(left), y, x, y, float(self.rng.uniform(55, 75)))

    def act_fall(self) -> Plan:
        left = self.rng.random() < 0.5
        x, y = self._spot(left)
        walk_in = self._walk_in(left, x, y)
        t_fall = walk_in[-1].frame
        t_lie = t_fall + self.sec(0.5)
        t_rise = t_lie + self.sec(float(self.rng.uniform(3.5, 5.5)))
        t_up = t_rise + self.sec(0.6)
        out = self.walk_keys(t_up, x, y, self.offscreen_x(not left), y, float(self.rng.uniform(50, 70)))
        keys = [
            walk_in[0],
            Key(t_fall, x, y, "fall"),
            Key(t_lie, x, y, "lie"),
            Key(t_rise, x, y, "rise"),
            Key(t_up, x, y, "walk"),
            out[-1],
        ]
        return Plan("fall", t_fall, t_rise, [self._person(keys, 0)], (0,))

    def act_loiter(self) -> Plan:
        left = self.rng.random() < 0.5
        x, y = self._spot(left)
        walk_in = self._walk_in(left, x, y)
        t0 = walk_in[-1].frame
        keys = [walk_in[0]]
        t, end = t0, t0 + self.sec(float(self.rng.uniform(8, 12)))
        cx, cy = x, y
        lo, hi = (v * self.h for v in LAYOUTS[self.s.scene].person_y)
        while t < end:
            if self.rng.random() < 0.4:
                keys.append(Key(t, cx, cy, "stand"))
                t += self.sec(float(self.rng.uniform(0.8, 2.0)))
            else:
                nx = float(np.clip(x + self.rng.uniform(-40, 40), 30, self.w - 30))
                ny = float(np.clip(y + self.rng.uniform(-12, 12), lo, hi))
                step = self.walk_keys(t, cx, cy, nx, ny, float(self.rng.uniform(14, 24)))
                keys.append(Key(t, cx, cy, "walk"))
                t, cx, cy = step[-1].frame, nx, ny
        keys.append(Key(t, cx, cy, "walk"))
        keys.append(self.walk_keys(t, cx, cy, self.offscreen_x(not left), cy, float(self.rng.uniform(50, 70)))[-1])
        # Loitering is staying a while: the segment starts after LOITER_DWELL_S in the area.
        return Plan("loiter", t0 + self.sec(LOITER_DWELL_S), t, [self._person(keys, 0)], (0,))

    def act_run(self) -> Plan:
        y = self.person_y()
        left = self.rng.random() < 0.5
        keys = self.walk_keys(
            0,
            self.offscreen_x(left),
            y,
            self.offscreen_x(not left),
            y + float(self.rng.uniform(-20, 20)),
            float(self.rng.uniform(170, 230)),
            "run",
        )
        # Ground truth: while the runner is in the frame.
        margin = round(40 / (200 * perspective(y, self.h)) * self.fps)
        return Plan("run", keys[0].frame + margin, keys[-1].frame - margin, [self._person(keys, 0)], (0,))

    def act_abandoned_object(self) -> Plan:
        left = self.rng.random() < 0.5
        x, y = self._spot(left)
        walk_in = self._walk_in(left, x, y)
        t_drop = walk_in[-1].frame + self.sec(0.5)
        out = self.walk_keys(t_drop, x, y, self.offscreen_x(not left), y, float(self.rng.uniform(50, 65)))
        t_pick = t_drop + self.sec(float(self.rng.uniform(8, 12)))
        from_left = self.rng.random() < 0.5
        pick_in = self.walk_keys(0, self.offscreen_x(from_left), y, x, y, float(self.rng.uniform(50, 65)))
        arrive = pick_in[-1].frame - pick_in[0].frame
        t_go = t_pick + self.sec(0.3)
        pick_out = self.walk_keys(t_go, x, y, self.offscreen_x(not from_left), y, 55)
        owner = self._person([walk_in[0], Key(walk_in[-1].frame, x, y, "stand"), Key(t_drop, x, y, "walk"), out[-1]], 0)
        picker = self._person(
            [
                Key(t_pick - arrive, pick_in[0].x, y, "walk"),
                Key(t_pick, x, y, "stand"),
                Key(t_go, x, y, "walk"),
                pick_out[-1],
            ],
            1,
        )
        bag = self._bag(2)
        bag_x = x + (1 if left else -1) * 0.45 * owner.width * perspective(y, self.h)
        bag.carrier, bag.carry_frames = owner, (owner.keys[0].frame, t_drop - 1)
        bag.keys = [Key(t_drop, bag_x, y, "ground"), Key(t_pick, bag_x, y, "ground")]
        # The picker carries the same bag away: same track id, a second carried segment.
        away = Actor(
            2,
            "bag",
            bag.color,
            bag.height,
            bag.width,
            [],
            carrier=picker,
            carry_frames=(t_pick + 1, pick_out[-1].frame),
        )
        return Plan("abandoned_object", t_drop, t_pick, [owner, picker, bag, away], (0, 2))

    def act_crowd(self) -> Plan:
        cx, cy = float(self.rng.uniform(0.3, 0.7)) * self.w, self.person_y(activity=True)
        n = int(self.rng.integers(4, 7))
        t_arrive = self.sec(3.0)
        t_leave = t_arrive + self.sec(float(self.rng.uniform(6, 9)))
        actors = []
        for i in range(n):
            ang = 2 * math.pi * i / n + float(self.rng.uniform(-0.3, 0.3))
            tx, ty = cx + 34 * math.cos(ang), cy + 10 * math.sin(ang)
            left = bool(tx < cx) if self.rng.random() < 0.8 else bool(self.rng.random() < 0.5)
            x0 = self.offscreen_x(left)
            speed = float(self.rng.uniform(50, 70))
            walk_frames = max(1, round(abs(tx - x0) / (speed * perspective(ty, self.h)) * self.fps))
            arrive = t_arrive + int(self.rng.integers(-self.sec(0.5), self.sec(0.5) + 1))
            keys = [Key(arrive - walk_frames, x0, ty, "walk"), Key(arrive, tx, ty, "stand")]
            t = arrive
            while t < t_leave:
                t += self.sec(float(self.rng.uniform(1.0, 2.0)))
                keys.append(Key(min(t, t_leave), tx + float(self.rng.uniform(-4, 4)), ty, "stand"))
            keys.append(Key(t_leave, keys[-1].x, ty, "walk"))
            keys.append(self.walk_keys(t_leave, keys[-1].x, ty, self.offscreen_x(not left), ty, speed)[-1])
            actors.append(self._person(keys, i))
        return Plan("crowd", t_arrive + self.sec(0.5), t_leave, actors, tuple(range(n)))


def _dedupe(keys: list[Key]) -> list[Key]:
    """Keep keys in strictly increasing frame order (a later key at the same frame wins)."""
    out: list[Key] = []
    for k in keys:
        if out and k.frame <= out[-1].frame:
            if k.frame == out[-1].frame:
                out[-1] = k
            continue
        out.append(k)
    return out


def make_script(
    seed: int,
    scene: str,
    night: bool,
    seconds: float,
    fps: int,
    size_wh: tuple[int, int],
    order: list[str] | None = None,
    scenario: str = "default",
    scenario_actors: Callable[[Director], None] | None = None,
) -> Script:
    """The script of one video: background traffic, then the activities in ``order`` (default: all,
    shuffled) or, for a scenario of its own (``rules``: ``pipeline.ml.synth.crossings``), the actors
    ``scenario_actors`` adds instead."""
    rng = np.random.default_rng(seed)
    script = Script(scene, night, size_wh, fps, round(seconds * fps), scenario=scenario)
    director = Director(rng, script)
    director.traffic()
    if scenario_actors is not None:
        scenario_actors(director)
        return script
    if order is None:
        acts = list(ACTIVITIES[1:])
        rng.shuffle(acts)
        order = acts
    director.schedule(order)
    return script
