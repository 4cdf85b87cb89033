"""Live terminal view (rich): cameras, fps, latency and the last events.

The events panel is a real Redis consumer: it reads the ``vigil:events`` stream, so what it shows is
what subscribers get. Without a terminal (CI, a pipe) it prints one status line per camera every
few seconds instead of redrawing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import redis
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from pipeline.core.messages import CameraState, CameraStatus
from pipeline.core.redact import redact
from pipeline.events.publisher import EVENTS_STREAM, connect, read_new_events

log = logging.getLogger(__name__)

_STATE_STYLE = {
    CameraState.STREAMING: "green",
    CameraState.CONNECTING: "yellow",
    CameraState.RECONNECTING: "yellow",
    CameraState.STOPPED: "dim",
    CameraState.FAILED: "bold red",
}


FREQUENT_KINDS = frozenset({"object", "zone", "line"})  # the event panel lets these go first


def format_event(data: dict[str, object]) -> str:
    """One human line for an event document."""
    ts = str(data.get("ts", ""))[11:23]
    extra = ""
    kind = data.get("kind")
    if kind == "object":
        extra = f" track={data.get('track_id')} box={data.get('bbox_xyxy')}"
    elif kind == "clip":
        extra = f" frames={data.get('start_frame_id')}-{data.get('frame_id')} head={data.get('head')}"
    elif kind == "line":
        extra = f" line={data.get('line')} direction={data.get('direction')} track={data.get('track_id')}"
    elif kind in ("zone", "dwell"):
        extra = f" zone={data.get('zone')} track={data.get('track_id')}"
        if data.get("dwell_s") is not None:
            extra += f" dwell={data.get('dwell_s')}s"
    elif kind == "speed":
        extra = f" track={data.get('track_id')}"
    if data.get("speed") is not None and kind in ("line", "speed"):
        extra += f" speed={data.get('speed')} {data.get('speed_unit')}"
    zones = data.get("zones")
    if isinstance(zones, list | tuple) and zones and kind in ("object", "clip"):
        extra += f" zones={','.join(str(z) for z in zones)}"
    if data.get("phase") == "end" and kind != "zone":
        extra += f" duration={data.get('duration_s')}s peak={data.get('peak_confidence')}"
    conf = float(data.get("confidence", 0.0))  # type: ignore[arg-type]
    return f"{ts} {data.get('camera_id')} {data.get('kind')} {data.get('phase')} {data.get('label')} {conf:.2f}{extra}"


class EventLines:
    """The event panel's lines: one per incident, its newest phase shown and its updates counted
    (a parked car's updates every few seconds take one line, not the panel). When the panel is full
    the incident seen least recently goes, object incidents, zone stays and line crossings before
    the others, so the rarer clip, dwell and speed events stay visible."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._incidents: OrderedDict[str, tuple[bool, int, str]] = OrderedDict()  # id -> (object?, updates, line)
        self._lock = threading.Lock()

    def add(self, doc: dict[str, object]) -> None:
        key = str(doc.get("incident_id") or doc.get("event_id") or id(doc))
        with self._lock:
            _, updates, _ = self._incidents.pop(key, (False, 0, ""))
            updates += doc.get("phase") == "update"
            line = format_event(doc) + (f" ({updates} update{'s' if updates != 1 else ''})" if updates else "")
            self._incidents[key] = (doc.get("kind") in FREQUENT_KINDS, updates, line)
            self._evict()

    def note(self, line: str) -> None:
        """A line of the feed's own (a Redis error), kept like an incident of its own."""
        with self._lock:
            self._incidents.pop("<feed>", None)
            self._incidents["<feed>"] = (True, 0, line)
            self._evict()

    def _evict(self) -> None:
        while len(self._incidents) > self.size:
            victim = next((k for k, (is_object, _, _) in self._incidents.items() if is_object), None)
            del self._incidents[victim if victim is not None else next(iter(self._incidents))]

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter([line for _, _, line in self._incidents.values()])

    def __len__(self) -> int:
        return len(self._incidents)


class EventFeed:
    """Follows ``vigil:events`` from now on in a daemon thread; keeps the lines of the last ``size``
    incidents (:class:`EventLines`)."""

    def __init__(self, redis_url: str, size: int = 8) -> None:
        self.lines = EventLines(size)
        self.following = threading.Event()  # set once the feed knows where "now" is in the stream
        self._client = connect(redis_url)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)
        self._client.close()

    def _run(self) -> None:
        # The newest entry when the view starts, then the last one shown: XREAD's "$" would skip
        # whatever arrives between two reads.
        last_id: bytes | str | None = None
        while not self._stop.is_set():
            try:
                if last_id is None:
                    newest: Any = self._client.xrevrange(EVENTS_STREAM, count=1)
                    last_id = newest[0][0] if newest else "0-0"
                    self.following.set()
                entries = read_new_events(self._client, EVENTS_STREAM, last_id, block_ms=500)
            except redis.RedisError as exc:
                self.lines.note(f"[redis error: {redact(str(exc))}]")
                self._stop.wait(1.0)
                continue
            for entry_id, doc in entries:
                last_id = entry_id
                self.lines.add(json.loads(doc))


def _progress(fraction: float | None, bar: bool) -> RenderableType:
    if fraction is None:
        return "-"
    percent = f"{fraction * 100:.0f} %"
    return Group(ProgressBar(total=1.0, completed=fraction, width=12), percent) if bar else percent


WIDE = 110  # terminal columns from which the table shows every column and file progress bars


def camera_table(statuses: list[CameraStatus], width: int = WIDE) -> Table:
    """The cameras as a table for a terminal ``width`` columns wide: below ``WIDE`` the scene and
    clip columns go and file progress is a number, so the fps, latency and counts stay readable."""
    wide = width >= WIDE
    table = Table(expand=True, header_style="bold", box=box.SIMPLE_HEAD if not wide else box.HEAVY_HEAD)
    show_progress = any(s.progress is not None for s in statuses)
    if wide:
        columns = ["camera", "state", "in fps", "out fps", "latency", "frames", "dropped", "events", "scene", "clip"]
    else:
        columns = ["camera", "state", "in", "out", "latency", "frames", "drop", "events"]
    for col in columns + (["file"] if show_progress else []):
        # A failed camera's reason wraps inside the state column instead of widening it.
        limit = 28 if col == "state" else None
        table.add_column(
            col,
            no_wrap=col in ("camera", "file"),
            min_width=max(len(col), 9 * (col == "state")),
            max_width=limit,
            overflow="fold" if col == "state" else "ellipsis",
        )
    for s in statuses:
        state = f"[{_STATE_STYLE[s.state]}]{s.state.value}[/]"
        if s.reason and s.state is not CameraState.STREAMING:
            state += f"\n[dim]{s.reason}[/]"
        latency = "-" if s.last_latency_s is None else f"{s.last_latency_s * 1000:.0f} ms"
        cells: list[RenderableType] = [
            s.camera_id,
            state,
            f"{s.input_fps:.1f}",
            f"{s.processed_fps:.1f}",
            latency,
            str(s.frames_processed),
            str(s.frames_dropped),
            str(s.events_published),
        ]
        if wide:
            cells += [s.scene or "-", s.clip or "-"]
        if show_progress:
            cells.append(_progress(s.progress, bar=wide))
        table.add_row(*cells)
    return table


class StatusLines:
    """One plain line per camera every ``every_s`` seconds: what a log or a pipe gets instead of the
    redrawn view (``vigil run --no-view``, or no terminal)."""

    def __init__(self, console: Console, every_s: float = 5.0) -> None:
        self.console = console
        self._every_s = every_s
        self._last: float | None = None

    def update(self, statuses: list[CameraStatus]) -> None:
        now = time.monotonic()
        if self._last is not None and now - self._last < self._every_s:
            return
        self._last = now
        for s in statuses:
            self.console.print(status_line(s), highlight=False, soft_wrap=True)


def status_line(s: CameraStatus) -> str:
    lat = "-" if s.last_latency_s is None else f"{s.last_latency_s * 1000:.0f}ms"
    return (
        f"{s.camera_id}: {s.state.value} in={s.input_fps:.1f}fps out={s.processed_fps:.1f}fps "
        f"latency={lat} frames={s.frames_processed} dropped={s.frames_dropped} events={s.events_published}"
        + (f" file={s.progress * 100:.0f}%" if s.progress is not None else "")
        + (f" counts: {s.analytics}" if s.analytics else "")
        + (f" ({s.reason})" if s.reason else "")
    )


class LiveView:
    """Context manager: ``update(statuses)`` redraws; events come from Redis by themselves."""

    def __init__(self, console: Console, title: str, redis_url: str, plain_every_s: float = 5.0) -> None:
        self.console = console
        self.title = title
        self.feed = EventFeed(redis_url)
        self._live: Live | None = None
        self._plain = StatusLines(console, plain_every_s)

    def __enter__(self) -> LiveView:
        self.feed.start()
        if self.console.is_terminal:
            self._live = Live(self._render([]), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)
        self.feed.stop()

    def update(self, statuses: list[CameraStatus]) -> None:
        if self._live is not None:
            self._live.update(self._render(statuses))
            return
        self._plain.update(statuses)

    def _render(self, statuses: list[CameraStatus]) -> Group:
        events = "\n".join(self.feed.lines) or "[dim]no events yet[/]"
        panels: list[RenderableType] = [
            Panel(camera_table(statuses, self.console.width), title=self.title, title_align="left")
        ]
        counts = [Text(f"{s.camera_id}: {s.analytics}") for s in statuses if s.analytics]
        if counts:
            panels.append(Panel(Group(*counts), title="lines and zones", title_align="left"))
        panels.append(Panel(events, title="last events", title_align="left"))
        return Group(*panels)
