"""The mutation catalogue (scripts/mutants.py) stays applicable as the code moves: each mutant's
text occurs exactly once in its file, changes it, and names tests that exist. A catalogue entry that
no longer applies would be skipped by scripts/mutation.py as "not-applicable", not killed."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _catalogue() -> tuple[Any, ...]:
    spec = importlib.util.spec_from_file_location("vigil_mutants", REPO / "scripts" / "mutants.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return tuple(module.MUTANTS)


MUTANTS = _catalogue()


def test_the_catalogue_covers_every_documented_guarantee() -> None:
    guarantees = {m.guarantee for m in MUTANTS}
    for needed in (
        "exactly once",
        "redaction",
        "reconnect",
        "frame order",
        "spool accounting",
        "metric catalogue",
        "event lifecycle",
    ):
        assert any(needed in g for g in guarantees), f"no mutant for the {needed!r} guarantee"
    names = [m.name for m in MUTANTS]
    assert len(names) == len(set(names)), "mutant names must be unique"


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_each_mutant_applies_once_and_names_real_tests(mutant: Any) -> None:
    m = mutant
    source = (REPO / m.file).read_text()
    assert source.count(m.old) == 1, f"{m.file}: the mutated text must occur exactly once"
    assert m.old != m.new
    assert m.tests
    for node in m.tests:
        path, _, rest = node.partition("::")
        test_file = REPO / path
        assert test_file.is_file(), f"{m.name}: no test file {path}"
        if rest:
            name = re.sub(r"\[.*$", "", rest.split("::")[-1])
            assert re.search(rf"^\s*(async )?def {re.escape(name)}\(", test_file.read_text(), re.M), node
