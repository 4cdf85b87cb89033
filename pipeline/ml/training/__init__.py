"""Training Vigil's models on labelled video: ``vigil train detector | classifier | crops | clip | temporal``.

One module per model, by subject:

- ``detector``: ultralytics YOLO on frames exported from ``vigil synth`` folders in YOLO format;
- ``classifier``: the scene ViT (``workers.classifier``) on frames, for the per-frame scene label;
- ``crops``: the crop classifier (person posture) on generated people, scored on video crops;
- ``clip``: a CLIP image tower against a locked sentence encoder, on frames and crops with captions
  (``captions``) written from the ground truth (``clip_data``), for zero-shot labels from words;
- ``temporal``: an LSTM or transformer clip head on feature windows extracted by the pipeline's
  own detector + ViT + ``FrameSummarizer``;
- ``vit``: fitting a ViT classifier (shared by ``classifier`` and ``crops``);
- ``cards``: the model card written next to every set of weights;
- ``common``: the progress callback, seeding, reading video frames.

Every command writes its weights and a model card (``<weights>.card.json`` + ``.md``: data,
seed, command, metrics, time). Progress goes through a callback so the CLI can show it.
The names below are re-exported for convenience; code in Vigil imports them from their modules.
"""

from __future__ import annotations

from pipeline.ml.training.cards import save_card, write_card
from pipeline.ml.training.classifier import train_classifier
from pipeline.ml.training.clip import train_clip
from pipeline.ml.training.common import Progress
from pipeline.ml.training.crops import train_crops
from pipeline.ml.training.detector import train_detector
from pipeline.ml.training.temporal import train_temporal

__all__ = [
    "Progress",
    "save_card",
    "train_classifier",
    "train_clip",
    "train_crops",
    "train_detector",
    "train_temporal",
    "write_card",
]
