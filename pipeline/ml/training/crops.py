"""``vigil train crops``: the crop classifier (person posture, upright or down) trained on generated
people and scored on the person crops of ``vigil synth`` videos."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.ml.synth.dataset import load_set
from pipeline.ml.synth.posture import POSTURES, posture_examples, true_posture
from pipeline.ml.training.cards import write_card
from pipeline.ml.training.common import Progress, no_progress, read_frames
from pipeline.ml.training.vit import fit_vit
from workers.classifier import crop_boxes


def video_posture_crops(
    data_dirs: list[Path], every: int, padding: float, min_px: int
) -> tuple[list[npt.NDArray[np.uint8]], list[int]]:
    """Person crops from `vigil synth` videos labelled by posture (``true_posture``: ``down`` inside
    a ``fall`` segment of that track once it has settled, ``upright`` otherwise)."""
    crops, labels = [], []
    for video, gt in (v for d in data_dirs for v in load_set(d)):
        falls = [a for a in gt["activities"] if a["label"] == "fall"]
        down_frames = {f for a in falls for f in range(a["start_frame"], a["end_frame"] + 1)}
        for i, frame in read_frames(video, 1):
            if i % every and i not in down_frames:  # every frame of a fall, every n-th otherwise
                continue
            for obj in gt["frames"][i]["objects"]:
                x1, y1, x2, y2 = obj["xyxy"]
                if obj["class"] != "person" or obj["visibility"] < 0.6 or min(x2 - x1, y2 - y1) < min_px:
                    continue
                posture = true_posture(gt, i, obj["track_id"])
                if posture is None:  # a fall not yet settled: neither posture
                    continue
                crops += crop_boxes(frame, np.array([obj["xyxy"]], np.float32), padding)
                labels.append(POSTURES.index(posture))
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
    progress: Progress = no_progress,
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
    metrics, dim = fit_vit(
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
