"""Classify stage: a ViT giving each frame a scene label and an embedding.

The architecture comes from torchvision (Vigil's 4-layer ``vit_tiny`` or any torchvision ViT) or
timm; weights from a Vigil checkpoint (``save_checkpoint``), from the hub when the user asks
(``pretrained: true``), or untrained. ``Classifier`` is a plain class the driver runs as a Ray actor.
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from pipeline.core.config import ClassifierConfig, TimmViT, TorchvisionViT
from pipeline.core.messages import LabelScore, SceneResult
from pipeline.core.metrics import MODEL_LOAD_SECONDS, model_call
from workers.batching import Batcher
from workers.common import (
    MetricsExporter,
    configure_torch,
    precision_on,
    release_free_memory,
    set_process_role,
)
from workers.detector import ModelLoadError, first_line

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "vigil-classifier/1"
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)


class SceneViT(nn.Module):
    """A ViT backbone returning the CLS embedding, plus a linear scene head."""

    def __init__(self, backbone: nn.Module, embed_dim: int, num_labels: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.embed_dim = embed_dim
        self.head = nn.Linear(embed_dim, num_labels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) normalised RGB -> (embeddings (B, D), logits (B, L))."""
        emb = self.backbone(x)
        return emb, self.head(emb)


def build_backbone(backend: TorchvisionViT | TimmViT, image_size: int) -> tuple[nn.Module, int]:
    """Build the ViT without its classification head. Returns (module, embedding size)."""
    if isinstance(backend, TimmViT):
        import timm

        model = timm.create_model(backend.arch, pretrained=backend.pretrained, num_classes=0, img_size=image_size)
        return model, cast(int, model.num_features)
    from torchvision import models
    from torchvision.models.vision_transformer import VisionTransformer

    vit: VisionTransformer
    if backend.arch == "vit_tiny":
        if backend.pretrained:
            raise ValueError("vit_tiny has no published weights; use a checkpoint (models.classifier.weights)")
        vit = VisionTransformer(
            image_size=image_size, patch_size=16, num_layers=4, num_heads=3, hidden_dim=192, mlp_dim=768
        )
    else:
        builder = getattr(models, backend.arch, None)
        if builder is None or not backend.arch.startswith("vit_"):
            raise ValueError(f"unknown torchvision ViT {backend.arch!r} (e.g. vit_b_16, or vit_tiny)")
        vit = builder(weights="DEFAULT" if backend.pretrained else None, image_size=image_size)
    vit.heads = nn.Identity()  # forward() now returns the CLS embedding
    return vit, cast(int, vit.hidden_dim)


def build_model(backend: TorchvisionViT | TimmViT, labels: tuple[str, ...], image_size: int, seed: int = 0) -> SceneViT:
    torch.manual_seed(seed)  # an untrained model is at least the same untrained model every run
    backbone, dim = build_backbone(backend, image_size)
    return SceneViT(backbone, dim, len(labels))


def save_checkpoint(
    path: Path, model: SceneViT, backend: TorchvisionViT | TimmViT, labels: tuple[str, ...], image_size: int
) -> None:
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "backend": backend.model_dump(),
            "labels": list(labels),
            "image_size": image_size,
            "state_dict": model.state_dict(),
        },
        path,
    )


def load_model(cfg: ClassifierConfig) -> tuple[SceneViT, tuple[str, ...], int]:
    """Build the configured classifier. Returns (model, labels, image_size)."""
    if cfg.weights is None:
        log.warning("classifier: no weights configured, running an UNTRAINED ViT (labels are meaningless)")
        return build_model(cfg.backend, cfg.labels, cfg.image_size), cfg.labels, cfg.image_size
    ckpt: dict[str, Any] = torch.load(cfg.weights, map_location="cpu", weights_only=False)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{cfg.weights}: not a Vigil classifier checkpoint ({CHECKPOINT_FORMAT})")
    raw_backend = dict(ckpt["backend"], pretrained=False)
    backend: TorchvisionViT | TimmViT = (
        TimmViT(**raw_backend) if raw_backend["kind"] == "timm" else TorchvisionViT(**raw_backend)
    )
    labels, size = tuple(ckpt["labels"]), int(ckpt["image_size"])
    model = build_model(backend, labels, size)
    model.load_state_dict(ckpt["state_dict"])
    return model, labels, size


def _resized(images_bgr: list[npt.NDArray[np.uint8]], size: int) -> npt.NDArray[np.uint8]:
    return np.stack([cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA) for img in images_bgr])


def preprocess(images_bgr: list[npt.NDArray[np.uint8]], size: int) -> torch.Tensor:
    """BGR uint8 frames -> (B, 3, size, size) ImageNet-normalised float tensor."""
    rgb = _resized(images_bgr, size)[..., ::-1].astype(np.float32) / 255.0
    return torch.from_numpy(((rgb - _MEAN) / _STD).transpose(0, 3, 1, 2).copy())


def preprocess_on(
    images_bgr: list[npt.NDArray[np.uint8]], size: int, device: str, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``preprocess`` with the conversion and normalisation done on ``device``: only the resized
    uint8 pixels cross to a GPU (a quarter of the float32 bytes), and the result is in ``dtype``
    (normalised in float32 first, then cast)."""
    x = torch.from_numpy(_resized(images_bgr, size)).to(device, non_blocking=True)
    x = x.flip(-1).permute(0, 3, 1, 2).float().div_(255.0)
    mean, std = _mean_std_on(device)
    return ((x - mean) / std).to(dtype).contiguous()


@functools.cache
def _mean_std_on(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalisation constants on ``device``, copied there once (not with every batch)."""
    return (
        torch.from_numpy(_MEAN).to(device).view(1, 3, 1, 1),
        torch.from_numpy(_STD).to(device).view(1, 3, 1, 1),
    )


_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def inference_dtype(half: bool, device: str, cpu_precision: str = "fp32", model: str = "classifier") -> torch.dtype:
    """fp16 where asked for on a GPU, bf16 where asked for on a CPU that computes it natively, else
    fp32 (``workers.common.precision_on``)."""
    return _DTYPES[precision_on(half, cpu_precision, device, model)]


class Classifier(MetricsExporter):
    """Scene label + embedding per frame."""

    role = "classifier"  # process role and metric label

    def __init__(self, cfg: ClassifierConfig, torch_threads: int = 1, batching: bool = True, cpu: bool = False) -> None:
        """``batching=False``: no batcher of its own (``classify`` unusable); a ``VisionWorker`` batches.
        ``cpu``: stay on the CPU even where a GPU is visible (``ray.placement: hosts``)."""
        set_process_role(self.role)
        self.device = configure_torch(torch_threads, cpu)
        t0 = time.perf_counter()
        try:
            model, self.labels, self.image_size = load_model(cfg)
        except Exception as exc:  # a missing, corrupt or foreign checkpoint: one line naming the key path
            if cfg.weights is None:
                raise
            raise ModelLoadError(f"models.{self.role}.weights: cannot load {cfg.weights}: {first_line(exc)}") from exc
        self.precision = precision_on(cfg.half, cfg.cpu_precision, self.device, self.role)
        self.dtype = _DTYPES[self.precision]
        self.model = model.to(self.device, self.dtype).eval()
        MODEL_LOAD_SECONDS.labels(self.role).observe(time.perf_counter() - t0)
        release_free_memory()  # the checkpoint's copies, freed as loading ended
        if batching:
            self._batcher = Batcher(
                self.classify_batch, cfg.max_batch, cfg.max_wait_ms / 1000, name=f"{self.role}-batcher"
            )
        log.info(
            "%s loaded on %s (%s): %d labels, embedding %d",
            self.role,
            self.device,
            self.precision,
            len(self.labels),
            model.embed_dim,
        )

    def embedding_dim(self) -> int:
        return int(self.model.embed_dim)

    def classify(self, image_bgr: npt.NDArray[np.uint8]) -> SceneResult:
        """One frame; concurrent calls (from all cameras) are batched into one forward pass."""
        return self._batcher.submit(image_bgr)

    def scores(self, results: list[SceneResult]) -> list[LabelScore]:
        """Labels and confidences as crop labels (a ViT's embedding is no text's: it stays here)."""
        return [LabelScore(r.label, r.confidence) for r in results]

    def classify_batch(self, images_bgr: list[npt.NDArray[np.uint8]]) -> list[SceneResult]:
        with model_call(self.role, len(images_bgr)):
            return self._classify(images_bgr)

    @torch.inference_mode()
    def _classify(self, images_bgr: list[npt.NDArray[np.uint8]]) -> list[SceneResult]:
        if self.device == "cpu":
            x = preprocess(images_bgr, self.image_size).to(self.dtype)  # a no-op in fp32
        else:  # a GPU: normalised there (in fp16 with half), from the uint8 pixels
            x = preprocess_on(images_bgr, self.image_size, self.device, self.dtype)
        emb, logits = self.model(x)
        probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
        emb_np = emb.float().cpu().numpy().astype(np.float32)
        out = []
        for i in range(len(images_bgr)):
            k = int(probs[i].argmax())
            out.append(SceneResult(self.labels[k], float(probs[i, k]), emb_np[i]))
        return out


def crop_boxes(
    image_bgr: npt.NDArray[np.uint8], xyxy: npt.NDArray[np.float32], padding: float
) -> list[npt.NDArray[np.uint8]]:
    """A square crop around each box: its longer side plus ``padding`` x that side of context on
    every side, so the classifier sees the object's true shape (a lying person stays flat, not
    stretched into a square). What falls outside the frame is grey (114, as YOLO letterboxes)."""
    h, w = image_bgr.shape[:2]
    crops = []
    for x1, y1, x2, y2 in xyxy:
        side = max(1, round(max(x2 - x1, y2 - y1) * (1 + 2 * padding)))
        left, top = round((x1 + x2 - side) / 2), round((y1 + y2 - side) / 2)
        crop = np.full((side, side, 3), 114, np.uint8)
        a, b, c, d = max(0, left), max(0, top), min(w, left + side), min(h, top + side)
        if c > a and d > b:
            crop[b - top : d - top, a - left : c - left] = image_bgr[b:d, a:c]
        crops.append(crop)
    return crops


class CropClassifier(Classifier):
    """Second stage: labels object crops. Boxes from all cameras' frames share forward passes."""

    role = "crops"  # its config is a CropClassifierConfig (a ClassifierConfig with box selection)

    def classify_crops(self, crops_bgr: list[npt.NDArray[np.uint8]]) -> list[LabelScore]:
        """One label per crop (``crop_boxes`` cuts them where the full-resolution frame is)."""
        return self.scores(self._batcher.submit_many(crops_bgr))
