"""The configuration reference, generated from the config models.

    python -m pipeline.core.config_reference          # rewrites docs/configuration.md

Walks ``VigilConfig`` (pydantic v2) and writes one section per top-level key, with a table per
model: key path (``cameras[].fps``, ``models.detector.imgsz``), type, default and the field's
description. Nested models, optional models, tuples of models and unions discriminated by
``kind`` are followed; defaults of a nested model come from its parent's default, so a section
whose default is built differently from the class (``ray.classifier``) shows the real values.
A test keeps docs/configuration.md equal to ``render()``.
"""

from __future__ import annotations

import inspect
import re
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from pipeline.core.config import VigilConfig

OUT = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
REGENERATE = "python -m pipeline.core.config_reference"

_INTRO = """\
Vigil reads one YAML file, validated by strict models: an unknown key, a wrong type or a value out
of range is an error that names its key path (and its line). `vigil validate-config FILE` lists
every problem at once. `${VAR}` and `${VAR:-default}` anywhere in a value are replaced from the
environment, so passwords stay out of the file. Relative file paths are relative to the working
directory. `configs/cameras.yaml` is the commented start for real cameras; `configs/demo.yaml` is
what `make demo` runs.

Key paths: `a.b` is key `b` inside mapping `a`; `cameras[].fps` is `fps` in each entry of the
list `cameras`. A mapping chosen by its `kind` (a ViT backend, a clip head) has one table per
kind. "required" marks a key without a default.
"""


@dataclass(frozen=True)
class _Table:
    path: str
    title: str
    doc: str
    rows: tuple[tuple[str, str, str, str], ...]


def render() -> str:
    """The whole reference as Markdown."""
    out = [
        f"<!-- Generated from pipeline.core.config by `{REGENERATE}`; do not edit by hand. -->",
        "",
        "# Configuration reference",
        "",
        _INTRO,
    ]
    sections = list(VigilConfig.model_fields.items())
    out.append("Sections: " + ", ".join(f"[`{name}`](#{name})" for name, _ in sections) + ".")
    out.append("")
    for name, field in sections:
        out += [f"## {name}", ""]
        if field.description:
            out += [_text(field.description) + ".", ""]
        for table in _tables_for_field(name, field, _default_of(field)):
            out += _render_table(table)
    return "\n".join(out).rstrip("\n") + "\n"


def _tables_for_field(path: str, field: FieldInfo, default: Any) -> list[_Table]:
    """Tables for the models a field holds (none for a plain value)."""
    annotation = _unwrap(field.annotation)
    tables: list[_Table] = []
    item, is_list = _list_item(annotation)
    if is_list:
        annotation = item
        path = f"{path}[]"
        default = None
    models = _models_in(annotation)
    if len(models) == 1:
        instance = default if isinstance(default, models[0]) else None
        tables += _tables_for_model(path, models[0], instance, "")
    elif len(models) > 1:
        for model in models:
            kind = _kind_of(model)
            instance = default if isinstance(default, model) else None
            tables += _tables_for_model(path, model, instance, f" with `kind: {kind}`" if kind else "")
    return tables


def _tables_for_model(path: str, model: type[BaseModel], instance: BaseModel | None, suffix: str) -> list[_Table]:
    rows: list[tuple[str, str, str, str]] = []
    nested: list[_Table] = []
    for name, field in model.model_fields.items():
        default = getattr(instance, name) if instance is not None else _default_of(field)
        key = f"{path}.{name}"
        type_text = _type_name(field.annotation, field)
        rows.append((f"`{key}`", type_text, _default_text(default), _desc(name, field)))
        nested += _tables_for_field(key, field, default)
    title = f"`{path}`{suffix}"
    return [_Table(path, title, _doc(model), tuple(rows)), *nested]


def _render_table(table: _Table) -> list[str]:
    lines = [f"### {table.title}", ""]
    if table.doc:
        lines += [table.doc, ""]
    lines += ["| key | type | default | description |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    return [*lines, ""]


# --- types ---------------------------------------------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _union_args(annotation: Any) -> tuple[Any, ...] | None:
    if get_origin(annotation) in (Union, types.UnionType):
        return tuple(_unwrap(a) for a in get_args(annotation))
    return None


def _list_item(annotation: Any) -> tuple[Any, bool]:
    """(item type, True) for a list or a tuple of models; (annotation, False) otherwise."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is list and args and _models_in(_unwrap(args[0])):
        return _unwrap(args[0]), True
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and _models_in(_unwrap(args[0])):
        return _unwrap(args[0]), True
    return annotation, False


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models a (possibly optional, possibly union) annotation holds directly."""
    annotation = _unwrap(annotation)
    args = _union_args(annotation)
    candidates = args if args is not None else (annotation,)
    return [a for a in candidates if inspect.isclass(a) and issubclass(a, BaseModel)]


def _kind_of(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("kind")
    if field is None:
        return None
    args = get_args(_unwrap(field.annotation))
    return str(args[0]) if get_origin(_unwrap(field.annotation)) is Literal and len(args) == 1 else None


def _type_name(annotation: Any, field: FieldInfo | None = None) -> str:
    text = _type_text(_unwrap(annotation))
    limits = _limits(field) if field is not None else ""
    return f"{text} ({limits})" if limits else text


def _type_text(annotation: Any) -> str:
    annotation = _unwrap(annotation)
    if annotation is type(None):
        return "null"
    args = _union_args(annotation)
    if args is not None:
        models = [a for a in args if inspect.isclass(a) and issubclass(a, BaseModel)]
        kinds = [k for k in (_kind_of(m) for m in models) if k]
        rest = [_type_text(a) for a in args if a not in models]
        if len(models) > 1 and len(kinds) == len(models):
            head = "mapping, by `kind`: " + " or ".join(f"`{k}`" for k in kinds)
        elif models:
            head = "mapping"
        else:
            head = ""
        return " or ".join(p for p in [head, *rest] if p)
    origin = get_origin(annotation)
    if origin is Literal:
        return " or ".join(f"`{_value_text(v)}`" for v in get_args(annotation))
    if origin in (tuple, list):
        items = get_args(annotation)
        if origin is tuple and len(items) == 2 and items[1] is Ellipsis:
            return f"list of {_type_text(items[0])}"
        if origin is tuple:
            return "[" + ", ".join(_type_text(i) for i in items) + "]"
        return f"list of {_type_text(items[0])}" if items else "list"
    if origin is dict:
        key, value = get_args(annotation) or (Any, Any)
        return f"mapping of {_type_text(key)} to {_type_text(value)}"
    if inspect.isclass(annotation):
        if issubclass(annotation, BaseModel):
            return "mapping"
        if issubclass(annotation, Enum):
            return " or ".join(f"`{m.value}`" for m in annotation)
        if issubclass(annotation, Path):
            return "path"
        return {bool: "bool", int: "int", float: "float", str: "string"}.get(annotation, annotation.__name__)
    return str(annotation).replace("typing.", "")


def _limits(field: FieldInfo) -> str:
    parts: list[str] = []
    for meta in field.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{sign} {_value_text(value)}")
        multiple = getattr(meta, "multiple_of", None)
        if multiple is not None:
            parts.append(f"multiple of {multiple}")
        min_length = getattr(meta, "min_length", None)
        if min_length is not None:
            parts.append(_length_text(field.annotation, min_length))
        pattern = getattr(meta, "pattern", None)
        if pattern is not None:
            parts.append(f"pattern `{pattern}`")
    return ", ".join(parts)


def _length_text(annotation: Any, min_length: int) -> str:
    if _unwrap(annotation) is str:
        return "not empty" if min_length == 1 else f"at least {min_length} characters"
    return f"at least {min_length} item{'s' if min_length != 1 else ''}"


# --- values --------------------------------------------------------------------------------------


def _default_of(field: FieldInfo) -> Any:
    if field.is_required():
        return PydanticUndefined
    return field.get_default(call_default_factory=True)


def _default_text(default: Any) -> str:
    if default is PydanticUndefined:
        return "required"
    if isinstance(default, BaseModel):
        kind = getattr(default, "kind", None)
        return f"`{{kind: {kind}}}`, see below" if isinstance(kind, str) else "see below"
    return f"`{_value_text(default)}`"


def _value_text(value: Any) -> str:
    """A value as it is written in the YAML file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return _value_text(value.value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_value_text(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_value_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return value if value else '""'
    return str(value)


# --- text ----------------------------------------------------------------------------------------


def _desc(name: str, field: FieldInfo) -> str:
    """The field's description; for a nested model without one, its model's first sentence."""
    if field.description:
        return _text(field.description)
    models = _models_in(_list_item(_unwrap(field.annotation))[0])
    if len(models) == 1:
        return _doc(models[0]).split(". ")[0].rstrip(".")
    if name == "kind" and get_origin(_unwrap(field.annotation)) is Literal:
        return "Selects this table"
    return ""


def _doc(model: type[BaseModel]) -> str:
    doc = model.__dict__.get("__doc__")
    return _text(inspect.cleandoc(doc)) if doc else ""


def _text(text: str) -> str:
    """One Markdown line: reST ``code`` as `code`, line breaks as spaces."""
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    return " ".join(text.split())


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def write(path: Path = OUT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
