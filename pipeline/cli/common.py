"""What every ``vigil`` command shares: the consoles, the one-line error exit, checked config loading."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

from pipeline.core.config import ConfigError, VigilConfig, load_config
from pipeline.core.redact import redact

console = Console()
err_console = Console(stderr=True)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO_ROOT / "configs" / "demo.yaml"
DEMO_MODELS = REPO_ROOT / "models" / "demo"


def fail(message: str, code: int = 1) -> NoReturn:
    """One clear line on stderr, no traceback."""
    err_console.print(f"[bold red]error:[/] {redact(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load_checked(path: Path, overrides: dict[str, object] | None = None) -> VigilConfig:
    """Load and validate a config, model files included; on problems print each and exit 2."""
    try:
        cfg = load_config(path, overrides)
        problems = cfg.models.missing_files()
    except ConfigError as exc:
        problems = exc.problems
    for problem in problems:
        err_console.print(f"[bold red]config error:[/] {path}: {problem}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(2)
    return cfg
