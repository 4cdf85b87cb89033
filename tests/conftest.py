"""Shared fixtures. Unit tests use only the cheap ones; integration fixtures start real servers."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.ml.synth.dataset import ensure_video

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# The key the tests' pipelines and `vigil cameras` sign camera commands with (inherited by the CLI
# processes they start), so no test writes a key file into the home directory.
os.environ.setdefault("VIGIL_CONTROL_KEY", secrets.token_hex(32))

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _away_from_the_repository(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test runs from an empty directory, as a user's commands do: a test that finds a file
    only because pytest was started from the repository root fails here, and nothing a test writes
    to a relative path lands in the checkout."""
    os.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session", autouse=True)
def _pipelines_of_the_tests_only(tmp_path_factory: pytest.TempPathFactory) -> None:
    """`vigil cameras` and `vigil events` find the pipelines recorded under $XDG_STATE_HOME, and take
    $VIGIL_REDIS_URL first: the tests' pipelines are recorded in a folder of their own (inherited by
    the CLI processes they start), never a developer's running Vigil or their shell's Redis."""
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    os.environ.pop("VIGIL_REDIS_URL", None)


@pytest.fixture(autouse=True)
def _process_role_restored() -> Iterator[None]:
    """A model built inside the test process labels the process's CPU and memory with its own role
    (as it does in its worker); the pytest process is the driver again for the next test."""
    from pipeline.core.metrics import PROCESS

    role = PROCESS.actor
    yield
    PROCESS.actor = role


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def street_mp4(video_dir: Path) -> Path:
    """10 s of a generated street scene, 10 fps, 640x360 H.264."""
    return ensure_video(video_dir / "street.mp4", seed=1, scene="street", seconds=10, fps=10)


@pytest.fixture(scope="session")
def short_mp4(video_dir: Path) -> Path:
    """2 s of a generated parking scene, 10 fps (20 frames)."""
    return ensure_video(video_dir / "short.mp4", seed=3, scene="parking", seconds=2, fps=10)
