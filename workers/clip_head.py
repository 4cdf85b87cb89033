"""Temporal stage: LSTM or transformer clip heads over windows of per-frame features.

A frame's feature vector is its ViT embedding followed by a fixed-size detection summary
(:func:`detection_summary`). The window itself is per-camera state and lives with the camera
(``pipeline.runtime.camera``); ``ClipHead`` is stateless and labels whatever window it is given.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from pipeline.core.config import LSTMHead, TemporalConfig, TransformerHead, ZeroShotActivities
from pipeline.core.messages import Detections, FloatArray, LabelScore
from pipeline.core.metrics import MODEL_LOAD_SECONDS, model_call
from workers.common import MetricsExporter, configure_torch, release_free_memory, set_process_role

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "vigil-temporal/3"
FEATURE_VERSION = 6  # bump when features change (FrameSummarizer, or how frames reach the models): caches go stale
SUMMARY_STATS = 6  # count, mean confidence, mean area, mean aspect, mean centre x, mean centre y
MOTION_STATS = 8  # see FrameSummarizer
NORMAL = "normal"  # the training label of windows where nothing happens
TEXT_SPACE = "minilm-384"  # the sentence encoder a text-space head maps windows into (all-MiniLM-L6-v2)
PERSON_NAMES = frozenset({"person", "pedestrian"})
BAG_NAMES = frozenset({"bag", "backpack", "handbag", "suitcase"})


def summary_dim(num_classes: int) -> int:
    return SUMMARY_STATS + num_classes + MOTION_STATS


def _mean(v: FloatArray) -> Any:
    """``v.mean()`` of a 1-d array, bit for bit (numpy's sum, divided in float64, in ``v``'s
    dtype), without its per-call bookkeeping: the summary takes five per frame."""
    return v.dtype.type(float(np.add.reduce(v)) / len(v))


def detection_summary(det: Detections, resolution_wh: tuple[int, int], num_classes: int) -> FloatArray:
    """The stateless part of a frame's summary, in [0, ~1] units (the motion part is zero).

    [count/10, mean confidence, mean box area / frame area, mean h/w / 4, mean cx / W, mean cy / H,
    per-class count/10 ..., motion stats (zeros)]
    """
    out = np.zeros(summary_dim(num_classes), np.float32)
    if len(det) == 0:
        return out
    w, h = resolution_wh
    x1, y1, x2, y2 = det.xyxy.T
    bw, bh = np.maximum(x2 - x1, 1e-3), np.maximum(y2 - y1, 1e-3)
    out[:SUMMARY_STATS] = (
        len(det) / 10.0,
        float(_mean(det.confidence)),
        float(_mean(bw * bh) / (w * h)),
        float(_mean(bh / bw) / 4.0),
        float(_mean((x1 + x2) / 2) / w),
        float(_mean((y1 + y2) / 2) / h),
    )
    valid = det.class_id[(det.class_id >= 0) & (det.class_id < num_classes)]
    out[SUMMARY_STATS : SUMMARY_STATS + num_classes] = np.bincount(valid, minlength=num_classes)[:num_classes] / 10.0
    return out


def _lengths(v: FloatArray) -> FloatArray:
    """Euclidean lengths along the last axis (``np.linalg.norm``'s own sum, without its checks)."""
    out: FloatArray = np.sqrt(np.add.reduce(v * v, axis=-1))
    return out


@dataclass
class _Trail:
    """A person's or bag's recent foot points, associated frame to frame by the summarizer."""

    kind: str
    first_seen: float
    size: float  # smoothed body length (pixels): speeds and distances are measured in it
    points: deque[tuple[float, float, float]] = field(default_factory=deque)  # (ts, x, y)
    attended: bool = False  # bags: a person has been next to it (a static false detection never is)


class FrameSummarizer:
    """Per-camera detection summary with motion: the non-ViT half of a frame's features.

    Appends to :func:`detection_summary`:

    [max person speed (body lengths/s / 4), mean person speed, min person h/w / 4, fraction of
    persons lying (h/w < 1), max person stillness over 4 s (1 - spread in body lengths; 1 = stayed
    put), largest group of persons within 0.12 W / 10, unattended bag (a still bag that a person
    stood by and none stands by now, see ``_someone_at``), oldest person trail age / 20 s]

    Speeds and spreads are in body lengths, so near and far people (perspective) compare.

    Motion comes from the summarizer's own nearest-neighbour association of person and bag foot
    points between frames (within 0.12 W), not from the tracker: at 10 fps a running person moves
    about their own width per frame, which IoU-based trackers (ByteTrack) do not confirm. Time is
    stream time, so files processed faster or slower than real time give the same features.
    Persons and bags are recognised by class name (``person``; ``bag``, ``backpack``, ``handbag``,
    ``suitcase``), so COCO models work too. State belongs to one camera, like the tracker.
    """

    HISTORY_S = 6.0
    KEEP_S = 1.0  # a person trail unseen this long is dropped
    BAG_KEEP_S = 4.0  # bags stand still: one missed by the detector for a while is still there
    RADIUS = 0.12  # association radius, in frame widths

    def __init__(self, class_names: tuple[str, ...]) -> None:
        self.class_names = class_names
        self.num_classes = len(class_names)
        self._person = np.array([n in PERSON_NAMES for n in class_names] + [False])
        self._bag = np.array([n in BAG_NAMES for n in class_names] + [False])
        self._trails: list[_Trail] = []

    def __call__(self, det: Detections, resolution_wh: tuple[int, int], ts: float) -> FloatArray:
        out = detection_summary(det, resolution_wh, self.num_classes)
        w = float(resolution_wh[0])
        if len(det) == 0:
            self._associate(np.zeros((0, 2), np.float32), np.zeros(0, bool), np.zeros(0, np.float32), ts, w)
            return out  # motion stats stay zero
        cls = np.clip(det.class_id, -1, self.num_classes)
        is_person, is_bag = self._person[cls], self._bag[cls]
        x1, y1, x2, y2 = det.xyxy.T
        feet = np.stack([(x1 + x2) / 2, y2], axis=1)
        aspect = (y2 - y1) / np.maximum(x2 - x1, 1e-3)
        keep = is_person | is_bag
        sizes = np.maximum(y2 - y1, x2 - x1)
        trails = self._associate(feet[keep], is_person[keep], sizes[keep], ts, w)
        speeds, still, ages = [], [], []
        for trail in (t for t in trails if t.kind == "person"):
            pts = trail.points
            if len(pts) >= 2:
                speeds.append(self._speed(pts) / trail.size)
                ages.append(ts - trail.first_seen)
            if pts[-1][0] - pts[0][0] >= 2.0:
                recent = np.array([(x, y) for t, x, y in pts if t >= ts - 4.0])
                radius = float(_lengths(recent - recent.mean(axis=0)).max())
                still.append(1.0 - min(1.0, radius / trail.size))
        persons = feet[is_person]
        group = 0
        if len(persons):
            d = _lengths(persons[:, None] - persons[None])
            group = int((d < 0.12 * w).sum(axis=1).max())
        unattended = 0.0
        bags = [t for t in self._trails if t.kind == "bag"]  # seen now or lately
        for trail, attended in zip(bags, self._someone_at(bags, persons, sizes[is_person]), strict=True):
            pts = trail.points
            if attended:
                trail.attended = True
                continue
            if not trail.attended or pts[-1][0] - pts[0][0] < 1.5:
                continue
            recent = np.array([(x, y) for t, x, y in pts if t >= pts[-1][0] - 2.0])
            if float(_lengths(recent - recent[-1]).max()) <= 0.03 * w:
                unattended = 1.0
        out[SUMMARY_STATS + self.num_classes :] = (
            min(4.0, max(speeds, default=0.0)) / 4.0,
            min(4.0, float(np.mean(speeds)) if speeds else 0.0) / 4.0,
            float(aspect[is_person].min()) / 4.0 if is_person.any() else 0.0,
            float((aspect[is_person] < 1.0).mean()) if is_person.any() else 0.0,
            max(still, default=0.0),
            group / 10.0,
            unattended,
            min(1.0, max(ages, default=0.0) / 20.0),
        )
        return out

    @staticmethod
    def _someone_at(bags: list[_Trail], persons: FloatArray, sizes: FloatArray) -> list[bool]:
        """For each bag trail, whether a person stands by its last foot point: within 0.6 of their
        body length sideways and 0.4 in depth (foot height). Passers-by nearer or farther from the
        camera are not with the bag, however close they look in the picture."""
        if not len(persons) or not bags:
            return [False] * len(bags)
        at = np.array([t.points[-1][1:] for t in bags], np.float32)
        dx = np.abs(persons[None, :, 0] - at[:, None, 0]) / sizes
        dy = np.abs(persons[None, :, 1] - at[:, None, 1]) / sizes
        near: list[bool] = ((dx < 0.6) & (dy < 0.4)).any(axis=1).tolist()
        return near

    def _associate(
        self, feet: FloatArray, person: npt.NDArray[np.bool_], sizes: FloatArray, ts: float, w: float
    ) -> list[_Trail]:
        """Extend trails with this frame's foot points (greedy nearest first); return the matched trails."""
        self._trails = [
            t for t in self._trails if ts - t.points[-1][0] <= (self.KEEP_S if t.kind == "person" else self.BAG_KEEP_S)
        ]
        matched: list[_Trail] = []
        free = set(range(len(self._trails)))
        taken: set[int] = set()
        for i, j in self._nearest_first(feet, person, w):
            if i in taken or j not in free:
                continue
            taken.add(i)
            free.discard(j)
            trail = self._trails[j]
            trail.size = 0.8 * trail.size + 0.2 * float(sizes[i])
            trail.points.append((ts, float(feet[i][0]), float(feet[i][1])))
            while trail.points[0][0] < ts - self.HISTORY_S:
                trail.points.popleft()
            matched.append(trail)
        for i in range(len(feet)):
            if i not in taken:
                trail = _Trail("person" if person[i] else "bag", ts, max(1.0, float(sizes[i])))
                trail.points.append((ts, float(feet[i][0]), float(feet[i][1])))
                self._trails.append(trail)
                matched.append(trail)
        return matched

    def _nearest_first(self, feet: FloatArray, person: npt.NDArray[np.bool_], w: float) -> list[tuple[int, int]]:
        """(foot point, trail) pairs of the same kind within the association radius, nearest first
        (ties by point, then trail)."""
        if not len(feet) or not self._trails:
            return []
        # In float64, as a float32 foot point minus a trail's (x, y) tuple always was.
        last = np.array([t.points[-1][1:] for t in self._trails], np.float64)
        at = feet.astype(np.float64)
        dist = np.hypot(at[:, None, 0] - last[None, :, 0], at[:, None, 1] - last[None, :, 1])
        trail_person = np.array([t.kind == "person" for t in self._trails])
        i, j = np.nonzero((person[:, None] == trail_person[None]) & (dist <= self.RADIUS * w))
        order = np.lexsort((j, i, dist[i, j]))
        return list(zip(i[order].tolist(), j[order].tolist(), strict=True))

    @staticmethod
    def _speed(points: deque[tuple[float, float, float]]) -> float:
        """Pixels/s over the last ~0.5 s of a trail."""
        t1, x1, y1 = points[-1]
        t0, x0, y0 = next((p for p in reversed(points) if t1 - p[0] >= 0.5), points[0])
        if t1 - t0 <= 0:
            return 0.0
        return float(np.hypot(x1 - x0, y1 - y0) / (t1 - t0))


class FeatureInput(nn.Module):
    """A head's input layer: the ViT embedding (the first ``emb_dim`` features) normalised and
    projected small with dropout, the detection summary normalised on its own. Without this the
    192-wide embedding, which mostly encodes the scene, drowns the 17 summary features and the
    head memorises training scenes (window accuracy on held-out videos: 0.45 vs 0.74)."""

    def __init__(self, in_dim: int, emb_dim: int, cfg: LSTMHead | TransformerHead) -> None:
        super().__init__()
        self.emb_dim = emb_dim
        use_emb = emb_dim > 0 and cfg.embedding_features > 0
        self.emb = (
            nn.Sequential(
                nn.LayerNorm(emb_dim), nn.Linear(emb_dim, cfg.embedding_features), nn.Dropout(cfg.embedding_dropout)
            )
            if use_emb
            else None
        )
        self.summary_norm = nn.LayerNorm(in_dim - emb_dim)
        self.out_dim = (cfg.embedding_features if use_emb else 0) + in_dim - emb_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z: torch.Tensor = self.summary_norm(x[..., self.emb_dim :])
        if self.emb is not None:
            z = torch.cat([self.emb(x[..., : self.emb_dim]), z], dim=-1)
        return z


class ClipLSTM(nn.Module):
    def __init__(self, in_dim: int, num_labels: int, cfg: LSTMHead, emb_dim: int = 0) -> None:
        super().__init__()
        self.input = FeatureInput(in_dim, emb_dim, cfg)
        self.lstm = nn.LSTM(self.input.out_dim, cfg.hidden_size, num_layers=cfg.num_layers, batch_first=True)
        self.out = nn.Linear(cfg.hidden_size, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> logits (B, L), from the last time step."""
        h, _ = self.lstm(self.input(x))
        logits: torch.Tensor = self.out(h[:, -1])
        return logits


class ClipTransformer(nn.Module):
    def __init__(
        self, in_dim: int, num_labels: int, cfg: TransformerHead, emb_dim: int = 0, max_len: int = 512
    ) -> None:
        super().__init__()
        self.input = FeatureInput(in_dim, emb_dim, cfg)
        self.proj = nn.Linear(self.input.out_dim, cfg.d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.d_model))
        self.pos = nn.Parameter(_sinusoid(max_len + 1, cfg.d_model), requires_grad=False)
        layer = nn.TransformerEncoderLayer(
            cfg.d_model, cfg.num_heads, dim_feedforward=cfg.d_model * 2, batch_first=True, dropout=0.1
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.out = nn.Linear(cfg.d_model, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> logits (B, L), from a learned CLS token."""
        z = self.proj(self.input(x))
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


def build_head(
    head: LSTMHead | TransformerHead, in_dim: int, num_labels: int, seed: int = 0, emb_dim: int = 0
) -> nn.Module:
    """``in_dim`` features per frame, of which the first ``emb_dim`` are the ViT embedding."""
    torch.manual_seed(seed)
    if isinstance(head, LSTMHead):
        return ClipLSTM(in_dim, num_labels, head, emb_dim)
    return ClipTransformer(in_dim, num_labels, head, emb_dim)


@dataclass(frozen=True)
class TextSpace:
    """A head trained into a sentence encoder's space (``vigil train temporal --text-space``): its
    output is a window's embedding there, and a label is the text its embedding is closest to.
    ``label_embeddings`` (L, D) are its training labels' (the mean of each label's captions), so it
    labels like a trained head without prompts; with prompts (``models.zero_shot.activities``) any
    words label it."""

    space: str  # the sentence encoder, e.g. "minilm-384" (pipeline.events.search names spaces alike)
    label_embeddings: npt.NDArray[np.float32]
    logit_scale: float


def save_checkpoint(
    path: Path,
    model: nn.Module,
    head: LSTMHead | TransformerHead,
    labels: tuple[str, ...],
    in_dim: int,
    emb_dim: int = 0,
    text: TextSpace | None = None,
) -> None:
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "head": head.model_dump(),
            "labels": list(labels),
            "in_dim": in_dim,
            "emb_dim": emb_dim,
            "state_dict": model.state_dict(),
            "text_space": None
            if text is None
            else {
                "space": text.space,
                "label_embeddings": text.label_embeddings.tolist(),
                "logit_scale": text.logit_scale,
            },
        },
        path,
    )


def load_head(
    cfg: TemporalConfig, in_dim: int, emb_dim: int = 0
) -> tuple[nn.Module, tuple[str, ...], str, TextSpace | None]:
    """Build the configured head for ``in_dim`` features (``emb_dim`` of them the ViT embedding;
    0: no scene ViT runs, the features are the detection summary alone). Returns (model, labels, kind,
    its text space or None).

    A checkpoint whose head leaves the embedding out (``embedding_features: 0``) reads only the
    detection summary, so it runs with any ViT or none; one that uses the embedding needs the ViT
    it was trained with."""
    if cfg.weights is None:
        log.warning("temporal: no weights configured, running an UNTRAINED %s head", cfg.head.kind)
        return build_head(cfg.head, in_dim, len(cfg.labels), emb_dim=emb_dim), cfg.labels, cfg.head.kind, None
    ckpt: dict[str, Any] = torch.load(cfg.weights, map_location="cpu", weights_only=False)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{cfg.weights}: not a Vigil temporal checkpoint ({CHECKPOINT_FORMAT})")
    head: LSTMHead | TransformerHead = (
        LSTMHead(**ckpt["head"]) if ckpt["head"]["kind"] == "lstm" else TransformerHead(**ckpt["head"])
    )
    trained_in, trained_emb = int(ckpt["in_dim"]), int(ckpt.get("emb_dim", 0))
    uses_embedding = trained_emb > 0 and head.embedding_features > 0  # as FeatureInput decides
    if uses_embedding and emb_dim == 0:
        raise ValueError(
            f"{cfg.weights}: uses the scene ViT's embedding (embedding_features {head.embedding_features}), "
            "and models.classifier is null; configure the ViT it was trained with, or a head trained with "
            "--embedding-features 0"
        )
    if trained_in - trained_emb != in_dim - emb_dim or (uses_embedding and trained_emb != emb_dim):
        raise ValueError(
            f"{cfg.weights}: trained on {trained_in} features per frame, but the configured "
            f"detector + classifier give {in_dim}; use the models it was trained with"
        )
    labels = tuple(ckpt["labels"])
    text = None
    if (ts := ckpt.get("text_space")) is not None:
        table = np.asarray(ts["label_embeddings"], np.float32)
        text = TextSpace(str(ts["space"]), table, float(ts["logit_scale"]))
    model = build_head(head, in_dim, len(labels) if text is None else text.label_embeddings.shape[1], emb_dim=emb_dim)
    model.load_state_dict(ckpt["state_dict"])
    return model, labels, head.kind, text


class ClipHead(MetricsExporter):
    """Labels feature windows (T, F) with the configured clip head.

    A Ray actor (``ray.clip_head: actor``) or, with ``in_host=True``, a plain object that camera
    hosts load themselves and their camera threads call directly (on the host's CPU; calls are
    serialised by a lock, so one head serves every camera of the host)."""

    def __init__(
        self, cfg: TemporalConfig, in_dim: int, torch_threads: int = 1, emb_dim: int = 0, in_host: bool = False
    ) -> None:
        if not in_host:  # a camera host keeps its own role and thread settings
            set_process_role("temporal")
        self.device = "cpu" if in_host else configure_torch(torch_threads)
        self._lock = threading.Lock()
        t0 = time.perf_counter()
        model, self.labels, self.kind, self.text = load_head(cfg, in_dim, emb_dim)
        self.model = model.to(self.device).eval()
        # Labels from words: the prompts' embeddings and the head's own background (its "normal").
        self._bank: npt.NDArray[np.float32] | None = None
        self._min_score = 0.0
        self._normal: npt.NDArray[np.float32] | None = None
        if isinstance(cfg, ZeroShotActivities):
            if self.text is None:
                raise ValueError(
                    f"{cfg.weights}: models.zero_shot.activities needs a clip head trained into the text space "
                    "(vigil train temporal --text-space); this one has fixed labels"
                )
            self._normal = self.text.label_embeddings[list(self.labels).index(NORMAL)]
            self.set_prompts(cfg)
        elif self.text is not None:
            self._bank = self.text.label_embeddings
        MODEL_LOAD_SECONDS.labels(f"temporal_{self.kind}").observe(time.perf_counter() - t0)
        release_free_memory()  # the checkpoint's copies, freed as loading ended

    def head_kind(self) -> str:
        return self.kind

    def set_prompts(self, cfg: ZeroShotActivities) -> None:
        """Label with ``cfg``'s activities (their prompt embeddings) from the next window on; only a
        head that was started with activity prompts takes new ones."""
        if self.text is None or self._normal is None:
            raise ValueError("this clip head labels with its trained labels, not activity prompts")
        if cfg.space != self.text.space:
            raise ValueError(f"{cfg.weights}: the head maps into {self.text.space}, the prompts into {cfg.space}")
        bank = np.vstack([np.asarray(cfg.prompt_embeddings, np.float32), self._normal[None]])
        with self._lock:
            self._bank, self.labels, self._min_score = bank, (*cfg.labels, cfg.background), cfg.min_score

    def classify_batch(self, windows: list[FloatArray]) -> list[LabelScore]:
        """Label each (T, F) window. Windows in one call share T."""
        with self._lock, model_call("temporal", len(windows)):
            return self._classify(windows)

    @torch.inference_mode()
    def _classify(self, windows: list[FloatArray]) -> list[LabelScore]:
        x = torch.from_numpy(np.stack(windows).astype(np.float32)).to(self.device)
        out = self.model(x).float()
        if self._bank is None:
            probs = torch.softmax(out, dim=1).cpu().numpy()
            return [LabelScore(self.labels[int(p.argmax())], float(p.max())) for p in probs]
        assert self.text is not None
        emb = nn.functional.normalize(out, dim=1).cpu().numpy()
        logits = self.text.logit_scale * (emb @ self._bank.T)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        background = len(self.labels) - 1
        results: list[LabelScore] = []
        for p, e in zip(probs, emb, strict=True):
            k = int(p.argmax())
            if p[k] < self._min_score:  # no activity's words fit well enough: the background
                k = background
            results.append(LabelScore(self.labels[k], float(p[k]), e))  # the window's embedding, for search
        return results
