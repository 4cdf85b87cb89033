"""Runtime control of a running pipeline through Redis: list, add and remove cameras.

A client (``vigil cameras …``) appends a command to the stream ``vigil:control``; the running
driver's control thread applies it and pushes the answer to ``vigil:control:reply:<request_id>``
(a list that expires after a minute), which the client pops with a timeout. Redis is already the
one service every Vigil user runs, is reachable from every node, and carries its auth/TLS, so no
extra port is opened. Commands are only read while a pipeline runs; nothing is replayed later.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from typing import Any, Literal, Protocol

import redis
from pydantic import BaseModel, ConfigDict, Field

from pipeline.core.config import CameraConfig, ConfigError, validate_camera
from pipeline.core.messages import CameraStatus
from pipeline.core.redact import redact
from pipeline.events.publisher import connect

log = logging.getLogger(__name__)

CONTROL_STREAM = "vigil:control"
REPLY_PREFIX = "vigil:control:reply:"
REPLY_TTL_S = 60


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    op: Literal["list", "add", "remove"]
    camera: dict[str, Any] | None = Field(default=None, description="add: the camera's config")
    camera_id: str | None = Field(default=None, description="remove: the camera's id")


class Reply(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ok: bool
    error: str = ""
    exit_code: int = Field(default=0, description="For the CLI: 2 invalid camera config, 1 other errors")
    cameras: list[dict[str, Any]] = Field(default_factory=list)


class CameraControl(Protocol):
    """What the control thread needs from the pipeline."""

    def statuses(self, timeout_s: float = 2.0) -> list[CameraStatus]: ...
    def add_camera(self, cam: CameraConfig) -> None: ...
    def remove_camera(self, camera_id: str) -> CameraStatus: ...


def status_dict(status: CameraStatus) -> dict[str, Any]:
    data = dataclasses.asdict(status)
    data["state"] = status.state.value
    return data


class ControlServer:
    """The driver's control thread."""

    def __init__(self, redis_url: str, target: CameraControl) -> None:
        self._client = connect(redis_url)
        self._target = target
        self._stop = threading.Event()
        self._last_id: bytes | str = "0-0"
        self._thread = threading.Thread(target=self._run, name="control", daemon=True)

    def start(self) -> None:
        """Listen for commands sent from now on (resolved here, so none sent after start() is missed)."""
        newest: Any = self._client.xrevrange(CONTROL_STREAM, count=1)
        self._last_id = newest[0][0] if newest else "0-0"
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._client.close()

    def handle(self, command: Command) -> Reply:
        """Apply one command (also callable directly, without Redis)."""
        try:
            if command.op == "list":
                return Reply(ok=True, cameras=[status_dict(s) for s in self._target.statuses()])
            if command.op == "add":
                cam = validate_camera(command.camera or {})
                self._target.add_camera(cam)
                return Reply(ok=True)
            return Reply(ok=True, cameras=[status_dict(self._target.remove_camera(command.camera_id or ""))])
        except ConfigError as exc:
            return Reply(ok=False, error="; ".join(exc.problems), exit_code=2)
        except ValueError as exc:  # CameraError: duplicate or unknown camera
            return Reply(ok=False, error=redact(str(exc)), exit_code=1)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                reply: Any = self._client.xread({CONTROL_STREAM: self._last_id}, count=10, block=500)
                for _stream, entries in reply or []:
                    for entry_id, fields in entries:
                        self._last_id = entry_id
                        self._answer(fields)
            except redis.RedisError as exc:
                log.warning("control: Redis error: %s", redact(str(exc)))
                self._stop.wait(1.0)

    def _answer(self, fields: dict[bytes, bytes]) -> None:
        try:
            command = Command.model_validate_json(fields[b"command"])
        except (KeyError, ValueError) as exc:
            log.warning("control: ignoring a malformed command: %s", exc)
            return
        result = self.handle(command)
        key = REPLY_PREFIX + command.request_id
        pipe = self._client.pipeline()
        pipe.rpush(key, result.model_dump_json())
        pipe.expire(key, REPLY_TTL_S)
        pipe.execute()


def send_command(redis_url: str, command: Command, timeout_s: float = 5.0) -> Reply:
    """Send a command to the running pipeline and wait for its reply (TimeoutError: none answered)."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=3.0, socket_timeout=timeout_s + 5.0)
    try:
        client.xadd(CONTROL_STREAM, {"command": command.model_dump_json()}, maxlen=1000, approximate=True)
        popped: Any = client.blpop([REPLY_PREFIX + command.request_id], timeout=timeout_s)
    finally:
        client.close()
    if popped is None:
        raise TimeoutError(f"no running Vigil answered on {redact(redis_url)} within {timeout_s:.0f} s")
    return Reply.model_validate_json(popped[1])
