"""The compose `vigil` service, run outside Docker (Docker cannot run here): its command and
environment from deploy/docker-compose.yml, the image's environment and default command from
deploy/Dockerfile, every container path mapped to what compose mounts there (the deploy/ files, the
vigil-data volume as a temporary folder, the repository where the image copies it), and Redis at a
real redis-server with a password instead of the `redis` service. Nothing else is changed."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from pipeline.events.publisher import EVENTS_STREAM, camera_stream
from pipeline.runtime.redis_server import EmbeddedRedis, free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
VIGIL = [sys.executable, "-m", "pipeline.cli.app"]
IMAGE_WORKDIR = "/opt/vigil"  # where deploy/Dockerfile copies the repository


def dockerfile() -> tuple[dict[str, str], list[str], list[str]]:
    """The image's ENV, ENTRYPOINT and CMD."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV (.+)$", text, re.M):
        env.update(pair.split("=", 1) for pair in line.split())
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1))  # type: ignore[union-attr]
    cmd = json.loads(re.search(r"^CMD (.+)$", text, re.M).group(1))  # type: ignore[union-attr]
    return env, entrypoint, cmd


def compose_value(value: str, environ: dict[str, str]) -> str:
    """Compose's interpolation of ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?message}``."""

    def repl(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if environ.get(name):
            return environ[name]
        assert op != ":?", f"compose refuses to start without {name}"
        return arg if op == ":-" else ""

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", repl, value)


class Container:
    """Container paths of the vigil service mapped to this machine."""

    def __init__(self, service: dict[str, object], volumes_root: Path) -> None:
        self.paths = {IMAGE_WORKDIR: REPO}
        for volume in service["volumes"]:  # type: ignore[attr-defined]
            source, target = str(volume).split(":")[:2]
            self.paths[target] = (DEPLOY / source).resolve() if source.startswith(".") else volumes_root / source

    def host(self, value: str) -> str:
        for target, source in sorted(self.paths.items(), key=lambda kv: -len(kv[0])):
            if value == target or value.startswith(target + "/"):
                return str(source) + value[len(target) :]
        return value


@pytest.mark.timeout(240)
@pytest.mark.parametrize("variant", ["demo", "your-cameras"])
def test_the_compose_vigil_service_publishes_events(variant: str, tmp_path: Path, street_mp4: Path) -> None:
    service = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]["vigil"]
    image_env, entrypoint, image_cmd = dockerfile()
    assert entrypoint == ["vigil"]
    # demo: the service as shipped; your cameras: its `command:` line deleted, the image's CMD runs.
    args = service["command"] if variant == "demo" else image_cmd
    container = Container(service, tmp_path / "volumes")
    state = Path(container.host("/var/lib/vigil"))
    state.mkdir(parents=True)
    # The vigil-data volume after a first start: the demo's videos are there (short ones here).
    config_demo = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    for cam in config_demo["cameras"]:
        (state / "demo").mkdir(exist_ok=True)
        shutil.copy(street_mp4, state / "demo" / Path(cam["url"]).name)

    password = secrets.token_hex(8)
    env = dict(os.environ)
    env.update({k: container.host(v) for k, v in image_env.items()})
    env.update({k: compose_value(str(v), {"REDIS_PASSWORD": password}) for k, v in service["environment"].items()})
    with EmbeddedRedis(password=password) as server:
        env |= {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(server.port)}  # the `redis` service's host and port
        if variant == "your-cameras":
            env["VIGIL_DETECTOR"] = str(REPO / "models" / "demo" / "detector.pt")  # yolo11n.pt is not reachable here
        command = [*VIGIL, *(container.host(a) for a in args), "--duration", "10", "--metrics-port", str(free_port())]
        run = subprocess.run(command, capture_output=True, text=True, env=env, cwd=state, timeout=200)
        output = run.stdout + run.stderr
        assert run.returncode == 0, output
        assert "Traceback" not in output and password not in output
        client = redis.Redis.from_url(server.url, decode_responses=True)
        entries: Any = client.xrange(EVENTS_STREAM)
        events = [json.loads(fields["event"]) for _, fields in entries]
        cameras = ["street", "parking"] if variant == "demo" else ["sample"]
        for cam in cameras:
            assert client.xlen(camera_stream(cam)) > 0, f"no events from {cam}:\n{output}"
        assert {e["camera_id"] for e in events} == set(cameras)
        if variant == "your-cameras":  # the untrained clip head raises nothing
            assert {e["kind"] for e in events} == {"object"}
        client.close()
    assert (state / "spool").is_dir(), "the outbox lives in the vigil-data volume"
