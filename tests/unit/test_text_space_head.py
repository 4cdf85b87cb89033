"""A clip head trained into the sentence encoder's space: it labels windows with its own training
labels, or with any activities written as prompts (models.zero_shot.activities)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.core.config import LSTMHead, TemporalConfig, ZeroShotActivities, ZeroShotConfig
from workers import clip_head as head_mod
from workers.clip_head import TEXT_SPACE, ClipHead, TextSpace
from workers.zero_shot import activity_head

IN_DIM, DIM = 12, 8
LABELS = ("normal", "fall", "run")
BASIS = np.eye(DIM, dtype=np.float32)  # the training labels' embeddings: normal e0, fall e1, run e2


def head_towards(tmp_path: Path, direction: np.ndarray, text: bool = True) -> Path:
    """A head whose every window maps onto ``direction`` (its output layer is just that bias)."""
    cfg = LSTMHead(hidden_size=8, embedding_features=0)
    model = head_mod.build_head(cfg, IN_DIM, DIM if text else len(LABELS))
    with torch.no_grad():
        model.out.weight.zero_()
        model.out.bias.copy_(torch.from_numpy(direction if text else np.array([0.0, 5.0, 0.0], np.float32)))
    path = tmp_path / "head.pt"
    space = TextSpace(TEXT_SPACE, BASIS[: len(LABELS)], 50.0) if text else None
    head_mod.save_checkpoint(path, model, cfg, LABELS, IN_DIM, 0, space)
    return path


def label(path: Path, cfg: TemporalConfig | None = None) -> tuple[str, float]:
    cfg = cfg or TemporalConfig(weights=path)
    out = ClipHead(cfg.model_copy(update={"weights": path}), IN_DIM, in_host=True).classify_batch(
        [np.zeros((16, IN_DIM), np.float32)]
    )[0]
    return out.label, out.confidence


def prompts(min_score: float = 0.0) -> ZeroShotActivities:
    """Two activities written as prompts, embedded (here by hand) into the head's space."""
    return ZeroShotActivities(
        labels=("tumble", "sprint"),
        space=TEXT_SPACE,
        prompt_embeddings=[BASIS[3].tolist(), BASIS[4].tolist()],
        background="quiet",
        min_score=min_score,
    )


def test_without_prompts_a_text_space_head_labels_with_its_training_labels(tmp_path: Path) -> None:
    assert label(head_towards(tmp_path, BASIS[1]))[0] == "fall"
    direction = BASIS[2] + 0.2 * BASIS[0]
    cfg = TemporalConfig(weights=head_towards(tmp_path, direction))
    out = ClipHead(cfg, IN_DIM, in_host=True).classify_batch([np.zeros((16, IN_DIM), np.float32)])[0]
    assert out.embedding is not None  # the window's point in the text space: what event search compares
    assert np.allclose(out.embedding, direction / np.linalg.norm(direction), atol=1e-6)
    assert label(head_towards(tmp_path, BASIS[2] + 0.2 * BASIS[0]))[0] == "run"


def test_prompts_name_the_activities_and_the_heads_own_normal_is_the_background(tmp_path: Path) -> None:
    assert label(head_towards(tmp_path, BASIS[3]), prompts())[0] == "tumble"
    assert label(head_towards(tmp_path, BASIS[4] + 0.3 * BASIS[3]), prompts())[0] == "sprint"
    assert label(head_towards(tmp_path, BASIS[0]), prompts())[0] == "quiet"  # its "normal": the background


def test_below_the_minimum_score_a_window_is_the_background(tmp_path: Path) -> None:
    between = BASIS[3] + BASIS[4]  # as close to both prompts: 0.5 each at best
    assert label(head_towards(tmp_path, between), prompts(min_score=0.0))[0] in ("tumble", "sprint")
    assert label(head_towards(tmp_path, between), prompts(min_score=0.9))[0] == "quiet"


def test_new_prompts_label_the_next_window(tmp_path: Path) -> None:
    """Activity prompts set at run time: a head started with prompts takes new ones, its own normal
    still the background; a head started with its trained labels refuses them."""
    path = head_towards(tmp_path, BASIS[5])
    head = ClipHead(prompts().model_copy(update={"weights": path}), IN_DIM, in_host=True)
    window = [np.zeros((16, IN_DIM), np.float32)]
    assert head.classify_batch(window)[0].label in ("tumble", "sprint")
    head.set_prompts(
        prompts().model_copy(
            update={"labels": ("dash", "slump"), "prompt_embeddings": [BASIS[5].tolist(), BASIS[6].tolist()],
                    "background": "calm"}
        )
    )  # fmt: skip
    assert head.classify_batch(window)[0].label == "dash"
    assert head.labels == ("dash", "slump", "calm")
    trained = ClipHead(TemporalConfig(weights=path), IN_DIM, in_host=True)
    with pytest.raises(ValueError, match="trained labels, not activity prompts"):
        trained.set_prompts(prompts())


def test_prompts_need_a_head_trained_into_the_text_space(tmp_path: Path) -> None:
    path = head_towards(tmp_path, BASIS[1], text=False)
    assert label(path)[0] == "fall"  # a head with fixed labels still labels as trained
    with pytest.raises(ValueError, match="trained into the text space"):
        label(path, prompts())


def test_activity_prompts_are_embedded_once_into_the_sentence_space() -> None:
    zs = ZeroShotConfig.model_validate(
        {
            "backend": {"kind": "hf_clip", "name_or_path": "/nonexistent"},
            "activities": {"fall": ["someone falls over"], "run": ["someone runs"]},
            "templates": ["{}"],
            "background": "calm",
            "activity_min_score": 0.4,
        }
    )
    temporal = TemporalConfig(window=8, stride=4)
    assert activity_head(temporal, None) is temporal
    cfg = activity_head(temporal, zs)
    assert isinstance(cfg, ZeroShotActivities)
    assert (cfg.labels, cfg.background, cfg.min_score, cfg.window, cfg.space) == (
        ("fall", "run"),
        "calm",
        0.4,
        8,
        TEXT_SPACE,
    )
    emb = np.asarray(cfg.prompt_embeddings)
    assert emb.shape == (2, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # Words that mean the same land near each other: a paraphrase is closer to its own activity.
    from workers.clip_tower import MINILM, load_text_encoder

    q = load_text_encoder(MINILM).encode(["a person tumbling to the ground"]).numpy()[0]
    assert float(q @ emb[0]) > float(q @ emb[1])


def test_prompt_embeddings_are_computed_once_and_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workers import clip_tower
    from workers.zero_shot import activity_embeddings

    activities, templates = {"fall": ["someone falls over"], "run": ["someone runs"]}, ["{}"]
    first = activity_embeddings(activities, templates, cache=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 1

    def no_encoder(name: str, device: str = "cpu") -> None:
        raise AssertionError("the cached embeddings were not used")

    monkeypatch.setattr(clip_tower, "load_text_encoder", no_encoder)
    assert np.array_equal(activity_embeddings(activities, templates, cache=tmp_path), first)
    with pytest.raises(AssertionError, match="not used"):  # other words: computed afresh
        activity_embeddings({**activities, "run": ["someone sprints"]}, templates, cache=tmp_path)
