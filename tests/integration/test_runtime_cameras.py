"""Cameras added and removed on a running pipeline: through the CLI and Redis, in the camera-host
process already running, ending the removed camera's incidents and flushing its outbox, and 60
add/remove cycles without leaking actors, threads, file descriptors or memory. The control channel
takes only commands signed with the control key, fresh and once, reads local sources only under
the allowed folders, caps the cameras, answers whatever goes wrong and outlives a Redis that was
down at its start."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psutil
import pytest
import ray
import redis
import yaml

from pipeline.core.config import CameraConfig, ControlConfig, MotionConfig
from pipeline.core.config.analytics import AnalyticsConfig
from pipeline.core.config.loader import load_analytics
from pipeline.core.messages import CameraState, Event, StatusEvent
from pipeline.events.publisher import STATUS_STREAM, camera_stream
from pipeline.ml.synth.dataset import write_mp4
from pipeline.ml.synth.scenes import background
from pipeline.runtime.camera_host import ProcessStats
from pipeline.runtime.control import (
    AUDIT_STREAM,
    CONTROL_STREAM,
    REPLY_PREFIX,
    Command,
    ControlClient,
    ControlServer,
    Envelope,
    NotFinished,
    Reply,
    send_command,
)
from pipeline.runtime.control_auth import client_key, sign_command
from pipeline.runtime.driver import Pipeline
from pipeline.runtime.hosts import CameraError
from pipeline.runtime.redis_server import EmbeddedRedis, free_port
from tests.support.configs import chatty_config
from tests.support.metrics import samples, scrape, value
from tests.support.running import Running, running_pipeline
from tests.support.wait import wait_for

VIGIL = [sys.executable, "-m", "pipeline.cli.app"]
# docs/cameras.md: a camera is added to (or removed from) a camera-host process already running
# within milliseconds. A command's reply is awaited this long: the margin is for a loaded 2-core
# machine; that nothing restarts is pinned by the host process staying the same, not by the time.
COMMAND_REPLY_S = 15.0


@pytest.fixture(scope="module")
def running(ray_session: None, street_mp4: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("runtime")
    cfg = chatty_config([{"id": "base", "url": str(street_mp4), "fps": 5, "loop": True}], tmp / "spool")
    # Every camera these tests add joins the one host; cameras added at run time may read the test videos.
    cfg = cfg.model_copy(
        update={
            "ray": cfg.ray.model_copy(update={"cameras_per_host": 16}),
            "control": ControlConfig(allow_local_sources=(street_mp4.parent,)),
        }
    )
    with running_pipeline(cfg) as run:
        yield run


def state_of(pipeline: Pipeline, camera_id: str) -> CameraState | None:
    return next((s.state for s in pipeline.statuses() if s.camera_id == camera_id), None)


def processed(pipeline: Pipeline, camera_id: str) -> int:
    return next((s.frames_processed for s in pipeline.statuses() if s.camera_id == camera_id), -1)


def the_host(pipeline: Pipeline) -> Any:
    assert pipeline.hosts is not None
    [host] = pipeline.hosts.actors()
    return host


def key() -> bytes:
    """The control key of the tests' pipelines and CLI (VIGIL_CONTROL_KEY, set by tests/conftest.py)."""
    found = client_key(None)
    assert found is not None
    return found


def signed(url: str, command: Command) -> Reply:
    """``command`` signed with the key, its result awaited (the tests' adds need no new host)."""
    return send_command(url, command, COMMAND_REPLY_S, key=key(), finish_timeout_s=4 * COMMAND_REPLY_S)


def rtsp_camera(camera_id: str, auth: str = "") -> dict[str, Any]:
    """A network camera nobody serves (it reconnects): allowed anywhere, cheap to start."""
    return {"id": camera_id, "url": f"rtsp://{auth}127.0.0.1:{free_port()}/x", "fps": 2}


def write_raw(url: str, command: Command, sig: str | None) -> None:
    """Append ``command`` to the control stream as a Redis writer would, with ``sig`` or unsigned."""
    client = redis.Redis.from_url(url)
    body = command.model_dump_json().encode()
    client.xadd(CONTROL_STREAM, {"command": body} if sig is None else {"command": body, "sig": sig})
    client.close()


def final_reply(url: str, request_id: str) -> Reply:
    """The last answer on the request's reply list (an ``accepted`` one first is skipped)."""
    client = redis.Redis.from_url(url)
    try:
        while True:
            popped: Any = client.blpop([REPLY_PREFIX + request_id], timeout=COMMAND_REPLY_S)
            assert popped is not None, "no answer"
            reply = Reply.model_validate_json(Envelope.model_validate_json(popped[1]).reply)
            if reply.phase == "done":
                return reply
    finally:
        client.close()


def refusals(port: int) -> dict[str, float]:
    text = scrape(port)
    reasons = ("unsigned", "bad_signature", "stale", "replayed", "source_not_allowed", "max_cameras")
    return {r: value(text, "vigil_control_refused_total", reason=r) or 0.0 for r in reasons}


def camera_ids(pipeline: Pipeline) -> set[str]:
    return {s.camera_id for s in pipeline.statuses()}


@contextmanager
def control_channel(target: Any, **settings: Any) -> Iterator[str]:
    """A second control server, on a redis-server of its own, in front of ``target``; its URL."""
    with EmbeddedRedis() as server:
        control = ControlServer(server.url, target, ControlConfig(**settings))
        control.start()
        try:
            yield server.url
        finally:
            control.stop()


def process_stats(host: Any) -> ProcessStats:
    stats: ProcessStats = ray.get(host.process_stats.remote(), timeout=60)
    return stats


def stream_field(client: redis.Redis, stream: str, field: bytes) -> list[bytes]:
    """The ``field`` of every entry of ``stream``, oldest first."""
    entries: Any = client.xrange(stream)
    return [fields[field] for _entry_id, fields in entries]


def test_add_and_remove_take_effect_in_the_running_host(running: Running, street_mp4: Path) -> None:
    """An added camera runs in the camera-host process already there (no new host, the same
    process) and a removed one is gone, each answered within COMMAND_REPLY_S; the other camera
    goes on."""
    pipeline = running.pipeline
    host = the_host(pipeline)
    pid = process_stats(host).pid
    cam = CameraConfig(id="runtime", url=str(street_mp4), fps=5, loop=True)
    reply = signed(running.url, Command(op="add", camera=cam.model_dump(mode="json")))
    assert reply.ok, reply.error
    assert state_of(pipeline, "runtime") is not None
    wait_for(lambda: processed(pipeline, "runtime") > 3, 30, "frames from the added camera")
    assert the_host(pipeline) == host and process_stats(host).pid == pid
    base_before = processed(pipeline, "base")
    reply = signed(running.url, Command(op="remove", camera_id="runtime"))
    assert reply.ok, reply.error
    assert reply.cameras[0]["state"] == "stopped"
    assert state_of(pipeline, "runtime") is None
    wait_for(lambda: processed(pipeline, "base") > base_before + 3, 30, "the other camera to go on")


def test_removing_a_camera_ends_its_open_incidents_and_flushes_its_outbox(running: Running, street_mp4: Path) -> None:
    """Once ``remove`` returns, Redis already holds an ``end`` event for every incident of the
    camera that started, and its last status is ``stopped`` (reason ``stopped by request``); its
    final status has nothing left in the spool."""
    pipeline = running.pipeline
    client = redis.Redis.from_url(running.url)

    def events() -> list[Event]:
        return [Event.model_validate_json(raw) for raw in stream_field(client, camera_stream("ending"), b"event")]

    def open_incidents() -> set[str]:
        seen = events()
        return {e.incident_id for e in seen if e.phase == "start"} - {e.incident_id for e in seen if e.phase == "end"}

    pipeline.add_camera(CameraConfig(id="ending", url=str(street_mp4), fps=10, loop=True))
    try:
        wait_for(open_incidents, 60, "an incident of the camera to start")
    finally:
        final = pipeline.remove_camera("ending")
    try:
        assert open_incidents() == set(), "every started incident must have its end event in Redis"
        assert final.events_spooled == 0
        assert final.events_published >= len(events())
        statuses = [StatusEvent.model_validate_json(raw) for raw in stream_field(client, STATUS_STREAM, b"status")]
        mine = [s for s in statuses if s.camera_id == "ending"]
        assert (mine[-1].state, mine[-1].reason) == (CameraState.STOPPED, "stopped by request")
    finally:
        client.close()


def test_a_camera_added_again_while_its_removal_runs(running: Running, street_mp4: Path) -> None:
    """The id stays taken until the camera has stopped: adding it again meanwhile is refused as a
    duplicate, then works. At the host itself (two clients, or the driver and the control channel
    racing), an add that arrives during the stop waits for it: the stop drops the id's metric
    series, and must not take the new camera's with them."""
    pipeline = running.pipeline
    cam = CameraConfig(id="again", url=str(street_mp4), fps=10, loop=True)
    pipeline.add_camera(cam)
    wait_for(lambda: processed(pipeline, "again") >= 3, 30, "frames from the camera")
    removing = threading.Thread(target=pipeline.remove_camera, args=("again",))
    removing.start()
    while True:
        try:
            pipeline.add_camera(cam)
            break
        except CameraError as exc:  # nothing else may surface (no Ray task error from the host)
            assert "already exists" in str(exc)
    removing.join()
    wait_for(lambda: processed(pipeline, "again") >= 3, 30, "frames from the camera added again")

    host = the_host(pipeline)
    stopping = host.remove.remote("again")
    while True:  # at the host, while it stops the camera (a threaded actor may start the add first)
        try:
            ray.get(host.add.remote(cam), timeout=60)
            break
        except ValueError as exc:  # Ray raises the host's error as a subclass of its type
            assert "already running" in str(exc)
    ray.get(stopping, timeout=60)
    try:
        wait_for(lambda: processed(pipeline, "again") >= 5, 30, "frames from the camera added during the stop")
        counted = value(scrape(running.metrics_port), "vigil_frames_processed_total", camera="again")
        assert counted is not None, "the camera added during the stop has no frames-processed series"
        assert counted >= 1
    finally:
        pipeline.remove_camera("again")


def test_cli_cameras_commands(running: Running, street_mp4: Path, tmp_path: Path) -> None:
    def vigil(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*VIGIL, "cameras", *args, "--redis-url", running.url], capture_output=True, text=True, timeout=60, env=env
        )

    added = vigil("add", "cli_cam", f"rtsp://user:hunter2@127.0.0.1:{free_port()}/x", "--fps", "2")
    assert added.returncode == 0, added.stderr
    assert "added cli_cam: rtsp://***@127.0.0.1" in added.stdout
    listed = vigil("list")
    assert listed.returncode == 0
    assert "base: streaming" in listed.stdout and "cli_cam:" in listed.stdout
    assert "hunter2" not in listed.stdout
    duplicate = vigil("add", "cli_cam", str(street_mp4))
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    invalid = vigil("add", "bad", "ftp://cam/x")
    assert invalid.returncode == 2 and "url: unsupported URL scheme 'ftp'" in invalid.stderr
    removed = vigil("remove", "cli_cam")
    assert removed.returncode == 0, removed.stderr
    unknown = vigil("remove", "cli_cam")
    assert unknown.returncode == 1 and "no camera 'cli_cam'" in unknown.stderr
    outside = vigil("add", "etc", "/etc/passwd")
    assert outside.returncode == 1 and "control.allow_local_sources" in outside.stderr
    # Without the key (none in the environment, no key file): list still works, add is refused here.
    keyless = {k: v for k, v in os.environ.items() if k != "VIGIL_CONTROL_KEY"} | {"XDG_CONFIG_HOME": str(tmp_path)}
    assert vigil("list", env=keyless).returncode == 0
    no_key = vigil("add", "nokey", f"rtsp://127.0.0.1:{free_port()}/x", env=keyless)
    assert no_key.returncode == 1 and "no control key" in no_key.stderr
    assert state_of(running.pipeline, "nokey") is None and state_of(running.pipeline, "etc") is None
    for result in (duplicate, invalid, unknown, outside, no_key):
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cameras_command_without_a_running_pipeline() -> None:
    with EmbeddedRedis() as lonely:
        result = subprocess.run(
            [*VIGIL, "cameras", "list", "--redis-url", lonely.url], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1
    assert "no running Vigil answered" in result.stderr


def test_commands_without_the_key_are_refused_counted_and_change_nothing(running: Running) -> None:
    """A Redis writer without the key: a forged signature, no signature, a signed command replayed
    after its time, and a valid command written again are each refused and counted; nothing they
    ask for happens, and none of them reaches the audit stream."""
    pipeline, url = running.pipeline, running.url
    before, cameras_before = refusals(running.metrics_port), camera_ids(pipeline)
    forged = Command(op="add", camera=rtsp_camera("forged"))
    unsigned = Command(op="remove", camera_id="base")
    stale = Command(op="remove", camera_id="base", sent_at=time.time() - 4 * ControlConfig().max_age_s)
    for command, sig, answer in (
        (forged, sign_command(b"not the key" * 4, forged.model_dump_json().encode()), "signature does not match"),
        (unsigned, None, "unsigned command"),
        (stale, sign_command(key(), stale.model_dump_json().encode()), "older than control.max_age_s"),
    ):
        write_raw(url, command, sig)
        reply = final_reply(url, command.request_id)
        assert (reply.ok, reply.exit_code) == (False, 1) and answer in reply.error
    # A valid add, then the very same entry written again once the camera is gone.
    valid = Command(op="add", camera=rtsp_camera("replayed", auth="user:hunter2@"))
    valid_sig = sign_command(key(), valid.model_dump_json().encode())
    write_raw(url, valid, valid_sig)
    assert final_reply(url, valid.request_id).ok
    assert signed(url, Command(op="remove", camera_id="replayed")).ok
    write_raw(url, valid, valid_sig)
    wait_for(lambda: refusals(running.metrics_port)["replayed"] == before["replayed"] + 1, 30, "the replay refused")
    after = refusals(running.metrics_port)
    assert {r: after[r] - before[r] for r in ("unsigned", "bad_signature", "stale", "replayed")} == {
        "unsigned": 1,
        "bad_signature": 1,
        "stale": 1,
        "replayed": 1,
    }
    assert camera_ids(pipeline) == cameras_before
    assert state_of(pipeline, "base") is CameraState.STREAMING
    client = redis.Redis.from_url(url)
    try:
        # The replay is not answered: its reply list belongs to the client of the original command.
        # (Commands are answered in order: once a later one is, the replay's turn has passed.)
        assert signed(url, Command(op="list")).ok
        assert client.llen(REPLY_PREFIX + valid.request_id) == 0
        audit = [{k.decode(): v.decode() for k, v in fields.items()} for _id, fields in client.xrange(AUDIT_STREAM)]
        # Read commands are deleted: the added camera's password does not stay in the command stream.
        left = [v for _id, fields in client.xrange(CONTROL_STREAM) for v in fields.values()]
    finally:
        client.close()
    assert not {forged.request_id, unsigned.request_id, stale.request_id} & {a["request_id"] for a in audit}
    [record] = [a for a in audit if a["request_id"] == valid.request_id]
    assert (record["op"], record["camera"], record["signed"], record["outcome"]) == ("add", "replayed", "yes", "ok")
    assert record["url"].startswith("rtsp://***@127.0.0.1:")
    assert not any("hunter2" in v for a in audit for v in a.values())
    assert not any(b"hunter2" in v for v in left)


def test_local_sources_outside_the_allowed_folders_get_one_answer(
    running: Running, video_dir: Path, tmp_path: Path
) -> None:
    """Whether a path outside control.allow_local_sources exists, is a video or not, the reply is
    the same, with the key or without it; none of them starts a camera."""
    existing = tmp_path / "real.mp4"
    existing.write_bytes(b"not a video")
    urls = [
        "file:///etc/passwd",
        "file:///etc/no-such-file",
        "/etc/passwd",
        "/etc/no-such-file",
        str(existing),
        str(tmp_path / "missing.mp4"),
        f"{video_dir}/../{tmp_path.name}/real.mp4",
    ]
    before = refusals(running.metrics_port)["source_not_allowed"]
    answers = set()
    for i, url in enumerate(urls):
        reply = signed(running.url, Command(op="add", camera={"id": f"local{i}", "url": url}))
        answers.add((reply.ok, reply.exit_code, reply.error))
    assert len(answers) == 1, answers
    [(ok, exit_code, error)] = answers
    assert (ok, exit_code) == (False, 1) and "control.allow_local_sources" in error
    unsigned = set()
    for i, url in enumerate(urls):
        command = Command(op="add", camera={"id": f"local{i}", "url": url})
        write_raw(running.url, command, None)
        unsigned.add(final_reply(running.url, command.request_id).error)
    assert len(unsigned) == 1
    assert refusals(running.metrics_port)["source_not_allowed"] == before + len(urls)
    assert not {f"local{i}" for i in range(len(urls))} & camera_ids(running.pipeline)


def test_cameras_beyond_max_cameras_are_refused(running: Running) -> None:
    pipeline = running.pipeline
    cap = len(pipeline.statuses()) + 1
    with control_channel(pipeline, max_cameras=cap) as url:
        assert signed(url, Command(op="add", camera=rtsp_camera("capped1"))).ok
        try:
            reply = signed(url, Command(op="add", camera=rtsp_camera("capped2")))
            assert (reply.ok, reply.exit_code) == (False, 1)
            assert reply.error == f"refused: the pipeline runs {cap} cameras and control.max_cameras is {cap}"
            assert state_of(pipeline, "capped2") is None
        finally:
            pipeline.remove_camera("capped1")


class Failing:
    """The running pipeline, except that adding camera ``boom`` raises what a lost Ray call does."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def statuses(self, timeout_s: float = 2.0) -> list[Any]:
        return self.pipeline.statuses(timeout_s)

    def add_camera(self, cam: CameraConfig) -> None:
        if cam.id == "boom":
            raise ray.exceptions.GetTimeoutError("Get timed out opening rtsp://admin:hunter2@10.0.0.5/s")
        self.pipeline.add_camera(cam)

    def remove_camera(self, camera_id: str) -> Any:
        return self.pipeline.remove_camera(camera_id)


def test_an_unexpected_error_is_answered_and_the_channel_keeps_answering(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="pipeline.runtime.control"),
        control_channel(Failing(running.pipeline)) as url,
    ):
        for _ in range(2):
            reply = signed(url, Command(op="add", camera=rtsp_camera("boom")))
            assert (reply.ok, reply.exit_code) == (False, 1)
            assert reply.error == "add failed: GetTimeoutError: Get timed out opening rtsp://***@10.0.0.5/s"
            listed = signed(url, Command(op="list"))
            assert listed.ok and "base" in {c["camera_id"] for c in listed.cameras}
    logged = [r for r in caplog.records if "GetTimeoutError" in r.getMessage()]
    assert len(logged) == 2 and all(r.exc_info is None and "hunter2" not in r.getMessage() for r in logged)


def test_the_control_channel_started_while_redis_is_down_answers_once_it_is_up(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    """start() returns although Redis does not answer; the thread retries with one log line for
    the outage, and answers a command sent as soon as Redis is up."""
    port = free_port()
    control = ControlServer(f"redis://127.0.0.1:{port}/0", running.pipeline)
    with caplog.at_level(logging.WARNING, logger="pipeline.runtime.control"):
        control.start()
        time.sleep(0.9)  # the thread retries after 0.2 s, 0.4 s, ... meanwhile
        with EmbeddedRedis(port=port) as server:
            try:
                reply = signed(server.url, Command(op="list"))
                assert reply.ok and "base" in {c["camera_id"] for c in reply.cameras}
            finally:
                control.stop()  # before this Redis stops: that would be an outage of its own
    outage = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(outage) == 1, [r.getMessage() for r in caplog.records]


# Longer than the 5 s `vigil cameras add` waits for a first answer: an add that needs a new camera
# host (models loading) takes this long or more.
SLOW_ADD_S = 7.0


class Slow:
    """The running pipeline, adding cameras as slowly as a new camera host would."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def statuses(self, timeout_s: float = 2.0) -> list[Any]:
        return self.pipeline.statuses(timeout_s)

    def add_camera(self, cam: CameraConfig) -> None:
        threading.Event().wait(SLOW_ADD_S)
        self.pipeline.add_camera(cam)

    def remove_camera(self, camera_id: str) -> Any:
        return self.pipeline.remove_camera(camera_id)


def test_a_slow_add_is_reported_added_once_done(running: Running) -> None:
    with control_channel(Slow(running.pipeline)) as url:
        started = time.monotonic()
        added = subprocess.run(
            [*VIGIL, "cameras", "add", "slow", f"rtsp://127.0.0.1:{free_port()}/x", "--redis-url", url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        try:
            assert added.returncode == 0, added.stderr
            assert "added slow: rtsp://127.0.0.1:" in added.stdout
            assert time.monotonic() - started >= SLOW_ADD_S
            assert state_of(running.pipeline, "slow") is not None
        finally:
            running.pipeline.remove_camera("slow")


def test_a_reply_without_the_key_cannot_report_success() -> None:
    """A Redis writer pushing a success (unsigned, or signed with another key) onto a client's reply
    list is not believed: with no real answer the client says nobody answered."""
    command = Command(op="add", camera=rtsp_camera("spoofed"))
    fake = Reply(ok=True).model_dump_json()
    with EmbeddedRedis() as lonely:
        client = redis.Redis.from_url(lonely.url)
        client.rpush(
            REPLY_PREFIX + command.request_id,
            Envelope(reply=Reply(ok=True, phase="accepted").model_dump_json()).model_dump_json(),
            Envelope(reply=fake).model_dump_json(),
            Envelope(reply=fake, sig="0" * 64).model_dump_json(),
        )
        client.close()
        with pytest.raises(TimeoutError) as info:
            send_command(lonely.url, command, 2.0, key=key())
    assert not isinstance(info.value, NotFinished)
    assert "no running Vigil answered" in str(info.value)


def ray_workers() -> int:
    """Ray worker processes of this test's own Ray (started by this process): other Ray sessions on
    the machine do not count."""
    return sum(1 for p in psutil.Process().children(recursive=True) if p.name().startswith("ray::"))


# The host's allocator keeps up to workers.common.TRIM_THRESHOLD_BYTES (128 MiB) of freed heap
# before it hands memory back: resident memory climbs over the first ~25 cycles, then stays flat.
WARM_CYCLES, MEASURED_CYCLES = 30, 30


@pytest.mark.timeout(420)  # ~1.2 s a cycle on a loaded 2-core machine (0.15 s on an idle one), with margin
def test_add_remove_cycles_leak_nothing(running: Running, street_mp4: Path) -> None:
    """60 cycles of add -> first processed frame -> remove, measured between cycle 30 and cycle 60.
    Tolerances, each below what one leaked item per cycle would add over the 30 measured cycles:
    Ray worker processes exactly flat (a leaked actor: +30); threads within 8 (the host's Ray
    thread pool grows lazily up to max_concurrency=8; one leaked thread: +30); open fds within 2
    (Ray's own connections come and go; one leaked fd: +30); resident memory within 20 MB (a
    warmed-up host grows ~5 MB in 30 cycles; 1 MB kept per cycle: +30 MB)."""
    pipeline = running.pipeline
    host = the_host(pipeline)
    cam = CameraConfig(id="cycle", url=str(street_mp4), fps=10, loop=True)

    def cycle() -> None:
        pipeline.add_camera(cam)
        wait_for(lambda: processed(pipeline, "cycle") >= 1, 30, "a processed frame", poll_s=0.02)
        assert pipeline.remove_camera("cycle").state is CameraState.STOPPED

    for _ in range(WARM_CYCLES):
        cycle()
    before, workers_before = process_stats(host), ray_workers()
    for _ in range(MEASURED_CYCLES):
        cycle()
    after, workers_after = process_stats(host), ray_workers()
    assert the_host(pipeline) == host, "cameras must reuse the existing host"
    assert after.pid == before.pid
    assert workers_after == workers_before
    assert after.threads - before.threads <= 8, (before, after)
    assert abs(after.open_fds - before.open_fds) <= 2, (before, after)
    assert after.rss_bytes - before.rss_bytes < 20 * 2**20, (before, after)
    series = {dict(labels).get("camera") for _name, labels in samples(scrape(running.metrics_port))}
    assert "cycle" not in series, "a removed camera's series must disappear"
    assert "base" in series


def test_motion_gating_skips_still_frames_and_keeps_windows_going(running: Running, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    still = background("corridor", (640, 360), night=False)
    frames = [np.clip(still + rng.normal(0, 3, still.shape), 0, 255).astype(np.uint8) for _ in range(30)]
    video = write_mp4(tmp_path / "still.mp4", frames, fps=10)
    pipeline = running.pipeline
    cam = CameraConfig(id="still", url=str(video), fps=10, loop=True, motion=MotionConfig(enabled=True))
    pipeline.add_camera(cam)
    try:
        wait_for(
            lambda: next(s for s in pipeline.statuses() if s.camera_id == "still").frames_dropped >= 30,
            60,
            "still frames to be skipped",
        )
        status = next(s for s in pipeline.statuses() if s.camera_id == "still")
        assert status.frames_processed <= 2, "only the first frame(s) of a still scene go through the models"
        assert status.clip is not None, "the clip window must keep advancing on skipped frames"
        skipped = value(
            scrape(running.metrics_port), "vigil_frames_dropped_total", camera="still", reason="motion_skip"
        )
        assert skipped is not None and skipped >= 1
    finally:
        pipeline.remove_camera("still")


def test_cli_zones_and_snapshot(running: Running, tmp_path: Path) -> None:
    """`vigil zones set` changes a running camera's zones without a restart (the camera applies them
    within a second; 5 s is the margin for a loaded machine) and `vigil zones list` reads them back,
    as the Python client does; invalid zones exit 2 and change nothing; `vigil cameras snapshot`
    writes the latest frame at its decoded size. Reads need no key, changes do."""

    def vigil(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Any:
        return subprocess.run(
            [*VIGIL, *args, "--redis-url", running.url],
            capture_output=True,
            text=True,
            timeout=60,
            input=stdin,
            env=env,
        )

    def summary() -> str | None:
        return next(s.analytics for s in running.pipeline.statuses() if s.camera_id == "base")

    pid = process_stats(the_host(running.pipeline)).pid
    zones = tmp_path / "zones.yaml"
    zones.write_text(
        "zones:\n  - {name: street, polygon: [[0, 0.4], [1, 0.4], [1, 1], [0, 1]]}\n"
        "lines:\n  - {name: middle, points: [[0.5, 0], [0.5, 1]]}\n"
    )
    keyless = {k: v for k, v in os.environ.items() if k != "VIGIL_CONTROL_KEY"} | {"XDG_CONFIG_HOME": str(tmp_path)}
    try:
        done = vigil("zones", "set", "base", str(zones))
        assert done.returncode == 0, done.stderr
        assert "base: 1 zone (street), 1 line (middle)" in done.stdout
        wait_for(lambda: summary() is not None, 5, "the zones applied")
        listed = vigil("zones", "list", "base", env=keyless)
        assert listed.returncode == 0, listed.stderr
        expected = load_analytics(zones)
        assert AnalyticsConfig.model_validate(yaml.safe_load(listed.stdout)) == expected
        assert ControlClient(running.url).zones("base") == expected

        invalid = vigil("zones", "set", "base", "-", stdin="zones: [{name: street, polygon: [[0, 0], [1, 0]]}]\n")
        outside = vigil(
            "zones",
            "set",
            "base",
            "-",
            stdin="coordinates: pixels\nzones: [{name: z, polygon: [[0, 0], [900, 0], [0, 300]]}]\n",
        )
        no_key = vigil("zones", "remove", "base", env=keyless)
        assert invalid.returncode == 2 and "<stdin>: analytics.zones[0].polygon (line 1):" in invalid.stderr
        assert outside.returncode == 2 and "point [900, 0] is outside the 640x360 frame" in outside.stderr
        assert no_key.returncode == 1 and "no control key" in no_key.stderr
        for result in (invalid, outside, no_key):
            assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert running.pipeline.camera_analytics("base") == expected, "refused changes change nothing"

        frame = tmp_path / "frame.jpg"
        shot = vigil("cameras", "snapshot", "base", "-o", str(frame), env=keyless)
        assert shot.returncode == 0, shot.stderr
        image = cv2.imread(str(frame))
        assert image is not None and image.shape[:2] == (360, 640)
        assert f"{frame}: 640x360 pixels" in shot.stdout and "x / 640 and y / 360" in shot.stdout

        removed = vigil("zones", "remove", "base")
        assert removed.returncode == 0, removed.stderr
        assert ControlClient(running.url).zones("base") is None
        wait_for(lambda: summary() is None, 5, "the zones removed")
    finally:
        running.pipeline.set_camera_analytics("base", None)
    assert process_stats(the_host(running.pipeline)).pid == pid, "nothing restarted"
