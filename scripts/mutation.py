"""Mutation testing of Vigil's documented guarantees: break the code behind each one on purpose and
check that the test suite turns red.

Each mutant in ``scripts/mutants.py`` replaces one exact piece of source text (which must occur
exactly once in its file) and names the tests that cover its guarantee. For every mutant this
script:

1. checks that those tests pass on the unmutated tree (a red baseline proves nothing),
2. writes the mutant, runs the tests (``pytest -x``), and
3. restores the file byte for byte, whatever happens (Ctrl-C included).

A mutant is *killed* when the tests fail against it and *survived* when they pass. The exit status
is 0 only when every mutant selected was killed. ``--full`` runs the whole suite per mutant instead
of the named tests (slow: about as long as ``make test`` each).

Usage::

    .venv/bin/python scripts/mutation.py                 # every mutant
    .venv/bin/python scripts/mutation.py --list          # the catalogue
    .venv/bin/python scripts/mutation.py --only publish-once-nx --only redact-last-at
    .venv/bin/python scripts/mutation.py --guarantee "exactly once" --json mutation.json

The tests run from the repository root with bytecode caching off, so no stale ``.pyc`` of a mutant
outlives it; Ray workers and CLI subprocesses started by the tests import the mutated file too.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from mutants import MUTANTS, Mutant  # noqa: E402


@dataclass
class Outcome:
    name: str
    guarantee: str
    file: str
    result: str  # killed | survived | baseline-red | not-applicable
    seconds: float
    detail: str


def _pytest(tests: tuple[str, ...], full: bool, timeout_s: float) -> tuple[int, str]:
    env = os.environ | {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", "-rf"]
    args += ["tests"] if full else list(tests)
    proc = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return 124, out + f"\n(timed out after {timeout_s:.0f} s)"
    return proc.returncode, out


def _summary(out: str) -> str:
    """The line naming the first failure (or pytest's last line)."""
    lines = [ln for ln in out.splitlines() if ln.strip()]
    failed = [ln for ln in lines if ln.startswith(("FAILED tests/", "ERROR tests/"))]
    return (failed or lines[-1:] or [""])[0][:200]


def apply(mutant: Mutant) -> tuple[Path, str]:
    """Write the mutant; return the file and its original text (to restore)."""
    path = REPO / mutant.file
    original = path.read_text()
    count = original.count(mutant.old)
    if count != 1:
        raise LookupError(f"{mutant.file}: the text to mutate occurs {count} times (must be exactly once)")
    path.write_text(original.replace(mutant.old, mutant.new))
    return path, original


def run_one(mutant: Mutant, full: bool, timeout_s: float, baseline: dict[tuple[str, ...], bool]) -> Outcome:
    t0 = time.monotonic()

    def outcome(result: str, detail: str) -> Outcome:
        return Outcome(mutant.name, mutant.guarantee, mutant.file, result, round(time.monotonic() - t0, 1), detail)

    key = ("tests",) if full else mutant.tests
    if key not in baseline:
        rc, out = _pytest(mutant.tests, full, timeout_s)
        baseline[key] = rc == 0
        if rc != 0:
            return outcome("baseline-red", f"the tests fail without the mutant: {_summary(out)}")
    elif not baseline[key]:
        return outcome("baseline-red", "the tests fail without the mutant (see above)")
    try:
        path, original = apply(mutant)
    except LookupError as exc:
        return outcome("not-applicable", str(exc))
    try:
        rc, out = _pytest(mutant.tests, full, timeout_s)
    finally:
        path.write_text(original)
    if rc == 0:
        return outcome("survived", "every test passed against the mutant")
    return outcome("killed", _summary(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--list", action="store_true", help="print the catalogue and exit")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="run this mutant (repeatable)")
    parser.add_argument("--guarantee", help="run the mutants whose guarantee contains this text")
    parser.add_argument("--full", action="store_true", help="run the whole suite per mutant")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per test run (default 900)")
    parser.add_argument("--json", type=Path, help="write the outcomes here")
    args = parser.parse_args(argv)

    names = {m.name for m in MUTANTS}
    unknown = sorted(set(args.only) - names)
    if unknown:
        print(f"mutation: unknown mutant(s): {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    selected = [
        m
        for m in MUTANTS
        if (not args.only or m.name in args.only)
        and (not args.guarantee or args.guarantee.lower() in m.guarantee.lower())
    ]
    if args.list:
        for m in selected:
            print(f"{m.name:32} {m.guarantee}\n{'':32} {m.file}: {m.why}\n{'':32} tests: {' '.join(m.tests)}")
        return 0
    if not selected:
        print("mutation: no mutant selected", file=sys.stderr)
        return 2

    outcomes: list[Outcome] = []
    baseline: dict[tuple[str, ...], bool] = {}
    started = time.monotonic()
    for i, mutant in enumerate(selected, 1):
        print(f"[{i}/{len(selected)}] {mutant.name} ({mutant.file}) ...", end=" ", flush=True)
        result = run_one(mutant, args.full, args.timeout, baseline)
        outcomes.append(result)
        print(f"{result.result} in {result.seconds:.0f} s: {result.detail}", flush=True)

    killed = sum(o.result == "killed" for o in outcomes)
    print(f"\n{killed}/{len(outcomes)} mutants killed in {time.monotonic() - started:.0f} s")
    for o in outcomes:
        if o.result != "killed":
            print(f"  {o.result}: {o.name} ({o.guarantee}): {o.detail}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=2) + "\n")
    return 0 if killed == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
