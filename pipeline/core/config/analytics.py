"""``cameras[].analytics``: zones, lines, dwell and speed rules on a camera's tracked objects.

Coordinates are ``normalized`` (0..1 of the frame's width and height, the default: the same
geometry fits any resolution) or ``pixels`` of the frame as decoded (after ``resize_wh``). Pixel
geometry outside the frame is refused when the camera's first frame arrives (its size is known
only then). Geometry is checked with shapely here, once; the per-frame work is numpy
(``pipeline.analytics``).
"""

from __future__ import annotations

from enum import StrEnum
from itertools import pairwise
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from pipeline.core.config.base import ID_PATTERN, Strict

Point = tuple[float, float]
SPEED_UNITS = ("px/s", "m/s", "km/h")


class Coordinates(StrEnum):
    NORMALIZED = "normalized"
    PIXELS = "pixels"


class Anchor(StrEnum):
    """The point of an object's box that is tested against zones and lines."""

    BOTTOM_CENTER = "bottom_center"  # where a standing person or a vehicle touches the ground
    CENTER = "center"
    TOP_CENTER = "top_center"


Classes = Annotated[
    list[str] | None,
    Field(default=None, description="Only objects of these detector classes (null: every class)"),
]


class ZoneConfig(Strict):
    """A polygon on the picture: objects in it, their entries, exits and time inside."""

    name: str = Field(pattern=ID_PATTERN, description="Zone name (in events, metrics and `vigil zones`)")
    polygon: list[Point] = Field(min_length=3, max_length=64, description="Corners [[x, y], ...], in order")
    classes: Classes = None
    min_frames: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Frames in a row the anchor must be inside before the object counts as in (and outside "
        "before it counts as out): a box that flickers on the edge does not enter and leave",
    )
    dwell_s: float | None = Field(
        default=None, gt=0, description="A dwell event once an object has been inside this long (null: none)"
    )

    @field_validator("polygon")
    @classmethod
    def _simple_polygon(cls, polygon: list[Point]) -> list[Point]:
        from shapely.geometry import Polygon
        from shapely.validation import explain_validity

        shape = Polygon(polygon)
        if shape.convex_hull.area <= 0:
            raise ValueError("the polygon has no area (its corners are on one line)")
        if not shape.is_valid:  # e.g. "self-intersection[0.5 0.5]": where its edges cross
            raise ValueError(f"the polygon is not simple: {explain_validity(shape).lower()}")
        return polygon


class LineConfig(Strict):
    """A line (or polyline) on the picture: objects crossing it, with their direction."""

    name: str = Field(pattern=ID_PATTERN, description="Line name (in events, metrics and `vigil zones`)")
    points: list[Point] = Field(min_length=2, max_length=32, description="[[x, y], [x, y], ...] from start to end")
    directions: tuple[str, str] = Field(
        default=("in", "out"),
        description="Names of the two directions: the first for a crossing from the left of the line to its "
        "right, as seen looking from its first point towards its last on the picture; the second for the other way",
    )
    classes: Classes = None

    @field_validator("points")
    @classmethod
    def _real_line(cls, points: list[Point]) -> list[Point]:
        from shapely.geometry import LineString

        shape = LineString(points)
        if shape.length <= 0:
            raise ValueError("the line has zero length")
        if any(a == b for a, b in pairwise(points)):
            raise ValueError("two consecutive points are the same")
        if not shape.is_simple:
            raise ValueError("the line crosses itself")
        return points

    @field_validator("directions")
    @classmethod
    def _two_names(cls, directions: tuple[str, str]) -> tuple[str, str]:
        import re

        if directions[0] == directions[1]:
            raise ValueError("the two directions need different names")
        for name in directions:
            if not re.fullmatch(ID_PATTERN, name):
                raise ValueError(f"{name!r}: letters, digits, '_' or '-'")
        return directions


class CalibrationConfig(Strict):
    """Four points on the ground in the picture and where they are in metres (any flat frame of
    reference: a corner of a parking bay at [0, 0], the bay's far side at [2.5, 5], ...). Pixel
    speeds become ground speeds through the homography they define."""

    image: list[Point] = Field(min_length=4, max_length=4, description="Four points in the picture")
    ground_m: list[Point] = Field(min_length=4, max_length=4, description="The same four points on the ground (m)")

    @model_validator(mode="after")
    def _not_degenerate(self) -> CalibrationConfig:
        from shapely.geometry import MultiPoint

        for key, pts in (("image", self.image), ("ground_m", self.ground_m)):
            if MultiPoint(pts).convex_hull.area <= 0:
                raise ValueError(f"{key}: the four points are on one line")
        return self


class SpeedConfig(Strict):
    """A speed event when a tracked object goes faster than ``limit``."""

    limit: float = Field(gt=0, description="The limit, in `unit`")
    unit: str = Field(default="px/s", description="px/s, or m/s / km/h (these need a calibration)")
    classes: Classes = None
    min_duration_s: float = Field(
        default=0.5, ge=0, le=60, description="Above the limit this long before the event (one per object)"
    )

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, unit: str) -> str:
        if unit not in SPEED_UNITS:
            raise ValueError(f"{unit!r}: one of {', '.join(SPEED_UNITS)}")
        return unit


class AnalyticsConfig(Strict):
    """Zones, lines, dwell and speed on this camera's tracked objects."""

    coordinates: Coordinates = Field(
        default=Coordinates.NORMALIZED, description="normalized (0..1 of the frame) | pixels (of the decoded frame)"
    )
    anchor: Anchor = Field(
        default=Anchor.BOTTOM_CENTER, description="The point of a box that is in a zone or crosses a line"
    )
    zones: list[ZoneConfig] = Field(default_factory=list, max_length=64)
    lines: list[LineConfig] = Field(default_factory=list, max_length=64)
    line_margin: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="How far past a line the anchor must be, as a fraction of the box's height, before the object "
        "counts as on that side: a box that jitters on the line is not counted again and again",
    )
    reid_s: float = Field(
        default=2.5,
        ge=0,
        le=30,
        description="A track lost this long or less and a new one that appears where it would be now are the same "
        "object (counted once): an occlusion or a tracker id switch does not count a second crossing or entry",
    )
    speed_window_s: float = Field(default=1.0, gt=0, le=10, description="Speeds are measured over this long")
    speed: SpeedConfig | None = Field(default=None, description="A speed limit (null: none)")
    calibration: CalibrationConfig | None = Field(
        default=None, description="Ground-plane calibration: speeds in m/s (null: pixels per second)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> AnalyticsConfig:
        for key, items in (("zones", self.zones), ("lines", self.lines)):
            seen: set[str] = set()
            for item in items:
                if item.name in seen:
                    raise ValueError(f"{key}: the name {item.name!r} is used twice")
                seen.add(item.name)
        if self.coordinates is Coordinates.NORMALIZED:
            for what, pts in self._named_points():
                if any(not (0 <= v <= 1) for p in pts for v in p):
                    raise ValueError(f"{what}: normalized coordinates must be between 0 and 1")
        if self.speed is not None and self.speed.unit != "px/s" and self.calibration is None:
            raise ValueError(f"speed.unit {self.speed.unit}: needs a calibration (or use px/s)")
        return self

    def _named_points(self) -> list[tuple[str, list[Point]]]:
        named = [(f"zones.{z.name}.polygon", z.polygon) for z in self.zones]
        named += [(f"lines.{ln.name}.points", ln.points) for ln in self.lines]
        if self.calibration is not None:
            named.append(("calibration.image", self.calibration.image))
        return named

    def outside_frame(self, width: int, height: int) -> str | None:
        """Pixel geometry: the first point outside a ``width`` x ``height`` frame, as one line (None: all in)."""
        if self.coordinates is Coordinates.NORMALIZED:
            return None
        for what, pts in self._named_points():
            for x, y in pts:
                if not (0 <= x <= width and 0 <= y <= height):
                    return f"analytics.{what}: point [{x:g}, {y:g}] is outside the {width}x{height} frame"
        return None

    @property
    def empty(self) -> bool:
        return not self.zones and not self.lines and self.speed is None
