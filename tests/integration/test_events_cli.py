"""`vigil events replay / consume / snapshot / tail` as a user runs them: the real command in its own
process, started outside the repository, against a real redis-server filled by the real
``EventPublisher``; and ``EventClient.tail``, which the command follows."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np
import pytest

from pipeline.core.config import SnapshotConfig
from pipeline.core.messages import SCHEMA_VERSION, Detections, Event
from pipeline.events.client import EventClient
from pipeline.events.publisher import EVENTS_STREAM, EventPublisher
from pipeline.events.snapshots import render_snapshot
from pipeline.runtime.redis_server import EmbeddedRedis
from tests.support.configs import sample_event
from tests.support.wait import wait_for

VIGIL = [sys.executable, "-m", "pipeline.cli.app"]
HOUR = 3600.0


def publish(url: str, spool_dir: Path, events: list[Event], snapshots: dict[str, bytes] | None = None) -> None:
    """Deliver ``events`` as the cameras do (one publisher per camera), one after the other: each is
    confirmed by Redis before the next is published."""
    publishers = {
        camera: EventPublisher(url, camera, spool_dir / f"{camera}.sqlite")
        for camera in dict.fromkeys(ev.camera_id for ev in events)
    }
    for ev in events:
        publishers[ev.camera_id].publish([ev], snapshots)
        assert publishers[ev.camera_id].flush(10), f"{ev.camera_id}: event not delivered"
    for pub in publishers.values():
        pub.close()


def vigil(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VIGIL, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def event_ids(stdout: str) -> list[str]:
    """The event ids of ``--json`` output: one event document per line."""
    return [Event.model_validate_json(line).event_id for line in stdout.splitlines()]


@pytest.fixture(scope="module")
def history(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Event]:
    """Six events captured 6 to 3 hours ago on two cameras (every other test's events are newer
    than 2 hours, so ``--until 2h`` keeps them out)."""
    t0 = float(int(time.time())) - 6 * HOUR  # whole seconds: each event's ``ts`` is its exact capture time
    layout = {
        "e0": ("lobby", "person", 0.0),
        "e1": ("lobby", "fall", 1.0),
        "e2": ("dock", "person", 1.5),
        "e3": ("lobby", "person", 2.0),
        "e4": ("dock", "fall", 2.5),
        "e5": ("lobby", "fall", 3.0),
    }
    events = {
        name: sample_event(camera, seq, label, captured_at=t0 + hours * HOUR)
        for seq, (name, (camera, label, hours)) in enumerate(layout.items())
    }
    publish(redis_server.url, tmp_path_factory.mktemp("spool"), list(events.values()))
    return events


def ids(history: dict[str, Event], *names: str) -> list[str]:
    return [history[n].event_id for n in names]


def test_replay_takes_relative_times(redis_server: EmbeddedRedis, history: dict[str, Event], tmp_path: Path) -> None:
    """``--since``/``--until`` take relative times (counted back from now)."""
    result = vigil(
        "events", "replay", "--since", "330m", "--until", "2h", "--json", "--redis-url", redis_server.url, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert event_ids(result.stdout) == ids(history, "e1", "e2", "e3", "e4", "e5")
    assert "5 events" in result.stderr


def test_replay_takes_iso_times(redis_server: EmbeddedRedis, history: dict[str, Event], tmp_path: Path) -> None:
    """ISO times (like 2026-11-22T10:00:00.000Z); an event captured at ``--since`` is in, one
    captured at ``--until`` is out."""
    since, until = history["e2"].ts, history["e4"].ts
    result = vigil(
        "events", "replay", "--since", since, "--until", until, "--json", "--redis-url", redis_server.url, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert event_ids(result.stdout) == ids(history, "e2", "e3")


def test_replay_filters_by_camera(redis_server: EmbeddedRedis, history: dict[str, Event], tmp_path: Path) -> None:
    args = ["--since", "7h", "--until", "2h", "--json", "--redis-url", redis_server.url]
    result = vigil("events", "replay", "--camera", "dock", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert event_ids(result.stdout) == ids(history, "e2", "e4")


def test_replay_filters_by_label(redis_server: EmbeddedRedis, history: dict[str, Event], tmp_path: Path) -> None:
    args = ["--since", "7h", "--until", "2h", "--json", "--redis-url", redis_server.url]
    falls = vigil("events", "replay", "--label", "fall", *args, cwd=tmp_path)
    assert falls.returncode == 0, falls.stderr
    assert event_ids(falls.stdout) == ids(history, "e1", "e4", "e5")
    lobby_falls = vigil("events", "replay", "--label", "fall", "--camera", "lobby", *args, cwd=tmp_path)
    assert event_ids(lobby_falls.stdout) == ids(history, "e1", "e5")


def test_replay_prints_one_readable_line_per_event(
    redis_server: EmbeddedRedis, history: dict[str, Event], tmp_path: Path
) -> None:
    args = ["--since", "7h", "--until", "2h", "--camera", "dock", "--redis-url", redis_server.url]
    result = vigil("events", "replay", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for line, ev in zip(lines, (history["e2"], history["e4"]), strict=True):
        assert f"dock object start {ev.label} 0.90 track={ev.track_id}" in line
        assert line.startswith(ev.ts[11:23])  # the capture time, to the millisecond


def test_replay_rejects_a_bad_time_in_one_line(tmp_path: Path) -> None:
    result = vigil("events", "replay", "--since", "yesterday", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: not a time: 'yesterday' (use ISO-8601 like 2026-11-22T10:00:00Z, or 15m, 2h, 1d)"
    ]


def test_consume_acknowledges_what_it_printed(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    """A second run of the same consumer gets only what came after; another group gets everything."""
    url = redis_server.url
    first = [sample_event("consumed", i) for i in range(3)]
    publish(url, tmp_path, first)
    group = ["--group", "alerts", "--consumer", "worker-1", "--camera", "consumed", "--json", "--redis-url", url]
    run1 = vigil("events", "consume", *group, "--count", "3", cwd=tmp_path)
    assert run1.returncode == 0, run1.stderr
    assert event_ids(run1.stdout) == [e.event_id for e in first]
    later = sample_event("consumed", 3)
    publish(url, tmp_path, [later])
    run2 = vigil("events", "consume", *group, "--count", "1", cwd=tmp_path)
    assert run2.returncode == 0, run2.stderr
    assert event_ids(run2.stdout) == [later.event_id]
    audit = ["--group", "audit", "--consumer", "a", "--camera", "consumed", "--json", "--redis-url", url]
    run3 = vigil("events", "consume", *audit, "--count", "4", cwd=tmp_path)
    assert event_ids(run3.stdout) == [e.event_id for e in [*first, later]]


def test_snapshot_writes_the_events_jpeg(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    ev = sample_event("snapcam", 1)
    det = Detections(
        xyxy=np.array([[10, 20, 90, 100]], np.float32),
        confidence=np.array([0.9], np.float32),
        class_id=np.array([0], np.int64),
        tracker_id=np.array([1], np.int64),
        class_names=("person",),
    )
    jpeg = render_snapshot(np.full((120, 160, 3), 90, np.uint8), det, SnapshotConfig(), highlight_track=1)
    publish(redis_server.url, tmp_path, [ev], {ev.event_id: jpeg})
    result = vigil("events", "snapshot", ev.event_id, "-o", "person.jpg", "--redis-url", redis_server.url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "person.jpg").read_bytes() == jpeg
    assert f"person.jpg: {len(jpeg)} bytes" in result.stdout
    missing = vigil("events", "snapshot", "no-such-event", "-o", "x.jpg", "--redis-url", redis_server.url, cwd=tmp_path)
    assert missing.returncode == 1
    assert "no snapshot for event no-such-event" in missing.stderr and "Traceback" not in missing.stderr
    assert not (tmp_path / "x.jpg").exists()


class Tail:
    """A running ``vigil events tail``: its output lines, collected as they come."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [*VIGIL, "events", "tail", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()
        self.lines: list[str] = []
        self.errors: list[str] = []

    @staticmethod
    def _pump(stream: IO[str], sink: queue.Queue[str]) -> None:
        for line in stream:
            sink.put(line.rstrip("\n"))

    def _drain(self) -> None:
        while not self.out.empty():
            self.lines.append(self.out.get())
        while not self.err.empty():
            self.errors.append(self.err.get())

    def wait_following(self) -> None:
        """Until tail says it follows the stream (from then on it misses nothing)."""

        def following() -> bool:
            self._drain()
            assert self.proc.poll() is None, f"tail exited: {self.errors}"
            return any(line.startswith("following ") for line in self.errors)

        wait_for(following, 60, "tail to start following")

    def wait_lines(self, n: int) -> list[str]:
        def enough() -> bool:
            self._drain()
            return len(self.lines) >= n

        wait_for(enough, 30, f"{n} lines from tail")
        return self.lines

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture()
def tail_process() -> Iterator[list[Tail]]:
    started: list[Tail] = []
    yield started
    for tail in started:
        if tail.proc.poll() is None:
            tail.proc.kill()
            tail.proc.wait()


def test_tail_camera_shows_only_that_camera(
    redis_server: EmbeddedRedis, tmp_path: Path, tail_process: list[Tail]
) -> None:
    tail = Tail(["--camera", "gate", "--redis-url", redis_server.url], tmp_path)
    tail_process.append(tail)
    tail.wait_following()
    events = [sample_event("yard", 1), sample_event("gate", 2), sample_event("yard", 3), sample_event("gate", 4)]
    publish(redis_server.url, tmp_path, events)
    lines = tail.wait_lines(2)
    tail.stop()
    assert len(lines) == 2, lines
    assert all(" gate object start person 0.90 " in line for line in lines), lines
    assert [line.split("track=")[1].split()[0] for line in lines] == ["2", "4"]


def test_tail_json_prints_one_event_document_per_line(
    redis_server: EmbeddedRedis, tmp_path: Path, tail_process: list[Tail]
) -> None:
    tail = Tail(["--json", "--redis-url", redis_server.url], tmp_path)
    tail_process.append(tail)
    tail.wait_following()
    person = sample_event("json-a", 1, "person")
    # a snapshot stored in a directory whose name has brackets (store: dir) comes out verbatim
    snapshot = f"/mnt/cams [east]/json-a/{person.event_id}.jpg"
    events = [person.model_copy(update={"snapshot": snapshot}), sample_event("json-b", 2, "fall")]
    publish(redis_server.url, tmp_path, events)
    lines = tail.wait_lines(2)
    tail.stop()
    assert [Event.model_validate_json(line) for line in lines] == events
    assert all(json.loads(line)["schema_version"] == SCHEMA_VERSION for line in lines)


def test_tail_passes_through_kinds_and_fields_of_a_newer_vigil(
    redis_server: EmbeddedRedis, tmp_path: Path, tail_process: list[Tail]
) -> None:
    """An event of a kind and phase this version does not know, with a field it does not know, is
    printed, that field included; a reader that filters on kind simply skips it."""
    import redis

    tail = Tail(["--json", "--redis-url", redis_server.url], tmp_path)
    tail_process.append(tail)
    tail.wait_following()
    newer = {**json.loads(sample_event("newer", 1).model_dump_json()), "kind": "wrong_way", "phase": "pulse"}
    newer |= {"schema_version": SCHEMA_VERSION + 1, "heading_deg": 270}
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.xadd(EVENTS_STREAM, {"event": json.dumps(newer)})
    finally:
        client.close()
    (line,) = tail.wait_lines(1)
    tail.stop()
    printed = json.loads(line)
    assert (printed["kind"], printed["phase"], printed["heading_deg"]) == ("wrong_way", "pulse", 270)


def test_tail_follows_from_now_on(redis_server: EmbeddedRedis, tmp_path: Path, tail_process: list[Tail]) -> None:
    """Events already in the stream are not printed (without ``--from-start``); every event
    published after tail said it follows is."""
    old = sample_event("late", 1)
    publish(redis_server.url, tmp_path, [old])
    tail = Tail(["--camera", "late", "--json", "--redis-url", redis_server.url], tmp_path)
    tail_process.append(tail)
    tail.wait_following()
    new = sample_event("late", 2)
    publish(redis_server.url, tmp_path, [new])
    lines = tail.wait_lines(1)
    tail.stop()
    assert event_ids("\n".join(lines)) == [new.event_id]


def test_client_tail_misses_nothing_published_after_the_call(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    """``EventClient.tail`` delivers every event published once it returned, however late the
    caller starts reading, and none retained before it."""
    publish(redis_server.url, tmp_path, [sample_event("follow", 1)])
    client = EventClient(redis_server.url)
    try:
        events = client.tail("follow", block_ms=100)
        later = [sample_event("follow", 2), sample_event("follow", 3)]
        publish(redis_server.url, tmp_path, later)
        got: list[Event] = []

        def read_two() -> None:
            for ev in events:
                got.append(ev)
                if len(got) == 2:
                    return

        threading.Thread(target=read_two, daemon=True).start()
        wait_for(lambda: len(got) == 2, 30, "the two events published after tail()")
        assert [e.event_id for e in got] == [e.event_id for e in later]
    finally:
        client.close()


def test_replay_until_now_includes_events_just_captured(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    """An ISO ``--until`` in the future is fine: everything retained since ``--since`` is printed."""
    ev = sample_event("fresh", 1)
    publish(redis_server.url, tmp_path, [ev])
    until = datetime.fromtimestamp(time.time() + 60, UTC).isoformat()
    result = vigil(
        "events",
        "replay",
        "--since",
        "1m",
        "--until",
        until,
        "--camera",
        "fresh",
        "--json",
        "--redis-url",
        redis_server.url,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert event_ids(result.stdout) == [ev.event_id]


def test_live_view_feed_shows_events_from_its_start_on(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    """The live view's event panel (``vigil run``'s view) lists what arrives after it started,
    newest last, and nothing retained from before."""
    from pipeline.cli.view import EventFeed

    publish(redis_server.url, tmp_path, [sample_event("feedcam", 1, "bag")])
    feed = EventFeed(redis_server.url, size=8)
    feed.start()
    try:
        assert feed.following.wait(30), "the feed never reached Redis"
        later = [sample_event("feedcam", seq, "person") for seq in (2, 3, 4)]
        for ev in later:
            publish(redis_server.url, tmp_path, [ev])
        wait_for(lambda: len(feed.lines) >= 3, 30, "three lines in the live view's event panel")
        assert all("feedcam object start person" in line for line in feed.lines), list(feed.lines)
        assert len(feed.lines) == 3
    finally:
        feed.stop()
