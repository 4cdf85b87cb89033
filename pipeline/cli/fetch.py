"""``vigil models fetch NAME... --out DIR``: save models where there is internet, for machines without.

A NAME is one of:

- ``yolo11n.pt`` (an ultralytics release, downloaded) or ``path/to/best.pt`` (copied): detector weights;
- ``timm:NAME``: timm's pretrained weights, into a Hugging Face cache folder;
- ``torchvision:NAME``: a torchvision ViT's DEFAULT weights, into a torch hub folder;
- ``open_clip:MODEL:TAG`` (TAG a tag or a local checkpoint file), ``open_clip:hf-hub:ORG/NAME`` or
  ``open_clip:local-dir:PATH``: saved as a folder ``models.zero_shot`` loads with ``local-dir:``;
- ``hf:ORG/NAME`` or ``hf:PATH``: a transformers model with its processor (``save_pretrained``).

Each model is loaded once (torchvision's weights: checksum-checked), and the config that uses the copy
is printed (with the environment variable the timm and torchvision caches need). ``pipeline.cli.app``
registers the ``models`` group (``register``). Exit codes: 0 all saved, 1 a model could not be
downloaded or loaded, 2 a NAME is malformed or names a local file that is not there.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from pipeline.cli.common import console, error_line, fail
from pipeline.core.config.zero_shot import HF_HUB, LOCAL_DIR, looks_like_path

models_app = typer.Typer(no_args_is_help=True, help="Save models into a folder for machines without internet.")

Kind = Literal["ultralytics", "timm", "torchvision", "open_clip", "hf"]
_PREFIXES: tuple[Kind, ...] = ("timm", "torchvision", "open_clip", "hf")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


class FetchError(Exception):
    """A model that could not be downloaded, loaded or saved (one line)."""


@dataclass(frozen=True)
class Source:
    """One NAME of the command line, parsed: its kind and the reference after the prefix."""

    name: str
    kind: Kind
    ref: str


@dataclass(frozen=True)
class Saved:
    """Where a model was saved, and the config (and environment) that use the copy."""

    path: Path
    config: str
    env: dict[str, str] = field(default_factory=dict)


@models_app.command("fetch")
def fetch(
    names: Annotated[
        list[str],
        typer.Argument(
            help="yolo11n.pt or a .pt path, timm:NAME, torchvision:NAME, open_clip:MODEL:TAG, hf:ORG/NAME or hf:PATH",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder the models are saved into")],
) -> None:
    """Save models into --out (downloading needs the internet) and print the config that uses each copy."""
    try:
        sources = [parse_source(name) for name in names]
    except FetchError as exc:
        fail(str(exc), 2)
    out = out.expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for source in sources:
        try:
            with console.status(f"fetching {source.name} ..."):
                saved = save(source, out)
        except FetchError as exc:
            failed += 1
            error_line(f"{source.name}: {exc}", 1)
            continue
        console.print(f"saved {source.name} -> {saved.path}", highlight=False, soft_wrap=True, markup=False)
        for key, value in saved.env.items():
            console.print(f"  environment: {key}={value}", highlight=False, soft_wrap=True, markup=False)
        console.print(saved.config, highlight=False, soft_wrap=True, markup=False)
    if failed:
        raise typer.Exit(1)


def parse_source(name: str) -> Source:
    """A NAME of the command line as a Source; FetchError for a malformed one or a missing local path."""
    prefix, sep, ref = name.partition(":")
    if sep and prefix in _PREFIXES:
        if not ref:
            raise FetchError(f"{name!r}: give a name after {prefix}:")
        source = Source(name, prefix, ref)
    elif sep and len(prefix) > 1:  # a drive letter (C:) is the one colon a path may start with
        raise FetchError(f"{name!r}: unknown prefix {prefix!r} (timm:, torchvision:, open_clip:, hf:, or a .pt)")
    else:
        source = Source(name, "ultralytics", name)
    _check_local(source)
    return source


def _check_local(source: Source) -> None:
    if source.kind == "ultralytics":
        if not source.ref.endswith(".pt"):
            raise FetchError(f"{source.name!r}: ultralytics weights end in .pt (yolo11n.pt, or a path to one)")
        is_path = "/" in source.ref or os.sep in source.ref  # else a release name, such as yolo11n.pt
        if is_path and not Path(source.ref).expanduser().is_file():
            raise FetchError(f"{source.name!r}: file not found")
    elif source.kind == "hf":
        if looks_like_path(source.ref) and not Path(source.ref).expanduser().is_dir():
            raise FetchError(f"{source.name!r}: folder not found: {source.ref}")
    elif source.kind == "open_clip":
        if source.ref.startswith(LOCAL_DIR):
            folder = Path(source.ref.removeprefix(LOCAL_DIR)).expanduser()
            if not (folder / "open_clip_config.json").is_file():
                raise FetchError(f"{source.name!r}: no open_clip_config.json in folder {folder}")
        elif not source.ref.startswith(HF_HUB):
            model, _, tag = source.ref.partition(":")
            if not model or not tag:
                raise FetchError(f"{source.name!r}: give open_clip:MODEL:TAG (a tag or a checkpoint file)")
            if looks_like_path(tag) and not Path(tag).expanduser().is_file():
                raise FetchError(f"{source.name!r}: checkpoint file not found: {tag}")


def save(source: Source, out: Path) -> Saved:
    """Download (or read) ``source``, check it loads, save it under ``out``."""
    savers = {
        "ultralytics": save_ultralytics,
        "timm": save_timm,
        "torchvision": save_torchvision,
        "open_clip": save_open_clip,
        "hf": save_hf,
    }
    try:
        return savers[source.kind](source.ref, out)
    except FetchError:
        raise
    except Exception as exc:  # a library's own failure: one line, the key to what went wrong
        from workers.detector import first_line

        raise FetchError(f"cannot save it: {first_line(exc)}") from exc


def check_hub(repo_id: str) -> None:
    """Fail fast, before any large download or model library import, where the Hugging Face hub is not
    reachable or has no such model (a download would otherwise retry for half a minute)."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import GatedRepoError, OfflineModeIsEnabled, RepositoryNotFoundError

    from workers.detector import first_line

    try:
        HfApi().model_info(repo_id)
    except OfflineModeIsEnabled:
        raise FetchError("HF_HUB_OFFLINE is set in this environment, which turns downloads off; unset it") from None
    except GatedRepoError:
        raise FetchError(f"{repo_id} is gated: accept its terms on the hub, then set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise FetchError(f"no model {repo_id} on the Hugging Face hub (a private one needs HF_TOKEN)") from None
    except Exception as exc:  # connection refused, DNS, TLS, timeouts: the hub is out of reach
        raise FetchError(f"cannot reach the Hugging Face hub ({constants.ENDPOINT}): {first_line(exc)}") from exc


def _folder_name(ref: str) -> str:
    """A folder name for a hub id or a path: ``openai/clip-vit-base-patch32`` -> ``openai--clip-vit-base-patch32``."""
    name = Path(ref).name if looks_like_path(ref) or Path(ref).exists() else ref.replace("/", "--")
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name).strip("._") or "model"


def _yaml(path: list[str], value: str) -> str:
    """A config snippet: nested keys, then a flow-style value, each level indented two spaces."""
    lines = [f"{'  ' * (i + 1)}{key}:" for i, key in enumerate(path[:-1])]
    return "\n".join([*lines, f"{'  ' * len(path)}{path[-1]}: {value}"])


def save_ultralytics(ref: str, out: Path) -> Saved:
    local = Path(ref).expanduser()
    target = out / local.name
    if local.is_file():
        if local.resolve() != target.resolve():
            shutil.copyfile(local, target)
    else:
        from ultralytics.utils.downloads import attempt_download_asset

        found = Path(attempt_download_asset(str(target)))
        if not found.is_file():
            raise FetchError(f"{ref} is not an ultralytics release (yolo11n.pt, yolo26n.pt, ...)")
        if found.resolve() != target.resolve():  # ultralytics found it in its own weights folder
            shutil.copyfile(found, target)
    from ultralytics import YOLO  # type: ignore[attr-defined]

    try:
        YOLO(str(target))
    except Exception as exc:
        from workers.detector import first_line

        raise FetchError(f"{target} does not load as ultralytics weights: {first_line(exc)}") from exc
    return Saved(target, _yaml(["models", "detector", "weights"], json.dumps(str(target))))


def save_timm(ref: str, out: Path) -> Saved:
    import timm

    if not timm.is_model(ref):
        close = difflib.get_close_matches(ref, timm.list_models(pretrained=True), n=3)
        raise FetchError(f"no timm model {ref}" + (f"; did you mean {', '.join(close)}?" if close else ""))
    pretrained_cfg = timm.models.get_pretrained_cfg(ref)
    hub_id = pretrained_cfg.hf_hub_id if pretrained_cfg is not None else None
    if not hub_id:  # weights behind a plain URL land in torch's cache, which HF_HUB_CACHE does not cover
        raise FetchError(f"timm's weights for {ref} are not on the Hugging Face hub; give a model that has them there")
    check_hub(hub_id)
    cache = out / "hf-cache"
    timm.create_model(ref, pretrained=True, num_classes=0, cache_dir=cache)
    backend = f"{{kind: timm, arch: {json.dumps(ref)}, pretrained: true}}"
    return Saved(cache, _yaml(["models", "classifier", "backend"], backend), {"HF_HUB_CACHE": str(cache)})


def save_torchvision(ref: str, out: Path) -> Saved:
    import torch
    from torchvision import models

    if ref not in models.list_models():
        close = difflib.get_close_matches(ref, models.list_models(), n=3)
        raise FetchError(f"no torchvision model {ref}" + (f"; did you mean {', '.join(close)}?" if close else ""))
    if not ref.startswith("vit_"):
        raise FetchError(f"{ref}: Vigil's classifier takes torchvision ViTs (vit_b_16, vit_l_16, ...)")
    weights = models.get_model_weights(ref).DEFAULT
    home = out / "torch"
    # Where torch.hub looks for it with TORCH_HOME=home; its file name carries the start of its SHA-256.
    target = home / "hub" / "checkpoints" / Path(weights.url).name
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = torch.hub.HASH_REGEX.search(target.name)
    try:
        if not target.is_file():
            torch.hub.download_url_to_file(
                weights.url, str(target), hash_prefix=digest.group(1) if digest else None, progress=False
            )
    except OSError as exc:  # urllib's URLError: no connection
        from workers.detector import first_line

        raise FetchError(f"cannot download {weights.url}: {first_line(exc)}") from exc
    backend = f"{{kind: torchvision, arch: {ref}, pretrained: true}}"
    return Saved(home, _yaml(["models", "classifier", "backend"], backend), {"TORCH_HOME": str(home)})


def save_open_clip(ref: str, out: Path) -> Saved:
    import open_clip
    import safetensors.torch

    model_name, pretrained, folder = _open_clip_source(ref)
    model, _, _ = open_clip.create_model_and_transforms(
        model_name, pretrained=pretrained, pretrained_image=False, pretrained_text=False
    )
    target = out / folder
    target.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(state, str(target / "open_clip_model.safetensors"))
    tokenizer = open_clip.get_tokenizer(model_name)
    if hasattr(tokenizer, "save_pretrained"):  # a Hugging Face tokenizer; open_clip's own BPE ships with it
        tokenizer.save_pretrained(str(target))
    config = {"model_cfg": open_clip.get_model_config(model_name), "preprocess_cfg": model.visual.preprocess_cfg}
    (target / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    backend = f"{{kind: open_clip, model: {json.dumps(LOCAL_DIR + str(target))}}}"
    return Saved(target, _yaml(["models", "zero_shot", "backend"], backend))


def _open_clip_source(ref: str) -> tuple[str, str | None, str]:
    """(model name for open_clip, pretrained, folder name) for ``open_clip:`` ``ref``; checks the hub first."""
    import open_clip

    if ref.startswith(LOCAL_DIR):
        folder = Path(ref.removeprefix(LOCAL_DIR)).expanduser()
        return f"{LOCAL_DIR}{folder}", None, f"open_clip-{_folder_name(str(folder))}"
    if ref.startswith(HF_HUB):
        hub_id = ref.removeprefix(HF_HUB)
        check_hub(hub_id)
        return ref, None, f"open_clip-{_folder_name(hub_id)}"
    model, _, tag = ref.partition(":")
    if model not in open_clip.list_models():
        close = difflib.get_close_matches(model, open_clip.list_models(), n=3)
        raise FetchError(f"no open_clip model {model}" + (f"; did you mean {', '.join(close)}?" if close else ""))
    if Path(tag).expanduser().is_file():
        return model, str(Path(tag).expanduser()), f"open_clip-{model}-{_folder_name(Path(tag).stem)}"
    cfg: dict[str, Any] = open_clip.get_pretrained_cfg(model, tag)
    if not cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(model)) or "none"
        raise FetchError(f"open_clip has no tag {tag!r} for {model} (its tags: {tags})")
    if cfg.get("hf_hub"):
        check_hub(str(cfg["hf_hub"]).strip("/"))
    return model, tag, f"open_clip-{model}-{_folder_name(tag)}"


def save_hf(ref: str, out: Path) -> Saved:
    local = Path(ref).expanduser()
    offline = local.is_dir()
    if not offline:
        check_hub(ref)
    from transformers import AutoConfig, AutoModel, AutoProcessor
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    source = str(local) if offline else ref
    target = out / _folder_name(ref)
    if offline and local.resolve() == target.resolve():
        raise FetchError(f"{target} is the folder it would be saved into; give another --out")
    config = AutoConfig.from_pretrained(source, local_files_only=offline)
    model = AutoModel.from_pretrained(source, config=config, local_files_only=offline)
    processor = AutoProcessor.from_pretrained(source, local_files_only=offline)  # type: ignore[no-untyped-call]
    model.save_pretrained(target)
    processor.save_pretrained(target)
    if config.model_type != "clip":
        note = f"# a transformers {config.model_type!r} model; models.zero_shot (hf_clip) takes CLIP models"
        return Saved(target, f"  {note}")
    backend = f"{{kind: hf_clip, name_or_path: {json.dumps(str(target))}}}"
    return Saved(target, _yaml(["models", "zero_shot", "backend"], backend))
