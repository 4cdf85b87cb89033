"""``vigil events search TEXT``: the retained events closest in meaning to TEXT.

``pipeline.cli.app`` registers it on the ``events`` group (``register``). The text is embedded with
the text encoder of the space the events' embeddings are in (``pipeline.events.text_encoders``) and
compared with them by exact cosine (``pipeline.events.search``). Exit codes: 0 searched (also when
nothing matched the filters), 1 nothing to search (no embeddings in Redis) or Redis unreachable or a
model that does not load, 2 malformed input (a bad time, several spaces stored and none chosen, a
config whose CLIP model is not the space's). Every line is redacted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipeline.cli.common import DEMO_CONFIG, console, err_console, fail, load_checked
from pipeline.cli.instances import PipelineOption, RedisUrlOption, pipeline_url

if TYPE_CHECKING:
    from pipeline.events.client import EventClient, Match
    from pipeline.events.text_encoders import TextEncoder


def register(events_app: typer.Typer) -> None:
    events_app.command("search")(events_search)


def events_search(
    text: Annotated[str, typer.Argument(help='What to look for, in words: "a person lying on the floor"')],
    redis_url: RedisUrlOption = None,
    pipeline: PipelineOption = None,
    camera: Annotated[str | None, typer.Option(help="Only this camera")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only events captured since: ISO-8601 (2026-11-22T10:00:00Z) or 15m, 2h, 1d")
    ] = None,
    kind: Annotated[list[str] | None, typer.Option(help="Only this kind (object, clip, ...); repeat for more")] = None,
    count: Annotated[int, typer.Option(min=1, max=1000, help="How many events to show")] = 10,
    space: Annotated[str | None, typer.Option(help="The embedding space to search (default: the one stored)")] = None,
    config: Annotated[
        Path, typer.Option(help="Config whose models.zero_shot embeds the text, for clip: spaces")
    ] = DEMO_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help='One {"score", "event"} document per line')] = False,
) -> None:
    """Print the retained events closest in meaning to TEXT, best first (their stored embeddings)."""
    import redis

    from pipeline.events.client import EventClient, NothingToSearch, parse_since

    try:
        start = parse_since(since) if since else None
    except ValueError as exc:
        fail(str(exc), 2)
    if not config.is_file():  # bad input first, before any pipeline is looked for
        fail(f"--config {config}: file not found", 2)
    url = pipeline_url(redis_url, pipeline)
    client = EventClient(url)
    try:
        chosen = _space(client, space)
        encode = _encoder(chosen, config)
        matches = client.search(encode([text])[0], chosen, camera=camera, since=start, kinds=kind or None, count=count)
    except NothingToSearch as exc:
        fail(str(exc), 1)
    except redis.AuthenticationError as exc:
        fail(f"Redis at {url} refused the credentials: {exc}")
    except redis.RedisError as exc:
        fail(f"Redis at {url}: {exc}")
    finally:
        client.close()
    _print(matches, as_json)


def _space(client: EventClient, space: str | None) -> str:
    """``space``, or the one space stored; exit 2 when several are stored and none is chosen, and
    NothingToSearch (before any model loads) when Redis holds none of the space."""
    from pipeline.events.client import NothingToSearch

    stored = client.spaces()
    listed = ", ".join(f"{name} ({n})" for name, n in sorted(stored.items()))
    if not stored:
        raise NothingToSearch("no event embeddings in Redis: nothing to search")
    if space is None and len(stored) > 1:
        fail(f"embeddings of several spaces are stored; choose one with --space: {listed}", 2)
    if space is not None and space not in stored:
        raise NothingToSearch(f"no event embeddings in space {space} in Redis (stored: {listed})")
    return space or next(iter(stored))


def _encoder(space: str, config: Path) -> TextEncoder:
    from pipeline.events.embeddings import CLIP_PREFIX
    from pipeline.events.text_encoders import NoTextEncoder, text_encoder
    from workers.detector import ModelLoadError

    cfg = load_checked(config, sources="ignore") if space.startswith(CLIP_PREFIX) else None
    try:
        return text_encoder(space, cfg)
    except NoTextEncoder as exc:
        fail(f"{config}: {exc}" if cfg is not None else str(exc), 2)
    except ModelLoadError as exc:
        fail(str(exc), 1)


def _print(matches: list[Match], as_json: bool) -> None:
    if as_json:
        for m in matches:
            line = json.dumps({"score": round(m.score, 4), "event": m.event.document()})
            console.print(line, markup=False, emoji=False, highlight=False, soft_wrap=True)
    elif matches:
        header = ("score", "time (UTC)", "camera", "kind", "label", "event id")
        rows = [header, *map(_row, matches)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        for row in rows:  # whole, never cut to the terminal's width: an event id is for copying
            line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            console.print(line, markup=False, emoji=False, highlight=False, soft_wrap=True)
    err_console.print(f"{len(matches)} event{'s' if len(matches) != 1 else ''}", highlight=False)


def _row(m: Match) -> tuple[str, ...]:
    ev = m.event
    return (f"{m.score:.3f}", ev.ts.replace("T", " ").rstrip("Z"), ev.camera_id, ev.kind, ev.label, ev.event_id)
