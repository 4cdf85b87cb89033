"""What a camera added at run time may read: any network source; local files and devices only
under the folders ``control.allow_local_sources`` names.

The answer depends on the path's text (symbolic links resolved where they exist, ``..`` refused),
so a refusal never tells whether a path outside the allowed folders exists.

>>> source_allowed("rtsp://10.0.0.7/stream", ())
True
>>> source_allowed("file:///etc/passwd", (Path("/srv/videos"),))
False
>>> source_allowed("/srv/videos/lobby.mp4", (Path("/srv/videos"),))
True
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pipeline.core.config import SourceKind, source_kind


def allowed_folders(folders: Sequence[Path]) -> tuple[Path, ...]:
    """The configured folders, absolute and with symbolic links resolved (relative to the working directory)."""
    return tuple(Path(os.path.realpath(folder)) for folder in folders)


def local_paths(url: str) -> list[str]:
    """Every path a local source's URL may be opened as: the decoder drops ``file://``, FFmpeg's
    file protocol drops ``file:``; a webcam index N is /dev/videoN."""
    kind = source_kind(url)
    if kind is SourceKind.WEBCAM:
        return [f"/dev/video{url}" if url.isdigit() else url]
    paths = [url.removeprefix("file://")]
    if url[:5].lower() == "file:":
        paths.append(url[5:])
    return paths


def source_allowed(url: str, folders: Sequence[Path]) -> bool:
    """Whether a camera added at run time may read ``url`` (``folders`` as :func:`allowed_folders` makes them)."""
    try:
        kind = source_kind(url)
    except ValueError:
        return False
    if kind in (SourceKind.RTSP, SourceKind.HTTP):
        return True
    for path in local_paths(url):
        # ".." is refused outright: the OS resolves it against folders that may not exist, and whether
        # the open then fails would tell a path outside the allowed folders exists.
        if not os.path.isabs(path) or "\x00" in path or ".." in Path(path).parts:
            return False
        real = Path(os.path.realpath(path))
        if not any(real == folder or real.is_relative_to(folder) for folder in folders):
            return False
    return True
