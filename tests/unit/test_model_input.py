"""What a camera sends to the model workers: its frame scaled down to the models' size, with boxes
scaled back to the frame's pixels."""

from __future__ import annotations

import numpy as np

from pipeline.core.messages import Detections
from workers.decoder import model_input


def test_frames_are_scaled_to_the_models_longest_side_and_small_ones_pass() -> None:
    hd = np.zeros((1080, 1920, 3), np.uint8)
    small, scale = model_input(hd, 320)
    assert small.shape == (180, 320, 3) and scale == 320 / 1920
    tiny = np.zeros((100, 200, 3), np.uint8)
    assert model_input(tiny, 320) == (tiny, 1.0)
    assert model_input(hd, None)[0] is hd


def test_boxes_found_on_the_small_frame_map_back_to_the_frame() -> None:
    image = np.zeros((360, 640, 3), np.uint8)
    image[100:300, 200:260] = 255  # a bright block, found at half size on the small frame
    small, scale = model_input(image, 320)
    assert small[50:150, 100:130].min() == 255
    det = Detections(
        xyxy=np.array([[100, 50, 130, 150]], np.float32),
        confidence=np.array([0.9], np.float32),
        class_id=np.array([0]),
        tracker_id=np.array([-1]),
        class_names=("person",),
    )
    back = det.scaled(1 / scale)
    np.testing.assert_allclose(back.xyxy, [[200, 100, 260, 300]])
    assert back.confidence is det.confidence and det.scaled(1.0) is det
