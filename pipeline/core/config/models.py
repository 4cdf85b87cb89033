"""``models``: the detector, the scene and crop classifiers, the clip head, zero-shot CLIP labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from pipeline.core.config.base import Strict
from pipeline.core.config.zero_shot import ZeroShotConfig

_BATCHING = {"max_batch", "max_wait_ms", "half", "cpu_precision"}


class BatchedModelConfig(Strict):
    """The keys every batched frame model shares (the detector, the scene and crop classifiers)."""

    max_batch: int = Field(default=8, ge=1, le=256, description="Frames from all cameras per forward pass (cap)")
    max_wait_ms: float = Field(default=5.0, ge=0, le=1000, description="How long a batch waits for more frames")
    half: bool = Field(default=True, description="fp16 inference when on a GPU")
    cpu_precision: Literal["fp32", "bf16", "auto"] = Field(
        default="fp32",
        description="On a CPU: bf16 where the CPU computes it natively (Intel AMX or AVX512-BF16; fp32 elsewhere, "
        "with a warning); auto: bf16 where the CPU has it, fp32 elsewhere, without a warning. GPUs use half. "
        "Speed and accuracy of each: docs/performance.md",
    )


class DetectorConfig(BatchedModelConfig):
    """Ultralytics YOLO. ``weights`` is anything ``YOLO()`` accepts: a name (yolo11n.pt, downloaded by
    ultralytics where there is internet), a local path, or an architecture yaml (untrained)."""

    weights: str = Field(default="yolo11n.yaml", min_length=1, description="YOLO weights name or path")
    imgsz: int = Field(default=320, ge=32, le=1920, multiple_of=32, description="Inference size (pixels)")
    confidence: float = Field(default=0.25, ge=0, le=1, description="Minimum detection confidence")
    iou: float = Field(default=0.5, gt=0, le=1, description="NMS IoU threshold")
    max_det: int = Field(default=100, ge=1, le=1000, description="Maximum detections per frame")
    export: Literal["onnx", "engine"] | None = Field(
        default=None,
        description="Run an ultralytics export of the .pt weights: onnx (ONNX Runtime, CPU or CUDA) or engine "
        "(TensorRT, NVIDIA GPU; fp16 with half). Exported once per weights/size/batch into export_dir, then reused",
    )
    export_dir: Path = Field(default=Path(".vigil/exports"), description="Cache of exported detector models")

    @model_validator(mode="after")
    def _exportable(self) -> DetectorConfig:
        if self.export is not None and not self.weights.endswith((".pt", ".yaml", ".yml")):
            raise ValueError(f"export: {self.weights!r} is not .pt or .yaml weights; give the .pt to export from")
        return self


class TorchvisionViT(Strict):
    kind: Literal["torchvision"] = "torchvision"
    arch: str = Field(
        default="vit_tiny",
        description="'vit_tiny' (4 layers, dim 192, Vigil's small ViT) or a torchvision name such as vit_b_16",
    )
    pretrained: bool = Field(default=False, description="Download ImageNet weights (needs internet)")


class TimmViT(Strict):
    kind: Literal["timm"] = "timm"
    arch: str = Field(default="vit_tiny_patch16_224", description="timm model name")
    pretrained: bool = Field(default=False, description="Download hub weights (needs internet)")


class ClassifierConfig(BatchedModelConfig):
    """Scene classifier: a ViT giving a frame label and an embedding."""

    backend: Annotated[TorchvisionViT | TimmViT, Field(discriminator="kind")] = Field(
        default_factory=TorchvisionViT, description="Where the ViT architecture comes from"
    )
    weights: Path | None = Field(default=None, description="Vigil classifier checkpoint (.pt); null: untrained")
    labels: tuple[str, ...] = Field(
        default=("street", "parking", "corridor"), min_length=1, description="Scene labels (ignored with weights)"
    )
    image_size: int = Field(default=224, ge=32, le=1024, multiple_of=16, description="Input size (pixels)")


class _ClipHead(Strict):
    embedding_features: int = Field(
        default=8, ge=0, le=4096, description="The ViT embedding enters the head projected to this size (0: left out)"
    )
    embedding_dropout: float = Field(default=0.5, ge=0, lt=1, description="Dropout on that projection in training")


class LSTMHead(_ClipHead):
    kind: Literal["lstm"] = "lstm"
    hidden_size: int = Field(default=128, ge=8, le=4096, description="LSTM hidden size")
    num_layers: int = Field(default=1, ge=1, le=8, description="Stacked LSTM layers")


class TransformerHead(_ClipHead):
    kind: Literal["transformer"] = "transformer"
    d_model: int = Field(default=128, ge=8, le=4096, description="Model width")
    num_heads: int = Field(default=4, ge=1, le=64, description="Attention heads")
    num_layers: int = Field(default=2, ge=1, le=12, description="Encoder layers")


class TemporalConfig(Strict):
    """Clip head over a sliding window of per-frame features (ViT embedding + detection summary)."""

    head: Annotated[LSTMHead | TransformerHead, Field(discriminator="kind")] = Field(
        default_factory=LSTMHead, description="Head architecture, selected by kind: lstm | transformer"
    )
    weights: Path | None = Field(default=None, description="Vigil temporal checkpoint (.pt); null: untrained")
    labels: tuple[str, ...] = Field(
        default=("normal", "fall", "loiter", "run", "abandoned_object", "crowd"),
        min_length=2,
        description="Clip labels (ignored with weights)",
    )
    window: int = Field(default=16, ge=2, le=512, description="Frames per clip window")
    stride: int = Field(default=8, ge=1, le=512, description="Frames between two clip labels")

    @model_validator(mode="after")
    def _stride_fits(self) -> TemporalConfig:
        if self.stride > self.window:
            raise ValueError("stride must not exceed window")
        return self


class CropClassifierConfig(ClassifierConfig):
    """Second stage (like DeepStream's secondary GIEs): a ViT labelling the crops of chosen detection
    classes, batched across boxes, frames and cameras. The demo pack's tells a person's posture."""

    labels: tuple[str, ...] = Field(
        default=("upright", "down"), min_length=1, description="Crop labels (ignored with weights)"
    )
    image_size: int = Field(default=64, ge=32, le=1024, multiple_of=16, description="Crop input size (pixels)")
    max_batch: int = Field(default=32, ge=1, le=1024, description="Crops from all cameras per forward pass (cap)")
    classes: tuple[str, ...] = Field(
        default=("person",), min_length=1, description="Detector class names whose boxes are classified"
    )
    min_box_px: int = Field(default=12, ge=1, le=4096, description="Boxes with a smaller side are not classified")
    padding: float = Field(default=0.1, ge=0, le=1, description="Context added around each box (fraction of size)")


class ZeroShotScenes(ClassifierConfig):
    """The scene classifier ``models.zero_shot`` makes (``ModelsConfig.scene_model``): a CLIP image
    tower, a frame's label the scene whose prompts its embedding is closest to."""

    zero_shot: ZeroShotConfig
    allow_download: bool = False


class ZeroShotCrops(CropClassifierConfig):
    """The crop classifier ``models.zero_shot`` makes (``ModelsConfig.crop_model``): the boxes of the
    classes with ``attributes``, each labelled by the attribute whose prompts its crop is closest to."""

    zero_shot: ZeroShotConfig
    allow_download: bool = False


class ZeroShotActivities(TemporalConfig):
    """The clip head ``models.zero_shot.activities`` makes (the driver embeds the prompts): a head
    trained into the sentence encoder's space labels each window with the activity whose prompts it
    is closest to, or ``background`` below ``min_score``."""

    labels: tuple[str, ...] = Field(min_length=1)  # the activities, in the order of prompt_embeddings
    space: str
    prompt_embeddings: list[list[float]]  # (A, D) unit rows: each activity's prompts, templates, averaged
    background: str
    min_score: float


class ModelsConfig(Strict):
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    classifier: ClassifierConfig | None = Field(
        default_factory=ClassifierConfig,
        description="Scene classifier: a ViT giving a frame label and an embedding; null: off (no scene label; "
        "a clip head then gets the detection summary alone)",
    )
    crops: CropClassifierConfig | None = Field(
        default=None, description="Optional crop classifier for object events; null: off"
    )
    temporal: TemporalConfig | None = Field(
        default_factory=TemporalConfig,
        description="Clip head over a sliding window of per-frame features; null: off (no clip events). Without "
        "models.classifier only a head that uses no ViT embedding runs (trained with --embedding-features 0)",
    )
    zero_shot: ZeroShotConfig | None = Field(
        default=None, description="Labels from a CLIP model and text prompts, without training; null: off"
    )
    allow_download: bool = Field(
        default=False, description="Let ultralytics, timm, open_clip and transformers reach their hubs at run time"
    )

    @property
    def scene_model(self) -> ClassifierConfig | None:
        """What labels scenes: the prompts of ``zero_shot.scenes`` where there are any (in place of
        the scene ViT, taking its batching keys), else ``classifier``."""
        zs = self.zero_shot
        if zs is None or not zs.scenes:
            return self.classifier
        batching = (self.classifier or ClassifierConfig()).model_dump(include=_BATCHING)
        return ZeroShotScenes(**batching, labels=tuple(zs.scenes), zero_shot=zs, allow_download=self.allow_download)

    @property
    def crop_model(self) -> CropClassifierConfig | None:
        """What labels object crops: the prompts of ``zero_shot.attributes`` where there are any (in
        place of the crop ViT, taking its batching and box keys), else ``crops``."""
        zs = self.zero_shot
        if zs is None or not zs.attributes:
            return self.crops
        keys = (self.crops or CropClassifierConfig()).model_dump(include=_BATCHING | {"min_box_px", "padding"})
        labels = tuple(dict.fromkeys(label for per_class in zs.attributes.values() for label in per_class))
        return ZeroShotCrops(
            **keys, labels=labels, classes=tuple(zs.attributes), zero_shot=zs, allow_download=self.allow_download
        )

    @property
    def input_px(self) -> int:
        """The longest side of the frames the detector and the ViT get: a camera scales its frames
        down to this once, near the decoder, and keeps full resolution for snapshots and crops."""
        vit_px = self.classifier.image_size if self.classifier is not None else 0
        return max(self.detector.imgsz, vit_px)

    def missing_files(self) -> list[str]:
        """Model files the config names that are not on this machine (``key path: message`` each):
        found before any model library is imported or any worker starts."""
        problems = []
        weights = self.detector.weights
        looks_like_path = "/" in weights or weights.endswith((".pt", ".onnx", ".engine", ".torchscript"))
        if looks_like_path and not Path(weights).exists() and not self.allow_download:
            problems.append(
                f"models.detector.weights: {weights!r} is not a local file and downloads are off "
                "(give a path, an architecture .yaml, or set models.allow_download: true where there is internet)"
            )
        sections = {"classifier": self.classifier, "temporal": self.temporal, "crops": self.crops}
        files = {key: cfg.weights if cfg is not None else None for key, cfg in sections.items()}
        for key, path in files.items():
            if path is not None and not path.is_file():
                problems.append(f"models.{key}.weights: file not found: {path}")
        if self.zero_shot is not None and (why := self.zero_shot.backend.source_problem(self.allow_download)):
            problems.append(why)
        return problems
