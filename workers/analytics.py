"""Track analytics: zones, lines, dwell and speed on one camera's tracked objects
(``cameras[].analytics``). It runs after tracking, per camera, on every processed frame, and is
named apart from the event rules engine (``pipeline.events.rules``), which turns what it sees
(``AnalyticsHit``) into events.

Each tracked box is reduced to one anchor point (bottom centre by default). Per frame, for all
objects at once (numpy, no call per point):

- zones: the anchor inside the polygon (even-odd ray casting over every edge of every zone). An
  object counts as in after ``min_frames`` frames in a row inside, and out after as many outside;
  its entry is dated to its first frame inside, its dwell runs to its last.
- lines: which side of the line the anchor is on (signed distance to the nearest segment). The
  anchor must be ``line_margin`` box heights past the line before the side counts, so a box that
  jitters on the line is never counted; a crossing is a change of counted side whose path cuts the
  line itself (walking round its end is not a crossing).
- speed: anchor displacement over ``speed_window_s`` (from where the object last stood still, if
  later), in pixels per second or, through the ground-plane homography, metres per second.
- objects, not track ids: a track lost for at most ``reid_s`` and a new track of the same class that
  appears where the lost one would be now (``_gap``: its leading edge moved on at its speed, at the
  same depth, with a box of a like height) are one object. The new id inherits the zones it was in
  and the side of each line, so an occlusion or an id switch neither counts a crossing twice nor
  splits a dwell. A lost object that a younger track seen beside it continues (a car a pillar cut
  in two) is merged into it; a track whose foot jumps between frames, or whose id comes back where
  its object cannot be, has gone over to another object and is treated as a new track.

State is kept in arrays, one row per object, so the cost grows with the number of objects and
edges in numpy, not in Python. Not thread-safe: one instance per camera.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.core.config.analytics import AnalyticsConfig, Anchor, Coordinates
from pipeline.core.messages import AnalyticsFrame, AnalyticsHit, Detections

F64 = npt.NDArray[np.float64]
SPEED_FACTORS = {"px/s": 1.0, "m/s": 1.0, "km/h": 3.6}
STILL_HEIGHTS = 0.25  # an object moving less than this many box heights a second stands still
JUMP_HEIGHTS = 0.15  # a foot that moves this many box heights up or down in one frame: another object
# A track that walks one way and then, within TURN_SPAN_S, back the other way has gone over to another
# object (two people passing behind the same pillar, each going the other's way): the first leg at
# least TURN_OUT_HEIGHTS box heights long, the way back at least TURN_BACK_HEIGHTS, over TURN_S.
TURN_S = 2.0
TURN_OUT_HEIGHTS = 0.5
TURN_BACK_HEIGHTS = 0.25
TURN_SPAN_S = 1.0
TURN_AWAY_S = 0.2  # ... and has stayed more than 0.1 box heights from the turn for this long
TURN_COS = -0.7  # the way back points at least this much against the way out
WIDTH_MEMORY = 0.98  # per frame: how slowly an object's remembered width forgets its widest box


class GeometryOutsideFrame(ValueError):
    """Pixel geometry that does not fit the camera's frame."""


@dataclass
class _Compiled:
    """The geometry in frame pixels, flattened for vectorised tests."""

    zone_names: tuple[str, ...]
    zone_start: npt.NDArray[np.int64]  # (Z,) index of each zone's first edge
    zone_bits: npt.NDArray[np.uint64]  # (Z,) 1 << zone index
    edges_a: F64  # (E, 2) start of each zone edge
    edges_b: F64  # (E, 2) end
    edge_zone: npt.NDArray[np.int64]  # (E,) the zone each edge belongs to
    edge_dxdy: F64  # (E,) dx/dy of each edge (0 for horizontal edges, which no horizontal ray crosses)
    zone_min_frames: npt.NDArray[np.int64]  # (Z,)
    zone_dwell: F64  # (Z,) dwell threshold in seconds (inf: none)
    any_dwell: bool
    zone_classes: list[frozenset[str] | None]
    line_names: tuple[str, ...]
    seg_a: F64  # (S, 2) segments of every line
    seg_b: F64
    seg_line: npt.NDArray[np.int64]  # (S,)
    seg_length: F64  # (S,)
    line_segments: list[list[int]]  # the segments of each line
    line_classes: list[frozenset[str] | None]
    line_directions: list[tuple[str, str]]
    homography: F64 | None  # pixels -> metres


def compile_geometry(cfg: AnalyticsConfig, width: int, height: int) -> _Compiled:
    """The config's geometry in pixels of a ``width`` x ``height`` frame."""
    problem = cfg.outside_frame(width, height)
    if problem is not None:
        raise GeometryOutsideFrame(problem)
    scale = np.array([width, height], np.float64) if cfg.coordinates is Coordinates.NORMALIZED else np.ones(2)

    def px(points: list[tuple[float, float]]) -> F64:
        return np.asarray(points, np.float64).reshape(-1, 2) * scale

    ea, eb, ez = [], [], []
    for z, zone in enumerate(cfg.zones):
        poly = px(zone.polygon)
        ea.append(poly)
        eb.append(np.roll(poly, -1, axis=0))
        ez.append(np.full(len(poly), z, np.int64))
    sa, sb, sl = [], [], []
    for i, line in enumerate(cfg.lines):
        pts = px(line.points)
        sa.append(pts[:-1])
        sb.append(pts[1:])
        sl.append(np.full(len(pts) - 1, i, np.int64))
    homography = None
    if cfg.calibration is not None:
        src = px(cfg.calibration.image).astype(np.float32)
        dst = np.asarray(cfg.calibration.ground_m, np.float32)
        homography = cv2.getPerspectiveTransform(src, dst).astype(np.float64)

    def cat(parts: list[npt.NDArray], shape: tuple[int, ...], dtype: type) -> npt.NDArray:  # type: ignore[type-arg]
        return np.concatenate(parts) if parts else np.zeros(shape, dtype)

    edges_a, edges_b = cat(ea, (0, 2), np.float64), cat(eb, (0, 2), np.float64)
    dy = edges_b[:, 1] - edges_a[:, 1]
    edge_dxdy = np.divide(edges_b[:, 0] - edges_a[:, 0], dy, out=np.zeros(len(dy)), where=dy != 0)
    return _Compiled(
        zone_names=tuple(z.name for z in cfg.zones),
        zone_bits=np.left_shift(np.uint64(1), np.arange(len(cfg.zones), dtype=np.uint64)),
        zone_start=np.cumsum([0] + [len(z.polygon) for z in cfg.zones[:-1]]).astype(np.int64),
        edges_a=edges_a,
        edges_b=edges_b,
        edge_zone=cat(ez, (0,), np.int64),
        edge_dxdy=edge_dxdy,
        zone_min_frames=np.array([z.min_frames for z in cfg.zones], np.int64),
        zone_dwell=np.array([z.dwell_s if z.dwell_s is not None else np.inf for z in cfg.zones], np.float64),
        any_dwell=any(z.dwell_s is not None for z in cfg.zones),
        zone_classes=[frozenset(z.classes) if z.classes is not None else None for z in cfg.zones],
        line_names=tuple(ln.name for ln in cfg.lines),
        seg_a=cat(sa, (0, 2), np.float64),
        seg_b=cat(sb, (0, 2), np.float64),
        seg_line=cat(sl, (0,), np.int64),
        line_segments=[np.flatnonzero(cat(sl, (0,), np.int64) == i).tolist() for i in range(len(cfg.lines))],
        seg_length=np.hypot(*(cat(sb, (0, 2), np.float64) - cat(sa, (0, 2), np.float64)).T),
        line_classes=[frozenset(ln.classes) if ln.classes is not None else None for ln in cfg.lines],
        line_directions=[ln.directions for ln in cfg.lines],
        homography=homography,
    )


def points_in_zones(points: F64, geo: _Compiled) -> npt.NDArray[np.bool_]:
    """(N, Z): each point inside each zone (even-odd rule over all edges at once)."""
    n, z = len(points), len(geo.zone_names)
    if n == 0 or z == 0:
        return np.zeros((n, z), bool)
    px, py = points[:, 0:1], points[:, 1:2]  # (N, 1)
    ay, by = geo.edges_a[:, 1], geo.edges_b[:, 1]  # (E,)
    straddles = (ay > py) != (by > py)  # (N, E)
    x_cross = geo.edges_a[:, 0] + (py - ay) * geo.edge_dxdy  # where each edge is at the point's height
    hits = straddles & (px < x_cross)
    counts = np.add.reduceat(hits, geo.zone_start, axis=1)  # each zone's edges are contiguous
    inside: npt.NDArray[np.bool_] = (counts % 2) == 1
    return inside


def side_of_lines(points: F64, geo: _Compiled) -> F64:
    """(N, L) signed distance (pixels) of each point to each line's nearest segment: positive on
    the right of the line, as seen looking from its first point to its last in the picture."""
    n, nl = len(points), len(geo.line_names)
    if n == 0 or nl == 0:
        return np.zeros((n, nl))
    d = geo.seg_b - geo.seg_a  # (S, 2)
    if len(geo.seg_line) == nl:  # straight lines only: the distance to each line, signed by its side
        cross = d[None, :, 0] * (points[:, 1:2] - geo.seg_a[None, :, 1]) - d[None, :, 1] * (
            points[:, 0:1] - geo.seg_a[None, :, 0]
        )
        return np.asarray(cross / geo.seg_length[None], np.float64)
    length2 = np.maximum((d**2).sum(axis=1), 1e-12)
    rel = points[:, None, :] - geo.seg_a[None]  # (N, S, 2)
    t = np.clip((rel * d[None]).sum(axis=2) / length2, 0.0, 1.0)
    nearest = geo.seg_a[None] + t[..., None] * d[None]
    dist = np.hypot(*(points[:, None, :] - nearest).transpose(2, 0, 1))  # (N, S)
    # Image y points down: a positive cross product is on the right of the segment's direction.
    cross = d[None, :, 0] * rel[..., 1] - d[None, :, 1] * rel[..., 0]
    signed = np.where(cross >= 0, dist, -dist)
    out = np.empty((n, nl))
    for i in range(nl):  # pick each polyline's nearest segment
        cols = np.flatnonzero(geo.seg_line == i)
        best = dist[:, cols].argmin(axis=1)
        out[:, i] = signed[np.arange(n), cols[best]]
    return out


def path_cuts_line(p: F64, q: F64, geo: _Compiled, line: int) -> bool:
    """Whether the segment p -> q intersects the line (any of its segments)."""
    px, py, qx, qy = float(p[0]), float(p[1]), float(q[0]), float(q[1])

    def orient(ux: float, uy: float, vx: float, vy: float, wx: float, wy: float) -> float:
        return (vx - ux) * (wy - uy) - (vy - uy) * (wx - ux)

    for k in geo.line_segments[line]:
        ax, ay = geo.seg_a[k]
        bx, by = geo.seg_b[k]
        if (
            orient(ax, ay, bx, by, px, py) * orient(ax, ay, bx, by, qx, qy) <= 0
            and orient(px, py, qx, qy, ax, ay) * orient(px, py, qx, qy, bx, by) <= 0
        ):
            return True
    return False


def anchors(xyxy: F64, anchor: Anchor) -> F64:
    """(N, 2): the anchor point of each box."""
    out = np.empty((len(xyxy), 2))
    np.add(xyxy[:, 0], xyxy[:, 2], out=out[:, 0])
    out[:, 0] *= 0.5
    if anchor is Anchor.BOTTOM_CENTER:
        out[:, 1] = xyxy[:, 3]
    elif anchor is Anchor.TOP_CENTER:
        out[:, 1] = xyxy[:, 1]
    else:
        np.add(xyxy[:, 1], xyxy[:, 3], out=out[:, 1])
        out[:, 1] *= 0.5
    return out


def to_ground(points: F64, homography: F64) -> F64:
    """Pixels (N, 2) -> ground metres (N, 2) through a 3x3 homography."""
    ph = np.column_stack([points, np.ones(len(points))]) @ homography.T
    return np.asarray(ph[:, :2] / ph[:, 2:3], np.float64)


class _Rows:
    """Per-object state, one row per object (grown by doubling; rows are reused once freed)."""

    def __init__(self, zones: int, lines: int, history: int, trail: int) -> None:
        self.history = history
        self.trail = trail
        # name -> (shape after the row axis, fill, dtype)
        self._spec: dict[str, tuple[tuple[int, ...], object, type]] = {
            "key": ((), -1, np.int64),  # the object's key; -1: a free row
            "last_seen": ((), -np.inf, np.float64),
            "last_anchor": ((2,), 0.0, np.float64),
            "height": ((), 1.0, np.float64),
            "inside": ((zones,), False, bool),  # counted as in each zone
            "run": ((zones,), 0, np.int64),  # frames in a row disagreeing with `inside`
            "run_t": ((zones,), 0.0, np.float64),  # when that run began (clock, frame)
            "run_f": ((zones,), 0, np.int64),
            "entered_t": ((zones,), 0.0, np.float64),
            "entered_f": ((zones,), 0, np.int64),
            "last_in_t": ((zones,), 0.0, np.float64),  # the last frame inside (clock, frame)
            "last_in_f": ((zones,), 0, np.int64),
            "dwelled": ((zones,), False, bool),
            "side": ((lines,), 0, np.int8),  # -1 / +1: the counted side of each line; 0 unknown
            "side_pt": ((lines, 2), 0.0, np.float64),  # the anchor where that side was counted
            "hist_p": ((history, 2), np.nan, np.float64),  # anchor history over the speed window
            "hist_t": ((history,), np.nan, np.float64),
            "hist_i": ((), 0, np.int64),
            "fast_since": ((), np.nan, np.float64),
            "fast_fired": ((), False, bool),
            "width_ref": ((), 0.0, np.float64),  # the object's box width, slowly forgetting its widest
            "born_t": ((), 0.0, np.float64),  # when the object was first seen, and where
            "first_pt": ((2,), 0.0, np.float64),
            "first_x": ((2,), 0.0, np.float64),  # its first box's left and right edges
            "hist_x": ((history, 2), np.nan, np.float64),  # box edges (x1, x2) over the speed window
            "first_side": ((lines,), 0, np.int8),  # the first side of each line it was counted on
            "slow_run": ((), 0, np.int64),  # frames in a row it barely moved
            "win0": ((), 0, np.int64),  # the history's first sample since the object last stood still
            "trail_p": ((trail, 2), np.nan, np.float64),  # anchors over the last TURN_S (turns)
            "trail_t": ((trail,), np.nan, np.float64),
            "trail_x": ((trail, 2), np.nan, np.float64),  # box edges (x1, x2) over the last TURN_S
            "trail_i": ((), 0, np.int64),
        }
        self.cap = 0
        self._grow(32)

    def _grow(self, cap: int) -> None:
        for name, (shape, fill, dtype) in self._spec.items():
            arr: npt.NDArray[Any] = np.full((cap, *shape), fill, dtype)
            if self.cap:
                arr[: self.cap] = getattr(self, name)
            setattr(self, name, arr)
        self.cap = cap

    def take(self, key: int) -> int:
        free = np.flatnonzero(self.key < 0)
        row = int(free[0]) if len(free) else self.cap
        if row == self.cap:
            self._grow(self.cap * 2)
        self.reset(row)
        self.key[row] = key
        return row

    def reset(self, row: int) -> None:
        for name, (_, fill, _) in self._spec.items():
            getattr(self, name)[row] = fill

    # Filled in by _grow (declared for type checkers).
    key: npt.NDArray[np.int64]
    last_seen: F64
    last_anchor: F64
    height: F64
    inside: npt.NDArray[np.bool_]
    run: npt.NDArray[np.int64]
    run_t: F64
    run_f: npt.NDArray[np.int64]
    entered_t: F64
    entered_f: npt.NDArray[np.int64]
    last_in_t: F64
    last_in_f: npt.NDArray[np.int64]
    dwelled: npt.NDArray[np.bool_]
    side: npt.NDArray[np.int8]
    side_pt: F64
    hist_p: F64
    hist_t: F64
    hist_i: npt.NDArray[np.int64]
    fast_since: F64
    fast_fired: npt.NDArray[np.bool_]
    width_ref: F64
    born_t: F64
    first_pt: F64
    first_x: F64
    hist_x: F64
    first_side: npt.NDArray[np.int8]
    slow_run: npt.NDArray[np.int64]
    win0: npt.NDArray[np.int64]
    trail_p: F64
    trail_t: F64
    trail_x: F64
    trail_i: npt.NDArray[np.int64]


@dataclass(frozen=True)
class _Frame:
    """One frame's tracked boxes as the stage sees them: what a hit is made of."""

    frame_id: int
    now: float
    xyxy: F64
    conf: npt.NDArray[np.float32]
    track_ids: npt.NDArray[np.int64]
    objs: list[_Object]
    label: Callable[[int], str]  # the class of box n on this frame
    speeds: F64


@dataclass
class _Object:
    key: int
    row: int
    label: str
    track_ids: list[int]


class TrackAnalytics:
    """Zones, lines, dwell and speed for one camera (see the module docstring)."""

    def __init__(self, cfg: AnalyticsConfig, fps: float) -> None:
        self.cfg = cfg
        self._fps = fps
        self._geo: _Compiled | None = None
        self._size: tuple[int, int] | None = None
        history = max(2, math.ceil(cfg.speed_window_s * min(fps, 60.0)) + 1)  # anchors over the speed window
        trail = max(3, math.ceil(TURN_S * min(fps, 30.0)) + 1)  # anchors over TURN_S
        self._rows = _Rows(len(cfg.zones), len(cfg.lines), history, trail)
        self._objects: dict[int, _Object] = {}  # by object key
        self._by_track: dict[int, int] = {}  # tracker id -> object key
        self._next_key = 1
        self._prev_now: float | None = None  # the clock of the last frame
        # Speeds are reported in the speed limit's unit where there is one, else m/s where calibrated, else px/s.
        base = "m/s" if cfg.calibration is not None else "px/s"
        self._speed_unit = cfg.speed.unit if cfg.speed is not None else base
        self._speed_factor = SPEED_FACTORS[self._speed_unit]
        self._class_tables: dict[tuple[str, tuple[str, ...]], npt.NDArray[np.bool_]] = {}
        self._speed_classes = frozenset(cfg.speed.classes) if cfg.speed is not None and cfg.speed.classes else None
        # The last frame's tracker ids (as bytes) and their rows and objects; reset when they change.
        self._mapped: tuple[bytes, npt.NDArray[np.int64], list[_Object]] | None = None
        self._zone_sets: dict[int, tuple[str, ...]] = {}  # bit mask of zones -> their names

    @property
    def speed_unit(self) -> str:
        return self._speed_unit

    @property
    def geometry(self) -> _Compiled | None:
        """The geometry in pixels (None before the first frame)."""
        return self._geo

    def update(self, frame_id: int, now: float, det: Detections, frame_wh: tuple[int, int]) -> AnalyticsFrame:
        """One frame's tracked detections at clock time ``now``. Raises ``GeometryOutsideFrame`` on
        the first frame when pixel geometry does not fit it."""
        if self._geo is None or self._size != frame_wh:
            self._geo, self._size = compile_geometry(self.cfg, *frame_wh), frame_wh
        geo, rows, cfg = self._geo, self._rows, self.cfg
        if (det.tracker_id >= 0).all():
            xyxy, track_ids, class_id, conf = det.xyxy.astype(np.float64), det.tracker_id, det.class_id, det.confidence
        else:
            keep = np.flatnonzero(det.tracker_id >= 0)
            xyxy, track_ids = det.xyxy[keep].astype(np.float64), det.tracker_id[keep]
            class_id, conf = det.class_id[keep], det.confidence[keep]
        names = det.class_names

        def label(n: int) -> str:
            c = int(class_id[n])
            return names[c] if 0 <= c < len(names) else str(c)

        pts = anchors(xyxy, cfg.anchor)
        heights = np.maximum(xyxy[:, 3] - xyxy[:, 1], 1.0)
        widths = np.maximum(xyxy[:, 2] - xyxy[:, 0], 1.0)
        hits: list[AnalyticsHit] = []
        rewound: list[tuple[int, int]] = []  # (a turned track's object, rewound to its turn; the track's new object)

        # Objects: tracker ids -> object keys (a new id may continue a lost object). The same ids as
        # on the last frame (the usual case) map to the same rows.
        ids_key = track_ids.tobytes()
        if self._mapped is not None and self._mapped[0] == ids_key:
            idx, objs = self._mapped[1], self._mapped[2]
        else:
            idx = np.empty(len(track_ids), np.int64)
            objs = []
            present = {self._by_track[t] for t in track_ids.tolist() if t in self._by_track}
            for n, tid in enumerate(track_ids.tolist()):
                key = self._by_track.get(tid)
                obj = self._objects.get(key) if key is not None else None
                if obj is None:
                    obj = self._continue_or_new(tid, label(n), pts[n], xyxy[n], now, present)
                    present.add(obj.key)
                objs.append(obj)
                idx[n] = obj.row
            self._mapped = (ids_key, idx, objs)
        # A track whose foot jumped up or down the picture from one frame to the next, or that turned
        # straight back, has gone over to another object (trackers swap ids where two people pass
        # behind the same pillar): from here it is a new track, and the object it followed is lost
        # (a later track may continue it).
        if len(idx):
            step_t = now - rows.last_seen[idx]
            next_frame = step_t <= 1.5 / max(self._fps, 1e-6)
            jumped = next_frame & (np.abs(pts[:, 1] - rows.last_anchor[idx, 1]) > JUMP_HEIGHTS * heights)
            for n in np.flatnonzero(~next_frame & (rows.hist_i[idx] > 1)).tolist():
                # Back after a gap: where its object cannot be by now, it is another object.
                b = xyxy[n]
                jumped[n] = self._gap(int(idx[n]), now, pts[n], float(b[0]), float(b[2]), float(heights[n])) == math.inf
            turns = self._turns(idx, now, pts, xyxy, heights, skip=jumped)
            if jumped.any() or turns:
                idx, objs = idx.copy(), list(objs)
                present = {o.key for o in objs}
                for n in sorted({*np.flatnonzero(jumped).tolist(), *turns}):
                    tid = int(track_ids[n])
                    if n in turns:
                        # The object the track went over to: one lost a moment ago. Where there is
                        # none, the turn is the object's own (people do turn round).
                        other = self._lost_match(label(n), pts[n], xyxy[n], now, present)
                        if other is None:
                            continue
                        self._rewind(int(idx[n]), *turns[n])
                    self._by_track.pop(tid, None)
                    obj = self._continue_or_new(tid, label(n), pts[n], xyxy[n], now, present)
                    present.add(obj.key)
                    if n in turns:
                        rewound.append((int(idx[n]), obj.key))
                    objs[n], idx[n] = obj, obj.row
                self._mapped = None
        seen_rows = idx
        if len(idx):
            slot = rows.trail_i[idx] % rows.trail
            rows.trail_p[idx, slot] = pts
            rows.trail_t[idx, slot] = now
            rows.trail_x[idx, slot] = xyxy[:, 0:4:2]
            rows.trail_i[idx] += 1

        # Speed: the anchor's history over the speed window, and when the object last stood still
        # (two steps in a row under STILL_HEIGHTS box heights a second): a speed is measured from
        # there, so a person who waited by a line and then crosses it has their walking speed.
        if len(idx):
            count = rows.hist_i[idx]
            step_dt = np.maximum(now - rows.last_seen[idx], 1e-6)
            step = pts - rows.last_anchor[idx]
            slow = (count > 0) & (np.hypot(step[:, 0], step[:, 1]) < STILL_HEIGHTS * heights * step_dt)
            slow_run = np.where(slow, rows.slow_run[idx] + 1, 0)
            rows.slow_run[idx] = slow_run
            still = np.flatnonzero(slow_run >= 2)
            if len(still):  # the speed window starts again here
                rows.win0[idx[still]] = count[still]
            slot = count % rows.history
            rows.hist_p[idx, slot] = pts
            rows.hist_x[idx, slot] = xyxy[:, 0:4:2]
            rows.hist_t[idx, slot] = now
            rows.hist_i[idx] += 1
        speeds = self._speeds(idx, now)
        fr = _Frame(frame_id, now, xyxy, conf, track_ids, objs, label, speeds)

        # Zones.
        z = len(geo.zone_names)
        if z and len(idx):
            obs = points_in_zones(pts, geo) & self._class_mask(class_id, names, geo.zone_classes, "zones")
            state = rows.inside[idx]
            run = rows.run[idx]
            differs = obs != state
            started = differs & (run == 0)
            run = np.where(differs, run + 1, 0)
            rows.run[idx] = run
            sub = np.nonzero(started)
            rows.run_t[idx[sub[0]], sub[1]] = now
            rows.run_f[idx[sub[0]], sub[1]] = frame_id
            in_rows = np.nonzero(obs)
            rows.last_in_t[idx[in_rows[0]], in_rows[1]] = now
            rows.last_in_f[idx[in_rows[0]], in_rows[1]] = frame_id
            flips = np.nonzero(differs & (run >= geo.zone_min_frames))
            for n, zi in zip(*flips, strict=True):
                r = idx[n]
                rows.run[r, zi] = 0
                if obs[n, zi]:
                    rows.inside[r, zi] = True
                    rows.entered_t[r, zi], rows.entered_f[r, zi] = rows.run_t[r, zi], rows.run_f[r, zi]
                    rows.dwelled[r, zi] = False
                    hits.append(
                        self._hit(
                            "enter",
                            n,
                            fr,
                            zone=geo.zone_names[zi],
                            since=rows.entered_t[r, zi],
                            since_frame=int(rows.entered_f[r, zi]),
                        )
                    )
                else:
                    hits.append(
                        self._exit(objs[n], int(r), int(zi), frame_id, xyxy[n], float(conf[n]), int(track_ids[n]))
                    )
            dwell_due = (
                rows.inside[idx] & ~rows.dwelled[idx] & (now - rows.entered_t[idx] >= geo.zone_dwell)
                if geo.any_dwell
                else np.zeros((0, z), bool)
            )
            for n, zi in zip(*np.nonzero(dwell_due), strict=True):
                r = idx[n]
                rows.dwelled[r, zi] = True
                hits.append(
                    self._hit(
                        "dwell",
                        n,
                        fr,
                        zone=geo.zone_names[zi],
                        since=rows.entered_t[r, zi],
                        since_frame=int(rows.entered_f[r, zi]),
                        dwell_s=now - rows.entered_t[r, zi],
                    )
                )

        # Lines.
        if geo.line_names and len(idx):
            signed = side_of_lines(pts, geo)
            margin = (cfg.line_margin * heights)[:, None]
            new_side = np.where(signed > margin, 1, np.where(signed < -margin, -1, 0)).astype(np.int8)
            new_side[~self._class_mask(class_id, names, geo.line_classes, "lines")] = 0
            old_side = rows.side[idx]
            changed = (new_side != 0) & (new_side != old_side)
            for n, li in zip(*np.nonzero(changed & (old_side != 0)), strict=True):
                r = idx[n]
                if path_cuts_line(rows.side_pt[r, li], pts[n], geo, int(li)):
                    ways = geo.line_directions[li]
                    hits.append(
                        self._hit(
                            "cross",
                            n,
                            fr,
                            line=geo.line_names[li],
                            direction=ways[0] if new_side[n, li] > 0 else ways[1],
                        )
                    )
            upd = np.nonzero(changed)
            first = np.nonzero(changed & (rows.first_side[idx] == 0))
            rows.first_side[idx[first[0]], first[1]] = new_side[first]
            rows.side[idx[upd[0]], upd[1]] = new_side[upd]
            rows.side_pt[idx[upd[0]], upd[1]] = pts[upd[0]]

        # Speed limit.
        if cfg.speed is not None and len(idx):
            limit = cfg.speed.limit / self._speed_factor
            allowed = self._class_mask(class_id, names, [self._speed_classes], "speed")[:, 0]
            fast = (speeds > limit) & allowed
            since = rows.fast_since[idx]
            rows.fast_since[idx] = np.where(fast, np.where(np.isnan(since), now, since), np.nan)
            due = fast & ~rows.fast_fired[idx] & (now - rows.fast_since[idx] >= cfg.speed.min_duration_s)
            for n in np.flatnonzero(due).tolist():
                rows.fast_fired[idx[n]] = True
                hits.append(self._hit("speed", int(n), fr))

        rows.last_seen[seen_rows] = now
        rows.last_anchor[seen_rows] = pts
        rows.height[seen_rows] = heights
        rows.width_ref[seen_rows] = np.maximum(widths, WIDTH_MEMORY * rows.width_ref[seen_rows])
        if self._prev_now is not None and len(self._objects) > len(idx):
            hits += self._merge_split(fr, rewound)
        self._prev_now = now
        if len(self._objects) > len(idx):  # some objects were not seen on this frame
            hits += self._expire(now, frame_id)

        zones_by_track: dict[int, tuple[str, ...]] = {}
        occupancy: dict[tuple[str, str], int] = {}
        if z and len(idx):
            inside = rows.inside[idx]
            codes = inside @ geo.zone_bits  # which zones each object is in, as bits of one integer
            tids = track_ids.tolist()
            for n in np.flatnonzero(codes).tolist():
                code = int(codes[n])
                names_in = self._zone_sets.get(code)
                if names_in is None:
                    names_in = self._zone_sets[code] = tuple(geo.zone_names[zi] for zi in range(z) if code >> zi & 1)
                zones_by_track[tids[n]] = names_in
            if zones_by_track:
                one_class = bool((class_id == class_id[0]).all())
                for cid in [int(class_id[0])] if one_class else np.unique(class_id).tolist():
                    counts = inside.sum(axis=0) if one_class else inside[class_id == cid].sum(axis=0)
                    cls_name = names[cid] if 0 <= cid < len(names) else str(cid)
                    for zi in np.flatnonzero(counts).tolist():
                        occupancy[(geo.zone_names[zi], cls_name)] = int(counts[zi])
        speed_by_track = {
            t: s
            for t, s in zip(track_ids.tolist(), (speeds * self._speed_factor).round(2).tolist(), strict=True)
            if s == s
        }
        return AnalyticsFrame(tuple(hits), zones_by_track, speed_by_track, occupancy, self._speed_unit)

    def close(self, frame_id: int) -> list[AnalyticsHit]:
        """The camera stops: every object still in a zone exits there."""
        return self._expire(math.inf, frame_id)

    # -- internals -----------------------------------------------------------------------------------

    def _class_mask(
        self, class_id: npt.NDArray[np.int64], names: tuple[str, ...], classes: list[frozenset[str] | None], what: str
    ) -> npt.NDArray[np.bool_]:
        """(N, K): which objects each zone or line (``classes``) applies to, from a table by class id."""
        if all(c is None for c in classes):
            return np.ones((len(class_id), len(classes)), bool)
        table = self._class_tables.get((what, names))
        if table is None:  # one row per class id, and a last row for ids the model does not name
            rows = [[c is None or name in c for c in classes] for name in names] + [[c is None for c in classes]]
            table = self._class_tables[(what, names)] = np.array(rows, bool).reshape(len(names) + 1, len(classes))
        return table[np.where((class_id >= 0) & (class_id < len(names)), class_id, len(names))]

    def _speeds(self, idx: npt.NDArray[np.int64], now: float) -> F64:
        """Speed of each row: its displacement from the oldest anchor its history holds (the speed
        window, or less for a young track or one that stood still within it) to the newest."""
        rows = self._rows
        if not len(idx):
            return np.zeros(0)
        count = rows.hist_i[idx]
        oldest = np.maximum(count - rows.history, rows.win0[idx]) % rows.history
        newest = (count - 1) % rows.history
        start, end = rows.hist_p[idx, oldest], rows.hist_p[idx, newest]
        dt = now - rows.hist_t[idx, oldest]
        if self._geo is not None and self._geo.homography is not None:
            start, end = to_ground(start, self._geo.homography), to_ground(end, self._geo.homography)
        step = end - start
        distance = np.hypot(step[:, 0], step[:, 1])
        # One sample: standing (0) where the object has a history, unknown (NaN) where it is new.
        speed: F64 = np.divide(distance, dt, out=np.where(count > 1, 0.0, np.nan), where=dt > 0)
        return speed

    def _continue_or_new(self, tid: int, label: str, pt: F64, box: F64, now: float, present: set[int]) -> _Object:
        """A track id not seen before: the lost object it continues (not one of ``present``, the
        objects seen on this frame), or a new object."""
        rows, best = self._rows, self._lost_match(label, pt, box, now, present)
        if best is None:
            key, self._next_key = self._next_key, self._next_key + 1
            best = _Object(key, self._rows.take(key), label, [])
            self._objects[key] = best
            rows.born_t[best.row], rows.first_pt[best.row], rows.first_x[best.row] = now, pt, box[0:4:2]
        elif self._by_track.get(best.track_ids[-1]) == best.key:
            del self._by_track[best.track_ids[-1]]  # the old id is this object's no more
        best.track_ids.append(tid)
        self._by_track[tid] = best.key
        return best

    def _lost_match(self, label: str, pt: F64, box: F64, now: float, present: set[int]) -> _Object | None:
        """The lost object (not one of ``present``) a box of class ``label`` found now continues, if any."""
        rows, best, best_d = self._rows, None, math.inf
        if self.cfg.reid_s > 0:
            for obj in self._objects.values():
                r = obj.row
                if obj.key in present or obj.label != label or now - rows.last_seen[r] > self.cfg.reid_s:
                    continue
                d = self._gap(r, now, pt, float(box[0]), float(box[2]), float(box[3] - box[1]))
                if d < best_d:
                    best, best_d = obj, d
        return best

    def _turns(
        self, idx: npt.NDArray[np.int64], now: float, pts: F64, xyxy: F64, heights: F64, skip: npt.NDArray[np.bool_]
    ) -> dict[int, tuple[float, F64]]:
        """Which rows' tracks turned straight back (see TURN_S): over its last TURN_S the anchor went
        one way from its oldest point to its farthest (the turn), stayed near the turn for at most
        TURN_SPAN_S and has been on its way back for TURN_AWAY_S; going across the picture, with both
        edges of its box (a box that shrinks behind an occluder has one edge going back, not both).
        Box index -> (when, where) its turn was."""
        rows = self._rows
        cand = np.flatnonzero(~skip & (rows.trail_i[idx] >= rows.trail))  # a full trail
        if not len(cand):
            return {}
        r, m_ = idx[cand], np.arange(len(cand))
        tp = rows.trail_p[r]  # (M, T, 2): the last T anchors, a ring
        rel = tp - tp[m_, rows.trail_i[r] % rows.trail][:, None]  # from the oldest
        im = np.argmax(rel[..., 0] ** 2 + rel[..., 1] ** 2, axis=1)  # the farthest: the turn
        out_leg, turn = rel[m_, im], tp[m_, im]
        back, h = pts[cand] - turn, heights[cand]
        lo2, lb2 = (out_leg**2).sum(axis=1), (back**2).sum(axis=1)
        turned = (lo2 >= (TURN_OUT_HEIGHTS * h) ** 2) & (lb2 >= (TURN_BACK_HEIGHTS * h) ** 2)
        turned &= (out_leg * back).sum(axis=1) <= TURN_COS * np.sqrt(lo2 * lb2)
        if not turned.any():
            return {}
        k = np.flatnonzero(turned)  # the few left: the rest of the test
        r, tp, turn, out_leg, h, im = r[k], tp[k], turn[k], out_leg[k], h[k], im[k]
        tt, m_ = rows.trail_t[r], np.arange(len(k))
        near = np.hypot(tp[..., 0] - turn[:, None, 0], tp[..., 1] - turn[:, None, 1]) < 0.1 * h[:, None]
        last_near = np.where(near, tt, -np.inf).max(axis=1)
        # Near the turn for at most TURN_SPAN_S, and away from it since (a box jittering there is not a turn).
        span = last_near - np.where(near, tt, np.inf).min(axis=1)
        ok = (span <= TURN_SPAN_S) & (now - last_near >= TURN_AWAY_S - 1e-6)
        across = np.abs(out_leg[:, 0]) >= 0.5 * np.hypot(out_leg[:, 0], out_leg[:, 1])
        edges_back = (xyxy[cand[k]][:, 0:4:2] - rows.trail_x[r, im]) * np.sign(out_leg[:, 0])[:, None]
        ok &= ~across | (edges_back < 0).all(axis=1)
        return {int(cand[k[j]]): (float(tt[j, im[j]]), turn[j]) for j in np.flatnonzero(ok).tolist()}

    def _rewind(self, r: int, t: float, pt: F64) -> None:
        """Object ``r`` as it was at time ``t``, at anchor ``pt`` (where its track turned): it was
        last seen there, going the way it went; later samples are forgotten."""
        rows = self._rows
        rows.last_seen[r], rows.last_anchor[r], rows.slow_run[r] = t, pt, 0
        for ring, times, count, cols in (
            (rows.history, rows.hist_t, rows.hist_i, (rows.hist_p, rows.hist_x)),
            (rows.trail, rows.trail_t, rows.trail_i, (rows.trail_p, rows.trail_x)),
        ):
            while count[r] > 0 and times[r, (count[r] - 1) % ring] > t:
                slot = (count[r] - 1) % ring
                times[r, slot] = np.nan
                for arr in cols:
                    arr[r, slot] = np.nan
                count[r] -= 1
        rows.win0[r] = min(int(rows.win0[r]), int(rows.hist_i[r]))

    def _gap(self, r: int, at: float, pt: F64, x1: float, x2: float, height: float) -> float:
        """How far a box (left and right edges ``x1``, ``x2``, anchor ``pt``) is from where object
        ``r`` would be at time ``at``, or inf where it cannot be that object.

        A moving object is compared by its leading edge: going into an occluder its box shrinks to
        the part still seen (the leading edge stops, the trailing one goes on at its speed), and
        coming out of it the box is the part already out, leading edge first. So its speed is its
        faster edge's, and where its leading edge would be is its trailing edge moved on at that
        speed plus its length. It cannot be the object further along its way than its length (or
        height), across it further than a third of its height (nearer or farther from the camera),
        or with a box of another height."""
        rows = self._rows
        h = float(rows.height[r])
        if not (0.6 <= height / h <= 1.0 / 0.6):
            return math.inf
        lead, y, way = self._predict(r, at)
        dx = ((x2 if way > 0 else x1) if way else float(pt[0])) - lead
        # Where its foot is predicted, or where it was last seen: a box cut from below as it goes out
        # of sight (behind a bench, a car, another person) has a foot that seems to rise.
        dy = min(abs(float(pt[1]) - y), abs(float(pt[1]) - float(rows.last_anchor[r, 1])))
        if abs(dx) > max(float(rows.width_ref[r]), h) or abs(dy) > 0.35 * max(h, height):
            return math.inf
        return math.hypot(dx, dy)

    def _merge_split(self, fr: _Frame, rewound: list[tuple[int, int]]) -> list[AnalyticsHit]:
        """An object lost on this frame that a younger track seen now continues: a car that a pillar
        cut in two comes out as a second box while its first is still seen, and the first then goes;
        an object ``rewound`` to where its track turned back (``_turns``), which a track that appeared
        since may continue. The young track is that object: a line the two were on opposite sides of
        was crossed, and the lost one goes quietly (its stays in zones end)."""
        rows, geo, hits, now, objs = self._rows, self._geo, [], fr.now, fr.objs
        assert geo is not None
        # Seen on the last frame, not on this one (lost earlier: a new track may still continue it).
        just_lost = np.flatnonzero((rows.key >= 0) & (rows.last_seen == self._prev_now))
        other_half = dict(rewound)
        for r in just_lost.tolist() + list(other_half):
            lost = self._objects[int(rows.key[r])]
            best, best_d = -1, math.inf
            for n, young in enumerate(objs):
                y = young.row
                if young.label != lost.label or len(young.track_ids) != 1 or young.key in (lost.key, other_half.get(r)):
                    continue
                if r in other_half and rows.born_t[y] < rows.last_seen[r]:  # seen beside it before its turn
                    continue
                if not (rows.born_t[r] < rows.born_t[y] and now - rows.born_t[y] <= self.cfg.reid_s):
                    continue
                first_x1, first_x2 = (float(v) for v in rows.first_x[y])
                d = self._gap(r, float(rows.born_t[y]), rows.first_pt[y], first_x1, first_x2, float(rows.height[y]))
                if d < best_d:
                    best, best_d = n, d
            if best < 0:
                continue
            young, y = objs[best], objs[best].row
            young.track_ids[:0] = [t for t in lost.track_ids if t not in young.track_ids]
            self._inherit_motion(y, r)
            for li in range(len(geo.line_names)):
                before, after = int(rows.side[r, li]), int(rows.first_side[y, li])
                if (
                    before
                    and after
                    and before != after
                    and path_cuts_line(rows.side_pt[r, li], rows.last_anchor[y], geo, li)
                ):
                    ways = geo.line_directions[li]
                    hits.append(
                        self._hit(
                            "cross",
                            best,
                            fr,
                            line=geo.line_names[li],
                            direction=ways[0] if after > 0 else ways[1],
                        )
                    )
            rows.last_seen[r] = -np.inf  # gone: _expire ends its stays
        return hits

    def _inherit_motion(self, y: int, r: int) -> None:
        """Object row ``y`` continues row ``r``: its motion history starts with ``r``'s (the samples
        before ``y`` was first seen), so that where it goes next is predicted from the whole way (a
        track seen once before an occlusion would otherwise seem to stand still)."""
        rows = self._rows
        t_r, t_y = rows.hist_t[r], rows.hist_t[y]
        older, own = ~np.isnan(t_r) & (t_r < rows.born_t[y]), ~np.isnan(t_y)
        # The speed window starts where the later of the two last stood still.
        start = max(self._window_start(r, float(rows.born_t[y])), self._window_start(y, -math.inf))
        t = np.concatenate([t_r[older], t_y[own]])
        order = np.argsort(t, kind="stable")[-rows.history :]
        k = len(order)
        for hist in (rows.hist_p, rows.hist_x):
            merged = np.concatenate([hist[r][older], hist[y][own]])[order]
            hist[y] = np.nan
            hist[y, :k] = merged
        rows.hist_t[y] = np.nan
        rows.hist_t[y, :k] = t[order]
        rows.hist_i[y] = k  # the ring's next slot
        rows.win0[y] = int(np.searchsorted(rows.hist_t[y, :k], start))
        rows.width_ref[y] = max(float(rows.width_ref[y]), float(rows.width_ref[r]))
        rows.born_t[y] = min(float(rows.born_t[y]), float(rows.born_t[r]))

    def _window_start(self, row: int, standing: float) -> float:
        """When ``row``'s speed window starts: the time of its first sample since it last stood
        still; -inf where that is before its kept history, ``standing`` where it stands still still."""
        rows = self._rows
        w, n = int(rows.win0[row]), int(rows.hist_i[row])
        if w <= max(0, n - rows.history):
            return -math.inf
        if w >= n:
            return standing
        return float(rows.hist_t[row, w % rows.history])

    def _predict(self, row: int, at: float) -> tuple[float, float, int]:
        """Where object ``row`` would be at time ``at`` (see ``_gap``): its leading edge's x (its
        anchor's x when it stands), its anchor's y, and its way (+1 right, -1 left, 0 standing)."""
        rows = self._rows
        t = rows.hist_t[row]
        ok = ~np.isnan(t)
        last = rows.last_anchor[row]
        if ok.sum() < 2:
            return float(last[0]), float(last[1]), 0
        order = np.argsort(t[ok])
        tt, xx, pp = t[ok][order], rows.hist_x[row][ok][order], rows.hist_p[row][ok][order]
        dt = float(tt[-1] - tt[0])
        if dt <= 0:
            return float(last[0]), float(last[1]), 0
        edges_v = (xx[-1] - xx[0]) / dt  # (left, right) edge speeds
        vy = float(pp[-1, 1] - pp[0, 1]) / dt
        gap = at - float(rows.last_seen[row])
        y = float(last[1]) + vy * gap
        v = float(edges_v[int(np.argmax(np.abs(edges_v)))])
        if abs(v) < STILL_HEIGHTS * float(rows.height[row]):
            return float(last[0]) + v * gap, y, 0
        way = 1 if v > 0 else -1
        trailing = float(xx[-1, 0] if way > 0 else xx[-1, 1])
        return trailing + v * gap + way * float(rows.width_ref[row]), y, way

    def _expire(self, now: float, frame_id: int) -> list[AnalyticsHit]:
        """Objects unseen for longer than ``reid_s``: gone; the zones they were in see them exit."""
        rows, hits = self._rows, []
        stale = np.flatnonzero((rows.key >= 0) & (now - rows.last_seen > self.cfg.reid_s))
        for r in stale.tolist():
            key = int(rows.key[r])
            obj = self._objects[key]
            for zi in np.flatnonzero(rows.inside[r]):
                hits.append(self._exit(obj, r, int(zi), frame_id, None, None, obj.track_ids[-1]))
            for tid in obj.track_ids:
                if self._by_track.get(tid) == key:
                    del self._by_track[tid]
            del self._objects[key]
            rows.reset(r)
            self._mapped = None
        return hits

    def _exit(
        self, obj: _Object, r: int, zi: int, frame_id: int, box: F64 | None, conf: float | None, track_id: int
    ) -> AnalyticsHit:
        rows, geo = self._rows, self._geo
        assert geo is not None
        rows.inside[r, zi] = False
        entered, last_in = float(rows.entered_t[r, zi]), float(rows.last_in_t[r, zi])
        return AnalyticsHit(
            what="exit",
            object_key=obj.key,
            track_id=track_id,
            track_ids=tuple(obj.track_ids),
            label=obj.label,
            frame_id=int(rows.last_in_f[r, zi]),
            at=last_in,
            confidence=conf,
            bbox_xyxy=_box(box) if box is not None else None,
            zone=geo.zone_names[zi],
            since=entered,
            since_frame=int(rows.entered_f[r, zi]),
            dwell_s=max(0.0, last_in - entered),
        )

    def _hit(self, what: str, n: int, fr: _Frame, **fields: object) -> AnalyticsHit:
        """What happened to the ``n``-th box of frame ``fr`` (its object, class, box and speed)."""
        obj, speed = fr.objs[n], float(fr.speeds[n])
        return AnalyticsHit(
            what=what,  # type: ignore[arg-type]
            object_key=obj.key,
            track_id=int(fr.track_ids[n]),
            track_ids=tuple(obj.track_ids),
            label=fr.label(n),
            frame_id=fr.frame_id,
            at=fr.now,
            confidence=float(fr.conf[n]),
            bbox_xyxy=_box(fr.xyxy[n]),
            speed=None if speed != speed else round(speed * self._speed_factor, 3),
            speed_unit=self._speed_unit,
            **fields,  # type: ignore[arg-type]
        )


def _box(b: F64) -> tuple[float, float, float, float]:
    return (round(float(b[0]), 1), round(float(b[1]), 1), round(float(b[2]), 1), round(float(b[3]), 1))


_ZONE_COLOUR = (80, 200, 80)
_LINE_COLOUR = (255, 160, 40)


def draw_geometry(img: npt.NDArray[np.uint8], geo: _Compiled) -> None:
    """Draw zones (outlined, lightly filled, named) and lines (with an arrow towards each side,
    labelled with that direction's name) on ``img`` in place."""
    if len(geo.zone_names):
        overlay = img.copy()
        for zi in range(len(geo.zone_names)):
            poly = np.round(geo.edges_a[geo.edge_zone == zi]).astype(np.int32)
            cv2.fillPoly(overlay, [poly], _ZONE_COLOUR)
        cv2.addWeighted(overlay, 0.18, img, 0.82, 0, dst=img)
        for zi, name in enumerate(geo.zone_names):
            poly = np.round(geo.edges_a[geo.edge_zone == zi]).astype(np.int32)
            cv2.polylines(img, [poly], True, _ZONE_COLOUR, 2, cv2.LINE_AA)
            x, y = poly[:, 0].min(), poly[:, 1].min()
            _label(img, f"zone {name}", (int(x) + 3, int(y) + 14), _ZONE_COLOUR)
    for li, name in enumerate(geo.line_names):
        cols = np.flatnonzero(geo.seg_line == li)
        pts = np.round(np.vstack([geo.seg_a[cols], geo.seg_b[cols[-1:]]])).astype(np.int32)
        cv2.polylines(img, [pts], False, _LINE_COLOUR, 2, cv2.LINE_AA)
        a, b = geo.seg_a[cols[0]], geo.seg_b[cols[0]]
        mid, d = (a + b) / 2, b - a
        normal = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-9)  # towards the right of a -> b (y down)
        for sign, direction in ((1, geo.line_directions[li][0]), (-1, geo.line_directions[li][1])):
            # A crossing named `direction` ends on this side: the arrow points where it goes.
            towards = sign * normal
            tip = mid + 28 * towards
            cv2.arrowedLine(img, _pt(mid + 3 * towards), _pt(tip), _LINE_COLOUR, 2, cv2.LINE_AA, tipLength=0.3)
            (tw, th), _ = cv2.getTextSize(direction, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
            x = tip[0] + 4 if towards[0] >= 0 else tip[0] - tw - 4
            _label(img, direction, (round(float(x)), round(float(tip[1] + th / 2))), _LINE_COLOUR, small=True)
        _label(img, f"line {name}", _pt(a + np.array([4.0, 14.0])), _LINE_COLOUR)


def _pt(p: F64) -> tuple[int, int]:
    return round(float(p[0])), round(float(p[1]))


def _label(
    img: npt.NDArray[np.uint8], text: str, at: tuple[int, int], colour: tuple[int, int, int], small: bool = False
) -> None:
    scale = 0.4 if small else 0.45
    cv2.putText(img, text, at, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, at, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)
