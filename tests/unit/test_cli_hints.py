"""The commands Vigil prints for the user to run next name the `vigil` their shell can run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipeline.cli.common import vigil_command


@pytest.mark.parametrize(
    ("on_path", "cwd", "expected"),
    [
        (False, "checkout", ".venv/bin/vigil"),  # after `make setup`, from the checkout
        (False, "elsewhere", "{checkout}/.venv/bin/vigil"),
        (True, "checkout", "vigil"),  # an activated venv, a Docker image, a system install
    ],
)
def test_printed_commands_name_the_vigil_the_shell_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, on_path: bool, cwd: str, expected: str
) -> None:
    checkout = tmp_path / "checkout"
    bin_dir = checkout / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "vigil").write_text("#!/bin/sh\n")
    (bin_dir / "vigil").chmod(0o755)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", str(bin_dir) if on_path else "/usr/bin:/bin")
    monkeypatch.chdir(tmp_path / cwd)
    assert vigil_command() == expected.format(checkout=checkout)
