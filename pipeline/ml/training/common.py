"""What every ``vigil train`` command shares: the progress callback, seeding, reading video frames."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import torch

Progress = Callable[[str, float, float], None]  # (task description, done, total)


def no_progress(_task: str, _done: float, _total: float) -> None:
    return None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def read_frames(path: Path, every: int = 1) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    """(index, BGR frame) of every ``every``-th frame of a video file."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"{path}: cannot open video")
    i = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            if i % every == 0:
                yield i, np.asarray(frame, dtype=np.uint8)
            i += 1
    finally:
        cap.release()
