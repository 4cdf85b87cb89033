"""The decode stage on real files (OpenCV/FFmpeg), without Ray."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pipeline.core.config import CameraConfig
from pipeline.core.messages import CameraState, FramePacket
from workers.decoder import Backoff, FrameSource


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
    frames = []
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


def test_truncated_mp4_fails_or_stops_cleanly(tmp_path: Path, short_mp4: Path) -> None:
    path = tmp_path / "cut.mp4"
    path.write_bytes(short_mp4.read_bytes()[: short_mp4.stat().st_size // 3])
    rec = Recorder()
    drain(CameraConfig(id="cut", url=str(path)), rec)
    assert rec.states[-1][0] in (CameraState.FAILED, CameraState.STOPPED)


def test_live_mode_keeps_only_the_newest_frame(short_mp4: Path) -> None:
    rec = Recorder()
    cfg = CameraConfig(id="live", url=str(short_mp4), fps=30, mode="live")
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
