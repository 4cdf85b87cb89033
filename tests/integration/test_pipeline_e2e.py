"""End to end on real parts: a file camera and an RTSP camera (GStreamer server) through decode,
YOLO, ViT, tracking, the clip head, Redis (streams + Pub/Sub) and the /metrics endpoint; a broken
camera beside them fails alone."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pipeline.core.config import VigilConfig
from pipeline.core.messages import SCHEMA_VERSION, CameraState, CameraStatus, Event
from pipeline.events.publisher import EVENTS_STREAM, STATUS_STREAM, camera_stream
from pipeline.runtime.driver import Pipeline
from pipeline.runtime.redis_server import EmbeddedRedis
from tests.support.configs import chatty_config
from tests.support.metrics import samples, scrape
from tests.support.rtsp import RtspServer
from tests.support.wait import wait_for

# The clip head's labels for this run (not the defaults): every clip event must carry one of them.
CLIP_LABELS = ("calm", "busy", "rush")


# Pixel geometry that does not fit a 640x360 frame: that camera fails at its first frame, alone.
MISDRAWN = {"coordinates": "pixels", "lines": [{"name": "far", "points": [[10, 10], [1200, 10]]}]}


def make_config(file_url: str, rtsp_url: str, missing: Path, spool: Path) -> VigilConfig:
    cameras = [
        {"id": "file_cam", "url": file_url, "fps": 5},
        {"id": "rtsp_cam", "url": rtsp_url, "fps": 5},
        {"id": "broken", "url": str(missing), "fps": 5},
        {"id": "misdrawn", "url": file_url, "fps": 5, "analytics": MISDRAWN},
    ]
    cfg = chatty_config(cameras, spool, update_interval_s=0.5)
    temporal = cfg.models.temporal.model_copy(update={"labels": CLIP_LABELS})
    return cfg.model_copy(update={"models": cfg.models.model_copy(update={"temporal": temporal})})


class PubSubListener:
    """Collects messages from vigil:events:* in a thread, subscribed before the pipeline starts."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub()
        self.pubsub.psubscribe("vigil:events:*")
        self.pubsub.get_message(timeout=2.0)  # the subscribe confirmation
        self.messages: list[tuple[str, dict[str, object]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self.pubsub.get_message(timeout=0.2)
            if msg and msg["type"] == "pmessage":
                self.messages.append((msg["channel"].decode(), json.loads(msg["data"])))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.pubsub.close()
        self.client.close()


@pytest.fixture(scope="module")
def run_result(
    ray_session: None,
    redis_server: EmbeddedRedis,
    rtsp_server: RtspServer,
    street_mp4: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, object]]:
    tmp = tmp_path_factory.mktemp("e2e")
    cfg = make_config(str(street_mp4), rtsp_server.url, tmp / "missing.mp4", tmp / "spool")
    listener = PubSubListener(redis_server.url)
    pipeline = Pipeline(cfg, redis_server.url)
    pipeline.start()
    client = redis.Redis.from_url(redis_server.url)
    try:

        def progressed() -> bool:
            by_id = {s.camera_id: s for s in pipeline.statuses()}
            return (
                len(by_id) == 4
                and by_id["file_cam"].state is CameraState.STOPPED
                and by_id["rtsp_cam"].events_published >= 3
                and by_id["broken"].state is CameraState.FAILED
                and by_id["misdrawn"].state is CameraState.FAILED
            )

        wait_for(progressed, 180, "the file to end, RTSP events and the broken and misdrawn cameras to fail")
        wait_for(lambda: len(listener.messages) >= 3, 10, "Pub/Sub messages")
        body = scrape(int(pipeline.metrics_port or 0))
        statuses = {s.camera_id: s for s in pipeline.statuses()}
    finally:
        final = pipeline.stop()
        listener.close()
    yield {
        "client": client,
        "metrics": body,
        "statuses": statuses,
        "final": final,
        "pubsub": listener.messages,
        "metrics_port": pipeline.metrics_port,
        "redis_url": redis_server.url,
        "config": cfg,
    }
    client.close()


def entries(client: redis.Redis, stream: str) -> list[dict[bytes, bytes]]:
    """The field maps of every entry in ``stream``, oldest first."""
    found: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(stream)  # type: ignore[assignment]
    return [fields for _id, fields in found]


def stream_events(client: redis.Redis, stream: str) -> list[Event]:
    return [Event.model_validate_json(fields[b"event"]) for fields in entries(client, stream)]


def test_file_camera_reads_every_frame_at_its_fps_cap(run_result: dict[str, object]) -> None:
    status = run_result["statuses"]["file_cam"]  # type: ignore[index]
    assert isinstance(status, CameraStatus)
    # 10 s of 10 fps video capped at 5 fps: every other frame, none lost.
    assert status.frames_processed == 50
    assert status.reason == "end of file"


def test_events_reach_both_streams_for_both_cameras(run_result: dict[str, object]) -> None:
    client = run_result["client"]
    assert isinstance(client, redis.Redis)
    all_events = stream_events(client, EVENTS_STREAM)
    for cam in ("file_cam", "rtsp_cam"):
        per_camera = stream_events(client, camera_stream(cam))
        assert per_camera, f"no events in {camera_stream(cam)}"
        assert all(e.camera_id == cam for e in per_camera)
        assert {e.event_id for e in per_camera} <= {e.event_id for e in all_events}
        clip = next(e for e in per_camera if e.kind == "clip")
        assert clip.phase == "start"
        assert clip.start_frame_id is not None and clip.start_frame_id < clip.frame_id
    assert len({e.event_id for e in all_events}) == len(all_events), "event ids must be unique"


def test_clip_events_carry_the_configured_head_and_labels(run_result: dict[str, object]) -> None:
    """Clip events name a label of the configured head (models.temporal.labels) and that head's
    kind, carry no object fields, and keep label, camera and start time across an incident."""
    client = run_result["client"]
    cfg = run_result["config"]
    assert isinstance(client, redis.Redis) and isinstance(cfg, VigilConfig)
    clips = [e for e in stream_events(client, EVENTS_STREAM) if e.kind == "clip"]
    assert {e.camera_id for e in clips} == {"file_cam", "rtsp_cam"}
    by_incident: dict[str, list[Event]] = {}
    for e in clips:
        assert e.label in CLIP_LABELS, e
        assert e.head == cfg.models.temporal.head.kind
        assert e.track_id is None and e.bbox_xyxy is None
        assert e.peak_confidence >= e.confidence
        by_incident.setdefault(e.incident_id, []).append(e)
    for events in by_incident.values():
        assert len({(e.label, e.camera_id, e.started_at) for e in events}) == 1, events
        peaks = [e.peak_confidence for e in events]
        assert peaks == sorted(peaks), "an incident's peak confidence never falls"


def test_events_are_published_on_pubsub(run_result: dict[str, object]) -> None:
    messages = run_result["pubsub"]
    assert isinstance(messages, list)
    channels = {channel for channel, _doc in messages}
    assert {camera_stream("file_cam"), camera_stream("rtsp_cam")} <= channels
    for channel, doc in messages:
        assert channel == camera_stream(str(doc["camera_id"]))
        assert doc["schema_version"] == SCHEMA_VERSION


def test_broken_camera_fails_alone_with_a_reason(run_result: dict[str, object]) -> None:
    statuses = run_result["statuses"]
    assert isinstance(statuses, dict)
    assert statuses["broken"].state is CameraState.FAILED
    assert "file not found" in statuses["broken"].reason
    assert statuses["misdrawn"].reason == "analytics.lines.far.points: point [1200, 10] is outside the 640x360 frame"
    assert statuses["rtsp_cam"].state is CameraState.STREAMING


def test_status_changes_are_published(run_result: dict[str, object]) -> None:
    client = run_result["client"]
    assert isinstance(client, redis.Redis)
    transitions = [json.loads(f[b"status"]) for f in entries(client, STATUS_STREAM)]
    by_camera: dict[str, list[str]] = {}
    for t in transitions:
        by_camera.setdefault(t["camera_id"], []).append(t["state"])
    assert by_camera["file_cam"][:3] == ["connecting", "streaming", "stopped"]
    assert by_camera["broken"] == ["connecting", "failed"]
    assert "streaming" in by_camera["rtsp_cam"]


def test_metrics_scraped_over_http(run_result: dict[str, object]) -> None:
    found = samples(str(run_result["metrics"]))
    for cam in ("file_cam", "rtsp_cam"):
        assert found[("vigil_frames_decoded_total", (("camera", cam),))] > 0
        assert found[("vigil_events_published_total", (("camera", cam), ("kind", "clip")))] > 0
    assert found[("vigil_stream_up", (("camera", "rtsp_cam"),))] == 1.0
    assert found[("vigil_stream_up", (("camera", "broken"),))] == 0.0
    assert found[("vigil_frames_dropped_total", (("camera", "file_cam"), ("reason", "fps_cap")))] == 50
    # The default placement on a machine without a GPU runs both models in the camera hosts: one
    # "vision" stage per frame (shared workers record "detect" and "classify" instead).
    for stage in ("decode", "vision", "temporal", "publish"):
        assert found[("vigil_stage_latency_seconds_count", (("stage", stage),))] > 0, stage
        assert found[("vigil_stage_latency_seconds_sum", (("stage", stage),))] > 0, stage
    # The cameras account their threads' CPU step by step (what `vigil bench` splits the overhead with).
    for step in ("decode", "prepare", "submit", "wait", "track", "features", "events", "publish", "redis"):
        assert found[("vigil_camera_cpu_seconds_total", (("step", step),))] > 0, step


def test_stop_flushes_and_reports_final_state(run_result: dict[str, object]) -> None:
    final = run_result["final"]
    assert isinstance(final, list)
    by_id = {s.camera_id: s for s in final}
    assert by_id["rtsp_cam"].state is CameraState.STOPPED
    assert by_id["rtsp_cam"].reason == "stopped by request"
    client = run_result["client"]
    assert isinstance(client, redis.Redis)
    assert client.xlen(camera_stream("rtsp_cam")) == by_id["rtsp_cam"].events_published


def test_file_camera_incidents_end_with_the_file(run_result: dict[str, object]) -> None:
    client = run_result["client"]
    assert isinstance(client, redis.Redis)
    events = stream_events(client, camera_stream("file_cam"))
    by_incident: dict[str, list[str]] = {}
    for e in events:
        by_incident.setdefault(e.incident_id, []).append(e.phase)
    for phases in by_incident.values():
        if phases == ["instant"]:  # a line crossing: one event, nothing to end
            continue
        assert phases[0] == "start" and phases[-1] == "end"
        assert set(phases[1:-1]) <= {"update"}


def test_start_events_have_a_fetchable_snapshot(run_result: dict[str, object]) -> None:
    import cv2
    import numpy as np

    from pipeline.events.client import EventClient

    client = run_result["client"]
    assert isinstance(client, redis.Redis)
    start = next(e for e in stream_events(client, camera_stream("rtsp_cam")) if e.phase == "start")
    assert start.snapshot == f"vigil:snapshot:{start.event_id}"
    reader = EventClient(str(run_result["redis_url"]))
    jpeg = reader.snapshot(start.event_id)
    reader.close()
    assert jpeg is not None
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert image.shape == (360, 640, 3)
