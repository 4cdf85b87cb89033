"""A camera's loop with several frames in the models at once, on a real file, a real decoder and a
real redis-server, the models replaced by scripted stand-ins (``pipeline.runtime.clients``
interfaces) whose answers come back when the script says, out of order if it says so."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from pipeline.core.config import CameraConfig, parse_config
from pipeline.core.messages import CameraState, Detections, Event, FloatArray, LabelScore, SceneResult, stable_id
from pipeline.events.publisher import EventPublisher, camera_stream
from pipeline.runtime.camera import POSITION_KEY, CameraRunner, CameraSettings, window_sum
from pipeline.runtime.clients import CameraClients, Image, VisionResult
from pipeline.runtime.redis_server import EmbeddedRedis
from tests.support.wait import wait_for

WINDOW = 4
FRAMES = 20  # short_mp4: 2 s at 10 fps
_ids = itertools.count()


class ScriptedModels:
    """Detector + scene ViT stand-in (``VisionClient``). The n-th frame sent gets a scene embedding
    ``[n]`` and its answer ``latency_s(n)`` seconds after it was sent, whatever was sent before.
    Records how many frames were in the models at once and, when given the runner, how far the
    decoder had read ahead of the frames sent when each answer was handed back. ``scene=False``:
    no scene ViT (``models.classifier: null``), every frame's scene is None."""

    def __init__(self, latency_s: Callable[[int], float], scene: bool = True) -> None:
        self._latency_s = latency_s
        self._scene = scene
        self._lock = threading.Lock()
        self._sent = 0
        self._collected: set[int] = set()
        self.max_in_flight = 0
        self.runner: CameraRunner | None = None
        self.read_ahead: list[int] = []  # frames decoded minus frames sent, at each answer

    def submit(self, image: Image) -> Answer:
        with self._lock:
            index, self._sent = self._sent, self._sent + 1
            self.max_in_flight = max(self.max_in_flight, self._sent - len(self._collected))
        return Answer(self, index, time.monotonic() + self._latency_s(index))

    def collect(self, index: int) -> VisionResult:
        if self.runner is not None:
            decoded = self.runner.status().frames_decoded
            with self._lock:
                self.read_ahead.append(decoded - self._sent)
        with self._lock:
            self._collected.add(index)
        box = np.array([[10.0 + 4 * index, 60.0, 60.0 + 4 * index, 200.0]], dtype=np.float32)
        detections = Detections(
            box, np.array([0.9], np.float32), np.array([0]), np.array([-1]), class_names=("person",)
        )
        scene = SceneResult("street", 0.9, np.array([float(index)], dtype=np.float32)) if self._scene else None
        return detections, scene


@dataclass(frozen=True)
class Answer:
    """One frame's answer (``VisionTicket``), ready at ``ready_at`` (monotonic seconds)."""

    models: ScriptedModels
    index: int
    ready_at: float

    def result(self, timeout_s: float) -> VisionResult:
        wait_s = self.ready_at - time.monotonic()
        if wait_s > timeout_s:  # the model's own computing time, as a real model would take it
            time.sleep(timeout_s)
            raise TimeoutError(f"frame {self.index} not answered within {timeout_s} s")
        time.sleep(max(0.0, wait_s))
        return self.models.collect(self.index)


class RecordingClipHead:
    """Clip head stand-in (``ClipHeadClient``): keeps the first feature of every window it labels
    (the scene embedding, ``[n]`` for the n-th frame sent)."""

    in_process = False

    def __init__(self) -> None:
        self.windows: list[list[int]] = []

    def classify(self, window: FloatArray, timeout_s: float) -> LabelScore:
        self.windows.append([int(v) for v in window[:, 0]])
        return LabelScore("walking", 0.5)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with EmbeddedRedis() as server:
        yield server.url


def run_file(
    video: Path,
    tmp_path: Path,
    redis_url: str,
    models: ScriptedModels,
    head: RecordingClipHead | None,
    max_in_flight: int,
    cam_id: str | None = None,
    run_id: str = "",
    epoch: str = "",
) -> tuple[list[int], int]:
    """Run a camera over the whole file (file mode); the frame ids in the order their results were
    applied (the ``vigil eval`` record) and the frames processed."""
    cam = CameraConfig(id=cam_id or f"runner{next(_ids)}", url=str(video), fps=30, max_in_flight=max_in_flight)
    cfg = parse_config({"cameras": [cam.model_dump(mode="json")], "events": {"spool": {"dir": str(tmp_path)}}})
    settings = CameraSettings(
        run_id=run_id,
        redis_url=redis_url,
        redis=cfg.redis,
        events=cfg.events,
        window=WINDOW,
        stride=1,
        class_names=("person",),
        head_kind="lstm",
        record_dir=tmp_path / "record",
    )
    runner = CameraRunner(cam, settings, CameraClients(models, None, head), epoch)
    models.runner = runner
    runner.start()
    try:
        wait_for(lambda: runner.status().state is CameraState.STOPPED, 30, "the file to be processed to its end")
    finally:
        final = runner.stop()
    rows = (tmp_path / "record" / f"{cam.id}.jsonl").read_text().splitlines()
    return [json.loads(row)["frame_id"] for row in rows], final.frames_processed


def test_results_are_applied_in_frame_order_when_answers_come_back_out_of_order(
    short_mp4: Path, tmp_path: Path, redis_url: str
) -> None:
    """With several frames in the models and later frames answered first (even frames take 40 ms,
    odd ones are answered at once), tracking, clip windows and the frame count still see the
    frames in capture order, every frame once."""
    models = ScriptedModels(lambda n: 0.04 if n % 2 == 0 else 0.0)
    head = RecordingClipHead()
    applied, processed = run_file(short_mp4, tmp_path, redis_url, models, head, max_in_flight=4)
    assert models.max_in_flight >= 2, "the models never had two frames at once: nothing could come back out of order"
    assert applied == list(range(FRAMES))
    assert processed == FRAMES
    assert head.windows == [list(range(end - WINDOW + 1, end + 1)) for end in range(WINDOW - 1, FRAMES)]


@pytest.mark.parametrize("max_in_flight", [1, 3])
def test_a_camera_never_has_more_than_max_in_flight_frames_in_the_models(
    short_mp4: Path, tmp_path: Path, redis_url: str, max_in_flight: int
) -> None:
    """Frames sent to the models and not yet answered never exceed ``max_in_flight``, while the
    decoder has frames waiting (every answer takes 30 ms); every frame is still processed."""
    models = ScriptedModels(lambda n: 0.03)
    applied, processed = run_file(short_mp4, tmp_path, redis_url, models, RecordingClipHead(), max_in_flight)
    assert 1 <= models.max_in_flight <= max_in_flight
    assert applied == list(range(FRAMES)) and processed == FRAMES


def test_file_mode_decoder_stays_at_most_two_frames_ahead(short_mp4: Path, tmp_path: Path, redis_url: str) -> None:
    """File mode, one frame in the models at a time, each taking 50 ms: while the loop waits, at
    most two decoded frames wait for it, plus the one the decoder has read and is handing on;
    the decoder reads no further (backpressure, no drops)."""
    models = ScriptedModels(lambda n: 0.05)
    applied, processed = run_file(short_mp4, tmp_path, redis_url, models, RecordingClipHead(), max_in_flight=1)
    assert max(models.read_ahead) <= 2 + 1, models.read_ahead
    assert max(models.read_ahead) >= 2, "the decoder never read ahead while the models worked"
    assert applied == list(range(FRAMES)) and processed == FRAMES


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("epoch", "applied_from", "reason"),
    [("run1/cam/1", 12, "host restarted"), ("run2/cam/1", 0, "pipeline restarted")],
)
def test_a_restarted_camera_ends_the_incidents_it_left_open_and_resumes_its_file(
    short_mp4: Path, tmp_path: Path, redis_url: str, epoch: str, applied_from: int, reason: str
) -> None:
    """A camera whose host died had accepted a start event and got to frame 11 of its file (epoch
    run1/cam/1). Started again under the same epoch (its host restarted) it goes on at frame 12 and
    ends the open incident as ``host restarted``; in a new pipeline run it reads the file from the
    start and ends it as ``pipeline restarted``. The end is delivered once, with the incident's id."""
    cam_id = f"runner{next(_ids)}"
    before = EventPublisher(redis_url, cam_id, tmp_path / f"{cam_id}.sqlite")
    start = Event(
        event_id=stable_id(cam_id, "start", 9),
        incident_id=stable_id(cam_id),
        phase="start",
        camera_id=cam_id,
        kind="object",
        label="person",
        confidence=0.9,
        peak_confidence=0.9,
        started_at="2026-12-07T10:00:00.000Z",
        duration_s=0.4,
        frame_id=9,
        captured_at=time.time(),
    )
    before.publish([start], state={POSITION_KEY: json.dumps({"epoch": "run1/cam/1", "frame_id": 11})})
    assert before.flush(10)
    before.close()

    models = ScriptedModels(lambda n: 0.0)
    applied, _ = run_file(
        short_mp4, tmp_path, redis_url, models, RecordingClipHead(), 2, cam_id, run_id=epoch.split("/")[0], epoch=epoch
    )
    assert applied == list(range(applied_from, FRAMES))
    client = redis.Redis.from_url(redis_url)
    docs = [json.loads(f[b"event"]) for _id, f in client.xrange(camera_stream(cam_id))]
    ends = [d for d in docs if d["incident_id"] == start.incident_id and d["phase"] == "end"]
    assert len(ends) == 1 and ends[0]["end_reason"] == reason and ends[0]["frame_id"] == 9


def test_without_a_vit_and_a_clip_head_frames_carry_no_scene_and_raise_only_object_events(
    short_mp4: Path, tmp_path: Path, redis_url: str
) -> None:
    """``models.classifier: null`` and ``models.temporal: null``: every frame is processed and tracked,
    its scene is None (the live view shows "-"), the person gets object events, and no clip label
    or clip event ever appears."""
    cam_id = f"runner{next(_ids)}"
    models = ScriptedModels(lambda n: 0.0, scene=False)
    applied, processed = run_file(short_mp4, tmp_path, redis_url, models, None, max_in_flight=2, cam_id=cam_id)
    assert applied == list(range(FRAMES)) and processed == FRAMES
    assert models.runner is not None
    status = models.runner.status()
    assert status.scene is None and status.clip is None
    rows = [json.loads(row) for row in (tmp_path / "record" / f"{cam_id}.jsonl").read_text().splitlines()]
    assert {row["scene"] for row in rows} == {None}
    client = redis.Redis.from_url(redis_url)
    docs = [json.loads(f[b"event"]) for _id, f in client.xrange(camera_stream(cam_id))]
    assert docs and {d["kind"] for d in docs} == {"object"} and {d["label"] for d in docs} == {"person"}


def test_a_clip_incident_starts_searched_by_the_windows_with_its_label() -> None:
    """The windows that raised it, summed; other labels' windows left out."""
    e = np.eye(4, dtype=np.float32)
    windows = [("fall", e[0]), ("normal", e[2]), ("fall", e[1])]
    total = window_sum(windows, "fall")
    assert total is not None and total.dtype == np.float32
    assert np.allclose(total, e[0] + e[1])
    assert window_sum(windows, "run") is None


class EmbeddingClipHead(RecordingClipHead):
    """A clip head in a text space: every window ``walking``, the k-th window's embedding e_(k mod 3)."""

    def classify(self, window: FloatArray, timeout_s: float) -> LabelScore:
        super().classify(window, timeout_s)
        return LabelScore("walking", 0.9, np.eye(8, dtype=np.float32)[(len(self.windows) - 1) % 3])


def test_a_clip_incident_is_searched_by_every_window_it_showed(short_mp4: Path, tmp_path: Path, redis_url: str) -> None:
    """Its start event's embedding, once the incident ended, is the mean direction of all its windows,
    not only of the first ones that raised it."""
    from pipeline.events.search import EmbeddingIndex
    from workers.clip_head import TEXT_SPACE

    head = EmbeddingClipHead()
    run_file(short_mp4, tmp_path, redis_url, ScriptedModels(lambda n: 0.0), head, 1, cam_id="searched")
    k = np.arange(len(head.windows)) % 3
    whole = np.bincount(k, minlength=8).astype(np.float32)
    client = redis.Redis.from_url(redis_url)
    try:
        [hit] = EmbeddingIndex(client).search(whole, TEXT_SPACE, camera="searched", kinds=["clip"], count=5)
        entries: Any = client.xrange(camera_stream("searched"))
    finally:
        client.close()
    starts = [json.loads(f[b"event"]) for _id, f in entries]
    starts = [d for d in starts if d["kind"] == "clip" and d["phase"] == "start"]
    assert [d["event_id"] for d in starts] == [hit.event_id] and len(head.windows) == FRAMES - WINDOW + 1
    assert hit.score > 0.999, hit.score  # the first two windows alone: 0.86
