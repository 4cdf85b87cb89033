"""How a mode's child process (``pipeline.bench.child``) talks to its parent (``pipeline.bench.run``):
one JSON object per stdout line after ``MARK``: ``{"progress": "...", "fraction": 0.4}``,
``{"window": "start"|"end"}`` (the measurement window, between warm-up and shutdown) and finally
``{"result": {...}}``, or ``{"error": "..."}`` where the mode failed."""

from __future__ import annotations

import json
import sys
from typing import Any

MARK = "@@vigil-bench "


def report(**message: Any) -> None:
    """One protocol line to the parent (stdout is shared with libraries, hence the marker)."""
    sys.stdout.write(MARK + json.dumps(message) + "\n")
    sys.stdout.flush()
