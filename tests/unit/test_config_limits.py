"""A config file cannot make Vigil hang or exhaust memory: a file too large, an alias bomb, nesting too
deep and a structure that contains itself are refused at once, in one line naming the file, while
ordinary aliases and merges keep working with key paths and lines in their errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli.app import app
from pipeline.core.config import ConfigError, load_config, yaml_source


def _bomb() -> str:
    """Nine levels of nine aliases: 9^9 (387 million) values once expanded, 500 bytes as text."""
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    return "cameras: [{id: a, url: /x.mp4}]\n" + "\n".join(lines) + "\n"


HOSTILE = [
    pytest.param(_bomb(), "values with its aliases expanded", id="alias-bomb"),
    pytest.param("cameras:\n" + "# padding to past the limit\n" * 40_000, "larger than 1 MiB", id="oversized"),
    pytest.param("cameras: " + "[" * 200 + "]" * 200 + "\n", "nested more than 64 levels deep", id="deep"),
    pytest.param("cameras: &c [{id: a, url: /x, more: *c}]\n", "refers to a collection that contains it", id="self"),
    pytest.param(b"cameras: [{id: \xff}]\n", "not UTF-8 text", id="not-utf8"),
]


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "vigil.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("text", "expected"), HOSTILE)
def test_a_hostile_file_is_refused_in_one_line(tmp_path: Path, text: str | bytes, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source == str(path)
    assert len(info.value.problems) == 1 and expected in info.value.problems[0], info.value.problems


@pytest.mark.timeout(10)
def test_nesting_too_deep_for_the_pure_python_parser_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without libyaml, PyYAML's composer recurses once per level and runs out of stack first."""
    monkeypatch.setattr(yaml_source, "_Loader", yaml.SafeLoader)
    path = _write(tmp_path, "cameras: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply to read"):
        load_config(path)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("command", ["validate-config", "run"])
def test_the_cli_refuses_an_alias_bomb_with_exit_2_and_one_line(tmp_path: Path, command: str) -> None:
    path = _write(tmp_path, _bomb())
    result = CliRunner().invoke(app, [command, str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"config error: {path}: more than {yaml_source.MAX_NODES} values with its aliases expanded, "
        "the most a config may hold"
    ]


ALIASES = """\
cameras:
  - &lobby
    id: lobby
    url: rtsp://cam/lobby
    fps: 5
    motion: &still {enabled: true, threshold: 0.02}
  - <<: *lobby
    id: door
    url: rtsp://cam/door
  - id: yard
    url: rtsp://cam/yard
    motion: *still
"""


def test_ordinary_aliases_and_merges_are_read_as_written(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, ALIASES))
    lobby, door, yard = cfg.cameras
    assert (door.id, door.url, door.fps, door.motion) == ("door", "rtsp://cam/door", 5.0, lobby.motion)
    assert yard.motion.enabled and yard.motion.threshold == 0.02 and yard.fps == 10.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a key a merge brought in: the line of the merge
        (ALIASES.replace("fps: 5", "fps: -5"), "cameras[1].fps (line 7): Input should be greater than 0"),
        # the same key where the anchor is defined: its own line
        (ALIASES.replace("fps: 5", "fps: -5"), "cameras[0].fps (line 5): Input should be greater than 0"),
        # a key inside a repeated alias: the line of the alias
        (ALIASES.replace("0.02", "2"), "cameras[2].motion.threshold (line 12): Input should be less than"),
        (ALIASES.replace("0.02", "2"), "cameras[0].motion.threshold (line 6): Input should be less than"),
        # a key written beside a merge: its own line
        (ALIASES.replace("url: rtsp://cam/door", "speed: 3"), "cameras[1].speed (line 9): unknown key"),
    ],
)
def test_errors_under_aliases_name_the_key_path_and_a_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    assert any(expected in p for p in info.value.problems), info.value.problems
