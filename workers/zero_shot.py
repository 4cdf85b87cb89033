"""Zero-shot labels from CLIP: image and text embeddings in one space, and prompt banks over them.

``load_clip`` builds a ``ClipModel`` from ``models.zero_shot.backend``: an open_clip model (an
architecture with a tag or checkpoint file, or a ``local-dir:`` folder) or a transformers CLIPModel
folder. Each backend pre-processes images its own way (open_clip's eval transform, the
CLIPProcessor), on whole batches of same-size frames. ``PromptBank`` turns labels with prompts into
one text embedding per label and scores image embeddings against them::

    model = load_clip(cfg.models.zero_shot.backend, cfg.models.allow_download)
    bank = PromptBank.build(model, {"street": ["a street"], "parking": ["a parking lot"]})
    bank.best(model.embed_images([frame_rgb]))  # [("street", 0.83)]
"""

from __future__ import annotations

import difflib
import itertools
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from pipeline.core.config import (
    ClassifierConfig,
    CropClassifierConfig,
    TemporalConfig,
    ZeroShotActivities,
    ZeroShotConfig,
    ZeroShotCrops,
    ZeroShotScenes,
)
from pipeline.core.config.zero_shot import (
    DEFAULT_TEMPLATES,
    HF_HUB,
    KEY,
    LOCAL_DIR,
    ClipBackend,
    HfClipBackend,
    OpenClipBackend,
    VigilClipBackend,
)
from pipeline.core.messages import LabelScore, SceneResult
from pipeline.core.metrics import MODEL_LOAD_SECONDS, set_process_role
from workers.batching import Batcher
from workers.classifier import Classifier, CropClassifier
from workers.classifier import preprocess as vit_preprocess
from workers.clip_tower import ImageTower, SentenceEncoder, load_checkpoint, load_text_encoder
from workers.common import configure_torch, release_free_memory
from workers.detector import ModelLoadError, first_line

log = logging.getLogger(__name__)

Embeddings = npt.NDArray[np.float32]
MAX_LOGIT_SCALE = 100.0  # CLIP clamps its learned temperature here
UNKNOWN = "unknown"  # a frame no scene's prompts fit well enough (scene_min_score)


class ClipModel(ABC):
    """A CLIP model: images and texts to L2-normalised float32 embeddings of size ``dim``, and the
    ``logit_scale`` (temperature) its similarities were trained with. Inputs go through in batches of
    at most ``max_batch``."""

    dim: int
    logit_scale: float

    def __init__(self, device: str, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self.device = device
        self.max_batch = max_batch
        self.logit_scale = min(float(self._logit_scale()), MAX_LOGIT_SCALE)
        self.dim = int(self.embed_texts(["a"]).shape[1])

    def embed_images(self, images: Sequence[npt.NDArray[np.uint8]]) -> Embeddings:
        """RGB uint8 (H, W, 3) images, any sizes -> (N, dim) unit vectors."""
        for i, image in enumerate(images):
            if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                what = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
                raise ValueError(f"image {i}: expected an RGB uint8 array (H, W, 3), got {what}")
        if not images:
            return np.zeros((0, getattr(self, "dim", 0)), np.float32)
        with torch.inference_mode():
            parts = [
                self._encode_images(self._preprocess(images[i : i + self.max_batch]).to(self.device))
                for i in range(0, len(images), self.max_batch)
            ]
        return _unit_rows(torch.cat(parts))

    def embed_texts(self, texts: Sequence[str]) -> Embeddings:
        """Texts -> (N, dim) unit vectors."""
        if isinstance(texts, str):
            raise TypeError("embed_texts takes a list of texts, not one string")
        if not texts:
            return np.zeros((0, getattr(self, "dim", 0)), np.float32)
        with torch.inference_mode():
            parts = [
                self._encode_texts(list(texts[i : i + self.max_batch])) for i in range(0, len(texts), self.max_batch)
            ]
        return _unit_rows(torch.cat(parts))

    @abstractmethod
    def _logit_scale(self) -> float: ...

    @abstractmethod
    def _preprocess(self, images: Sequence[npt.NDArray[np.uint8]]) -> torch.Tensor:
        """Images -> the (B, 3, S, S) float tensor the image tower takes."""

    @abstractmethod
    def _encode_images(self, pixels: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def _encode_texts(self, texts: list[str]) -> torch.Tensor: ...


def _unit_rows(x: torch.Tensor) -> Embeddings:
    return torch.nn.functional.normalize(x.float(), dim=-1).cpu().numpy().astype(np.float32, copy=False)


def by_shape(images: Sequence[npt.NDArray[np.uint8]], batch_fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Run ``batch_fn`` ((B, 3, H, W) float in [0, 1] -> (B, 3, S, S)) once per group of same-size
    images (a camera's frames share one size) and return the results in the input order."""
    order = sorted(range(len(images)), key=lambda i: images[i].shape)
    chunks = []
    for _, group in itertools.groupby(order, key=lambda i: images[i].shape):
        batch = torch.from_numpy(np.stack([images[i] for i in group]))
        chunks.append(batch_fn(batch.permute(0, 3, 1, 2).float().div_(255.0)))
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    return torch.cat(chunks)[inverse]


class OpenClip(ClipModel):
    """An open_clip model with its eval transform and tokenizer."""

    def __init__(self, model: Any, preprocess: Any, tokenizer: Any, device: str, max_batch: int) -> None:
        from torchvision import transforms

        self.model, self.preprocess, self.tokenizer = model, preprocess, tokenizer
        # open_clip's eval transform for the usual resize modes (shortest side, squash) is torchvision
        # transforms that take a batch tensor as they take one PIL image; others go image by image.
        batchable = (transforms.Resize, transforms.CenterCrop, transforms.Normalize)
        steps = getattr(preprocess, "transforms", [])
        self._batched = bool(steps) and all(
            isinstance(t, batchable) or type(t).__name__ in ("MaybeConvertMode", "MaybeToTensor") for t in steps
        )
        super().__init__(device, max_batch)

    def _logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp())

    def _preprocess(self, images: Sequence[npt.NDArray[np.uint8]]) -> torch.Tensor:
        if self._batched:
            return by_shape(images, self.preprocess)
        from PIL import Image

        return torch.stack([self.preprocess(Image.fromarray(image)) for image in images])

    def _encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)  # type: ignore[no-any-return]

    def _encode_texts(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(texts).to(self.device))  # type: ignore[no-any-return]


class HfClip(ClipModel):
    """A transformers CLIPModel with its CLIPProcessor (image processor and tokenizer)."""

    def __init__(self, model: Any, processor: Any, device: str, max_batch: int) -> None:
        self.model, self.processor = model, processor
        self.max_tokens = int(model.config.text_config.max_position_embeddings)
        super().__init__(device, max_batch)

    def _logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp())

    def _preprocess(self, images: Sequence[npt.NDArray[np.uint8]]) -> torch.Tensor:
        # The image processor groups same-size images into one tensor operation itself.
        out = self.processor.image_processor(
            images=list(images), return_tensors="pt", input_data_format="channels_last"
        )
        return out["pixel_values"]  # type: ignore[no-any-return]

    def _encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.get_image_features(pixel_values=pixels).pooler_output  # type: ignore[no-any-return]

    def _encode_texts(self, texts: list[str]) -> torch.Tensor:
        tokens = self.processor.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        ).to(self.device)
        return self.model.get_text_features(**tokens).pooler_output  # type: ignore[no-any-return]


def load_clip(backend: ClipBackend, allow_download: bool, device: str = "cpu", max_batch: int = 32) -> ClipModel:
    """The CLIP model ``backend`` names, in eval mode on ``device``. Hub weights only with
    ``allow_download``; local files always. Raises ModelLoadError (one line, naming the key path) for
    weights that are missing or do not load."""
    problem = backend.source_problem(allow_download)
    if problem is not None:
        raise ModelLoadError(problem)
    try:
        if isinstance(backend, OpenClipBackend):
            return _load_open_clip(backend, device, max_batch)
        if isinstance(backend, VigilClipBackend):
            return VigilClip.load(Path(backend.weights).expanduser(), device, max_batch)
        return _load_hf_clip(backend, allow_download, device, max_batch)
    except ModelLoadError:
        raise
    except Exception as exc:  # a corrupt, foreign or mismatched file, or a failed download: one line
        raise ModelLoadError(f"{_source_key(backend)}: cannot load {_source(backend)}: {first_line(exc)}") from exc


def _source_key(backend: ClipBackend) -> str:
    if isinstance(backend, HfClipBackend):
        return f"{KEY}.name_or_path"
    if isinstance(backend, VigilClipBackend):
        return f"{KEY}.weights"
    return f"{KEY}.pretrained" if backend.pretrained is not None else f"{KEY}.model"


def _source(backend: ClipBackend) -> str:
    if isinstance(backend, HfClipBackend):
        return backend.name_or_path
    if isinstance(backend, VigilClipBackend):
        return backend.weights
    return backend.model if backend.pretrained is None else f"{backend.model} with {backend.pretrained}"


class VigilClip(ClipModel):
    """A CLIP model trained by ``vigil train clip`` (``workers.clip_tower``): its image tower from the
    checkpoint, in fp32, and the locked sentence encoder it was trained against as the text tower."""

    def __init__(self, tower: ImageTower, text: SentenceEncoder, device: str, max_batch: int) -> None:
        self.tower, self.text = tower.to(device).eval(), text
        super().__init__(device, max_batch)

    @classmethod
    def load(cls, path: Path, device: str = "cpu", max_batch: int = 32) -> VigilClip:
        """Load a checkpoint file; ModelLoadError (naming the key path) where its text tower is not
        the installed one."""
        tower, meta = load_checkpoint(path)
        text = load_text_encoder(meta.text_encoder, device)
        problem = meta.text_encoder_problem(text)
        if problem is not None:
            raise ModelLoadError(f"{KEY}.weights: {path}: {problem}")
        return cls(tower, text, device, max_batch)

    def _logit_scale(self) -> float:
        return self.tower.logit_scale

    def _preprocess(self, images: Sequence[npt.NDArray[np.uint8]]) -> torch.Tensor:
        # The classifiers' preprocessing (squash to a square, ImageNet normalisation) takes BGR.
        return vit_preprocess([image[..., ::-1] for image in images], self.tower.image_size)

    def _encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        embeddings: torch.Tensor = self.tower(pixels)
        return embeddings

    def _encode_texts(self, texts: list[str]) -> torch.Tensor:
        return self.text.encode(texts, batch=self.max_batch)


def _load_open_clip(backend: OpenClipBackend, device: str, max_batch: int) -> OpenClip:
    import open_clip

    name = backend.model
    if name.startswith(LOCAL_DIR):
        name = f"{LOCAL_DIR}{Path(name.removeprefix(LOCAL_DIR)).expanduser()}"
    elif ":" not in name and name.replace("/", "-") not in open_clip.list_models():
        close = difflib.get_close_matches(name, open_clip.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else " (open_clip.list_models() lists them)"
        raise ModelLoadError(f"{KEY}.model: {name!r} is not an open_clip architecture{hint}")
    if backend.pretrained is None and not name.startswith((LOCAL_DIR, HF_HUB)):
        log.warning("zero_shot: no pretrained weights configured, running an UNTRAINED CLIP (labels are meaningless)")
    pretrained = backend.pretrained
    if pretrained is not None and Path(pretrained).expanduser().is_file():
        pretrained = str(Path(pretrained).expanduser())
    model, _, preprocess = open_clip.create_model_and_transforms(
        name, pretrained=pretrained, device=device, pretrained_image=False, pretrained_text=False
    )
    return OpenClip(model.eval(), preprocess, open_clip.get_tokenizer(name), device, max_batch)


def _load_hf_clip(backend: HfClipBackend, allow_download: bool, device: str, max_batch: int) -> HfClip:
    from transformers import AutoConfig, CLIPModel, CLIPProcessor
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    local = Path(backend.name_or_path).expanduser()
    source = str(local) if local.exists() else backend.name_or_path
    offline = not allow_download
    config = AutoConfig.from_pretrained(source, local_files_only=offline)
    if config.model_type != "clip":
        raise ModelLoadError(
            f"{KEY}.name_or_path: {backend.name_or_path} holds a {config.model_type!r} model; hf_clip loads "
            "transformers' CLIPModel (model_type 'clip')"
        )
    loaded: Any = CLIPModel.from_pretrained(source, config=config, local_files_only=offline, output_loading_info=True)
    model, info = loaded
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise ModelLoadError(
            f"{KEY}.name_or_path: {backend.name_or_path}: the weights lack {len(missing)} of CLIPModel's "
            f"tensors (such as {missing[0]}); is it a whole CLIP model?"
        )
    processor = CLIPProcessor.from_pretrained(source, local_files_only=offline)
    return HfClip(model.to(device).eval(), processor, device, max_batch)


@dataclass(frozen=True)
class PromptBank:
    """One unit text embedding per label: the renormalised mean over the label's prompts, each written
    into every template. ``scores`` gives softmax probabilities over the labels."""

    labels: tuple[str, ...]
    embeddings: Embeddings  # (L, D), unit rows, in the order of labels
    logit_scale: float

    @classmethod
    def build(
        cls, model: ClipModel, labels: Mapping[str, Sequence[str]], templates: Sequence[str] = DEFAULT_TEMPLATES
    ) -> PromptBank:
        """Embed every prompt x template of every label in one batched pass."""
        return cls.from_encoder(model.embed_texts, labels, templates, model.logit_scale)

    @classmethod
    def from_encoder(
        cls,
        encode: Callable[[list[str]], Embeddings],
        labels: Mapping[str, Sequence[str]],
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        logit_scale: float = 1.0,
    ) -> PromptBank:
        """The same from any text encoder (texts -> (N, D) unit rows)."""
        if not labels:
            raise ValueError("a prompt bank needs at least one label")
        if not templates:
            raise ValueError("a prompt bank needs at least one template")
        empty = [label for label, prompts in labels.items() if not prompts]
        if empty:
            raise ValueError(f"label {empty[0]!r} has no prompts")
        texts = [t.format(p) for prompts in labels.values() for p in prompts for t in templates]
        per_text = np.asarray(encode(texts), np.float32)
        counts = [len(prompts) * len(templates) for prompts in labels.values()]
        starts = np.cumsum([0, *counts[:-1]])
        means = np.add.reduceat(per_text, starts, axis=0) / np.asarray(counts, np.float32)[:, None]
        norms = np.linalg.norm(means, axis=1, keepdims=True)
        return cls(tuple(labels), (means / np.maximum(norms, 1e-12)).astype(np.float32), logit_scale)

    def scores(self, image_embeddings: Embeddings) -> npt.NDArray[np.float32]:
        """(N, D) unit image embeddings -> (N, L) probabilities over the labels (rows sum to 1)."""
        emb = np.asarray(image_embeddings, np.float32)
        if emb.ndim != 2 or emb.shape[1] != self.embeddings.shape[1]:
            raise ValueError(f"expected image embeddings (N, {self.embeddings.shape[1]}), got {emb.shape}")
        logits = self.logit_scale * (emb @ self.embeddings.T)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        probs: npt.NDArray[np.float32] = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
        return probs

    def best(self, image_embeddings: Embeddings) -> list[tuple[str, float]]:
        """The most probable label and its probability, per image."""
        probs = self.scores(image_embeddings)
        top = probs.argmax(axis=1)
        return [(self.labels[k], float(probs[i, k])) for i, k in enumerate(top)]


# -- in the pipeline: the scene and crop classifiers models.zero_shot makes ---------------------------


class ZeroShotSceneClassifier(Classifier):
    """``models.zero_shot.scenes`` in the scene classifier's place (``ModelsConfig.scene_model``): each
    frame's label is the scene whose prompts its CLIP embedding is closest to (below
    ``scene_min_score``: ``UNKNOWN``), and the embedding travels on as the frame's (clip windows and
    event search use it). Batched and placed like the scene ViT it replaces."""

    def __init__(self, cfg: ClassifierConfig, torch_threads: int = 1, batching: bool = True, cpu: bool = False) -> None:
        if not isinstance(cfg, ZeroShotScenes | ZeroShotCrops):
            raise TypeError(f"{type(self).__name__} takes the config ModelsConfig.scene_model / crop_model makes")
        set_process_role(self.role)
        self.device = configure_torch(torch_threads, cpu)
        t0 = time.perf_counter()
        self.clip = load_clip(cfg.zero_shot.backend, cfg.allow_download, self.device, cfg.max_batch)
        self.set_prompts(cfg.zero_shot)
        self.precision = "fp32"
        MODEL_LOAD_SECONDS.labels(self.role).observe(time.perf_counter() - t0)
        release_free_memory()
        if batching:
            self._batcher = Batcher(
                self.classify_batch, cfg.max_batch, cfg.max_wait_ms / 1000, name=f"{self.role}-batcher"
            )
        log.info(
            "%s: zero-shot on %s, %d labels, embedding %d", self.role, self.device, len(self.labels), self.clip.dim
        )

    below = UNKNOWN  # the label where no label's probability reaches the minimum

    @property
    def bank(self) -> PromptBank:
        """The labels' text embeddings it labels with now."""
        return self._labelling[0]

    def set_prompts(self, zs: ZeroShotConfig) -> None:
        """Label with ``zs``'s prompts (its backend must be the one loaded) from the next batch on:
        the text embeddings are computed here, then swapped in at once (a batch running meanwhile
        finishes with the old ones)."""
        bank = PromptBank.build(self.clip, self._prompts(zs), zs.templates)
        self._labelling = (bank, self._min_score(zs))
        self.labels = bank.labels

    def _prompts(self, zs: ZeroShotConfig) -> dict[str, tuple[str, ...]]:
        return dict(zs.scenes)

    def _min_score(self, zs: ZeroShotConfig) -> float:
        return zs.scene_min_score

    def embedding_dim(self) -> int:
        return self.clip.dim

    def _classify(self, images_bgr: list[npt.NDArray[np.uint8]]) -> list[SceneResult]:
        bank, min_score = self._labelling  # one read: prompts set meanwhile apply from the next batch
        emb = self.clip.embed_images([np.ascontiguousarray(img[..., ::-1]) for img in images_bgr])
        probs = bank.scores(emb)
        top = probs.argmax(axis=1)
        out = []
        for i, k in enumerate(top.tolist()):
            p = float(probs[i, k])
            out.append(SceneResult(bank.labels[k] if p >= min_score else self.below, p, emb[i]))
        return out


class ZeroShotCropClassifier(ZeroShotSceneClassifier, CropClassifier):
    """``models.zero_shot.attributes`` in the crop classifier's place (``ModelsConfig.crop_model``): a
    crop's label is the attribute whose prompts it is closest to, among the attributes of every class
    configured (give each class's attributes their own names); below ``attribute_min_score`` the box
    gets no label."""

    role = "crops"

    def _prompts(self, zs: ZeroShotConfig) -> dict[str, tuple[str, ...]]:
        merged: dict[str, tuple[str, ...]] = {}
        for per_class in zs.attributes.values():
            for label, prompts in per_class.items():
                merged[label] = merged.get(label, ()) + tuple(prompts)
        return merged

    def _min_score(self, zs: ZeroShotConfig) -> float:
        return zs.attribute_min_score

    below = ""  # no label: the camera leaves the box without one

    def scores(self, results: list[SceneResult]) -> list[LabelScore]:
        """Each crop's label with its CLIP embedding (event search compares words with it)."""
        return [LabelScore(r.label, r.confidence, r.embedding) for r in results]


def classifier_class(cfg: ClassifierConfig) -> type[Classifier]:
    """The class that runs a ``ModelsConfig.scene_model`` / ``crop_model``: a ViT checkpoint's, or
    the zero-shot one's."""
    if isinstance(cfg, ZeroShotCrops):
        return ZeroShotCropClassifier
    if isinstance(cfg, ZeroShotScenes):
        return ZeroShotSceneClassifier
    return CropClassifier if isinstance(cfg, CropClassifierConfig) else Classifier


def activity_head(temporal: TemporalConfig | None, zs: ZeroShotConfig | None) -> TemporalConfig | None:
    """The clip head's config: ``temporal``, with ``zs.activities`` its labels where there are any
    (the prompts embedded here, once, in the sentence encoder's space the head must be trained into)."""
    if temporal is None or zs is None or not zs.activities:
        return temporal
    from workers.clip_head import TEXT_SPACE

    embeddings = activity_embeddings(zs.activities, zs.templates)
    return ZeroShotActivities(
        **temporal.model_dump(exclude={"labels"}),
        labels=tuple(zs.activities),
        space=TEXT_SPACE,
        prompt_embeddings=embeddings.tolist(),
        background=zs.background,
        min_score=zs.activity_min_score,
    )


def activity_embeddings(
    activities: Mapping[str, Sequence[str]], templates: Sequence[str], cache: Path | None = None
) -> Embeddings:
    """(A, D) the activities' prompt embeddings in the sentence encoder's space, in order. Kept in
    ``cache`` (default ``$VIGIL_CACHE_DIR``, else ``~/.cache/vigil``) by the prompts, templates and
    encoder: loading the encoder costs seconds, reading them back nothing."""
    import hashlib
    import json
    import os

    from workers.clip_tower import MINILM, load_text_encoder

    key = json.dumps([MINILM, list(templates), {k: list(v) for k, v in activities.items()}], sort_keys=False)
    folder = cache or Path(os.environ.get("VIGIL_CACHE_DIR") or Path.home() / ".cache" / "vigil") / "prompts"
    path = folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.npy"
    try:
        cached = np.load(path)
        if cached.shape[0] == len(activities):
            return np.asarray(cached, np.float32)
    except (OSError, ValueError):
        pass  # not there yet, or unreadable: computed again
    encoder = load_text_encoder(MINILM)
    bank = PromptBank.from_encoder(lambda texts: encoder.encode(texts).cpu().numpy(), activities, templates)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, bank.embeddings)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only home: computed each time
        log.warning("prompt embeddings not cached in %s: %s", folder, exc)
    return bank.embeddings
