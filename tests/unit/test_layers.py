"""The package layout's import rules: one direction between layers (import-linter's contract in
pyproject.toml) and no import cycle between any two modules, lazy imports inside functions included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import networkx as nx
import pytest

REPO = Path(__file__).resolve().parents[2]


def test_layers_contract_holds() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("pipeline", "workers", exclude_type_checking_imports=True)


def test_no_import_cycles(graph: grimp.ImportGraph) -> None:
    edges = nx.DiGraph()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            edges.add_edge(module, imported)
    # A package's __init__ importing its own modules is not a cycle a reader has to untangle.
    cycles = [
        c for c in nx.simple_cycles(edges) if not any(m.endswith(".__init__") or graph.find_children(m) for m in c)
    ]
    assert cycles == []
