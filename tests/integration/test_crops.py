"""The crop classifier as a second stage in the running pipeline: a person who falls in front of a
camera gets an object update saying "down" while on the ground, from the shipped crop model, with
real Ray, Redis, detector and tracker."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
from redis import Redis

from pipeline.core.config import VigilConfig, parse_config
from pipeline.core.messages import CameraState, Event
from pipeline.events.publisher import camera_stream
from pipeline.ml.synth.dataset import write_mp4
from pipeline.ml.synth.render import render_video
from pipeline.runtime.redis_server import EmbeddedRedis
from tests.support.metrics import scrape, total
from tests.support.running import running_pipeline
from tests.support.wait import wait_for

PACK = Path(__file__).resolve().parents[2] / "models" / "demo"


def fall_config(
    video: Path, tmp_path: Path, placement: str, update_interval_s: float = 60, camera: str = "hall"
) -> VigilConfig:
    return parse_config(
        {
            "cameras": [{"id": camera, "url": str(video), "fps": 10}],
            "metrics": {"port": 0},
            "models": {
                "detector": {"weights": str(PACK / "detector.pt"), "imgsz": 320},
                "classifier": {"weights": str(PACK / "classifier.pt")},
                "temporal": {"weights": str(PACK / "temporal-lstm.pt")},
                "crops": {"weights": str(PACK / "crops.pt")},
            },
            "events": {
                "object_min_duration_s": 0.3,
                "update_interval_s": update_interval_s,
                "spool": {"dir": str(tmp_path)},
            },
            "ray": {"placement": placement},
        }
    )


@pytest.mark.parametrize("placement", ["workers", "hosts"])
def test_a_person_who_falls_gets_a_down_update(ray_session: None, tmp_path: Path, placement: str) -> None:
    """placement workers: the crops go to a crop-classifier actor; hosts: the camera host runs it."""
    frames, gt = render_video(31337, "corridor", night=False, seconds=12, fps=10, order=["fall"])
    video = write_mp4(tmp_path / "fall.mp4", frames, fps=10)
    [fall] = gt["activities"]
    with running_pipeline(fall_config(video, tmp_path, placement)) as run:  # a redis-server of its own
        pipeline = run.pipeline
        assert pipeline.plan is not None and len(pipeline.plan.crops) == (1 if placement == "workers" else 0)
        wait_for(lambda: [s.state for s in pipeline.statuses()] == [CameraState.STOPPED], 120, "the file to end")
        client = Redis.from_url(run.url)
        events = [Event.model_validate_json(f[b"event"]) for _id, f in client.xrange(camera_stream("hall"))]
        client.close()
    people = [e for e in events if e.kind == "object" and e.label == "person"]
    # A person who walks in at the frame's edge may start before their box is big enough to
    # classify (models.crops.min_box_px); from then on every event carries a label of the crop
    # model's own (not None: the second stage ran on every frame; not a scene label).
    assert people and all(e.crop_label in ("upright", "down") for e in people if e.phase != "start"), people
    assert any(e.phase == "start" and e.crop_label == "upright" for e in people)
    down = [e for e in people if e.crop_label == "down" and e.phase == "update"]
    assert down, f"no 'down' update for the fall in frames {fall['start_frame']}-{fall['end_frame']}"
    # Said while the person is on the ground: after the fall starts, before they are up again.
    assert all(fall["start_frame"] <= e.frame_id <= fall["end_frame"] + 6 for e in down), [e.frame_id for e in down]


def test_frames_go_on_without_crop_labels_when_the_crop_worker_is_lost(
    ray_session: None, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    """The crop classifier is a second stage: when its worker is gone for good (killed, never
    restarted) the camera still processes every frame and publishes its object events, no crop
    label changes any more, and the frames without one are counted in vigil_crop_failures_total."""
    frames, _gt = render_video(31337, "corridor", night=False, seconds=12, fps=10, order=["fall"])
    video = write_mp4(tmp_path / "fall.mp4", frames, fps=10)
    cfg = fall_config(video, tmp_path, "workers", update_interval_s=1, camera="hall-2")
    with running_pipeline(cfg, redis_server) as run:
        pipeline = run.pipeline

        def crop_failures() -> float:
            return total(scrape(run.metrics_port), "vigil_crop_failures_total", camera="hall-2")

        assert pipeline.plan is not None
        wait_for(lambda: pipeline.statuses()[0].frames_processed >= 1, 120, "the first frame")
        # This pipeline's own crop worker: no other test shares it.
        ray.kill(pipeline.plan.crops[0], no_restart=True)
        wait_for(lambda: crop_failures() > 0, 60, "a crop call to fail")
        failed_by = pipeline.statuses()[0].frames_processed  # every crop call after this fails
        wait_for(lambda: pipeline.statuses()[0].state is CameraState.STOPPED, 120, "the file to end")
        [status] = pipeline.statuses()
    assert status.frames_processed == status.frames_decoded == len(frames), status
    assert status.frames_dropped == 0, status
    client = Redis.from_url(redis_server.url)
    events = [Event.model_validate_json(f[b"event"]) for _id, f in client.xrange(camera_stream("hall-2"))]
    client.close()
    objects = [e for e in events if e.kind == "object"]
    assert any(e.frame_id > failed_by for e in objects), "no object events after the crop worker was lost"
    # No crop label changes after the loss: each incident keeps the one it had (labels of frames
    # before the loss may first show on a later event: an incident starts after a few frames).
    labels: dict[str, str | None] = {}
    for e in objects:
        if e.frame_id <= failed_by:
            labels[e.incident_id] = e.crop_label
        else:
            assert e.crop_label == labels.setdefault(e.incident_id, e.crop_label), (e.frame_id, e.crop_label, labels)


def _run_to_end(cfg: VigilConfig, redis: EmbeddedRedis) -> list[Event]:
    """Run a one-camera config until its file ends; the camera's events."""
    with running_pipeline(cfg, redis) as run:
        wait_for(lambda: [s.state for s in run.pipeline.statuses()] == [CameraState.STOPPED], 120, "the file to end")
    client = Redis.from_url(redis.url)
    events = [Event.model_validate_json(f[b"event"]) for _id, f in client.xrange(camera_stream(cfg.cameras[0].id))]
    client.close()
    return events


def test_a_file_gives_the_same_events_however_fast_it_is_read(
    ray_session: None, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    """A file's event rules run on the video's own clock: one frame in flight at a time or sixteen
    (the file-camera default, several times the frames per wall second), the same incidents start,
    update and end at the same frames with the same labels."""
    frames, _gt = render_video(31337, "corridor", night=False, seconds=12, fps=10, order=["fall"])
    video = write_mp4(tmp_path / "fall.mp4", frames, fps=10)
    runs = {}
    for depth in (1, 16):
        camera = f"depth-{depth}"
        cfg = fall_config(video, tmp_path / camera, "hosts", update_interval_s=1, camera=camera)
        cfg = cfg.model_copy(update={"cameras": (cfg.cameras[0].model_copy(update={"max_in_flight": depth}),)})
        events = _run_to_end(cfg, redis_server)
        runs[depth] = [(e.kind, e.label, e.phase, e.track_id, e.frame_id, e.crop_label, e.duration_s) for e in events]
    assert any(phase == "update" for _k, _l, phase, *_ in runs[1]), runs[1]  # updates every second of video
    assert runs[16] == runs[1]
