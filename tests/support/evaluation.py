"""`vigil synth` then `vigil eval`, as a user's shell runs them from the repository (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VIGIL = [sys.executable, "-m", "pipeline.cli.app"]


def synth_and_eval(
    data: Path, synth: Sequence[str], scoring: Sequence[str], eval_timeout_s: int = 600
) -> subprocess.CompletedProcess[str]:
    """Render a labelled set into ``data`` (``synth``: the options after ``--out``), then score it
    (``scoring``: the options after ``--data``); the eval's completed process, its output as text."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run(
        [*VIGIL, "synth", "--out", str(data), *synth], check=True, env=env, cwd=REPO, timeout=300, capture_output=True
    )
    return subprocess.run(
        [*VIGIL, "eval", "--data", str(data), *scoring],
        env=env,
        cwd=REPO,
        timeout=eval_timeout_s,
        capture_output=True,
        text=True,
    )
