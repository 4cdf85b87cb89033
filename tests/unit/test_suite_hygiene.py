"""Rules the test suite keeps, checked on its own source: a test's deadline covers the waits inside
it, nothing waits a fixed time where a condition can be awaited, and no test reaches into Ray's
private modules."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
DEFAULT_TIMEOUT_S = 300.0  # [tool.pytest.ini_options] timeout in pyproject.toml
LONGEST_FIXED_SLEEP_S = 1.0


def _test_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("test_*.py"))


def _functions(tree: ast.Module) -> Iterator[ast.FunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            yield node


def _number(node: ast.AST | None) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return float(node.value)
    return None


def _timeout_marker(fn: ast.FunctionDef) -> float | None:
    for dec in fn.decorator_list:
        if isinstance(dec, ast.Call) and ast.unparse(dec.func) == "pytest.mark.timeout" and dec.args:
            return _number(dec.args[0])
    return None


def _waits(fn: ast.FunctionDef) -> float:
    """Seconds of literal deadlines inside ``fn``: wait_for's timeout and every ``timeout=`` keyword."""
    total = 0.0
    for node in ast.walk(fn):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        if name.endswith("wait_for") and len(node.args) >= 2:
            total += _number(node.args[1]) or 0.0
        for kw in node.keywords:
            if kw.arg in ("timeout", "timeout_s") and name != "pytest.mark.timeout":
                total += _number(kw.value) or 0.0
    return total


def test_each_tests_deadline_covers_the_waits_inside_it() -> None:
    """A test whose own waits can outlast pytest's timeout dies with a bare timeout instead of the
    named condition it was waiting for: give it a ``pytest.mark.timeout`` above the sum."""
    short: list[str] = []
    for path in _test_files():
        for fn in _functions(ast.parse(path.read_text())):
            limit = _timeout_marker(fn) or DEFAULT_TIMEOUT_S
            waits = _waits(fn)
            if waits > limit:
                short.append(f"{path.relative_to(TESTS)}::{fn.name}: waits up to {waits:.0f} s, timeout {limit:.0f} s")
    assert not short, "\n".join(short)


def test_no_fixed_sleeps_of_a_second_or_more() -> None:
    """Await the condition (tests.support.wait.wait_for) instead of sleeping a fixed time."""
    sleeps: list[str] = []
    for path in _test_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "time.sleep" and node.args:
                seconds = _number(node.args[0])
                if seconds is not None and seconds >= LONGEST_FIXED_SLEEP_S:
                    sleeps.append(f"{path.relative_to(TESTS)}:{node.lineno}: time.sleep({seconds:g})")
    assert not sleeps, "\n".join(sleeps)


@pytest.mark.parametrize("forbidden", ["ray._private", "ray._raylet"])
def test_no_test_imports_rays_private_modules(forbidden: str) -> None:
    found = [
        f"{path.relative_to(TESTS)}:{i}"
        for path in _test_files()
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if forbidden in line and ("import" in line or "from" in line)
    ]
    assert not found, found
