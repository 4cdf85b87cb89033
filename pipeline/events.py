"""Rules/events stage: turns tracked detections and clip labels into ``Event``s.

Thin on purpose (lifecycle with start/update/end and hysteresis is a later stage): an object event
when a track of a configured class first reaches the confidence threshold, and a clip event for
every clip label that is not ignored and reaches its threshold. One engine per camera; it lives
with the camera's other state.
"""

from __future__ import annotations

from collections import OrderedDict

from pipeline.config import EventsConfig
from pipeline.messages import ClipLabel, Detections, Event, utc_iso

_REMEMBERED_TRACKS = 10_000


class EventEngine:
    """Per-camera event rules. Not thread-safe: one camera loop calls it."""

    def __init__(self, camera_id: str, cfg: EventsConfig) -> None:
        self.camera_id = camera_id
        self.cfg = cfg
        self._announced: OrderedDict[int, None] = OrderedDict()  # track ids already announced

    def on_detections(self, frame_id: int, captured_at: float, det: Detections) -> list[Event]:
        """Object events for tracks seen above threshold for the first time."""
        events = []
        for i in range(len(det)):
            track_id = int(det.tracker_id[i])
            label = det.label(i)
            if track_id < 0 or track_id in self._announced:
                continue
            if self.cfg.object_classes is not None and label not in self.cfg.object_classes:
                continue
            if float(det.confidence[i]) < self.cfg.object_min_confidence:
                continue
            self._remember(track_id)
            x1, y1, x2, y2 = (round(float(v), 1) for v in det.xyxy[i])
            events.append(
                Event(
                    camera_id=self.camera_id,
                    kind="object",
                    label=label,
                    confidence=round(float(det.confidence[i]), 4),
                    ts=utc_iso(captured_at),
                    frame_id=frame_id,
                    bbox_xyxy=(x1, y1, x2, y2),
                    track_id=track_id,
                    captured_at=captured_at,
                )
            )
        return events

    def on_clip(self, clip: ClipLabel, captured_at: float) -> list[Event]:
        """A clip event unless the label is ignored (e.g. ``normal``) or below threshold."""
        if clip.label in self.cfg.clip_ignore_labels or clip.confidence < self.cfg.clip_min_confidence:
            return []
        return [
            Event(
                camera_id=clip.camera_id,
                kind="clip",
                label=clip.label,
                confidence=round(clip.confidence, 4),
                ts=utc_iso(captured_at),
                frame_id=clip.end_frame_id,
                start_frame_id=clip.start_frame_id,
                head=clip.head,
                captured_at=captured_at,
            )
        ]

    def _remember(self, track_id: int) -> None:
        self._announced[track_id] = None
        if len(self._announced) > _REMEMBERED_TRACKS:
            self._announced.popitem(last=False)
