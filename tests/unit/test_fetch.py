"""``vigil models fetch``: local sources saved into --out and loadable from there, with the config that
points at the copy; malformed names and an unreachable hub as one line with their exit codes.
Downloads themselves need the internet and are not tested here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from pipeline.cli.app import app
from pipeline.cli.exits import run_cli
from pipeline.core.config import parse_config
from tests.support import tiny_clip
from workers.zero_shot import load_clip

REPO = Path(__file__).resolve().parents[2]
FRAMES = [np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8) for i in range(2)]


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fetch(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run_cli(app, ["models", "fetch", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def printed_config(out: str) -> dict[str, Any]:
    """The config snippet printed under the `saved ...` line, as YAML."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("saved ")) + 1
    snippet = [line for line in lines[start:] if line.startswith("  ") and not line.startswith("  environment:")]
    loaded: dict[str, Any] = yaml.safe_load("\n".join(snippet))
    return loaded


def zero_shot_backend(out: str) -> Any:
    """The printed config, completed with prompts, validated as a config file's would be."""
    models = printed_config(out)["models"]
    models["zero_shot"]["scenes"] = {"street": ["a street"]}
    cfg = parse_config({"cameras": [{"id": "a", "url": "rtsp://cam/s"}], "models": models})
    assert cfg.models.missing_files() == []
    assert cfg.models.zero_shot is not None
    return cfg.models.zero_shot.backend


def test_a_transformers_clip_folder_is_saved_and_loads_from_the_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tiny_clip.save_hf_clip(tmp_path / "tiny-clip")
    code, out, err = fetch(capsys, f"hf:{source}", "--out", str(tmp_path / "saved"))
    assert code == 0, err
    assert f"saved hf:{source} -> {tmp_path / 'saved' / 'tiny-clip'}" in out
    backend = zero_shot_backend(out)
    assert backend.name_or_path == str(tmp_path / "saved" / "tiny-clip")
    original = load_clip(parse_backend({"kind": "hf_clip", "name_or_path": str(source)}), allow_download=False)
    copy = load_clip(backend, allow_download=False)
    np.testing.assert_allclose(copy.embed_images(FRAMES), original.embed_images(FRAMES), atol=1e-6)
    np.testing.assert_allclose(copy.embed_texts(["a car"]), original.embed_texts(["a car"]), atol=1e-6)


@pytest.mark.parametrize("form", ["local-dir", "checkpoint"])
def test_an_open_clip_model_is_saved_as_a_local_dir_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str
) -> None:
    if form == "local-dir":
        source = tiny_clip.save_open_clip_dir(tmp_path / "tiny-oc")
        name, original = f"open_clip:local-dir:{source}", {"kind": "open_clip", "model": f"local-dir:{source}"}
    else:
        source = tiny_clip.save_open_clip_checkpoint(tmp_path / "tiny.pt")
        arch = tiny_clip.OPEN_CLIP_ARCH
        name, original = f"open_clip:{arch}:{source}", {"kind": "open_clip", "model": arch, "pretrained": str(source)}
    code, out, err = fetch(capsys, name, "--out", str(tmp_path / "saved"))
    assert code == 0, err
    backend = zero_shot_backend(out)
    folder = Path(backend.model.removeprefix("local-dir:"))
    assert folder.parent == tmp_path / "saved"
    assert sorted(p.name for p in folder.iterdir()) == ["open_clip_config.json", "open_clip_model.safetensors"]
    copy = load_clip(backend, allow_download=False)
    reference = load_clip(parse_backend(original), allow_download=False)
    np.testing.assert_allclose(copy.embed_images(FRAMES), reference.embed_images(FRAMES), atol=1e-6)


def test_local_detector_weights_are_copied(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = REPO / "models" / "demo" / "detector.pt"
    code, out, err = fetch(capsys, str(weights), "--out", str(tmp_path / "saved"))
    assert code == 0, err
    copy = tmp_path / "saved" / "detector.pt"
    assert copy.read_bytes() == weights.read_bytes()
    assert printed_config(out) == {"models": {"detector": {"weights": str(copy)}}}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("foo:bar", "'foo:bar': unknown prefix 'foo'"),
        ("./nope/best.pt", "'./nope/best.pt': file not found"),
        ("yolo11n", "'yolo11n': ultralytics weights end in .pt"),
        ("hf:./nope/clip", "'hf:./nope/clip': folder not found: ./nope/clip"),
        ("open_clip:ViT-B-32", "'open_clip:ViT-B-32': give open_clip:MODEL:TAG"),
        ("open_clip:ViT-B-32:/nope/clip.pt", "checkpoint file not found: /nope/clip.pt"),
        ("open_clip:local-dir:/nope", "no open_clip_config.json in folder /nope"),
        ("timm:", "'timm:': give a name after timm:"),
    ],
)
def test_a_malformed_name_is_one_line_exit_2_before_any_download(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, message: str
) -> None:
    code, out, err = fetch(capsys, "hf:openai/clip-vit-base-patch32", name, "--out", str(tmp_path / "saved"))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert out == "" and not (tmp_path / "saved").exists()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("hf:openai/clip-vit-base-patch32", "cannot reach the Hugging Face hub (http://127.0.0.1:"),
        ("yolo11n.pt", "yolo11n.pt: cannot save it: Download failure for https://github.com/"),
    ],
)
def test_an_unreachable_hub_is_one_line_exit_1(tmp_path: Path, name: str, message: str) -> None:
    """A fresh `vigil` process with downloads allowed, whose hub and proxy are a closed local port."""
    port = closed_port()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "YOLO_OFFLINE", "NO_PROXY", "no_proxy")}
    env.update(
        HF_ENDPOINT=f"http://127.0.0.1:{port}", HTTPS_PROXY=f"http://127.0.0.1:{port}", YOLO_CONFIG_DIR=str(tmp_path)
    )
    child = subprocess.run(
        [sys.executable, "-c", "from pipeline.cli.app import main; main()", "models", "fetch", name, "--out", "out"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=100,
    )
    lines = child.stderr.strip().splitlines()
    assert child.returncode == 1, child.stderr
    assert len(lines) == 1 and lines[0].startswith(f"error: {name}: ") and message in lines[0], child.stderr
    assert "Traceback" not in child.stdout + child.stderr
    assert not any(p.is_file() for p in (tmp_path / "out").rglob("*"))


def parse_backend(backend: dict[str, Any]) -> Any:
    cfg = parse_config(
        {
            "cameras": [{"id": "a", "url": "rtsp://cam/s"}],
            "models": {"zero_shot": {"backend": backend, "scenes": {"s": ["a"]}}},
        }
    )
    assert cfg.models.zero_shot is not None
    return cfg.models.zero_shot.backend
