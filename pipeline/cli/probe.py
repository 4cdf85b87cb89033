"""``vigil cameras probe URL``: open a camera's URL once, as a camera would, and say what it sends.

``pipeline.cli.app`` registers it on the ``cameras`` group (``register``). Exit codes: 0 a frame was
decoded, 1 the source is unreachable or unreadable, 2 the URL is malformed. Every line is redacted.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

import typer

from pipeline.cli.common import console, fail
from pipeline.core.config import ConfigError, SourceKind, validate_camera


def register(cameras_app: typer.Typer) -> None:
    cameras_app.command("probe")(cameras_probe)


def cameras_probe(
    url: Annotated[str, typer.Argument(help="rtsp://, http(s)://, a file path or a webcam index")],
    timeout: Annotated[
        float, typer.Option(min=0.1, max=60, help="Seconds to wait for the source to open, then for its first frame")
    ] = 5.0,
    transport: Annotated[str, typer.Option("--rtsp-transport", help="RTSP transport: tcp or udp")] = "tcp",
) -> None:
    """Open URL the way a camera does, decode one frame, print its codec, size, fps and timing."""
    data: dict[str, object] = {
        "id": "probe",
        "url": url,
        "open_timeout_s": timeout,
        "read_timeout_s": timeout,
        "rtsp_transport": transport,
    }
    try:
        cam = validate_camera(data, source="probe")
    except ConfigError as exc:
        fail("; ".join(exc.problems), 2)
    if (problem := _malformed_network_url(url, cam.kind)) is not None:
        fail(f"malformed URL {cam.display_url}: {problem}", 2)

    from workers.decoder import SourceError
    from workers.probe import probe

    try:
        found = probe(cam)
    except SourceError as exc:
        fail(exc.reason, 1)
    console.print(found.describe(), highlight=False, soft_wrap=True)


def _malformed_network_url(url: str, kind: SourceKind) -> str | None:
    """Why an rtsp:// or http(s):// URL cannot name a camera (no host, a port that is not one), else None.
    Never quotes a part of the URL: it may be a password."""
    if kind not in (SourceKind.RTSP, SourceKind.HTTP):
        return None
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        return "its port is not a number from 0 to 65535"
    if not parts.hostname:
        return "it names no host"
    return None
