"""Reading a config file's YAML within limits, so a hostile or broken file fails fast with one line.

YAML aliases let a few hundred bytes stand for billions of values (``b: [*a, *a, ...]`` nine levels
deep). Parsing such a file is quick because an alias is a reference; everything that walks the
result afterwards (``${VAR}`` substitution, validation, the key-path line index) would expand
every reference. So the file is composed once into YAML's node graph and measured there, each
distinct node once, before anything walks it expanded:

- ``MAX_FILE_BYTES``: a config file is read only up to this size;
- ``MAX_NODES``: the values the file holds with every alias expanded;
- ``MAX_DEPTH``: how deeply collections nest (aliases expanded);
- an alias that refers to a collection containing it (a recursive structure) is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 1 << 20
MAX_NODES = 100_000
MAX_DEPTH = 64
MERGE_KEY = "<<"

# libyaml's parser where PyYAML was built with it: faster, and it refuses pathological nesting itself.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class UnsafeYaml(ValueError):
    """The file is too large, expands too far, nests too deeply or refers to itself (one-line message)."""


def read_yaml(path: Path) -> tuple[Any, dict[str, int]]:
    """Parse ``path`` within the limits above: its data and its key-path line index (``line_index``).

    Raises UnsafeYaml for a file outside the limits, ``yaml.YAMLError`` for invalid YAML.
    """
    text = _read_text(path)
    try:
        root = yaml.compose(text, Loader=_Loader)
        if root is None:
            return None, {}
        measure(root)
        lines = line_index(root)
        loader = _Loader("")
        try:
            return loader.construct_document(root), lines
        finally:
            loader.dispose()
    except RecursionError:
        raise UnsafeYaml("nested too deeply to read") from None


def _read_text(path: Path) -> str:
    with path.open("rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise UnsafeYaml(f"the file is larger than {MAX_FILE_BYTES >> 20} MiB, the most a config file may be")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsafeYaml(f"not UTF-8 text (byte {exc.start})") from None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def measure(root: yaml.Node) -> tuple[int, int]:
    """Values under ``root`` with every alias expanded, and the depth of nesting, without expanding:
    each distinct node is visited once (its measure is kept by identity). Raises UnsafeYaml past
    ``MAX_NODES`` or ``MAX_DEPTH``, or where an alias refers to a collection that contains it."""
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth)
    open_nodes: set[int] = set()  # on the path from the root to the node being measured
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            kids = [done[id(k)] for k in _children(node)]
            size = 1 + sum(values for values, _ in kids)
            depth = 1 + max((d for _, d in kids), default=0)
            if size > MAX_NODES:
                raise UnsafeYaml(f"more than {MAX_NODES} values with its aliases expanded, the most a config may hold")
            if depth > MAX_DEPTH:
                raise UnsafeYaml(f"nested more than {MAX_DEPTH} levels deep")
            done[key] = (size, depth)
            open_nodes.discard(key)
        elif key in open_nodes:
            raise UnsafeYaml(f"line {node.start_mark.line + 1}: an alias refers to a collection that contains it")
        elif key not in done:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((kid, False) for kid in _children(node))
    return done[id(root)]


def line_index(root: yaml.Node) -> dict[str, int]:
    """Map key paths (``cameras[0].fps``) to 1-based line numbers.

    An aliased collection is indexed where it is defined; where an alias repeats it, only the alias's
    own key path is indexed (at the line of its key). Keys a merge (``<<: *defaults``) brings in are
    indexed at the merge's line. Nothing is walked twice, so the index is as large as the file.
    """
    index: dict[str, int] = {}
    seen: set[int] = set()

    def walk(node: yaml.Node, prefix: str) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                index[f"{prefix}[{i}]"] = item.start_mark.line + 1
                walk(item, f"{prefix}[{i}]")
        elif isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if key_node.tag == "tag:yaml.org,2002:merge":
                    for merged in _merged_keys(value_node):
                        index.setdefault(f"{prefix}.{merged}" if prefix else merged, line)
                    continue
                path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
                index[path] = line
                walk(value_node, path)

    walk(root, "")
    return index


def _merged_keys(node: yaml.Node) -> list[str]:
    """The keys a merge value (a mapping, or a sequence of mappings) brings in; one level, no values."""
    sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
    return [
        str(key.value)
        for source in sources
        if isinstance(source, yaml.MappingNode)
        for key, _ in source.value
        if isinstance(key, yaml.ScalarNode)
    ]
