"""Captions `vigil train clip` writes from the ground truth, and the evaluation prompts that measure the
trained model: every label has captions, the same draw gives the same caption, and no evaluation prompt
is (or contains) a training caption, so the held-out figures measure words the model never saw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.ml.synth.activities import ACTIVITIES
from pipeline.ml.synth.posture import POSTURES
from pipeline.ml.synth.scenes import SCENES
from pipeline.ml.training.captions import (
    NIGHT,
    OBJECT_STATES,
    Facts,
    FrameFacts,
    ObjectFacts,
    activity_captions,
    caption,
    captions_for,
    every_caption,
    every_facts,
)
from pipeline.ml.training.clip import load_eval_prompts

EVAL_PROMPTS = Path(__file__).resolve().parents[2] / "configs" / "zero-shot-eval.yaml"


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (
            FrameFacts.of("street", night=True, people=0, vehicles=2, bags=0, parked=False),
            "a street at night with two cars",
        ),
        (FrameFacts.of("corridor", night=False, people=0, vehicles=0, bags=0, parked=False), "an empty corridor"),
        (
            FrameFacts.of("parking", night=False, people=0, vehicles=9, bags=0, parked=True),
            "a car park with rows of parked cars",
        ),
        (
            FrameFacts.of("street", night=False, people=5, vehicles=0, bags=0, parked=False),
            "a crowd of people in a street",
        ),
        (ObjectFacts("person", "standing", "corridor", night=False), "a person standing"),
        (ObjectFacts("person", "walking", "street", night=False), "a person walking on the pavement"),
        (ObjectFacts("person", "down", "parking", night=True), "a person lying on the ground at night"),
        (ObjectFacts("person", "running", "street", night=False), "a person running"),
        (ObjectFacts("vehicle", "parked", "parking", night=False), "a parked car"),
        (ObjectFacts("vehicle", "moving", "street", night=True), "a car driving past at night"),
        (ObjectFacts("bag", "left", "corridor", night=False), "a bag left on the floor"),
        (ObjectFacts("bag", "carried", "street", night=False), "someone carrying a bag"),
        (ObjectFacts("person", "upright", scene=None, night=None), "a person on foot"),
    ],
)
def test_facts_get_the_captions_one_would_write(facts: Facts, expected: str) -> None:
    assert expected in captions_for(facts)


def test_every_label_has_many_captions_and_night_is_said_only_at_night() -> None:
    facts = list(every_facts())
    scenes = {f.scene for f in facts if isinstance(f, FrameFacts)}
    states = {(f.cls, f.state) for f in facts if isinstance(f, ObjectFacts)}
    assert scenes == set(SCENES)
    assert states == {(cls, s) for cls, all_states in OBJECT_STATES.items() for s in all_states}
    assert {s for c, s in states if c == "person"} == {"down", "upright", "standing", "walking", "running"}
    for f in facts:
        captions = captions_for(f)
        # Many wordings, not one sentence per label (fewer where the place and time are not known).
        assert len(captions) >= (50 if f.scene is not None else 8), (f, len(captions))
        said_night = [any(n.strip() in c for n in NIGHT) for c in captions]
        if not f.night:
            assert not any(said_night), f
        else:  # a frame's caption always says so; a crop's may leave the time out
            assert all(said_night) if isinstance(f, FrameFacts) else any(said_night), f


def test_the_same_draw_gives_the_same_caption() -> None:
    facts = [*every_facts()][::7]
    first = [caption(f, np.random.default_rng(3)) for f in facts]
    again = [caption(f, np.random.default_rng(3)) for f in facts]
    assert first == again
    rng = np.random.default_rng(3)
    drawn = {caption(facts[0], rng) for _ in range(40)}
    assert len(drawn) > 10  # successive draws vary the wording


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: FrameFacts("beach", False, 0, 0, 0, False), "unknown scene 'beach'"),
        (lambda: FrameFacts("street", False, 9, 0, 0, False), "counts out of range"),
        (lambda: FrameFacts("street", False, 0, 0, 0, True), "parked needs at least one vehicle"),
        (lambda: ObjectFacts("bag", "running", "street", False), "'bag' has no state 'running'"),
    ],
)
def test_facts_that_cannot_be_are_refused(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


def test_counts_above_the_cap_read_as_several() -> None:
    many = FrameFacts.of("street", night=False, people=12, vehicles=7, bags=5, parked=False)
    assert (many.people, many.vehicles, many.bags) == (4, 4, 2)
    assert FrameFacts.of("street", night=False, people=0, vehicles=0, bags=0, parked=True).parked is False


def test_eval_prompts_label_every_scene_posture_and_activity(tmp_path: Path) -> None:
    prompts = load_eval_prompts(EVAL_PROMPTS, tmp_path / "clip.pt")
    assert set(prompts.scenes) == set(SCENES)
    assert set(prompts.attributes) == {"person"} and set(prompts.attributes["person"]) == set(POSTURES)
    assert set(prompts.activities) == set(ACTIVITIES) - {"normal"} and prompts.background == "normal"


def test_no_eval_prompt_is_or_contains_a_training_caption(tmp_path: Path) -> None:
    """Neither as written nor inside any of the prompt templates the model is used with."""
    prompts = load_eval_prompts(EVAL_PROMPTS, tmp_path / "clip.pt")
    texts = [
        *(p for ps in prompts.scenes.values() for p in ps),
        *(p for labels in prompts.attributes.values() for ps in labels.values() for p in ps),
        *(p for ps in prompts.activities.values() for p in ps),
    ]
    written = {t.format(p).lower() for p in texts for t in prompts.templates}
    activities = {c.lower() for cs in activity_captions().values() for c in cs}  # the text-space head's
    captions = {c.lower() for c in every_caption()} | activities
    assert len(captions) > 10_000 and activities <= captions
    for text in written:
        inside = {text[i:j] for i in range(len(text)) for j in range(i + 1, len(text) + 1)}
        assert not inside & captions, (text, sorted(inside & captions))
