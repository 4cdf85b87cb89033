"""What ``vigil bench`` measures: the run as the command line asks for it (``BenchSpec``), what each
mode's child process measures (``ModeSpec``, handed to it as JSON), the input video and the file
cameras made of it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2

from pipeline.core.config import CameraConfig, VigilConfig, parse_config

DEFAULT_VIDEO = Path(".vigil") / "bench" / "street.mp4"


@dataclass(frozen=True)
class BenchSpec:
    """The run as the command line asks for it: ``cameras`` copies of ``video``, ``seconds`` per mode."""

    cfg: VigilConfig
    video: Path
    cameras: int
    seconds: float
    no_ray: bool = False
    batch_sizes: tuple[int, ...] | None = None
    in_flight: int | None = None  # Vigil's cameras: frames in the models at once; None: the file-camera default
    rounds: int = 1  # limit, baseline, vigil again: the machine's speed drifts between modes


@dataclass(frozen=True)
class ModeSpec:
    """What a child measures: ``cameras`` copies of ``video`` for ``seconds`` with ``cfg``'s models."""

    cfg: VigilConfig
    video: Path
    cameras: int
    seconds: float
    batch_sizes: tuple[int, ...]
    workdir: Path
    in_flight: int | None = None  # Vigil's cameras: frames in the models at once; None: the file-camera default

    def to_json(self) -> str:
        return json.dumps(
            {
                "cfg": self.cfg.model_dump(mode="json"),
                "video": str(self.video),
                "cameras": self.cameras,
                "seconds": self.seconds,
                "batch_sizes": list(self.batch_sizes),
                "workdir": str(self.workdir),
                "in_flight": self.in_flight,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ModeSpec:
        raw = json.loads(text)
        return cls(
            parse_config(raw["cfg"], "<bench>"),
            Path(raw["video"]),
            int(raw["cameras"]),
            float(raw["seconds"]),
            tuple(int(b) for b in raw["batch_sizes"]),
            Path(raw["workdir"]),
            None if raw["in_flight"] is None else int(raw["in_flight"]),
        )


def video_fps(path: Path) -> float:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    cap.release()
    return fps if 0 < fps <= 120 else 10.0


def bench_cameras(spec: ModeSpec) -> tuple[CameraConfig, ...]:
    """N file cameras on the same video: every frame, backpressure, looping so none runs dry."""
    fps = video_fps(spec.video)
    return tuple(
        CameraConfig(
            id=f"cam{i}",
            url=str(spec.video),
            mode="file",  # type: ignore[arg-type]
            loop=True,
            fps=fps,
            max_in_flight=spec.in_flight,
        )
        for i in range(spec.cameras)
    )


def default_video(seconds: float = 20.0, fps: int = 10) -> Path:
    """The generated street scene every run reuses (rendered once)."""
    from pipeline.ml.synth.dataset import ensure_video

    return ensure_video(DEFAULT_VIDEO, seed=1, scene="street", seconds=seconds, fps=fps)
