"""The child process each ``vigil bench`` mode runs in (``pipeline.bench.run`` starts it), so that the
CPU time and memory sampled over its process tree belong to that mode alone:

    python -m pipeline.bench.child MODE SPEC.json

Modes: ``limit`` (forward passes on pre-decoded frames, decode alone: ``pipeline.bench.limit``),
``baseline`` (one thread per camera running ultralytics ``model.track(stream=True)`` plus the ViT:
``pipeline.bench.baseline``), ``vigil`` (the real pipeline: Ray, Redis, metrics: ``pipeline.bench.vigil``),
``workers`` (Vigil's batched Detector/Classifier workers, decoder and tracker in-process, without Ray
or Redis: ``pipeline.bench.no_ray``). The child reports to its parent on stdout
(``pipeline.bench.protocol``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.bench.baseline import run_baseline
from pipeline.bench.limit import run_limit
from pipeline.bench.no_ray import run_workers
from pipeline.bench.protocol import report
from pipeline.bench.spec import ModeSpec
from pipeline.bench.vigil import run_vigil

MODES: dict[str, Callable[[ModeSpec], dict[str, Any]]] = {
    "limit": run_limit,
    "baseline": run_baseline,
    "workers": run_workers,
    "vigil": run_vigil,
}


@contextmanager
def quiet_stdout() -> Iterator[None]:
    """Libraries print to stdout; keep it for the protocol by pointing fd 1 at stderr meanwhile."""
    saved = os.dup(1)
    sys.stdout.flush()
    os.dup2(2, 1)
    protocol = os.fdopen(saved, "w", buffering=1)
    real, sys.stdout = sys.stdout, protocol
    try:
        yield
    finally:
        sys.stdout = real


def main() -> None:
    mode, spec_path = sys.argv[1], Path(sys.argv[2])
    spec = ModeSpec.from_json(spec_path.read_text())
    with quiet_stdout():
        try:
            result = MODES[mode](spec)
        except Exception as exc:  # the parent turns this into one line on stderr
            report(error=f"{mode}: {type(exc).__name__}: {exc}")
            raise SystemExit(1) from None
        report(result=result)


if __name__ == "__main__":
    main()
