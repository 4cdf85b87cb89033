"""Real parts: a redis-server per test module, one Ray for the session, a GStreamer RTSP server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.runtime.redis_server import EmbeddedRedis
from tests.support.rtsp import SYSTEM_PYTHON, RtspServer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[EmbeddedRedis]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run `make setup` as root (apt-get install redis-server)")
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    import ray

    from pipeline.core.config import RayConfig
    from pipeline.runtime.driver import local_ray_settings, offline_env

    # Camera hosts claim cores (ray.pin_hosts) with lock files: the tests' own, not those of a
    # Vigil running beside them on this machine.
    env = offline_env(allow_download=False) | {"VIGIL_CORE_LOCKS": str(tmp_path_factory.mktemp("core-locks"))}
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        runtime_env={"env_vars": env},
        logging_level="WARNING",
        # Ray's own settings as pipeline.runtime.driver.init_ray starts it for users (frames travel inside
        # calls, no prestarted workers, no Ray-internal metrics): Ray refuses a setting it does not know.
        _system_config=local_ray_settings(RayConfig()),
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def rtsp_server(street_mp4: Path) -> Iterator[RtspServer]:
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.fail("GStreamer RTSP server missing: run `make setup` as root (see scripts/install-system-deps.sh)")
    server = RtspServer(street_mp4)
    server.start()
    yield server
    server.close()


RTSP_USER, RTSP_PASSWORD = "viewer", "pa55-Secret"


@pytest.fixture(scope="module")
def auth_rtsp_server(street_mp4: Path) -> Iterator[RtspServer]:
    """An RTSP server that wants ``RTSP_USER`` / ``RTSP_PASSWORD``."""
    server = RtspServer(street_mp4, user=RTSP_USER, password=RTSP_PASSWORD)
    server.start()
    yield server
    server.close()


@pytest.fixture()
def vigil_cli() -> list[str]:
    return [sys.executable, "-m", "pipeline.cli.app"]
