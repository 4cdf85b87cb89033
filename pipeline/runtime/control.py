"""Runtime control of a running pipeline through Redis: list, add and remove cameras, read and set a
camera's zones and lines, take a snapshot of its latest frame, and read and set the prompts that
``models.zero_shot`` labels with.

A client (``vigil cameras …``, ``vigil zones …``, ``vigil prompts …``, or :class:`ControlClient`)
appends a command to the stream ``vigil:control``: its JSON body (request id, op, the time it was
sent) and, for the ops that change something (``add``, ``remove``, ``zones_set``, ``prompts_set``),
the body's HMAC with the control key (``pipeline.runtime.control_auth``; the reads ``list``,
``zones_get``, ``snapshot`` and ``prompts_get`` may come unsigned). The driver's control thread
checks it and answers on ``vigil:control:reply:<request_id>`` (a list that expires after a minute),
which the client pops. Reads are answered at once. Changes are
answered ``accepted`` at once, then applied one at a time by a second thread and answered again with
their result: a camera that needs a new camera host waits for that host to load its models, and the
client waits for the result instead of reporting a failure. ``zones_set`` replaces one camera's
``analytics`` section (validated like the config; null removes it) in the driver's record of the
camera, which a restarted camera host starts it with, and on its host, which applies it before the
camera's next frame. ``snapshot`` answers with the camera's latest processed frame as a JPEG
(base64) at its decoded size, boxes, track ids, zones and lines drawn. ``prompts_set`` replaces
the keys of ``models.zero_shot`` it gives (validated like the config; the backend and which label
maps are set stay as started) wherever the models that label from prompts run, from their next
batch, and in the driver's record, which a restarted camera host or model worker is given. Every command that runs is
recorded in the stream ``vigil:control:audit`` (URLs redacted), and every command read is deleted
from ``vigil:control``, so a password in an added camera's URL does not stay in Redis. Redis is
already the one service every Vigil user runs, is reachable from every node, and carries its
auth/TLS, so no extra port is opened. Commands are only read while a pipeline runs; nothing is
replayed later.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

import redis
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.core.config import CameraConfig, ConfigError, ControlConfig, validate_camera
from pipeline.core.config.analytics import AnalyticsConfig
from pipeline.core.config.loader import validate_analytics
from pipeline.core.config.zero_shot import ZeroShotConfig
from pipeline.core.messages import CameraStatus, utc_iso
from pipeline.core.metrics import CONTROL_REFUSED
from pipeline.core.redact import redact
from pipeline.events.publisher import connect
from pipeline.runtime.control_auth import REFUSAL_MESSAGES, Authenticator, Refusal, same, server_key, sign_command
from pipeline.runtime.control_auth import sign_reply as reply_signature
from pipeline.runtime.control_policy import allowed_folders, source_allowed

if TYPE_CHECKING:  # drawing needs OpenCV, which a client of the channel does not load
    from pipeline.events.snapshots import FrameSnapshot

log = logging.getLogger(__name__)

CONTROL_STREAM = "vigil:control"
REPLY_PREFIX = "vigil:control:reply:"
AUDIT_STREAM = "vigil:control:audit"
REPLY_TTL_S = 60
COMMAND_MAXLEN = 1000
AUDIT_MAXLEN = 10_000
PENDING_MAX = 64  # changes (add, remove, zones_set, prompts_set) accepted and not yet applied; more are refused as busy
START_WAIT_S = 6.0  # start() waits this long for Redis to name the stream's newest entry
RETRY_INITIAL_S, RETRY_MAX_S = 0.2, 2.0
MAX_SEQ = 2**64 - 1  # the largest sequence part of a stream entry id
# How long a client waits for the result once a command was accepted: a new camera host may take
# pipeline.runtime.hosts.HOST_START_TIMEOUT_S (300 s) to load its models; a removal up to its
# HOST_TIMEOUT_S (60 s), like a change of a camera's zones. Both with a margin.
FINISH_TIMEOUT_S = {"add": 330.0, "remove": 90.0, "zones_set": 90.0, "prompts_set": 90.0}
OPEN_OPS = frozenset({"list", "zones_get", "snapshot", "prompts_get"})  # reads: they may come unsigned
SNAPSHOT_TIMEOUT_S = 3.0  # a camera host that takes longer to draw and encode a frame is answered as an error


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=r"^[0-9a-f]{32}$")
    op: Literal["list", "add", "remove", "zones_get", "zones_set", "snapshot", "prompts_get", "prompts_set"]
    sent_at: float = Field(
        default_factory=time.time, allow_inf_nan=False, description="Unix time the client sent it (seconds)"
    )
    camera: dict[str, Any] | None = Field(default=None, description="add: the camera's config")
    camera_id: str | None = Field(default=None, description="remove, zones_get, zones_set, snapshot: the camera's id")
    analytics: dict[str, Any] | None = Field(
        default=None, description="zones_set: the camera's analytics section (null: none)"
    )
    prompts: dict[str, Any] | None = Field(
        default=None, description="prompts_set: keys of models.zero_shot but backend (those left out stay)"
    )


class Picture(BaseModel):
    """A camera's latest processed frame, as the ``snapshot`` op answers it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    jpeg_b64: str = Field(description="The JPEG, base64: the frame as decoded, boxes, track ids, zones and lines drawn")
    width: int = Field(description="Pixels: the frame's decoded size, which pixel geometry is in")
    height: int
    frame_id: int
    captured_at: float = Field(description="Unix time the frame was captured (seconds)")

    @property
    def jpeg(self) -> bytes:
        return base64.b64decode(self.jpeg_b64)


class Reply(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ok: bool
    phase: Literal["accepted", "done"] = Field(
        default="done", description="accepted: add/remove queued, the result follows on the same list"
    )
    error: str = ""
    exit_code: int = Field(default=0, description="For the CLI: 2 invalid camera config or zones, 1 other errors")
    cameras: list[dict[str, Any]] = Field(default_factory=list)
    analytics: dict[str, Any] | None = Field(
        default=None, description="zones_get, zones_set: the camera's analytics section now (null: none)"
    )
    snapshot: Picture | None = Field(default=None, description="snapshot: the camera's latest processed frame")
    prompts: dict[str, Any] | None = Field(
        default=None,
        description="prompts_get, prompts_set: models.zero_shot but backend, as it labels now (null: not set)",
    )


class Envelope(BaseModel):
    """One entry of a reply list: the reply's JSON and, answering a signed command, its signature."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reply: str
    sig: str | None = None


class CameraControl(Protocol):
    """What the control thread needs from the pipeline."""

    def statuses(self, timeout_s: float = 2.0) -> list[CameraStatus]: ...
    def add_camera(self, cam: CameraConfig) -> None: ...
    def remove_camera(self, camera_id: str) -> CameraStatus: ...
    def camera_analytics(self, camera_id: str) -> AnalyticsConfig | None: ...
    def set_camera_analytics(self, camera_id: str, cfg: AnalyticsConfig | None) -> None: ...
    def camera_snapshot(self, camera_id: str, timeout_s: float = SNAPSHOT_TIMEOUT_S) -> FrameSnapshot: ...
    def prompts(self) -> ZeroShotConfig | None: ...
    def set_prompts(self, section: dict[str, Any]) -> ZeroShotConfig: ...


def status_dict(status: CameraStatus) -> dict[str, Any]:
    data = dataclasses.asdict(status)
    data["state"] = status.state.value
    return data


@dataclasses.dataclass(frozen=True)
class _Accepted:
    command: Command
    sig: str | None  # the command's signature, which its replies are bound to; None: an open command


class ControlServer:
    """The driver's control threads: one reads and checks commands (and answers reads), one applies changes.

    ``settings`` (the config's ``control`` section) names the key, the allowed local folders and
    the camera cap; None takes the defaults. Raises ControlKeyError when the key cannot be read or
    made.
    """

    def __init__(self, redis_url: str, target: CameraControl, settings: ControlConfig | None = None) -> None:
        settings = settings or ControlConfig()
        self._auth = Authenticator(server_key(settings.key_file), settings.max_age_s, OPEN_OPS)
        self._folders = allowed_folders(settings.allow_local_sources)
        self._max_cameras = settings.max_cameras
        self._client = connect(redis_url)
        self._target = target
        self._stop = threading.Event()
        self._first_try = threading.Event()
        self._positioned = False
        self._missed_start = False
        self._down = False
        self._started_ms = 0
        self._last_id: bytes | str = "0-0"
        self._pending: queue.Queue[_Accepted | None] = queue.Queue(PENDING_MAX)
        self._reader = threading.Thread(target=self._read_loop, name="control", daemon=True)
        self._applier = threading.Thread(target=self._apply_loop, name="control-apply", daemon=True)
        for reason in Refusal:  # every reason's series exists from the start, so rates see the first refusal
            CONTROL_REFUSED.labels(reason.value)

    def start(self) -> None:
        """Listen for commands. Where Redis answers, every command sent after start() returns is
        taken; where it does not, the pipeline runs on and the thread starts, once Redis answers, at
        the entries added since this call (by Redis's clock)."""
        self._started_ms = int(time.time() * 1000)
        self._reader.start()
        self._applier.start()
        self._first_try.wait(START_WAIT_S)

    def stop(self) -> None:
        """Stop both threads; commands accepted and not yet applied are answered as not applied."""
        self._stop.set()
        if self._reader.ident is not None:
            self._reader.join(timeout=5)
        while True:
            try:
                item = self._pending.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._finish(item, Reply(ok=False, error="the pipeline stopped before applying it", exit_code=1))
        try:
            self._pending.put_nowait(None)  # the applier's signal to end
        except queue.Full:
            log.debug("control: the reader was still queueing at stop")
        if self._applier.ident is not None:
            self._applier.join(timeout=5)
        self._client.close()

    def handle(self, command: Command) -> Reply:
        """Apply one command that passed the key check (also callable directly, without Redis).
        Never raises: whatever goes wrong is answered as an error."""
        try:
            if command.op == "list":
                return Reply(ok=True, cameras=[status_dict(s) for s in self._target.statuses()])
            if command.op == "add":
                return self._add(validate_camera(command.camera or {}))
            if command.op == "remove":
                return Reply(ok=True, cameras=[status_dict(self._target.remove_camera(command.camera_id or ""))])
            if command.op == "zones_get":
                return Reply(ok=True, analytics=_section(self._target.camera_analytics(command.camera_id or "")))
            if command.op == "zones_set":
                cfg = None if command.analytics is None else validate_analytics(command.analytics)
                self._target.set_camera_analytics(command.camera_id or "", cfg)
                return Reply(ok=True, analytics=_section(cfg))
            if command.op == "prompts_get":
                return Reply(ok=True, prompts=_prompt_section(self._target.prompts()))
            if command.op == "prompts_set":
                return Reply(ok=True, prompts=_prompt_section(self._target.set_prompts(command.prompts or {})))
            return Reply(ok=True, snapshot=_picture(self._target.camera_snapshot(command.camera_id or "")))
        except ConfigError as exc:
            return Reply(ok=False, error="; ".join(exc.problems), exit_code=2)
        except ValueError as exc:  # CameraError: duplicate or unknown camera
            return Reply(ok=False, error=_last_line(exc), exit_code=1)
        except Exception as exc:  # a Ray timeout, a lost host, a bug: answered, and the thread goes on
            name, text = type(exc).__name__, _last_line(exc)
            reason = name if text == name else f"{name}: {text}"
            log.warning("control: %s failed: %s", command.op, reason)
            return Reply(ok=False, error=f"{command.op} failed: {reason}", exit_code=1)

    def _add(self, cam: CameraConfig) -> Reply:
        if not source_allowed(cam.url, self._folders):
            return self._policy_refusal(Refusal.SOURCE_NOT_ALLOWED, REFUSAL_MESSAGES[Refusal.SOURCE_NOT_ALLOWED])
        running = len(self._target.statuses())
        if running >= self._max_cameras:
            return self._policy_refusal(
                Refusal.MAX_CAMERAS,
                f"refused: the pipeline runs {running} cameras and control.max_cameras is {self._max_cameras}",
            )
        self._target.add_camera(cam)
        return Reply(ok=True)

    @staticmethod
    def _policy_refusal(reason: Refusal, message: str) -> Reply:
        CONTROL_REFUSED.labels(reason.value).inc()
        return Reply(ok=False, error=message, exit_code=1)

    # -- reading -----------------------------------------------------------------------------------

    def _read_loop(self) -> None:
        delay = RETRY_INITIAL_S
        while not self._stop.is_set():
            try:
                if not self._positioned:
                    self._position()
                reply: Any = self._client.xread({CONTROL_STREAM: self._last_id}, count=10, block=500)
            except redis.RedisError as exc:
                self._redis_down(exc)
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            except Exception as exc:  # not Redis's doing: logged with its type, and the thread reads on
                log.warning("control: reading commands failed: %s: %s", type(exc).__name__, redact(str(exc)))
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            finally:
                self._first_try.set()
            self._redis_up()
            delay = RETRY_INITIAL_S
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    self._last_id = entry_id
                    self._receive(fields)
                    self._forget(entry_id)

    def _position(self) -> None:
        """Where this run's commands begin: after the newest id the stream ever gave (read entries are
        deleted, so it may be empty), or, where Redis did not answer at start(), after every id older
        than start() by Redis's clock."""
        if self._missed_start:
            self._last_id = f"{self._started_ms - 1}-{MAX_SEQ}"
        else:
            try:
                info: Any = self._client.xinfo_stream(CONTROL_STREAM)
                self._last_id = info["last-generated-id"]
            except redis.ResponseError:  # no such stream yet: every command is this run's
                self._last_id = "0-0"
        self._positioned = True

    def _forget(self, entry_id: bytes | str) -> None:
        """Delete a command once read, whatever became of it: an add's URL may hold a password, which
        must not stay readable in Redis."""
        try:
            self._client.xdel(CONTROL_STREAM, entry_id)
        except redis.RedisError as exc:  # left to the stream's length cap
            log.debug("control: could not delete a read command: %s", redact(str(exc)))

    def _redis_down(self, exc: redis.RedisError) -> None:
        if not self._positioned:
            self._missed_start = True
        if not self._down:  # one line per outage, not per retry
            self._down = True
            log.warning("control: Redis unreachable (%s); camera commands wait until it answers", redact(str(exc)))

    def _redis_up(self) -> None:
        if self._down:
            self._down = False
            log.warning("control: Redis answers again; taking camera commands")

    def _receive(self, fields: dict[bytes, bytes]) -> None:
        """Check one entry and answer or queue it. Never raises: the thread must keep reading."""
        try:
            self._dispatch(fields)
        except Exception as exc:
            log.warning("control: a command could not be answered: %s: %s", type(exc).__name__, redact(str(exc)))

    def _dispatch(self, fields: dict[bytes, bytes]) -> None:
        body, raw_sig = fields.get(b"command"), fields.get(b"sig")
        try:
            if body is None:
                raise ValueError("no command field")
            command = Command.model_validate_json(body)
            sig = raw_sig.decode("ascii") if raw_sig is not None else None
        except (ValidationError, ValueError):  # no reply key that can be trusted: dropped
            self._refuse(None, Refusal.MALFORMED)
            return
        refusal = self._auth.check(body, sig, command.op, command.request_id, command.sent_at, time.time())
        if refusal is not None:
            self._refuse(command, refusal)
            return
        item = _Accepted(command, sig)
        if command.op in OPEN_OPS:
            self._finish(item, self.handle(command))
        elif self._pending.full():
            CONTROL_REFUSED.labels(Refusal.BUSY.value).inc()
            self._send(item, Reply(ok=False, error=REFUSAL_MESSAGES[Refusal.BUSY], exit_code=1))
        else:
            self._send(item, Reply(ok=True, phase="accepted"))
            self._pending.put_nowait(item)

    def _refuse(self, command: Command | None, reason: Refusal) -> None:
        """Count a command that failed the key check and answer it, unsigned, where that is safe: a
        replay is not answered (its reply list is the original client's)."""
        CONTROL_REFUSED.labels(reason.value).inc()
        log.info("control: refused a command (%s)", reason.value)
        if command is not None and reason is not Refusal.REPLAYED:
            self._send(_Accepted(command, None), Reply(ok=False, error=REFUSAL_MESSAGES[reason], exit_code=1))

    # -- applying ----------------------------------------------------------------------------------

    def _apply_loop(self) -> None:
        while True:
            item = self._pending.get()
            if item is None:
                return
            self._finish(item, self.handle(item.command))

    def _finish(self, item: _Accepted, reply: Reply) -> None:
        """Record a command that ran in the audit stream and send its result."""
        try:
            record = audit_fields(item.command, item.sig is not None, reply)
            self._client.xadd(AUDIT_STREAM, record, maxlen=AUDIT_MAXLEN)  # type: ignore[arg-type]
            self._send(item, reply)
        except redis.RedisError as exc:
            log.warning("control: could not answer a %s command: %s", item.command.op, redact(str(exc)))

    def _send(self, item: _Accepted, reply: Reply) -> None:
        body = reply.model_dump_json()
        sig = self._auth.sign_reply(item.sig, body.encode()) if item.sig is not None else None
        key = REPLY_PREFIX + item.command.request_id
        pipe = self._client.pipeline()
        pipe.rpush(key, Envelope(reply=body, sig=sig).model_dump_json())
        pipe.expire(key, REPLY_TTL_S)
        pipe.execute()


def _prompt_section(zs: ZeroShotConfig | None) -> dict[str, Any] | None:
    """The prompts as a reply carries them: the keys of models.zero_shot but the backend (whose
    paths an open read does not give away)."""
    return None if zs is None else zs.model_dump(mode="json", exclude={"backend"})


def _section(cfg: AnalyticsConfig | None) -> dict[str, Any] | None:
    return None if cfg is None else cfg.model_dump(mode="json")


def _picture(snap: FrameSnapshot) -> Picture:
    jpeg = base64.b64encode(snap.jpeg).decode("ascii")
    return Picture(
        jpeg_b64=jpeg, width=snap.width, height=snap.height, frame_id=snap.frame_id, captured_at=snap.captured_at
    )


def _last_line(exc: Exception) -> str:
    """An error as one redacted line: Ray wraps an actor's error in a report whose last line names it."""
    lines = str(exc).strip().splitlines()
    return redact(lines[-1]) if lines else type(exc).__name__


def audit_fields(command: Command, signed: bool, reply: Reply) -> dict[str, str]:
    """One audit record: what was asked, by a signed command or not, and how it ended. Camera URLs
    are redacted; the key and signatures are never written. A ``zones_set`` names the zones and lines
    it set (``none``: it removed the camera's section)."""
    camera = command.camera or {}
    fields = {
        "at": utc_iso(time.time()),
        "op": command.op,
        "request_id": command.request_id,
        "signed": "yes" if signed else "no",
        "camera": str(camera.get("id", command.camera_id or ""))[:64],
        "outcome": "ok" if reply.ok else redact(reply.error),
    }
    if command.op == "add":
        fields["url"] = redact(str(camera.get("url", "")))
    elif command.op == "zones_set":
        fields["analytics"] = _geometry_names(command.analytics)
    elif command.op == "prompts_set":
        fields["prompts"] = _prompt_labels(command.prompts)
    return fields


def _prompt_labels(section: dict[str, Any] | None) -> str:
    """``scenes street, parking; activities fall`` for the label maps a prompts_set gave, cut at 200 characters."""
    parts = []
    for key in ("scenes", "attributes", "activities"):
        labels = (section or {}).get(key)
        if isinstance(labels, dict) and labels:
            parts.append(f"{key} {', '.join(str(label) for label in labels)}")
    return ("; ".join(parts) or "thresholds only")[:200]


def _geometry_names(section: dict[str, Any] | None) -> str:
    """``zones door, bay; lines kerb; speed`` for a section as sent (``none``: no section), cut at 200 characters."""
    if section is None:
        return "none"
    parts = []
    for key in ("zones", "lines"):
        items = section.get(key)
        if isinstance(items, list) and items:
            names = (str(item.get("name", "?")) if isinstance(item, dict) else "?" for item in items)
            parts.append(f"{key} {', '.join(names)}")
    if section.get("speed") is not None:
        parts.append("speed")
    return ("; ".join(parts) or "empty")[:200]


# -- the client ------------------------------------------------------------------------------------


class NotFinished(TimeoutError):
    """The pipeline accepted the command and did not report its result in time."""


def send_command(
    redis_url: str,
    command: Command,
    timeout_s: float = 5.0,
    *,
    key: bytes | None = None,
    finish_timeout_s: float | None = None,
    on_accepted: Callable[[], None] | None = None,
) -> Reply:
    """Send a command (signed with ``key`` when given) and wait for its result.

    ``timeout_s`` bounds the wait for the first answer (TimeoutError: no running Vigil answered).
    An ``accepted`` answer calls ``on_accepted`` and waits ``finish_timeout_s`` more (default:
    ``FINISH_TIMEOUT_S`` of the op) for the result (NotFinished: accepted, no result in time).
    Replies to a signed command count only when signed for it, except a refusal coming first (a
    wrong key is refused unsigned); nobody without the key can make a client report a success.
    """
    body = command.model_dump_json().encode()
    sig = sign_command(key, body) if key is not None else None
    finish = FINISH_TIMEOUT_S.get(command.op, timeout_s) if finish_timeout_s is None else finish_timeout_s
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=3.0, socket_timeout=max(timeout_s, finish) + 5.0)
    fields: dict[str, bytes | str] = {"command": body} if sig is None else {"command": body, "sig": sig}
    try:
        client.xadd(CONTROL_STREAM, fields, maxlen=COMMAND_MAXLEN, approximate=True)  # type: ignore[arg-type]
        accepted = False
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            popped: Any = client.blpop([REPLY_PREFIX + command.request_id], timeout=max(left, 0.01))
            if popped is None:
                break
            reply = _trusted(popped[1], key, sig, accepted)
            if reply is None:
                continue
            if reply.phase == "done":
                return reply
            accepted, deadline = True, time.monotonic() + finish
            if on_accepted is not None:
                on_accepted()
    finally:
        client.close()
    if accepted:
        raise NotFinished(
            f"the running Vigil accepted the {command.op} but did not report its result within {finish:.0f} s"
        )
    raise TimeoutError(f"no running Vigil answered on {redact(redis_url)} within {timeout_s:.0f} s")


def _trusted(raw: bytes, key: bytes | None, sig: str | None, accepted: bool) -> Reply | None:
    """The reply in ``raw`` where the client may believe it, else None (skipped)."""
    try:
        envelope = Envelope.model_validate_json(raw)
        reply = Reply.model_validate_json(envelope.reply)
    except ValidationError:
        return None
    if key is None or sig is None:
        return reply
    if same(reply_signature(key, sig, envelope.reply.encode()), envelope.sig):
        return reply
    if not accepted and not reply.ok and reply.phase == "done":
        return reply  # a refusal of the key check (wrong key, stale), sent before anything ran
    log.debug("control: skipped a reply without a valid signature")
    return None


class ControlError(RuntimeError):
    """A command the running pipeline refused or could not apply; ``exit_code`` as the CLI exits
    (2: invalid input, 1: anything else)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ControlClient:
    """The control channel from Python, as ``vigil cameras``, ``vigil zones`` and ``vigil prompts`` use it::

        client = ControlClient("redis://127.0.0.1:6379/0", key=client_key(None))
        client.set_zones("lobby", {"zones": [{"name": "door", "polygon": [[0.1, 0.5], [0.4, 0.5], [0.4, 1]]}]})
        client.zones("lobby")              # AnalyticsConfig, or None
        client.snapshot("lobby").jpeg      # the latest processed frame, drawn
        client.set_prompts({"activities": {"fall": ["someone collapsing to the ground"]}})

    Changes need ``key`` (``pipeline.runtime.control_auth.client_key``); reads work without it and
    are signed where it is given. Raises ControlError for a command refused or not applied,
    ConfigError for a section that is not valid (checked here first, as the pipeline checks it),
    TimeoutError where no running Vigil answers on ``redis_url`` (NotFinished: accepted, no result in
    time).
    """

    def __init__(self, redis_url: str, key: bytes | None = None, timeout_s: float = 5.0) -> None:
        self.redis_url, self.key, self.timeout_s = redis_url, key, timeout_s

    def cameras(self) -> list[dict[str, Any]]:
        """Every camera's status, as ``vigil cameras list --json`` prints them."""
        return self._ask(Command(op="list")).cameras

    def zones(self, camera_id: str) -> AnalyticsConfig | None:
        """The camera's analytics section as the pipeline runs it (None: none)."""
        section = self._ask(Command(op="zones_get", camera_id=camera_id)).analytics
        return None if section is None else AnalyticsConfig.model_validate(section)

    def set_zones(self, camera_id: str, analytics: AnalyticsConfig | dict[str, Any] | None) -> None:
        """Replace the camera's analytics section (None: remove it); the camera applies it before its
        next frame, and a restarted camera host starts the camera with it."""
        if isinstance(analytics, dict):
            analytics = validate_analytics(analytics)
        section = None if analytics is None else analytics.model_dump(mode="json")
        self._ask(Command(op="zones_set", camera_id=camera_id, analytics=section))

    def prompts(self) -> dict[str, Any] | None:
        """The keys of ``models.zero_shot`` but its backend, as the pipeline labels with them now
        (None: it labels with trained models only)."""
        return self._ask(Command(op="prompts_get")).prompts

    def set_prompts(self, section: dict[str, Any]) -> dict[str, Any]:
        """Label with new prompts without a restart: ``section`` holds keys of ``models.zero_shot`` but
        its backend (``scenes``, ``attributes``, ``activities``, thresholds, templates), which replace
        the running ones; keys left out stay. Returns the section as it now labels. ControlError (exit
        code 2) where the pipeline finds it not valid, and nothing changed."""
        reply = self._ask(Command(op="prompts_set", prompts=section))
        if reply.prompts is None:
            raise ControlError("the pipeline sent no prompts back")
        return reply.prompts

    def snapshot(self, camera_id: str) -> Picture:
        """The camera's latest processed frame at its decoded size (``.jpeg``, ``.width``, ``.height``)."""
        picture = self._ask(Command(op="snapshot", camera_id=camera_id)).snapshot
        if picture is None:
            raise ControlError(f"the pipeline sent no picture of camera {camera_id!r}")
        return picture

    def _ask(self, command: Command) -> Reply:
        reply = send_command(self.redis_url, command, self.timeout_s, key=self.key)
        if not reply.ok:
            raise ControlError(reply.error, reply.exit_code or 1)
        return reply
