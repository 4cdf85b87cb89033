"""The embedded redis-server `vigil run` and `vigil demo` start is supervised: killed while the
pipeline runs, it is started again on the same port, with the same directory and settings."""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest
import redis
from prometheus_client import generate_latest

from pipeline.core.metrics import VIGIL_REGISTRY
from pipeline.runtime.redis_server import EmbeddedRedis
from tests.support.metrics import value
from tests.support.wait import wait_for

PERSISTENT = ("--appendonly", "yes", "--appendfsync", "always")


def _restarts() -> float:
    return value(generate_latest(VIGIL_REGISTRY).decode(), "vigil_worker_restarts_total", worker="redis") or 0.0


def _answers_from_a_new_process(client: redis.Redis, old_pid: int) -> bool:
    try:
        return bool(client.ping()) and int(client.info("server")["process_id"]) != old_pid
    except redis.ConnectionError:
        return False


@pytest.mark.timeout(60)
def test_a_killed_embedded_redis_is_restarted_on_its_port_with_its_data(caplog: pytest.LogCaptureFixture) -> None:
    with EmbeddedRedis(extra_args=PERSISTENT, supervise=True) as server:
        client = redis.Redis.from_url(server.url, socket_timeout=2, decode_responses=True)
        client.set("kept", "across the restart")
        pid = int(client.info("server")["process_id"])
        before = _restarts()
        with caplog.at_level(logging.WARNING, logger="pipeline.runtime.redis_server"):
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: _answers_from_a_new_process(client, pid), 30, "the embedded redis-server answering again")
        assert client.get("kept") == "across the restart"  # same directory, same append-only settings
        assert _restarts() == before + 1
        lines = [
            r.getMessage()
            for r in caplog.records
            if r.name == "pipeline.runtime.redis_server" and r.levelno >= logging.WARNING
        ]
        assert len(lines) == 1 and "restarted" in lines[0] and str(server.port) in lines[0], lines
        client.close()


@pytest.mark.timeout(60)
def test_a_stopped_embedded_redis_stays_stopped() -> None:
    """Supervision ends with stop(): nothing answers on the port afterwards, even after several of the
    supervisor's checks would have come round."""
    server = EmbeddedRedis(supervise=True, poll_s=0.05)
    server.start()
    client = redis.Redis.from_url(server.url, socket_timeout=1)
    server.stop()
    time.sleep(0.5)
    with pytest.raises(redis.ConnectionError):
        client.ping()
    client.close()
