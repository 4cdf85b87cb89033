"""Model cards: ``<weights>.card.json`` + ``.card.md`` next to trained weights (data, seed, command,
metrics, time, machine)."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch


def write_card(weights: Path, card: dict[str, Any]) -> None:
    """``<weights>.card.json`` (machine-readable) and ``<weights>.card.md`` (for people)."""
    card = {
        "weights": weights.name,
        "size_bytes": weights.stat().st_size,
        "command": _command_line(),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU'}",
        **card,
    }
    save_card(weights, card)


def save_card(weights: Path, card: dict[str, Any]) -> None:
    """Write a card as JSON and as Markdown (also used to add evaluation figures to a card)."""
    weights.with_suffix(".card.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
    lines = [f"# Model card: {weights.name}", ""]
    for key in (
        "model",
        "task",
        "labels",
        "data",
        "seed",
        "command",
        "epochs",
        "metrics",
        "train_seconds",
        "machine",
        "history",
        "evaluation",
        "notes",
    ):
        if key in card:
            value = card[key]
            if isinstance(value, dict):
                value = ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
            elif isinstance(value, list | tuple):
                value = ", ".join(str(v) for v in value)
            lines.append(f"- **{key}**: {_fmt(value) if not isinstance(value, str) else value}")
    weights.with_suffix(".card.md").write_text("\n".join(lines) + "\n")


def _command_line() -> str:
    """The command as the user typed it: ``vigil ...`` for the console script and ``python -m pipeline.cli.app``."""
    if Path(sys.argv[0]).name in ("vigil", "cli.py"):
        return " ".join(["vigil", *sys.argv[1:]])
    return " ".join(sys.argv)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
