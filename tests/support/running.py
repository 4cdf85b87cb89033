"""A real pipeline against a real, private redis-server: the block many integration tests need."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pipeline.core.config import VigilConfig
from pipeline.runtime.driver import Pipeline
from pipeline.runtime.redis_server import EmbeddedRedis


@dataclass(frozen=True)
class Running:
    pipeline: Pipeline
    redis: EmbeddedRedis

    @property
    def url(self) -> str:
        return self.redis.url

    @property
    def metrics_port(self) -> int:
        port = self.pipeline.metrics_port
        assert port is not None, "the pipeline serves no metrics"
        return port


@contextmanager
def running_pipeline(cfg: VigilConfig, redis: EmbeddedRedis | None = None) -> Iterator[Running]:
    """Start ``cfg`` against ``redis`` (a fresh embedded redis-server when None); stop both after."""
    if redis is None:
        with EmbeddedRedis() as server, running_pipeline(cfg, server) as run:
            yield run
        return
    pipeline = Pipeline(cfg, redis.url)
    pipeline.start()
    try:
        yield Running(pipeline, redis)
    finally:
        pipeline.stop()
