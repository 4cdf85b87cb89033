"""``vigil synth``, ``vigil train detector|classifier|crops|clip|temporal`` and ``vigil eval``: the model commands.

``pipeline.cli.app`` registers them (``register``); both share ``pipeline.cli.common``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pipeline.cli.common import DEMO_CONFIG, DEMO_MODELS, REPO_ROOT, console, fail, load_checked

if TYPE_CHECKING:
    from pipeline.core.config import VigilConfig

train_app = typer.Typer(no_args_is_help=True, help="Train Vigil's models on labelled video (`vigil synth` folders).")


def register(app: typer.Typer) -> None:
    app.command()(synth)
    app.command("eval")(eval_cmd)
    app.add_typer(train_app, name="train")


DataDirs = Annotated[list[Path], typer.Option("--data", help="A `vigil synth` folder (repeatable)")]
WORK_DIR = Path(".vigil") / "models"  # where `vigil train` writes unless --out says otherwise
OverwritePack = Annotated[
    bool, typer.Option("--overwrite-pack", help="Allow --out inside the shipped model pack (models/demo)")
]


def _output(out: Path | None, name: str, overwrite_pack: bool) -> Path:
    """Where a trainer writes: ``out``, or ``WORK_DIR/name``; never into the shipped pack unless asked."""
    target = out if out is not None else WORK_DIR / name
    if not overwrite_pack and target.resolve().is_relative_to(DEMO_MODELS.resolve()):
        fail(f"--out {target}: that is the shipped model pack; pass --overwrite-pack to replace it", 2)
    return target


@contextmanager
def progress_bar() -> Iterator[Callable[[str, float, float], None]]:
    """A rich progress display; yields the callback ``(task, done, total)`` the trainers call.
    Where the output is not a terminal (CI, a log file) a plain line per task every 10 %."""
    if not console.is_terminal:
        reported: dict[str, int] = {}

        def log_line(task: str, done: float, total: float) -> None:
            tenth = int(10 * done / total) if total > 0 else 10
            if tenth > reported.get(task, -1):
                reported[task] = tenth
                console.print(f"{task}: {done:g}/{total:g}", highlight=False)

        yield log_line
        return
    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:

        def update(task: str, done: float, total: float) -> None:
            if task not in tasks:
                tasks[task] = bar.add_task(task, total=total)
            bar.update(tasks[task], completed=done, total=total)

        yield update


def _check_dirs(dirs: list[Path]) -> None:
    for d in dirs:
        if not (d / "index.json").is_file():
            fail(f"--data {d}: not a `vigil synth` folder (no index.json); make one with `vigil synth --out {d}`", 2)


def synth(
    out: Annotated[Path, typer.Option(help="Folder for the videos and ground truth")],
    videos: Annotated[int, typer.Option(min=1, max=10_000, help="Number of videos")] = 6,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same videos and ground truth")] = 0,
    seconds: Annotated[float, typer.Option(min=2, max=3600, help="Length of each video")] = 30.0,
    fps: Annotated[int, typer.Option(min=1, max=60, help="Frames per second")] = 10,
    width: Annotated[int, typer.Option(min=64, max=3840)] = 640,
    height: Annotated[int, typer.Option(min=64, max=2160)] = 360,
    scenario: Annotated[
        str,
        typer.Option(
            help="default: the scripted activities; rules: a steady camera, people crossing, lingering at and "
            "hidden behind a pillar on the line x = 0.5, with each object's true speed (for `vigil eval --rules`)"
        ),
    ] = "default",
) -> None:
    """Render labelled synthetic videos: H.264 MP4 + ground-truth JSON (boxes, tracks, scenes, activities)."""
    from pipeline.ml.synth.crossings import SCENARIOS
    from pipeline.ml.synth.dataset import synth_set

    if scenario not in SCENARIOS:
        fail(f"--scenario {scenario}: one of {', '.join(SCENARIOS)}", 2)
    frames_per_video = round(seconds * fps)
    with progress_bar() as update:
        index = synth_set(
            out,
            videos,
            seed,
            seconds,
            fps,
            (width, height),
            on_video=lambda i, gt: update("rendering videos", i + 1, videos),
            scenario=scenario,
        )
    acts = sum(len(v["activities"]) for v in index)
    console.print(f"{videos} videos ({frames_per_video} frames each, {acts} activities) in {out}", highlight=False)


@train_app.command("detector")
def train_detector_cmd(
    data: DataDirs,
    out: Annotated[
        Path | None, typer.Option(help="Where the weights go (.pt); default .vigil/models/detector.pt")
    ] = None,
    overwrite_pack: OverwritePack = False,
    model: Annotated[
        str, typer.Option(help="Starting point: an ultralytics .yaml (from scratch) or .pt")
    ] = "yolo11n.yaml",
    epochs: Annotated[int, typer.Option(min=1)] = 30,
    imgsz: Annotated[int, typer.Option(min=32)] = 320,
    batch: Annotated[int, typer.Option(min=1)] = 16,
    every: Annotated[int, typer.Option(min=1, help="Use every N-th frame")] = 10,
    seed: int = 0,
) -> None:
    """Train ultralytics YOLO on frames of `vigil synth` folders (offline-safe)."""
    from pipeline.ml.training.detector import train_detector

    _check_dirs(data)
    out = _output(out, "detector.pt", overwrite_pack)
    logging.getLogger("ultralytics").setLevel(logging.WARNING)
    with progress_bar() as update:
        metrics = train_detector(
            data, out, model=model, epochs=epochs, imgsz=imgsz, batch=batch, every=every, seed=seed, progress=update
        )
    console.print(
        f"detector: mAP50 {metrics['map50']:.3f}, mAP50-95 {metrics['map50_95']:.3f} (validation) -> {out}",
        highlight=False,
    )


@train_app.command("classifier")
def train_classifier_cmd(
    data: DataDirs,
    out: Annotated[
        Path | None, typer.Option(help="Where the checkpoint goes (.pt); default .vigil/models/classifier.pt")
    ] = None,
    overwrite_pack: OverwritePack = False,
    arch: Annotated[
        str, typer.Option(help="torchvision ViT: vit_tiny (Vigil's 4-layer) or vit_b_16, ...")
    ] = "vit_tiny",
    image_size: Annotated[int, typer.Option(min=32)] = 112,
    epochs: Annotated[int, typer.Option(min=1)] = 6,
    every: Annotated[int, typer.Option(min=1, help="Use every N-th frame")] = 5,
    seed: int = 0,
) -> None:
    """Train the scene ViT (label + embedding per frame) on `vigil synth` folders."""
    from pipeline.ml.training.classifier import train_classifier

    _check_dirs(data)
    out = _output(out, "classifier.pt", overwrite_pack)
    with progress_bar() as update:
        metrics = train_classifier(
            data, out, arch=arch, image_size=image_size, epochs=epochs, every=every, seed=seed, progress=update
        )
    console.print(f"classifier: validation accuracy {metrics['val_accuracy']:.3f} -> {out}", highlight=False)


@train_app.command("crops")
def train_crops_cmd(
    data: DataDirs,
    out: Annotated[
        Path | None, typer.Option(help="Where the checkpoint goes (.pt); default .vigil/models/crops.pt")
    ] = None,
    overwrite_pack: OverwritePack = False,
    examples: Annotated[int, typer.Option(min=100, help="Generated people to train on")] = 6000,
    image_size: Annotated[int, typer.Option(min=32)] = 64,
    epochs: Annotated[int, typer.Option(min=1)] = 8,
    seed: int = 0,
) -> None:
    """Train the crop classifier (models.crops): a person's posture, upright or down, from its box.
    Trains on generated people; --data folders (`vigil synth`) are the validation set."""
    from pipeline.ml.training.crops import train_crops

    _check_dirs(data)
    out = _output(out, "crops.pt", overwrite_pack)
    with progress_bar() as update:
        metrics = train_crops(
            data, out, examples=examples, image_size=image_size, epochs=epochs, seed=seed, progress=update
        )
    console.print(
        f"crops: validation accuracy {metrics['val_accuracy']:.3f}, 'down' recall {metrics['down_recall']:.3f} "
        f"precision {metrics['down_precision']:.3f} ({metrics['val_crops']} video crops) -> {out}",
        highlight=False,
    )


@train_app.command("clip")
def train_clip_cmd(
    data: DataDirs,
    out: Annotated[
        Path | None, typer.Option(help="Where the checkpoint goes (.pt); default .vigil/models/clip.pt")
    ] = None,
    overwrite_pack: OverwritePack = False,
    prompts: Annotated[
        Path,
        typer.Option(
            help="Evaluation prompts (models.zero_shot's scenes, attributes, activities) for the held-out figures"
        ),
    ] = REPO_ROOT / "configs" / "zero-shot-eval.yaml",
    image_size: Annotated[int, typer.Option(min=32)] = 96,
    epochs: Annotated[int, typer.Option(min=1)] = 5,
    people: Annotated[int, typer.Option(min=0, help="Generated people (upright or down) added to the crops")] = 4000,
    seed: int = 0,
) -> None:
    """Train a CLIP model that understands words (models.zero_shot, kind vigil): Vigil's ViT learns to
    embed frames and object crops where a locked sentence encoder (all-MiniLM-L6-v2) embeds captions
    written from the ground truth. A seventh of the videos is held out and labelled zero-shot."""
    from pipeline.ml.training.clip import train_clip

    _check_dirs(data)
    out = _output(out, "clip.pt", overwrite_pack)
    try:
        with progress_bar() as update:
            metrics = train_clip(
                data,
                out,
                prompts=prompts,
                image_size=image_size,
                epochs=epochs,
                people=people,
                seed=seed,
                progress=update,
            )
    except ValueError as exc:
        fail(str(exc), 2)
    console.print(
        f"clip: held-out zero-shot scene accuracy {metrics['scene_accuracy']:.3f} ({metrics['held_out_frames']} "
        f"frames), person posture accuracy {metrics['attribute_accuracy']:.3f} ({metrics['held_out_person_crops']} "
        f"crops) -> {out}",
        highlight=False,
    )


@train_app.command("temporal")
def train_temporal_cmd(
    kind: Annotated[str, typer.Option(help="lstm | transformer")] = "lstm",
    data: Annotated[list[Path] | None, typer.Option("--data", help="A `vigil synth` folder (repeatable)")] = None,
    clips: Annotated[Path | None, typer.Option(help="Your own clips: one subfolder per label, videos inside")] = None,
    detector: Annotated[str, typer.Option(help="Detector weights that extract the features")] = str(
        DEMO_MODELS / "detector.pt"
    ),
    classifier: Annotated[Path, typer.Option(help="Classifier checkpoint")] = DEMO_MODELS / "classifier.pt",
    out: Annotated[
        Path | None, typer.Option(help="Where the head goes (.pt); default .vigil/models/temporal-<kind>.pt")
    ] = None,
    overwrite_pack: OverwritePack = False,
    window: Annotated[int, typer.Option(min=2)] = 16,
    epochs: Annotated[int, typer.Option(min=1)] = 40,
    embedding_features: Annotated[
        int, typer.Option(min=0, help="Size the ViT embedding is projected to inside the head (0: not used)")
    ] = 8,
    text_space: Annotated[
        bool,
        typer.Option(
            "--text-space",
            help="Map windows into the sentence encoder's space, trained against captions of each label: "
            "then prompts label its windows (models.zero_shot.activities)",
        ),
    ] = False,
    config: Annotated[
        Path,
        typer.Option(help="The config the head will run with: features use its detector's imgsz and confidence"),
    ] = DEMO_CONFIG,
    seed: int = 0,
) -> None:
    """Train an LSTM or transformer clip head on features the trained detector + ViT extract."""
    from pipeline.ml.training.temporal import train_temporal

    det_cfg = _models_config(config).models.detector

    if kind not in ("lstm", "transformer"):
        fail(f"--kind: {kind!r} is not one of lstm, transformer", 2)
    if not data and clips is None:
        fail("give --data (vigil synth folders) and/or --clips (a folder with one subfolder per label)", 2)
    _check_dirs(data or [])
    if clips is not None and not clips.is_dir():
        fail(f"--clips {clips}: not a folder", 2)
    for name, path in (("--detector", Path(detector)), ("--classifier", classifier)):
        if not path.is_file():
            fail(f"{name} {path}: file not found (train it first: vigil train {name[2:]})", 2)
    target = _output(out, f"temporal-{kind}.pt", overwrite_pack)
    try:
        with progress_bar() as update:
            metrics = train_temporal(
                kind,
                data or [],
                target,
                detector=detector,
                classifier=classifier,
                clips_dir=clips,
                window=window,
                epochs=epochs,
                embedding_features=embedding_features,
                text_space=text_space,
                imgsz=det_cfg.imgsz,
                confidence=det_cfg.confidence,
                seed=seed,
                progress=update,
            )
    except ValueError as exc:
        fail(str(exc), 2)
    acc = metrics.get("val_window_accuracy")
    console.print(
        f"{kind} head: {metrics['train_windows']} training windows"
        + (f", validation window accuracy {acc:.3f}" if acc is not None else "")
        + f" -> {target}",
        highlight=False,
    )


def _models_config(config: Path) -> VigilConfig:
    """A config read for its models only (train temporal, eval): its cameras may name the demo
    videos, so ${VIGIL_DEMO_DIR} gets the demo's default; problems are printed, exit 2."""
    os.environ.setdefault("VIGIL_DEMO_DIR", str(Path(".vigil/demo").resolve()))
    return load_checked(config, sources="ignore")  # its models only


def _with_prompts(cfg: VigilConfig, prompts: Path, config: Path) -> VigilConfig:
    """``cfg`` with its ``models.zero_shot`` labels replaced by the maps in ``prompts`` (the backend and
    any key the file leaves out stay the config's); bad input exits 2 naming the key."""
    import yaml
    from pydantic import ValidationError

    from pipeline.core.config import ZeroShotConfig

    if cfg.models.zero_shot is None:
        fail(f"--zero-shot: {config} has no models.zero_shot: give a config whose backend labels the prompts", 2)
    try:
        section = yaml.safe_load(prompts.read_text())
    except (OSError, yaml.YAMLError) as exc:
        fail(f"--zero-shot {prompts}: cannot read it: {exc}", 2)
    if not isinstance(section, dict):
        fail(f"--zero-shot {prompts}: expected a mapping with scenes, attributes and/or activities", 2)
    labels: dict[str, dict[str, Any]] = {"scenes": {}, "attributes": {}, "activities": {}}
    merged = {**cfg.models.zero_shot.model_dump(exclude=set(labels)), **labels, **section}
    try:
        zs = ZeroShotConfig.model_validate(merged)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        fail(f"--zero-shot {prompts}: " + "; ".join(problems), 2)
    return cfg.model_copy(update={"models": cfg.models.model_copy(update={"zero_shot": zs})})


def eval_cmd(
    data: Annotated[Path, typer.Option(help="A `vigil synth` folder the models never saw")],
    config: Annotated[
        Path, typer.Option(help="Config whose models are evaluated (its cameras are not used)")
    ] = DEMO_CONFIG,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the figures as JSON")] = None,
    heads: Annotated[str, typer.Option(help="Clip heads to evaluate, comma-separated")] = "lstm,transformer",
    lstm: Annotated[Path, typer.Option(help="LSTM head weights")] = DEMO_MODELS / "temporal-lstm.pt",
    transformer: Annotated[Path, typer.Option(help="Transformer head weights")] = DEMO_MODELS
    / "temporal-transformer.pt",
    rules: Annotated[
        Path | None,
        typer.Option(
            help="A camera's analytics section (YAML: zones, lines, ...) put on every video: also score the zone "
            "and line events against the same analytics on the ground-truth tracks (configs/rules-eval.yaml)"
        ),
    ] = None,
    zero_shot: Annotated[
        Path | None,
        typer.Option(
            "--zero-shot",
            help="Prompts (YAML: the scenes, attributes and activities maps of models.zero_shot) labelled by the "
            "config's models.zero_shot.backend: score the scene and person-posture labels they give, with the "
            "trained models' beside them (configs/zero-shot-eval.yaml)",
        ),
    ] = None,
    text_head: Annotated[
        Path,
        typer.Option(help="With --zero-shot activities: the clip head trained into the text space that labels them"),
    ] = DEMO_MODELS / "temporal-text.pt",
) -> None:
    """Run the full pipeline over labelled videos and score detection, scenes, crop labels and activity
    events (with --rules, zones and lines; with --zero-shot, labels from prompts)."""
    from pipeline.core.config import ConfigError
    from pipeline.core.config.loader import load_analytics
    from pipeline.ml.evaluate import CONFIG_RUN, EvalError, evaluate, render_table

    if not (data / "index.json").is_file():
        fail(f"--data {data}: not a `vigil synth` folder (no index.json)", 2)
    analytics = None
    if rules is not None:
        try:
            analytics = load_analytics(rules, f"--rules {rules}")
        except ConfigError as exc:
            fail("; ".join(f"{exc.source}: {p}" for p in exc.problems), 2)
    cfg = _models_config(config)
    prompted = _with_prompts(cfg, zero_shot, config) if zero_shot is not None else None
    zs = prompted.models.zero_shot if prompted is not None else None
    if zs is not None and zs.activities and not text_head.is_file():
        fail(f"--text-head {text_head}: file not found (train it: vigil train temporal --text-space)", 2)
    kinds = [k.strip() for k in heads.split(",") if k.strip()]
    weights = {"lstm": lstm, "transformer": transformer}
    heads_run = cfg.models.temporal is not None or analytics is None  # no clip head: --rules runs without one
    for k in kinds if heads_run else []:
        if k not in weights:
            fail(f"--heads: {k!r} is not one of lstm, transformer", 2)
        if not weights[k].is_file():
            fail(f"--{k} {weights[k]}: file not found (train it: vigil train temporal --kind {k})", 2)
    try:
        with progress_bar() as update:
            run_heads = {k: weights[k] for k in kinds}
            if prompted is None:
                report = evaluate(cfg, data, run_heads, progress=update, rules=analytics)
            else:  # labels from the prompts, then the trained models on the same videos beside them
                assert zs is not None
                if zs.activities and prompted.models.temporal is not None:  # the text-space head labels them
                    temporal = prompted.models.temporal.model_copy(update={"weights": text_head})
                    prompted = prompted.model_copy(
                        update={"models": prompted.models.model_copy(update={"temporal": temporal})}
                    )
                report = evaluate(prompted, data, {}, progress=update, rules=analytics)
                trained = cfg.model_copy(update={"models": cfg.models.model_copy(update={"zero_shot": None})})
                baseline = evaluate(trained, data, run_heads, progress=update)
                report["zero_shot"] = {  # a stage the prompts leave out ran the trained model: not theirs
                    "prompts": str(zero_shot),
                    "scene": report.get("scene") if zs.scenes else None,
                    "attributes": report.get("attributes") if zs.attributes else None,
                    "activities": report["events"].pop(CONFIG_RUN, None) if zs.activities else None,
                    "search": report.pop("search", None),
                    "trained": {k: baseline.get(k) for k in ("scene", "attributes", "events")},
                }
    except EvalError as exc:
        fail(str(exc))
    console.print(render_table(report))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"figures written to {json_out}", highlight=False)
