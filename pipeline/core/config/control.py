"""``control``: who may change a running pipeline through Redis, and what they may add.

Example::

    control:
      key_file: /etc/vigil/control.key
      allow_local_sources: [/srv/videos]
      max_cameras: 32
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from pipeline.core.config.base import Strict


class ControlConfig(Strict):
    """The runtime control channel (``vigil cameras add/remove/list``, docs/security.md)."""

    key_file: Path | None = Field(
        default=None,
        description="File holding the key that signs camera commands (created, mode 0600, when missing). "
        "VIGIL_CONTROL_KEY, when set, wins; null: $XDG_CONFIG_HOME/vigil/control.key "
        "(default ~/.config/vigil/control.key), where `vigil cameras` finds it on the same machine",
    )
    max_age_s: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="A signed command older than this (or this far in the future: clock skew) is refused; "
        "a request id seen within it is refused as a replay",
    )
    allow_local_sources: tuple[Path, ...] = Field(
        default=(),
        description="Folders whose files and devices cameras added at run time may read (a webcam index N "
        "is /dev/videoN, so [/dev] allows webcams). Network sources (rtsp, rtsps, http, https) are always "
        "allowed; the config's own cameras are not restricted",
    )
    max_cameras: int = Field(
        default=64, ge=1, le=4096, description="Cameras added at run time are refused once the pipeline runs this many"
    )
