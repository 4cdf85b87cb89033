"""The decode stage on real files (OpenCV/FFmpeg), without Ray."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from pipeline.core.config import CameraConfig, CameraMode
from pipeline.core.messages import CameraState, FramePacket
from workers import decoder
from workers.decoder import Backoff, FrameSource, OpenCVSource, SourceError, VideoSource


class Recorder:
    def __init__(self) -> None:
        self.states: list[tuple[CameraState, str]] = []
        self.drops: list[str] = []
        self.decoded = 0
        self.terminal = threading.Event()

    def on_state(self, state: CameraState, reason: str) -> None:
        self.states.append((state, reason))
        if state in (CameraState.STOPPED, CameraState.FAILED):
            self.terminal.set()

    def on_drop(self, reason: str) -> None:
        self.drops.append(reason)

    def on_decoded(self, seconds: float) -> None:
        assert seconds >= 0
        self.decoded += 1


def drain(cfg: CameraConfig, rec: Recorder, max_frames: int = 10_000) -> list[FramePacket]:
    src = FrameSource(cfg, rec.on_state, rec.on_drop, rec.on_decoded)
    src.start()
    frames: list[FramePacket] = []
    while len(frames) < max_frames:
        pkt = src.get(timeout_s=10)
        if pkt is None:
            break
        frames.append(pkt)
    src.stop()
    return frames


def test_file_mode_hands_on_every_frame_in_order(short_mp4: Path) -> None:
    rec = Recorder()
    frames = drain(CameraConfig(id="f", url=str(short_mp4), fps=30), rec)
    assert [f.frame_id for f in frames] == list(range(20))
    assert frames[0].resolution_wh == (640, 360)
    assert rec.decoded == 20 and rec.drops == []
    assert [s for s, _ in rec.states] == [CameraState.CONNECTING, CameraState.STREAMING, CameraState.STOPPED]
    assert rec.states[-1][1] == "end of file"


def test_file_mode_fps_cap_keeps_every_other_frame(short_mp4: Path) -> None:
    rec = Recorder()
    frames = drain(CameraConfig(id="f", url=str(short_mp4), fps=5), rec)
    assert len(frames) == 10
    assert rec.drops == ["fps_cap"] * 10


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "file not found"),
        (b"", "not a readable video"),
        (b"this is not a video at all\n" * 100, "not a readable video"),
    ],
)
def test_bad_files_fail_with_a_reason(tmp_path: Path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "cam.mp4"
    if content is not None:
        path.write_bytes(content)
    rec = Recorder()
    assert drain(CameraConfig(id="bad", url=str(path)), rec) == []
    assert rec.states[-1][0] is CameraState.FAILED
    assert reason in rec.states[-1][1]


def test_a_file_cut_short_plays_up_to_the_cut_then_stops_at_end_of_file(tmp_path: Path, short_mp4: Path) -> None:
    """A truncated MP4 (its index first, its frames cut after the first third) hands on the frames
    before the cut, in order, and ends like any file: ``stopped`` with reason ``end of file``."""
    path = tmp_path / "cut.mp4"
    path.write_bytes(short_mp4.read_bytes()[: short_mp4.stat().st_size // 3])
    rec = Recorder()
    frames = drain(CameraConfig(id="cut", url=str(path)), rec)
    assert 1 <= len(frames) < 20, "some but not all of the 20 frames are before the cut"
    assert [f.frame_id for f in frames] == list(range(len(frames)))
    assert rec.states == [
        (CameraState.CONNECTING, ""),
        (CameraState.STREAMING, ""),
        (CameraState.STOPPED, "end of file"),
    ]


def test_live_mode_keeps_only_the_newest_frame(short_mp4: Path) -> None:
    rec = Recorder()
    cfg = CameraConfig(id="live", url=str(short_mp4), fps=30, mode=CameraMode.LIVE)
    src = FrameSource(cfg, rec.on_state, rec.on_drop, rec.on_decoded)
    src.start()
    assert rec.terminal.wait(10), "a 2 s file played live must end within 10 s"
    newest = src.get(timeout_s=1)
    src.stop()
    # Nobody consumed while the file played: only the last frame is left, the others counted stale.
    assert newest is not None and newest.frame_id == 19
    assert rec.drops.count("stale") == 19


def test_unreachable_rtsp_retries_instead_of_failing() -> None:
    rec = Recorder()
    cfg = CameraConfig(id="gone", url="rtsp://127.0.0.1:9/none", open_timeout_s=1, read_timeout_s=1)
    src = FrameSource(cfg, rec.on_state, rec.on_drop, rec.on_decoded, backoff=Backoff(base_s=0.05, cap_s=0.1))
    src.start()
    assert src.get(timeout_s=3) is None
    src.stop()
    states = [s for s, _ in rec.states]
    assert CameraState.RECONNECTING in states and CameraState.FAILED not in states
    assert "rtsp://127.0.0.1:9/none" in rec.states[1][1]


REFUSED = "cannot open rtsp://127.0.0.1:9/cam: Connection refused"


class ScriptedOpener:
    """A network camera's backend that follows a script, one entry per open: a number of frames the
    source delivers before it is lost, or None for an open that fails (a server that is down). Past
    the end of the script every open fails."""

    def __init__(self, script: list[int | None]) -> None:
        self.script = list(script)
        self.opens = 0

    def __call__(self, cfg: CameraConfig) -> VideoSource:
        self.opens += 1
        frames = self.script.pop(0) if self.script else None
        if frames is None:
            raise SourceError(REFUSED, fatal=False)
        return ListSource(frames)


def run_reconnects(cfg: CameraConfig, opener: ScriptedOpener) -> tuple[Recorder, list[float], int]:
    """Run ``cfg`` until it fails; the reconnect delays it waited (recorded, not slept) and the
    number of reconnect attempts it reported."""
    rec, waits, reconnects = Recorder(), list[float](), list[int]()
    src = FrameSource(
        cfg,
        rec.on_state,
        rec.on_drop,
        opener=opener,
        on_reconnect=lambda: reconnects.append(len(waits)),
        wait=waits.append,
    )
    src.start()
    ended = rec.terminal.wait(10)
    src.stop()
    assert ended, f"the camera never gave up ({opener.opens} opens, {len(waits)} waits)"
    return rec, waits, len(reconnects)


def test_reconnect_delays_double_from_initial_to_max_jittered_and_give_up_after_max_reconnects() -> None:
    """A camera whose source never opens waits attempt n (from 0) min(reconnect_max_s,
    reconnect_initial_s x 2^n) jittered to 50-100 %, reports each attempt (the reconnect counter),
    and fails after exactly ``max_reconnects`` attempts with the last error in its reason."""
    cfg = CameraConfig(
        id="cam", url="rtsp://127.0.0.1:9/cam", reconnect_initial_s=0.5, reconnect_max_s=8.0, max_reconnects=40
    )
    opener = ScriptedOpener([])
    rec, waits, reconnects = run_reconnects(cfg, opener)
    assert opener.opens == 41 and reconnects == 40 and len(waits) == 40  # the first open and 40 reconnects
    nominal = [min(8.0, 0.5 * 2**n) for n in range(40)]
    assert nominal[:6] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    ratios = [wait / full for wait, full in zip(waits, nominal, strict=True)]
    assert all(0.5 <= r <= 1.0 for r in ratios), f"delays outside 50-100 % of {nominal[:6]}...: {waits}"
    # Jittered, not a fixed share: 40 draws from [0.5, 1] all above 0.65 (or all below 0.85) is a 1e-6 chance.
    assert min(ratios) < 0.65 and max(ratios) > 0.85, f"no jitter in {ratios}"
    assert [s for s, _ in rec.states] == [CameraState.CONNECTING, CameraState.RECONNECTING, CameraState.FAILED]
    assert rec.states[1][1] == REFUSED
    assert rec.states[-1][1] == f"gave up after 40 reconnect attempts: {REFUSED}"


def test_frames_reset_the_backoff_and_the_attempts_counted_toward_max_reconnects() -> None:
    """``max_reconnects`` counts attempts in a row: a source that delivers frames again starts the
    next outage at ``reconnect_initial_s`` with all its attempts. A lost stream is reconnected the
    same way as a source that does not open."""
    cfg = CameraConfig(
        id="cam", url="rtsp://127.0.0.1:9/cam", reconnect_initial_s=1.0, reconnect_max_s=30.0, max_reconnects=3
    )
    opener = ScriptedOpener([3, None, None, 3])  # frames, lost; 2 failed opens; frames, lost; down for good
    rec, waits, reconnects = run_reconnects(cfg, opener)
    assert opener.opens == 7 and reconnects == 6
    nominal = [1.0, 2.0, 4.0, 1.0, 2.0, 4.0]  # each outage starts over at reconnect_initial_s
    assert all(full / 2 <= wait <= full for wait, full in zip(waits, nominal, strict=True)), waits
    assert [s for s, _ in rec.states] == [
        CameraState.CONNECTING,
        CameraState.STREAMING,
        CameraState.RECONNECTING,
        CameraState.STREAMING,
        CameraState.RECONNECTING,
        CameraState.FAILED,
    ]
    assert rec.states[2][1] == "stream lost (read failed or timed out)"
    assert rec.states[-1][1] == f"gave up after 3 reconnect attempts: {REFUSED}"


def test_max_reconnects_zero_fails_at_the_first_loss() -> None:
    """``max_reconnects: 0``: the first failed open fails the camera, without a reconnect attempt."""
    cfg = CameraConfig(id="cam", url="rtsp://127.0.0.1:9/cam", max_reconnects=0)
    opener = ScriptedOpener([])
    rec, waits, reconnects = run_reconnects(cfg, opener)
    assert (opener.opens, reconnects, waits) == (1, 0, [])
    assert rec.states[-1] == (CameraState.FAILED, f"gave up after 0 reconnect attempts: {REFUSED}")


@pytest.mark.parametrize("attempt", [0, 1, 5, 30])
def test_backoff_is_capped_and_jittered(attempt: int) -> None:
    b = Backoff(base_s=0.5, cap_s=30)
    delays = {b.delay_s(attempt) for _ in range(20)}
    expected_max = min(30, 0.5 * 2**attempt)
    assert all(expected_max * 0.5 <= d <= expected_max for d in delays)
    assert len(delays) > 1


def test_resize_happens_at_the_decoder(short_mp4: Path) -> None:
    rec = Recorder()
    frames = drain(CameraConfig(id="f", url=str(short_mp4), fps=30, resize_wh=(320, 180)), rec, max_frames=3)
    assert [f.resolution_wh for f in frames] == [(320, 180)] * 3


def test_file_mode_reports_progress(short_mp4: Path) -> None:
    rec = Recorder()
    src = FrameSource(CameraConfig(id="f", url=str(short_mp4), fps=30), rec.on_state, rec.on_drop, rec.on_decoded)
    assert src.progress() is None
    src.start()
    got = [src.get(timeout_s=10) for _ in range(10)]
    assert all(got) and 0.4 <= (src.progress() or 0) <= 1.0
    while src.get(timeout_s=10) is not None:
        pass
    assert src.progress() == 1.0
    src.stop()


class ListSource:
    """A decoder backend made of frames in memory."""

    def __init__(self, frames: int, fps: float = 25.0) -> None:
        self._frames = [np.full((48, 64, 3), i, dtype=np.uint8) for i in range(frames)]
        self.fps, self.frame_count = fps, frames
        self.closed = False

    def read(self) -> npt.NDArray[np.uint8] | None:
        return self._frames.pop(0) if self._frames else None

    def close(self) -> None:
        self.closed = True


def test_any_backend_behind_the_source_interface(tmp_path: Path) -> None:
    video = tmp_path / "cam.mp4"
    video.touch()
    opened: list[ListSource] = []

    def opener(cfg: CameraConfig) -> VideoSource:
        opened.append(ListSource(6))
        return opened[-1]

    rec = Recorder()
    src = FrameSource(CameraConfig(id="mem", url=str(video), fps=25), rec.on_state, rec.on_drop, opener=opener)
    src.start()
    frames = [src.get(timeout_s=10) for _ in range(7)]
    src.stop()
    assert frames[6] is None  # the end of the file
    got = [f for f in frames[:6] if f is not None]
    assert [int(f.image_bgr[0, 0, 0]) for f in got] == list(range(6))
    assert [f.stream_ts for f in got] == pytest.approx([i / 25 for i in range(6)])  # the backend's frame rate
    assert len(opened) == 1 and opened[0].closed
    assert rec.states[-1] == (CameraState.STOPPED, "end of file")


def test_a_fatal_open_error_from_any_backend_fails_the_camera() -> None:
    def opener(cfg: CameraConfig) -> VideoSource:
        raise SourceError("unsupported codec", fatal=True)

    rec = Recorder()
    drained = FrameSource(CameraConfig(id="x", url="rtsp://127.0.0.1:9/x"), rec.on_state, rec.on_drop, opener=opener)
    drained.start()
    assert rec.terminal.wait(5)
    drained.stop()
    assert rec.states[-1] == (CameraState.FAILED, "unsupported codec")


class RecordingCapture:
    """Stands in for cv2.VideoCapture: notes the FFmpeg options it saw when it opened and when it finished."""

    seen: ClassVar[list[tuple[str, str | None, str | None]]] = []

    def __init__(self, url: str, api: int = 0, params: Any = None) -> None:
        before = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
        time.sleep(0.01)  # an open takes a while: others would change the variable meanwhile
        self.seen.append((url, before, os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")))

    def isOpened(self) -> bool:
        return True

    def release(self) -> None:
        pass


def test_each_rtsp_camera_opens_with_its_own_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """The FFmpeg options travel in one process-wide variable; cameras opening on many threads at once
    each open with their own, and the variable is as it was afterwards."""
    monkeypatch.setattr(cv2, "VideoCapture", RecordingCapture)
    monkeypatch.setattr(RecordingCapture, "seen", [])
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "analyzeduration;1000000")
    transports: list[Literal["tcp", "udp"]] = ["tcp", "udp"] * 8
    cams = [
        CameraConfig(id=f"c{i}", url=f"rtsp://127.0.0.1:9/{transport}/{i}", rtsp_transport=transport)
        for i, transport in enumerate(transports)
    ]
    threads = [threading.Thread(target=OpenCVSource.open, args=(cam,)) for cam in cams]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(RecordingCapture.seen) == len(cams)
    for url, before, after in RecordingCapture.seen:
        transport = url.split("/")[3]
        assert before == after == f"rtsp_transport;{transport}", url
    assert os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] == "analyzeduration;1000000"
    decoder.OpenCVSource.open(CameraConfig(id="file", url=__file__))  # files: no RTSP options
    assert RecordingCapture.seen[-1][1] == "analyzeduration;1000000"
