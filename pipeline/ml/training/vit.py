"""Fitting a ViT classifier on images (augmentation, training loop, validation figures, fp16
checkpoint): what the scene classifier and the crop classifier share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from pipeline.core.config import TorchvisionViT
from pipeline.ml.training.common import Progress, seed_everything
from workers.classifier import build_model, preprocess, save_checkpoint


def augment(img: npt.NDArray[np.uint8], rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """A random crop (75-100 % of each side), a horizontal flip half the time, a brightness gain and
    sensor noise: what a camera varies between views of the same thing."""
    h, w = img.shape[:2]
    s = rng.uniform(0.75, 1.0)
    cw, ch = int(w * s), int(h * s)
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    out = img[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    gain = rng.uniform(0.6, 1.3)
    return np.clip(out.astype(np.float32) * gain + rng.normal(0, 3, out.shape), 0, 255).astype(np.uint8)


def fit_vit(
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
            x = preprocess([augment(images[i], rng) for i in idx], image_size)
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
