"""``events``: incident rules, snapshots and the outbox."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from pipeline.core.config.base import Strict


class SnapshotConfig(Strict):
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


class SpoolConfig(Strict):
    """The on-disk outbox every event passes through: it holds events while Redis is unreachable."""

    dir: Path = Field(default=Path(".vigil/spool"), description="One SQLite file per camera lives here")
    max_events: int = Field(default=100_000, ge=10, description="Bound of each camera's spool")
    when_full: Literal["drop_oldest", "drop_newest"] = Field(
        default="drop_oldest", description="drop_oldest keeps the newest events; every discard is counted"
    )


class SearchConfig(Strict):
    """Embeddings stored with events for ``vigil events search`` (pipeline.events.search): float16
    vectors in Redis, within ``redis.memory_budget_mb``."""

    ttl_s: int = Field(default=604_800, ge=60, description="Lifetime of an event's embedding in Redis")
    max_embeddings: int = Field(
        default=100_000,
        ge=0,
        le=10_000_000,
        description="At most this many embeddings are kept (the oldest go first); 0: none are stored",
    )


class EventsConfig(Strict):
    """Event rules and lifecycle (start -> update -> end with hysteresis)."""

    object_classes: tuple[str, ...] | None = Field(
        default=None, description="Detector class names that raise object events; null: all"
    )
    object_min_confidence: float = Field(default=0.5, ge=0, le=1, description="Object event threshold")
    object_min_duration_s: float = Field(
        default=0.5,
        ge=0,
        le=3600,
        description="A track first seen at or above object_min_confidence is followed this long before its start event",
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
    search: SearchConfig = Field(default_factory=SearchConfig)
