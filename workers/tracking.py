"""Track stage: per-camera ByteTrack over ``Detections``, its state held in arrays.

Tracker state belongs to one camera and lives in that camera's actor, so the detector workers
stay stateless and any replica can serve any frame.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import lap  # ultralytics' own assignment solver (a declared dependency)
import numpy as np
import numpy.typing as npt
from ultralytics.trackers.basetrack import TrackState
from ultralytics.trackers.byte_tracker import BYTETracker
from ultralytics.trackers.utils.kalman_filter import KalmanFilterXYAH
from ultralytics.utils.metrics import bbox_ioa

from pipeline.core.messages import Detections

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# One row per track: Kalman mean (x, y, w/h, h and their velocities), covariance, then the scalars.
_MEAN, _COV = slice(0, 8), slice(8, 72)
_ID, _SCORE, _CLS, _IDX, _FRAME, _START, _STATE, _ACT = range(72, 80)
_COLS = 80
_TRACKED, _LOST, _REMOVED = TrackState.Tracked, TrackState.Lost, TrackState.Removed
_REMOVED_KEPT = 1000  # ultralytics keeps the ids of the last 1000 removed tracks


def _iou_cost(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """1 - IoU of two sets of x1y1x2y2 boxes, computed in float32 as ultralytics' ``iou_distance``."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), np.float32)
    cost: npt.NDArray[np.float32] = 1 - bbox_ioa(a.astype(np.float32), b.astype(np.float32), iou=True)
    return cost


def _assign(cost: npt.NDArray[Any], thresh: float) -> tuple[I64, I64, I64, I64]:
    """Matched rows, their columns, unmatched rows and unmatched columns (ultralytics'
    ``linear_assignment`` with lap, as index arrays)."""
    n, m = cost.shape
    if cost.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.arange(n), np.arange(m)
    _, x, y = lap.lapjv(cost, extend_cost=True, cost_limit=thresh)
    rows = np.flatnonzero(x >= 0)
    return rows, x[rows].astype(np.int64), np.flatnonzero(x < 0), np.flatnonzero(y < 0)


class ByteTrack:
    """ByteTrack (ultralytics' ``BYTETracker`` algorithm, step for step) with every track a row of
    one array, so each frame's work is a few dozen numpy calls whatever the number of tracks.

    The stock tracker keeps one Python object per track and runs each track's Kalman update,
    box conversion and bookkeeping on its own: Python work per track per frame, which grows
    with the crowd and costs more still inside the pipeline, where the model thread evicts its
    objects from the caches between frames. Association is lap's, as in ultralytics, on the same cost matrices, and the
    bookkeeping keeps ultralytics' pool order and quirks (a track removed this frame still joins
    the next frame's association once; a re-found track whose id was removed is dropped when it
    is lost again), and its Kalman update in the same operation order, so ids and boxes match the
    stock tracker's bit for bit: ``tests/unit/test_tracking.py`` runs both on the same sequences,
    which also guards an ultralytics upgrade."""

    def __init__(self, args: Any) -> None:
        self.args = args
        kf = KalmanFilterXYAH()  # type: ignore[no-untyped-call]
        self._motion = kf._motion_mat
        wp, wv = kf._std_weight_position, kf._std_weight_velocity
        # Each state's noise std is h x a weight (the aspect's a constant): initiate, predict, update.
        self._init_std = np.array([2 * wp, 2 * wp, 0, 2 * wp, 10 * wv, 10 * wv, 0, 10 * wv])
        self._motion_std = np.array([wp, wp, 0, wp, wv, wv, 0, wv])
        self._std_floor = np.array([0, 0, 1e-2, 0, 0, 0, 1e-5, 0])
        self._update_std, self._update_floor = np.array([wp, wp, 0, wp]), np.array([0, 0, 1e-1, 0])
        self.frame_id = 0
        self._next_id = 1
        self._tracked = np.zeros((0, _COLS))  # ultralytics' tracked_stracks, in its order
        self._lost = np.zeros((0, _COLS))  # lost_stracks
        self._removed: deque[int] = deque()  # removed_stracks' ids, the last 1000
        self._removed_count: dict[int, int] = {}

    # -- Kalman filter (KalmanFilterXYAH, for many tracks at once) ------------------------------

    def _initiate(self, xyah: F64) -> F64:
        rows = np.zeros((len(xyah), _COLS))
        rows[:, 0:4] = xyah
        rows[:, _COV][:, ::9] = (xyah[:, 3:4] * self._init_std + self._std_floor) ** 2  # the diagonal
        return rows

    def _predict(self, rows: F64) -> None:
        mean = rows[:, _MEAN]
        mean[rows[:, _STATE] != _TRACKED, 7] = 0
        cov = np.matmul(np.matmul(self._motion, rows[:, _COV].reshape(-1, 8, 8)), self._motion.T).reshape(-1, 64)
        cov[:, ::9] += (mean[:, 3:4] * self._motion_std + self._std_floor) ** 2
        rows[:, _MEAN] = mean @ self._motion.T
        rows[:, _COV] = cov

    def _correct(self, rows: F64, xyah: F64) -> None:
        mean, cov = rows[:, _MEAN], rows[:, _COV].reshape(-1, 8, 8)
        innovation_cov = cov[:, :4, :4].copy()
        innovation_cov.reshape(-1, 16)[:, ::5] += (mean[:, 3:4] * self._update_std + self._update_floor) ** 2
        # As KalmanFilterXYAH.update computes it: solve(S, P[:, :4].T).T and K (S K^T) (multi_dot's order).
        gain = np.linalg.solve(innovation_cov, cov[:, :, :4].transpose(0, 2, 1)).transpose(0, 2, 1)  # (N, 8, 4)
        rows[:, _MEAN] = mean + np.matmul(gain, (xyah - mean[:, :4])[:, :, None])[:, :, 0]
        rows[:, _COV] = (cov - gain @ (innovation_cov @ gain.transpose(0, 2, 1))).reshape(-1, 64)

    @staticmethod
    def _xyxy(rows: F64) -> F64:
        out = np.empty((len(rows), 4))
        w, h = rows[:, 2] * rows[:, 3], rows[:, 3]
        out[:, 0], out[:, 1] = rows[:, 0] - w / 2, rows[:, 1] - h / 2
        out[:, 2], out[:, 3] = out[:, 0] + w, out[:, 1] + h
        return out

    # -- one frame -----------------------------------------------------------------------------

    def _match(self, rows: F64, at: I64, det: dict[str, Any], cols: I64) -> None:
        """Kalman-correct ``rows[at]`` with detections ``cols`` (STrack.update / re_activate)."""
        if not len(at):
            return
        sub = rows[at]
        self._correct(sub, det["xyah"][cols])
        sub[:, _SCORE], sub[:, _CLS], sub[:, _IDX] = det["score"][cols], det["cls"][cols], det["idx"][cols]
        sub[:, _FRAME], sub[:, _STATE], sub[:, _ACT] = self.frame_id, _TRACKED, 1
        rows[at] = sub

    def _cost(self, rows: F64, det: dict[str, Any], cols: I64, fuse: bool) -> npt.NDArray[Any]:
        cost = _iou_cost(self._xyxy(rows), det["xyxy"][cols])
        if fuse and cost.size:
            cost = 1 - (1 - cost) * det["score"][cols][None]
        return cost

    def update(self, xywh: npt.NDArray[np.float32], conf: npt.NDArray[np.float32], cls: npt.NDArray[np.float32]) -> F64:
        """One frame's detections (centre x, centre y, w, h): rows of [x1, y1, x2, y2, track id,
        score, class, detection index] for the confirmed tracks, as ``BYTETracker.update``."""
        a = self.args
        self.frame_id += 1
        f = self.frame_id
        valid = (xywh[:, 2] > 0) & (xywh[:, 3] > 0)
        high = np.flatnonzero(valid & (conf >= a.track_high_thresh))
        low = np.flatnonzero(valid & (conf > a.track_low_thresh) & (conf < a.track_high_thresh))
        box = xywh.astype(np.float64)
        tlwh = np.concatenate([box[:, :2] - box[:, 2:] / 2, box[:, 2:]], 1).astype(np.float32)
        xyah = tlwh.copy()
        xyah[:, :2] += xyah[:, 2:] / 2
        xyah[:, 2] /= xyah[:, 3]
        xyxy = tlwh.copy()
        xyxy[:, 2:] += xyxy[:, :2]
        det: dict[str, npt.NDArray[Any]] = {
            "xyah": xyah.astype(np.float64),
            "xyxy": xyxy,
            "score": conf,
            "cls": cls,
            "idx": np.arange(len(conf)),
        }

        confirmed = self._tracked[:, _ACT] == 1
        pool = np.concatenate([self._tracked[confirmed], self._lost])  # strack_pool
        unconfirmed = self._tracked[~confirmed]
        n_confirmed = int(confirmed.sum())
        if len(pool):
            self._predict(pool)

        # First association: the pool against high-score detections (IoU fused with the score).
        rows, cols, u_pool, u_high = _assign(self._cost(pool, det, high, a.fuse_score), a.match_thresh)
        self._match(pool, rows, det, high[cols])
        refound = rows[rows >= n_confirmed]

        # Second: the pool's still-unmatched tracked tracks against the low-score detections.
        remain = u_pool[pool[u_pool, _STATE] == _TRACKED]
        if len(remain) and len(low):
            rows, cols, u_remain, _ = _assign(self._cost(pool[remain], det, low, False), 0.5)
            self._match(pool, remain[rows], det, low[cols])
            remain = remain[u_remain]
        pool[remain, _STATE] = _LOST
        newly_lost = remain

        # Unconfirmed tracks (seen once) against the high-score detections left.
        left = high[u_high]
        removed: list[int] = []
        if len(unconfirmed):
            rows, cols, u_unconf, u_left = _assign(self._cost(unconfirmed, det, left, a.fuse_score), 0.7)
            self._match(unconfirmed, rows, det, left[cols])
            unconfirmed[u_unconf, _STATE] = _REMOVED
            removed += unconfirmed[u_unconf, _ID].astype(np.int64).tolist()
            left = left[u_left]

        # New tracks from the confident detections nobody took.
        left = left[conf[left] >= a.new_track_thresh]
        new = self._initiate(det["xyah"][left])
        new[:, _ID] = np.arange(self._next_id, self._next_id + len(left))
        self._next_id += len(left)
        new[:, _SCORE], new[:, _CLS], new[:, _IDX] = conf[left], cls[left], left
        new[:, _FRAME] = new[:, _START] = f
        new[:, _STATE], new[:, _ACT] = _TRACKED, float(f == 1)

        # Lost tracks not seen for too long are removed (they still take part next frame once).
        old_lost = pool[n_confirmed:]
        stale = (old_lost[:, _STATE] != _TRACKED) & (f - old_lost[:, _FRAME] > a.track_buffer)
        old_lost[stale, _STATE] = _REMOVED
        removed += old_lost[stale, _ID].astype(np.int64).tolist()

        # ultralytics' merge_track_pools: the order of each pool is kept.
        if len(unconfirmed):  # back in their places among the confirmed ones
            tracked = self._tracked.copy()
            tracked[confirmed] = pool[:n_confirmed]
            tracked[~confirmed] = unconfirmed
        else:
            tracked = pool[:n_confirmed]
        tracked = np.concatenate([tracked[tracked[:, _STATE] == _TRACKED], new, pool[refound]])
        lost = np.concatenate([old_lost[old_lost[:, _STATE] != _TRACKED], pool[newly_lost]])
        if self._removed_count:
            lost = lost[[int(i) not in self._removed_count for i in lost[:, _ID]]]
        if len(tracked) and len(lost):  # remove_duplicate_stracks: the younger of two overlapping tracks goes
            p, q = np.nonzero(_iou_cost(self._xyxy(tracked), self._xyxy(lost)) < 0.15)
            if len(p):
                older = (tracked[p, _FRAME] - tracked[p, _START]) > (lost[q, _FRAME] - lost[q, _START])
                tracked = np.delete(tracked, p[~older], axis=0)
                lost = np.delete(lost, q[older], axis=0)
        self._tracked, self._lost = tracked, lost
        for i in removed:
            if len(self._removed) == _REMOVED_KEPT:
                gone = self._removed.popleft()
                self._removed_count[gone] -= 1
                if not self._removed_count[gone]:
                    del self._removed_count[gone]
            self._removed.append(i)
            self._removed_count[i] = self._removed_count.get(i, 0) + 1

        out = tracked[tracked[:, _ACT] == 1]
        result = np.empty((len(out), 8))
        result[:, :4] = self._xyxy(out)
        result[:, 4:] = out[:, [_ID, _SCORE, _CLS, _IDX]]
        return result


@dataclass(frozen=True)
class _TrackInput:
    """The minimal numpy-backed view the stock BYTETracker.update() reads: conf, cls, xywh, boolean indexing."""

    conf: npt.NDArray[np.float32]
    cls: npt.NDArray[np.float32]
    xywh: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, mask: npt.NDArray[np.bool_]) -> _TrackInput:
        return _TrackInput(self.conf[mask], self.cls[mask], self.xywh[mask])


class Tracker:
    """Assigns stable ``tracker_id``s to a camera's detections, frame after frame.

    ``frame_rate`` and ``lost_track_s`` set how long a lost track is kept for re-identification.
    """

    def __init__(
        self, frame_rate: float = 10.0, lost_track_s: float = 3.0, min_confidence: float = 0.25, stock: bool = False
    ) -> None:
        """``stock=True``: ultralytics' own ``BYTETracker`` (the same results, more CPU per frame)."""
        from ultralytics.utils import IterableSimpleNamespace

        args = IterableSimpleNamespace(
            tracker_type="bytetrack",
            track_high_thresh=min_confidence,
            track_low_thresh=0.1,
            new_track_thresh=min_confidence,
            track_buffer=max(1, round(lost_track_s * frame_rate)),  # frames a lost track is kept
            match_thresh=0.8,
            fuse_score=True,
        )
        self._stock = BYTETracker(args) if stock else None  # type: ignore[no-untyped-call]
        self._tracker = None if stock else ByteTrack(args)

    def update(self, det: Detections) -> Detections:
        """Return the tracked subset of ``det`` with ``tracker_id`` set (unconfirmed boxes are left out)."""
        x1, y1, x2, y2 = det.xyxy.reshape(-1, 4).T
        xywh = np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=1).astype(np.float32)
        conf, cls = det.confidence.astype(np.float32), det.class_id.astype(np.float32)
        if self._tracker is not None:
            rows = self._tracker.update(xywh, conf, cls)
        else:
            assert self._stock is not None
            rows = self._stock.update(_TrackInput(conf, cls, xywh))
        if len(rows) == 0:
            return Detections.empty(det.class_names)
        idx = rows[:, 7].astype(np.int64)
        return Detections(
            xyxy=rows[:, :4].astype(np.float32),
            confidence=det.confidence[idx],
            class_id=det.class_id[idx],
            tracker_id=rows[:, 4].astype(np.int64),
            class_names=det.class_names,
        )
