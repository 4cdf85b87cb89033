from rich.console import Console

from pipeline.cli.view import EventLines, StatusLines, camera_table, format_event
from pipeline.core.messages import CameraState, CameraStatus


def status(
    cam: str, progress: float | None, state: CameraState = CameraState.STREAMING, reason: str = ""
) -> CameraStatus:
    return CameraStatus(cam, f"rtsp://***@{cam}/s", state, reason, 10, 9, 1, 2, 0, 10.0, 9.5, 0.042, progress=progress)


def render(statuses: list[CameraStatus], width: int = 200) -> str:
    console = Console(width=width, record=True)
    console.print(camera_table(statuses, width))
    return console.export_text()


def test_table_shows_cameras_and_file_progress() -> None:
    text = render([status("door", None), status("archive", 0.25), status("gone", None, CameraState.FAILED, "404")])
    assert "door" in text and "streaming" in text and "42 ms" in text
    assert "25 %" in text
    assert "failed" in text and "404" in text


def test_an_80_column_terminal_still_shows_fps_latency_and_counts() -> None:
    failed = status(
        "gone", None, CameraState.FAILED, "rtsp://***@10.0.0.5:554/Streaming/Channels/101: 401 unauthorized"
    )
    text = render([status("door", None), status("archive", 0.25), failed], width=80)
    assert "…" not in text
    for shown in ("10.0", "9.5", "42 ms", "25 %", "latency", "events"):
        assert shown in text, text


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


SEQ = iter(range(1_000_000))


def doc(incident: str, phase: str, kind: str = "object", label: str = "car") -> dict[str, object]:
    return {
        "event_id": f"{incident}-{next(SEQ)}",
        "ts": "2026-11-22T10:00:01.500Z",
        "camera_id": "street",
        "kind": kind,
        "phase": phase,
        "label": label,
        "confidence": 0.8,
        "incident_id": incident,
    }


def test_updates_fold_into_their_incident_line() -> None:
    lines = EventLines(size=8)
    lines.add(doc("parked", "start"))
    for _ in range(5):
        lines.add(doc("parked", "update"))
    assert list(lines) == ["10:00:01.500 street object update car 0.80 track=None box=None (5 updates)"]
    lines.add(doc("parked", "end"))
    assert len(lines) == 1 and "object end car" in next(iter(lines)) and "(5 updates)" in next(iter(lines))


def test_a_full_panel_drops_object_incidents_before_clip_events() -> None:
    lines = EventLines(size=3)
    lines.add(doc("fall-1", "start", kind="clip", label="fall"))
    for n in range(6):
        lines.add(doc(f"car-{n}", "start"))
    shown = list(lines)
    assert len(shown) == 3
    assert "clip start fall" in shown[0]
    assert ["object start car" in line for line in shown[1:]] == [True, True]
    # Only clip incidents left: the oldest goes.
    clips = EventLines(size=2)
    for n in range(3):
        clips.add(doc(f"run-{n}", "start", kind="clip", label=f"run{n}"))
    assert [line.split()[4] for line in clips] == ["run1", "run2"]


def test_status_lines_print_every_camera_at_most_every_interval() -> None:
    console = Console(width=40, record=True)  # narrower than a line: it must not wrap
    lines = StatusLines(console, every_s=3600)
    lines.update([status("door", None), status("archive", 0.25)])
    lines.update([status("door", None)])  # within the interval: nothing
    printed = console.export_text().splitlines()
    assert len(printed) == 2
    assert printed[0].startswith("door: streaming in=10.0fps out=9.5fps latency=42ms")
    assert printed[1].startswith("archive: streaming") and "file=25%" in printed[1]


def test_zone_line_and_dwell_events_read_as_one_line_each() -> None:
    crossing = {**doc("c1", "instant", kind="line", label="car"), "line": "gate", "direction": "in"}
    crossing |= {"track_id": 4, "speed": 42.5, "speed_unit": "px/s"}
    assert "line instant car" in format_event(crossing) and "line=gate direction=in track=4 speed=42.5 px/s" in (
        format_event(crossing)
    )
    stay = {**doc("z1", "end", kind="zone", label="person"), "zone": "dock", "track_id": 9, "dwell_s": 31.5}
    assert format_event(stay).endswith("zone=dock track=9 dwell=31.5s")
    seen = {**doc("o1", "update", label="person"), "zones": ["dock", "gate"]}
    assert "zones=dock,gate" in format_event(seen)


def test_a_full_panel_drops_line_crossings_before_dwell_events() -> None:
    lines = EventLines(size=2)
    lines.add({**doc("d1", "instant", kind="dwell", label="person"), "zone": "dock", "dwell_s": 30.0})
    for n in range(5):
        lines.add({**doc(f"c{n}", "instant", kind="line", label="car"), "line": "gate", "direction": "in"})
    shown = list(lines)
    assert "dwell instant person" in shown[0] and "line instant car" in shown[1]


def test_status_lines_carry_the_cameras_counts() -> None:
    console = Console(width=40, record=True)
    counted = CameraStatus(
        "door", "rtsp://***@door/s", CameraState.STREAMING, "", 10, 9, 1, 2, 0, 10.0, 9.5, 0.042,
        analytics="gate in 3 out 1 · dock 2",
    )  # fmt: skip
    StatusLines(console, every_s=3600).update([counted])
    assert console.export_text().rstrip().endswith("counts: gate in 3 out 1 · dock 2")
