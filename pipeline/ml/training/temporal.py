"""``vigil train temporal``: an LSTM or transformer clip head trained on feature windows extracted by
the trained detector + ViT + ``FrameSummarizer`` (the very classes the pipeline runs) from ``vigil synth``
folders or from a user's folder of clips (one subfolder per label)."""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from pipeline.core.config import ClassifierConfig, DetectorConfig, LSTMHead, TransformerHead
from pipeline.ml.synth.activities import ACTIVITIES
from pipeline.ml.synth.dataset import load_set
from pipeline.ml.training.cards import write_card
from pipeline.ml.training.common import Progress, no_progress, read_frames, seed_everything
from workers.clip_head import FEATURE_VERSION, FrameSummarizer, summary_dim
from workers.decoder import model_input

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")


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
    progress: Progress = no_progress,
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
    text_space: bool = False,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Train an LSTM or transformer clip head on extracted feature windows. ``text_space``: the head
    maps a window into the sentence encoder's space (``TEXT_SPACE``), trained against the captions of
    each label (``captions.activity_captions``), so prompts label it (``models.zero_shot.activities``)."""
    from workers.clip_head import TEXT_SPACE, TextSpace, build_head, save_checkpoint

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
    texts = _caption_embeddings(labels) if text_space else None  # per label: (captions, D)
    out_dim = len(labels) if texts is None else texts[0].shape[1]
    model = build_head(head_cfg, extractor.dim, out_dim, seed=seed, emb_dim=emb_dim)
    log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's starting temperature
    x_train = torch.from_numpy(np.stack(xs["train"]))
    y_train = torch.tensor(ys["train"])
    counts = torch.bincount(y_train, minlength=len(labels)).float()
    weight = (counts.sum() / (len(labels) * counts.clamp(min=1))).clamp(max=10.0)
    params = [*model.parameters(), *([log_scale] if texts is not None else [])]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-3)
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
            logits = model(xb) if texts is None else _text_logits(model(xb), texts, log_scale)
            loss = nn.functional.cross_entropy(logits, y_train[idx], weight=weight, label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            progress(f"training {kind} head", step, steps)
    model.eval()
    metrics: dict[str, Any] = {"train_windows": len(x_train)}
    text = None
    if texts is not None:
        means = torch.stack([nn.functional.normalize(t.mean(0), dim=0) for t in texts])
        scale = float(log_scale.detach().exp().clamp(max=100.0))
        text = TextSpace(TEXT_SPACE, means.numpy().astype(np.float32), scale)
    if xs["val"]:
        with torch.inference_mode():
            out_val = model(torch.from_numpy(np.stack(xs["val"])))
            pred = (out_val if text is None else nn.functional.normalize(out_val, dim=1) @ means.T).argmax(1).numpy()
        y_val = np.array(ys["val"])
        metrics["val_window_accuracy"] = float((pred == y_val).mean())
        metrics["val_windows"] = len(y_val)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, model, head_cfg, labels, extractor.dim, emb_dim, text)
    write_card(
        out,
        {
            "model": f"{kind} clip head ({head_cfg.model_dump()}), window {window}"
            + (f", into the {TEXT_SPACE} sentence space" if text is not None else ""),
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


def _caption_embeddings(labels: tuple[str, ...]) -> list[torch.Tensor]:
    """Each label's training captions in the sentence encoder's space: (captions, D) per label."""
    from pipeline.ml.training.captions import activity_captions
    from workers.clip_tower import MINILM, load_text_encoder

    captions = activity_captions()
    missing = [label for label in labels if label not in captions]
    if missing:
        raise ValueError(f"no captions for the labels {missing}")
    encoder = load_text_encoder(MINILM)
    return [encoder.encode(list(captions[label])).cpu() for label in labels]


def _text_logits(out: torch.Tensor, texts: list[torch.Tensor], log_scale: torch.Tensor) -> torch.Tensor:
    """Each window's similarity to one caption of every label, drawn afresh each step (so the head
    learns what the captions share, not one sentence), at the learned temperature."""
    pick = torch.stack([t[torch.randint(len(t), ())] for t in texts])
    return log_scale.exp().clamp(max=100.0) * nn.functional.normalize(out, dim=1) @ pick.T
