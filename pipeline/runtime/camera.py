"""One camera end to end: decode -> detect + classify -> track -> analytics -> clip window -> events -> publish.

All per-camera state (decoder thread, tracker, feature window, event rules, publisher) lives in
its ``CameraRunner``; the models it calls are reached through its clients
(``pipeline.runtime.clients``), whatever the placement. The frame, scaled to the models' size, goes
to the vision client; up to the camera's in-flight depth (``cameras[].max_in_flight``) frames are in
the models at once and their results are applied in frame order. Crops for the second stage are cut
here, from the full-resolution frame. Runners live in ``CameraHost`` actors
(``pipeline.runtime.camera_host``), many cameras per process. Each thread's CPU is charged step by
step to ``vigil_camera_cpu_seconds`` (``StepClock``).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import ray

from pipeline.core.config import (
    CameraConfig,
    CameraMode,
    CropClassifierConfig,
    EventsConfig,
    RedisConfig,
    SourceKind,
    ZeroShotCrops,
)
from pipeline.core.config.analytics import AnalyticsConfig
from pipeline.core.messages import (
    AnalyticsFrame,
    CameraState,
    CameraStatus,
    ClipLabel,
    Detections,
    Event,
    FloatArray,
    FrameFeatures,
    FramePacket,
    LabelScore,
    SceneResult,
    StatusEvent,
)
from pipeline.core.metrics import (
    FRAMES_DROPPED,
    INCIDENTS,
    LINE_CROSSINGS,
    OBJECT_SPEED,
    STAGE_LATENCY,
    ZONE_DWELL_SECONDS,
    ZONE_ENTRIES,
    ZONE_OBJECTS,
    StepClock,
    forget_camera,
)
from pipeline.events.embeddings import EventEmbedding, clip_space
from pipeline.events.publisher import EventPublisher
from pipeline.events.rules import EventEngine, closed_by_pipeline
from pipeline.events.snapshots import FrameSnapshot, attach_snapshots, frame_snapshot
from pipeline.runtime.camera_metrics import CameraSeries, RateMeter, set_stream_state
from pipeline.runtime.clients import CameraClients, VisionTicket
from pipeline.runtime.vision import HostModelError
from workers.analytics import GeometryOutsideFrame, TrackAnalytics
from workers.classifier import crop_boxes
from workers.clip_head import TEXT_SPACE, FrameSummarizer
from workers.decoder import FrameSource, model_input
from workers.motion import MotionGate
from workers.tracking import Tracker

log = logging.getLogger(__name__)

WORKER_TIMEOUT_S = 60.0
CROP_RETRY_S = 5.0  # after a failed crop call, frames go without crop labels this long before the next try


@dataclass(frozen=True)
class CameraSettings:
    """What a camera actor needs beyond its own config; built once by the driver."""

    redis_url: str
    redis: RedisConfig
    events: EventsConfig
    window: int  # clip windows: frames per window and between two labels (unused without a clip head)
    stride: int
    class_names: tuple[str, ...]
    head_kind: str  # the clip head's kind ("" without one: models.temporal is null)
    record_dir: Path | None = (
        None  # `vigil eval`: one JSON line per processed frame (raw detections, scene, crop labels)
    )
    crops: CropClassifierConfig | None = None
    model_input_px: int | None = None  # longest side of what the model workers get (None: the full frame)
    run_id: str = ""  # this pipeline run: incidents a dead host left open end as "host restarted" within it


POSITION_KEY = "position"  # outbox state: {"epoch": ..., "frame_id": the last frame whose results were applied}
# The windows a clip incident's search embedding is averaged over, at most (those with its label).
WINDOWS_PER_EMBEDDING = 4
POSITION_EVERY_S = 1.0  # file cameras record how far they got at least this often


@dataclass(frozen=True)
class _InFlight:
    """A frame sent to the models, waiting for its results (ticket None: a still frame)."""

    packet: FramePacket
    ticket: VisionTicket | None
    scale: float = 1.0  # model input pixels per frame pixel
    sent_at: float = 0.0  # monotonic seconds: the frame's results are waited for until sent_at + WORKER_TIMEOUT_S


def window_sum(windows: Iterable[tuple[str, FloatArray]], label: str) -> FloatArray | None:
    """The sum of the recent windows' embeddings (label, unit embedding) with ``label``: a clip
    incident as it starts is searched by its direction, the windows that raised it (steadier than
    its last window alone). None where no window had the label."""
    vectors = [v for seen, v in windows if seen == label]
    return np.sum(vectors, axis=0, dtype=np.float32) if vectors else None


def _unit(v: FloatArray) -> FloatArray | None:
    norm = float(np.linalg.norm(v))
    return (v / norm).astype(np.float32) if norm > 0 else None


class CameraRunner:
    """Runs one camera end to end in its own threads (decoder, loop, publisher) inside a
    ``CameraHost`` actor. Methods are safe to call concurrently."""

    def __init__(
        self,
        cam: CameraConfig,
        settings: CameraSettings,
        clients: CameraClients,
        epoch: str = "",
    ) -> None:
        """``epoch``: this camera's run, kept when its host is restarted (ids of incidents and events
        derive from it; a file camera resumes where the same epoch left off)."""
        self.cam, self.settings, self.clients = cam, settings, clients
        self._epoch = epoch
        self._lock = threading.Lock()  # guards the counters and labels below
        ev = settings.events
        self._publisher = EventPublisher(
            settings.redis_url,
            cam.id,
            ev.spool.dir / f"{cam.id}.sqlite",
            stream_maxlen=settings.redis.stream_maxlen,
            dedupe_ttl_s=settings.redis.dedupe_ttl_s,
            snapshot_ttl_s=ev.snapshots.ttl_s,
            memory_budget_mb=settings.redis.memory_budget_mb,
            spool_max=ev.spool.max_events,
            when_full=ev.spool.when_full,
            embedding_ttl_s=ev.search.ttl_s,
            max_embeddings=ev.search.max_embeddings,
        )
        self._engine = EventEngine(cam.id, settings.events, epoch)
        self._position_saved_at = -math.inf
        self._tracks_position = cam.kind is SourceKind.FILE and cam.effective_mode is CameraMode.FILE
        resume_at = self._recover()
        self._tracker = Tracker(frame_rate=cam.fps)
        self._analytics: TrackAnalytics | None = None
        self._pending_analytics: tuple[AnalyticsConfig | None] | None = None  # set_analytics(), applied by the loop
        self._line_counts: dict[tuple[str, str], int] = {}
        self._occupancy: dict[tuple[str, str], int] = {}
        self._make_analytics(cam.analytics)
        self._summarizer = FrameSummarizer(settings.class_names)
        self._window: deque[FrameFeatures] = deque(maxlen=settings.window)
        self._since_clip = 0
        self._counts = {"decoded": 0, "processed": 0, "dropped": 0}
        self._in_rate, self._out_rate = RateMeter(), RateMeter()
        self._last_latency_s: float | None = None
        self._scene: str | None = None
        self._clip: str | None = None
        self._reason = ""
        self._state = CameraState.CONNECTING
        self._stop = threading.Event()
        self._node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
        self._source = FrameSource(
            cam, self._on_state, self._on_drop, self._on_decoded, on_reconnect=self._on_reconnect, resume_at=resume_at
        )
        self._motion = MotionGate(cam.motion) if cam.motion.enabled else None
        # The last processed frame's results: tracked detections, features (None without a clip head).
        self._last: tuple[Detections, FloatArray | None] | None = None
        # The last frame applied and its tracked boxes: a reference, drawn and encoded only on request.
        self._latest: tuple[FramePacket, Detections] | None = None
        # What makes this frame's events searchable by text: crop embeddings by track id, and the recent
        # windows' labels with their embeddings (models that embed into a text space only).
        self._crop_vectors: dict[int, FloatArray] = {}
        self._window_vectors: deque[tuple[str, FloatArray]] = deque(maxlen=WINDOWS_PER_EMBEDDING)
        # Open clip incidents (one per label at most): their start event and the sum of their windows' embeddings.
        self._incident_sums: dict[str, tuple[Event, FloatArray]] = {}
        crop_cfg = settings.crops
        self._crop_space = clip_space(crop_cfg.zero_shot.backend) if isinstance(crop_cfg, ZeroShotCrops) else None
        self._thread = threading.Thread(target=self._loop, name=f"camera-{cam.id}", daemon=True)
        self._clock: StepClock | None = None  # the loop thread's CPU by step (made in that thread)
        self._decode_clock: StepClock | None = None  # the decoder thread's
        self._series: CameraSeries  # made by start(), before the decoder thread
        self._crop_warned_at = -math.inf
        self._crops_paused_until = -math.inf
        self._record: TextIO | None = None
        self._clock_base: float | None = None  # file sources: wall time of the file's time 0 (the event clock)
        self._loop_running = False
        self._deferred_state: tuple[CameraState, str] | None = None
        if settings.record_dir is not None:
            settings.record_dir.mkdir(parents=True, exist_ok=True)
            self._record = (settings.record_dir / f"{cam.id}.jsonl").open("w")

    def _recover(self) -> int:
        """After a crash: end the incidents the outbox holds as open (``end_reason``: host restarted
        within this pipeline run, pipeline restarted otherwise) and return the frame id a file in
        file mode resumes at (0: from the start, for live sources and where nothing is known)."""
        record = self._publisher.state(POSITION_KEY)
        position = json.loads(record) if record else {}
        epoch = str(position.get("epoch", ""))
        same_run = bool(self.settings.run_id) and epoch.split("/")[0] == self.settings.run_id
        reason = "host restarted" if same_run else "pipeline restarted"
        left_open = self._publisher.open_incidents()
        if left_open:
            self._publisher.publish([closed_by_pipeline(ev, reason) for ev in left_open])
            log.warning("camera %s: %d open incident(s) ended (%s)", self.cam.id, len(left_open), reason)
        if self._epoch and epoch == self._epoch and self._tracks_position:
            resume_at = int(position.get("frame_id", -1)) + 1
            if resume_at > 0:
                log.info("camera %s: resuming the file at frame %d", self.cam.id, resume_at)
            return resume_at
        return 0

    # -- control -------------------------------------------------------------------------------

    def start(self) -> None:
        self._series = CameraSeries.create(self.cam.id)
        self._loop_running = True  # before the source starts: an end of file is deferred until drained
        self._source.start()
        self._thread.start()

    def stop(self) -> CameraStatus:
        self._stop.set()
        self._source.stop()
        self._thread.join(timeout=WORKER_TIMEOUT_S)
        self._publisher.close()
        if self._record is not None:
            self._record.close()
        final = self.status()
        forget_camera(self.cam.id)
        return final

    def status(self) -> CameraStatus:
        with self._lock:
            return CameraStatus(
                camera_id=self.cam.id,
                url=self.cam.display_url,
                state=self._state,
                reason=self._reason,
                frames_decoded=self._counts["decoded"],
                frames_processed=self._counts["processed"],
                frames_dropped=self._counts["dropped"],
                events_published=self._publisher.published,
                events_spooled=self._publisher.spooled,
                input_fps=self._in_rate.rate(),
                processed_fps=self._out_rate.rate(),
                last_latency_s=self._last_latency_s,
                scene=self._scene,
                clip=self._clip,
                node_id=self._node_id,
                progress=self._source.progress(),
                analytics=self._analytics_summary(),
            )

    # -- callbacks from the decoder thread -----------------------------------------------------

    def _on_state(self, state: CameraState, reason: str) -> None:
        if state is CameraState.STOPPED and self._loop_running and not self._stop.is_set():
            # The file ended, but frames are still queued: stopped once the loop has processed them.
            self._deferred_state = (state, reason)
            return
        with self._lock:
            previous, self._state, self._reason = self._state, state, reason
        set_stream_state(self.cam.id, state)
        self._publisher.publish_status(
            StatusEvent(
                camera_id=self.cam.id,
                state=state,
                previous=previous if previous is not state else None,
                reason=reason,
                url=self.cam.display_url,
            )
        )
        level = logging.WARNING if state in (CameraState.FAILED, CameraState.RECONNECTING) else logging.INFO
        log.log(level, "camera %s: %s%s", self.cam.id, state.value, f" ({reason})" if reason else "")

    def _on_reconnect(self) -> None:
        self._series.reconnects.inc()

    def _on_drop(self, reason: str) -> None:
        FRAMES_DROPPED.labels(self.cam.id, reason).inc()
        with self._lock:
            self._counts["dropped"] += 1

    def _on_decoded(self, read_s: float) -> None:
        if self._decode_clock is None:
            self._decode_clock = StepClock()
        else:  # the decoder thread's CPU since the last frame: this read, the last hand-on
            self._decode_clock.lap("decode")
        series = self._series
        series.decoded.inc()
        series.decode_s.observe(read_s)
        self._in_rate.tick()
        series.input_fps.set(self._in_rate.rate())
        with self._lock:
            self._counts["decoded"] += 1

    # -- the camera loop -----------------------------------------------------------------------

    def _loop(self) -> None:
        self._clock = StepClock()
        try:
            self._run_loop()
        finally:
            self._loop_running = False
            if self._deferred_state is not None:
                self._on_state(*self._deferred_state)

    def _run_loop(self) -> None:
        """Keep up to the camera's in-flight depth of frames in the models at once (so the models
        can batch across frames, not only across cameras) and apply their results strictly in
        frame order: tracking, clip windows and events see the same sequence as with one in flight."""
        pending: deque[_InFlight] = deque()
        while not self._stop.is_set():
            if len(pending) < self.cam.in_flight:
                # Nothing in flight: wait for a frame. Otherwise only take one that is already there.
                packet = self._source.get(timeout_s=0.0 if pending else 0.5)
                self._lap("queue")
                if packet is not None:
                    pending.append(self._submit(packet, pending))
                    continue
                if not pending:
                    if self._source.finished.is_set():
                        break
                    continue
            self._finish(pending.popleft())
            self._lap("metrics")
        while pending:  # stopping: frames already sent to the models are still applied, in order
            self._finish(pending.popleft())
        # The source ended or the camera is stopping: objects leave the zones, every open incident ends.
        closing: list[Event] = []
        if self._analytics is not None and self._latest is not None:
            last = self._latest[0]
            frame = AnalyticsFrame(tuple(self._analytics.close(last.frame_id)))
            closing = self._engine.on_analytics(frame, last.captured_at, clock=self._event_clock(last))
        ending = closing + self._engine.close()
        self._publisher.publish(ending, revised=self._embeddings(ending)[1])  # incidents searched by all they showed

    def _submit(self, packet: FramePacket, pending: deque[_InFlight]) -> _InFlight:
        """Send one frame to the detector and the classifier (or mark it still, for motion gating)."""
        still = self._is_still(packet, pending)
        self._lap("prepare")
        if still:
            return _InFlight(packet, None)
        # The models get the frame downscaled to what they use (the detector letterboxes to imgsz,
        # the ViT to its size anyway): fewer bytes to move and resize. Full resolution stays here
        # (snapshots, crops).
        image, scale = model_input(packet.image_bgr, self.settings.model_input_px)
        self._lap("prepare")
        item = _InFlight(packet, self.clients.vision.submit(image), scale, time.monotonic())
        self._lap("submit")
        return item

    def _lap(self, step: str) -> None:
        """Charge the loop thread's CPU since the last lap to ``step`` (vigil_camera_cpu_seconds)."""
        if self._clock is not None:
            self._clock.lap(step)

    def _finish(self, item: _InFlight) -> None:
        if item.ticket is None:
            self._advance_still(item.packet)
            return
        try:
            self._apply(item)
        except (ray.exceptions.RayError, TimeoutError, HostModelError) as exc:
            # A worker died or timed out (Ray restarts it), or a model call in this host failed:
            # this frame is lost, counted, and we go on.
            self._on_drop("worker_error")
            log.warning("camera %s: frame %d not processed: %s", self.cam.id, item.packet.frame_id, exc)
            self._stop.wait(0.5)

    def _apply(self, item: _InFlight) -> None:
        packet = item.packet
        assert item.ticket is not None
        # One deadline from the send: frames queued behind a hung model do not each wait afresh.
        detections, scene = item.ticket.result(max(0.0, item.sent_at + WORKER_TIMEOUT_S - time.monotonic()))
        self._lap("wait")
        detections = detections.scaled(1 / item.scale)

        tracked = self._tracker.update(detections)
        self._lap("track")
        try:
            crops = self._classify_crops(item, tracked)
        except (ray.exceptions.RayError, TimeoutError, HostModelError) as exc:
            crops = {}  # the second stage is optional: the frame goes on without crop labels, counted
            self._on_crop_failure(exc)
        self._lap("crops")
        if self._record is not None:
            self._record_frame(packet, detections, scene, tracked, crops)
        self._crop_vectors = {t: s.embedding for t, s in crops.items() if s.embedding is not None}
        vector = self._features(detections, scene, packet)
        self._last = (tracked, vector)
        self._lap("features")
        self._advance(packet, tracked, vector, crops)

        latency = time.time() - packet.captured_at
        series = self._series
        series.e2e.observe(latency)
        series.processed.inc()
        self._out_rate.tick()
        series.processed_fps.set(self._out_rate.rate())
        series.decode_queue.set(self._source.depth())
        with self._lock:
            self._counts["processed"] += 1
            self._last_latency_s = latency
            self._scene = f"{scene.label} {scene.confidence:.2f}" if scene is not None else None

    def _features(self, detections: Detections, scene: SceneResult | None, packet: FramePacket) -> FloatArray | None:
        """The frame's step of the clip window: the ViT embedding (none without a ViT) followed by the
        detection summary. None without a clip head: nothing would read it."""
        if self.clients.clip_head is None:
            return None
        summary = self._summarizer(detections, packet.resolution_wh, packet.stream_ts)
        if scene is None:
            return summary
        return np.concatenate([scene.embedding, summary]).astype(np.float32)

    def _on_crop_failure(self, exc: Exception) -> None:
        self._series.crop_failures.inc()
        now = time.monotonic()
        self._crops_paused_until = now + CROP_RETRY_S  # a hung worker must not cost a timeout per frame
        if now - self._crop_warned_at >= 60.0:  # one line a minute, not one per frame
            self._crop_warned_at = now
            first_line = next(iter(str(exc).strip().splitlines()), "")  # Ray's errors run to many lines
            log.warning(
                "camera %s: frames go on without crop labels (%s: %s)", self.cam.id, type(exc).__name__, first_line
            )

    def _classify_crops(self, item: _InFlight, tracked: Detections) -> dict[int, LabelScore]:
        """Second stage: the crop classifier's label for each tracked box of the chosen classes."""
        cfg, client = self.settings.crops, self.clients.crops
        if cfg is None or client is None or len(tracked) == 0:
            return {}
        sizes = np.minimum(tracked.xyxy[:, 2] - tracked.xyxy[:, 0], tracked.xyxy[:, 3] - tracked.xyxy[:, 1])
        chosen = [i for i in range(len(tracked)) if tracked.label(i) in cfg.classes and sizes[i] >= cfg.min_box_px]
        if not chosen:
            return {}
        if time.monotonic() < self._crops_paused_until:  # the last call failed: retried in a while
            self._series.crop_failures.inc()
            return {}
        t0 = time.time()
        crops = crop_boxes(item.packet.image_bgr, tracked.xyxy[chosen], cfg.padding)  # from the full-res frame
        scores = client.label(crops, item.packet.frame_id, WORKER_TIMEOUT_S)
        STAGE_LATENCY.labels("crops").observe(time.time() - t0)
        # An empty label: no label fit well enough (zero-shot attributes below attribute_min_score).
        return {int(tracked.tracker_id[i]): score for i, score in zip(chosen, scores, strict=True) if score.label}

    def _record_frame(
        self,
        packet: FramePacket,
        det: Detections,
        scene: SceneResult | None,
        tracked: Detections,
        crops: dict[int, LabelScore],
    ) -> None:
        assert self._record is not None
        boxes = np.column_stack([det.xyxy, det.confidence, det.class_id]).round(2).tolist() if len(det) else []
        labelled = [
            [*np.round(tracked.xyxy[i], 2).tolist(), crops[t].label, round(crops[t].confidence, 3)]
            for i, t in enumerate(tracked.tracker_id.tolist())
            if t in crops
        ]
        row = {
            "frame_id": packet.frame_id,
            "boxes": boxes,
            "crops": labelled,  # [x1, y1, x2, y2, label, confidence] of each tracked box with a crop label
            "scene": scene.label if scene is not None else None,
            "scene_confidence": scene.confidence if scene is not None else None,
        }
        self._record.write(json.dumps(row) + "\n")

    def _is_still(self, packet: FramePacket, pending: deque[_InFlight]) -> bool:
        """Motion gating: a still frame skips the models once some earlier frame went through them."""
        if self._motion is None:
            return False
        moved = self._motion.has_motion(packet.image_bgr)
        return not moved and (self._last is not None or any(p.ticket is not None for p in pending))

    def _event_clock(self, packet: FramePacket) -> float:
        """The time the event rules see for a frame (UNIX seconds). A live camera's is its capture
        time. A file in file mode (read as fast as the pipeline goes) has its own timeline
        (``stream_ts``, increasing across loops), anchored at the wall time of its first frame:
        durations, cool-downs and update intervals then count video seconds, so the file gives the
        same events however fast the machine reads it. Events are stamped with capture times all
        the same (``EventEngine``)."""
        if self.cam.kind is not SourceKind.FILE or self.cam.effective_mode is not CameraMode.FILE:
            return packet.captured_at
        if self._clock_base is None:
            self._clock_base = packet.captured_at - packet.stream_ts
        return self._clock_base + packet.stream_ts

    def _advance_still(self, packet: FramePacket) -> None:
        """A still frame's tracks and clip window advance with the last processed frame's detections
        and features, so incidents and windows stay consistent."""
        self._on_drop("motion_skip")
        if self._last is None:  # the frame it would have reused was lost to a worker error
            return
        tracked, vector = self._last
        self._advance(packet, tracked, vector)

    def _advance(
        self,
        packet: FramePacket,
        tracked: Detections,
        vector: FloatArray | None,
        crops: dict[int, LabelScore] | None = None,
    ) -> None:
        """Events, clip window (``vector`` None: no clip head, no window) and publishing for one frame."""
        self._latest = (packet, tracked)
        now = self._event_clock(packet)
        frame = self._run_analytics(packet, tracked, now)
        if frame is None and self._analytics is not None:  # the camera just failed (geometry outside the frame)
            return
        events = self._engine.on_detections(
            packet.frame_id, packet.captured_at, tracked, crops, clock=now, analytics=frame
        )
        if frame is not None:
            events += self._engine.on_analytics(frame, packet.captured_at, clock=now)
        if vector is not None:
            track_ids = tuple(int(t) for t in tracked.tracker_id)
            zones = tuple(sorted({z for names in frame.zones_by_track.values() for z in names})) if frame else ()
            self._window.append(FrameFeatures(packet.frame_id, packet.captured_at, vector, track_ids, zones))
            self._since_clip += 1
        self._lap("events")
        clip = self._maybe_label_clip(packet) if vector is not None else None
        self._lap("clip")
        if clip is not None:
            in_window = tuple(sorted({t for f in self._window for t in f.track_ids}))
            zones_in_window = tuple(sorted({z for f in self._window for z in f.zones}))
            events += self._engine.on_clip(clip, packet.captured_at, in_window, clock=now, zones=zones_in_window)
            with self._lock:
                self._clip = f"{clip.label} {clip.confidence:.2f}"
            self._lap("events")
        self._publish(events, packet, tracked)
        self._lap("publish")

    # -- track analytics (cameras[].analytics) -------------------------------------------------

    def set_analytics(self, cfg: AnalyticsConfig | None) -> None:
        """Replace this camera's zones and lines (None: none); the loop applies it before its next frame.
        Objects inside the old zones leave them (their zone incidents end)."""
        self._pending_analytics = (cfg,)

    @property
    def frame_wh(self) -> tuple[int, int] | None:
        """The size of the last frame applied (None before the first)."""
        latest = self._latest
        return None if latest is None else latest[0].resolution_wh

    def latest_snapshot(self) -> FrameSnapshot | None:
        """The last frame applied, at its decoded size, with its tracked boxes and the zones and lines
        the camera runs drawn (None before the first frame)."""
        latest = self._latest
        if latest is None:
            return None
        return frame_snapshot(latest[0], latest[1], self.settings.events.snapshots, self._analytics)

    def _make_analytics(self, cfg: AnalyticsConfig | None) -> None:
        self._analytics = TrackAnalytics(cfg, self.cam.fps) if cfg is not None and not cfg.empty else None
        for (zone, cls), _ in self._occupancy.items():
            ZONE_OBJECTS.labels(self.cam.id, zone, cls).set(0)
        with self._lock:
            self._line_counts, self._occupancy = {}, {}

    def _run_analytics(self, packet: FramePacket, tracked: Detections, now: float) -> AnalyticsFrame | None:
        """Zones, lines, dwell and speed on this frame's tracks (None without geometry). Pixel geometry
        that does not fit the frame fails the camera, with the reason."""
        if self._pending_analytics is not None:
            (cfg,), self._pending_analytics = self._pending_analytics, None
            if self._analytics is not None:
                closing = AnalyticsFrame(tuple(self._analytics.close(packet.frame_id)))
                self._publish(self._engine.on_analytics(closing, packet.captured_at, clock=now), packet, tracked)
            self._make_analytics(cfg)
        if self._analytics is None:
            return None
        try:
            frame = self._analytics.update(packet.frame_id, now, tracked, packet.resolution_wh)
        except GeometryOutsideFrame as exc:
            log.error("camera %s: %s", self.cam.id, exc)
            self._stop.set()
            self._source.fail(str(exc))
            return None
        self._lap("analytics")
        self._count_analytics(frame)
        return frame

    def _count_analytics(self, frame: AnalyticsFrame) -> None:
        """Metrics and the live view's counts from one frame's analytics."""
        cam = self.cam.id
        for hit in frame.hits:
            if hit.what == "enter":
                ZONE_ENTRIES.labels(cam, hit.zone, hit.label).inc()
            elif hit.what == "exit":
                ZONE_DWELL_SECONDS.labels(cam, hit.zone).observe(hit.dwell_s or 0.0)
            elif hit.what == "cross":
                LINE_CROSSINGS.labels(cam, hit.line, hit.direction, hit.label).inc()
                if hit.speed is not None:
                    OBJECT_SPEED.labels(cam, hit.speed_unit).observe(hit.speed)
                key = (hit.line or "", hit.direction or "")
                with self._lock:
                    self._line_counts[key] = self._line_counts.get(key, 0) + 1
        if frame.occupancy != self._occupancy:
            for key in self._occupancy.keys() - frame.occupancy.keys():
                ZONE_OBJECTS.labels(cam, *key).set(0)
            for key, n in frame.occupancy.items():
                if self._occupancy.get(key) != n:
                    ZONE_OBJECTS.labels(cam, *key).set(n)
            with self._lock:
                self._occupancy = dict(frame.occupancy)

    def _analytics_summary(self) -> str | None:
        """``kerb in 12 out 9 · crosswalk 2`` (call with the lock held)."""
        if self._analytics is None:
            return None
        parts = []
        for line in self._analytics.cfg.lines:
            counts = " ".join(f"{d} {self._line_counts.get((line.name, d), 0)}" for d in line.directions)
            parts.append(f"{line.name} {counts}")
        for zone in self._analytics.cfg.zones:
            n = sum(v for (z, _), v in self._occupancy.items() if z == zone.name)
            parts.append(f"{zone.name} {n}")
        return " · ".join(parts)

    def _maybe_label_clip(self, packet: FramePacket) -> ClipLabel | None:
        if len(self._window) < self.settings.window or self._since_clip < self.settings.stride:
            return None
        self._since_clip = 0
        t0 = time.time()
        window = np.stack([f.vector for f in self._window])
        head = self.clients.clip_head
        assert head is not None  # windows fill only where there is a clip head
        if head.in_process:
            self._lap("clip")
        score = head.classify(window, WORKER_TIMEOUT_S)
        if head.in_process:
            self._lap("clip_head")  # model CPU: `vigil bench` counts it with the models, not the camera's work
        if score.embedding is not None:
            self._window_vectors.append((score.label, score.embedding))
            for incident, (start, total) in self._incident_sums.items():  # what each open incident shows
                self._incident_sums[incident] = (start, total + score.embedding)
        STAGE_LATENCY.labels("temporal").observe(time.time() - t0)
        return ClipLabel(
            camera_id=self.cam.id,
            label=score.label,
            confidence=score.confidence,
            start_frame_id=self._window[0].frame_id,
            end_frame_id=packet.frame_id,
            head="lstm" if self.settings.head_kind == "lstm" else "transformer",
        )

    def _embeddings(self, events: list[Event]) -> tuple[dict[str, EventEmbedding], list[tuple[Event, EventEmbedding]]]:
        """The embedding each starting event is searched by (``vigil events search``): an object's
        crop's, a clip incident's windows', where the model gave one in a text space. And the start
        events whose embeddings an update or end revises: a clip incident is searched by the mean of
        every window since it began (what it showed), not only of those that raised it."""
        out: dict[str, EventEmbedding] = {}
        revised: list[tuple[Event, EventEmbedding]] = []
        for ev in events:
            if ev.kind == "clip" and ev.phase in ("update", "end") and ev.incident_id in self._incident_sums:
                start, so_far = self._incident_sums[ev.incident_id]
                if ev.phase == "end":
                    del self._incident_sums[ev.incident_id]
                if (mean := _unit(so_far)) is not None:
                    revised.append((start, EventEmbedding(mean, TEXT_SPACE)))
            if ev.phase != "start":
                continue
            if (
                ev.kind == "object"
                and self._crop_space
                and (v := self._crop_vectors.get(ev.track_id or -1)) is not None
            ):
                out[ev.event_id] = EventEmbedding(v, self._crop_space)
            elif (
                ev.kind == "clip"
                and (total := window_sum(self._window_vectors, ev.label)) is not None
                and (direction := _unit(total)) is not None
            ):
                out[ev.event_id] = EventEmbedding(direction, TEXT_SPACE)
                self._incident_sums[ev.incident_id] = (ev, total)
        return out, revised

    def _publish(self, events: list[Event], packet: FramePacket, tracked: Detections) -> None:
        """Attach a snapshot to start events, then hand everything to the durable publisher."""
        t0 = time.time()
        events, snapshots = attach_snapshots(
            events, packet.image_bgr, tracked, self.settings.events.snapshots, self.cam.id, self._analytics
        )
        for ev in events:
            if ev.phase == "start":
                INCIDENTS.labels(ev.kind, ev.label).inc()
        state = None
        now = time.monotonic()
        if events or (self._tracks_position and now - self._position_saved_at >= POSITION_EVERY_S):
            # With the events, in the same write: how far this camera got (a restart resumes after it).
            state = {POSITION_KEY: json.dumps({"epoch": self._epoch, "frame_id": packet.frame_id})}
            self._position_saved_at = now
        embeddings, revised = self._embeddings(events)
        self._publisher.publish(events, snapshots, state, embeddings, revised)
        self._series.publish_s.observe(time.time() - t0)
