"""Rules/events stage: tracked detections and clip labels -> incident lifecycles -> ``Event``s.

An *incident* is one tracked object (key: its track id) or one clip activity on the camera (key:
its label). Each goes through start -> update* -> end, with hysteresis so a flickering label does
not spam subscribers:

- objects: a track above ``object_min_confidence`` for ``object_min_duration_s`` starts; unseen
  for ``object_cooldown_s`` it ends.
- clips: a label seen in ``clip_min_windows`` windows starts; missing from ``clip_end_windows``
  consecutive windows it ends. An incident that never started is forgotten silently.
- updates: at most one per ``update_interval_s`` per incident, and one at once when an object's
  crop label (models.crops) changes and holds for ``crop_min_frames`` frames.
- zones, lines, dwell and speed (``cameras[].analytics``): what the track analytics saw
  (``AnalyticsHit``) becomes events as it happens: a zone stay is an incident (``start`` on entry,
  ``end`` on exit with ``dwell_s``); a line crossing, a dwell past the zone's ``dwell_s`` and a speed
  over the limit are one ``instant`` event each. Object events carry the zones the object is in and
  its speed; clip events the zones their tracks were in.

The rules run on a clock the caller gives with each frame: by default the frames' capture time;
for a file read faster or slower than real time, the video's own clock, so the same file gives the
same events at any speed. Events are stamped with the capture (wall) time all the same (``ts``,
``started_at``, ``captured_at``), while ``duration_s`` counts the rules' clock. The engine is
deterministic and replayable, and so are its ids: an incident's id is derived from the camera, the
engine's ``epoch`` (one run of one camera), the incident's key and its first frame; an event's from
its incident, phase and frame. One engine per camera; it lives with the camera's other state and
is not thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.core.config import EventsConfig
from pipeline.core.messages import (
    AnalyticsFrame,
    AnalyticsHit,
    ClipLabel,
    Detections,
    Event,
    EventKind,
    EventPhase,
    LabelScore,
    stable_id,
    utc_iso,
)

Phase = EventPhase


@dataclass
class Incident:
    """Mutable lifecycle state of one incident."""

    kind: EventKind
    label: str
    first_seen: float
    last_seen: float
    confidence: float
    peak: float
    frame_id: int
    incident_id: str = ""  # set by the engine (stable_id)
    started: bool = False
    last_emit: float = 0.0
    hits: int = 0
    misses: int = 0
    track_ids: set[int] = field(default_factory=set)
    bbox_xyxy: tuple[float, float, float, float] | None = None
    track_id: int | None = None
    start_frame_id: int | None = None
    head: str | None = None
    crop: LabelScore | None = None
    crop_candidate: tuple[str, int] = ("", 0)  # a different crop label and how many frames in a row
    first_wall: float = 0.0  # capture (wall) times of the first and last observation
    last_wall: float = 0.0
    zones: tuple[str, ...] = ()
    speed: float | None = None
    speed_unit: str | None = None
    zone: str | None = None
    dwell_s: float | None = None

    def see_crop(self, crop: LabelScore, min_frames: int) -> bool:
        """Take the crop classifier's label once it holds ``min_frames`` frames in a row (the first
        label at once). True when the incident's crop label changed."""
        if self.crop is None or crop.label == self.crop.label:
            self.crop, self.crop_candidate = crop, ("", 0)
            return False
        label, n = self.crop_candidate
        self.crop_candidate = (crop.label, n + 1 if label == crop.label else 1)
        if self.crop_candidate[1] < min_frames:
            return False
        self.crop, self.crop_candidate = crop, ("", 0)
        return True

    def observe(self, ts: float, wall: float, confidence: float, frame_id: int) -> None:
        """One more observation at rule-clock time ``ts``, captured at wall time ``wall``."""
        if self.hits == 0:
            self.first_wall = wall
        self.last_seen, self.last_wall, self.confidence, self.frame_id = ts, wall, confidence, frame_id
        self.peak = max(self.peak, confidence)
        self.hits += 1
        self.misses = 0


class EventEngine:
    """Per-camera incident lifecycles."""

    def __init__(self, camera_id: str, cfg: EventsConfig, epoch: str = "") -> None:
        self.camera_id = camera_id
        self.cfg = cfg
        self.epoch = epoch
        self._objects: dict[int, Incident] = {}
        self._clips: dict[str, Incident] = {}
        self._zones: dict[tuple[str, int], Incident] = {}  # (zone, object key) -> the object's stay

    def on_detections(
        self,
        frame_id: int,
        captured_at: float,
        det: Detections,
        crops: dict[int, LabelScore] | None = None,
        clock: float | None = None,
        analytics: AnalyticsFrame | None = None,
    ) -> list[Event]:
        """Advance object incidents with one frame's tracked detections and, by track id, the crop
        classifier's labels. A started incident whose crop label changes gets an update at once.
        ``clock``: the rules' time for this frame (default: ``captured_at``). ``analytics``: the
        track analytics of this frame, whose zones and speeds the object events carry."""
        wall, now = captured_at, captured_at if clock is None else clock
        events: list[Event] = []
        for i in range(len(det)):
            track_id, label = int(det.tracker_id[i]), det.label(i)
            if track_id < 0 or (self.cfg.object_classes is not None and label not in self.cfg.object_classes):
                continue
            conf = float(det.confidence[i])
            inc = self._objects.get(track_id)
            if inc is None:
                if conf < self.cfg.object_min_confidence:
                    continue
                inc = Incident("object", label, now, now, conf, conf, frame_id, track_id=track_id)
                inc.incident_id = self._incident_id("object", track_id, frame_id)
                inc.track_ids.add(track_id)
                self._objects[track_id] = inc
            inc.observe(now, wall, conf, frame_id)
            inc.bbox_xyxy = tuple(round(float(v), 1) for v in det.xyxy[i])  # type: ignore[assignment]
            # The crop classifier saw this box as `label`; a track whose class flickers (a car read as
            # a person for a frame) must not take a person's posture.
            crop = crops.get(track_id) if crops and label == inc.label else None
            relabelled = crop is not None and inc.see_crop(crop, self.cfg.crop_min_frames)
            if analytics is not None:
                inc.zones = analytics.zones_by_track.get(track_id, ())
                inc.speed, inc.speed_unit = analytics.speed_by_track.get(track_id), analytics.speed_unit
            if not inc.started and now - inc.first_seen >= self.cfg.object_min_duration_s:
                events.append(self._emit(inc, "start", now, wall))
            elif inc.started and (relabelled or now - inc.last_emit >= self.cfg.update_interval_s):
                events.append(self._emit(inc, "update", now, wall))
        for track_id, inc in list(self._objects.items()):
            if now - inc.last_seen >= self.cfg.object_cooldown_s:
                del self._objects[track_id]
                if inc.started:
                    events.append(self._emit(inc, "end", inc.last_seen, inc.last_wall))
        return events

    def on_clip(
        self,
        clip: ClipLabel,
        captured_at: float,
        track_ids: tuple[int, ...] = (),
        clock: float | None = None,
        zones: tuple[str, ...] = (),
    ) -> list[Event]:
        """Advance clip incidents with one window's label (``clock`` as in ``on_detections``);
        ``zones``: the zones the window's tracks were in."""
        wall, now = captured_at, captured_at if clock is None else clock
        events: list[Event] = []
        qualifies = clip.label not in self.cfg.clip_ignore_labels and clip.confidence >= self.cfg.clip_min_confidence
        if qualifies:
            inc = self._clips.get(clip.label)
            if inc is None:
                inc = Incident(
                    "clip",
                    clip.label,
                    now,
                    now,
                    clip.confidence,
                    clip.confidence,
                    clip.end_frame_id,
                    start_frame_id=clip.start_frame_id,
                    head=clip.head,
                )
                inc.incident_id = self._incident_id("clip", clip.label, clip.end_frame_id)
                self._clips[clip.label] = inc
            inc.observe(now, wall, clip.confidence, clip.end_frame_id)
            inc.track_ids.update(track_ids)
            inc.zones = tuple(sorted({*inc.zones, *zones}))
            if not inc.started and inc.hits >= self.cfg.clip_min_windows:
                events.append(self._emit(inc, "start", now, wall))
            elif inc.started and now - inc.last_emit >= self.cfg.update_interval_s:
                events.append(self._emit(inc, "update", now, wall))
        for label, inc in list(self._clips.items()):
            if qualifies and label == clip.label:
                continue
            inc.misses += 1
            if inc.misses >= self.cfg.clip_end_windows:
                del self._clips[label]
                if inc.started:
                    events.append(self._emit(inc, "end", inc.last_seen, inc.last_wall))
        return events

    def on_analytics(self, frame: AnalyticsFrame, captured_at: float, clock: float | None = None) -> list[Event]:
        """Zone incidents and one-shot events from one frame's track analytics (``clock`` as in
        ``on_detections``)."""
        wall, now = captured_at, captured_at if clock is None else clock
        events: list[Event] = []
        for hit in frame.hits:
            # Wall time of the hit: the frame's capture time moved by the hit's distance on the rules' clock.
            at_wall = wall - (now - hit.at) if hit.at <= now else wall
            if hit.what == "enter":
                inc = self._zone_incident(hit, wall - (now - hit.since))
                self._zones[(hit.zone or "", hit.object_key)] = inc
                events.append(self._emit(inc, "start", now, wall))
            elif hit.what == "exit":
                inc_or_none = self._zones.pop((hit.zone or "", hit.object_key), None)
                if inc_or_none is None:
                    continue
                inc = inc_or_none
                inc.last_seen, inc.last_wall, inc.frame_id = hit.at, at_wall, max(inc.frame_id, hit.frame_id)
                inc.dwell_s = round(hit.dwell_s or 0.0, 3)
                if hit.bbox_xyxy is not None:
                    inc.bbox_xyxy, inc.track_id = hit.bbox_xyxy, hit.track_id
                inc.track_ids.update(hit.track_ids)
                events.append(self._emit(inc, "end", hit.at, at_wall))
            else:
                events.append(self._instant(hit, now, wall))
        return events

    def _zone_incident(self, hit: AnalyticsHit, first_wall: float) -> Incident:
        conf = hit.confidence or 0.0
        inc = Incident("zone", hit.label, hit.since, hit.at, conf, conf, hit.frame_id, track_id=hit.track_id)
        inc.incident_id = self._incident_id("zone", f"{hit.zone}/{hit.object_key}", hit.since_frame)
        inc.zone, inc.zones, inc.start_frame_id = hit.zone, ((hit.zone,) if hit.zone else ()), hit.since_frame
        inc.bbox_xyxy, inc.speed, inc.speed_unit = hit.bbox_xyxy, hit.speed, hit.speed_unit
        inc.track_ids.update(hit.track_ids)
        inc.first_wall = inc.last_wall = first_wall
        inc.hits = 1
        return inc

    def _instant(self, hit: AnalyticsHit, now: float, wall: float) -> Event:
        """A line crossing, a dwell or a speed over the limit: one event, an incident of its own."""
        kind: EventKind = {"cross": "line", "dwell": "dwell", "speed": "speed"}[hit.what]  # type: ignore[assignment]
        conf = hit.confidence or 0.0
        inc = Incident(kind, hit.label, now, now, conf, conf, hit.frame_id, track_id=hit.track_id, first_wall=wall)
        key = f"{hit.line or hit.zone or ''}/{hit.object_key}"
        inc.incident_id = self._incident_id(kind, key, hit.frame_id)
        inc.bbox_xyxy, inc.speed, inc.speed_unit = hit.bbox_xyxy, hit.speed, hit.speed_unit
        inc.track_ids.update(hit.track_ids)
        inc.last_wall = wall
        inc.zone, inc.dwell_s = hit.zone, (round(hit.dwell_s, 3) if hit.dwell_s is not None else None)
        if hit.zone:
            inc.zones = (hit.zone,)
        if kind == "dwell":
            inc.start_frame_id = hit.since_frame
        return self._emit(inc, "instant", now, wall, line=hit.line, direction=hit.direction)

    def close(self) -> list[Event]:
        """End every started incident (the camera is stopping)."""
        events = [self._emit(inc, "end", inc.last_seen, inc.last_wall) for inc in self._all() if inc.started]
        self._objects.clear()
        self._clips.clear()
        self._zones.clear()
        return events

    def _incident_id(self, kind: str, key: object, first_frame_id: int) -> str:
        return stable_id(self.camera_id, self.epoch, kind, key, first_frame_id)

    def _all(self) -> list[Incident]:
        return [*self._objects.values(), *self._clips.values(), *self._zones.values()]

    def _emit(
        self, inc: Incident, phase: Phase, ts: float, wall: float, line: str | None = None, direction: str | None = None
    ) -> Event:
        """``ts``: the rules' time of the emission; ``wall``: the capture time the event is stamped with."""
        if phase == "start":
            inc.started = True
        inc.last_emit = ts
        return Event(
            event_id=stable_id(inc.incident_id, phase, inc.frame_id),
            incident_id=inc.incident_id,
            phase=phase,
            camera_id=self.camera_id,
            kind=inc.kind,
            label=inc.label,
            confidence=round(inc.confidence, 4),
            peak_confidence=round(inc.peak, 4),
            ts=utc_iso(wall),
            started_at=utc_iso(inc.first_wall),
            duration_s=round(inc.last_seen - inc.first_seen, 3),
            frame_id=inc.frame_id,
            track_ids=tuple(sorted(inc.track_ids)),
            bbox_xyxy=inc.bbox_xyxy,
            track_id=inc.track_id,
            start_frame_id=inc.start_frame_id,
            head=inc.head,
            crop_label=inc.crop.label if inc.crop else None,
            crop_confidence=round(inc.crop.confidence, 4) if inc.crop else None,
            captured_at=wall,
            zones=inc.zones,
            zone=inc.zone,
            line=line,
            direction=direction,
            dwell_s=inc.dwell_s,
            speed=inc.speed,
            speed_unit=inc.speed_unit if inc.speed is not None else None,
        )


def closed_by_pipeline(last: Event, reason: str) -> Event:
    """The ``end`` of an incident whose camera stopped without ending it (its host or the pipeline
    died), made from the incident's last accepted event: same incident, stamped like its last
    observation, with ``end_reason``."""
    return last.model_copy(
        update={
            "event_id": stable_id(last.incident_id, "end", last.frame_id),
            "phase": "end",
            "snapshot": None,
            "end_reason": reason,
        }
    )
