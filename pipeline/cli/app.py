"""The ``vigil`` command line. User-facing output lives here and nowhere else.

Exit codes: 0 ok, 1 runtime error (Redis unreachable, a model failed to load, ...), 2 config error.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pipeline.cli.common import DEMO_CONFIG, DEMO_MODELS, console, err_console, fail, load_checked, vigil_command
from pipeline.cli.exits import run_cli
from pipeline.cli.fetch import register as register_fetch_command
from pipeline.cli.instances import PipelineOption, RedisUrlOption, RunRedisUrlOption, pipeline_url, recorded
from pipeline.cli.models import register as register_model_commands
from pipeline.cli.probe import register as register_probe_command
from pipeline.cli.search import register as register_search_command
from pipeline.core.config import ConfigError, VigilConfig, validate_camera
from pipeline.core.logs import configure_logging
from pipeline.core.redact import redact

if TYPE_CHECKING:
    from pipeline.core.config.analytics import AnalyticsConfig
    from pipeline.core.messages import Event
    from pipeline.events.client import EventClient
    from pipeline.runtime.control import Command, Reply

# Heavier modules (Redis clients, numpy, the runtime) are imported inside the commands that use them:
# `vigil validate-config` and `vigil --help` load only the config package.

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Vigil: streaming video analytics.")
events_app = typer.Typer(no_args_is_help=True, help="Read events from Redis.")
app.add_typer(events_app, name="events")
cameras_app = typer.Typer(
    no_args_is_help=True,
    help="Probe a camera URL; list, add and remove cameras of a running pipeline, save a camera's latest frame.",
)
app.add_typer(cameras_app, name="cameras")
zones_app = typer.Typer(
    no_args_is_help=True, help="Read and change the zones and lines of a running pipeline's cameras (no restart)."
)
app.add_typer(zones_app, name="zones")
prompts_app = typer.Typer(
    no_args_is_help=True,
    help="Read and change the prompts models.zero_shot labels with, on a running pipeline (no restart).",
)
app.add_typer(prompts_app, name="prompts")

DEFAULT_DEMO_DIR = Path(".vigil") / "demo"
DURATION_HELP = "Stop this many seconds after the cameras started (start-up not counted)"


@app.callback()
def _defaults() -> None:
    """Vigil: streaming video analytics."""
    configure_logging(logging.WARNING)
    # configs/demo.yaml (and yours, if you like) finds the shipped model pack through this variable.
    os.environ.setdefault("VIGIL_MODELS_DIR", str(DEMO_MODELS))


@app.command("validate-config")
def validate_config(config: Annotated[Path, typer.Argument(help="YAML config file")]) -> None:
    """Check a config file and print every problem with its key path."""
    cfg = load_checked(config)
    console.print(f"{config}: OK ({len(cfg.cameras)} camera{'s' if len(cfg.cameras) != 1 else ''})")
    for cam in cfg.cameras:
        console.print(
            f"  {cam.id}: {cam.display_url} "
            f"({cam.kind.value} source, {cam.effective_mode.value} mode, {cam.fps:g} fps)",
            highlight=False,
        )


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="YAML config file")],
    redis_url: RunRedisUrlOption = None,
    metrics_port: Annotated[int | None, typer.Option(help="Overrides metrics.port")] = None,
    duration: Annotated[float | None, typer.Option(help=DURATION_HELP)] = None,
    view: Annotated[bool, typer.Option(help="Live terminal view")] = True,
) -> None:
    """Run the pipeline on the cameras of CONFIG until Ctrl-C, --duration, or every file has ended."""
    overrides: dict[str, object] = {}
    if redis_url is not None:
        overrides["redis.url"] = redis_url
    if metrics_port is not None:
        overrides["metrics.port"] = metrics_port
    _run_pipeline(load_checked(config, overrides, sources="warn"), duration, view)


@app.command()
def demo(
    duration: Annotated[float | None, typer.Option(help=DURATION_HELP)] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Port of /metrics (default: the config's, 9100)")] = None,
    config: Annotated[Path, typer.Option(help="Demo config")] = DEMO_CONFIG,
    demo_dir: Annotated[Path, typer.Option(help="Where the demo videos are rendered")] = DEFAULT_DEMO_DIR,
    view: Annotated[bool, typer.Option(help="Live terminal view")] = True,
) -> None:
    """Run the pipeline on generated demo cameras with an embedded Redis (no GPU, no setup)."""
    from pipeline.ml.synth.dataset import ensure_video

    demo_dir.mkdir(parents=True, exist_ok=True)
    with console.status("rendering demo videos (first run only)..."):
        # One minute each (two to four scripted activities), looped; ground truth beside each file.
        ensure_video(demo_dir / "street-v2.mp4", seed=1, scene="street", seconds=60)
        ensure_video(demo_dir / "parking-v2.mp4", seed=2, scene="parking", night=True, seconds=60)
    os.environ.setdefault("VIGIL_DEMO_DIR", str(demo_dir.resolve()))
    overrides: dict[str, object] = {} if metrics_port is None else {"metrics.port": metrics_port}
    _run_pipeline(load_checked(config, overrides), duration, view)


def _run_pipeline(cfg: VigilConfig, duration: float | None, view: bool) -> None:
    try:
        _run_started(cfg, duration, view)
    except KeyboardInterrupt:
        err_console.print("interrupted")


def _run_started(cfg: VigilConfig, duration: float | None, view: bool) -> None:
    import ray

    from pipeline.cli.view import LiveView, StatusLines
    from pipeline.core.messages import CameraState
    from pipeline.events.publisher import check_connection
    from pipeline.runtime.driver import Pipeline, PipelineError, init_ray
    from pipeline.runtime.redis_server import EmbeddedRedis, RedisUnavailable

    with ExitStack() as stack:
        redis_url = cfg.redis.url
        if redis_url is None:
            try:
                server = stack.enter_context(EmbeddedRedis(supervise=True))
            except RedisUnavailable as exc:
                fail(str(exc))
            redis_url = server.url
            console.print(f"embedded redis-server on {redis_url}", highlight=False, soft_wrap=True)
        try:
            check_connection(redis_url, cfg.redis.connect_timeout_s)
        except ConnectionError as exc:
            fail(str(exc))
        pipeline = Pipeline(cfg, redis_url)
        # From here on `vigil events` / `vigil cameras` find it without flags (while it starts, too).
        stack.enter_context(recorded(pipeline))
        with console.status("starting Ray and loading models..."):
            init_ray(cfg, log_to_driver=not (view and console.is_terminal))
            stack.callback(ray.shutdown)
            try:
                pipeline.start()
            except PipelineError as exc:
                if pipeline.placement is not None:  # what the failed start was laying out
                    err_console.print(pipeline.placement.describe(), highlight=False, soft_wrap=True)
                fail(str(exc))
        if pipeline.placement is not None:
            console.print(pipeline.placement.describe(), highlight=False, soft_wrap=True)
        metrics_url = f"http://{cfg.metrics.host}:{pipeline.metrics_port}/metrics"
        console.print(
            f"metrics on {metrics_url}  ·  events: {vigil_command()} events tail",  # finds this run
            highlight=False,
            soft_wrap=True,  # a hint is copied: never wrapped, in a terminal or a log
        )
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        live = LiveView(console, f"Vigil · {metrics_url}", redis_url) if view else nullcontext()
        lines = StatusLines(console)  # without the view: one line per camera every few seconds
        with live:
            pipeline.run(duration, stop, on_tick=live.update if isinstance(live, LiveView) else lines.update)
        with console.status("stopping..."):
            final = pipeline.stop()
        for s in final:
            console.print(
                f"{s.camera_id}: {s.state.value}, {s.frames_processed} frames processed, "
                f"{s.frames_dropped} dropped, {s.events_published} events" + (f" ({s.reason})" if s.reason else ""),
                highlight=False,
                soft_wrap=True,
            )
        if final and all(s.state is CameraState.FAILED for s in final):
            fail(f"every camera failed ({len(final)})")


def _print_event(ev: Event, as_json: bool) -> None:
    from pipeline.cli.view import format_event

    doc = ev.document()  # fields a newer Vigil added are printed too
    text = json.dumps(doc) if as_json else format_event(doc)
    # verbatim: "[east]" in a path or ":fire:" in a label is text, not a style or an emoji
    console.print(text, markup=False, emoji=False, highlight=False, soft_wrap=True)


@events_app.command("tail")
def events_tail(
    redis_url: RedisUrlOption = None,
    pipeline: PipelineOption = None,
    camera: Annotated[str | None, typer.Option(help="Only this camera")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON documents")] = False,
    count: Annotated[int | None, typer.Option(help="Exit after this many events")] = None,
    from_start: Annotated[bool, typer.Option(help="Start at the oldest retained event, not now")] = False,
) -> None:
    """Print events live as they are published (reads the Redis stream, so nothing is missed)."""
    redis_url = pipeline_url(redis_url, pipeline)
    with _event_client(redis_url) as client:
        events = client.tail(camera, from_start)  # everything published from here on is printed
        err_console.print(
            f"following {client.stream_for(camera)} on {redact(redis_url)} (Ctrl-C to stop)", highlight=False
        )
        for seen, ev in enumerate(events, start=1):
            _print_event(ev, as_json)
            if count is not None and seen >= count:
                return


@events_app.command("replay")
def events_replay(
    since: Annotated[str, typer.Option(help="ISO-8601 time (2026-11-22T10:00:00Z) or relative (15m, 2h, 1d)")],
    redis_url: RedisUrlOption = None,
    pipeline: PipelineOption = None,
    until: Annotated[str | None, typer.Option(help="Stop at this time (same formats)")] = None,
    camera: Annotated[str | None, typer.Option(help="Only this camera")] = None,
    label: Annotated[str | None, typer.Option(help="Only this label")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON documents")] = False,
) -> None:
    """Print retained events captured since TIME, oldest first."""
    from pipeline.events.client import parse_since

    try:
        start, end = parse_since(since), (parse_since(until) if until else None)
    except ValueError as exc:
        fail(str(exc), 2)
    redis_url = pipeline_url(redis_url, pipeline)
    with _event_client(redis_url) as client:
        n = 0
        for ev in client.replay(start, camera, label, end):
            _print_event(ev, as_json)
            n += 1
        err_console.print(f"{n} event{'s' if n != 1 else ''}", highlight=False)


@events_app.command("consume")
def events_consume(
    group: Annotated[str, typer.Option(help="Consumer group: each event goes to one consumer of the group")],
    consumer: Annotated[str, typer.Option(help="This consumer's name (stable across restarts)")],
    redis_url: RedisUrlOption = None,
    pipeline: PipelineOption = None,
    camera: Annotated[str | None, typer.Option(help="Only this camera's stream")] = None,
    count: Annotated[int | None, typer.Option(help="Exit after this many events")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON documents")] = False,
) -> None:
    """Read events through a consumer group, acknowledging each once printed."""
    redis_url = pipeline_url(redis_url, pipeline)
    with _event_client(redis_url) as client:
        for seen, delivery in enumerate(client.consume(group, consumer, camera), start=1):
            _print_event(delivery.event, as_json)
            delivery.ack()
            if count is not None and seen >= count:
                return


@events_app.command("snapshot")
def events_snapshot(
    event_id: Annotated[str, typer.Argument(help="The start event's event_id")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the JPEG")],
    redis_url: RedisUrlOption = None,
    pipeline: PipelineOption = None,
) -> None:
    """Fetch the JPEG snapshot of a start event from Redis."""
    redis_url = pipeline_url(redis_url, pipeline)
    with _event_client(redis_url) as client:
        jpeg = client.snapshot(event_id)
    if jpeg is None:
        fail(f"no snapshot for event {event_id} in Redis (expired, not a start event, or stored in a directory)")
    output.write_bytes(jpeg)
    console.print(f"{output}: {len(jpeg)} bytes")


@events_app.command("schema")
def events_schema(
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here instead of stdout")] = None,
) -> None:
    """Print the JSON Schema of events (the shipped copy is docs/event.schema.json)."""
    text = event_schema_json()
    if output is None:
        console.print(text, highlight=False, soft_wrap=True)
    else:
        output.write_text(text)


def event_schema_json() -> str:
    from pipeline.core.messages import SCHEMA_VERSION, Event

    schema = Event.model_json_schema()
    schema["$id"] = f"urn:vigil:event:v{SCHEMA_VERSION}"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


@contextmanager
def _event_client(redis_url: str) -> Iterator[EventClient]:
    import redis

    from pipeline.events.client import EventClient

    client = EventClient(redis_url)
    try:
        yield client
    except redis.AuthenticationError as exc:
        fail(f"Redis at {redis_url} refused the credentials: {exc}")
    except redis.RedisError as exc:
        fail(f"Redis at {redis_url}: {exc}")
    except KeyboardInterrupt:
        pass
    finally:
        client.close()


KeyFile = Annotated[
    Path | None,
    typer.Option(
        help="File holding the control key (default: $VIGIL_CONTROL_KEY, else ~/.config/vigil/control.key, "
        "which the pipeline writes on its machine)",
        envvar="VIGIL_CONTROL_KEY_FILE",
    ),
]


def _control(
    redis_url: str, command: Command, key_file: Path | None, on_accepted: Callable[[], None] | None = None
) -> Reply:
    import redis

    from pipeline.runtime.control import OPEN_OPS, NotFinished, send_command
    from pipeline.runtime.control_auth import ControlKeyError, client_key, default_key_path

    try:
        key = client_key(key_file)
    except ControlKeyError as exc:
        fail(str(exc))
    if key is None and command.op not in OPEN_OPS:
        fail(
            f"no control key: {command.op} needs the key the pipeline signs commands with: set VIGIL_CONTROL_KEY "
            f"or --key-file (the pipeline wrote it to {default_key_path()} or its control.key_file, docs/security.md)"
        )
    try:
        reply = send_command(redis_url, command, key=key, on_accepted=on_accepted)
    except NotFinished as exc:
        checks = {"zones_set": f"vigil zones list {command.camera_id}", "prompts_set": "vigil prompts show"}
        check = checks.get(command.op, "vigil cameras list")
        fail(f"{exc}: `{check}` shows whether it took effect")
    except TimeoutError as exc:
        # A pipeline answers commands once its cameras have started (after its models loaded).
        fail(f"{exc} (a pipeline that is still starting answers once its cameras run)")
    except redis.RedisError as exc:
        fail(f"Redis at {redact(redis_url)}: {redact(str(exc))}")
    if not reply.ok:
        fail(reply.error, reply.exit_code or 1)
    return reply


@cameras_app.command("list")
def cameras_list(
    redis_url: RedisUrlOption = None,
    pipeline: PipelineOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    key_file: KeyFile = None,
) -> None:
    """The cameras of the running pipeline with their state, fps and counts (works without the key)."""
    from pipeline.runtime.control import Command

    reply = _control(pipeline_url(redis_url, pipeline), Command(op="list"), key_file)
    if as_json:
        console.print(json.dumps(reply.cameras, indent=2), highlight=False, soft_wrap=True)
        return
    for cam in reply.cameras:
        reason = f" ({cam['reason']})" if cam["reason"] else ""
        console.print(
            f"{cam['camera_id']}: {cam['state']}{reason}  {cam['url']}  in={cam['input_fps']:.1f}fps "
            f"out={cam['processed_fps']:.1f}fps frames={cam['frames_processed']} events={cam['events_published']}",
            highlight=False,
            soft_wrap=True,
        )
    if not reply.cameras:
        console.print("no cameras")


@cameras_app.command("add")
def cameras_add(
    camera_id: Annotated[str, typer.Argument(help="New camera id")],
    url: Annotated[str, typer.Argument(help="rtsp://, http(s)://, a file path or a webcam index")],
    fps: Annotated[float, typer.Option(help="Frames per second processed")] = 10.0,
    mode: Annotated[str | None, typer.Option(help="live | file (default: by URL)")] = None,
    loop: Annotated[bool, typer.Option(help="Files: start over at the end")] = False,
    redis_url: RedisUrlOption = None,
    pipeline: PipelineOption = None,
    key_file: KeyFile = None,
) -> None:
    """Start a camera on the running pipeline (nothing else restarts). Waits until it runs: minutes
    where it needs a new camera host, which loads its models first."""
    data: dict[str, object] = {"id": camera_id, "url": url, "fps": fps, "loop": loop}
    if mode is not None:
        data["mode"] = mode
    try:
        cam = validate_camera(data, source="camera")
    except ConfigError as exc:
        fail("; ".join(exc.problems), 2)
    from pipeline.runtime.control import Command

    redis_url = pipeline_url(redis_url, pipeline)
    with ExitStack() as waiting:

        def accepted() -> None:  # the pipeline took it; a new camera host may load its models for minutes
            waiting.enter_context(err_console.status(f"starting {camera_id}..."))

        _control(redis_url, Command(op="add", camera=cam.model_dump(mode="json")), key_file, accepted)
    console.print(f"added {camera_id}: {cam.display_url}", highlight=False)


@cameras_app.command("remove")
def cameras_remove(
    camera_id: Annotated[str, typer.Argument(help="Camera id")],
    redis_url: RedisUrlOption = None,
    pipeline: PipelineOption = None,
    key_file: KeyFile = None,
) -> None:
    """Stop a camera of the running pipeline (its open incidents end, its events are flushed)."""
    from pipeline.runtime.control import Command

    reply = _control(pipeline_url(redis_url, pipeline), Command(op="remove", camera_id=camera_id), key_file)
    final = reply.cameras[0]
    console.print(
        f"removed {camera_id}: {final['frames_processed']} frames processed, {final['events_published']} events",
        highlight=False,
    )


@cameras_app.command("snapshot")
def cameras_snapshot(
    camera_id: Annotated[str, typer.Argument(help="Camera id")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the JPEG")],
    redis_url: RedisUrlOption = None,
    pipeline: PipelineOption = None,
    key_file: KeyFile = None,
) -> None:
    """Save a running camera's latest processed frame as a JPEG (works without the key).

    At the size the frame is decoded, with its boxes, track ids, zones and lines drawn: the picture to
    draw zones on."""
    from pipeline.core.messages import utc_iso
    from pipeline.runtime.control import Command

    reply = _control(pipeline_url(redis_url, pipeline), Command(op="snapshot", camera_id=camera_id), key_file)
    picture = reply.snapshot
    if picture is None:
        fail(f"the pipeline sent no picture of camera {camera_id}")
    output.write_bytes(picture.jpeg)
    w, h = picture.width, picture.height
    console.print(
        f"{output}: {w}x{h} pixels, frame {picture.frame_id} captured {utc_iso(picture.captured_at)}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"coordinates in this picture are pixels of the decoded frame (zones with `coordinates: pixels`); "
        f"normalized coordinates (the default) are x / {w} and y / {h}",
        highlight=False,
        soft_wrap=True,
    )


def _geometry_summary(cfg: AnalyticsConfig) -> str:
    """``2 zones (door, bay), 1 line (kerb), a speed limit of 30 km/h``."""
    parts = []
    for what, items in (("zone", cfg.zones), ("line", cfg.lines)):
        if items:
            parts.append(f"{len(items)} {what}{'s' if len(items) != 1 else ''} ({', '.join(i.name for i in items)})")
    if cfg.speed is not None:
        parts.append(f"a speed limit of {cfg.speed.limit:g} {cfg.speed.unit}")
    return ", ".join(parts) or "no zones or lines"


def _section_yaml(section: dict[str, Any]) -> str:
    """An analytics section as YAML that `vigil zones set` reads back: points and names on one line."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def sequence(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
        flat = not any(isinstance(v, dict) or (isinstance(v, list) and _nested(v)) for v in data)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)

    Dumper.add_representer(list, sequence)
    return yaml.dump(section, Dumper=Dumper, sort_keys=False, allow_unicode=True)


def _nested(items: list[Any]) -> bool:
    return any(isinstance(v, dict | list) for v in items)


@zones_app.command("list")
def zones_list(
    camera_id: Annotated[str, typer.Argument(help="Camera id")],
    redis_url: RedisUrlOption = None,
    pipeline: PipelineOption = None,
    key_file: KeyFile = None,
) -> None:
    """Print a camera's zones and lines as YAML (works without the key).

    The camera's analytics section (zones, lines, speed, calibration), keys left at their defaults
    omitted: a file `vigil zones set` takes back."""
    from pydantic import ValidationError

    from pipeline.core.config.analytics import AnalyticsConfig
    from pipeline.runtime.control import Command

    reply = _control(pipeline_url(redis_url, pipeline), Command(op="zones_get", camera_id=camera_id), key_file)
    if reply.analytics is None:
        console.print(f"# {camera_id} has no zones or lines (no analytics section)", highlight=False, markup=False)
        return
    try:
        section = AnalyticsConfig.model_validate(reply.analytics).model_dump(mode="json", exclude_defaults=True)
    except ValidationError:  # a pipeline of another Vigil version: shown as it sent it
        section = reply.analytics
    console.print(_section_yaml(section).rstrip("\n"), highlight=False, markup=False, soft_wrap=True)


@zones_app.command("set")
def zones_set(
    camera_id: Annotated[str, typer.Argument(help="Camera id")],
    file: Annotated[
        Path,
        typer.Argument(
            help="YAML file holding exactly the camera's analytics section (zones:, lines:, ... at its top "
            "level, as `vigil zones list` prints it); - reads it from stdin"
        ),
    ],
    redis_url: RedisUrlOption = None,
    pipeline: PipelineOption = None,
    key_file: KeyFile = None,
) -> None:
    """Replace a camera's zones and lines on the running pipeline (nothing restarts).

    Validated like the config, applied from the camera's next frame (objects in its old zones leave
    them), and kept if its camera host restarts."""
    from pipeline.core.config.loader import load_analytics
    from pipeline.runtime.control import Command

    redis_url = pipeline_url(redis_url, pipeline)
    stdin = str(file) == "-"
    try:
        cfg = load_analytics(Path("/dev/stdin") if stdin else file, "<stdin>" if stdin else None)
    except ConfigError as exc:
        fail(str(exc), 2)
    command = Command(op="zones_set", camera_id=camera_id, analytics=cfg.model_dump(mode="json"))
    with ExitStack() as waiting:

        def accepted() -> None:  # queued behind other changes (an add may wait for a camera host to start)
            waiting.enter_context(err_console.status(f"setting the zones of {camera_id}..."))

        _control(redis_url, command, key_file, accepted)
    console.print(f"{camera_id}: {_geometry_summary(cfg)}, from its next frame", highlight=False)


@zones_app.command("remove")
def zones_remove(
    camera_id: Annotated[str, typer.Argument(help="Camera id")],
    redis_url: RedisUrlOption = None,
    pipeline: PipelineOption = None,
    key_file: KeyFile = None,
) -> None:
    """Remove a camera's zones and lines (objects inside its zones leave them, their zone incidents end)."""
    from pipeline.runtime.control import Command

    _control(pipeline_url(redis_url, pipeline), Command(op="zones_set", camera_id=camera_id), key_file)
    console.print(f"{camera_id}: no zones or lines, from its next frame", highlight=False)


def _prompt_summary(section: dict[str, Any]) -> str:
    """``scenes: street, parking; activities: fall, run`` for a models.zero_shot section."""
    parts = []
    for key in ("scenes", "activities"):
        if section.get(key):
            parts.append(f"{key}: {', '.join(section[key])}")
    for cls, labels in (section.get("attributes") or {}).items():
        parts.append(f"{cls} attributes: {', '.join(labels)}")
    return "; ".join(parts) or "no labels"


@prompts_app.command("show")
def prompts_show(
    redis_url: RedisUrlOption = None,
    pipeline: PipelineOption = None,
    key_file: KeyFile = None,
) -> None:
    """Print the prompts the running pipeline labels with, as YAML (works without the key).

    The keys of its models.zero_shot section but the backend: a file `vigil prompts set` takes back."""
    from pipeline.runtime.control import Command

    reply = _control(pipeline_url(redis_url, pipeline), Command(op="prompts_get"), key_file)
    if reply.prompts is None:
        console.print("# no models.zero_shot: this pipeline labels with its trained models only", markup=False)
        return
    console.print(_section_yaml(reply.prompts).rstrip("\n"), highlight=False, markup=False, soft_wrap=True)


@prompts_app.command("set")
def prompts_set(
    file: Annotated[
        Path,
        typer.Argument(
            help="YAML file holding keys of models.zero_shot but backend (scenes:, attributes:, activities:, "
            "thresholds, templates) at its top level, as `vigil prompts show` prints them; - reads stdin"
        ),
    ],
    redis_url: RedisUrlOption = None,
    pipeline: PipelineOption = None,
    key_file: KeyFile = None,
) -> None:
    """Label with new prompts on the running pipeline (nothing restarts).

    The keys the file gives replace the running ones; keys it leaves out stay. Validated like the
    config, applied from each model's next batch, and kept if a camera host or model worker restarts.
    The backend, and which of scenes, attributes and activities are set, stay as the pipeline started."""
    from pipeline.core.config.loader import load_prompts
    from pipeline.runtime.control import Command

    redis_url = pipeline_url(redis_url, pipeline)
    stdin = str(file) == "-"
    try:
        section = load_prompts(Path("/dev/stdin") if stdin else file, source="<stdin>" if stdin else None)
    except ConfigError as exc:
        fail(str(exc), 2)
    with ExitStack() as waiting:

        def accepted() -> None:  # queued behind other changes; the text embeddings are computed where the models run
            waiting.enter_context(err_console.status("setting the prompts..."))

        reply = _control(redis_url, Command(op="prompts_set", prompts=section), key_file, accepted)
    summary = _prompt_summary(reply.prompts or {})
    console.print(f"labelling from prompts: {summary}, from each model's next batch", highlight=False, soft_wrap=True)


@app.command()
def bench(
    cameras: Annotated[int, typer.Option(min=1, max=256, help="Copies of the video, decoded as this many cameras")] = 4,
    seconds: Annotated[float, typer.Option(min=1, help="Measured seconds per mode (after warm-up)")] = 30.0,
    config: Annotated[Path, typer.Option(help="Config whose models are used (its cameras are not)")] = DEMO_CONFIG,
    video: Annotated[Path | None, typer.Option(help="Input video (default: a generated street scene)")] = None,
    imgsz: Annotated[int | None, typer.Option(help="Overrides models.detector.imgsz")] = None,
    max_batch: Annotated[int | None, typer.Option(help="Overrides the detector's and classifier's max_batch")] = None,
    batch_sizes: Annotated[str | None, typer.Option(help="Limit: batch sizes to try, e.g. 1,2,4,8")] = None,
    in_flight: Annotated[
        int | None,
        typer.Option(min=1, max=32, help="Vigil: frames per camera in the models at once (default: a file camera's)"),
    ] = None,
    rounds: Annotated[
        int, typer.Option(min=1, max=10, help="Run the three modes this many times; the median round is shown")
    ] = 1,
    export: Annotated[str | None, typer.Option(help="Overrides models.detector.export (onnx, engine)")] = None,
    cpu_precision: Annotated[
        str | None, typer.Option(help="Overrides the detector's and classifier's cpu_precision (fp32, bf16, auto)")
    ] = None,
    no_ray: Annotated[bool, typer.Option(help="Vigil's batched workers in-process, without Ray and Redis")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full results as JSON here")] = None,
) -> None:
    """Vigil against a hand-written baseline and the compute limit on the same video."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from pipeline.bench.run import BenchError, run_bench
    from pipeline.bench.spec import BenchSpec, default_video
    from pipeline.bench.table import render_table

    overrides: dict[str, object] = {} if imgsz is None else {"models.detector.imgsz": imgsz}
    if export is not None:
        overrides["models.detector.export"] = export
    if max_batch is not None:
        overrides.update({"models.detector.max_batch": max_batch, "models.classifier.max_batch": max_batch})
    if cpu_precision is not None:
        overrides.update(
            {"models.detector.cpu_precision": cpu_precision, "models.classifier.cpu_precision": cpu_precision}
        )
    cfg = load_checked(config, overrides, sources="ignore")  # the bench renders its own video
    # Like with like: the baseline and the limit run a detector and a ViT per frame, no second stage.
    cfg = cfg.model_copy(update={"models": cfg.models.model_copy(update={"crops": None})})
    try:
        sizes = None if batch_sizes is None else tuple(int(b) for b in batch_sizes.split(","))
    except ValueError:
        fail(f"--batch-sizes: expected comma-separated integers, got {batch_sizes!r}", 2)
    if sizes is not None and min(sizes) < 1:
        fail("--batch-sizes: batch sizes must be at least 1", 2)
    if video is not None and not video.is_file():
        fail(f"--video: file not found: {video}", 2)
    if video is None:
        with console.status("rendering the benchmark video (first run only)..."):
            video = default_video()
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("starting", total=1.0)
            spec = BenchSpec(
                cfg, video, cameras, seconds, no_ray=no_ray, batch_sizes=sizes, in_flight=in_flight, rounds=rounds
            )
            results = run_bench(
                spec, lambda text, done: bar.update(task, description=text, completed=done, refresh=True)
            )
    except BenchError as exc:
        fail(str(exc))
    console.print(render_table(results))
    console.print(f"orchestration overhead: {_overhead_line(results['vigil']['overhead'])}", highlight=False)
    if (speed := results["vigil"].get("model_speed_vs_limit_run")) is not None:
        console.print(
            f"the model calls ran at {speed:.2f}x the limit run's speed during the vigil run: "
            f"{results['ratio_vs_limit_at_run_speed']:.2f}x the limit at the same speed",
            highlight=False,
        )
    if "rounds" in results:
        console.print(_rounds_line(results["rounds"]), highlight=False)
    if json_out is not None:
        json_out.write_text(json.dumps(results, indent=2) + "\n")
        console.print(f"results: {json_out}", highlight=False)


def _rounds_line(rounds: list[dict[str, Any]]) -> str:
    """Every round's ratios (the table above shows the median round's modes)."""
    parts = [
        f"{r['vigil_fps']:.1f} / {r['baseline_fps']:.1f} / {r['limit_fps']:.1f} fps = "
        f"{r['ratio_vs_baseline']:.2f}x, {r['ratio_vs_limit']:.2f}x"
        + (f" ({m:.2f}x at the run's speed)" if (m := r.get("ratio_vs_limit_at_run_speed")) is not None else "")
        + (f", {m:.2f}x on model-size frames" if (m := r.get("ratio_vs_limit_on_model_inputs")) is not None else "")
        + (f", {m:.2f}x on CPU time" if (m := r.get("ratio_vs_limit_on_cpu_time")) is not None else "")
        + (f", orchestration {r['orchestration_share']:.1%}" if r.get("orchestration_share") is not None else "")
        for r in rounds
    ]
    return f"{len(rounds)} rounds (vigil / baseline / limit; the table shows the median ÷ limit): " + "; ".join(parts)


def _overhead_line(o: dict[str, Any]) -> str:
    share = o["other_share"]
    names = {"detector": "detector", "classifier": "ViT", "temporal": "clip head", "crops": "crops"}
    models = ", ".join(f"{names.get(k, k)} {v:.1f}" for k, v in o.get("cpu_s_models", {}).items())
    how = "measured where they ran" if o.get("forward_source") == "measured" else "estimated from the limit run"
    line = (
        f"{o['cpu_s_total']:.0f} CPU-s in the window: decode {o['cpu_s_decode']:.1f}, model calls ({how}) "
        f"{models}, everything else {o['cpu_s_other']:.1f}" + ("" if share is None else f" ({share:.0%})")
    )
    if o.get("orchestration_share") is None:
        return line
    work = sum(o["cpu_s_pipeline_work"].values())
    parts = ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in o["cpu_s_orchestration"].items())
    return (
        f"{line}\n  of which the pipeline's own work (resize, tracking, event rules) {work:.1f}, "
        f"orchestration {sum(o['cpu_s_orchestration'].values()):.1f} ({o['orchestration_share']:.0%}): {parts}"
    )


register_model_commands(app)
register_probe_command(cameras_app)
register_search_command(events_app)
register_fetch_command(app)


def main() -> None:
    sys.exit(run_cli(app))  # every failure one line with its exit code (pipeline.cli.exits)


if __name__ == "__main__":
    main()
