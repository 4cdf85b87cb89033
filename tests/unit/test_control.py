"""The control channel's rules without Redis: which commands pass the key check, the control key's
files, the source policy for cameras added at run time, and the handler's answers (a fake pipeline)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from pipeline.core.config import CameraConfig, ControlConfig
from pipeline.core.messages import CameraState, CameraStatus
from pipeline.core.metrics import VIGIL_REGISTRY
from pipeline.runtime.control import Command, ControlServer
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
