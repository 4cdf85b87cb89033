"""`vigil validate-config` checks a file without loading the model stack (torch, ultralytics, Ray,
OpenCV, ...): it answers at once, also on a machine where those are slow to import or broken."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODEL_STACK = ("torch", "torchvision", "ultralytics", "ray", "cv2", "av", "timm", "transformers")

# Runs the CLI's entry point in a fresh interpreter, then reports which of the model stack got imported.
CHILD = f"""
import sys
from pipeline.cli.app import main
sys.argv = ["vigil", "validate-config", sys.argv[1]]
try:
    main()
except SystemExit as exc:
    code = exc.code
loaded = sorted(set({MODEL_STACK!r}) & {{name.split(".")[0] for name in sys.modules}})
print("exit", code, "loaded", ",".join(loaded) or "-")
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("config", "exit_code"),
    [
        (REPO / "configs" / "demo.yaml", 0),
        ("cameras:\n  - {id: a, url: /x, fps: many}\n", 2),
        ("cameras:\n  - {id: a, url: /x}\nmodels: {detector: {weights: /nope/best.pt}}\n", 2),
    ],
    ids=["demo", "invalid", "missing-weights"],
)
def test_validate_config_imports_no_model_library(tmp_path: Path, config: Path | str, exit_code: int) -> None:
    if isinstance(config, str):
        (tmp_path / "vigil.yaml").write_text(config)
        config = tmp_path / "vigil.yaml"
    for name in ("street-v2.mp4", "parking-v2.mp4"):  # the demo's cameras, which `vigil demo` renders
        (tmp_path / name).write_bytes(b"")
    env = {**os.environ, "VIGIL_DEMO_DIR": str(tmp_path)}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(config)], capture_output=True, text=True, cwd=tmp_path, timeout=100, env=env
    )
    assert child.stdout.splitlines()[-1] == f"exit {exit_code} loaded -", child.stdout + child.stderr
