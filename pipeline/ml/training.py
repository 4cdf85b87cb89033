"""Training Vigil's models on labelled video: ``vigil train detector | classifier | temporal``.

- detector: ultralytics YOLO (any ``.yaml``/``.pt`` it accepts) trained on frames exported from
  ``vigil synth`` folders in YOLO format (decoded from the MP4s, so compression is in the data).
- classifier: the scene ViT (``workers.classifier``) trained on frames for the per-frame scene label.
- temporal: an LSTM or transformer clip head trained on feature windows extracted by the trained
  detector + ViT + ``FrameSummarizer`` — the very classes the pipeline runs — from
  ``vigil synth`` folders or from a user's folder of clips (one subfolder per label).

Every command writes its weights and a model card (``<weights>.card.json`` + ``.md``: data,
seed, command, metrics, time). Progress goes through a callback so the CLI can show it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from pipeline.core.config import (
    ClassifierConfig,
    DetectorConfig,
    LSTMHead,
    TorchvisionViT,
    TransformerHead,
)
from pipeline.ml.synth import ACTIVITIES, CLASSES, POSTURES, SCENES, load_set, posture_examples
from workers.classifier import build_model, crop_boxes, preprocess, save_checkpoint
from workers.clip_head import FEATURE_VERSION, FrameSummarizer, summary_dim
from workers.decoder import model_input

Progress = Callable[[str, float, float], None]  # (task description, done, total)
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")


def _no_progress(_task: str, _done: float, _total: float) -> None:
    return None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def read_frames(path: Path, every: int = 1) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    """(index, BGR frame) of every ``every``-th frame of a video file."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"{path}: cannot open video")
    i = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            if i % every == 0:
                yield i, np.asarray(frame, dtype=np.uint8)
            i += 1
    finally:
        cap.release()


# -- model cards -----------------------------------------------------------------------------------


def write_card(weights: Path, card: dict[str, Any]) -> None:
    """``<weights>.card.json`` (machine-readable) and ``<weights>.card.md`` (for people)."""
    card = {
        "weights": weights.name,
        "size_bytes": weights.stat().st_size,
        "command": _command_line(),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU'}",
        **card,
    }
    save_card(weights, card)


def save_card(weights: Path, card: dict[str, Any]) -> None:
    """Write a card as JSON and as Markdown (also used to add evaluation figures to a card)."""
    weights.with_suffix(".card.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
    lines = [f"# Model card: {weights.name}", ""]
    for key in (
        "model",
        "task",
        "labels",
        "data",
        "seed",
        "command",
        "epochs",
        "metrics",
        "train_seconds",
        "machine",
        "history",
        "evaluation",
        "notes",
    ):
        if key in card:
            value = card[key]
            if isinstance(value, dict):
                value = ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
            elif isinstance(value, list | tuple):
                value = ", ".join(str(v) for v in value)
            lines.append(f"- **{key}**: {_fmt(value) if not isinstance(value, str) else value}")
    weights.with_suffix(".card.md").write_text("\n".join(lines) + "\n")


def _command_line() -> str:
    """The command as the user typed it: ``vigil ...`` for the console script and ``python -m pipeline.cli.app``."""
    if Path(sys.argv[0]).name in ("vigil", "cli.py"):
        return " ".join(["vigil", *sys.argv[1:]])
    return " ".join(sys.argv)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# -- detector --------------------------------------------------------------------------------------


def prepare_ultralytics(config_dir: Path) -> None:
    """Offline-safe ultralytics: a settings dir with the fonts it would otherwise download."""
    fonts = config_dir / "Ultralytics"
    fonts.mkdir(parents=True, exist_ok=True)
    import matplotlib

    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (fonts / name).exists():
            shutil.copy(ttf, fonts / name)
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")


def export_yolo(
    data_dirs: list[Path],
    out: Path,
    every: int,
    val_fraction: float = 0.15,
    seed: int = 0,
    progress: Progress = _no_progress,
) -> tuple[Path, int, int]:
    """Write frames and labels in YOLO format + ``data.yaml``. Returns (yaml, train images, val images).

    Every ``every``-th frame goes in; training frames with a rare sight (a bag, a person lying)
    four times as often. Validation videos are whole videos held out, sampled uniformly.
    """
    videos = [v for d in data_dirs for v in load_set(d)]
    rng = np.random.default_rng(seed)
    val = set(rng.choice(len(videos), size=max(1, round(val_fraction * len(videos))), replace=False).tolist())
    counts = {"train": 0, "val": 0}
    for split in counts:
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    for k, (video, gt) in enumerate(videos):
        split = "val" if k in val else "train"
        w, h = gt["width"], gt["height"]
        offset = int(rng.integers(0, every))
        for i, frame in read_frames(video):
            rare = split == "train" and _has_rare_object(gt["frames"][i]["objects"])
            if (i - offset) % (max(1, every // 4) if rare else every):
                continue
            stem = f"{video.parent.name}_{video.stem}_{i:05d}"
            cv2.imwrite(str(out / "images" / split / f"{stem}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
            rows = []
            for obj in gt["frames"][i]["objects"]:
                x1, y1, x2, y2 = obj["xyxy"]
                c = CLASSES.index(obj["class"])
                rows.append(
                    f"{c} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
                )
            (out / "labels" / split / f"{stem}.txt").write_text("\n".join(rows) + ("\n" if rows else ""))
            counts[split] += 1
        progress("exporting frames", k + 1, len(videos))
    data_yaml = out / "data.yaml"
    data_yaml.write_text(
        f"path: {out.resolve()}\ntrain: images/train\nval: images/val\n"
        + "names:\n"
        + "".join(f"  {i}: {n}\n" for i, n in enumerate(CLASSES))
    )
    return data_yaml, counts["train"], counts["val"]


def _has_rare_object(objects: list[dict[str, Any]]) -> bool:
    for obj in objects:
        x1, y1, x2, y2 = obj["xyxy"]
        if obj["class"] == "bag" or (obj["class"] == "person" and (y2 - y1) < 1.2 * (x2 - x1)):
            return True
    return False


def train_detector(
    data_dirs: list[Path],
    out: Path,
    *,
    model: str = "yolo11n.yaml",
    epochs: int = 30,
    imgsz: int = 320,
    batch: int = 16,
    every: int = 10,
    seed: int = 0,
    device: str | None = None,
    work_dir: Path = Path(".vigil/train"),
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Train YOLO on exported frames; the best weights go to ``out`` (a .pt any ``YOLO()`` loads)."""
    prepare_ultralytics(work_dir / "ultralytics")
    from ultralytics import YOLO  # type: ignore[attr-defined]

    t0 = time.time()
    previous_card = Path(model).with_suffix(".card.json")  # fine-tuning Vigil's own weights: keep their history
    history = [json.loads(previous_card.read_text())] if previous_card.is_file() else []
    history = (
        [*history[0].get("history", []), {k: history[0].get(k) for k in ("command", "epochs", "metrics")}]
        if history
        else []
    )
    dataset = work_dir / "detector-data"
    shutil.rmtree(dataset, ignore_errors=True)
    data_yaml, n_train, n_val = export_yolo(data_dirs, dataset, every, seed=seed, progress=progress)
    yolo = YOLO(model, task="detect")

    def on_epoch_end(trainer: Any) -> None:
        progress("training detector", trainer.epoch + 1, trainer.epochs)

    yolo.add_callback("on_fit_epoch_end", on_epoch_end)
    results = yolo.train(
        data=str(data_yaml),
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        seed=seed,
        deterministic=True,
        device=device or ("0" if torch.cuda.is_available() else "cpu"),
        workers=min(4, os.cpu_count() or 1),
        project=str((work_dir / "runs").resolve()),
        name="detector",
        exist_ok=True,
        plots=False,
        amp=False,
        verbose=False,
        patience=epochs,
        close_mosaic=max(1, epochs // 5),
    )
    assert yolo.trainer is not None
    best = Path(yolo.trainer.best)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(best, out)
    box = results.box
    metrics = {
        "map50": float(box.map50),
        "map50_95": float(box.map),
        "per_class_map50": {CLASSES[int(c)]: float(box.ap50[i]) for i, c in enumerate(box.ap_class_index)},
    }
    write_card(
        out,
        {
            "model": f"ultralytics YOLO from {model}",
            "task": "detect",
            "labels": list(CLASSES),
            "data": {
                "dirs": [str(d) for d in data_dirs],
                "train_images": n_train,
                "val_images": n_val,
                "frame_every": every,
                "imgsz": imgsz,
            },
            "seed": seed,
            "epochs": epochs,
            "metrics": metrics,
            "train_seconds": round(time.time() - t0, 1),
            "history": history,
        },
    )
    return metrics


# -- classifier ------------------------------------------------------------------------------------


def _scene_frames(data_dirs: list[Path], every: int) -> tuple[list[npt.NDArray[np.uint8]], list[int], list[int]]:
    """Frames, scene indices and video indices (for a split by video)."""
    images, labels, groups = [], [], []
    for g, (video, gt) in enumerate(v for d in data_dirs for v in load_set(d)):
        for i, frame in read_frames(video, every):
            images.append(frame)
            labels.append(SCENES.index(gt["frames"][i]["scene"]))
            groups.append(g)
    return images, labels, groups


def _augment(img: npt.NDArray[np.uint8], rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    h, w = img.shape[:2]
    s = rng.uniform(0.75, 1.0)
    cw, ch = int(w * s), int(h * s)
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    out = img[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    gain = rng.uniform(0.6, 1.3)
    return np.clip(out.astype(np.float32) * gain + rng.normal(0, 3, out.shape), 0, 255).astype(np.uint8)


def train_classifier(
    data_dirs: list[Path],
    out: Path,
    *,
    arch: str = "vit_tiny",
    image_size: int = 112,
    epochs: int = 6,
    every: int = 5,
    batch: int = 32,
    lr: float = 5e-4,
    seed: int = 0,
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Train the scene ViT; writes a Vigil classifier checkpoint (fp16 weights) to ``out``."""
    t0 = time.time()
    images, labels, groups = _scene_frames(data_dirs, every)
    train_idx, val_idx = _split_by_video(groups, seed)
    metrics, dim = _fit_vit(
        ([images[i] for i in train_idx], [labels[i] for i in train_idx]),
        ([images[i] for i in val_idx], [labels[i] for i in val_idx]),
        SCENES,
        out,
        arch,
        image_size,
        epochs,
        batch,
        lr,
        seed,
        progress,
        "classifier",
    )
    metrics["val_frames"] = len(val_idx)
    card_data = {"dirs": [str(d) for d in data_dirs], "train_frames": len(train_idx), "frame_every": every}
    write_card(
        out,
        {
            "model": f"torchvision {arch} ViT, {image_size}px, embedding {dim}",
            "task": "scene classification",
            "labels": list(SCENES),
            "data": card_data,
            "seed": seed,
            "epochs": epochs,
            "metrics": metrics,
            "train_seconds": round(time.time() - t0, 1),
            "notes": "weights stored in fp16 (loaded into fp32 on CPU)",
        },
    )
    return metrics


FALL_SETTLE_S = 0.3  # the first moments of a fall are still upright-looking; not used as examples


def video_posture_crops(
    data_dirs: list[Path], every: int, padding: float, min_px: int
) -> tuple[list[npt.NDArray[np.uint8]], list[int]]:
    """Person crops from `vigil synth` videos labelled by posture: ``down`` inside a ``fall``
    segment of that track (once it has settled), ``upright`` otherwise."""
    crops, labels = [], []
    for video, gt in (v for d in data_dirs for v in load_set(d)):
        settle = round(FALL_SETTLE_S * gt["fps"])
        activities = gt["activities"]
        falls = [(a["start_frame"], a["end_frame"], set(a["track_ids"])) for a in activities if a["label"] == "fall"]
        down_frames = {f for s, e, _ in falls for f in range(s, e + 1)}
        for i, frame in read_frames(video, 1):
            if i % every and i not in down_frames:  # every frame of a fall, every n-th otherwise
                continue
            for obj in gt["frames"][i]["objects"]:
                x1, y1, x2, y2 = obj["xyxy"]
                if obj["class"] != "person" or obj["visibility"] < 0.6 or min(x2 - x1, y2 - y1) < min_px:
                    continue
                in_fall = [s for s, e, ids in falls if obj["track_id"] in ids and s <= i <= e]
                if in_fall and i < in_fall[0] + settle:
                    continue
                crops += crop_boxes(frame, np.array([obj["xyxy"]], np.float32), padding)
                labels.append(1 if in_fall else 0)
    return crops, labels


def train_crops(
    val_dirs: list[Path],
    out: Path,
    *,
    examples: int = 6000,
    arch: str = "vit_tiny",
    image_size: int = 64,
    epochs: int = 8,
    every: int = 10,
    batch: int = 64,
    lr: float = 5e-4,
    padding: float = 0.1,
    seed: int = 0,
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Train the crop classifier (posture: upright or down) on ``examples`` generated people, each
    a fresh figure (a video has only a few falls, which a ViT would memorise), and score it on the
    person crops of the `vigil synth` videos in ``val_dirs``. Writes a classifier checkpoint that
    ``models.crops.weights`` loads."""
    t0 = time.time()
    progress("rendering posture examples", 0, 1)
    train_crops_, train_labels = [], []
    for img, box, label in posture_examples(examples, seed):  # keep only the crop of each frame
        train_crops_ += crop_boxes(img, np.array([box], np.float32), padding)
        train_labels.append(label)
    val = video_posture_crops(val_dirs, every, padding, min_px=12)
    metrics, dim = _fit_vit(
        (train_crops_, train_labels), val, POSTURES, out, arch, image_size, epochs, batch, lr, seed, progress, "crops"
    )
    metrics["val_crops"] = len(val[1])
    write_card(
        out,
        {
            "model": f"torchvision {arch} ViT, {image_size}px, embedding {dim}",
            "task": "person posture from detection crops (models.crops)",
            "labels": list(POSTURES),
            "data": {
                "train": f"{examples} generated people (pipeline.ml.synth.posture_examples, seed {seed})",
                "validation": [str(d) for d in val_dirs],
                "val_crops_by_label": {p: val[1].count(i) for i, p in enumerate(POSTURES)},
            },
            "seed": seed,
            "epochs": epochs,
            "metrics": metrics,
            "train_seconds": round(time.time() - t0, 1),
            "notes": "validation: ground-truth person boxes of the videos, 'down' inside fall segments",
        },
    )
    return metrics


def _split_by_video(groups: list[int], seed: int) -> tuple[list[int], list[int]]:
    """Indices of training and validation examples, a seventh of the videos held out."""
    rng = np.random.default_rng(seed)
    n_groups = max(groups) + 1
    val_groups = set(rng.choice(n_groups, size=max(1, n_groups // 7), replace=False).tolist())
    val = [i for i, g in enumerate(groups) if g in val_groups]
    return [i for i, g in enumerate(groups) if g not in val_groups], val


def _fit_vit(
    train: tuple[list[npt.NDArray[np.uint8]], list[int]],
    val: tuple[list[npt.NDArray[np.uint8]], list[int]],
    names: tuple[str, ...],
    out: Path,
    arch: str,
    image_size: int,
    epochs: int,
    batch: int,
    lr: float,
    seed: int,
    progress: Progress,
    what: str,
) -> tuple[dict[str, Any], int]:
    """Train a ViT classifier, score it on ``val``, save it in fp16. Returns (metrics, dim)."""
    images, labels = train
    if len(set(labels)) < 2:
        raise ValueError(f"{what}: the data has examples of {len(set(labels))} label(s); it needs at least two")
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    backend = TorchvisionViT(arch=arch)
    model = build_model(backend, names, image_size, seed=seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * max(1, len(images) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps), pct_start=0.15)
    y_all = torch.tensor(labels)
    step = 0
    for _epoch in range(epochs):
        model.train()
        order = rng.permutation(len(images))
        for b in range(0, len(order) - batch + 1, batch):
            idx = order[b : b + batch]
            x = preprocess([_augment(images[i], rng) for i in idx], image_size)
            _, logits = model(x)
            loss = nn.functional.cross_entropy(logits, y_all[idx], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
            step += 1
            progress(f"training {what}", step, steps)
    predicted = _predict_labels(model, val[0], image_size)
    truth = torch.tensor(val[1], dtype=torch.int64)
    metrics: dict[str, Any] = {"val_accuracy": float((predicted == truth).float().mean()) if len(truth) else 0.0}
    if len(names) == 2:  # binary: how well each label is found and how often it is right
        for k, name in enumerate(names):
            hit = int(((predicted == k) & (truth == k)).sum())
            metrics[f"{name}_recall"] = hit / max(1, int((truth == k).sum()))
            metrics[f"{name}_precision"] = hit / max(1, int((predicted == k).sum()))
    model.half()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, model, backend, names, image_size)
    return metrics, int(model.embed_dim)


@torch.inference_mode()
def _predict_labels(model: nn.Module, images: list[npt.NDArray[np.uint8]], size: int) -> torch.Tensor:
    model.eval()
    out = [model(preprocess(images[b : b + 64], size))[1].argmax(1) for b in range(0, len(images), 64)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


# -- temporal --------------------------------------------------------------------------------------


@dataclass
class FeatureExtractor:
    """The pipeline's per-frame feature path, in process: detector -> summarizer, ViT embedding."""

    detector_weights: str
    classifier_weights: Path
    imgsz: int = 320
    confidence: float = 0.25

    def __post_init__(self) -> None:
        from workers.classifier import Classifier
        from workers.detector import Detector

        threads = max(1, (os.cpu_count() or 1))
        self.detector = Detector(
            DetectorConfig(weights=self.detector_weights, imgsz=self.imgsz, confidence=self.confidence), threads
        )
        self.classifier = Classifier(ClassifierConfig(weights=self.classifier_weights), threads)
        self.class_names = self.detector.names()
        self.dim = self.classifier.embedding_dim() + summary_dim(len(self.class_names))

    def video(self, path: Path, fps: float | None = None) -> npt.NDArray[np.float32]:
        """(frames, features) for every frame of a video, in order."""
        cap = cv2.VideoCapture(str(path))
        rate = fps or float(cap.get(cv2.CAP_PROP_FPS) or 10.0)
        cap.release()
        summarizer = FrameSummarizer(self.class_names)
        rows = []
        batch: list[tuple[int, npt.NDArray[np.uint8]]] = []
        for i, frame in read_frames(path):
            batch.append((i, frame))
            if len(batch) == 8:
                rows += self._batch(batch, summarizer, rate)
                batch = []
        if batch:
            rows += self._batch(batch, summarizer, rate)
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, self.dim), np.float32)

    def _batch(
        self, batch: list[tuple[int, npt.NDArray[np.uint8]]], summarizer: FrameSummarizer, rate: float
    ) -> list[npt.NDArray[np.float32]]:
        # As the cameras do: the models see the frame scaled to their size, boxes map back to it.
        small = [model_input(f, max(self.imgsz, self.classifier.image_size)) for _, f in batch]
        dets = self.detector.detect_batch([f for f, _ in small])
        scenes = self.classifier.classify_batch([f for f, _ in small])
        out = []
        for (i, frame), (_, scale), det, scene in zip(batch, small, dets, scenes, strict=True):
            summary = summarizer(det.scaled(1 / scale), (frame.shape[1], frame.shape[0]), i / rate)
            out.append(np.concatenate([scene.embedding, summary]).astype(np.float32))
        return out


def frame_labels(gt: dict[str, Any], labels: tuple[str, ...]) -> npt.NDArray[np.int64]:
    """Per-frame activity index from ground-truth segments (``normal`` elsewhere)."""
    y = np.full(gt["num_frames"], labels.index("normal"), np.int64)
    for act in gt["activities"]:
        y[act["start_frame"] : act["end_frame"] + 1] = labels.index(act["label"])
    return y


def windows(
    features: npt.NDArray[np.float32], y: npt.NDArray[np.int64], window: int, stride: int, normal: int
) -> tuple[list[npt.NDArray[np.float32]], list[int]]:
    """Sliding windows labelled with the activity covering at least half of their frames."""
    xs, ys = [], []
    for end in range(window, len(features) + 1, stride):
        seg = y[end - window : end]
        counts = np.bincount(seg, minlength=normal + 1)
        counts[normal] = 0
        label = int(counts.argmax()) if counts.max() * 2 >= window else normal
        xs.append(features[end - window : end])
        ys.append(label)
    return xs, ys


def _synth_labels(gt: dict[str, Any], labels: tuple[str, ...]) -> Callable[[int], npt.NDArray[np.int64]]:
    return lambda n: frame_labels(gt, labels)[:n]


def _constant_labels(k: int) -> Callable[[int], npt.NDArray[np.int64]]:
    return lambda n: np.full(n, k, np.int64)


def collect_sequences(
    extractor: FeatureExtractor,
    data_dirs: list[Path],
    clips_dir: Path | None,
    labels: tuple[str, ...],
    cache: Path | None,
    progress: Progress = _no_progress,
) -> list[tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]]:
    """(features, per-frame labels) for each video of synth folders and/or a clips folder."""
    jobs: list[tuple[Path, Callable[[int], npt.NDArray[np.int64]]]] = []
    for d in data_dirs:
        for video, gt in load_set(d):
            jobs.append((video, _synth_labels(gt, labels)))
    if clips_dir is not None:
        for sub in sorted(p for p in clips_dir.iterdir() if p.is_dir()):
            if sub.name not in labels:
                raise ValueError(f"{clips_dir}: folder {sub.name!r} is not a label ({', '.join(labels)})")
            for video in sorted(p for p in sub.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES):
                jobs.append((video, _constant_labels(labels.index(sub.name))))
    out = []
    for k, (video, label_fn) in enumerate(jobs):
        key = None
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            ident = (
                f"{FEATURE_VERSION}|{video.resolve()}|{video.stat().st_mtime}|"
                f"{extractor.detector_weights}|{extractor.classifier_weights}|{extractor.imgsz}|{extractor.confidence}"
            )
            key = cache / f"{hashlib.sha1(ident.encode()).hexdigest()[:16]}.npy"
        if key is not None and key.is_file():
            feats = np.load(key)
        else:
            feats = extractor.video(video)
            if key is not None:
                np.save(key, feats)
        out.append((feats, label_fn(len(feats))))
        progress("extracting features", k + 1, len(jobs))
    return out


def train_temporal(
    kind: str,
    data_dirs: list[Path],
    out: Path,
    *,
    detector: str,
    classifier: Path,
    clips_dir: Path | None = None,
    window: int = 16,
    train_stride: int = 2,
    epochs: int = 40,
    lr: float = 2e-3,
    seed: int = 0,
    imgsz: int = 320,
    confidence: float = 0.25,
    cache: Path | None = Path(".vigil/train/features"),
    embedding_features: int = 8,
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Train an LSTM or transformer clip head on extracted feature windows."""
    from workers.clip_head import build_head, save_checkpoint

    t0 = time.time()
    seed_everything(seed)
    labels = tuple(ACTIVITIES)
    extractor = FeatureExtractor(detector, classifier, imgsz=imgsz, confidence=confidence)
    seqs = collect_sequences(extractor, data_dirs, clips_dir, labels, cache, progress)
    rng = np.random.default_rng(seed)
    val_videos = (
        set(rng.choice(len(seqs), size=max(1, len(seqs) // 7), replace=False).tolist()) if len(seqs) > 2 else set()
    )
    normal = labels.index("normal")
    xs: dict[str, list[npt.NDArray[np.float32]]] = {"train": [], "val": []}
    ys: dict[str, list[int]] = {"train": [], "val": []}
    for k, (feats, y) in enumerate(seqs):
        split = "val" if k in val_videos else "train"
        wx, wy = windows(feats, y, window, train_stride, normal)
        xs[split] += wx
        ys[split] += wy
    if not xs["train"]:
        raise ValueError(f"no training windows: videos shorter than the window ({window} frames)?")
    head_cfg: LSTMHead | TransformerHead = (
        LSTMHead(embedding_features=embedding_features)
        if kind == "lstm"
        else TransformerHead(embedding_features=embedding_features)
    )
    emb_dim = extractor.classifier.embedding_dim()
    model = build_head(head_cfg, extractor.dim, len(labels), seed=seed, emb_dim=emb_dim)
    x_train = torch.from_numpy(np.stack(xs["train"]))
    y_train = torch.tensor(ys["train"])
    counts = torch.bincount(y_train, minlength=len(labels)).float()
    weight = (counts.sum() / (len(labels) * counts.clamp(min=1))).clamp(max=10.0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-3)
    batch = 64
    steps = epochs * max(1, len(x_train) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps), pct_start=0.1)
    step = 0
    for _epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x_train))
        for b in range(0, len(perm) - batch + 1, batch):
            idx = perm[b : b + batch]
            xb = x_train[idx] + 0.02 * torch.randn_like(x_train[idx])
            loss = nn.functional.cross_entropy(model(xb), y_train[idx], weight=weight, label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            progress(f"training {kind} head", step, steps)
    model.eval()
    metrics: dict[str, Any] = {"train_windows": len(x_train)}
    if xs["val"]:
        with torch.inference_mode():
            pred = model(torch.from_numpy(np.stack(xs["val"]))).argmax(1).numpy()
        y_val = np.array(ys["val"])
        metrics["val_window_accuracy"] = float((pred == y_val).mean())
        metrics["val_windows"] = len(y_val)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, model, head_cfg, labels, extractor.dim, emb_dim)
    write_card(
        out,
        {
            "model": f"{kind} clip head ({head_cfg.model_dump()}), window {window}",
            "task": "clip activity",
            "labels": list(labels),
            "data": {
                "dirs": [str(d) for d in data_dirs],
                "clips": str(clips_dir) if clips_dir else None,
                "videos": len(seqs),
                "detector": detector,
                "detector_imgsz": imgsz,
                "detector_confidence": confidence,
                "classifier": str(classifier),
                "feature_dim": extractor.dim,
            },
            "seed": seed,
            "epochs": epochs,
            "metrics": metrics,
            "train_seconds": round(time.time() - t0, 1),
        },
    )
    return metrics
