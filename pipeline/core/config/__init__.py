"""Vigil configuration: strict pydantic models, one module per YAML section, and the loader.

The config is read once, at the edge (the CLI), and passed down as frozen objects. Secrets come
from the environment with ``${VAR}`` substitution and are never printed (see ``pipeline.core.redact``).

Example::

    cameras:
      - {id: lobby, url: "rtsp://admin:${LOBBY_PASS}@10.0.0.5/stream1", fps: 10}
    redis: {url: "redis://127.0.0.1:6379/0"}
    metrics: {host: 127.0.0.1, port: 9100}
"""

from pipeline.core.config.cameras import CameraConfig, CameraMode, MotionConfig, SourceKind, source_kind
from pipeline.core.config.control import ControlConfig
from pipeline.core.config.events import EventsConfig, SnapshotConfig, SpoolConfig
from pipeline.core.config.loader import (
    ConfigError,
    VigilConfig,
    absolute_paths,
    absolute_paths_camera,
    load_config,
    parse_config,
    validate_camera,
)
from pipeline.core.config.models import (
    BatchedModelConfig,
    ClassifierConfig,
    CropClassifierConfig,
    DetectorConfig,
    LSTMHead,
    ModelsConfig,
    TemporalConfig,
    TimmViT,
    TorchvisionViT,
    TransformerHead,
    ZeroShotActivities,
    ZeroShotCrops,
    ZeroShotScenes,
)
from pipeline.core.config.ray import Placement, RayConfig, WorkerResources
from pipeline.core.config.services import MetricsConfig, RedisConfig
from pipeline.core.config.zero_shot import HfClipBackend, OpenClipBackend, VigilClipBackend, ZeroShotConfig

__all__ = [
    "BatchedModelConfig",
    "CameraConfig",
    "CameraMode",
    "ClassifierConfig",
    "ConfigError",
    "ControlConfig",
    "CropClassifierConfig",
    "DetectorConfig",
    "EventsConfig",
    "HfClipBackend",
    "LSTMHead",
    "MetricsConfig",
    "ModelsConfig",
    "MotionConfig",
    "OpenClipBackend",
    "Placement",
    "RayConfig",
    "RedisConfig",
    "SnapshotConfig",
    "SourceKind",
    "SpoolConfig",
    "TemporalConfig",
    "TimmViT",
    "TorchvisionViT",
    "TransformerHead",
    "VigilClipBackend",
    "VigilConfig",
    "WorkerResources",
    "ZeroShotActivities",
    "ZeroShotConfig",
    "ZeroShotCrops",
    "ZeroShotScenes",
    "absolute_paths",
    "absolute_paths_camera",
    "load_config",
    "parse_config",
    "source_kind",
    "validate_camera",
]
