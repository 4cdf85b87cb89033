"""One look at a camera's source, opened the way a camera opens it: what it sends, how soon.

``vigil cameras probe URL`` prints a :class:`ProbeResult`. The source is opened by the decoder backend
the cameras use (:meth:`workers.decoder.OpenCVSource.open`: the camera's open and read timeouts, its RTSP
transport, the same reasons for failing), one frame is decoded, and the source is closed again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pipeline.core.config import CameraConfig
from workers.decoder import OpenCVSource, SourceError, SourceOpener

MAX_FPS = 240.0  # above this (or at 0) a source's frame rate is not a real one: "unknown"


@dataclass(frozen=True)
class ProbeResult:
    """What one decoded frame of a source tells. ``url`` is redacted; ``fps`` is 0 where the source
    does not say; ``codec`` is its four-character code, "" where unknown."""

    url: str
    codec: str
    resolution_wh: tuple[int, int]
    fps: float
    open_seconds: float
    first_frame_seconds: float  # from the start of the open to the first decoded frame

    def describe(self) -> str:
        """One line: ``rtsp://***@host/s: h264, 1920x1080, 25 fps, first frame decoded in 412 ms``."""
        fps = f"{round(self.fps, 2):g} fps" if self.fps > 0 else "fps unknown"
        width, height = self.resolution_wh
        return (
            f"{self.url}: {self.codec or 'codec unknown'}, {width}x{height}, {fps}, "
            f"first frame decoded in {self.first_frame_seconds * 1000:.0f} ms "
            f"(opened in {self.open_seconds * 1000:.0f} ms)"
        )


def probe(cfg: CameraConfig, opener: SourceOpener = OpenCVSource.open) -> ProbeResult:
    """Open ``cfg``'s source, decode one frame, close it.

    Raises :class:`SourceError` (its reason redacted) when the source does not open or sends no
    frame within ``cfg.read_timeout_s``.
    """
    started = time.perf_counter()
    source = opener(cfg)
    try:
        opened = time.perf_counter()
        image = source.read()
        decoded = time.perf_counter()
        if image is None:
            raise SourceError(
                f"{cfg.display_url}: opened, but no frame decoded within {cfg.read_timeout_s:g} s", fatal=False
            )
        fps = source.fps if 0 < source.fps <= MAX_FPS else 0.0
        codec = source.codec if isinstance(source, OpenCVSource) else ""
    finally:
        source.close()
    height, width = image.shape[:2]
    return ProbeResult(cfg.display_url, codec, (width, height), fps, opened - started, decoded - started)
