"""``models.zero_shot``: labels from a CLIP model and text prompts, no training.

A CLIP model embeds images and text into one space; each label is the mean embedding of its prompts
(each prompt written into every template), and an image gets the label whose embedding it is
closest to. The model comes from open_clip (an architecture name with a tag or a checkpoint file,
or a ``local-dir:`` folder) or from transformers (a CLIPModel folder saved with ``save_pretrained``,
or a hub name), or is one Vigil trained (``vigil train clip``: ``{kind: vigil, weights: FILE}``).
Hub weights download only with ``models.allow_download: true``;
``vigil models fetch`` saves them into a folder for machines without internet.

Example::

    models:
      zero_shot:
        backend: {kind: hf_clip, name_or_path: /models/clip-vit-base-patch32}
        scenes: {street: [a street], parking: [a parking lot]}
        attributes: {person: {lying: [a person lying on the ground], standing: [a person standing]}}
        activities: {fight: [people fighting]}
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from pipeline.core.config.base import Strict

KEY = "models.zero_shot.backend"
LOCAL_DIR = "local-dir:"  # open_clip's prefix for a folder holding open_clip_config.json and weights
HF_HUB = "hf-hub:"  # open_clip's prefix for a model on the Hugging Face hub
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz", ".ckpt")
_FETCH_HINT = "`vigil models fetch` saves one where there is internet"


def _downloads_off(key: str, value: str, what: str, fetch: str) -> str:
    return (
        f"{key}: {value!r} is not a local {what} and downloads are off (give a local {what} — "
        f"{_FETCH_HINT}: vigil models fetch {fetch} --out DIR — or set models.allow_download: true)"
    )


def looks_like_path(value: str) -> bool:
    """A value meant as a file or folder on this machine, not a hub name or a tag."""
    return (
        value.startswith(("/", "./", "../", "~"))
        or value.count("/") > 1
        or os.sep in value.replace("/", "")
        or value.endswith(_CHECKPOINT_SUFFIXES)
    )


class OpenClipBackend(Strict):
    """An open_clip model: ``model`` is an architecture name (``ViT-B-32``) with ``pretrained`` a tag
    (``laion2b_s34b_b79k``, downloaded) or a checkpoint file; or ``local-dir:PATH``, a folder with
    open_clip_config.json and the weights (what ``vigil models fetch open_clip:MODEL:TAG`` writes); or
    ``hf-hub:ORG/NAME`` (downloaded)."""

    kind: Literal["open_clip"] = "open_clip"
    model: str = Field(
        min_length=1, description="Architecture name (ViT-B-32), local-dir:FOLDER, or hf-hub:ORG/NAME (downloaded)"
    )
    pretrained: str | None = Field(
        default=None,
        description="With an architecture name: a tag (downloaded) or a local checkpoint file; null: untrained "
        "(labels are meaningless). Leave out with local-dir: and hf-hub:, which hold their weights",
    )

    @model_validator(mode="after")
    def _pretrained_fits_model(self) -> OpenClipBackend:
        if self.pretrained is not None and not self.pretrained.strip():
            raise ValueError("pretrained: empty; give a tag or a checkpoint file, or leave it out")
        if self.pretrained is not None and self.model.startswith((LOCAL_DIR, HF_HUB)):
            prefix = LOCAL_DIR if self.model.startswith(LOCAL_DIR) else HF_HUB
            raise ValueError(f"pretrained: leave it out with model {prefix}..., which holds its own weights")
        if self.model in (LOCAL_DIR, HF_HUB):
            raise ValueError(f"model: {self.model!r} names nothing after the prefix")
        return self

    def source_problem(self, allow_download: bool) -> str | None:
        """Why these weights cannot load on this machine (``key path: message``), else None."""
        if self.model.startswith(LOCAL_DIR):
            folder = Path(self.model.removeprefix(LOCAL_DIR)).expanduser()
            if not (folder / "open_clip_config.json").is_file():
                return f"{KEY}.model: no open_clip_config.json in folder {folder}"
            return None
        if self.model.startswith(HF_HUB):
            hub_id = self.model.removeprefix(HF_HUB)
            return None if allow_download else _downloads_off(f"{KEY}.model", self.model, "folder", f"hf:{hub_id}")
        if self.pretrained is None:
            return None
        if looks_like_path(self.pretrained) or Path(self.pretrained).expanduser().exists():
            if not Path(self.pretrained).expanduser().is_file():
                return f"{KEY}.pretrained: file not found: {self.pretrained}"
            return None
        if allow_download:
            return None
        return _downloads_off(
            f"{KEY}.pretrained", self.pretrained, "checkpoint file", f"open_clip:{self.model}:{self.pretrained}"
        )

    def with_absolute_paths(self, base: Path) -> OpenClipBackend:
        """Local paths made absolute against ``base`` (Ray workers do not share the CLI's directory)."""
        if self.model.startswith(LOCAL_DIR):
            folder = Path(self.model.removeprefix(LOCAL_DIR)).expanduser()
            return self.model_copy(update={"model": f"{LOCAL_DIR}{base / folder}"})
        if self.pretrained is not None and Path(self.pretrained).expanduser().is_file():
            return self.model_copy(update={"pretrained": str(base / Path(self.pretrained).expanduser())})
        return self


class HfClipBackend(Strict):
    """A transformers CLIPModel with its processor: a folder saved with ``save_pretrained`` (what
    ``vigil models fetch hf:ORG/NAME`` writes) or a hub name (``openai/clip-vit-base-patch32``, downloaded)."""

    kind: Literal["hf_clip"] = "hf_clip"
    name_or_path: str = Field(
        min_length=1, description="A local folder (save_pretrained) or a hub name ORG/NAME (downloaded)"
    )

    def source_problem(self, allow_download: bool) -> str | None:
        """Why these weights cannot load on this machine (``key path: message``), else None."""
        path = Path(self.name_or_path).expanduser()
        if path.exists():
            return None if path.is_dir() else f"{KEY}.name_or_path: not a folder: {self.name_or_path}"
        if looks_like_path(self.name_or_path):
            return f"{KEY}.name_or_path: folder not found: {self.name_or_path}"
        if allow_download:
            return None
        return _downloads_off(f"{KEY}.name_or_path", self.name_or_path, "folder", f"hf:{self.name_or_path}")

    def with_absolute_paths(self, base: Path) -> HfClipBackend:
        """A local folder made absolute against ``base``; a hub name stays."""
        path = Path(self.name_or_path).expanduser()
        return self.model_copy(update={"name_or_path": str(base / path)}) if path.is_dir() else self


class VigilClipBackend(Strict):
    """A CLIP model trained by ``vigil train clip``: Vigil's image tower in one checkpoint file, with
    the sentence encoder it was trained against (all-MiniLM-L6-v2, installed with Vigil) as its
    locked text tower. Nothing is downloaded."""

    kind: Literal["vigil"] = "vigil"
    weights: str = Field(min_length=1, description="The checkpoint file `vigil train clip` writes (.pt)")

    def source_problem(self, allow_download: bool) -> str | None:
        """Why these weights cannot load on this machine (``key path: message``), else None."""
        path = Path(self.weights).expanduser()
        if not path.exists():
            return f"{KEY}.weights: file not found: {self.weights}"
        return None if path.is_file() else f"{KEY}.weights: not a file: {self.weights}"

    def with_absolute_paths(self, base: Path) -> VigilClipBackend:
        """The checkpoint path made absolute against ``base``."""
        return self.model_copy(update={"weights": str(base / Path(self.weights).expanduser())})


ClipBackend = OpenClipBackend | HfClipBackend | VigilClipBackend


def _prompts(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        raise ValueError("give at least one prompt")
    if any(not p.strip() for p in value):
        raise ValueError("a prompt is empty")
    return value


Prompts = Annotated[tuple[str, ...], AfterValidator(_prompts)]
DEFAULT_TEMPLATES = ("{}", "a photo of {}.", "a video frame of {}.")


def _check_labels(labels: Iterable[str], where: str = "") -> None:
    """Labels are names without surrounding spaces, unique ignoring case."""
    seen: dict[str, str] = {}
    for label in labels:
        if not label.strip() or label != label.strip():
            raise ValueError(f"{where}label {label!r}: give a name without surrounding spaces")
        key = label.casefold()
        if key in seen:
            raise ValueError(f"{where}labels {seen[key]!r} and {label!r} differ only in case; give one")
        seen[key] = label


class ZeroShotConfig(Strict):
    """Zero-shot labels from a CLIP model and text prompts: a scene label per frame, attribute labels per
    detected object (by detector class) and activity labels, each from the label whose prompts an image
    is closest to. Each prompt is written into every template and a label's text embedding is their
    mean."""

    backend: Annotated[ClipBackend, Field(discriminator="kind")] = Field(
        description="Where the CLIP model comes from, selected by kind: open_clip | hf_clip | vigil"
    )
    scenes: dict[str, Prompts] = Field(
        default_factory=dict, description="Scene label -> prompts describing it (one label per frame)"
    )
    attributes: dict[str, dict[str, Prompts]] = Field(
        default_factory=dict,
        description="Detector class name -> attribute label -> prompts (one label per box of that class)",
    )
    activities: dict[str, Prompts] = Field(default_factory=dict, description="Activity label -> prompts describing it")
    background: str = Field(
        default="normal", description="The activity label when no activity reaches activity_min_score"
    )
    templates: tuple[str, ...] = Field(
        default=DEFAULT_TEMPLATES,
        min_length=1,
        description="Prompt templates, each with one {} where the prompt goes (an ensemble: the mean is used)",
    )
    scene_min_score: float = Field(
        default=0.3, ge=0, le=1, description="Lowest probability (softmax over the scene labels) that gives a scene"
    )
    attribute_min_score: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Lowest probability (softmax over a class's labels) that gives an attribute label",
    )
    activity_min_score: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Lowest probability (softmax over the activity labels) that gives an activity label",
    )

    @field_validator("templates")
    @classmethod
    def _templates_take_one_prompt(cls, templates: tuple[str, ...]) -> tuple[str, ...]:
        for i, template in enumerate(templates):
            try:
                ok = "{}" in template and template.format("x") is not None
            except (IndexError, KeyError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"template [{i}] {template!r}: write one {{}} where the prompt goes, no other braces")
        if len(set(templates)) != len(templates):
            raise ValueError("a template is repeated")
        return templates

    @field_validator("scenes", "activities")
    @classmethod
    def _labels(cls, labels: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        _check_labels(labels)
        return labels

    @field_validator("attributes")
    @classmethod
    def _attribute_labels(cls, classes: dict[str, dict[str, tuple[str, ...]]]) -> dict[str, dict[str, tuple[str, ...]]]:
        _check_labels(classes)
        for class_name, labels in classes.items():
            if not labels:
                raise ValueError(f"{class_name}: give at least one label with its prompts")
            _check_labels(labels, f"{class_name}: ")
        return classes

    @model_validator(mode="after")
    def _something_to_label(self) -> ZeroShotConfig:
        if not (self.scenes or self.attributes or self.activities):
            raise ValueError("give at least one of scenes, attributes, activities")
        _check_labels([self.background], "background: ")
        if self.background.casefold() in {a.casefold() for a in self.activities}:
            raise ValueError(f"background {self.background!r} is also an activity label; give another name")
        return self
