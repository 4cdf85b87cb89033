"""Track stage: per-camera ByteTrack (ultralytics' implementation) over ``Detections``.

Tracker state belongs to one camera and lives in that camera's actor, so the detector workers
stay stateless and any replica can serve any frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from ultralytics.trackers.basetrack import TrackState
from ultralytics.trackers.byte_tracker import BYTETracker
from ultralytics.trackers.utils import matching
from ultralytics.utils.metrics import bbox_ioa

from pipeline.messages import Detections


@dataclass(frozen=True)
class _TrackInput:
    """The minimal numpy-backed view BYTETracker.update() reads: conf, cls, xywh, boolean indexing."""

    conf: npt.NDArray[np.float32]
    cls: npt.NDArray[np.float32]
    xywh: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, mask: npt.NDArray[np.bool_]) -> _TrackInput:
        return _TrackInput(self.conf[mask], self.cls[mask], self.xywh[mask])


def _xyah(tracks: list[Any]) -> npt.NDArray[np.float64]:
    """Boxes as (centre x, centre y, w / h, h): a track's Kalman state, or a new detection's box."""
    rows = []
    for t in tracks:
        if t.mean is not None:
            rows.append(t.mean[:4])
        else:
            x, y, w, h = t._tlwh
            rows.append((x + w / 2, y + h / 2, w / h, h))
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def _xyxy(xyah: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    w, h = xyah[:, 2] * xyah[:, 3], xyah[:, 3]
    x1, y1 = xyah[:, 0] - w / 2, xyah[:, 1] - h / 2
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1)


class BatchedBYTETracker(BYTETracker):
    """ultralytics' ByteTrack with its per-track numpy work done for all tracks at once.

    The stock tracker runs one Kalman update per matched track per frame (~30 µs of small numpy
    calls each) and reads every box through per-track properties to build the IoU matrix. Here the
    matched tracks' Kalman updates are one batched solve, the IoU matrix and the output rows come
    from stacked states; association, track states and ids are ultralytics' own code. Same
    results as the stock tracker (``tests/unit/test_tracking.py`` runs both on the same
    sequence). It overrides three of ultralytics' hooks (``get_dists``, ``_apply_matches``,
    ``_format_output``) of the pinned release; the equivalence test guards an upgrade."""

    def get_dists(self, tracks: list[Any], detections: list[Any]) -> npt.NDArray[np.float32]:
        if not tracks or not detections:
            return np.zeros((len(tracks), len(detections)), np.float32)
        a, b = _xyxy(_xyah(tracks)).astype(np.float32), _xyxy(_xyah(detections)).astype(np.float32)
        dists: npt.NDArray[np.float32] = 1 - bbox_ioa(a, b, iou=True)
        return matching.fuse_score(dists, detections) if self.args.fuse_score else dists

    def _apply_matches(
        self, matches: Any, pool: list[Any], detections: list[Any], activated: list[Any], refind: list[Any]
    ) -> None:
        if len(matches) == 0:
            return
        tracks, dets = [pool[i] for i, _ in matches], [detections[j] for _, j in matches]
        mean = np.array([t.mean for t in tracks])
        cov = np.array([t.covariance for t in tracks])
        # KalmanFilterXYAH.update for every matched track at once (its project + solve + correct).
        std = self.kalman_filter._std_weight_position * mean[:, 3]
        innovation_cov = cov[:, :4, :4].copy()
        innovation_cov[:, range(4), range(4)] += np.stack([std, std, np.full_like(std, 1e-1), std], axis=1) ** 2
        gain = np.linalg.solve(innovation_cov, cov[:, :4, :]).transpose(0, 2, 1)  # (N, 8, 4)
        new_mean = mean + np.einsum("nij,nj->ni", gain, _xyah(dets) - mean[:, :4])
        new_cov = cov - gain @ innovation_cov @ gain.transpose(0, 2, 1)
        for t, d, m, c in zip(tracks, dets, new_mean, new_cov, strict=True):
            # STrack.update (a tracked track) / re_activate (a lost one, same id), Kalman step aside.
            if t.state == TrackState.Tracked:
                t.tracklet_len += 1
                activated.append(t)
            else:
                t.tracklet_len = 0
                refind.append(t)
            t.mean, t.covariance = m, c
            t.state, t.is_activated, t.frame_id = TrackState.Tracked, True, self.frame_id
            t.score, t.cls, t.idx = d.score, d.cls, d.idx

    def _format_output(self) -> npt.NDArray[np.float32]:
        tracks = [t for t in self.tracked_stracks if t.is_activated]
        out = np.zeros((len(tracks), 8), np.float64)
        if tracks:
            out[:, :4] = _xyxy(_xyah(tracks))
            out[:, 4:] = [(t.track_id, t.score, t.cls, t.idx) for t in tracks]
        return out.astype(np.float32)


class Tracker:
    """Assigns stable ``tracker_id``s to a camera's detections, frame after frame.

    ``frame_rate`` and ``lost_track_s`` set how long a lost track is kept for re-identification.
    """

    def __init__(
        self, frame_rate: float = 10.0, lost_track_s: float = 3.0, min_confidence: float = 0.25, batched: bool = True
    ) -> None:
        """``batched=False``: ultralytics' stock ``BYTETracker`` (the same results, more CPU per frame)."""
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
        self._tracker = (BatchedBYTETracker if batched else BYTETracker)(args)  # type: ignore[no-untyped-call]

    def update(self, det: Detections) -> Detections:
        """Return the tracked subset of ``det`` with ``tracker_id`` set (unconfirmed boxes are left out)."""
        if len(det) == 0:
            self._tracker.update(_TrackInput(*(np.zeros((0,), np.float32),) * 2, np.zeros((0, 4), np.float32)))
            return det
        x1, y1, x2, y2 = det.xyxy.T
        xywh = np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=1).astype(np.float32)
        rows = self._tracker.update(_TrackInput(det.confidence, det.class_id.astype(np.float32), xywh))
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
