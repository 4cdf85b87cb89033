"""Temporal stage: LSTM or transformer clip heads over windows of per-frame features.

A frame's feature vector is its ViT embedding followed by a fixed-size detection summary
(:func:`detection_summary`). The window itself is per-camera state and lives with the camera
(``workers.camera``); ``TemporalHead`` is stateless and labels whatever window it is given.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.config import LSTMHead, TemporalConfig, TransformerHead
from pipeline.messages import Detections, FloatArray, LabelScore
from pipeline.metrics import BATCH_SIZE, MODEL_LOAD_SECONDS
from workers.common import MetricsExporter, configure_torch, set_process_role

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "vigil-temporal/1"
SUMMARY_STATS = 6  # count, mean confidence, mean area, mean aspect, mean centre x, mean centre y


def summary_dim(num_classes: int) -> int:
    return SUMMARY_STATS + num_classes


def detection_summary(det: Detections, resolution_wh: tuple[int, int], num_classes: int) -> FloatArray:
    """Fixed-size description of a frame's detections, in [0, ~1] units.

    [count/10, mean confidence, mean box area / frame area, mean h/w / 4, mean cx / W, mean cy / H,
    per-class count/10 ...]
    """
    out = np.zeros(summary_dim(num_classes), np.float32)
    if len(det) == 0:
        return out
    w, h = resolution_wh
    x1, y1, x2, y2 = det.xyxy.T
    bw, bh = np.maximum(x2 - x1, 1e-3), np.maximum(y2 - y1, 1e-3)
    out[:SUMMARY_STATS] = (
        len(det) / 10.0,
        float(det.confidence.mean()),
        float((bw * bh).mean() / (w * h)),
        float((bh / bw).mean() / 4.0),
        float(((x1 + x2) / 2).mean() / w),
        float(((y1 + y2) / 2).mean() / h),
    )
    valid = det.class_id[(det.class_id >= 0) & (det.class_id < num_classes)]
    out[SUMMARY_STATS:] = np.bincount(valid, minlength=num_classes)[:num_classes] / 10.0
    return out


class ClipLSTM(nn.Module):
    def __init__(self, in_dim: int, num_labels: int, cfg: LSTMHead) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.lstm = nn.LSTM(in_dim, cfg.hidden_size, num_layers=cfg.num_layers, batch_first=True)
        self.out = nn.Linear(cfg.hidden_size, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> logits (B, L), from the last time step."""
        h, _ = self.lstm(self.norm(x))
        logits: torch.Tensor = self.out(h[:, -1])
        return logits


class ClipTransformer(nn.Module):
    def __init__(self, in_dim: int, num_labels: int, cfg: TransformerHead, max_len: int = 512) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.proj = nn.Linear(in_dim, cfg.d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.d_model))
        self.pos = nn.Parameter(_sinusoid(max_len + 1, cfg.d_model), requires_grad=False)
        layer = nn.TransformerEncoderLayer(
            cfg.d_model, cfg.num_heads, dim_feedforward=cfg.d_model * 2, batch_first=True, dropout=0.1
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.out = nn.Linear(cfg.d_model, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> logits (B, L), from a learned CLS token."""
        z = self.proj(self.norm(x))
        z = torch.cat([self.cls.expand(len(z), -1, -1), z], dim=1) + self.pos[: z.shape[1] + 1]
        logits: torch.Tensor = self.out(self.encoder(z)[:, 0])
        return logits


def _sinusoid(length: int, dim: int) -> torch.Tensor:
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return table


def build_head(head: LSTMHead | TransformerHead, in_dim: int, num_labels: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    if isinstance(head, LSTMHead):
        return ClipLSTM(in_dim, num_labels, head)
    return ClipTransformer(in_dim, num_labels, head)


def save_checkpoint(
    path: Path, model: nn.Module, head: LSTMHead | TransformerHead, labels: tuple[str, ...], in_dim: int
) -> None:
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "head": head.model_dump(),
            "labels": list(labels),
            "in_dim": in_dim,
            "state_dict": model.state_dict(),
        },
        path,
    )


def load_head(cfg: TemporalConfig, in_dim: int) -> tuple[nn.Module, tuple[str, ...], str]:
    """Build the configured head for ``in_dim`` features. Returns (model, labels, kind)."""
    if cfg.weights is None:
        log.warning("temporal: no weights configured, running an UNTRAINED %s head", cfg.head.kind)
        return build_head(cfg.head, in_dim, len(cfg.labels)), cfg.labels, cfg.head.kind
    ckpt: dict[str, Any] = torch.load(cfg.weights, map_location="cpu", weights_only=False)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{cfg.weights}: not a Vigil temporal checkpoint ({CHECKPOINT_FORMAT})")
    if int(ckpt["in_dim"]) != in_dim:
        raise ValueError(
            f"{cfg.weights}: trained on {ckpt['in_dim']} features per frame, but the configured "
            f"detector + classifier give {in_dim}; use the models it was trained with"
        )
    head: LSTMHead | TransformerHead = (
        LSTMHead(**ckpt["head"]) if ckpt["head"]["kind"] == "lstm" else TransformerHead(**ckpt["head"])
    )
    labels = tuple(ckpt["labels"])
    model = build_head(head, in_dim, len(labels))
    model.load_state_dict(ckpt["state_dict"])
    return model, labels, head.kind


class TemporalHead(MetricsExporter):
    """Labels feature windows (T, F) with the configured clip head."""

    def __init__(self, cfg: TemporalConfig, in_dim: int, torch_threads: int = 1) -> None:
        set_process_role("temporal")
        self.device = configure_torch(torch_threads)
        t0 = time.perf_counter()
        model, self.labels, self.kind = load_head(cfg, in_dim)
        self.model = model.to(self.device).eval()
        MODEL_LOAD_SECONDS.labels(f"temporal_{self.kind}").observe(time.perf_counter() - t0)

    def head_kind(self) -> str:
        return self.kind

    @torch.inference_mode()
    def classify_batch(self, windows: list[FloatArray]) -> list[LabelScore]:
        """Label each (T, F) window. Windows in one call share T."""
        BATCH_SIZE.labels("temporal").observe(len(windows))
        x = torch.from_numpy(np.stack(windows).astype(np.float32)).to(self.device)
        probs = torch.softmax(self.model(x).float(), dim=1).cpu().numpy()
        return [LabelScore(self.labels[int(p.argmax())], float(p.max())) for p in probs]
