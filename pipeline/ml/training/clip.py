"""``vigil train clip``: a small CLIP model that understands words, trained on ``vigil synth`` videos.

An image tower (Vigil's ViT and a linear projection, ``workers.clip_tower``) learns to put frames and
object crops where a locked, pretrained sentence encoder (all-MiniLM-L6-v2) puts captions describing
them (``captions``), with a symmetric contrastive loss at a learned temperature. Captions that
describe the same facts are matches for each other's images, not negatives. A seventh of the videos
is held out; the model card reports zero-shot accuracy on them with prompts worded unlike any
training caption (configs/zero-shot-eval.yaml): the scene of frames and the posture of person crops.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import yaml
from pydantic import ValidationError
from torch import nn

from pipeline.core.config import VigilClipBackend, ZeroShotConfig
from pipeline.ml.synth.dataset import load_set
from pipeline.ml.synth.posture import POSTURES
from pipeline.ml.synth.scenes import SCENES
from pipeline.ml.training.captions import Facts, FrameFacts, captions_for
from pipeline.ml.training.cards import write_card
from pipeline.ml.training.clip_data import Examples, HeldOut, generated_people, held_out_examples, training_examples
from pipeline.ml.training.common import Progress, no_progress, seed_everything
from pipeline.ml.training.vit import augment
from workers.classifier import preprocess
from workers.clip_tower import MAX_LOGIT_SCALE, MINILM, ImageTower, SentenceEncoder, save_checkpoint
from workers.zero_shot import PromptBank, load_clip


def load_eval_prompts(path: Path, weights: Path) -> ZeroShotConfig:
    """The evaluation prompts (``models.zero_shot`` keys without a backend) for the model at
    ``weights``. They must label every scene and the person postures. Raises ValueError naming the key."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"--prompts {path}: cannot read it: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--prompts {path}: expected the keys of models.zero_shot (scenes, attributes, ...)")
    try:
        zs = ZeroShotConfig.model_validate({**data, "backend": {"kind": "vigil", "weights": str(weights)}})
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(str(k) for k in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"--prompts {path}: {where}") from None
    if set(zs.scenes) != set(SCENES):
        raise ValueError(f"--prompts {path}: scenes must label {', '.join(SCENES)}")
    if set(zs.attributes.get("person", {})) != set(POSTURES):
        raise ValueError(f"--prompts {path}: attributes.person must label {', '.join(POSTURES)}")
    return zs


@dataclass(frozen=True)
class CaptionBank:
    """Caption embeddings per distinct set of facts: ``embeddings[f, k]`` is caption k of facts f
    (``counts[f]`` of them; the rest repeat them), and ``index[i]`` the facts of example i."""

    embeddings: torch.Tensor  # (F, K, D) unit rows
    counts: torch.Tensor  # (F,)
    index: torch.Tensor  # (N,)

    @classmethod
    def build(cls, facts: list[Facts], text: SentenceEncoder, per_facts: int, rng: np.random.Generator) -> CaptionBank:
        """Draw up to ``per_facts`` captions of each distinct set of facts and embed them once."""
        distinct = list(dict.fromkeys(facts))
        chosen = []
        for f in distinct:
            options = captions_for(f)
            picks = rng.choice(len(options), size=min(per_facts, len(options)), replace=False)
            chosen.append([options[int(k)] for k in picks])
        unique = sorted({c for cs in chosen for c in cs})
        emb = text.encode(unique).cpu()
        row = {c: i for i, c in enumerate(unique)}
        table = torch.stack([emb[[row[c] for c in (cs * per_facts)[:per_facts]]] for cs in chosen])
        position = {f: i for i, f in enumerate(distinct)}
        return cls(table, torch.tensor([len(cs) for cs in chosen]), torch.tensor([position[f] for f in facts]))

    def draw(self, examples: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(one caption embedding per example (B, D), the examples' facts ids (B,))."""
        f = self.index[examples]
        k = (torch.rand(len(f), generator=generator) * self.counts[f]).long()
        return self.embeddings[f, k], f


def contrastive_loss(image: torch.Tensor, text: torch.Tensor, facts: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of (B, D) unit image and caption embeddings at temperature
    ``scale``; every caption of the same facts counts as a match (the targets spread over them)."""
    logits = scale * image @ text.T
    matches = (facts[:, None] == facts[None, :]).float()
    image_to_text = -(matches * logits.log_softmax(1)).sum(1) / matches.sum(1)
    text_to_image = -(matches * logits.log_softmax(0)).sum(0) / matches.sum(0)
    return (image_to_text.mean() + text_to_image.mean()) / 2


def _sampling_weights(facts: list[Facts]) -> npt.NDArray[np.float64]:
    """Rare kinds of example (falls, bags left behind, frames) drawn more often: 1/sqrt(frequency)."""
    kinds = ["frame" if isinstance(f, FrameFacts) else f"{f.cls}:{f.state}" for f in facts]
    counts = Counter(kinds)
    weights: npt.NDArray[np.float64] = np.array([counts[k] ** -0.5 for k in kinds], np.float64)
    weights /= float(weights.sum())
    return weights


@dataclass(frozen=True)
class FitSettings:
    """How the image tower is trained."""

    epochs: int
    batch: int
    lr: float
    seed: int


def fit_tower(
    tower: ImageTower, examples: Examples, bank: CaptionBank, settings: FitSettings, progress: Progress
) -> float:
    """Train ``tower`` in place; returns the mean loss of the last epoch."""
    rng = np.random.default_rng(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    weights = _sampling_weights(examples.facts)
    per_epoch = max(1, len(examples.images) // settings.batch)
    steps = settings.epochs * per_epoch
    decay = [p for n, p in tower.named_parameters() if n != "log_logit_scale"]
    groups: list[dict[str, Any]] = [{"params": decay}, {"params": [tower.log_logit_scale], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(
        groups,
        lr=settings.lr,
        weight_decay=0.05,
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings.lr, total_steps=steps, pct_start=0.1)
    tower.train()
    losses: deque[float] = deque(maxlen=per_epoch)
    for step in range(steps):
        idx = rng.choice(len(examples.images), size=settings.batch, p=weights)
        x = preprocess([augment(examples.images[i], rng) for i in idx], tower.image_size)
        text, facts = bank.draw(torch.from_numpy(idx), generator)
        image = nn.functional.normalize(tower(x), dim=-1)
        loss = contrastive_loss(image, text, facts, tower.log_logit_scale.exp())
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        sched.step()
        with torch.no_grad():
            tower.log_logit_scale.clamp_(0.0, float(np.log(MAX_LOGIT_SCALE)))
        losses.append(loss.item())
        progress("training clip", step + 1, steps)
    tower.eval()
    return float(np.mean(losses))


def zero_shot_figures(weights: Path, prompts: ZeroShotConfig, held_out: HeldOut) -> dict[str, Any]:
    """Load the saved model the way ``models.zero_shot`` does and label the held-out frames (scene)
    and person crops (posture) with the evaluation prompts."""
    model = load_clip(VigilClipBackend(weights=str(weights)), allow_download=False)
    figures: dict[str, Any] = {}
    for what, images, truth, labels in (
        ("scene", held_out.frames, held_out.scenes, prompts.scenes),
        ("attribute", held_out.crops, held_out.postures, prompts.attributes["person"]),
    ):
        bank = PromptBank.build(model, labels, prompts.templates)
        found = [label for label, _ in bank.best(model.embed_images([img[..., ::-1].copy() for img in images]))]
        hits = [f == t for f, t in zip(found, truth, strict=True)]
        figures[f"{what}_accuracy"] = float(np.mean(hits)) if hits else 0.0
        for label in labels:
            mine = [h for h, t in zip(hits, truth, strict=True) if t == label]
            figures[f"{label}_recall"] = float(np.mean(mine)) if mine else None
    figures["held_out_frames"], figures["held_out_person_crops"] = len(held_out.frames), len(held_out.crops)
    return figures


def train_clip(
    data_dirs: list[Path],
    out: Path,
    *,
    prompts: Path,
    arch: str = "vit_tiny",
    image_size: int = 96,
    epochs: int = 5,
    people: int = 4000,
    batch: int = 128,
    lr: float = 5e-4,
    captions_per_facts: int = 24,
    seed: int = 0,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Train the image tower against MiniLM and write a ``vigil-clip`` checkpoint (fp16 weights) to
    ``out`` with its model card; returns the figures (held-out zero-shot accuracies with ``prompts``).
    ``people``: generated people added to the videos' crops. An epoch is as many examples as there
    are, drawn with rare kinds more often."""
    t0 = time.time()
    eval_prompts = load_eval_prompts(prompts, out)  # a bad prompt file stops before the long part
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    videos = [v for d in data_dirs for v in load_set(d)]
    if len(videos) < 2:
        raise ValueError("train clip needs at least two videos (a seventh, at least one, is held out)")
    held_ids = held_out_videos([str(gt["scene"]) for _, gt in videos], seed)
    examples, held_out = _read(videos, held_ids, rng, progress)
    progress("generating people", 0, 1)
    generated_people(people, seed, examples)
    progress("generating people", 1, 1)
    text = SentenceEncoder()
    progress("embedding captions", 0, 1)
    bank = CaptionBank.build(examples.facts, text, captions_per_facts, rng)
    progress("embedding captions", 1, 1)
    tower = ImageTower(arch, image_size, text.dim, seed)
    settings = FitSettings(epochs, batch, lr, seed)
    final_loss = fit_tower(tower, examples, bank, settings, progress)
    save_checkpoint(out, tower, text)
    metrics = zero_shot_figures(out, eval_prompts, held_out)
    metrics |= {"final_loss": round(final_loss, 4), "logit_scale": round(tower.logit_scale, 2)}
    frames = sum(isinstance(f, FrameFacts) for f in examples.facts)
    crops = Counter(f"{f.cls} {f.state}" for f in examples.facts if not isinstance(f, FrameFacts))
    write_card(
        out,
        {
            "model": f"image tower: torchvision {arch} ViT, {image_size}px, projected to {text.dim}; "
            f"text tower: {MINILM} (locked)",
            "task": "zero-shot labels from words (models.zero_shot, backend kind vigil)",
            "labels": [*SCENES, *POSTURES],
            "data": {
                "dirs": [str(d) for d in data_dirs],
                "train_videos": len(videos) - len(held_ids),
                "held_out_videos": len(held_ids),
                "train_frames": frames,
                "generated_people": people,
                "train_crops": dict(sorted(crops.items())),
                "captions": "pipeline/ml/training/captions.py",
                "eval_prompts": str(prompts),
            },
            "seed": seed,
            "epochs": epochs,
            "metrics": metrics,
            "train_seconds": round(time.time() - t0, 1),
            "notes": "labels are any described in words (the ones above are those evaluated); weights stored in "
            "fp16 (loaded into fp32 on CPU); held-out figures are zero-shot, with prompts worded unlike any "
            "training caption",
        },
    )
    return metrics


def held_out_videos(scenes: list[str], seed: int) -> set[int]:
    """The indices of a seventh of the videos (at least one), spread over the scenes in turn so that
    each scene is held out where there are enough videos."""
    rng = np.random.default_rng(seed)
    by_scene = [rng.permutation([i for i, s in enumerate(scenes) if s == scene]).tolist() for scene in SCENES]
    in_turn = [i for rank in itertools.zip_longest(*by_scene) for i in rank if i is not None]
    return set(in_turn[: max(1, len(scenes) // 7)])


def _read(
    videos: list[tuple[Path, dict[str, Any]]], held_ids: set[int], rng: np.random.Generator, progress: Progress
) -> tuple[Examples, HeldOut]:
    examples, held_out = Examples(), HeldOut()
    for k, (video, gt) in enumerate(videos):
        if k in held_ids:
            held_out_examples(video, gt, held_out)
        else:
            training_examples(video, gt, k, rng, examples)
        progress("reading videos", k + 1, len(videos))
    return examples, held_out
