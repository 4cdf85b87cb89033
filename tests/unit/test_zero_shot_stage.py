"""models.zero_shot in the pipeline: the scene and crop classifiers it makes, in place of the ViTs,
on a tiny CLIP model saved the way a user's weights are (tests/support/tiny_clip.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.core.config import ModelsConfig, ZeroShotCrops, ZeroShotScenes
from tests.support import tiny_clip
from workers.classifier import Classifier, CropClassifier
from workers.zero_shot import UNKNOWN, ZeroShotCropClassifier, ZeroShotSceneClassifier, classifier_class


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_clip.save_hf_clip(tmp_path_factory.mktemp("clip") / "hf")


def models(folder: Path, **zero_shot: Any) -> ModelsConfig:
    section = {"backend": {"kind": "hf_clip", "name_or_path": str(folder)}, **zero_shot}
    return ModelsConfig.model_validate({"zero_shot": section, "crops": {"classes": ["person"], "max_batch": 4}})


SCENES = {"street": ["a street with cars"], "corridor": ["an empty corridor indoors"]}
PERSON = {"person": {"down": ["a person lying on the ground"], "upright": ["a person standing"]}}


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (48, 64, 3), np.uint8) for _ in range(n)]


def test_without_zero_shot_labels_the_vits_run() -> None:
    cfg = ModelsConfig.model_validate({"crops": {"classes": ["person"]}})
    assert cfg.scene_model is cfg.classifier and cfg.crop_model is cfg.crops
    assert classifier_class(cfg.classifier) is Classifier and classifier_class(cfg.crops) is CropClassifier


def test_scenes_and_attributes_take_the_vits_places_with_their_batching(hf_folder: Path) -> None:
    cfg = models(hf_folder, scenes=SCENES, attributes={**PERSON, "bag": {"left": ["a bag on its own"]}})
    scene, crop = cfg.scene_model, cfg.crop_model
    assert isinstance(scene, ZeroShotScenes) and scene.labels == ("street", "corridor")
    assert isinstance(crop, ZeroShotCrops) and crop.classes == ("person", "bag")
    assert crop.labels == ("down", "upright", "left") and crop.max_batch == 4  # the crops section's batching
    assert classifier_class(scene) is ZeroShotSceneClassifier and classifier_class(crop) is ZeroShotCropClassifier
    only_attributes = models(hf_folder, attributes=PERSON)
    assert only_attributes.scene_model is only_attributes.classifier  # no scene prompts: the scene ViT stays


def test_each_frame_gets_a_prompt_label_and_the_clip_embedding(hf_folder: Path) -> None:
    scene = models(hf_folder, scenes=SCENES, scene_min_score=0.0).scene_model
    assert scene is not None
    stage = ZeroShotSceneClassifier(scene, batching=False)
    out = stage.classify_batch(frames(3))
    assert [r.label in SCENES for r in out] == [True] * 3
    emb = stage.clip.embed_images([np.ascontiguousarray(f[..., ::-1]) for f in frames(3)])
    assert np.allclose(np.stack([r.embedding for r in out]), emb, atol=1e-5)  # the frame's, as RGB
    probs = stage.bank.scores(emb)
    assert [r.confidence for r in out] == pytest.approx(probs.max(axis=1).tolist(), abs=1e-6)
    assert stage.embedding_dim() == emb.shape[1]


def test_below_the_minimum_score_a_scene_is_unknown_and_a_crop_unlabelled(hf_folder: Path) -> None:
    cfg = models(hf_folder, scenes=SCENES, attributes=PERSON, scene_min_score=1.0, attribute_min_score=1.0)
    assert cfg.scene_model is not None and cfg.crop_model is not None
    scenes = ZeroShotSceneClassifier(cfg.scene_model, batching=False).classify_batch(frames(2))
    assert [r.label for r in scenes] == [UNKNOWN, UNKNOWN]
    crops = ZeroShotCropClassifier(cfg.crop_model, batching=True)  # the batcher's thread is a daemon
    assert [s.label for s in crops.classify_crops(frames(2, seed=1))] == ["", ""]


def test_new_prompts_relabel_the_next_batch(hf_folder: Path) -> None:
    """Prompts set at run time: the same frames get the new labels and their embedding stays the frame's."""
    cfg = models(hf_folder, scenes=SCENES, attributes=PERSON, scene_min_score=0.0, attribute_min_score=0.0)
    assert cfg.scene_model is not None and cfg.crop_model is not None and cfg.zero_shot is not None
    scenes, crops = ZeroShotSceneClassifier(cfg.scene_model, batching=False), ZeroShotCropClassifier(cfg.crop_model)
    before = scenes.classify_batch(frames(3))
    renamed = {"road": SCENES["street"], "hall": SCENES["corridor"], "sky": ["the open sky"]}
    people = {"person": {"lying": ["someone flat on the floor"], "standing": ["someone on their feet"]}}
    zs = cfg.zero_shot.model_copy(update={"scenes": renamed, "attributes": people})
    scenes.set_prompts(zs)
    crops.set_prompts(zs)
    after = scenes.classify_batch(frames(3))
    assert {r.label for r in after} <= set(renamed) and scenes.bank.labels == ("road", "hall", "sky")
    assert np.allclose(np.stack([r.embedding for r in after]), np.stack([r.embedding for r in before]), atol=1e-5)
    assert {s.label for s in crops.scores(crops.classify_batch(frames(2, seed=1)))} <= {"lying", "standing"}
