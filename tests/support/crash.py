"""A publisher process killed between Redis confirming a batch and the outbox forgetting it, and
reading back what a stream holds: the exactly-once tests' shared steps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import redis

from pipeline.core.messages import Event

REPO = Path(__file__).resolve().parents[2]

_CRASH_AFTER_CONFIRM = """
import os, sys
from pathlib import Path

from pipeline.events import spool
from pipeline.events.publisher import EventPublisher
from tests.support.configs import sample_event


def crash(self, seq):
    os._exit(9)


spool.Spool.remove_through = crash
url, path, camera, n = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
events = [sample_event(camera, i) for i in range(n)]
print(" ".join(e.event_id for e in events), flush=True)
publisher = EventPublisher(url, camera, path)
publisher.publish(events)
publisher.flush(60)
sys.exit(3)
"""


def crash_after_confirm(redis_url: str, outbox: Path, camera: str, events: int = 6) -> list[str]:
    """Run a publisher in a child process that accepts ``events`` events into ``outbox`` and dies
    (exit 9) right after Redis confirmed the first batch, before the outbox forgot it. Returns the
    ids of the events it accepted, in order."""
    child = subprocess.run(
        [sys.executable, "-c", _CRASH_AFTER_CONFIRM, redis_url, str(outbox), camera, str(events)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 9, child.stderr
    return child.stdout.split()


def stream_ids(client: redis.Redis, stream: str) -> list[str]:
    """The event ids in ``stream``, in stream order."""
    entries: Any = client.xrange(stream)
    return [Event.model_validate_json(f[b"event"]).event_id for _id, f in entries]
