"""Every `vigil` subcommand, given bad input as a user's shell runs it (a real process): one line on
stderr, exit 2 for malformed input (a bad --redis-url, a missing config file, a bad value) and 1 when
no pipeline runs, never a traceback. The commands are read from the Typer app, so a new subcommand is
covered without editing this file."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import typing
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Any

import pytest
import typer
import yaml

from pipeline.cli.app import app
from pipeline.cli.common import DEMO_CONFIG

VIGIL = [sys.executable, "-m", "pipeline.cli.app"]
TMP = "<tmp>"  # replaced by the test's folder when the case runs
# Values a required parameter gets when it is not the one under test: valid, so the bad one is what fails.
GOOD = {"since": "15m", "url": "rtsp://127.0.0.1:9/stream", "camera_id": "lobby", "event_id": "abc", "data": TMP}


@dataclass(frozen=True)
class Param:
    name: str
    flag: str | None  # None: a positional argument
    required: bool
    base: type  # int, float, str, Path, bool


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    exit_code: int
    says: str | None = None  # a part of the error line


def _base(annotation: Any) -> type:
    """int for ``Annotated[int | None, ...]``, Path for ``list[Path]``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (UnionType, typing.Union):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        elif origin is list:
            annotation = typing.get_args(annotation)[0]
        else:
            return typing.cast(type, annotation)


def leaf_commands() -> dict[str, list[Param]]:
    """Every runnable command (`events tail`, `run`, ...) with its parameters."""
    found: dict[str, list[Param]] = {}

    def walk(command: Any, path: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, [*path, name])
            return
        function = inspect.unwrap(command.callback)
        hints = typing.get_type_hints(function, include_extras=True)
        found[" ".join(path)] = [
            Param(
                p.name,
                None if p.param_type_name == "argument" else p.opts[-1],
                p.required,
                _base(hints[p.name]),
            )
            for p in command.params
        ]

    walk(typer.main.get_command(app), [])
    return found


def _value(param: Param) -> str:
    if param.name in GOOD:
        return GOOD[param.name]
    if param.base is Path:
        return f"{TMP}/absent"
    return "1" if param.base in (int, float) else "x"


def _invocation(command: str, params: list[Param], given: dict[str, str]) -> tuple[str, ...]:
    """``command`` with ``given`` and a good value for every other required parameter."""
    args = command.split()
    for p in params:
        value = given.get(p.name, _value(p) if p.required else None)
        if value is None:
            continue
        args += [value] if p.flag is None else [p.flag, value]
    return tuple(args)


def cases() -> list[Case]:
    found: list[Case] = []
    for command, params in leaf_commands().items():
        by_name = {p.name: p for p in params}
        number = next((p for p in params if p.flag and p.base in (int, float)), None)
        if number is not None:
            bad = _invocation(command, params, {number.name: "many"})
            found.append(Case(f"{command}: {number.flag} many", bad, 2, f"'{number.flag}'"))
        else:
            found.append(Case(f"{command}: unknown option", (*_invocation(command, params, {}), "--frobnicate"), 2))
        if "redis_url" in by_name:
            bad = _invocation(command, params, {"redis_url": "localhost:6379"})
            found.append(Case(f"{command}: --redis-url localhost:6379", bad, 2, "--redis-url"))
        if "pipeline" in by_name:  # nothing recorded in this test's state folder, no VIGIL_REDIS_URL
            found.append(Case(f"{command}: no running pipeline", _invocation(command, params, {}), 1, "no running"))
        if "config" in by_name and by_name["config"].base is Path:
            given = {"config": f"{TMP}/missing.yaml"}
            if "demo_dir" in by_name:  # the demo renders its videos before it reads the config
                given["demo_dir"] = f"{TMP}/demo"
            found.append(Case(f"{command}: missing config", _invocation(command, params, given), 2, "missing.yaml"))
    return found


CASES = cases()


def _prepare(tmp: Path) -> None:
    """`--data` folders look like `vigil synth` folders; the demo's videos look rendered."""
    (tmp / "index.json").write_text("{}")
    (tmp / "demo").mkdir()
    for camera in yaml.safe_load(DEMO_CONFIG.read_text())["cameras"]:
        (tmp / "demo" / Path(camera["url"]).name).write_bytes(b"rendered")


def _run(case: Case, tmp: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = [a.replace(TMP, str(tmp)) for a in case.args]
    return subprocess.run([*VIGIL, *args], capture_output=True, text=True, timeout=120, cwd=tmp, env=env)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every case run once, four processes at a time."""
    tmp = tmp_path_factory.mktemp("bad-input")
    _prepare(tmp)
    env = {k: v for k, v in os.environ.items() if k not in ("VIGIL_REDIS_URL", "VIGIL_DEBUG")}
    env["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("no-pipelines"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = pool.map(lambda case: _run(case, tmp, env), CASES)
        return {case.id: result for case, result in zip(CASES, done, strict=True)}


def test_every_subcommand_is_covered() -> None:
    commands = leaf_commands()
    assert {"run", "demo", "cameras list", "events tail"} <= commands.keys()
    assert {c.id.split(":")[0] for c in CASES} == commands.keys()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_an_exit_code(
    case: Case, results: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    result = results[case.id]
    shown = f"vigil {' '.join(case.args)}\nexit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr, shown
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, shown
    assert result.returncode == case.exit_code, shown
    if case.says is not None:
        assert case.says in lines[0], shown
