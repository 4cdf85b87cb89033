"""``cameras[]``: the video sources."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from pipeline.core.config.analytics import AnalyticsConfig
from pipeline.core.config.base import ID_PATTERN, Strict
from pipeline.core.redact import redact

# Frames in flight per camera by mode: a file camera keeps the models busy with batches of its own
# frames; a live camera must not queue (its frames would age while they wait).
FILE_IN_FLIGHT = 16
LIVE_IN_FLIGHT = 2


class SourceKind(StrEnum):
    """What a camera URL points at; decides the default mode and the reconnect policy."""

    RTSP = "rtsp"
    HTTP = "http"
    FILE = "file"
    WEBCAM = "webcam"


class CameraMode(StrEnum):
    """``live``: always the newest frame, stale frames dropped and counted.
    ``file``: every frame, with backpressure instead of drops."""

    LIVE = "live"
    FILE = "file"


# `rtsp//host`, `rtsp:/host`, `http:host`, or `user:pass@host/...` with no scheme at all: never a file.
_MISTYPED_URL = re.compile(r"^(?:(?:rtsps?|https?|file)(?::/?(?!/)|//)|[^/\s:@]+:[^/\s]*@)", re.IGNORECASE)


def source_kind(url: str) -> SourceKind:
    """Classify a camera URL. Raises ValueError for a scheme Vigil cannot read."""
    if url.isdigit() or url.startswith("/dev/video"):
        return SourceKind.WEBCAM
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("rtsp", "rtsps"):
        return SourceKind.RTSP
    if scheme in ("http", "https"):
        return SourceKind.HTTP
    if scheme == "" and _MISTYPED_URL.match(url):
        # Not echoed: what looks like `user:password@host` must not reach a message.
        raise ValueError(
            "looks like a URL with a mistyped scheme or credentials without one (write rtsp://user:pass@host/..., "
            "http(s)://..., a file path or a webcam index)"
        )
    if scheme in ("", "file"):
        return SourceKind.FILE
    # Only a well-formed scheme is quoted: text before "://" may be a password (`user:pw@host/?u=http://`).
    shown = repr(scheme) if re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme) else "(not a URL scheme)"
    raise ValueError(f"unsupported URL scheme {shown} (use rtsp://, http(s)://, a file path or a webcam index)")


class MotionConfig(Strict):
    """Motion gating: frames where less than ``threshold`` of the picture changed skip detection."""

    enabled: bool = Field(default=False, description="Skip detection and classification on still frames")
    threshold: float = Field(default=0.005, ge=0, le=1, description="Fraction of pixels that must change")
    pixel_delta: float = Field(default=20, gt=0, le=255, description="Grey-level change that counts as changed")
    background_alpha: float = Field(default=0.1, gt=0, le=1, description="Background update rate per frame")


class CameraConfig(Strict):
    """One video source."""

    id: str = Field(pattern=ID_PATTERN, description="Camera id: letters, digits, '_' or '-' (used in stream names)")
    url: str = Field(min_length=1, description="rtsp://, http(s)://, a file path, or a webcam index")
    fps: float = Field(default=10.0, gt=0, le=120, description="Frames per second processed (cap)")
    mode: CameraMode | None = Field(default=None, description="live | file; default: file for files, else live")
    loop: bool = Field(default=False, description="Files only: restart at the end (plays a file as a camera)")
    rtsp_transport: Literal["tcp", "udp"] = Field(default="tcp", description="RTSP transport")
    open_timeout_s: float = Field(default=5.0, gt=0, le=60, description="Give up opening the source after this")
    decode_threads: int = Field(
        default=1,
        ge=0,
        le=64,
        description="FFmpeg decoding threads for this camera (0: FFmpeg's choice, one per core). One thread "
        "keeps up with a 1080p H.264 camera, with less CPU per frame than several and no frame-threading delay",
    )
    read_timeout_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="No frame for this long: the stream counts as lost (raise it for cameras under 2 fps)",
    )
    resize_wh: tuple[int, int] | None = Field(
        default=None, description="Resize frames to [width, height] right after decoding (boxes are in this size)"
    )
    motion: MotionConfig = Field(default_factory=MotionConfig)
    max_in_flight: int | None = Field(
        default=None,
        ge=1,
        le=32,
        description="Frames of this camera in the models at once (results are applied in frame order); more lets "
        "the models batch several frames of one camera. null: by mode, 16 for file cameras (read as fast as the "
        "pipeline goes) and 2 for live ones (which must not queue)",
    )
    reconnect_initial_s: float = Field(default=0.5, gt=0, le=60, description="First reconnect delay")
    reconnect_max_s: float = Field(
        default=2.0, gt=0, le=600, description="Cap of the exponential reconnect delay (jittered to 50-100 %)"
    )
    max_reconnects: int | None = Field(
        default=None,
        ge=0,
        description="Give up (state failed) after this many reconnect attempts in a row that got no frame; null: never",
    )
    analytics: AnalyticsConfig | None = Field(
        default=None, description="Zones, lines, dwell and speed rules on this camera's tracked objects (null: none)"
    )
    ray_resources: dict[str, float] = Field(
        default_factory=dict,
        description="Ray custom resources this camera's actor needs, e.g. {site_a: 0.01} to keep it on a node "
        "started with --resources '{\"site_a\": 1}'",
    )

    @field_validator("resize_wh")
    @classmethod
    def _sane_size(cls, size: tuple[int, int] | None) -> tuple[int, int] | None:
        if size is not None and not all(16 <= v <= 8192 for v in size):
            raise ValueError("width and height must be between 16 and 8192")
        return size

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        source_kind(url)
        return url

    @property
    def kind(self) -> SourceKind:
        return source_kind(self.url)

    @property
    def effective_mode(self) -> CameraMode:
        if self.mode is not None:
            return self.mode
        return CameraMode.FILE if self.kind is SourceKind.FILE and not self.loop else CameraMode.LIVE

    @property
    def in_flight(self) -> int:
        """``max_in_flight``, or its default for the camera's mode."""
        if self.max_in_flight is not None:
            return self.max_in_flight
        return FILE_IN_FLIGHT if self.effective_mode is CameraMode.FILE else LIVE_IN_FLIGHT

    @property
    def display_url(self) -> str:
        """The URL with credentials redacted: the only form that may be logged or labelled."""
        return redact(self.url)

    def missing_file(self) -> str | None:
        """Why a local file source cannot be read on this machine (not found, not a file), else None:
        checked before a run loads any model."""
        if self.kind is not SourceKind.FILE:
            return None
        path = Path(self.url.removeprefix("file://").removeprefix("file:"))
        if path.is_file():
            return None
        return f"{'not a file' if path.exists() else 'file not found'}: {redact(str(path))}"
