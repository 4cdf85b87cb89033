"""One camera end to end: decode -> detect + classify -> track -> clip window -> events -> publish.

All per-camera state (decoder thread, tracker, feature window, event rules, publisher) lives in
its ``CameraRunner``; the model workers it calls are shared and stateless. The frame, scaled to
the models' size, is put into Ray's object store once and read by the detector and the classifier
in parallel; with fused workers it goes inside one call instead (for file-mode cameras through the
host's coalescer, ``pipeline.runtime.coalescer``, with the frames other cameras have ready). Up to ``max_in_flight`` frames
are in the workers at once and their results are applied in frame order. Crops for the second
stage are cut here, from the full-resolution frame. Runners live in ``CameraHost`` actors
(``pipeline.runtime.camera_host``), many cameras per process. Each thread's CPU is charged step by step to
``vigil_camera_cpu_seconds`` (``StepClock``).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import ray
from prometheus_client import Counter, Gauge, Histogram

from pipeline.core.config import (
    CameraConfig,
    ClassifierConfig,
    CropClassifierConfig,
    DetectorConfig,
    EventsConfig,
    RedisConfig,
    TemporalConfig,
)
from pipeline.core.messages import (
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
    CROP_FAILURES,
    E2E_LATENCY,
    EVENTS_PUBLISHED,
    FRAMES_DECODED,
    FRAMES_DROPPED,
    FRAMES_PROCESSED,
    INCIDENTS,
    INPUT_FPS,
    PROCESSED_FPS,
    QUEUE_DEPTH,
    STAGE_LATENCY,
    STREAM_RECONNECTS,
    STREAM_STATE,
    STREAM_UP,
    StepClock,
    forget_camera,
)
from pipeline.events.publisher import EventPublisher
from pipeline.events.rules import EventEngine
from pipeline.events.snapshots import render_snapshot, snapshot_key, write_snapshot_file
from pipeline.runtime.coalescer import Coalescer, PendingResult
from pipeline.runtime.vision import HostModelError
from workers.classifier import crop_boxes
from workers.clip_head import FrameSummarizer, TemporalHead
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
    window: int
    stride: int
    class_names: tuple[str, ...]
    head_kind: str
    record_dir: Path | None = None  # `vigil eval`: one JSON line per processed frame (raw detections, scene)
    crops: CropClassifierConfig | None = None
    model_input_px: int | None = None  # longest side of what the model workers get (None: the full frame)


@dataclass(frozen=True)
class ClipHeadSpec:
    """What a camera host needs to load the clip head itself (``ray.clip_head: hosts``)."""

    cfg: TemporalConfig
    in_dim: int
    emb_dim: int


@dataclass(frozen=True)
class HostVisionSpec:
    """What a camera host needs to load the detector and the ViT itself (``ray.vision: hosts``)."""

    detector: DetectorConfig
    classifier: ClassifierConfig
    torch_threads: int = 1
    crops: CropClassifierConfig | None = None  # models.crops: the crop classifier runs in the hosts too
    pin_cores: int = 0  # ray.pin_hosts: the host keeps to this many cores of its own (0: the OS places it)


@dataclass(frozen=True)
class WorkerHandles:
    """Ray actor handles of the shared model workers (detector and classifier: one per replica)."""

    detectors: tuple[Any, ...]  # fused: the VisionWorker replicas (detector + classifier)
    classifiers: tuple[Any, ...]  # fused: none
    temporal: Any  # the TemporalHead actor; None when the camera hosts run the head (clip_head below)
    crops: tuple[Any, ...] = ()  # models.crops off, or ray.vision: hosts (the hosts run it): none
    fused: bool = False
    host_calls_per_replica: int = 0  # fused: a camera host coalesces its cameras' frames (0: a call per frame)
    call_max_frames: int = 8  # frames per coalesced call (pipeline.runtime.vision.vision_max_batch)
    call_max_bytes: int | None = None  # and their bytes (ray.max_inline_bytes: calls stay inline)
    clip_head: ClipHeadSpec | None = None  # ray.clip_head: hosts: each camera host loads the head from this
    host_vision: HostVisionSpec | None = None  # ray.vision: hosts: each camera host loads the models (no detectors)


@dataclass(frozen=True)
class _InFlight:
    """A frame sent to the model workers, waiting for its results (refs None: a still frame)."""

    packet: FramePacket
    submitted_at: float
    det_ref: Any  # fused workers: (Detections, SceneResult) from one call, or a coalesced call's PendingResult
    scene_ref: Any  # fused workers: None
    scale: float = 1.0  # model input pixels per frame pixel


class RateMeter:
    """Events per second over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = 5.0) -> None:
        self._window_s = window_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._times.append(now)
            self._trim(now)

    def rate(self) -> float:
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            return len(self._times) / self._window_s

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self._window_s:
            self._times.popleft()


@dataclass(frozen=True)
class _Series:
    """The metric series a camera updates every frame (or may: crop failures)."""

    decoded: Counter
    processed: Counter
    e2e: Histogram
    input_fps: Gauge
    processed_fps: Gauge
    decode_queue: Gauge
    decode_s: Histogram
    vision_s: Histogram | None  # only where one call answers both models (no empty series elsewhere)
    publish_s: Histogram
    crop_failures: Counter


class CameraRunner:
    """Runs one camera end to end in its own threads (decoder, loop, publisher) inside a
    ``CameraHost`` actor. Methods are safe to call concurrently."""

    def __init__(
        self,
        cam: CameraConfig,
        settings: CameraSettings,
        workers: WorkerHandles,
        coalescer: Coalescer | None = None,
        clip_head: TemporalHead | None = None,
        crop_coalescer: Coalescer | None = None,
    ) -> None:
        self.cam, self.settings, self.workers = cam, settings, workers
        self._coalescer = coalescer  # fused workers: the host's, shared by its cameras
        self._crop_coalescer = crop_coalescer  # ray.vision: hosts with models.crops: the host's crop classifier
        self._clip_head = clip_head  # ray.clip_head: hosts: the host's, called in this process
        self._lock = threading.Lock()  # guards the counters and labels below
        ev = settings.events
        self._publisher = EventPublisher(
            settings.redis_url,
            cam.id,
            ev.spool.dir / f"{cam.id}.sqlite",
            stream_maxlen=settings.redis.stream_maxlen,
            dedupe_ttl_s=settings.redis.dedupe_ttl_s,
            snapshot_ttl_s=ev.snapshots.ttl_s,
            spool_max=ev.spool.max_events,
            when_full=ev.spool.when_full,
        )
        self._engine = EventEngine(cam.id, settings.events)
        self._tracker = Tracker(frame_rate=cam.fps)
        self._summarizer = FrameSummarizer(settings.class_names)
        self._window: deque[FrameFeatures] = deque(maxlen=settings.window)
        self._since_clip = 0
        self._turn = itertools.count(zlib.crc32(cam.id.encode()))  # cameras start on different replicas
        self._counts = {"decoded": 0, "processed": 0, "dropped": 0}
        self._in_rate, self._out_rate = RateMeter(), RateMeter()
        self._last_latency_s: float | None = None
        self._scene: str | None = None
        self._clip: str | None = None
        self._reason = ""
        self._state = CameraState.CONNECTING
        self._stop = threading.Event()
        self._node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
        self._source = FrameSource(cam, self._on_state, self._on_drop, self._on_decoded)
        self._motion = MotionGate(cam.motion) if cam.motion.enabled else None
        self._last: tuple[Detections, FloatArray] | None = None  # the last processed frame's results
        self._thread = threading.Thread(target=self._loop, name=f"camera-{cam.id}", daemon=True)
        self._clock: StepClock | None = None  # the loop thread's CPU by step (made in that thread)
        self._decode_clock: StepClock | None = None  # the decoder thread's
        self._series: _Series  # made by start(), before the decoder thread
        self._crop_warned_at = -math.inf
        self._crops_paused_until = -math.inf
        self._record: TextIO | None = None
        self._loop_running = False
        self._deferred_state: tuple[CameraState, str] | None = None
        if settings.record_dir is not None:
            settings.record_dir.mkdir(parents=True, exist_ok=True)
            self._record = (settings.record_dir / f"{cam.id}.jsonl").open("w")

    # -- control -------------------------------------------------------------------------------

    def start(self) -> None:
        self._init_series()
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
            )

    def _init_series(self) -> None:
        """Create this camera's series at zero so dashboards and rates see them before the first event,
        and keep the ones each frame touches (a ``labels()`` lookup per use costs more than the update)."""
        cam = self.cam.id
        self._series = _Series(
            decoded=FRAMES_DECODED.labels(cam),
            processed=FRAMES_PROCESSED.labels(cam),
            e2e=E2E_LATENCY.labels(cam),
            input_fps=INPUT_FPS.labels(cam),
            processed_fps=PROCESSED_FPS.labels(cam),
            decode_queue=QUEUE_DEPTH.labels(cam, "decode"),
            decode_s=STAGE_LATENCY.labels("decode"),
            vision_s=STAGE_LATENCY.labels("vision") if self._coalescer is not None or self.workers.fused else None,
            publish_s=STAGE_LATENCY.labels("publish"),
            crop_failures=CROP_FAILURES.labels(cam),
        )
        STREAM_RECONNECTS.labels(cam)
        for reason in ("stale", "fps_cap", "worker_error", "motion_skip"):
            FRAMES_DROPPED.labels(cam, reason)
        for kind in ("object", "clip"):
            EVENTS_PUBLISHED.labels(cam, kind)
        self._series.decode_queue.set(0)

    # -- callbacks from the decoder thread -----------------------------------------------------

    def _on_state(self, state: CameraState, reason: str) -> None:
        if state is CameraState.STOPPED and self._loop_running and not self._stop.is_set():
            # The file ended, but frames are still queued: stopped once the loop has processed them.
            self._deferred_state = (state, reason)
            return
        with self._lock:
            previous, self._state, self._reason = self._state, state, reason
        for s in CameraState:
            STREAM_STATE.labels(self.cam.id, s.value).set(1.0 if s is state else 0.0)
        STREAM_UP.labels(self.cam.id).set(1.0 if state is CameraState.STREAMING else 0.0)
        if state is CameraState.RECONNECTING and previous is not CameraState.RECONNECTING:
            STREAM_RECONNECTS.labels(self.cam.id).inc()
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
        """Keep up to ``max_in_flight`` frames of this camera in the model workers at once (so the
        workers can batch across frames, not only across cameras) and apply their results strictly in
        frame order: tracking, clip windows and events see the same sequence as with one in flight."""
        pending: deque[_InFlight] = deque()
        while not self._stop.is_set():
            if len(pending) < self.cam.max_in_flight:
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
        # The source ended or the camera is stopping: close every open incident.
        self._publisher.publish(self._engine.close())

    def _submit(self, packet: FramePacket, pending: deque[_InFlight]) -> _InFlight:
        """Send one frame to the detector and the classifier (or mark it still, for motion gating)."""
        still = self._is_still(packet, pending)
        self._lap("prepare")
        if still:
            return _InFlight(packet, time.time(), None, None)
        t0 = time.time()
        # The workers get the frame downscaled to what the models use (the detector letterboxes to
        # imgsz, the ViT to its size anyway): a quarter of the bytes through the object store for a
        # 640x360 camera at imgsz 320, a twentieth for 1080p. Full resolution stays here (snapshots, crops).
        image, scale = model_input(packet.image_bgr, self.settings.model_input_px)
        self._lap("prepare")
        n = next(self._turn)  # replicas take this camera's frames in turn
        dets, clss = self.workers.detectors, self.workers.classifiers
        if self._coalescer is not None:  # leaves with the frames other cameras of this host have ready
            item = _InFlight(packet, t0, self._coalescer.submit(image), None, scale)
        elif self.workers.fused:  # one worker, one call: Ray moves the frame (inline when small)
            item = _InFlight(packet, t0, dets[n % len(dets)].analyze.remote(image), None, scale)
        else:
            image_ref = ray.put(image)  # stored once, read by both workers
            det_ref = dets[n % len(dets)].detect.remote(image_ref)
            scene_ref = clss[n % len(clss)].classify.remote(image_ref)
            item = _InFlight(packet, t0, det_ref, scene_ref, scale)
        self._lap("submit")
        return item

    def _lap(self, step: str) -> None:
        """Charge the loop thread's CPU since the last lap to ``step`` (vigil_camera_cpu_seconds)."""
        if self._clock is not None:
            self._clock.lap(step)

    def _finish(self, item: _InFlight) -> None:
        if item.det_ref is None:
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
        packet, t0 = item.packet, item.submitted_at
        scene: SceneResult
        if item.scene_ref is None:  # a fused worker answered both, in a call of its own or a coalesced one
            ref = item.det_ref
            pending = isinstance(ref, PendingResult)
            detections, scene = ref.get(WORKER_TIMEOUT_S) if pending else ray.get(ref, timeout=WORKER_TIMEOUT_S)
            (self._series.vision_s or STAGE_LATENCY.labels("vision")).observe(time.time() - t0)
        else:
            detections = ray.get(item.det_ref, timeout=WORKER_TIMEOUT_S)
            STAGE_LATENCY.labels("detect").observe(time.time() - t0)
            scene = ray.get(item.scene_ref, timeout=WORKER_TIMEOUT_S)
            STAGE_LATENCY.labels("classify").observe(time.time() - t0)
        self._lap("wait")
        detections = detections.scaled(1 / item.scale)

        if self._record is not None:
            self._record_frame(packet, detections, scene)
        tracked = self._tracker.update(detections)
        self._lap("track")
        try:
            crops = self._classify_crops(item, tracked)
        except (ray.exceptions.RayError, TimeoutError, HostModelError) as exc:
            crops = {}  # the second stage is optional: the frame goes on without crop labels, counted
            self._on_crop_failure(exc)
        self._lap("crops")
        summary = self._summarizer(detections, packet.resolution_wh, packet.stream_ts)
        vector = np.concatenate([scene.embedding, summary]).astype(np.float32)
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
            self._scene = f"{scene.label} {scene.confidence:.2f}"

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
        cfg, pool = self.settings.crops, self.workers.crops
        if cfg is None or not (pool or self._crop_coalescer) or len(tracked) == 0:
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
        scores: list[LabelScore]
        if self._crop_coalescer is not None:  # in this process; crops of the host's cameras share passes
            deadline = time.monotonic() + WORKER_TIMEOUT_S  # one wait for the frame's crops, however many calls
            slots = self._crop_coalescer.submit_many(crops)
            scores = [slot.get(max(0.0, deadline - time.monotonic())) for slot in slots]
        else:
            worker = pool[item.packet.frame_id % len(pool)]
            scores = ray.get(worker.classify_crops.remote(crops), timeout=WORKER_TIMEOUT_S)
        STAGE_LATENCY.labels("crops").observe(time.time() - t0)
        return {int(tracked.tracker_id[i]): score for i, score in zip(chosen, scores, strict=True)}

    def _record_frame(self, packet: FramePacket, det: Detections, scene: SceneResult) -> None:
        assert self._record is not None
        boxes = np.column_stack([det.xyxy, det.confidence, det.class_id]).round(2).tolist() if len(det) else []
        row = {"frame_id": packet.frame_id, "boxes": boxes, "scene": scene.label, "scene_confidence": scene.confidence}
        self._record.write(json.dumps(row) + "\n")

    def _is_still(self, packet: FramePacket, pending: deque[_InFlight]) -> bool:
        """Motion gating: a still frame skips the models once some earlier frame went through them."""
        if self._motion is None:
            return False
        moved = self._motion.has_motion(packet.image_bgr)
        return not moved and (self._last is not None or any(p.det_ref is not None for p in pending))

    def _advance_still(self, packet: FramePacket) -> None:
        """A still frame's tracks and clip window advance with the last processed frame's detections
        and features, so incidents and windows stay consistent."""
        self._on_drop("motion_skip")
        if self._last is None:  # the frame it would have reused was lost to a worker error
            return
        tracked, vector = self._last
        self._advance(packet, tracked, vector)

    def _advance(
        self, packet: FramePacket, tracked: Detections, vector: FloatArray, crops: dict[int, LabelScore] | None = None
    ) -> None:
        """Events, clip window and publishing for one frame."""
        events = self._engine.on_detections(packet.frame_id, packet.captured_at, tracked, crops)
        track_ids = tuple(int(t) for t in tracked.tracker_id)
        self._window.append(FrameFeatures(packet.frame_id, packet.captured_at, vector, track_ids))
        self._since_clip += 1
        self._lap("events")
        clip = self._maybe_label_clip(packet)
        self._lap("clip")
        if clip is not None:
            in_window = tuple(sorted({t for f in self._window for t in f.track_ids}))
            events += self._engine.on_clip(clip, packet.captured_at, in_window)
            with self._lock:
                self._clip = f"{clip.label} {clip.confidence:.2f}"
            self._lap("events")
        self._publish(events, packet, tracked)
        self._lap("publish")

    def _maybe_label_clip(self, packet: FramePacket) -> ClipLabel | None:
        if len(self._window) < self.settings.window or self._since_clip < self.settings.stride:
            return None
        self._since_clip = 0
        t0 = time.time()
        window = np.stack([f.vector for f in self._window])
        score: LabelScore
        if self._clip_head is not None:  # in this process: no call, no round trip
            self._lap("clip")
            score = self._clip_head.classify_batch([window])[0]
            self._lap("clip_head")  # model CPU: `vigil bench` counts it with the models, not the camera's work
        else:
            score = ray.get(self.workers.clip_head.classify_batch.remote([window]), timeout=WORKER_TIMEOUT_S)[0]
        STAGE_LATENCY.labels("temporal").observe(time.time() - t0)
        return ClipLabel(
            camera_id=self.cam.id,
            label=score.label,
            confidence=score.confidence,
            start_frame_id=self._window[0].frame_id,
            end_frame_id=packet.frame_id,
            head="lstm" if self.settings.head_kind == "lstm" else "transformer",
        )

    def _publish(self, events: list[Event], packet: FramePacket, tracked: Detections) -> None:
        """Attach a snapshot to start events, then hand everything to the durable publisher."""
        t0 = time.time()
        cfg = self.settings.events.snapshots
        snapshots: dict[str, bytes] = {}
        if cfg.store != "off":
            for i, ev in enumerate(events):
                if ev.phase != "start":
                    continue
                jpeg = render_snapshot(packet.image_bgr, tracked, cfg, highlight_track=ev.track_id)
                if cfg.store == "redis":
                    snapshots[ev.event_id] = jpeg
                    ref = snapshot_key(ev.event_id)
                else:
                    assert cfg.dir is not None  # the config validator requires it for store: dir
                    ref = str(write_snapshot_file(cfg.dir, self.cam.id, ev.event_id, jpeg))
                events[i] = ev.model_copy(update={"snapshot": ref})
        for ev in events:
            if ev.phase == "start":
                INCIDENTS.labels(ev.kind, ev.label).inc()
        self._publisher.publish(events, snapshots)
        self._series.publish_s.observe(time.time() - t0)
