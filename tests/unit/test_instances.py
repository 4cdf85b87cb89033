"""Which Redis `vigil cameras` and `vigil events` talk to: flags, the environment, and the pipelines
`vigil run` / `vigil demo` record on this machine (state files under $XDG_STATE_HOME)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from pipeline.cli.app import app
from pipeline.cli.exits import run_cli
from pipeline.cli.instances import (
    Instance,
    Target,
    TargetError,
    pipeline_url,
    recorded,
    resolve_target,
    running,
    state_dir,
    write_record,
)

ME = psutil.Process()


@dataclass
class FakePipeline:
    run_id: str
    redis_url: str
    metrics_port: int | None = 9100


@pytest.fixture()
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty state folder of this test's own; no VIGIL_REDIS_URL."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("VIGIL_REDIS_URL", raising=False)
    return tmp_path / "state" / "vigil" / "pipelines"


def record(
    directory: Path, run_id: str, started_at: float, pid: int = ME.pid, pid_started_at: float | None = None
) -> Path:
    """A record of a pipeline (by default: alive, as this test process)."""
    created = ME.create_time() if pid_started_at is None else pid_started_at
    instance = Instance(run_id, f"redis://{run_id}:6379/0", pid, created, started_at, "/srv/vigil.yaml", 9100)
    return write_record(instance, directory)


def a_gone_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    return child.pid


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"XDG_STATE_HOME": "/var/state"}, Path("/var/state/vigil/pipelines")),
        ({}, Path.home() / ".local/state/vigil/pipelines"),
        ({"XDG_STATE_HOME": ""}, Path.home() / ".local/state/vigil/pipelines"),
        ({"XDG_STATE_HOME": "relative/dir"}, Path.home() / ".local/state/vigil/pipelines"),  # invalid per XDG
    ],
)
def test_state_dir_follows_xdg(environ: dict[str, str], expected: Path) -> None:
    assert state_dir(environ) == expected


def test_a_running_pipeline_is_recorded_for_its_user_only_and_removed_when_it_stops(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_umask = os.umask(0)  # even where files are world-readable by default
    try:
        with recorded(FakePipeline("1a2b3c4d5e6f", "redis://:s3cret@127.0.0.1:6400/0")) as path:
            assert path is not None and path.parent == state
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_IMODE(state.stat().st_mode) == 0o700
            data = json.loads(path.read_text())
            assert data["redis_url"] == "redis://:s3cret@127.0.0.1:6400/0"
            assert data["pid"] == os.getpid() and data["run_id"] == "1a2b3c4d5e6f" and data["metrics_port"] == 9100
            assert abs(data["started_at"] - time.time()) < 60
            assert resolve_target(None, None) == Target("redis://:s3cret@127.0.0.1:6400/0")
        assert not path.exists()
    finally:
        os.umask(old_umask)


def test_the_record_is_never_created_readable_by_others(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Created with mode 0600 in the same call that creates it, not chmod-ed afterwards."""
    modes: list[int] = []
    real_open = os.open

    def spying_open(path: str, flags: int, mode: int = 0o777, *args: object, **kwargs: object) -> int:
        if flags & os.O_CREAT:
            modes.append(mode)
            assert flags & os.O_EXCL, "a file that exists (a planted link) must not be reused"
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", spying_open)
    with recorded(FakePipeline("abc", "redis://127.0.0.1:1/0")):
        pass
    assert modes == [0o600]


def test_the_record_goes_also_when_the_pipeline_fails(state: Path) -> None:
    with pytest.raises(RuntimeError), recorded(FakePipeline("abc", "redis://127.0.0.1:1/0")):
        assert list(state.glob("*.json"))
        raise RuntimeError("boom")
    assert not list(state.glob("*.json"))


def test_records_of_processes_that_are_gone_are_ignored_and_deleted(state: Path) -> None:
    dead = record(state, "dead00000000", time.time(), pid=a_gone_pid())
    reused = record(state, "reused000000", time.time(), pid_started_at=ME.create_time() - 3600)  # another process now
    with pytest.raises(TargetError) as err:
        resolve_target(None, None)
    assert err.value.exit_code == 1
    assert not dead.exists() and not reused.exists()


def test_unreadable_records_are_skipped(state: Path) -> None:
    state.mkdir(parents=True)
    (state / "junk.json").write_text("{not json")
    alive = record(state, "alive0000000", time.time())
    assert [i.run_id for i in running(state)] == ["alive0000000"]
    assert alive.exists()


def test_one_running_pipeline_is_used_silently(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record(state, "only00000000", time.time())
    assert pipeline_url(None, None) == "redis://only00000000:6379/0"
    assert capsys.readouterr().err == ""


def test_several_pipelines_the_newest_is_used_and_stderr_says_which(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    record(state, "older0000000", now - 60)
    record(state, "newest000000", now)
    record(state, "oldest000000", now - 3600)
    assert pipeline_url(None, None) == "redis://newest000000:6379/0"
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    assert f"using the newest, newest000000 (config /srv/vigil.yaml, started {started})" in lines[0]
    assert "--pipeline RUN_ID chooses another: older0000000, oldest000000" in lines[0]


@pytest.mark.parametrize(
    ("chosen", "url"),
    [
        ("older0000000", "redis://older0000000:6379/0"),
        ("old", "redis://older0000000:6379/0"),
        ("n", "redis://newest000000:6379/0"),
    ],
)
def test_pipeline_option_picks_one_by_run_id_or_its_start(state: Path, chosen: str, url: str) -> None:
    record(state, "older0000000", time.time() - 60)
    record(state, "newest000000", time.time())
    assert resolve_target(None, chosen) == Target(url)


@pytest.mark.parametrize(("chosen", "why"), [("zzz", "is not a running pipeline"), ("", "matches several")])
def test_pipeline_option_that_matches_no_single_pipeline_is_bad_input(state: Path, chosen: str, why: str) -> None:
    record(state, "older0000000", time.time() - 60)
    record(state, "newest000000", time.time())
    with pytest.raises(TargetError) as err:
        resolve_target(None, chosen)
    assert err.value.exit_code == 2
    assert why in str(err.value) and "running: newest000000, older0000000" in str(err.value)


def test_nothing_running_is_one_line_naming_the_ways_out(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(app, ["cameras", "list"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "error: no running Vigil found on this machine: pass --redis-url or set VIGIL_REDIS_URL "
        "(`vigil run` and `vigil demo` record the pipelines they start)"
    ]


@pytest.mark.parametrize(
    ("flag", "pipeline", "env", "expected"),
    [
        ("redis://flag:1/0", None, "redis://env:1/0", "redis://flag:1/0"),  # the flag first
        (None, None, "redis://env:1/0", "redis://env:1/0"),  # then the environment, before any record
        (None, "recorded", "redis://env:1/0", "redis://recorded0000:6379/0"),  # a chosen pipeline beats the env
        (None, None, "", "redis://recorded0000:6379/0"),  # an empty variable is no variable
        (None, None, None, "redis://recorded0000:6379/0"),
    ],
)
def test_resolution_order(
    state: Path, monkeypatch: pytest.MonkeyPatch, flag: str | None, pipeline: str | None, env: str | None, expected: str
) -> None:
    record(state, "recorded0000", time.time())
    if env is not None:
        monkeypatch.setenv("VIGIL_REDIS_URL", env)
    assert resolve_target(flag, pipeline).url == expected


@pytest.mark.parametrize(
    ("flag", "pipeline", "env", "message"),
    [
        ("redis://a:1/0", "abc", None, "--redis-url and --pipeline: give one of them, not both"),
        (None, None, "localhost:6379", "VIGIL_REDIS_URL: 'localhost:6379' is not a Redis URL"),
        (None, None, "redis://:pw@h:port/0", "VIGIL_REDIS_URL: 'redis://***@h:port/0' is not a valid Redis URL"),
    ],
)
def test_malformed_input_exits_2(
    state: Path, monkeypatch: pytest.MonkeyPatch, flag: str | None, pipeline: str | None, env: str | None, message: str
) -> None:
    if env is not None:
        monkeypatch.setenv("VIGIL_REDIS_URL", env)
    with pytest.raises(TargetError) as err:
        resolve_target(flag, pipeline)
    assert err.value.exit_code == 2
    assert message in str(err.value) and "pw" not in str(err.value)


def test_a_state_folder_that_cannot_be_written_costs_only_the_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocked))
    with recorded(FakePipeline("abc", "redis://127.0.0.1:1/0")) as path:
        assert path is None
    assert "commands need --redis-url" in caplog.text
