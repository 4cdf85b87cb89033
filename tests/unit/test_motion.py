import numpy as np

from pipeline.core.config import MotionConfig
from workers.motion import MotionGate


def scene(seed: int, box_x: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((360, 640, 3), 90, np.uint8)
    if box_x is not None:
        img[100:220, box_x : box_x + 60] = (30, 200, 40)
    noise = rng.normal(0, 4, img.shape)  # sensor noise alone must not count as motion
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def test_still_noisy_frames_have_no_motion() -> None:
    gate = MotionGate(MotionConfig(enabled=True))
    assert gate.has_motion(scene(0, 100)) is True  # the first frame always goes through
    assert [gate.has_motion(scene(i, 100)) for i in range(1, 20)] == [False] * 19


def test_a_moving_object_is_motion() -> None:
    gate = MotionGate(MotionConfig(enabled=True))
    gate.has_motion(scene(0, 100))
    moving = [gate.has_motion(scene(i, 100 + 25 * i)) for i in range(1, 10)]
    assert all(moving)
    assert gate.last_score > MotionConfig().threshold
