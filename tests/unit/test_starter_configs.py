"""The configs a user starts from pass their own first command, and the copies of them for Docker
Compose stay in step: configs/cameras.yaml (real cameras), deploy/cameras.compose.yaml (the same
under compose), deploy/vigil.compose.yaml (the demo under compose)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli.app import app
from pipeline.core.config import load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
CAMERAS = REPO / "configs" / "cameras.yaml"
CAMERAS_COMPOSE = REPO / "deploy" / "cameras.compose.yaml"
DEMO_COMPOSE = REPO / "deploy" / "vigil.compose.yaml"
DEMO_DETECTOR = REPO / "models" / "demo" / "detector.pt"


def raw(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def sample_video(where: Path) -> Path:
    """What `make demo` renders, for validation only (validate-config checks the file exists)."""
    video = where / ".vigil" / "demo" / "street-v2.mp4"
    video.parent.mkdir(parents=True, exist_ok=True)
    video.write_bytes(b"\0")
    return video


def test_cameras_yaml_validates_as_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh clone after `make demo`, nothing set in the environment: the README's first command."""
    monkeypatch.chdir(tmp_path)
    sample_video(tmp_path)
    result = CliRunner().invoke(app, ["validate-config", str(CAMERAS)])
    assert result.exit_code == 0, result.output
    assert "OK (1 camera)" in result.output and "sample: " in result.output
    cfg = load_config(CAMERAS)
    assert cfg.models.detector.weights == "yolo11n.pt" and cfg.models.allow_download
    assert cfg.redis.url is None


def test_cameras_yaml_takes_local_weights_and_a_sample_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    video = tmp_path / "mine.mp4"
    video.write_bytes(b"\0")
    monkeypatch.setenv("VIGIL_DETECTOR", str(DEMO_DETECTOR))
    monkeypatch.setenv("VIGIL_SAMPLE_VIDEO", str(video))
    result = CliRunner().invoke(app, ["validate-config", str(CAMERAS)])
    assert result.exit_code == 0, result.output
    cfg = load_config(CAMERAS)
    assert cfg.models.detector.weights == str(DEMO_DETECTOR)
    assert cfg.cameras[0].url == str(video)


@pytest.mark.parametrize("path", [CAMERAS, CAMERAS_COMPOSE], ids=["cameras.yaml", "cameras.compose.yaml"])
def test_cameras_yaml_runs_no_model_that_knows_nothing_of_real_video(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No model of the synthetic world, and no scene ViT or clip head without weights for real video:
    both are off, not run untrained under a placeholder label."""
    monkeypatch.setenv("REDIS_PASSWORD", "x")  # compose: the redis service's
    models = load_config(path).models
    assert "models/demo" not in models.detector.weights and models.crops is None
    assert models.classifier is None and models.temporal is None
    assert "untrained" not in path.read_text()


def commented_cameras(path: Path) -> list[dict[str, Any]]:
    """The commented-out camera entries under `cameras:` (``  # - id: ...`` and their key lines)."""
    section = re.split(r"\n[a-z]+:\n", path.read_text().split("\ncameras:\n", 1)[1], maxsplit=1)[0]
    lines = [line[4:] for line in section.splitlines() if re.match(r"  # (- |  )", line)]
    entries = yaml.safe_load("\n".join(lines))
    assert isinstance(entries, list) and entries
    return entries


@pytest.mark.parametrize("path", [CAMERAS, CAMERAS_COMPOSE], ids=["cameras.yaml", "cameras.compose.yaml"])
def test_every_commented_camera_is_a_valid_camera_once_uncommented(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FRONT_DOOR_PASSWORD", "DRIVEWAY_PASSWORD"):
        monkeypatch.setenv(name, "pw")
    entries = commented_cameras(path)
    cfg = parse_config({"cameras": entries})
    assert [c.id for c in cfg.cameras] == [e["id"] for e in entries]
    assert {cam.kind.value for cam in cfg.cameras} <= {"rtsp", "http", "webcam"}
    assert "rtsp://admin:pw@192.168.1.20:554/" in cfg.cameras[0].url  # CAMERA_USER defaults to admin


def test_compose_cameras_config_runs_the_models_and_events_of_cameras_yaml() -> None:
    """deploy/cameras.compose.yaml is configs/cameras.yaml for the compose network and the image's paths."""
    ours, compose = raw(CAMERAS), raw(CAMERAS_COMPOSE)
    assert compose["models"] == ours["models"]
    assert {k: v for k, v in compose["events"].items() if k != "spool"} == {
        k: v for k, v in ours["events"].items() if k != "spool"
    }


def test_compose_demo_config_runs_the_demo_pack_on_the_videos_the_demo_renders() -> None:
    """`vigil demo` renders the files configs/demo.yaml names (tests/integration/test_cli.py runs it);
    the compose demo names the same files and runs the same models."""
    demo, compose = raw(REPO / "configs" / "demo.yaml"), raw(DEMO_COMPOSE)
    assert [Path(c["url"]).name for c in compose["cameras"]] == [Path(c["url"]).name for c in demo["cameras"]]

    def in_the_image(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: in_the_image(v) for k, v in value.items()}
        return value.replace("models/demo}", "/opt/vigil/models/demo}") if isinstance(value, str) else value

    assert compose["models"] == in_the_image(demo["models"])


@pytest.mark.parametrize("path", [DEMO_COMPOSE, CAMERAS_COMPOSE], ids=["demo", "cameras"])
def test_compose_configs_validate_with_their_model_files(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", "x")
    monkeypatch.setenv("VIGIL_MODELS_DIR", str(REPO / "models" / "demo"))  # the image sets it to its copy
    cfg = load_config(path)
    assert cfg.redis.url == "redis://:x@redis:6379/0"
    assert cfg.metrics.host == "0.0.0.0"
    assert cfg.models.missing_files() == []
    assert str(cfg.events.spool.dir).startswith("/var/lib/vigil/")  # the vigil-data volume
