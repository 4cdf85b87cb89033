"""The pipelines running on this machine, so ``vigil cameras`` and ``vigil events`` find them without flags.

``vigil run`` and ``vigil demo`` record each pipeline they start in a state file readable by its user
only (it holds the Redis URL, which may hold a password)::

    $XDG_STATE_HOME/vigil/pipelines/<run_id>.json     (default ~/.local/state/vigil/pipelines/)

and remove it when the pipeline stops. A command that talks to a pipeline takes its Redis URL from,
in this order: ``--redis-url``, ``--pipeline RUN_ID`` (one of the recorded pipelines),
``$VIGIL_REDIS_URL``, the one pipeline recorded here (several: the most recently started, with a
line on stderr saying which). A record whose process is gone (a pipeline that was killed) is
ignored and deleted by whoever reads it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Protocol

import psutil
import typer

from pipeline.cli.common import err_console, fail
from pipeline.core.config.services import REDIS_SCHEMES
from pipeline.core.redact import redact

log = logging.getLogger(__name__)

URL_ENV = "VIGIL_REDIS_URL"


class TargetError(Exception):
    """No Redis URL could be chosen; ``exit_code`` 2 for malformed input, 1 when nothing runs."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Instance:
    """One running pipeline as its state file records it. Times in UNIX seconds."""

    run_id: str
    redis_url: str
    pid: int
    pid_started_at: float  # the process's creation time: a reused pid is not mistaken for it
    started_at: float
    config: str | None
    metrics_port: int | None

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))
        config = f"config {self.config}, " if self.config else ""
        return f"{self.run_id} ({config}started {when})"


class Started(Protocol):
    """What :func:`recorded` needs of a started pipeline (``pipeline.runtime.driver.Pipeline``)."""

    run_id: str
    redis_url: str
    metrics_port: int | None


def state_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_STATE_HOME/vigil/pipelines``, else ``~/.local/state/vigil/pipelines``."""
    base = environ.get("XDG_STATE_HOME", "")
    # The XDG spec: a relative value is invalid and ignored.
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / "vigil" / "pipelines"


def write_record(instance: Instance, directory: Path) -> Path:
    """Write ``instance`` to ``directory/<run_id>.json``, mode 0600 from its creation on (never
    readable by others, not even briefly), atomically (a reader sees the whole file or none)."""
    for folder in (directory.parent, directory):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"{instance.run_id}.json"
    tmp = directory / f".{instance.run_id}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(asdict(instance), out)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _alive(instance: Instance) -> bool:
    try:
        created: float = psutil.Process(instance.pid).create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
    return abs(created - instance.pid_started_at) < 1.0


def _read(path: Path) -> Instance | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Instance(**data)
    except FileNotFoundError:  # removed by its pipeline or another reader meanwhile
        return None
    except (OSError, ValueError, TypeError) as exc:
        log.debug("ignoring %s: %s", path, exc)
        return None


def running(directory: Path) -> list[Instance]:
    """The pipelines recorded in ``directory`` whose process still runs, most recently started
    first. Records of processes that are gone are deleted."""
    found: list[Instance] = []
    for path in sorted(directory.glob("*.json")):
        instance = _read(path)
        if instance is None:
            continue
        if _alive(instance):
            found.append(instance)
            continue
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:  # cleaning up is a courtesy; the record is ignored either way
            log.debug("cannot remove stale %s: %s", path, exc)
    return sorted(found, key=lambda i: i.started_at, reverse=True)


@contextmanager
def recorded(pipeline: Started, environ: Mapping[str, str] = os.environ) -> Iterator[Path | None]:
    """Record ``pipeline`` as running on this machine while the block runs.

    A state file that cannot be written (a read-only home) costs only the lookup: the pipeline
    runs, and commands then need ``--redis-url``."""
    directory = state_dir(environ)
    me = psutil.Process()
    instance = Instance(
        run_id=pipeline.run_id,
        redis_url=pipeline.redis_url,
        pid=me.pid,
        pid_started_at=me.create_time(),
        started_at=time.time(),
        config=_invoked_config(),
        metrics_port=pipeline.metrics_port,
    )
    try:
        path: Path | None = write_record(instance, directory)
    except OSError as exc:
        log.warning("cannot record the pipeline in %s (%s): commands need --redis-url", directory, exc)
        path = None
    try:
        yield path
    finally:
        if path is not None:
            path.unlink(missing_ok=True)


def _invoked_config() -> str | None:
    """The config file the running command was given (``vigil run CONFIG``, ``vigil demo --config``)."""
    try:  # Typer's copy of click's context stack: the record is complete without it, only less telling
        from typer._click.globals import get_current_context
    except ImportError:
        return None
    ctx = get_current_context(silent=True)
    config = None if ctx is None else ctx.params.get("config")
    return str(Path(config).resolve()) if isinstance(config, str | Path) else None


# --- choosing the Redis URL --------------------------------------------------------------------------


def shown(value: str) -> str:
    """``value`` as it may be printed: redacted, also where it lacks a scheme (``user:pw@host``)."""
    text = redact(value)
    if "://" not in text and "@" in text:
        text = "***@" + text.rsplit("@", 1)[1]
    return text


def check_redis_url(url: str, source: str) -> str:
    """``url`` if it is a Redis URL redis-py can use; else TargetError (exit 2) naming ``source``."""
    from redis.connection import parse_url

    if not url.startswith(REDIS_SCHEMES):
        raise TargetError(f"{source}: {shown(url)!r} is not a Redis URL (redis://, rediss:// or unix://)", 2)
    try:
        parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise TargetError(f"{source}: {shown(url)!r} is not a valid Redis URL: {redact(str(exc))}", 2) from None
    return url


@dataclass(frozen=True)
class Target:
    """The Redis URL a command uses, and the line to print about the choice (None: nothing to say)."""

    url: str
    note: str | None = None


def resolve_target(redis_url: str | None, pipeline: str | None, environ: Mapping[str, str] = os.environ) -> Target:
    """``--redis-url``, else ``--pipeline``, else ``$VIGIL_REDIS_URL``, else the pipeline(s) recorded here."""
    if redis_url is not None and pipeline is not None:
        raise TargetError("--redis-url and --pipeline: give one of them, not both", 2)
    if redis_url is not None:
        return Target(check_redis_url(redis_url, "--redis-url"))
    if pipeline is None and (env := environ.get(URL_ENV)):
        return Target(check_redis_url(env, URL_ENV))
    found = running(state_dir(environ))
    if pipeline is not None:
        return Target(_chosen(found, pipeline).redis_url)
    if not found:
        raise TargetError(
            f"no running Vigil found on this machine: pass --redis-url or set {URL_ENV} "
            "(`vigil run` and `vigil demo` record the pipelines they start)",
            1,
        )
    newest, others = found[0], found[1:]
    if not others:
        return Target(newest.redis_url)
    note = (
        f"{len(found)} pipelines run on this machine; using the newest, {newest.describe()}. "
        f"--pipeline RUN_ID chooses another: {', '.join(i.run_id for i in others)}"
    )
    return Target(newest.redis_url, note)


def _chosen(found: list[Instance], run_id: str) -> Instance:
    """The recorded pipeline whose run id is ``run_id``, or starts with it where that is unique."""
    exact = [i for i in found if i.run_id == run_id]
    matches = exact or [i for i in found if i.run_id.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    running_ids = ", ".join(i.run_id for i in found) or "none"
    why = "matches several" if matches else "is not a running pipeline"
    raise TargetError(f"--pipeline: {run_id!r} {why} on this machine (running: {running_ids})", 2)


def pipeline_url(redis_url: str | None, pipeline: str | None) -> str:
    """The Redis URL a command uses (:func:`resolve_target`); on problems one line and exit 1 or 2."""
    try:
        target = resolve_target(redis_url, pipeline)
    except TargetError as exc:
        fail(str(exc), exc.exit_code)
    if target.note is not None:
        err_console.print(target.note, highlight=False, markup=False, soft_wrap=True)
    return target.url


def _checked_option(value: str | None) -> str | None:
    """``--redis-url`` is checked as it is parsed, so a malformed one is a usage error (exit 2) that
    names the flag, before anything else runs."""
    if value is None:
        return None
    try:
        return check_redis_url(value, "--redis-url")
    except TargetError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--redis-url: ")) from None


RedisUrlOption = Annotated[
    str | None,
    typer.Option(
        "--redis-url",
        help=f"Redis URL of the pipeline (default: ${URL_ENV}, else the pipeline running on this machine)",
        callback=_checked_option,
        show_default=False,
    ),
]
RunRedisUrlOption = Annotated[
    str | None, typer.Option("--redis-url", help="Overrides redis.url", callback=_checked_option)
]
PipelineOption = Annotated[
    str | None,
    typer.Option(
        "--pipeline",
        metavar="RUN_ID",
        help="Which of the pipelines running on this machine (its run id, or the start of it)",
        show_default=False,
    ),
]
