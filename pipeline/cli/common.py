"""What every ``vigil`` command shares: the consoles, the one-line error exit, checked config loading."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Literal, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from pipeline.core.config import ConfigError, VigilConfig, load_config
from pipeline.core.redact import redact

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

console = Console()
err_console = Console(stderr=True)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO_ROOT / "configs" / "demo.yaml"
DEMO_MODELS = REPO_ROOT / "models" / "demo"


def fail(message: str, code: int = 1) -> NoReturn:
    """One clear line on stderr, no traceback."""
    raise typer.Exit(error_line(message, code))


def error_line(message: str, code: int) -> int:
    """Print ``message`` as one redacted, plain ``error:`` line on stderr (a library's colours and
    line breaks removed); return ``code``."""
    one_line = " ".join(_ANSI.sub("", redact(message)).split())
    err_console.print(Text.assemble(("error:", "bold red"), " ", one_line), highlight=False, soft_wrap=True)
    return code


def load_checked(
    path: Path, overrides: dict[str, object] | None = None, *, sources: Literal["error", "warn", "ignore"] = "error"
) -> VigilConfig:
    """Load and validate a config, model files and file cameras included; on problems print each and
    exit 2. ``sources="warn"``: a file camera whose file is missing is a warning (the run reports
    that camera failed and runs the others), an error only when every camera is one; ``"ignore"``:
    not checked (a command that uses only the config's models)."""
    try:
        cfg = load_config(path, overrides)
        problems = cfg.models.missing_files()
        cameras = enumerate(cfg.cameras) if sources != "ignore" else iter(())
        missing = [(i, cam, why) for i, cam in cameras if (why := cam.missing_file()) is not None]
        if sources == "error" or len(missing) == len(cfg.cameras):
            problems += [f"cameras[{i}].url ({cam.id}): {why}" for i, cam, why in missing]
        else:
            for i, cam, why in missing:
                err_console.print(
                    f"[yellow]warning:[/] {path}: cameras[{i}].url ({cam.id}): {why}; the other cameras run",
                    highlight=False,
                    soft_wrap=True,
                )
    except ConfigError as exc:
        problems = exc.problems
    for problem in problems:
        err_console.print(f"[bold red]config error:[/] {path}: {problem}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(2)
    return cfg


def vigil_command() -> str:
    """How the user's shell runs this ``vigil``, for the commands Vigil prints: ``vigil`` where that is
    on the PATH, else its path (``.venv/bin/vigil`` after ``make setup``, relative to the working
    directory when it is inside it)."""
    script = Path(sys.executable).parent / "vigil"
    on_path = shutil.which("vigil")
    if not script.is_file() or (on_path is not None and Path(on_path).resolve() == script.resolve()):
        return "vigil"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)
