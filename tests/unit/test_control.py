"""The control channel's rules without Redis: which commands pass the key check, the control key's
files, the source policy for cameras added at run time, and the handler's answers (a fake pipeline)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from pipeline.core.config import CameraConfig, ControlConfig, ZeroShotConfig, parse_config
from pipeline.core.config.analytics import AnalyticsConfig
from pipeline.core.config.loader import validate_prompts
from pipeline.core.messages import CameraState, CameraStatus
from pipeline.core.metrics import VIGIL_REGISTRY
from pipeline.events.snapshots import FrameSnapshot
from pipeline.runtime import driver, hosts
from pipeline.runtime.control import (
    AUDIT_STREAM,
    REPLY_PREFIX,
    Command,
    ControlServer,
    Envelope,
    Reply,
    audit_fields,
)
from pipeline.runtime.control_auth import (
    Authenticator,
    ControlKeyError,
    Refusal,
    client_key,
    default_key_path,
    server_key,
    sign_command,
    sign_reply,
)
from pipeline.runtime.control_policy import allowed_folders, source_allowed
from pipeline.runtime.hosts import CameraError, HostPool
from pipeline.runtime.placement import HostPlan

KEY = b"k" * 64
OTHER = b"o" * 64
MAX_AGE_S = 30.0
NOW = 1_000_000.0


def body(op: str = "add", request_id: str = "a" * 32, sent_at: float = NOW, url: str = "rtsp://h/s") -> bytes:
    camera = {"id": "cam", "url": url} if op == "add" else None
    return Command(op=op, request_id=request_id, sent_at=sent_at, camera=camera).model_dump_json().encode()  # type: ignore[arg-type]


# --- the key check --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "signed_with", "sent_at", "now", "expected"),
    [
        ("add", KEY, NOW, NOW, None),
        ("remove", KEY, NOW, NOW + MAX_AGE_S, None),  # exactly max_age_s old: still fresh
        ("list", None, NOW, NOW + 3600, None),  # list is open: unsigned, and never stale
        ("list", OTHER, NOW, NOW, Refusal.BAD_SIGNATURE),  # a signed list is checked like any command
        ("add", None, NOW, NOW, Refusal.UNSIGNED),
        ("remove", None, NOW, NOW, Refusal.UNSIGNED),
        ("add", OTHER, NOW, NOW, Refusal.BAD_SIGNATURE),
        ("add", KEY, NOW, NOW + MAX_AGE_S + 0.5, Refusal.STALE),
        ("add", KEY, NOW, NOW - MAX_AGE_S - 0.5, Refusal.STALE),  # dated in the future
    ],
)
def test_the_key_check(op: str, signed_with: bytes | None, sent_at: float, now: float, expected: Refusal) -> None:
    raw = body(op, sent_at=sent_at)
    sig = sign_command(signed_with, raw) if signed_with is not None else None
    auth = Authenticator(KEY, MAX_AGE_S)
    assert auth.check(raw, sig, op, "a" * 32, sent_at, now) == expected


def test_a_changed_body_fails_its_signature() -> None:
    """The signature covers the whole body: another URL, request id or time sent under the same
    signature is refused."""
    sig = sign_command(KEY, body())
    auth = Authenticator(KEY, MAX_AGE_S)
    for changed in (body(url="file:///etc/passwd"), body(request_id="b" * 32), body(sent_at=NOW + 1)):
        assert auth.check(changed, sig, "add", "b" * 32, NOW + 1, NOW) is Refusal.BAD_SIGNATURE


def test_a_request_id_is_accepted_once_within_the_window() -> None:
    auth = Authenticator(KEY, MAX_AGE_S)
    raw = body()
    sig = sign_command(KEY, raw)
    assert auth.check(raw, sig, "add", "a" * 32, NOW, NOW) is None
    assert auth.check(raw, sig, "add", "a" * 32, NOW, NOW + 1) is Refusal.REPLAYED
    assert auth.check(raw, sig, "add", "a" * 32, NOW, NOW + MAX_AGE_S) is Refusal.REPLAYED
    assert auth.check(raw, sig, "add", "a" * 32, NOW, NOW + MAX_AGE_S + 1) is Refusal.STALE


def test_forged_commands_do_not_enter_the_replay_window() -> None:
    """Someone without the key sending a request id first does not get the real command refused."""
    auth = Authenticator(KEY, MAX_AGE_S)
    raw = body()
    assert auth.check(raw, sign_command(OTHER, raw), "add", "a" * 32, NOW, NOW) is Refusal.BAD_SIGNATURE
    assert auth.check(raw, sign_command(KEY, raw), "add", "a" * 32, NOW, NOW) is None


def test_reply_signatures_are_bound_to_their_command() -> None:
    reply = b'{"ok": true}'
    one, other = sign_command(KEY, body()), sign_command(KEY, body(request_id="b" * 32))
    assert sign_reply(KEY, one, reply) != sign_reply(KEY, other, reply)
    assert sign_reply(KEY, one, reply) != sign_reply(OTHER, one, reply)


# --- the key --------------------------------------------------------------------------------------


def test_the_pipeline_makes_a_private_key_file_that_the_cli_finds(tmp_path: Path) -> None:
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    path = default_key_path(environ)
    assert path == tmp_path / "config" / "vigil" / "control.key"
    assert client_key(None, environ) is None  # nothing yet: the client makes no key
    key = server_key(None, environ)
    assert len(key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert server_key(None, environ) == key, "a restart keeps the key"
    assert client_key(None, environ) == key


def test_key_precedence(tmp_path: Path) -> None:
    named = tmp_path / "named.key"
    from_file = server_key(named, {})
    assert stat.S_IMODE(named.stat().st_mode) == 0o600
    assert client_key(named, {}) == from_file
    env_key = "e" * 40
    assert server_key(named, {"VIGIL_CONTROL_KEY": env_key}) == env_key.encode()
    assert client_key(named, {"VIGIL_CONTROL_KEY": env_key}) == env_key.encode()


@pytest.mark.parametrize(
    ("mode", "content", "message"),
    [
        (0o644, "s" * 64, "other users may access it (mode 0644); chmod 600 it"),
        (0o640, "s" * 64, "(mode 0640)"),
        (0o600, "short-secret", "at least 32 characters"),
    ],
)
def test_a_key_file_that_cannot_be_trusted_is_one_clear_error(
    tmp_path: Path, mode: int, content: str, message: str
) -> None:
    path = tmp_path / "control.key"
    path.write_text(content)
    os.chmod(path, mode)
    for load in (server_key, client_key):
        with pytest.raises(ControlKeyError) as info:
            load(path, {})
        assert message in str(info.value) and str(path) in str(info.value)
        assert content not in str(info.value)


def test_a_short_environment_key_is_refused() -> None:
    with pytest.raises(ControlKeyError, match="VIGIL_CONTROL_KEY: the control key must be at least 32"):
        server_key(None, {"VIGIL_CONTROL_KEY": "secret"})


def test_a_named_key_file_the_client_lacks_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ControlKeyError, match="not found"):
        client_key(tmp_path / "missing.key", {})


# --- the source policy ----------------------------------------------------------------------------


@pytest.fixture()
def allowed(tmp_path: Path) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "lobby.mp4").write_bytes(b"")
    (folder / "escape").symlink_to("/etc")
    return folder


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://user:pw@10.0.0.7/stream", True),
        ("rtsps://cam/stream", True),
        ("http://127.0.0.1:8080/mjpeg", True),
        ("https://cam/x.m3u8", True),
        ("{allowed}/lobby.mp4", True),
        ("{allowed}/missing.mp4", True),  # inside the folder: the camera itself says it is missing
        ("file://{allowed}/lobby.mp4", True),
        ("{allowed}", True),
        ("/etc/passwd", False),
        ("/etc/no-such-file", False),
        ("file:///etc/passwd", False),
        ("file:///etc/no-such-file", False),
        ("FILE:///etc/passwd", False),
        ("file://etc/passwd", False),  # relative once file:// is dropped
        ("{allowed}/../videos/lobby.mp4", False),  # ".." is refused outright
        ("{allowed}/../../../etc/passwd", False),
        ("{allowed}/escape/passwd", False),  # a link out of the folder
        ("{allowed}-evil/x.mp4", False),  # a sibling whose name starts the same
        ("relative/x.mp4", False),
        ("0", False),  # a webcam index is /dev/video0
        ("/dev/video0", False),
    ],
)
def test_source_policy(allowed: Path, url: str, expected: bool) -> None:
    assert source_allowed(url.format(allowed=allowed), allowed_folders([allowed])) is expected


def test_webcams_are_local_devices_allowed_by_dev() -> None:
    folders = allowed_folders([Path("/dev")])
    assert source_allowed("0", folders) and source_allowed("/dev/video2", folders)
    assert not source_allowed("/dev/video0/../../etc/passwd", folders)


def test_nothing_local_is_allowed_by_default(allowed: Path) -> None:
    assert not source_allowed(str(allowed / "lobby.mp4"), allowed_folders(ControlConfig().allow_local_sources))
    assert source_allowed("rtsp://h/s", ())


# --- the handler ----------------------------------------------------------------------------------


class FakePipeline:
    """Cameras by id; ``fail_with`` makes add_camera raise it."""

    def __init__(self, ids: list[str], fail_with: Exception | None = None) -> None:
        self.ids = list(ids)
        self.fail_with = fail_with

    def statuses(self, timeout_s: float = 2.0) -> list[CameraStatus]:
        return [
            CameraStatus(i, "rtsp://h/s", CameraState.STREAMING, "", 0, 0, 0, 0, 0, 0.0, 0.0, None) for i in self.ids
        ]

    def add_camera(self, cam: CameraConfig) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.ids.append(cam.id)

    def remove_camera(self, camera_id: str) -> CameraStatus:
        raise NotImplementedError


def refused(reason: Refusal) -> float:
    return VIGIL_REGISTRY.get_sample_value("vigil_control_refused_total", {"reason": reason.value}) or 0.0


def server(target: FakePipeline, **settings: object) -> ControlServer:
    # Not started: handle() needs no Redis.
    return ControlServer("redis://127.0.0.1:1/0", target, ControlConfig(**settings))  # type: ignore[arg-type]


def add(camera_id: str, url: str = "rtsp://h/s") -> Command:
    return Command(op="add", camera={"id": camera_id, "url": url})


def test_an_unexpected_error_in_a_command_is_answered_redacted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    target = FakePipeline([], fail_with=RuntimeError("host lost\nwhile opening rtsp://admin:hunter2@10.0.0.5/s"))
    with caplog.at_level(logging.WARNING, logger="pipeline.runtime.control"):
        reply = server(target).handle(add("cam"))
    assert (reply.ok, reply.exit_code) == (False, 1)
    assert reply.error == "add failed: RuntimeError: while opening rtsp://***@10.0.0.5/s"
    [record] = caplog.records
    assert "RuntimeError" in record.getMessage() and "hunter2" not in record.getMessage()
    assert record.exc_info is None, "no traceback"


def test_cameras_beyond_max_cameras_are_refused_and_counted() -> None:
    target = FakePipeline(["a", "b"])
    control = server(target, max_cameras=3)
    assert control.handle(add("c")).ok
    before = refused(Refusal.MAX_CAMERAS)
    reply = control.handle(add("d"))
    assert (reply.ok, reply.exit_code) == (False, 1)
    assert reply.error == "refused: the pipeline runs 3 cameras and control.max_cameras is 3"
    assert target.ids == ["a", "b", "c"]
    assert refused(Refusal.MAX_CAMERAS) == before + 1


def test_a_local_source_outside_the_allowed_folders_is_refused_and_counted(allowed: Path) -> None:
    target = FakePipeline([])
    control = server(target, allow_local_sources=[allowed])
    before = refused(Refusal.SOURCE_NOT_ALLOWED)
    replies = {control.handle(add(f"c{i}", url)).error for i, url in enumerate(["/etc/passwd", "/etc/nope.mp4"])}
    assert len(replies) == 1 and "control.allow_local_sources" in replies.pop()
    assert refused(Refusal.SOURCE_NOT_ALLOWED) == before + 2
    assert control.handle(add("inside", str(allowed / "lobby.mp4"))).ok
    assert target.ids == ["inside"]


# --- zones and snapshots --------------------------------------------------------------------------

ZONES = {
    "zones": [{"name": "door", "polygon": [[0.1, 0.5], [0.4, 0.5], [0.4, 1.0]]}],
    "lines": [{"name": "kerb", "points": [[0.0, 0.8], [1.0, 0.8]]}],
}


class Zoned(FakePipeline):
    """Cameras with an analytics section each (None: none) and a frame to show."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(ids)
        self.analytics: dict[str, AnalyticsConfig | None] = dict.fromkeys(ids)

    def camera_analytics(self, camera_id: str) -> AnalyticsConfig | None:
        if camera_id not in self.analytics:
            raise CameraError(f"no camera {camera_id!r}")
        return self.analytics[camera_id]

    def set_camera_analytics(self, camera_id: str, cfg: AnalyticsConfig | None) -> None:
        self.camera_analytics(camera_id)
        self.analytics[camera_id] = cfg

    def camera_snapshot(self, camera_id: str, timeout_s: float = 3.0) -> FrameSnapshot:
        self.camera_analytics(camera_id)
        return FrameSnapshot(b"\xff\xd8jpeg", 640, 360, 7, NOW)


class FakeRedis:
    """What the control server writes: reply lists and audit records."""

    def __init__(self) -> None:
        self.replies: dict[str, list[Reply]] = {}
        self.audit: list[dict[str, str]] = []

    def pipeline(self) -> FakeRedis:
        return self

    def rpush(self, key: str, raw: str) -> None:
        envelope = Envelope.model_validate_json(raw)
        self.replies.setdefault(key.removeprefix(REPLY_PREFIX), []).append(Reply.model_validate_json(envelope.reply))

    def expire(self, key: str, ttl: int) -> None:
        pass

    def execute(self) -> None:
        pass

    def xadd(self, stream: str, fields: dict[str, str], maxlen: int) -> None:
        assert stream == AUDIT_STREAM
        self.audit.append(fields)


def deliver(control: ControlServer, command: Command, key: bytes | None) -> list[Reply]:
    """``command`` read from the stream, signed with ``key`` (None: unsigned), and applied where it was
    queued, as the server's two threads would; every answer it got."""
    fake = FakeRedis()
    control._client = fake  # type: ignore[assignment]
    raw = command.model_dump_json().encode()
    fields = {b"command": raw} if key is None else {b"command": raw, b"sig": sign_command(key, raw).encode()}
    control._dispatch(fields)
    while not control._pending.empty():
        item = control._pending.get_nowait()
        assert item is not None
        control._finish(item, control.handle(item.command))
    return fake.replies.get(command.request_id, [])


@pytest.fixture()
def control_key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv("VIGIL_CONTROL_KEY", KEY.decode())
    return KEY


def test_zones_set_needs_the_key_and_zone_reads_do_not(control_key: bytes) -> None:
    target = Zoned(["cam"])
    control = server(target)
    before = refused(Refusal.UNSIGNED)
    [answer] = deliver(control, Command(op="zones_set", camera_id="cam", analytics=ZONES), None)
    assert (answer.ok, answer.exit_code) == (False, 1) and "prompts_set need the control key" in answer.error
    assert refused(Refusal.UNSIGNED) == before + 1
    assert target.analytics["cam"] is None, "an unsigned zones_set changes nothing"
    assert deliver(control, Command(op="zones_set", camera_id="cam", analytics=ZONES), OTHER)[0].error == (
        "refused: the command's signature does not match the pipeline's control key"
    )
    accepted, done = deliver(control, Command(op="zones_set", camera_id="cam", analytics=ZONES), control_key)
    assert (accepted.phase, done.phase, done.ok) == ("accepted", "done", True)
    assert target.analytics["cam"] == AnalyticsConfig.model_validate(ZONES)
    for op in ("zones_get", "snapshot"):  # reads: answered at once, signed or not
        [read] = deliver(control, Command(op=op, camera_id="cam"), None)  # type: ignore[arg-type]
        assert read.ok and read.phase == "done", read.error
    [signed_read] = deliver(control, Command(op="zones_get", camera_id="cam"), control_key)
    assert signed_read.analytics == AnalyticsConfig.model_validate(ZONES).model_dump(mode="json")


@pytest.mark.parametrize(
    ("analytics", "error"),
    [
        ({"zones": [{"name": "door", "polygon": [[0, 0], [1, 0]]}]}, "analytics.zones[0].polygon: List should"),
        ({"zones": [{"name": "door", "polygn": [[0, 0], [1, 0], [1, 1]]}]}, "did you mean 'polygon'?"),
        ({"lines": [{"name": "kerb", "points": [[0, 0.5], [1.5, 0.5]]}]}, "analytics: lines.kerb.points: normalized"),
        ({"speed": {"limit": 30, "unit": "km/h"}}, "analytics: speed.unit km/h: needs a calibration"),
        ({"zone": []}, "analytics.zone: unknown key; did you mean 'zones'?"),
    ],
)
def test_zones_set_is_validated_like_the_config(analytics: dict[str, object], error: str) -> None:
    target = Zoned(["cam"])
    reply = server(target).handle(Command(op="zones_set", camera_id="cam", analytics=analytics))
    assert (reply.ok, reply.exit_code) == (False, 2)
    assert error in reply.error and "\n" not in reply.error
    assert target.analytics["cam"] is None


def test_zone_commands_name_an_unknown_camera() -> None:
    control = server(Zoned(["cam"]))
    for command in (
        Command(op="zones_get", camera_id="nope"),
        Command(op="zones_set", camera_id="nope", analytics=ZONES),
        Command(op="snapshot", camera_id="nope"),
    ):
        reply = control.handle(command)
        assert (reply.ok, reply.exit_code, reply.error) == (False, 1, "no camera 'nope'")


def test_zones_set_null_removes_the_section_and_zones_get_answers_it() -> None:
    target = Zoned(["cam"])
    control = server(target)
    set_reply = control.handle(Command(op="zones_set", camera_id="cam", analytics=ZONES))
    assert set_reply.ok and set_reply.analytics is not None
    got = control.handle(Command(op="zones_get", camera_id="cam")).analytics
    assert got is not None and AnalyticsConfig.model_validate(got) == AnalyticsConfig.model_validate(ZONES)
    assert control.handle(Command(op="zones_set", camera_id="cam")).ok
    assert target.analytics["cam"] is None
    assert control.handle(Command(op="zones_get", camera_id="cam")).analytics is None


def test_a_snapshot_comes_back_as_its_jpeg_and_frame_size() -> None:
    reply = server(Zoned(["cam"])).handle(Command(op="snapshot", camera_id="cam"))
    assert reply.ok and reply.snapshot is not None
    assert (reply.snapshot.jpeg, reply.snapshot.width, reply.snapshot.height) == (b"\xff\xd8jpeg", 640, 360)
    assert Reply.model_validate_json(reply.model_dump_json()) == reply


def test_zones_set_is_audited_with_the_zones_it_set(control_key: bytes) -> None:
    control = server(Zoned(["cam"]))
    fake = FakeRedis()
    command = Command(op="zones_set", camera_id="cam", analytics=ZONES)
    control._client = fake  # type: ignore[assignment]
    raw = command.model_dump_json().encode()
    control._dispatch({b"command": raw, b"sig": sign_command(control_key, raw).encode()})
    item = control._pending.get_nowait()
    assert item is not None
    control._finish(item, control.handle(item.command))
    removal = audit_fields(Command(op="zones_set", camera_id="cam"), True, Reply(ok=True))
    [record] = fake.audit
    assert {k: record[k] for k in ("op", "camera", "signed", "outcome", "analytics")} == {
        "op": "zones_set",
        "camera": "cam",
        "signed": "yes",
        "outcome": "ok",
        "analytics": "zones door; lines kerb",
    }
    assert removal["analytics"] == "none"


# --- the driver's record of a camera's zones -------------------------------------------------------


class FakeHost:
    """A camera host: cameras by id; ``during_add`` runs while an add is under way (before the camera is there)."""

    def __init__(self, frame_wh: tuple[int, int] | None = None) -> None:
        self.cameras: dict[str, CameraConfig] = {}
        self.applied: dict[str, AnalyticsConfig | None] = {}
        self.frame_wh = frame_wh
        self.during_add: Callable[[], None] | None = None
        self.add = Remote(self._add)
        self.set_analytics = Remote(self._set_analytics)

    def _add(self, cam: CameraConfig, epoch: str) -> None:
        if self.during_add is not None:
            self.during_add()
        self.cameras[cam.id] = cam
        self.applied[cam.id] = cam.analytics

    def _set_analytics(self, camera_id: str, cfg: AnalyticsConfig | None) -> str | None:
        if camera_id not in self.cameras:
            raise KeyError(camera_id)
        if cfg is not None and self.frame_wh is not None and (problem := cfg.outside_frame(*self.frame_wh)):
            return problem
        self.applied[camera_id] = cfg
        return None


class Remote:
    """``actor.method.remote(...)``: the call, run when ``ray.get`` (patched) takes it."""

    def __init__(self, method: Callable[..., Any]) -> None:
        self.method = method

    def remote(self, *args: Any) -> Callable[[], Any]:
        return lambda: self.method(*args)


@pytest.fixture()
def pool(monkeypatch: pytest.MonkeyPatch) -> HostPool:
    """A pool without Ray: hosts are FakeHosts, calls run when ray.get takes them."""
    monkeypatch.setattr(hosts.ray, "get", lambda call, timeout=None: call())
    made = HostPool(cast(Any, None), cast(Any, None), cameras_per_host=16)

    def new_host(group: frozenset[tuple[str, object]], slot: int) -> Any:
        host = hosts._Host(group, FakeHost(), slot)
        made._hosts.append(host)
        return host

    monkeypatch.setattr(made, "_new_host", new_host)
    monkeypatch.setattr(made, "_settings", SimpleNamespace(run_id="run"))
    return made


def lost_host(pool: HostPool) -> None:
    """The supervisor's work once the camera's host died: a host in its place, the cameras started on it."""
    [dead] = pool._hosts
    pool._replace(dead, RuntimeError("died"), hosts._Supervision(lambda cam, why: None, lambda cam: None))


def test_zones_set_at_run_time_are_kept_when_the_camera_host_restarts(pool: HostPool) -> None:
    pool.add(CameraConfig(id="cam", url="rtsp://h/s"))
    cfg = AnalyticsConfig.model_validate(ZONES)
    assert pool.set_analytics("cam", cfg) is None
    [first] = pool.actors()
    assert first.applied["cam"] == cfg, "applied on the running host"
    assert pool.analytics("cam") == cfg
    lost_host(pool)
    [second] = pool.actors()
    assert second is not first
    assert second.cameras["cam"].analytics == cfg, "the restarted host starts the camera with its zones"
    assert pool.set_analytics("cam", None) is None
    lost_host(pool)
    assert pool.actors()[0].cameras["cam"].analytics is None, "and without them once removed"


def test_zones_set_while_a_host_restarts_the_camera_reach_it(pool: HostPool) -> None:
    pool.add(CameraConfig(id="cam", url="rtsp://h/s"))
    cfg = AnalyticsConfig.model_validate(ZONES)
    [dead] = pool._hosts
    replacing: list[Any] = []

    def new_host(group: frozenset[tuple[str, object]], slot: int) -> Any:
        actor = FakeHost()
        actor.during_add = lambda: replacing.append(pool.set_analytics("cam", cfg))  # not on the replacement yet
        host = hosts._Host(group, actor, slot)
        pool._hosts.append(host)
        return host

    pool._new_host = new_host  # type: ignore[method-assign]
    pool._replace(dead, RuntimeError("died"), hosts._Supervision(lambda cam, why: None, lambda cam: None))
    assert replacing == [None]
    [host] = pool.actors()
    assert host.applied["cam"] == cfg and pool.analytics("cam") == cfg


def test_pixel_zones_outside_the_frame_change_nothing(pool: HostPool) -> None:
    pool.add(CameraConfig(id="cam", url="rtsp://h/s"))
    [host] = pool.actors()
    host.frame_wh = (640, 360)
    pixels = AnalyticsConfig.model_validate(
        {"coordinates": "pixels", "zones": [{"name": "z", "polygon": [[0, 0], [700, 0], [0, 300]]}]}
    )
    problem = pool.set_analytics("cam", pixels)
    assert problem == "analytics.zones.z.polygon: point [700, 0] is outside the 640x360 frame"
    assert pool.analytics("cam") is None and host.applied["cam"] is None
    with pytest.raises(CameraError, match="no camera 'other'"):
        pool.set_analytics("other", None)


# --- prompts set at run time ------------------------------------------------------------------------

PROMPTS = {
    "backend": {"kind": "hf_clip", "name_or_path": "/models/clip"},
    "scenes": {"street": ["a street"], "parking": ["a parking lot"]},
}


class Prompted(Zoned):
    """A pipeline labelling scenes from prompts."""

    def __init__(self) -> None:
        super().__init__(["cam"])
        self.zero_shot = ZeroShotConfig.model_validate(PROMPTS)

    def prompts(self) -> ZeroShotConfig | None:
        return self.zero_shot

    def set_prompts(self, section: dict[str, Any]) -> ZeroShotConfig:
        self.zero_shot = validate_prompts(section, self.zero_shot)
        return self.zero_shot


def test_prompts_set_needs_the_key_is_validated_audited_and_read_back(control_key: bytes) -> None:
    target = Prompted()
    control = server(target)
    new = {"scenes": {"road": ["a road with cars"], "lot": ["cars parked in rows"]}}
    [unsigned] = deliver(control, Command(op="prompts_set", prompts=new), None)
    assert (unsigned.ok, unsigned.exit_code) == (False, 1) and "need the control key" in unsigned.error
    assert tuple(target.zero_shot.scenes) == ("street", "parking"), "an unsigned prompts_set changes nothing"
    invalid = control.handle(Command(op="prompts_set", prompts={"scenes": {"road": []}}))
    assert (invalid.ok, invalid.exit_code) == (False, 2) and "models.zero_shot.scenes.road:" in invalid.error
    fake = FakeRedis()
    control._client = fake  # type: ignore[assignment]
    raw = Command(op="prompts_set", prompts=new).model_dump_json().encode()
    control._dispatch({b"command": raw, b"sig": sign_command(control_key, raw).encode()})
    item = control._pending.get_nowait()
    assert item is not None
    control._finish(item, control.handle(item.command))
    assert tuple(target.zero_shot.scenes) == ("road", "lot")
    assert fake.audit[0]["op"] == "prompts_set" and fake.audit[0]["prompts"] == "scenes road, lot"
    [read] = deliver(control, Command(op="prompts_get"), None)  # a read: no key needed
    assert read.prompts == target.zero_shot.model_dump(mode="json", exclude={"backend"}), "no paths in an open read"


class FakeWorker:
    """A model worker labelling from prompts: what it was given, and its process id."""

    def __init__(self) -> None:
        self.given: list[Any] = []
        self.process = 100
        self.set_prompts = Remote(self.given.append)
        self.pid = Remote(lambda: self.process)


def test_prompts_reach_every_worker_and_hosts_started_later_and_survive_a_worker_restart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(driver.ray, "get", lambda call, timeout=None: call())
    monkeypatch.setattr(driver.ray, "wait", lambda refs, num_returns, timeout: (refs, []))
    cfg = parse_config({"cameras": [{"id": "cam", "url": "rtsp://h/s"}], "models": {"zero_shot": PROMPTS}})
    workers = (FakeWorker(), FakeWorker())
    host = SimpleNamespace(given=[])
    host.set_prompts = Remote(lambda zs, head: host.given.append(zs))
    plans: list[HostPlan] = []
    pool = SimpleNamespace(actors=lambda: [host], set_plan=plans.append)
    pipeline = driver.Pipeline(cfg, "redis://127.0.0.1:1/0")
    pipeline.hosts = cast(Any, pool)
    pipeline.plan = HostPlan("workers", classifiers=workers)
    pipeline._zero_shot = cfg.models.zero_shot
    zs = pipeline.set_prompts({"scenes": {"road": ["a road"]}, "scene_min_score": 0.6})
    assert pipeline.prompts() == zs and tuple(zs.scenes) == ("road",) and zs.scene_min_score == 0.6
    assert [w.given for w in workers] == [[zs], [zs]] and host.given == [zs]
    assert plans == [pipeline.plan], "hosts started from now on are given the new plan"
    assert pipeline.keep_prompts_once() == []
    workers[1].process, workers[1].given[:] = 101, []  # Ray restarted it, with the config's prompts
    assert pipeline.keep_prompts_once() == ["scenes:1"]
    assert workers[1].given == [zs] and workers[0].given == [zs]
    assert pipeline.keep_prompts_once() == []
    pipeline._stopping.set()
