from rich.console import Console

from pipeline.cli.view import camera_table, format_event
from pipeline.core.messages import CameraState, CameraStatus


def status(
    cam: str, progress: float | None, state: CameraState = CameraState.STREAMING, reason: str = ""
) -> CameraStatus:
    return CameraStatus(cam, f"rtsp://***@{cam}/s", state, reason, 10, 9, 1, 2, 0, 10.0, 9.5, 0.042, progress=progress)


def render(statuses: list[CameraStatus]) -> str:
    console = Console(width=200, record=True)
    console.print(camera_table(statuses))
    return console.export_text()


def test_table_shows_cameras_and_file_progress() -> None:
    text = render([status("door", None), status("archive", 0.25), status("gone", None, CameraState.FAILED, "404")])
    assert "door" in text and "streaming" in text and "42 ms" in text
    assert "25 %" in text
    assert "failed" in text and "404" in text


def test_no_progress_column_without_files() -> None:
    assert "file" not in render([status("door", None)]).splitlines()[1]


def test_event_line() -> None:
    line = format_event(
        {
            "ts": "2026-11-22T10:00:01.500Z",
            "camera_id": "door",
            "kind": "clip",
            "phase": "end",
            "label": "fall",
            "confidence": 0.9,
            "start_frame_id": 1,
            "frame_id": 16,
            "head": "lstm",
            "duration_s": 3.2,
            "peak_confidence": 0.97,
        }
    )
    assert line == "10:00:01.500 door clip end fall 0.90 frames=1-16 head=lstm duration=3.2s peak=0.97"
