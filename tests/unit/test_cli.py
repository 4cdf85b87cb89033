"""The CLI's bad-input behaviour: one clear line, the right exit code, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli.app import app

runner = CliRunner()


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def test_validate_config_ok(tmp_path: Path) -> None:
    cfg = tmp_path / "ok.yaml"
    cfg.write_text("cameras:\n  - {id: door, url: 'rtsp://u:secret@cam/s', fps: 5}\n")
    result = invoke("validate-config", str(cfg))
    assert result.exit_code == 0, result.output
    assert "OK (1 camera)" in result.output
    assert "rtsp://***@cam/s" in result.output and "secret" not in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "file not found"),
        ("cameras: [\n", "invalid YAML"),
        ("cameras:\n  - {id: a, url: /x, speed: 3}\n", "cameras[0].speed (line 2): unknown key"),
        ("cameras:\n  - {id: a, url: /x, fps: many}\n", "cameras[0].fps (line 2): Input should be a valid number"),
        ("cameras:\n  - {id: a, url: /nope/lobby.mp4}\n", "cameras[0].url (a): file not found: /nope/lobby.mp4"),
        (
            "cameras:\n  - {id: a, url: 'rtsp://cam/x'}\nmodels: {detector: {weights: /nope/best.pt}}\n",
            "models.detector.weights: '/nope/best.pt' is not a local file",
        ),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path: Path, text: str | None, message: str) -> None:
    cfg = tmp_path / "bad.yaml"
    if text is not None:
        cfg.write_text(text)
    result = invoke("validate-config", str(cfg))
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_run_with_bad_config_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("cameras: []\n")
    result = invoke("run", str(cfg))
    assert result.exit_code == 2
    assert "at least one camera is required" in result.output


def test_run_refuses_a_config_whose_every_camera_is_a_missing_file(tmp_path: Path) -> None:
    """Before any model loads: nothing could run."""
    cfg = tmp_path / "gone.yaml"
    cfg.write_text("cameras:\n  - {id: a, url: /nope/a.mp4}\n  - {id: b, url: 'file:///nope/b.mp4'}\n")
    result = invoke("run", str(cfg))
    assert result.exit_code == 2
    assert result.output.count("file not found") == 2 and "Traceback" not in result.output


def test_training_progress_is_plain_lines_where_output_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.models import progress_bar

    with progress_bar() as progress:
        for step in range(101):
            progress("training lstm head", step, 100)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "training lstm head: 0/100" and lines[-1] == "training lstm head: 100/100"
    assert len(lines) == 11  # every 10 %, not every step


@pytest.mark.parametrize("trainer", ["detector", "classifier", "crops", "clip", "temporal"])
def test_training_never_overwrites_the_shipped_pack_unasked(tmp_path: Path, trainer: str) -> None:
    from pipeline.cli.common import DEMO_MODELS

    data = tmp_path / "synth"
    data.mkdir()
    (data / "index.json").write_text("{}")
    before = {p.name: p.stat().st_mtime_ns for p in DEMO_MODELS.iterdir()}
    result = invoke("train", trainer, "--data", str(data), "--out", str(DEMO_MODELS / "model.pt"))
    assert result.exit_code == 2, result.output
    assert "that is the shipped model pack; pass --overwrite-pack" in result.output
    assert {p.name: p.stat().st_mtime_ns for p in DEMO_MODELS.iterdir()} == before


def test_training_writes_to_the_work_folder_by_default() -> None:
    from pipeline.cli.models import WORK_DIR, _output

    assert _output(None, "detector.pt", overwrite_pack=False) == WORK_DIR / "detector.pt"


def test_synth_and_eval_refuse_an_unknown_scenario_and_bad_rules(tmp_path: Path) -> None:
    result = invoke("synth", "--out", str(tmp_path / "s"), "--scenario", "busy")
    assert result.exit_code == 2 and "--scenario busy: one of default, rules" in result.output
    assert not (tmp_path / "s").exists()
    data = tmp_path / "set"
    data.mkdir()
    (data / "index.json").write_text("{}")
    rules = tmp_path / "rules.yaml"
    rules.write_text("analytics:\n  lines: []\n")
    result = invoke("eval", "--data", str(data), "--rules", str(rules))
    assert result.exit_code == 2, result.output
    assert f"--rules {rules}: analytics.analytics" in result.output
    assert "go at the top, without an `analytics:` key" in result.output
