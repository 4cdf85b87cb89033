"""The canvas the synthetic world draws on: image and point types, the margin around the frame, and
``Shape``, what one object draws in a frame (with the box of exactly those pixels)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
Point = tuple[float, float]

MARGIN = 12  # canvas margin (px) around the frame: room for the shaky-camera crop


@dataclass
class Shape:
    """What one object draws this frame: filled polygons, thick lines and discs, in canvas pixels."""

    polys: list[tuple[npt.NDArray[np.int32], tuple[int, int, int]]] = field(default_factory=list)
    lines: list[tuple[Point, Point, int, tuple[int, int, int]]] = field(default_factory=list)
    discs: list[tuple[Point, int, tuple[int, int, int]]] = field(default_factory=list)

    def draw(self, img: npt.NDArray[Any], color: tuple[int, int, int] | None = None) -> None:
        """Draw on ``img``; ``color`` overrides every part's colour (for masks)."""
        for pts, c in self.polys:
            cv2.fillPoly(img, [pts], color or c)
        for a, b, t, c in self.lines:
            cv2.line(img, int_point(a), int_point(b), color or c, t)
        for centre, r, c in self.discs:
            cv2.circle(img, int_point(centre), r, color or c, -1)

    def bounds(self) -> tuple[float, float, float, float]:
        """Bounding box of every drawn pixel (line thickness and disc radius included)."""
        xs: list[float] = []
        ys: list[float] = []
        for pts, _ in self.polys:
            xs += pts[:, 0].tolist()
            ys += pts[:, 1].tolist()
        for a, b, t, _ in self.lines:
            half = t / 2
            for p in (int_point(a), int_point(b)):
                xs += [p[0] - half, p[0] + half]
                ys += [p[1] - half, p[1] + half]
        for centre, r, _ in self.discs:
            cx, cy = int_point(centre)
            xs += [cx - r, cx + r]
            ys += [cy - r, cy + r]
        return min(xs), min(ys), max(xs) + 1, max(ys) + 1


def int_point(p: Point) -> tuple[int, int]:
    return round(p[0]), round(p[1])


def rotate_points(points: list[Point], angle_deg: float, origin: Point) -> list[Point]:
    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    return [(origin[0] + x * ca - y * sa, origin[1] + x * sa + y * ca) for x, y in points]
