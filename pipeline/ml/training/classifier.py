"""``vigil train classifier``: the scene ViT (``workers.classifier``) trained on ``vigil synth`` frames
for the per-frame scene label, a seventh of the videos held out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.ml.synth.dataset import load_set
from pipeline.ml.synth.scenes import SCENES
from pipeline.ml.training.cards import write_card
from pipeline.ml.training.common import Progress, no_progress, read_frames
from pipeline.ml.training.vit import fit_vit


def _scene_frames(data_dirs: list[Path], every: int) -> tuple[list[npt.NDArray[np.uint8]], list[int], list[int]]:
    """Frames, scene indices and video indices (for a split by video)."""
    images, labels, groups = [], [], []
    for g, (video, gt) in enumerate(v for d in data_dirs for v in load_set(d)):
        for i, frame in read_frames(video, every):
            images.append(frame)
            labels.append(SCENES.index(gt["frames"][i]["scene"]))
            groups.append(g)
    return images, labels, groups


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
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Train the scene ViT; writes a Vigil classifier checkpoint (fp16 weights) to ``out``."""
    t0 = time.time()
    images, labels, groups = _scene_frames(data_dirs, every)
    train_idx, val_idx = _split_by_video(groups, seed)
    metrics, dim = fit_vit(
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


def _split_by_video(groups: list[int], seed: int) -> tuple[list[int], list[int]]:
    """Indices of training and validation examples, a seventh of the videos held out."""
    rng = np.random.default_rng(seed)
    n_groups = max(groups) + 1
    val_groups = set(rng.choice(n_groups, size=max(1, n_groups // 7), replace=False).tolist())
    val = [i for i, g in enumerate(groups) if g in val_groups]
    return [i for i, g in enumerate(groups) if g not in val_groups], val
