"""The typed, frozen message of every hop. No model library is imported here.

Hops: decoder -> ``FramePacket`` -> detector -> ``Detections`` / classifier -> ``SceneResult``
-> per-camera window of ``FrameFeatures`` -> temporal head -> ``ClipLabel`` -> event engine -> ``Event``.
Camera lifecycle changes travel as ``StatusEvent``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class FramePacket:
    """One decoded frame. ``image_bgr`` is HxWx3 uint8; ``captured_at`` is wall-clock UNIX seconds
    (comparable across Ray nodes), taken when the decoder got the frame. ``stream_ts`` is the
    frame's time in the stream: media seconds for files (however fast they are read), wall-clock
    for live sources; motion features use it."""

    camera_id: str
    frame_id: int
    captured_at: float
    image_bgr: npt.NDArray[np.uint8]
    stream_ts: float = 0.0

    @property
    def resolution_wh(self) -> tuple[int, int]:
        return int(self.image_bgr.shape[1]), int(self.image_bgr.shape[0])


@dataclass(frozen=True, slots=True)
class Detections:
    """Detections of one frame as parallel arrays (like supervision's ``Detections``).

    ``xyxy`` is (N, 4) float32 pixels in the source frame; ``confidence`` (N,) float32;
    ``class_id`` (N,) int64; ``tracker_id`` (N,) int64 with -1 for untracked.
    ``class_names`` maps class ids to names for the model that produced them.
    """

    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray
    tracker_id: IntArray
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must have shape (N, 4), got {self.xyxy.shape}")
        for name in ("confidence", "class_id", "tracker_id"):
            arr = getattr(self, name)
            if arr.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")

    @classmethod
    def empty(cls, class_names: tuple[str, ...] = ()) -> Detections:
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros(0, np.float32),
            class_id=np.zeros(0, np.int64),
            tracker_id=np.full(0, -1, np.int64),
            class_names=class_names,
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def label(self, i: int) -> str:
        cid = int(self.class_id[i])
        return self.class_names[cid] if 0 <= cid < len(self.class_names) else str(cid)

    def scaled(self, factor: float) -> Detections:
        """The same detections with boxes multiplied by ``factor`` (model input -> frame pixels)."""
        if factor == 1.0:
            return self
        xyxy = (self.xyxy * np.float32(factor)).astype(np.float32)
        return Detections(xyxy, self.confidence, self.class_id, self.tracker_id, self.class_names)

    def with_tracker_ids(self, tracker_id: IntArray) -> Detections:
        return Detections(self.xyxy, self.confidence, self.class_id, tracker_id, self.class_names)


@dataclass(frozen=True, slots=True)
class SceneResult:
    """Frame-level ViT output: the scene label, its confidence and the embedding (D,) float32."""

    label: str
    confidence: float
    embedding: FloatArray


@dataclass(frozen=True, slots=True)
class LabelScore:
    """A label with its softmax confidence in [0, 1]; ``embedding``, where the model that gave it
    embeds into a text space (zero-shot crops, a text-space clip head), what event search compares
    words with (unit float32)."""

    label: str
    confidence: float
    embedding: FloatArray | None = None


@dataclass(frozen=True, slots=True)
class FrameFeatures:
    """One step of a clip window: ViT embedding concatenated with a detection summary."""

    frame_id: int
    captured_at: float
    vector: FloatArray
    track_ids: tuple[int, ...] = ()
    zones: tuple[str, ...] = ()  # the zones the frame's tracked objects are in


@dataclass(frozen=True, slots=True)
class ClipLabel:
    """The temporal head's label for the window ending at ``end_frame_id``."""

    camera_id: str
    label: str
    confidence: float
    start_frame_id: int
    end_frame_id: int
    head: Literal["lstm", "transformer"]


@dataclass(frozen=True, slots=True)
class AnalyticsHit:
    """Something the track analytics saw happen to one object (``workers.analytics``), for the event
    rules to turn into an event: ``enter`` / ``exit`` a zone, ``cross`` a line, ``dwell`` in a zone
    past its threshold, ``speed`` over the limit. ``at``: the rules' clock (an exit: the object's
    last frame inside). ``object_key`` names the object across tracker id switches."""

    what: Literal["enter", "exit", "cross", "dwell", "speed"]
    object_key: int
    track_id: int
    label: str
    frame_id: int
    at: float
    confidence: float | None = None
    bbox_xyxy: tuple[float, float, float, float] | None = None
    track_ids: tuple[int, ...] = ()
    zone: str | None = None
    line: str | None = None
    direction: str | None = None
    since: float = 0.0  # enter / exit / dwell: the clock time of the first frame inside
    since_frame: int = 0
    dwell_s: float | None = None
    speed: float | None = None
    speed_unit: str | None = None


@dataclass(frozen=True, slots=True)
class AnalyticsFrame:
    """The track analytics' result for one frame: what happened, the zones each tracked object is
    in and its speed (by tracker id), and the objects in each zone by class."""

    hits: tuple[AnalyticsHit, ...] = ()
    zones_by_track: dict[int, tuple[str, ...]] = field(default_factory=dict)
    speed_by_track: dict[int, float] = field(default_factory=dict)
    occupancy: dict[tuple[str, str], int] = field(default_factory=dict)
    speed_unit: str = "px/s"


class CameraState(StrEnum):
    """Camera lifecycle: connecting -> streaming -> reconnecting -> stopped | failed."""

    CONNECTING = "connecting"
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"
    FAILED = "failed"


def _utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_iso(ts: float) -> str:
    """UNIX seconds -> ``2026-11-22T15:37:26.123Z``."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


EVENT_KINDS = ("object", "clip", "zone", "line", "dwell", "speed")
EVENT_PHASES = ("start", "update", "end", "instant")
EventKind = Literal["object", "clip", "zone", "line", "dwell", "speed"]
EventPhase = Literal["start", "update", "end", "instant"]


class Event(BaseModel):
    """A labelled event as published to Redis (the JSON in the stream field ``event``).

    An *incident* (one tracked object, one clip activity on a camera, one object's stay in a zone)
    produces a ``start`` event, rate-limited ``update`` events and an ``end`` event; all share
    ``incident_id`` and each has its own ``event_id``, which never changes on retries (Redis
    de-duplicates on it). A one-shot event (a line crossing, a dwell or speed threshold passed) is a
    single ``instant`` event with an incident of its own. Ids are derived from what the event is
    (``stable_id``), so the same frames give the same ids.

    Kinds and phases are open sets: a reader passes through a kind or phase it does not know (a
    newer Vigil wrote it) and keeps the fields it does not know (``Event.read``, ``document()``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = Field(default=SCHEMA_VERSION, description="Bumped on incompatible changes")
    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex, description="Unique, stable across retries")
    incident_id: str = Field(description="Shared by the start, update and end events of one incident")
    phase: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,31}$",
        description="start | update | end (incidents); instant (one-shot events: line, dwell, speed). "
        "Readers pass through phases they do not know",
        json_schema_extra={"examples": list(EVENT_PHASES)},
    )
    camera_id: str
    kind: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,31}$",
        description="object (a tracked object) | clip (an activity of the clip head) | zone (an object's stay in "
        "a zone) | line (a line crossing) | dwell (in a zone past its dwell_s) | speed (over the speed limit). "
        "Readers pass through kinds they do not know",
        json_schema_extra={"examples": list(EVENT_KINDS)},
    )
    label: str = Field(description="object, zone, line, dwell, speed: the object's class; clip: the activity")
    confidence: float = Field(ge=0, le=1, description="Confidence of the latest observation")
    peak_confidence: float = Field(ge=0, le=1, description="Highest confidence of the incident so far")
    ts: str = Field(default_factory=_utc_now_iso, description="UTC ISO-8601 capture time of the frame")
    started_at: str = Field(description="UTC ISO-8601 time of the incident's first observation")
    duration_s: float = Field(ge=0, description="Seconds from the first to the latest observation")
    frame_id: int = Field(ge=0)
    track_ids: tuple[int, ...] = Field(default=(), description="Tracks involved (objects: their own id)")
    bbox_xyxy: tuple[float, float, float, float] | None = Field(default=None, description="Objects: pixels")
    track_id: int | None = Field(default=None, description="Objects: tracker id, stable while tracked")
    start_frame_id: int | None = Field(
        default=None, description="Clips: first frame of the window; zone, dwell: the object's first frame inside"
    )
    head: str | None = Field(default=None, description="Clips: lstm | transformer")
    snapshot: str | None = Field(default=None, description="Start events: Redis key or file path of the JPEG")
    crop_label: str | None = Field(
        default=None, description="Objects: the crop classifier's latest label (models.crops), e.g. down"
    )
    crop_confidence: float | None = Field(default=None, ge=0, le=1, description="Objects: its confidence")
    captured_at: float = Field(description="UNIX seconds the frame was captured (for latency)")
    end_reason: str | None = Field(
        default=None,
        description="End events the pipeline closed itself, not the rules: host restarted | pipeline restarted",
    )
    zones: tuple[str, ...] = Field(
        default=(),
        description="Object events: the zones the object is in; clip events: the zones their tracks were in "
        "during the window (cameras[].analytics)",
    )
    zone: str | None = Field(default=None, description="zone, dwell: the zone")
    line: str | None = Field(default=None, description="line: the line crossed")
    direction: str | None = Field(default=None, description="line: the direction's name (lines[].directions)")
    dwell_s: float | None = Field(
        default=None, ge=0, description="zone end: seconds from the first to the last frame inside; dwell: so far"
    )
    speed: float | None = Field(
        default=None, ge=0, description="Objects, line, speed: the object's speed over the speed window"
    )
    speed_unit: str | None = Field(default=None, description="px/s, m/s (calibrated) or km/h (the speed limit's unit)")
    _unknown: dict[str, Any] = PrivateAttr(default_factory=dict)

    @classmethod
    def read(cls, doc: str | bytes) -> Event | None:
        """A published event, read tolerantly: fields this version does not know are kept aside
        (``document()`` has them), and kinds and phases it does not know pass through. None only for
        a document that is not an event at all."""
        try:
            data = json.loads(doc)
            known = {k: v for k, v in data.items() if k in cls.model_fields}
            ev = cls.model_validate(known)
        except (ValueError, AttributeError, ValidationError) as exc:
            log.debug("skipping an event this version cannot read: %s", exc)
            return None
        ev._unknown = {k: v for k, v in data.items() if k not in cls.model_fields}
        return ev

    def document(self) -> dict[str, Any]:
        """The event as published, fields this version does not know included."""
        return {**self.model_dump(mode="json"), **self._unknown}


def stable_id(*parts: object) -> str:
    """A 32-hex id derived from ``parts``: the same parts give the same id on every run and node."""
    return hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=16).hexdigest()


class StatusEvent(BaseModel):
    """A camera state change, published to the stream ``vigil:status``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SCHEMA_VERSION
    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex, description="Unique, stable across retries")
    camera_id: str
    state: CameraState
    previous: CameraState | None = None
    reason: str = ""
    url: str = Field(description="The camera URL, credentials redacted")
    ts: str = Field(default_factory=_utc_now_iso)


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """What the live view and ``vigil cameras`` show for one camera."""

    camera_id: str
    url: str
    state: CameraState
    reason: str
    frames_decoded: int
    frames_processed: int
    frames_dropped: int
    events_published: int
    events_spooled: int
    input_fps: float
    processed_fps: float
    last_latency_s: float | None
    scene: str | None = None
    clip: str | None = None
    node_id: str = ""
    progress: float | None = None  # file mode: fraction of the file read
    analytics: str | None = None  # line counts and zone occupancy, e.g. "kerb in 12 out 9 · crosswalk 2"
