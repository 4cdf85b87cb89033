"""``models.zero_shot``: what the config accepts, what it refuses (with key paths), and the model files it
checks before any model library is imported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipeline.cli.app import app
from pipeline.core.config import ConfigError, HfClipBackend, OpenClipBackend, load_config, parse_config

CAMERAS = [{"id": "a", "url": "rtsp://cam/s"}]
HF = {"kind": "hf_clip", "name_or_path": "openai/clip-vit-base-patch32"}


def config(zero_shot: dict[str, Any], **models: Any) -> dict[str, Any]:
    return {"cameras": CAMERAS, "models": {"zero_shot": zero_shot, **models}}


def problems(zero_shot: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(config(zero_shot))
    return caught.value.problems


def test_a_full_section_validates_with_its_defaults() -> None:
    cfg = parse_config(
        config(
            {
                "backend": {"kind": "open_clip", "model": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"},
                "scenes": {"street": ["a street", "a road"], "parking": ["a parking lot"]},
                "attributes": {"person": {"lying": ["a person lying down"], "standing": ["a person standing"]}},
                "activities": {"fight": ["people fighting"]},
            },
            allow_download=True,
        )
    )
    zs = cfg.models.zero_shot
    assert zs is not None and isinstance(zs.backend, OpenClipBackend)
    assert zs.scenes["street"] == ("a street", "a road") and zs.background == "normal"
    assert all("{}" in t for t in zs.templates) and len(zs.templates) > 1
    assert parse_config({"cameras": CAMERAS}).models.zero_shot is None  # off unless configured
    assert cfg.models.missing_files() == []


@pytest.mark.parametrize(
    ("zero_shot", "expected"),
    [
        ({"backend": HF}, "models.zero_shot: give at least one of scenes, attributes, activities"),
        ({"backend": HF, "scenes": {"street": []}}, "models.zero_shot.scenes.street: give at least one prompt"),
        ({"backend": HF, "scenes": {"street": ["a street", " "]}}, "models.zero_shot.scenes.street: a prompt is empty"),
        (
            {"backend": HF, "scenes": {"Street": ["a"], "street": ["b"]}},
            "models.zero_shot.scenes: labels 'Street' and 'street' differ only in case; give one",
        ),
        (
            {"backend": HF, "activities": {" fight": ["people fighting"]}},
            "models.zero_shot.activities: label ' fight': give a name without surrounding spaces",
        ),
        (
            {"backend": HF, "attributes": {"person": {}}},
            "models.zero_shot.attributes: person: give at least one label with its prompts",
        ),
        (
            {"backend": HF, "attributes": {"person": {"lying": []}}},
            "models.zero_shot.attributes.person.lying: give at least one prompt",
        ),
        (
            {"backend": HF, "activities": {"normal": ["nothing happening"]}},
            "models.zero_shot: background 'normal' is also an activity label; give another name",
        ),
        (
            {"backend": HF, "scenes": {"s": ["a"]}, "templates": ["a photo of"]},
            "models.zero_shot.templates: template [0] 'a photo of': write one {} where the prompt goes, "
            "no other braces",
        ),
        (
            {"backend": HF, "scenes": {"s": ["a"]}, "templates": ["{} and {}"]},
            "models.zero_shot.templates: template [0] '{} and {}': write one {} where the prompt goes",
        ),
        (
            {"backend": HF, "scenes": {"s": ["a"]}, "templates": ["{}", "{}"]},
            "models.zero_shot.templates: a template is repeated",
        ),
        ({"backend": HF, "scenes": {"s": ["a"]}, "scene_min_score": 1.5}, "models.zero_shot.scene_min_score: "),
        ({"backend": HF, "scenes": {"s": ["a"]}, "treshold": 0.5}, "models.zero_shot.treshold: unknown key"),
        (
            {"backend": {"kind": "hf_clip", "name_or_path": "x", "model": "y"}, "scenes": {"s": ["a"]}},
            "models.zero_shot.backend.model: unknown key",
        ),
        (
            {"backend": {"kind": "open_clip", "model": "local-dir:/m", "pretrained": "x"}, "scenes": {"s": ["a"]}},
            "models.zero_shot.backend: pretrained: leave it out with model local-dir:..., which holds its own weights",
        ),
        ({"backend": {"kind": "clip", "model": "x"}, "scenes": {"s": ["a"]}}, "models.zero_shot.backend: "),
        ({"scenes": {"s": ["a"]}}, "models.zero_shot.backend: Field required"),
    ],
)
def test_refused_sections_name_the_key_path(zero_shot: dict[str, Any], expected: str) -> None:
    found = problems(zero_shot)
    assert any(p.startswith(expected) for p in found), found


def test_yaml_errors_carry_the_line(tmp_path: Path) -> None:
    path = tmp_path / "vigil.yaml"
    path.write_text(
        "cameras:\n  - {id: a, url: 'rtsp://cam/s'}\nmodels:\n  zero_shot:\n"
        "    backend: {kind: hf_clip, name_or_path: /m}\n    scenes:\n      street: []\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == ["models.zero_shot.scenes.street (line 7): give at least one prompt"]


@pytest.mark.parametrize(
    ("backend", "allow_download", "expected"),
    [
        (HfClipBackend(name_or_path="openai/clip-vit-base-patch32"), True, None),
        (
            HfClipBackend(name_or_path="openai/clip-vit-base-patch32"),
            False,
            "models.zero_shot.backend.name_or_path: 'openai/clip-vit-base-patch32' is not a local folder and "
            "downloads are off (give a local folder — `vigil models fetch` saves one where there is internet: "
            "vigil models fetch hf:openai/clip-vit-base-patch32 --out DIR — or set models.allow_download: true)",
        ),
        (HfClipBackend(name_or_path="./models/clip"), True, "models.zero_shot.backend.name_or_path: folder not found"),
        (OpenClipBackend(model="ViT-B-32"), False, None),  # untrained: nothing to fetch
        (OpenClipBackend(model="ViT-B-32", pretrained="openai"), True, None),
        (
            OpenClipBackend(model="ViT-B-32", pretrained="openai"),
            False,
            "models.zero_shot.backend.pretrained: 'openai' is not a local checkpoint file and downloads are off "
            "(give a local checkpoint file — `vigil models fetch` saves one where there is internet: "
            "vigil models fetch open_clip:ViT-B-32:openai --out DIR",
        ),
        (
            OpenClipBackend(model="ViT-B-32", pretrained="weights/clip.safetensors"),
            True,
            "models.zero_shot.backend.pretrained: file not found: weights/clip.safetensors",
        ),
        (OpenClipBackend(model="hf-hub:org/clip"), True, None),
        (OpenClipBackend(model="hf-hub:org/clip"), False, "models.zero_shot.backend.model: 'hf-hub:org/clip' is not"),
        (
            OpenClipBackend(model="local-dir:/nope"),
            True,
            "models.zero_shot.backend.model: no open_clip_config.json in folder /nope",
        ),
    ],
)
def test_missing_model_files_and_hub_names_without_downloads(
    backend: OpenClipBackend | HfClipBackend, allow_download: bool, expected: str | None
) -> None:
    found = backend.source_problem(allow_download)
    if expected is None:
        assert found is None
    else:
        assert found is not None and found.startswith(expected), found


def test_local_model_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray workers do not share the CLI's working directory: relative paths travel absolute."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "oc").mkdir()
    (tmp_path / "oc" / "open_clip_config.json").write_text("{}")
    (tmp_path / "hf").mkdir()
    (tmp_path / "clip.pt").write_bytes(b"")
    scenes = {"s": ["a"]}
    cases = [
        ({"kind": "open_clip", "model": "local-dir:oc"}, "model", f"local-dir:{tmp_path / 'oc'}"),
        ({"kind": "open_clip", "model": "ViT-B-32", "pretrained": "clip.pt"}, "pretrained", str(tmp_path / "clip.pt")),
        ({"kind": "hf_clip", "name_or_path": "hf"}, "name_or_path", str(tmp_path / "hf")),
        ({"kind": "hf_clip", "name_or_path": "openai/clip"}, "name_or_path", "openai/clip"),  # a hub name stays
    ]
    for backend, key, expected in cases:
        zs = parse_config(config({"backend": backend, "scenes": scenes})).models.zero_shot
        assert zs is not None and getattr(zs.backend, key) == expected


def test_validate_config_reports_a_hub_name_without_downloads(tmp_path: Path) -> None:
    path = tmp_path / "vigil.yaml"
    path.write_text(
        "cameras:\n  - {id: a, url: 'rtsp://cam/s'}\nmodels:\n  zero_shot:\n"
        "    backend: {kind: hf_clip, name_or_path: openai/clip-vit-base-patch32}\n"
        "    activities: {fight: [people fighting]}\n"
    )
    result = CliRunner().invoke(app, ["validate-config", str(path)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1, result.output
    expected = "models.zero_shot.backend.name_or_path: 'openai/clip-vit-base-patch32' is not a local folder"
    assert expected in result.output


RUNNING = {
    "backend": {"kind": "hf_clip", "name_or_path": "/models/clip"},
    "scenes": {"street": ["a street"], "parking": ["a parking lot"]},
    "activities": {"fall": ["a person falls"]},
}


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            {"activitys": {"run": ["a person runs"]}},
            "models.zero_shot.activitys: unknown key; did you mean 'activities'?",
        ),
        ({"backend": HF}, "models.zero_shot.backend: the CLIP model is chosen at start"),
        ({"attributes": {"person": {"down": ["lying"]}}}, "models.zero_shot.attributes: cannot be added while running"),
        ({"scenes": {}}, "models.zero_shot.scenes: cannot be removed while running"),
        ({"background": "calm"}, "models.zero_shot.background: stays 'normal' while running"),
        ({"scenes": {"street": []}}, "models.zero_shot.scenes.street: give at least one prompt"),
        ({"models": {"zero_shot": {}}}, "give the keys of models.zero_shot (scenes, attributes, ...) at the top"),
    ],
)
def test_prompts_set_at_run_time_are_refused_with_the_key_path(section: dict[str, Any], expected: str) -> None:
    from pipeline.core.config import ZeroShotConfig
    from pipeline.core.config.loader import validate_prompts

    with pytest.raises(ConfigError) as caught:
        validate_prompts(section, ZeroShotConfig.model_validate(RUNNING))
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems


def test_prompts_set_at_run_time_replace_what_they_give_and_keep_the_rest(tmp_path: Path) -> None:
    from pipeline.core.config import ZeroShotConfig
    from pipeline.core.config.loader import load_prompts, validate_prompts

    running = ZeroShotConfig.model_validate({**RUNNING, "attributes": {"person": {"down": ["lying"]}}})
    path = tmp_path / "prompts.yaml"
    path.write_text("activities:\n  tumble: [somebody collapsing]\nscene_min_score: 0.5\n")
    new = validate_prompts(load_prompts(path, running), running)
    assert new.activities == {"tumble": ("somebody collapsing",)} and new.background == "normal"
    assert new.scene_min_score == 0.5
    assert (new.backend, new.scenes, new.attributes) == (running.backend, running.scenes, running.attributes)
    other_class = {"attributes": {"car": {"parked": ["a parked car"]}}}
    with pytest.raises(ConfigError, match=r"the classes \(person\) stay as they started"):
        validate_prompts(other_class, running)
    path.write_text("activities: [fall]\n")
    with pytest.raises(ConfigError, match=r"models.zero_shot.activities: Input should be a valid dictionary"):
        load_prompts(path, running)
