"""Decode stage: reads one camera in a background thread.

A decoder backend opens a camera's source as a :class:`VideoSource` (read frame by frame, then
close); :class:`OpenCVSource` (OpenCV's FFmpeg backend; OpenCV's own for webcams) is the one in use.

Live mode keeps a one-frame slot: the consumer always gets the newest frame and every frame
overwritten unread is counted as dropped (``stale``). File mode hands on every frame through a
bounded queue that blocks the reader (backpressure, no drops). Open and read timeouts make a dead
or frozen camera fail within seconds instead of hanging the thread. No Ray in this module.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.core.config import CameraConfig, CameraMode, SourceKind
from pipeline.core.messages import CameraState, FramePacket
from pipeline.core.redact import redact

log = logging.getLogger(__name__)

StateListener = Callable[[CameraState, str], None]
DropListener = Callable[[str], None]


class SourceError(Exception):
    """A source problem. ``fatal`` errors (not a video, missing file) stop the camera; others retry."""

    def __init__(self, reason: str, *, fatal: bool) -> None:
        super().__init__(redact(reason))
        self.reason = redact(reason)
        self.fatal = fatal


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter: attempt n waits in [0.5, 1] x min(cap, base x 2^n)."""

    base_s: float = 0.5
    cap_s: float = 30.0

    def delay_s(self, attempt: int) -> float:
        return float(min(self.cap_s, self.base_s * 2 ** min(attempt, 20)) * random.uniform(0.5, 1.0))


# PyAV errors that no retry will fix: the camera is misconfigured or is not a video.
_FATAL_PROBE_ERRORS = (
    "HTTPUnauthorizedError",
    "HTTPForbiddenError",
    "HTTPNotFoundError",
    "HTTPBadRequestError",
    "InvalidDataError",
    "DecoderNotFoundError",
    "DemuxerNotFoundError",
    "ProtocolNotFoundError",
)
_FATAL_REASONS = {
    "HTTPUnauthorizedError": "401 unauthorized: wrong or missing credentials",
    "HTTPForbiddenError": "403 forbidden",
    "HTTPNotFoundError": "404 not found: wrong path or stream name",
    "HTTPBadRequestError": "400 bad request",
    "InvalidDataError": "not a video (invalid data)",
    "DecoderNotFoundError": "unsupported codec",
    "DemuxerNotFoundError": "unsupported container format",
    "ProtocolNotFoundError": "unsupported protocol",
}


class VideoSource(Protocol):
    """An opened source, read one decoded frame at a time: what :class:`FrameSource` needs of a decoder
    backend. Backends are opened by a :data:`SourceOpener`."""

    @property
    def fps(self) -> float:
        """The source's frame rate; 0 (or anything outside 0-240) where it does not say."""

    @property
    def frame_count(self) -> int:
        """Frames in a file; 0 where unknown (live sources)."""

    def read(self) -> npt.NDArray[np.uint8] | None:
        """The next frame (BGR), or None once the source ended, failed or timed out."""

    def close(self) -> None:
        """Release the source."""


SourceOpener = Callable[[CameraConfig], VideoSource]
"""Opens a camera's source with its timeouts and options. Raises :class:`SourceError`."""


def ffmpeg_options(cfg: CameraConfig) -> dict[str, str]:
    """The camera's FFmpeg demuxer options beyond timeouts and threads (which OpenCV takes per capture)."""
    return {"rtsp_transport": str(cfg.rtsp_transport)} if cfg.kind is SourceKind.RTSP else {}


def probe_failure(cfg: CameraConfig) -> SourceError:
    """Ask FFmpeg (through PyAV) why a network source does not open: fatal or worth retrying."""
    import av

    options = ffmpeg_options(cfg)
    timeout = (cfg.open_timeout_s, cfg.read_timeout_s)
    try:
        with av.open(cfg.url, options=options, timeout=timeout) as container:
            if not container.streams.video:
                return SourceError(f"{cfg.display_url}: no video stream", fatal=True)
            codec = container.streams.video[0].codec_context.name
    except av.error.FFmpegError as exc:
        name = type(exc).__name__
        if name in _FATAL_PROBE_ERRORS:
            return SourceError(f"{cfg.display_url}: {_FATAL_REASONS[name]}", fatal=True)
        return SourceError(f"cannot open {cfg.display_url}: {exc.strerror or name}", fatal=False)
    except OSError as exc:
        return SourceError(f"cannot open {cfg.display_url}: {exc.strerror or exc}", fatal=False)
    # FFmpeg opens it, OpenCV did not: most likely a codec OpenCV's build cannot decode.
    return SourceError(f"{cfg.display_url}: OpenCV cannot decode its {codec} stream", fatal=False)


# OpenCV's FFmpeg backend takes timeouts and thread counts per capture (VideoCapture's params), but any
# other FFmpeg option (rtsp_transport) only from this process-wide variable, which it reads while a capture
# opens. A camera host opens its cameras on threads of their own, cameras with different transports among
# them, so every FFmpeg open sets the variable to its camera's options, opens and puts the variable back
# under one lock. OpenCV already lets one FFmpeg open run at a time per process (its own mutex, unless
# OPENCV_FFMPEG_IS_THREAD_SAFE=1), so no open waits longer for this lock than it would anyway. (PyAV
# takes options per call; a PyAV backend needs none of this.)
_FFMPEG_OPTIONS_VAR = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_ffmpeg_open_lock = threading.Lock()


def quiet_native_logs() -> None:
    """Keep FFmpeg's and OpenCV's own log lines out of the terminal, process-wide.

    A camera that does not answer would otherwise print FFmpeg's error and an OpenCV warning on every
    reconnect attempt, forever; Vigil reports the camera's state itself, one line per change, with the
    reason. OpenCV reads ``OPENCV_FFMPEG_LOGLEVEL`` when its first FFmpeg capture opens (-8: FFmpeg's
    quiet level). Either variable set in the environment wins (to debug a camera:
    ``OPENCV_FFMPEG_LOGLEVEL=32 OPENCV_LOG_LEVEL=INFO``). PyAV logs nothing unless asked.
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def _open_ffmpeg(target: str, options: dict[str, str], params: list[int]) -> cv2.VideoCapture:
    with _ffmpeg_open_lock:
        if not options:
            return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        saved = os.environ.get(_FFMPEG_OPTIONS_VAR)
        os.environ[_FFMPEG_OPTIONS_VAR] = "|".join(f"{key};{value}" for key, value in options.items())
        try:
            return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        finally:
            if saved is None:
                os.environ.pop(_FFMPEG_OPTIONS_VAR, None)
            else:
                os.environ[_FFMPEG_OPTIONS_VAR] = saved


class OpenCVSource:
    """The OpenCV backend: FFmpeg for files and network streams, OpenCV's default backend for webcams."""

    def __init__(self, cap: cv2.VideoCapture) -> None:
        self._cap = cap

    @classmethod
    def open(cls, cfg: CameraConfig) -> OpenCVSource:
        """Open a source with timeouts. Raises SourceError (fatal for files that cannot be videos)."""
        quiet_native_logs()
        kind = cfg.kind
        if kind is SourceKind.WEBCAM:
            index = int(cfg.url) if cfg.url.isdigit() else cfg.url
            cap = cv2.VideoCapture(index)
        else:
            target = cfg.url.removeprefix("file://") if kind is SourceKind.FILE else cfg.url
            if kind is SourceKind.FILE and not Path(target).is_file():
                raise SourceError(f"file not found: {target}", fatal=True)
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                int(cfg.open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                int(cfg.read_timeout_s * 1000),
                cv2.CAP_PROP_N_THREADS,
                cfg.decode_threads,
            ]
            cap = _open_ffmpeg(target, ffmpeg_options(cfg), params)
        if not cap.isOpened():
            cap.release()
            if kind is SourceKind.FILE:
                raise SourceError(f"not a readable video: {cfg.display_url}", fatal=True)
            if kind in (SourceKind.RTSP, SourceKind.HTTP):
                raise probe_failure(cfg)
            raise SourceError(f"cannot open {cfg.display_url}", fatal=False)
        return cls(cap)

    @property
    def fps(self) -> float:
        return float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)

    @property
    def frame_count(self) -> int:
        return max(0, int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))

    @property
    def codec(self) -> str:
        """The stream's codec as its four-character code (``h264``, ``hevc``, ``MJPG``); "" where unknown."""
        code = int(self._cap.get(cv2.CAP_PROP_FOURCC) or 0)
        if not 0 < code < 1 << 32:
            return ""
        text = code.to_bytes(4, "little").decode("ascii", "replace").strip("\x00 ")
        return text if text.isprintable() else ""

    def read(self) -> npt.NDArray[np.uint8] | None:
        ok, image = self._cap.read()
        return np.asarray(image, dtype=np.uint8) if ok and image is not None else None

    def close(self) -> None:
        self._cap.release()


class FrameSource:
    """Reads frames of one camera in a daemon thread; :meth:`get` hands them on.

    ``on_state`` is called on every lifecycle change with the new state and a reason;
    ``on_drop`` with a drop reason for every frame decoded but never handed on;
    ``on_decoded`` with the read time in seconds for every frame read from the source;
    ``on_reconnect`` on every attempt to reopen a lost or failed source (after its backoff delay).
    ``opener`` opens the source (default: :meth:`OpenCVSource.open`), again after every disconnect.
    ``wait`` waits out a reconnect delay (default: that many seconds, or until :meth:`stop`).

    Reconnects: attempt n (from 0) of an outage waits ``backoff.delay_s(n)``; a frame resets n. With
    ``max_reconnects`` set, the camera fails once that many attempts in a row got no frame.

    ``resume_at``: frames with a lower frame id are read but not handed on, so a file camera
    restarted after a crash goes on where it was with the same frame ids and stream times.
    """

    def __init__(
        self,
        cfg: CameraConfig,
        on_state: StateListener,
        on_drop: DropListener,
        on_decoded: Callable[[float], None] = lambda seconds: None,
        backoff: Backoff | None = None,
        file_queue_size: int = 2,  # file mode: decoded frames waiting; more only adds latency (docs/performance.md)
        opener: SourceOpener = OpenCVSource.open,
        on_reconnect: Callable[[], None] = lambda: None,
        wait: Callable[[float], object] | None = None,
        resume_at: int = 0,
    ) -> None:
        self.cfg = cfg
        self._resume_at = resume_at
        self._open = opener
        self._on_state, self._on_drop, self._on_decoded = on_state, on_drop, on_decoded
        self._on_reconnect = on_reconnect
        self._wait = wait
        self._backoff = backoff or Backoff(cfg.reconnect_initial_s, cfg.reconnect_max_s)
        self._live = cfg.effective_mode is CameraMode.LIVE
        self._queue: queue.Queue[FramePacket | None] = queue.Queue(maxsize=1 if self._live else file_queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"decode-{cfg.id}", daemon=True)
        self._last_frame_at = time.monotonic()
        self._state_lock = threading.Lock()
        self._total_frames = 0  # file mode: frames in the file, for progress
        self._read_frames = 0
        self._watchdog = threading.Thread(target=self._watch, name=f"watchdog-{cfg.id}", daemon=True)
        self._frame_id = 0
        self._media_base = self._media_end = 0.0  # files: seconds of media time handed on so far
        self.state = CameraState.CONNECTING
        self.finished = threading.Event()

    def start(self) -> None:
        self._set_state(CameraState.CONNECTING, "")
        self._thread.start()
        if self.cfg.kind is not SourceKind.FILE:
            self._watchdog.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        # Unblock a reader waiting on a full file-mode queue.
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout_s)
        if self._watchdog.is_alive():
            self._watchdog.join(timeout_s)

    def fail(self, reason: str) -> None:
        """The camera cannot go on (its config does not fit the stream): state failed, reading stops."""
        self._set_state(CameraState.FAILED, reason)
        self.stop()

    def progress(self) -> float | None:
        """Fraction of a file read so far (file mode only; None for live sources)."""
        if self._total_frames <= 0:
            return None
        return min(1.0, self._read_frames / self._total_frames)

    def depth(self) -> int:
        """Frames decoded and waiting to be taken."""
        return self._queue.qsize()

    def get(self, timeout_s: float) -> FramePacket | None:
        """The next frame (live: the newest), or None on timeout or when the source has ended."""
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None

    # -- reader thread -------------------------------------------------------------------------

    def _watch(self) -> None:
        """A frozen stream can keep OpenCV's read() blocked for several read timeouts (FFmpeg retries
        and buffered frames); report it as soon as no frame came for ``read_timeout_s``."""
        limit = self.cfg.read_timeout_s
        while not self._stop.wait(0.1) and not self.finished.is_set():
            silent = time.monotonic() - self._last_frame_at
            if self.state is CameraState.STREAMING and silent > limit:
                self._set_state(CameraState.RECONNECTING, f"no frames for {silent:.1f} s (stream frozen?)")

    def _set_state(self, state: CameraState, reason: str) -> None:
        with self._state_lock:  # the reader and the watchdog both report
            if state is self.state and state is not CameraState.CONNECTING:
                return
            self.state = state
            self._on_state(state, redact(reason))

    def _run(self) -> None:
        attempts = 0  # reconnect attempts since the source last delivered a frame
        try:
            while not self._stop.is_set():
                try:
                    source = self._open(self.cfg)
                except SourceError as exc:
                    if exc.fatal:
                        self._set_state(CameraState.FAILED, exc.reason)
                        return
                    reason = exc.reason
                else:
                    try:
                        ended, got_frames = self._read_all(source)
                    finally:
                        source.close()
                    if got_frames:
                        attempts = 0
                    if ended and not got_frames and self.cfg.kind is SourceKind.FILE:
                        self._set_state(CameraState.FAILED, f"no decodable frames in {self.cfg.display_url}")
                        return
                    if ended and not self.cfg.loop:
                        self._set_state(CameraState.STOPPED, "end of file")
                        return
                    if ended or self._stop.is_set():  # a looping file starts over
                        continue
                    reason = "stream lost (read failed or timed out)"
                if not self._reconnect(attempts, reason):
                    return
                attempts += 1
        finally:
            if self.state not in (CameraState.FAILED, CameraState.STOPPED):
                self._set_state(CameraState.STOPPED, "stopped by request")
            self.finished.set()
            self._put_end_marker()

    def _reconnect(self, attempt: int, reason: str) -> bool:
        """Enter reconnecting, wait the backoff of reconnect ``attempt`` (0: the first of this outage)
        and count it; False when the camera gives up (state failed) or is stopped meanwhile."""
        limit = self.cfg.max_reconnects
        if limit is not None and attempt >= limit:
            self._set_state(CameraState.FAILED, f"gave up after {limit} reconnect attempts: {reason}")
            return False
        self._set_state(CameraState.RECONNECTING, reason)
        delay_s = self._backoff.delay_s(attempt)
        if self._wait is None:
            if self._stop.wait(delay_s):
                return False
        else:
            self._wait(delay_s)
            if self._stop.is_set():
                return False
        self._on_reconnect()
        return True

    def _read_all(self, source: VideoSource) -> tuple[bool, bool]:
        """Read until the source ends or fails. Returns (ended_cleanly, got_any_frame)."""
        is_file = self.cfg.kind is SourceKind.FILE
        src_fps = source.fps
        if not (0 < src_fps <= 240):
            src_fps = self.cfg.fps
        if is_file and not self._live:
            self._total_frames = source.frame_count
        period_s = 1.0 / self.cfg.fps
        pace = is_file and self._live  # a file played as a live camera runs at its own frame rate
        t0, index, next_take = time.monotonic(), 0, 0.0
        got = False
        while not self._stop.is_set():
            t_read = time.perf_counter()
            image = source.read()
            if image is None:
                self._media_base = self._media_end  # a looping file's stream time keeps increasing
                return is_file, got
            got = True
            self._last_frame_at = time.monotonic()
            if self.state is not CameraState.STREAMING:
                self._set_state(CameraState.STREAMING, "")
            self._on_decoded(time.perf_counter() - t_read)
            self._read_frames += 1
            position_s = index / src_fps if is_file else time.monotonic() - t0
            index += 1
            if pace:
                self._stop.wait(max(0.0, t0 + position_s - time.monotonic()))
            if position_s + 1e-6 < next_take:
                self._on_drop("fps_cap")
                continue
            next_take = max(next_take + period_s, position_s) if is_file else position_s + period_s * 0.95
            self._hand_on(np.asarray(image, dtype=np.uint8), self._media_base + position_s if is_file else time.time())
            self._media_end = self._media_base + position_s + 1.0 / src_fps
        return False, got

    def _hand_on(self, image: npt.NDArray[np.uint8], stream_ts: float) -> None:
        if self._frame_id < self._resume_at:  # processed before a restart
            self._frame_id += 1
            return
        if self.cfg.resize_wh is not None and (image.shape[1], image.shape[0]) != self.cfg.resize_wh:
            image = np.asarray(cv2.resize(image, self.cfg.resize_wh, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        packet = FramePacket(self.cfg.id, self._frame_id, time.time(), image, stream_ts)
        self._frame_id += 1
        if not self._live:
            while not self._stop.is_set():
                try:
                    self._queue.put(packet, timeout=0.2)
                    return
                except queue.Full:
                    continue
            return
        try:
            self._queue.get_nowait()
            self._on_drop("stale")
        except queue.Empty:
            pass
        try:
            self._queue.put_nowait(packet)
        except queue.Full:  # the consumer cannot refill the slot meanwhile, but count it if it did
            self._on_drop("stale")

    def _put_end_marker(self) -> None:
        try:
            self._queue.put(None, timeout=1.0)
        except queue.Full:
            log.debug("camera %s: queue full at end, consumer will see finished", self.cfg.id)


def model_input(image: npt.NDArray[np.uint8], longest_px: int | None) -> tuple[npt.NDArray[np.uint8], float]:
    """``image`` scaled down (INTER_AREA) so its longest side is ``longest_px``, and the scale;
    smaller images and ``None`` are passed through."""
    h, w = image.shape[:2]
    if longest_px is None or max(h, w) <= longest_px:
        return image, 1.0
    scale = longest_px / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8), scale
