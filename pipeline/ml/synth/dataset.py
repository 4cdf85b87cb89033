"""Synthetic videos on disk: H.264 MP4 + ground-truth JSON per video, ``index.json`` per set
(``vigil synth``), loading a set back, and single test videos rendered once and reused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.ml.synth.canvas import Image
from pipeline.ml.synth.render import GT_FORMAT, render_video
from pipeline.ml.synth.scenes import SCENES


def write_mp4(path: Path, frames: list[Image], fps: int, crf: int = 23) -> Path:
    """Encode BGR frames as H.264 (yuv420p) MP4 with PyAV."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    # faststart: the index goes first, so the file also streams over HTTP without range requests.
    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": str(crf), "g": str(fps)}
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def gt_bytes(gt: dict[str, Any]) -> bytes:
    """The canonical serialisation: same ground truth, same bytes."""
    return json.dumps(gt, sort_keys=True, separators=(",", ":")).encode()


def video_plan(seed: int, index: int) -> tuple[int, str, bool]:
    """(video seed, scene, night) of video ``index`` of a set: scenes and day/night alternate."""
    video_seed = int(np.random.default_rng([seed, index]).integers(0, 2**31 - 1))
    return video_seed, SCENES[index % len(SCENES)], (index // len(SCENES)) % 2 == 1


def write_video(
    out_dir: Path,
    name: str,
    seed: int,
    scene: str,
    night: bool,
    seconds: float,
    fps: int,
    size_wh: tuple[int, int] = (640, 360),
    on_frame: Callable[[int], None] | None = None,
    scenario: str = "default",
) -> dict[str, Any]:
    """Render, encode and write ``name.mp4`` + ``name.json``; returns the ground truth."""
    frames, gt = render_video(seed, scene, night, seconds, fps, size_wh, on_frame=on_frame, scenario=scenario)
    crf = int(np.random.default_rng([seed, 2]).integers(22, 31))
    write_mp4(out_dir / f"{name}.mp4", frames, fps, crf=crf)
    gt = {"video": f"{name}.mp4", **gt}
    (out_dir / f"{name}.json").write_bytes(gt_bytes(gt))
    return gt


def synth_set(
    out_dir: Path,
    videos: int,
    seed: int,
    seconds: float = 30.0,
    fps: int = 10,
    size_wh: tuple[int, int] = (640, 360),
    on_video: Callable[[int, dict[str, Any]], None] | None = None,
    on_frame: Callable[[int], None] | None = None,
    scenario: str = "default",
) -> list[dict[str, Any]]:
    """Write ``videos`` labelled videos and ``index.json`` into ``out_dir`` (``scenario``: see
    ``activities.make_script``; the same seed gives the same scenes and video seeds in each)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    index = []
    for i in range(videos):
        vseed, scene, night = video_plan(seed, i)
        gt = write_video(out_dir, f"v{i:04d}", vseed, scene, night, seconds, fps, size_wh, on_frame, scenario)
        index.append(
            {
                "video": gt["video"],
                "ground_truth": f"v{i:04d}.json",
                "scene": scene,
                "night": night,
                "seed": vseed,
                "activities": [a["label"] for a in gt["activities"]],
            }
        )
        if on_video is not None:
            on_video(i, gt)
    head: dict[str, Any] = {"format": GT_FORMAT, "seed": seed, "fps": fps, "seconds": seconds}
    if scenario != "default":
        head["scenario"] = scenario
    (out_dir / "index.json").write_text(json.dumps({**head, "videos": index}, indent=1))
    return index


def load_set(data_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(video path, ground truth) of every video in a ``vigil synth`` folder."""
    index_path = data_dir / "index.json"
    if not index_path.is_file():
        raise FileNotFoundError(f"{data_dir}: no index.json (make one with `vigil synth --out {data_dir}`)")
    index = json.loads(index_path.read_text())
    return [(data_dir / v["video"], json.loads((data_dir / v["ground_truth"]).read_text())) for v in index["videos"]]


def ensure_video(path: Path, seed: int, scene: str, seconds: float = 20.0, fps: int = 10, night: bool = False) -> Path:
    """Render the video once (ground truth next to it as ``.json``); later calls reuse the file."""
    if not path.is_file() or path.stat().st_size == 0:
        frames, gt = render_video(seed, scene, night, seconds, fps)
        tmp = path.with_suffix(".tmp.mp4")
        write_mp4(tmp, frames, fps)
        tmp.replace(path)
        path.with_suffix(".json").write_bytes(gt_bytes({"video": path.name, **gt}))
    return path
