"""Track stage: per-camera ByteTrack (ultralytics' implementation) over ``Detections``.

Tracker state belongs to one camera and lives in that camera's actor, so the detector workers
stay stateless and any replica can serve any frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

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


class Tracker:
    """Assigns stable ``tracker_id``s to a camera's detections, frame after frame.

    ``frame_rate`` and ``lost_track_s`` set how long a lost track is kept for re-identification.
    """

    def __init__(self, frame_rate: float = 10.0, lost_track_s: float = 3.0, min_confidence: float = 0.25) -> None:
        from ultralytics.trackers.byte_tracker import BYTETracker
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
        self._tracker = BYTETracker(args)  # type: ignore[no-untyped-call]

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
