"""``redis`` and ``metrics``: the services Vigil talks to and serves."""

from __future__ import annotations

from pydantic import Field, field_validator

from pipeline.core.config.base import Strict

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")  # what redis-py connects to


class RedisConfig(Strict):
    url: str | None = Field(
        default=None,
        description="redis://[user:pass@]host:port/db or rediss:// for TLS; null starts an embedded redis-server",
    )
    stream_maxlen: int = Field(default=100_000, ge=100, description="Approximate MAXLEN of each event stream")
    dedupe_ttl_s: int | None = Field(
        default=None,
        ge=60,
        description=(
            "How long Redis remembers an event id, so retries never duplicate; null: as long as the outbox may "
            "still retry it (its retry horizon, docs/events.md). Never shorter than that"
        ),
    )
    memory_budget_mb: int = Field(
        default=32,
        ge=1,
        le=1_048_576,
        description=(
            "MiB of Redis that Vigil's snapshots and de-duplication keys may take (streams are bounded by "
            "stream_maxlen); beyond it the oldest snapshots go first, then de-duplication keys past the retry horizon"
        ),
    )
    connect_timeout_s: float = Field(default=3.0, gt=0, le=60, description="Socket connect timeout")

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(REDIS_SCHEMES):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return url


class MetricsConfig(Strict):
    host: str = Field(default="127.0.0.1", description="Address the /metrics endpoint binds to")
    port: int = Field(default=9100, ge=0, le=65535, description="Port of the /metrics endpoint (0: any free)")
