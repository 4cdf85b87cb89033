"""Who may command a running pipeline: the control key, signatures, freshness and replays.

A command is signed with HMAC-SHA256 over its JSON body, which carries its request id and the time
it was sent; Redis access alone does not give the key. The key comes from ``VIGIL_CONTROL_KEY``,
else a key file: ``control.key_file`` in the config (``vigil cameras --key-file``), else the
per-user default ``$XDG_CONFIG_HOME/vigil/control.key`` (``~/.config/vigil/control.key``), which
the pipeline creates (mode 0600) at its first start, so ``vigil cameras`` on the same machine and
account finds it. Replies to signed commands are signed too, bound to the command's signature, so
a Redis writer cannot make a client report a success.

>>> auth = Authenticator(b"k" * 32, max_age_s=30)
>>> body = b'{"request_id": "00", "op": "add", "sent_at": 100.0}'
>>> auth.check(body, sign_command(b"k" * 32, body), "add", "00", 100.0, now=101.0) is None
True
>>> auth.check(body, sign_command(b"k" * 32, body), "add", "00", 100.0, now=102.0)
<Refusal.REPLAYED: 'replayed'>
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
import stat
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

KEY_ENV = "VIGIL_CONTROL_KEY"
KEY_FILE_ENV = "VIGIL_CONTROL_KEY_FILE"
MIN_KEY_CHARS = 32
_COMMAND = b"vigil-control-command\x00"
_REPLY = b"vigil-control-reply\x00"


class ControlKeyError(RuntimeError):
    """The control key cannot be read, made or trusted; the message names the file or variable."""


class Refusal(StrEnum):
    """Why a command was refused (the ``reason`` label of ``vigil_control_refused_total``)."""

    MALFORMED = "malformed"  # not a command at all: dropped, nobody to answer
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    STALE = "stale"
    REPLAYED = "replayed"  # dropped: the reply list belongs to the original command's client
    SOURCE_NOT_ALLOWED = "source_not_allowed"
    MAX_CAMERAS = "max_cameras"
    BUSY = "busy"


# What the client is told; the same words whatever else is true (a path's existence is never said).
REFUSAL_MESSAGES = {
    Refusal.UNSIGNED: (
        "refused: unsigned command (add, remove, zones_set and prompts_set need the control key, docs/security.md)"
    ),
    Refusal.BAD_SIGNATURE: "refused: the command's signature does not match the pipeline's control key",
    Refusal.STALE: "refused: the command is older than control.max_age_s or dated in the future (check the clocks)",
    Refusal.SOURCE_NOT_ALLOWED: (
        "refused: a camera added at run time reads local files and devices only under the folders of the "
        "config key control.allow_local_sources (for example `control: {allow_local_sources: [/srv/videos]}`, "
        "then restart the pipeline), or list the camera in the config"
    ),
    Refusal.BUSY: "refused: too many commands are waiting; try again",
}


def sign_command(key: bytes, body: bytes) -> str:
    """The hex HMAC-SHA256 of a command's JSON body (request id and time sent included)."""
    return hmac.new(key, _COMMAND + body, hashlib.sha256).hexdigest()


def sign_reply(key: bytes, command_sig: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of a reply, bound to the signature of the command it answers."""
    return hmac.new(key, _REPLY + command_sig.encode() + b"\x00" + body, hashlib.sha256).hexdigest()


def same(expected: str, got: str | None) -> bool:
    """Constant-time comparison of two hex signatures."""
    return got is not None and hmac.compare_digest(expected.encode(), got.encode())


class ReplayWindow:
    """Request ids of accepted commands, each kept until its command would be stale anyway."""

    def __init__(self, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        self._until: dict[str, float] = {}

    def first_time(self, request_id: str, sent_at: float, now: float) -> bool:
        """Record ``request_id``; False when it was already seen within the window."""
        self._until = {rid: t for rid, t in self._until.items() if t >= now}
        if request_id in self._until:
            return False
        self._until[request_id] = sent_at + self.max_age_s
        return True


class Authenticator:
    """Decides whether a command may run. ``open_ops`` run unsigned (read-only ones)."""

    def __init__(self, key: bytes, max_age_s: float, open_ops: frozenset[str] = frozenset({"list"})) -> None:
        self._key = key
        self.max_age_s = max_age_s
        self.open_ops = open_ops
        self._seen = ReplayWindow(max_age_s)

    def check(
        self, body: bytes, sig: str | None, op: str, request_id: str, sent_at: float, now: float
    ) -> Refusal | None:
        """None when the command may run, else why not. A signed command of an open op is checked
        like any other (a client with the wrong key learns so)."""
        if sig is None:
            return None if op in self.open_ops else Refusal.UNSIGNED
        if not same(sign_command(self._key, body), sig):
            return Refusal.BAD_SIGNATURE
        if not math.isfinite(sent_at) or abs(now - sent_at) > self.max_age_s:
            return Refusal.STALE
        # Only commands with a valid signature reach the window: nobody without the key can fill it.
        if not self._seen.first_time(request_id, sent_at, now):
            return Refusal.REPLAYED
        return None

    def sign_reply(self, command_sig: str, body: bytes) -> str:
        return sign_reply(self._key, command_sig, body)


# --- the key ---------------------------------------------------------------------------------------


def default_key_path(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CONFIG_HOME/vigil/control.key``, else ``~/.config/vigil/control.key``."""
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "vigil" / "control.key"


def _checked(text: str, where: str) -> bytes:
    key = text.strip()
    if len(key) < MIN_KEY_CHARS:
        raise ControlKeyError(
            f"{where}: the control key must be at least {MIN_KEY_CHARS} characters (e.g. `openssl rand -hex 32`)"
        )
    return key.encode()


def read_key_file(path: Path) -> bytes:
    """The key in ``path``, which only its owner may read or write (like an SSH private key)."""
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            shown = f"{stat.S_IMODE(mode):04o}"
            raise ControlKeyError(f"control key file {path}: other users may access it (mode {shown}); chmod 600 it")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ControlKeyError(f"control key file {path}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise ControlKeyError(f"control key file {path}: cannot read it ({why})") from None
    return _checked(text, f"control key file {path}")


def create_key_file(path: Path) -> bytes:
    """Write a new random key to ``path`` (mode 0600, its folder 0700 when made here); an existing
    file is read instead, so two starts racing agree on one key."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_key_file(path)
    except OSError as exc:
        raise ControlKeyError(f"control key file {path}: cannot create it ({exc.strerror or exc})") from None
    key = secrets.token_hex(32)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(key + "\n")
    return key.encode()


def server_key(key_file: Path | None, environ: Mapping[str, str] = os.environ) -> bytes:
    """The running pipeline's key: ``VIGIL_CONTROL_KEY``, else ``key_file``, else the default file;
    a missing file is created with a new key."""
    if environ.get(KEY_ENV):
        return _checked(environ[KEY_ENV], KEY_ENV)
    path = key_file if key_file is not None else default_key_path(environ)
    return read_key_file(path) if path.exists() else create_key_file(path)


def client_key(key_file: Path | None, environ: Mapping[str, str] = os.environ) -> bytes | None:
    """The key a client signs with: ``VIGIL_CONTROL_KEY``, else ``key_file`` (must exist), else the
    default file when there is one; None without any (only open commands can be sent)."""
    if environ.get(KEY_ENV):
        return _checked(environ[KEY_ENV], KEY_ENV)
    if key_file is not None:
        return read_key_file(key_file)
    path = default_key_path(environ)
    return read_key_file(path) if path.exists() else None
