"""Motion gating: skip detection on frames where nothing moved (like Frigate's motion detector).

The frame is shrunk to a small grey image, blurred, and compared with a running-average
background; the fraction of pixels that changed by more than ``pixel_delta`` is the motion score.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.core.config import MotionConfig

_WIDTH = 160


class MotionGate:
    """``has_motion(frame)`` is True when enough of the frame changed since the background."""

    def __init__(self, cfg: MotionConfig) -> None:
        self.cfg = cfg
        self._background: npt.NDArray[np.float32] | None = None
        self.last_score = 0.0

    def has_motion(self, image_bgr: npt.NDArray[np.uint8]) -> bool:
        h, w = image_bgr.shape[:2]
        small = cv2.resize(image_bgr, (_WIDTH, max(1, round(h * _WIDTH / w))), interpolation=cv2.INTER_AREA)
        grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0).astype(np.float32)
        if self._background is None:
            self._background = grey
            return True  # the first frame is always processed
        changed = np.abs(grey - self._background) > self.cfg.pixel_delta
        self.last_score = float(changed.mean())
        cv2.accumulateWeighted(grey, self._background, self.cfg.background_alpha)
        return self.last_score >= self.cfg.threshold
