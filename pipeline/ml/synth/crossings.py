"""The ``rules`` scenario (``vigil synth --scenario rules``): videos for zone and line analytics.

A steady camera (speeds are measured in frame pixels) watches a vertical line at the middle of the
frame (``LINE_X``). Besides the usual background traffic (walkers and vehicles, which cross the
line both ways):

- a pillar stands on the line (an ``Occluder`` ``OCCLUDER_W`` of the frame wide): people who pass
  behind it are hidden for about 0.5 to 1 s while they cross (the ground truth leaves them out
  while they are under 25 % visible; their track id stays the same);
- people cross behind the pillar, each at the speed that hides them that long;
- people walk up to the line in front of the pillar, stand one to six pixels from it with small
  jitter for 6 to 10 s (``loiter`` once they have stood there ``LOITER_DWELL_S``), then leave,
  back to the side they came from or across.

The ground truth of this scenario also gives each object's ``speed_px_s``, the speed of its foot
point in the script in frame pixels per second (``pipeline.ml.synth.render``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.ml.synth.actors import Key, Occluder, perspective

if TYPE_CHECKING:
    from pipeline.ml.synth.activities import Director

SCENARIOS = ("default", "rules")
LINE_X = 0.5  # the line, as a fraction of the frame width
OCCLUDER_W = 0.065  # the pillar's width, as a fraction of the frame width
HIDDEN_S = (0.5, 1.0)  # how long people behind the pillar are hidden


@dataclass(frozen=True)
class RulesLayout:
    """Where the pillar stands and where people go around it (fractions of the frame height)."""

    occluder_base: float  # the pillar's foot
    behind: tuple[float, float]  # foot y of people who cross behind it
    front: tuple[float, float]  # foot y of people who linger in front of it


RULES_LAYOUTS = {
    "street": RulesLayout(0.88, behind=(0.77, 0.85), front=(0.91, 0.97)),
    # Behind the driving lane and in front of the near parked row (the activities' band).
    "parking": RulesLayout(0.63, behind=(0.55, 0.6), front=(0.65, 0.71)),
    "corridor": RulesLayout(0.8, behind=(0.6, 0.76), front=(0.84, 0.97)),
}


def add_rules_actors(d: Director) -> None:
    """The pillar, the people crossing behind it and the people lingering at the line."""
    layout = RULES_LAYOUTS[d.s.scene]
    line_x, half = LINE_X * d.w, OCCLUDER_W * d.w / 2
    grey = int(d.rng.integers(120, 190))
    colour = (grey, min(255, grey + 6), min(255, grey + 12))
    d.s.occluders.append(Occluder(line_x - half, line_x + half, layout.occluder_base * d.h, colour))
    _cross_behind(d, layout)
    _linger(d, layout, line_x)


def _cross_behind(d: Director, layout: RulesLayout) -> None:
    f = d.sec(float(d.rng.uniform(0.5, 3.0)))
    while f < d.s.num_frames:
        left = d.rng.random() < 0.5
        y = float(d.rng.uniform(*layout.behind)) * d.h
        actor = d.person([])
        s = perspective(y, d.h)
        # Under 25 % visible while the body's centre is within (pillar width - body width / 2) of it.
        hidden_px = OCCLUDER_W * d.w - 0.5 * actor.width * s
        speed = float(np.clip(hidden_px / (float(d.rng.uniform(*HIDDEN_S)) * s), 35, 95))
        actor.keys = d.walk_keys(f, d.offscreen_x(left), y, d.offscreen_x(not left), y, speed)
        f += d.sec(float(d.rng.uniform(5, 9)))


def _linger(d: Director, layout: RulesLayout, line_x: float) -> None:
    from pipeline.ml.synth.activities import LOITER_DWELL_S, Plan

    prev_end: int | None = None
    while True:
        left = d.rng.random() < 0.5
        y = float(d.rng.uniform(*layout.front)) * d.h
        x = line_x + (-1 if left else 1) * float(d.rng.uniform(1.0, 6.0))
        walk_in = d.walk_keys(0, d.offscreen_x(left), y, x, y, float(d.rng.uniform(50, 70)))
        t0 = walk_in[-1].frame
        t_go = t0 + d.sec(float(d.rng.uniform(6, 10)))
        keys = [walk_in[0], Key(t0, x, y, "stand")]
        t = t0 + d.sec(float(d.rng.uniform(0.4, 1.0)))
        while t < t_go:
            keys.append(Key(t, x + float(d.rng.uniform(-2, 2)), y + float(d.rng.uniform(-1.5, 1.5)), "stand"))
            t += d.sec(float(d.rng.uniform(0.4, 1.0)))
        keys.append(Key(t_go, x, y, "walk"))
        across = d.rng.random() < 0.5
        keys.append(d.walk_keys(t_go, x, y, d.offscreen_x(left != across), y, float(d.rng.uniform(50, 70)))[-1])
        plan = Plan("loiter", t0 + d.sec(LOITER_DWELL_S), t_go, [d._person(keys, 0)], (0,))
        if prev_end is None:
            offset = d.sec(float(d.rng.uniform(0, 2.0)))
        else:
            offset = prev_end + d.sec(d.GAP_S + float(d.rng.uniform(0, 1.5))) - plan.seg_start
        if plan.seg_end + offset >= d.s.num_frames - 1:
            return
        d.commit(plan, offset)
        prev_end = plan.seg_end + offset
