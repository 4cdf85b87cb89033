"""Crops for the second-stage classifier: square around the box (shape kept), context added,
grey where the square leaves the frame."""

from __future__ import annotations

import numpy as np

from workers.classifier import crop_boxes


def test_crops_are_square_padded_and_grey_outside_the_frame() -> None:
    image = np.arange(100 * 200 * 3, dtype=np.uint32).reshape(100, 200, 3).astype(np.uint8)
    boxes = np.array([[50, 20, 70, 60], [-10, -5, 10, 30], [180, 90, 220, 100]], np.float32)
    tall, corner, flat = crop_boxes(image, boxes, padding=0.25)
    assert tall.shape == (60, 60, 3)  # the 40 px side + 25 % on each side, centred on the box
    np.testing.assert_array_equal(tall, image[10:70, 30:90])
    assert corner.shape == (52, 52, 3)
    np.testing.assert_array_equal(corner[:14, :], 114)  # above the frame
    np.testing.assert_array_equal(corner[14:, 26:], image[0:38, 0:26])
    np.testing.assert_array_equal(corner[:, :26], 114)  # left of the frame
    assert flat.shape == (60, 60, 3)  # a wide box stays wide inside its square
    np.testing.assert_array_equal(flat[:, 30:], 114)  # right of the frame
    np.testing.assert_array_equal(flat[35:, :], 114)  # below the frame
