"""How `vigil` ends when something is wrong: one line on stderr, exit 2 for malformed input, 1 for a
runtime failure, never a usage block or a traceback (the entry point, pipeline.cli.exits.run_cli)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from pipeline.cli.app import app
from pipeline.cli.exits import run_cli


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.out + captured.err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_run_blames_the_flag_not_the_config_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("cameras:\n  - {id: a, url: 'rtsp://cam/s'}\nredis:\n  url: null\n")
    assert run_cli(app, ["run", str(cfg), "--redis-url", "localhost:6379"]) == 2
    line = one_error_line(capsys)
    assert "'--redis-url': 'localhost:6379' is not a Redis URL (redis://, rediss:// or unix://)" in line
    assert "redis.url" not in line and "(line" not in line


@pytest.mark.parametrize(
    "command",
    [
        ["cameras", "list"],
        ["cameras", "add", "lobby", "rtsp://cam/s"],
        ["cameras", "remove", "lobby"],
        ["events", "tail"],
        ["events", "replay", "--since", "15m"],
        ["events", "consume", "--group", "g", "--consumer", "c"],
        ["events", "snapshot", "abc", "-o", "x.jpg"],
    ],
)
def test_a_malformed_redis_url_is_one_line_exit_2(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(app, [*command, "--redis-url", "admin:hunter2@localhost:6379"]) == 2
    line = one_error_line(capsys)
    assert "'--redis-url': '***@localhost:6379' is not a Redis URL" in line
    assert "hunter2" not in line


def test_usage_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(app, ["events", "tail", "--count", "many"]) == 2
    assert "Invalid value for '--count'" in one_error_line(capsys)
    assert run_cli(app, ["run"]) == 2
    assert "Missing argument 'config'" in one_error_line(capsys)


def test_an_output_path_in_a_missing_folder_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "no" / "such" / "schema.json"
    assert run_cli(app, ["events", "schema", "-o", str(target)]) == 2
    assert f"{target}: No such file or directory" in one_error_line(capsys)


broken = typer.Typer()


@broken.command()
def explode(password: str = "") -> None:
    raise RuntimeError(f"failed at redis://:{password}@db:6379/0\nsecond line")


@broken.command()
def other() -> None:
    pass


def test_an_unexpected_error_is_one_redacted_line_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIGIL_DEBUG", raising=False)
    assert run_cli(broken, ["explode", "--password", "s3cret"]) == 1
    line = one_error_line(capsys)
    assert "RuntimeError: failed at redis://***@db:6379/0 second line (VIGIL_DEBUG=1 shows the traceback)" in line


def test_vigil_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_DEBUG", "1")
    with pytest.raises(RuntimeError, match="failed at"):
        run_cli(broken, ["explode"])


def test_help_and_success_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(broken, ["other"]) == 0
    assert run_cli(app, ["cameras", "list", "--help"]) == 0
    assert "--pipeline" in capsys.readouterr().out
