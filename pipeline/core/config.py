"""Vigil configuration: strict pydantic models, one per YAML section.

The config is read once, at the edge (the CLI), and passed down as frozen objects. Secrets come
from the environment with ``${VAR}`` substitution and are never printed (see ``pipeline.core.redact``).

Example::

    cameras:
      - {id: lobby, url: "rtsp://admin:${LOBBY_PASS}@10.0.0.5/stream1", fps: 10}
    redis: {url: "redis://127.0.0.1:6379/0"}
    metrics: {host: 127.0.0.1, port: 9100}
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.core.redact import redact

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceKind(StrEnum):
    """What a camera URL points at; decides the default mode and the reconnect policy."""

    RTSP = "rtsp"
    HTTP = "http"
    FILE = "file"
    WEBCAM = "webcam"


class CameraMode(StrEnum):
    """``live``: always the newest frame, stale frames dropped and counted.
    ``file``: every frame, with backpressure instead of drops."""

    LIVE = "live"
    FILE = "file"


def source_kind(url: str) -> SourceKind:
    """Classify a camera URL. Raises ValueError for a scheme Vigil cannot read."""
    if url.isdigit() or url.startswith("/dev/video"):
        return SourceKind.WEBCAM
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("rtsp", "rtsps"):
        return SourceKind.RTSP
    if scheme in ("http", "https"):
        return SourceKind.HTTP
    if scheme in ("", "file"):
        return SourceKind.FILE
    raise ValueError(f"unsupported URL scheme {scheme!r} (use rtsp://, http(s)://, a file path or a webcam index)")


class MotionConfig(_Strict):
    """Motion gating: frames where less than ``threshold`` of the picture changed skip detection."""

    enabled: bool = Field(default=False, description="Skip detection and classification on still frames")
    threshold: float = Field(default=0.005, ge=0, le=1, description="Fraction of pixels that must change")
    pixel_delta: float = Field(default=20, gt=0, le=255, description="Grey-level change that counts as changed")
    background_alpha: float = Field(default=0.1, gt=0, le=1, description="Background update rate per frame")


class CameraConfig(_Strict):
    """One video source."""

    id: str = Field(pattern=_ID_PATTERN, description="Camera id: letters, digits, '_' or '-' (used in stream names)")
    url: str = Field(min_length=1, description="rtsp://, http(s)://, a file path, or a webcam index")
    fps: float = Field(default=10.0, gt=0, le=120, description="Frames per second processed (cap)")
    mode: CameraMode | None = Field(default=None, description="live | file; default: file for files, else live")
    loop: bool = Field(default=False, description="Files only: restart at the end (plays a file as a camera)")
    rtsp_transport: Literal["tcp", "udp"] = Field(default="tcp", description="RTSP transport")
    open_timeout_s: float = Field(default=5.0, gt=0, le=60, description="Give up opening the source after this")
    decode_threads: int = Field(
        default=1,
        ge=0,
        le=64,
        description="FFmpeg decoding threads for this camera (0: FFmpeg's choice, one per core). One thread "
        "decodes 1080p H.264 well above 30 fps, with less CPU per frame than several and no frame-threading delay",
    )
    read_timeout_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="No frame for this long: the stream counts as lost (raise it for cameras under 2 fps)",
    )
    resize_wh: tuple[int, int] | None = Field(
        default=None, description="Resize frames to [width, height] right after decoding (boxes are in this size)"
    )
    motion: MotionConfig = Field(default_factory=MotionConfig)
    max_in_flight: int = Field(
        default=2,
        ge=1,
        le=32,
        description="Frames of this camera in the model workers at once (results are applied in frame order); "
        "more lets the workers batch several frames of one camera",
    )
    reconnect_initial_s: float = Field(default=0.5, gt=0, le=60, description="First reconnect delay")
    reconnect_max_s: float = Field(
        default=2.0, gt=0, le=600, description="Cap of the exponential reconnect delay (jittered to 50-100 %)"
    )
    max_reconnects: int | None = Field(
        default=None, ge=0, description="Give up (state failed) after this many failed attempts in a row; null: never"
    )
    ray_resources: dict[str, float] = Field(
        default_factory=dict,
        description="Ray custom resources this camera's actor needs, e.g. {site_a: 0.01} to keep it on a node "
        "started with --resources '{\"site_a\": 1}'",
    )

    @field_validator("resize_wh")
    @classmethod
    def _sane_size(cls, size: tuple[int, int] | None) -> tuple[int, int] | None:
        if size is not None and not all(16 <= v <= 8192 for v in size):
            raise ValueError("width and height must be between 16 and 8192")
        return size

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        source_kind(url)
        return url

    @property
    def kind(self) -> SourceKind:
        return source_kind(self.url)

    @property
    def effective_mode(self) -> CameraMode:
        if self.mode is not None:
            return self.mode
        return CameraMode.FILE if self.kind is SourceKind.FILE and not self.loop else CameraMode.LIVE

    @property
    def display_url(self) -> str:
        """The URL with credentials redacted: the only form that may be logged or labelled."""
        return redact(self.url)


class RedisConfig(_Strict):
    url: str | None = Field(
        default=None,
        description="redis://[user:pass@]host:port/db or rediss:// for TLS; null starts an embedded redis-server",
    )
    stream_maxlen: int = Field(default=100_000, ge=100, description="Approximate MAXLEN of each event stream")
    dedupe_ttl_s: int = Field(
        default=86_400, ge=60, description="How long Redis remembers an event id, so retries never duplicate"
    )
    connect_timeout_s: float = Field(default=3.0, gt=0, le=60, description="Socket connect timeout")

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return url


class MetricsConfig(_Strict):
    host: str = Field(default="127.0.0.1", description="Address the /metrics endpoint binds to")
    port: int = Field(default=9100, ge=0, le=65535, description="Port of the /metrics endpoint (0: any free)")


class DetectorConfig(_Strict):
    """Ultralytics YOLO. ``weights`` is anything ``YOLO()`` accepts: a name (yolo11n.pt, downloaded by
    ultralytics where there is internet), a local path, or an architecture yaml (untrained)."""

    weights: str = Field(default="yolo11n.yaml", min_length=1, description="YOLO weights name or path")
    imgsz: int = Field(default=320, ge=32, le=1920, multiple_of=32, description="Inference size (pixels)")
    confidence: float = Field(default=0.25, ge=0, le=1, description="Minimum detection confidence")
    iou: float = Field(default=0.5, gt=0, le=1, description="NMS IoU threshold")
    max_det: int = Field(default=100, ge=1, le=1000, description="Maximum detections per frame")
    half: bool = Field(default=True, description="fp16 inference when on a GPU")
    cpu_precision: Literal["fp32", "bf16", "auto"] = Field(
        default="fp32",
        description="On a CPU: bf16 where the CPU computes it natively (Intel AMX or AVX512-BF16; fp32 elsewhere, "
        "with a warning): ~1.3-1.6x the detector's speed, the same boxes within ~1 px (the box head stays fp32); "
        "auto: bf16 where the CPU has it, fp32 elsewhere, without a warning. GPUs use half",
    )
    max_batch: int = Field(default=8, ge=1, le=256, description="Frames from all cameras per forward pass (cap)")
    max_wait_ms: float = Field(default=5.0, ge=0, le=1000, description="How long a batch waits for more frames")
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


class TorchvisionViT(_Strict):
    kind: Literal["torchvision"] = "torchvision"
    arch: str = Field(
        default="vit_tiny",
        description="'vit_tiny' (4 layers, dim 192, Vigil's small ViT) or a torchvision name such as vit_b_16",
    )
    pretrained: bool = Field(default=False, description="Download ImageNet weights (needs internet)")


class TimmViT(_Strict):
    kind: Literal["timm"] = "timm"
    arch: str = Field(default="vit_tiny_patch16_224", description="timm model name")
    pretrained: bool = Field(default=False, description="Download hub weights (needs internet)")


class ClassifierConfig(_Strict):
    """Scene classifier: a ViT giving a frame label and an embedding."""

    backend: Annotated[TorchvisionViT | TimmViT, Field(discriminator="kind")] = Field(
        default_factory=TorchvisionViT, description="Where the ViT architecture comes from"
    )
    weights: Path | None = Field(default=None, description="Vigil classifier checkpoint (.pt); null: untrained")
    labels: tuple[str, ...] = Field(
        default=("street", "parking", "corridor"), min_length=1, description="Scene labels (ignored with weights)"
    )
    image_size: int = Field(default=224, ge=32, le=1024, multiple_of=16, description="Input size (pixels)")
    max_batch: int = Field(default=8, ge=1, le=256, description="Frames from all cameras per forward pass (cap)")
    max_wait_ms: float = Field(default=5.0, ge=0, le=1000, description="How long a batch waits for more frames")
    half: bool = Field(default=True, description="fp16 inference on a GPU (a CPU runs fp32)")
    cpu_precision: Literal["fp32", "bf16", "auto"] = Field(
        default="fp32",
        description="On a CPU: bf16 where the CPU computes it natively (Intel AMX or AVX512-BF16; fp32 elsewhere, "
        "with a warning): ~1.5-1.9x the demo ViT's speed (~3x a ViT-B's forward pass); auto: bf16 where the CPU "
        "has it, fp32 elsewhere, without a warning. GPUs use half",
    )


class _ClipHead(_Strict):
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


class TemporalConfig(_Strict):
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


class ModelsConfig(_Strict):
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    crops: CropClassifierConfig | None = Field(
        default=None, description="Optional crop classifier for object events; null: off"
    )
    temporal: TemporalConfig = Field(default_factory=TemporalConfig)
    allow_download: bool = Field(default=False, description="Let ultralytics/timm reach their hubs at run time")

    @property
    def input_px(self) -> int:
        """The longest side of the frames the detector and the ViT get: a camera scales its frames
        down to this once, near the decoder, and keeps full resolution for snapshots and crops."""
        return max(self.detector.imgsz, self.classifier.image_size)


class SnapshotConfig(_Strict):
    """JPEG of the frame (boxes drawn) referenced by every start event."""

    store: Literal["redis", "dir", "off"] = Field(
        default="redis", description="redis: key vigil:snapshot:<event_id> with a TTL; dir: files in `dir`"
    )
    dir: Path | None = Field(default=None, description="Directory for store: dir")
    ttl_s: int = Field(default=86_400, ge=1, description="Lifetime of a snapshot stored in Redis")
    max_width: int = Field(default=640, ge=64, le=7680, description="Snapshots wider than this are scaled down")
    jpeg_quality: int = Field(default=80, ge=10, le=100, description="JPEG quality")

    @model_validator(mode="after")
    def _dir_given(self) -> SnapshotConfig:
        if self.store == "dir" and self.dir is None:
            raise ValueError("dir is required when store is 'dir'")
        return self


class SpoolConfig(_Strict):
    """The on-disk outbox every event passes through: it holds events while Redis is unreachable."""

    dir: Path = Field(default=Path(".vigil/spool"), description="One SQLite file per camera lives here")
    max_events: int = Field(default=100_000, ge=10, description="Bound of each camera's spool")
    when_full: Literal["drop_oldest", "drop_newest"] = Field(
        default="drop_oldest", description="drop_oldest keeps the newest events; every discard is counted"
    )


class EventsConfig(_Strict):
    """Event rules and lifecycle (start -> update -> end with hysteresis)."""

    object_classes: tuple[str, ...] | None = Field(
        default=None, description="Detector class names that raise object events; null: all"
    )
    object_min_confidence: float = Field(default=0.5, ge=0, le=1, description="Object event threshold")
    object_min_duration_s: float = Field(
        default=0.5, ge=0, le=3600, description="A track must stay this long above threshold before its start event"
    )
    object_cooldown_s: float = Field(
        default=2.0, ge=0, le=3600, description="A track unseen this long gets its end event"
    )
    clip_min_confidence: float = Field(default=0.5, ge=0, le=1, description="Clip event threshold")
    clip_ignore_labels: tuple[str, ...] = Field(default=("normal",), description="Clip labels that raise no event")
    clip_min_windows: int = Field(default=2, ge=1, le=100, description="Windows with the label before its start event")
    clip_end_windows: int = Field(
        default=2, ge=1, le=100, description="Consecutive windows without the label before its end event"
    )
    update_interval_s: float = Field(
        default=5.0, gt=0, le=3600, description="At most one update event per incident this often"
    )
    crop_min_frames: int = Field(
        default=3, ge=1, le=100, description="Frames in a row a new crop label needs before an object's update"
    )
    snapshots: SnapshotConfig = Field(default_factory=SnapshotConfig)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)


class WorkerResources(_Strict):
    replicas: int = Field(
        default=1, ge=1, le=64, description="Actors of this kind; cameras spread their frames over them round-robin"
    )
    num_cpus: float = Field(default=1.0, ge=0, le=256, description="Ray CPUs reserved by each actor")
    num_gpus: float | Literal["auto"] = Field(
        default="auto", description="GPUs per actor; auto: 0.5 with a GPU (detector and classifier share one)"
    )
    torch_threads: int = Field(default=1, ge=1, le=256, description="torch intra-op threads on CPU")


class RayConfig(_Strict):
    address: str | None = Field(default=None, description="Ray cluster address (ray://… or auto); null: start locally")
    cameras_per_host: int = Field(
        default=16, ge=1, le=1024, description="Cameras sharing one camera-host actor (process)"
    )
    num_cpus: int | None = Field(default=None, ge=1, description="CPUs of a locally started Ray")
    max_inline_bytes: int = Field(
        default=1 << 20,
        ge=0,
        le=64 << 20,
        description="Call arguments up to this size travel inside the call, not through the object store "
        "(Ray's max_direct_call_object_size, 100 KiB by default); only where Vigil starts Ray itself",
    )
    internal_metrics: bool = Field(
        default=False,
        description="Ray's own metrics and event-loop statistics, for Ray's dashboard (which Vigil does not "
        "start; Vigil exports its own metrics). Off, the camera hosts and workers spend less CPU on every call and "
        "timer (BENCHMARKS.md); only where Vigil starts Ray itself (a cluster sets its own)",
    )
    fused: bool = Field(
        default=False,
        description="Detector and scene classifier in one actor (one call and one frame copy per frame; "
        "replicas and resources from ray.detector). For few cores or a light ViT",
    )
    host_calls_per_replica: int = Field(
        default=1,
        ge=0,
        le=64,
        description="Fused workers, file-mode cameras: calls a camera host keeps in flight to each replica; "
        "frames that arrive meanwhile leave together in the next call (0: one call per frame)",
    )
    vision: Literal["workers", "hosts"] = Field(
        default="workers",
        description="Where the detector and the scene ViT run. workers: shared actor pools (ray.detector / "
        "ray.classifier: replicas, GPUs; any worker serves any camera). hosts: inside each camera-host process, one "
        "copy per host on ray.detector.torch_threads threads, its cameras' frames batched together: no Ray call "
        "per batch (for CPU-only machines: the models run on the CPU even where a GPU is visible; set "
        "cameras_per_host so hosts x threads ~ cores)",
    )
    pin_hosts: bool = Field(
        default=True,
        description="vision: hosts on a local Ray: each camera host keeps its threads (models, decoders, camera "
        "loops) on cores of its own, its equal share of the machine's cores among the hosts the configured "
        "cameras start, claimed with a lock file per core (a host that finds no share free runs unpinned); "
        "threads that stay on one core find its caches warm instead of migrating (BENCHMARKS.md). Nothing is "
        "pinned where the hosts do not split the cores evenly in shares of at least detector.torch_threads, "
        "or on a Ray cluster. false: the OS places every thread",
    )
    clip_head: Literal["hosts", "actor"] = Field(
        default="hosts",
        description="Where the clip head runs. hosts: inside each camera-host process, on its CPU (no call per "
        "window; right for small heads like the demo's). actor: one TemporalHead actor with ray.temporal's "
        "resources (a big head that wants a GPU)",
    )
    detector: WorkerResources = Field(default_factory=WorkerResources)
    classifier: WorkerResources = Field(default_factory=lambda: WorkerResources(num_cpus=0.5))
    crops: WorkerResources = Field(default_factory=lambda: WorkerResources(num_cpus=0.5))
    temporal: WorkerResources = Field(default_factory=lambda: WorkerResources(num_cpus=0, num_gpus=0))

    @field_validator("temporal")
    @classmethod
    def _one_clip_head(cls, res: WorkerResources) -> WorkerResources:
        if res.replicas != 1:
            raise ValueError("replicas: the clip head runs as one actor (it is called once per window, not per frame)")
        return res

    @model_validator(mode="after")
    def _no_resources_for_unused_workers(self) -> RayConfig:
        if self.fused and self._changed("classifier"):
            raise ValueError(
                "classifier: not used with fused: true (the fused worker takes ray.detector's replicas and resources)"
            )
        if self.address is not None and self._changed("internal_metrics"):
            raise ValueError(
                "internal_metrics: only used where Vigil starts Ray (ray.address: null); a cluster sets "
                "Ray's metrics at its own start"
            )
        if self.vision != "hosts" and self._changed("pin_hosts"):
            raise ValueError("pin_hosts: only used with vision: hosts (the camera hosts run the models)")
        if self.vision == "hosts":
            for name in ("fused", "host_calls_per_replica", "classifier", "crops"):
                if self._changed(name):
                    raise ValueError(
                        f"{name}: not used with vision: hosts (each camera host runs the models itself, crops too)"
                    )
            default = WorkerResources()  # compared with the default, as _changed, so a dumped config reloads
            unused = [
                k for k in ("replicas", "num_cpus", "num_gpus") if getattr(self.detector, k) != getattr(default, k)
            ]
            if unused:
                raise ValueError(
                    f"detector.{unused[0]}: not used with vision: hosts (only detector.torch_threads is; "
                    "ray.cameras_per_host sets how many copies run)"
                )
        if self.clip_head == "hosts" and self._changed("temporal"):
            raise ValueError(
                "temporal: only used with clip_head: actor (with clip_head: hosts the head runs in the camera hosts)"
            )
        return self

    def _changed(self, name: str) -> bool:
        # Compared with the default, not with what was written, so a dumped and reloaded config passes.
        return bool(getattr(self, name) != RayConfig.model_fields[name].get_default(call_default_factory=True))


class VigilConfig(_Strict):
    """The whole config file."""

    cameras: tuple[CameraConfig, ...] = Field(description="Video sources (at least one)")
    redis: RedisConfig = Field(default_factory=RedisConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    ray: RayConfig = Field(default_factory=RayConfig)

    @field_validator("cameras")
    @classmethod
    def _unique_ids(cls, cameras: tuple[CameraConfig, ...]) -> tuple[CameraConfig, ...]:
        if not cameras:
            raise ValueError("at least one camera is required")
        seen: set[str] = set()
        for cam in cameras:
            if cam.id in seen:
                raise ValueError(f"duplicate camera id {cam.id!r}")
            seen.add(cam.id)
        return cameras


class ConfigError(Exception):
    """A config problem a user must fix. ``problems`` holds one line per problem, each naming a key path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("; ".join(f"{source}: {p}" for p in problems))


def load_config(path: Path | str, overrides: dict[str, Any] | None = None) -> VigilConfig:
    """Read, substitute ``${VAR}``s in, and validate a YAML config file.

    ``overrides`` maps dotted key paths (``"redis.url"``) to values applied before validation.
    Raises ConfigError listing every problem with its key path (and YAML line when known).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), ["file not found" if not path.exists() else "not a file"])
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
        lines = _line_index(yaml.compose(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(str(path), [f"invalid YAML{where}: {getattr(exc, 'problem', exc)}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(str(path), ["top level must be a mapping with at least a 'cameras' key"])
    return parse_config(raw, str(path), lines, overrides)


def parse_config(
    raw: dict[str, Any],
    source: str = "<config>",
    lines: dict[str, int] | None = None,
    overrides: dict[str, Any] | None = None,
) -> VigilConfig:
    """Validate an already-parsed config mapping (see ``load_config``)."""
    problems: list[str] = []
    data = _substitute_env(raw, "", problems)
    for dotted, value in (overrides or {}).items():
        _set_path(data, dotted.split("."), value)
    if problems:
        raise ConfigError(source, problems)
    try:
        cfg = VigilConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(err, lines or {}) for err in exc.errors()]) from None
    return absolute_paths(cfg)


def absolute_paths(cfg: VigilConfig, base: Path | None = None) -> VigilConfig:
    """Make relative file paths absolute (against ``base``, default the working directory).

    Ray actors do not share the CLI's working directory, so paths must be absolute before they
    travel. Relative detector weights that do not exist locally are names (``yolo11n.pt``) and stay.
    """
    base = base or Path.cwd()
    cameras = tuple(absolute_paths_camera(cam, base) for cam in cfg.cameras)
    m, ev = cfg.models, cfg.events
    det = m.detector
    if Path(det.weights).exists() and not Path(det.weights).is_absolute():
        det = det.model_copy(update={"weights": str(base / det.weights)})
    models = m.model_copy(
        update={
            "detector": det,
            "classifier": m.classifier.model_copy(update={"weights": _abs(m.classifier.weights, base)}),
            "temporal": m.temporal.model_copy(update={"weights": _abs(m.temporal.weights, base)}),
        }
    )
    events = ev.model_copy(
        update={
            "spool": ev.spool.model_copy(update={"dir": _abs(ev.spool.dir, base)}),
            "snapshots": ev.snapshots.model_copy(update={"dir": _abs(ev.snapshots.dir, base)}),
        }
    )
    return cfg.model_copy(update={"cameras": cameras, "models": models, "events": events})


def absolute_paths_camera(cam: CameraConfig, base: Path | None = None) -> CameraConfig:
    """A file camera with a relative path, made absolute (see ``absolute_paths``)."""
    if cam.kind is SourceKind.FILE and "://" not in cam.url and not Path(cam.url).is_absolute():
        return cam.model_copy(update={"url": str((base or Path.cwd()) / cam.url)})
    return cam


def _abs(path: Path | None, base: Path) -> Path | None:
    return path if path is None or path.is_absolute() else base / path


def validate_camera(data: dict[str, Any], source: str = "camera") -> CameraConfig:
    """Validate one camera mapping (runtime ``cameras add``); ConfigError names the bad keys."""
    try:
        return absolute_paths_camera(CameraConfig.model_validate(data))
    except ValidationError as exc:
        raise ConfigError(source, [_describe(err, {}) for err in exc.errors()]) from None


def _describe(err: Any, lines: dict[str, int]) -> str:
    key = _key_path(err["loc"])
    line = lines.get(key)
    where = f" (line {line})" if line is not None else ""
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    # Never echo the offending input: it may hold a password.
    return f"{key or '<top>'}{where}: {redact(msg)}"


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("torchvision", "timm", "lstm", "transformer"):
            continue  # discriminated-union tag pydantic inserts into the location
        else:
            out += f".{part}" if out else str(part)
    return out


def _line_index(node: yaml.Node | None, prefix: str = "") -> dict[str, int]:
    """Map key paths (``cameras[0].fps``) to 1-based YAML line numbers."""
    index: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            index[path] = key_node.start_mark.line + 1
            index.update(_line_index(value_node, path))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = f"{prefix}[{i}]"
            index[path] = item.start_mark.line + 1
            index.update(_line_index(item, path))
    return index


def _substitute_env(value: Any, path: str, problems: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute_env(v, f"{path}.{k}" if path else str(k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_env(v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        problems.append(f"{path}: environment variable {name} is not set")
        return ""

    return _ENV_PATTERN.sub(repl, value)


def _set_path(data: dict[str, Any], keys: list[str], value: Any) -> None:
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
