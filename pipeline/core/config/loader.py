"""Reading a config: YAML, ``${VAR}`` substitution, overrides, validation with key paths and lines."""

from __future__ import annotations

import difflib
import os
import re
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from pipeline.core.config.analytics import AnalyticsConfig
from pipeline.core.config.base import ID_PATTERN, Strict
from pipeline.core.config.cameras import CameraConfig, SourceKind
from pipeline.core.config.control import ControlConfig
from pipeline.core.config.events import EventsConfig
from pipeline.core.config.models import ClassifierConfig, ModelsConfig, TemporalConfig
from pipeline.core.config.ray import RayConfig
from pipeline.core.config.services import MetricsConfig, RedisConfig
from pipeline.core.config.yaml_source import UnsafeYaml, read_yaml
from pipeline.core.config.zero_shot import ZeroShotConfig
from pipeline.core.redact import redact

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PARENT = re.compile(r"(\.[^.\[]*|\[\d+\])$")  # the last step of a key path: ".fps" or "[0]"
_Weighted = TypeVar("_Weighted", ClassifierConfig, TemporalConfig)  # a model section with optional weights


class VigilConfig(Strict):
    """The whole config file."""

    cameras: tuple[CameraConfig, ...] = Field(description="Video sources (at least one)")
    redis: RedisConfig = Field(default_factory=RedisConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)

    @field_validator("cameras")
    @classmethod
    def _unique_ids(cls, cameras: tuple[CameraConfig, ...]) -> tuple[CameraConfig, ...]:
        if not cameras:
            raise ValueError("at least one camera is required")
        seen: set[str] = set()
        for cam in cameras:
            if cam.id in seen:
                raise ValueError(f"duplicate camera id {cam.id!r}")
            seen.add(cam.id)
        return cameras


class ConfigError(Exception):
    """A config problem a user must fix. ``problems`` holds one line per problem, each naming a key path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("; ".join(f"{source}: {p}" for p in problems))


def load_config(path: Path | str, overrides: dict[str, Any] | None = None) -> VigilConfig:
    """Read, substitute ``${VAR}``s in, and validate a YAML config file.

    ``overrides`` maps dotted key paths (``"redis.url"``) to values applied before validation.
    Raises ConfigError listing every problem with its key path (and YAML line when known).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), ["file not found" if not path.exists() else "not a file"])
    try:
        raw, lines = read_yaml(path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(str(path), [f"invalid YAML{where}: {getattr(exc, 'problem', exc)}"]) from None
    except UnsafeYaml as exc:
        raise ConfigError(str(path), [str(exc)]) from None
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read it: {exc.strerror or exc}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(str(path), ["top level must be a mapping with at least a 'cameras' key"])
    try:
        return parse_config(raw, str(path), lines, overrides)
    except RecursionError:
        raise ConfigError(str(path), ["nested too deeply to read"]) from None


def parse_config(
    raw: dict[str, Any],
    source: str = "<config>",
    lines: dict[str, int] | None = None,
    overrides: dict[str, Any] | None = None,
) -> VigilConfig:
    """Validate an already-parsed config mapping (see ``load_config``)."""
    problems: list[str] = []
    data = _substitute_env(raw, "", problems)
    for dotted, value in (overrides or {}).items():
        _set_path(data, dotted.split("."), value)
    if problems:
        raise ConfigError(source, problems)
    try:
        cfg = VigilConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(err, lines or {}, VigilConfig) for err in exc.errors()]) from None
    return absolute_paths(cfg)


def absolute_paths(cfg: VigilConfig, base: Path | None = None) -> VigilConfig:
    """Make relative file paths absolute (against ``base``, default the working directory).

    Ray actors do not share the CLI's working directory, so paths must be absolute before they
    travel. Relative detector weights that do not exist locally are names (``yolo11n.pt``) and stay.
    """
    base = base or Path.cwd()
    cameras = tuple(absolute_paths_camera(cam, base) for cam in cfg.cameras)
    m, ev = cfg.models, cfg.events
    det = m.detector
    if Path(det.weights).exists() and not Path(det.weights).is_absolute():
        det = det.model_copy(update={"weights": str(base / det.weights)})
    models = m.model_copy(
        update={
            "detector": det,
            "classifier": _abs_weights(m.classifier, base),
            "temporal": _abs_weights(m.temporal, base),
            "zero_shot": None
            if m.zero_shot is None
            else m.zero_shot.model_copy(update={"backend": m.zero_shot.backend.with_absolute_paths(base)}),
        }
    )
    events = ev.model_copy(
        update={
            "spool": ev.spool.model_copy(update={"dir": _abs(ev.spool.dir, base)}),
            "snapshots": ev.snapshots.model_copy(update={"dir": _abs(ev.snapshots.dir, base)}),
        }
    )
    return cfg.model_copy(update={"cameras": cameras, "models": models, "events": events})


def absolute_paths_camera(cam: CameraConfig, base: Path | None = None) -> CameraConfig:
    """A file camera with a relative path, made absolute (see ``absolute_paths``)."""
    if cam.kind is SourceKind.FILE and "://" not in cam.url and not Path(cam.url).is_absolute():
        return cam.model_copy(update={"url": str((base or Path.cwd()) / cam.url)})
    return cam


def _abs(path: Path | None, base: Path) -> Path | None:
    return path if path is None or path.is_absolute() else base / path


def _abs_weights(section: _Weighted | None, base: Path) -> _Weighted | None:
    """A model section (None: switched off) with its ``weights`` made absolute."""
    return None if section is None else section.model_copy(update={"weights": _abs(section.weights, base)})


def validate_camera(data: dict[str, Any], source: str = "camera") -> CameraConfig:
    """Validate one camera mapping (runtime ``cameras add``); ConfigError names the bad keys."""
    try:
        return absolute_paths_camera(CameraConfig.model_validate(data))
    except ValidationError as exc:
        raise ConfigError(source, [_describe(err, {}, CameraConfig) for err in exc.errors()]) from None


def validate_analytics(data: Any, source: str = "analytics", lines: dict[str, int] | None = None) -> AnalyticsConfig:
    """Validate one camera's ``analytics`` section (runtime ``zones set``) as the config would;
    ConfigError names the bad keys as ``analytics.<key path>``, with their lines where ``lines``
    (the section's own line index, ``read_yaml``) is given."""
    try:
        return AnalyticsConfig.model_validate(data)
    except ValidationError as exc:
        index = {f"analytics.{key}": line for key, line in (lines or {}).items()}
        errors = exc.errors()
    problems = [_describe({**err, "loc": ("analytics", *err["loc"])}, index, CameraConfig) for err in errors]
    if isinstance(data, dict) and "analytics" in data:
        problems.append("the section's own keys (zones, lines, ...) go at the top, without an `analytics:` key")
    raise ConfigError(source, problems)


def _read_section(path: Path, source: str) -> tuple[Any, dict[str, int]]:
    """A YAML file holding one section, with its line index; ConfigError (naming ``source``) where it
    cannot be read."""
    try:
        return read_yaml(path)
    except FileNotFoundError:
        raise ConfigError(source, ["file not found"]) from None
    except IsADirectoryError:
        raise ConfigError(source, ["not a file"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(source, [f"invalid YAML{where}: {getattr(exc, 'problem', exc)}"]) from None
    except UnsafeYaml as exc:
        raise ConfigError(source, [str(exc)]) from None
    except OSError as exc:
        raise ConfigError(source, [f"cannot read it: {exc.strerror or exc}"]) from None


def load_analytics(path: Path, source: str | None = None) -> AnalyticsConfig:
    """Read a YAML file holding exactly one camera's ``analytics`` section (``${VAR}``s substituted)
    and validate it like the config; ConfigError names ``source`` (default: the path)."""
    source = source or str(path)
    raw, lines = _read_section(path, source)
    if raw is None:
        raise ConfigError(source, ["empty: it must hold the analytics section (zones, lines, speed, calibration)"])
    problems: list[str] = []
    data = _substitute_env(raw, "analytics", problems)
    if problems:
        raise ConfigError(source, problems)
    return validate_analytics(data, source, lines)


PROMPT_SECTION = "models.zero_shot"
LABEL_MAPS = ("scenes", "attributes", "activities")


def validate_prompts(data: Any, running: ZeroShotConfig, source: str = "prompts") -> ZeroShotConfig:
    """``running`` with the keys ``data`` gives in place of its own (``data``: the keys of a
    ``models.zero_shot`` section but its backend, as ``vigil prompts set`` reads them; keys it leaves
    out stay as they run). ConfigError names each bad key as ``models.zero_shot.<key path>``. The
    backend, which of scenes, attributes and activities are set, and the classes attributes are for
    stay as the pipeline started: they decide which models run where; so does the background label,
    which the event rules ignore by name."""
    if not isinstance(data, dict):
        raise ConfigError(source, [f"expected a mapping: the keys of {PROMPT_SECTION} but backend"])
    problems = []
    if "backend" in data:
        problems.append(f"{PROMPT_SECTION}.backend: the CLIP model is chosen at start; change it in the config")
    if {"models", "zero_shot"} & set(data):
        problems.append(f"give the keys of {PROMPT_SECTION} (scenes, attributes, ...) at the top, without its parents")
    if problems:
        raise ConfigError(source, problems)
    try:
        new = ZeroShotConfig.model_validate({**running.model_dump(mode="json"), **data})
    except ValidationError as exc:
        section = tuple(PROMPT_SECTION.split("."))
        raise ConfigError(
            source, [_describe({**err, "loc": (*section, *err["loc"])}, {}, VigilConfig) for err in exc.errors()]
        ) from None
    for key in LABEL_MAPS:
        was, now = bool(getattr(running, key)), bool(getattr(new, key))
        if was != now:
            change = "removed" if was else "added"
            problems.append(f"{PROMPT_SECTION}.{key}: cannot be {change} while running (it decides which models run)")
    if new.background != running.background:
        problems.append(
            f"{PROMPT_SECTION}.background: stays {running.background!r} while running "
            "(events.clip_ignore_labels names the label that raises no event); change both in the config"
        )
    if running.attributes and new.attributes and set(new.attributes) != set(running.attributes):
        problems.append(
            f"{PROMPT_SECTION}.attributes: the classes ({', '.join(running.attributes)}) stay as they started; "
            "give their labels new prompts"
        )
    if problems:
        raise ConfigError(source, problems)
    return new


def load_prompts(path: Path, running: ZeroShotConfig | None = None, source: str | None = None) -> dict[str, Any]:
    """Read a YAML file of ``models.zero_shot`` keys (``${VAR}``s substituted), checked against
    ``running`` where given (``validate_prompts``); ConfigError names ``source`` (default: the path)."""
    source = source or str(path)
    raw, _lines = _read_section(path, source)
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(source, [f"expected a mapping: the keys of {PROMPT_SECTION} (scenes, attributes, ...)"])
    problems: list[str] = []
    data = _substitute_env(raw, PROMPT_SECTION, problems)
    if problems:
        raise ConfigError(source, problems)
    if running is not None:
        validate_prompts(data, running, source)
    return dict(data)


def _describe(err: Any, lines: dict[str, int], root: type[BaseModel]) -> str:
    key = _key_path(err["loc"])
    line = _line_of(key, lines)
    where = f" (line {line})" if line is not None else ""
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key" + _did_you_mean(root, err["loc"])
    elif err["type"] == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == ID_PATTERN:
        msg = "use letters, digits, '_' and '-', starting with a letter or digit, at most 63 characters"
    # Never echo the offending input: it may hold a password.
    return f"{key or '<top>'}{where}: {redact(msg)}"


def _did_you_mean(root: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """``"; did you mean 'fps'?"`` where the unknown key ``loc[-1]`` is close to a key its section has."""
    model: type[BaseModel] | None = root
    for step in loc[:-1]:
        if model is None:
            return ""
        if isinstance(step, str):
            field = model.model_fields.get(step)
            model = _model_in(field.annotation) if field is not None else None
        # an int step indexes a list of the same model: the model stays
    if model is None or not isinstance(loc[-1], str):
        return ""
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (``X``, ``X | None``, ``tuple[X, ...]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _line_of(key: str, lines: dict[str, int]) -> int | None:
    """The line of ``key``, else of its nearest parent in the index (a key inside a repeated alias,
    or one the file lacks, is shown at the line of the collection it belongs to)."""
    while key not in lines:
        parent = _PARENT.sub("", key)
        if parent == key:
            return None
        key = parent
    return lines[key]


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("torchvision", "timm", "lstm", "transformer", "open_clip", "hf_clip", "vigil"):
            continue  # discriminated-union tag pydantic inserts into the location
        else:
            out += f".{part}" if out else str(part)
    return out


def _substitute_env(value: Any, path: str, problems: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute_env(v, f"{path}.{k}" if path else str(k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_env(v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        problems.append(f"{path}: environment variable {name} is not set")
        return ""

    return _ENV_PATTERN.sub(repl, value)


def _set_path(data: dict[str, Any], keys: list[str], value: Any) -> None:
    """Set one override. A key inside a section the config switches off (``models.classifier: null``)
    is left out: the section stays off."""
    node = data
    for key in keys[:-1]:
        if key in node and node[key] is None:
            return
        node = node.setdefault(key, {})
    node[keys[-1]] = value
