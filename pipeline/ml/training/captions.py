"""Captions for ``vigil train clip``, written from a ``vigil synth`` video's ground truth.

What an image shows is a ``FrameFacts`` (a whole frame: scene, night or day, how many people,
vehicles and bags) or an ``ObjectFacts`` (a crop: the object's class and state, and where it is).
Each set of facts has many captions (``captions_for``): varied nouns, times of day and sentence
shapes, so the image tower learns what the words mean rather than one sentence per label. Every
caption is a finite combination of the lists below; ``every_caption`` enumerates them all (the
evaluation prompts in configs/zero-shot-eval.yaml are checked against it)::

    facts = FrameFacts(scene="street", night=True, people=0, vehicles=2, bags=0, parked=False)
    caption(facts, np.random.default_rng(0))  # e.g. "a road in town at night with two cars"
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pipeline.ml.synth.scenes import SCENES

MAX_COUNT = 4  # counts are kept up to this ("four or more" reads as "several")
MAX_BAGS = 2

# Each scene's nouns, with their article.
PLACES = {
    "street": ("a street", "a city street", "a road in town", "a town street", "a street with shops", "a high street"),
    "parking": (
        "a car park",
        "a parking lot",
        "a parking area",
        "an open-air car park",
        "an outdoor parking lot",
        "a car park with marked bays",
    ),
    "corridor": (
        "a corridor",
        "a hallway",
        "an indoor corridor",
        "a long hallway",
        "a corridor in a building",
        "a hallway with doors",
    ),
}
DAY = ("", " during the day", " in daylight", " by day", " in the daytime")
NIGHT = (" at night", " after dark", " at nighttime", " in the dark", " late at night")

PEOPLE = {
    1: ("one person", "a single person", "a lone pedestrian"),
    2: ("two people", "a couple of people", "two pedestrians"),
    3: ("three people", "a few people", "three pedestrians"),
    4: ("several people", "a group of people", "a crowd of people", "many people"),
}
VEHICLES = {
    1: ("one car", "a single car", "a vehicle"),
    2: ("two cars", "a couple of cars", "two vehicles"),
    3: ("three cars", "a few cars", "three vehicles"),
    4: ("several cars", "many cars", "lots of vehicles"),
}
PARKED_VEHICLES = {
    1: ("one parked car", "a single parked car", "a parked vehicle"),
    2: ("two parked cars", "a couple of parked cars", "two parked vehicles"),
    3: ("three parked cars", "a few parked cars", "three parked vehicles"),
    4: ("several parked cars", "rows of parked cars", "lots of parked vehicles"),
}
BAGS = {1: ("a bag", "one bag", "a piece of luggage"), 2: ("two bags", "some bags", "a few bags")}

# A whole frame: {place}{time}, and {things} where it holds something.
FRAME_TEMPLATES = ("{place}{time} with {things}", "{things} in {place}{time}", "a view of {place}{time} with {things}")
PLAIN_TEMPLATES = ("{place}{time}", "a camera view of {place}{time}")
NOBODY_TEMPLATES = ("{place}{time} with nobody in it", "{place}{time} with no one around")
EMPTY_TEMPLATES = ("an empty {noun}{time}", "a deserted {noun}{time}", "a quiet {noun}{time} with nothing in it")

# An object crop: its class and state.
OBJECT_STATES = {
    "person": ("standing", "walking", "running", "down", "upright"),  # upright: on foot, motion unknown
    "vehicle": ("parked", "moving"),
    "bag": ("carried", "left"),
}
OBJECTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("person", "standing"): (
        "a person standing",
        "someone standing still",
        "a person waiting",
        "a man standing",
        "a woman standing",
        "a person standing around",
    ),
    ("person", "walking"): (
        "a person walking",
        "someone walking",
        "a pedestrian walking",
        "a man walking",
        "a woman walking",
        "a person walking past",
    ),
    ("person", "running"): ("a person running", "someone running fast", "a man running", "a woman running", "a runner"),
    ("person", "upright"): ("a person on foot", "a person standing up", "someone who is upright", "a man on foot"),
    ("person", "down"): (
        "a person lying on the ground",
        "someone lying on the floor",
        "a person who has fallen over",
        "a fallen person",
        "a man lying down",
        "a woman lying on the ground",
    ),
    ("vehicle", "parked"): ("a parked car", "a car parked in a bay", "a stationary car", "a parked vehicle"),
    ("vehicle", "moving"): ("a moving car", "a car driving past", "a car driving along", "a vehicle on the move"),
    ("bag", "carried"): ("a bag being carried", "someone carrying a bag", "a person with a bag", "a bag in a hand"),
    ("bag", "left"): (
        "a bag left on the floor",
        "a bag left on the ground",
        "a bag lying on the ground",
        "a bag on its own",
        "a bag nobody is holding",
    ),
}
# Phrases that only fit one scene.
OBJECTS_IN_SCENE: dict[tuple[str, str, str | None], tuple[str, ...]] = {
    ("person", "walking", "street"): ("a person walking on the pavement",),
    ("person", "walking", "corridor"): ("a person walking down a corridor",),
    ("person", "walking", "parking"): ("a person walking through a car park",),
    ("person", "standing", "street"): ("a person standing on the pavement",),
    ("vehicle", "moving", "street"): ("a car driving along the road",),
    ("vehicle", "parked", "parking"): ("a car parked in a parking space",),
}
OBJECT_TEMPLATES = (
    "{thing}",
    "{thing}{time}",
    "{thing} in {place}",
    "a close-up of {thing}",
    "a close-up of {thing}{time}",
)


@dataclass(frozen=True)
class FrameFacts:
    """What a whole frame shows. Counts are capped (``MAX_COUNT``, ``MAX_BAGS``); ``parked``: every
    vehicle in it stands still (False where there are none)."""

    scene: str
    night: bool
    people: int
    vehicles: int
    bags: int
    parked: bool

    def __post_init__(self) -> None:
        if self.scene not in SCENES:
            raise ValueError(f"unknown scene {self.scene!r}; one of {', '.join(SCENES)}")
        if not (0 <= self.people <= MAX_COUNT and 0 <= self.vehicles <= MAX_COUNT and 0 <= self.bags <= MAX_BAGS):
            raise ValueError(f"counts out of range (cap them with FrameFacts.of): {self}")
        if self.parked and not self.vehicles:
            raise ValueError("parked needs at least one vehicle")

    @classmethod
    def of(cls, scene: str, night: bool, people: int, vehicles: int, bags: int, parked: bool) -> FrameFacts:
        """Facts from raw counts, capped."""
        vehicles = min(vehicles, MAX_COUNT)
        return cls(scene, night, min(people, MAX_COUNT), vehicles, min(bags, MAX_BAGS), parked and vehicles > 0)


@dataclass(frozen=True)
class ObjectFacts:
    """What an object crop shows: ``cls`` (person, vehicle, bag) in ``state`` (``OBJECT_STATES``), in
    ``scene`` at night or by day (None: not known, and not said)."""

    cls: str
    state: str
    scene: str | None
    night: bool | None

    def __post_init__(self) -> None:
        if self.state not in OBJECT_STATES.get(self.cls, ()):
            raise ValueError(f"{self.cls!r} has no state {self.state!r}")
        if self.scene is not None and self.scene not in SCENES:
            raise ValueError(f"unknown scene {self.scene!r}; one of {', '.join(SCENES)}")


Facts = FrameFacts | ObjectFacts


def _things(facts: FrameFacts) -> list[str]:
    """Phrases for what the frame holds: each kind of object on its own, and people with vehicles."""
    vehicles = (PARKED_VEHICLES if facts.parked else VEHICLES).get(facts.vehicles, ())
    people = PEOPLE.get(facts.people, ())
    out = [*people, *vehicles, *BAGS.get(facts.bags, ())]
    if people and vehicles:
        out.append(f"{people[0]} and {vehicles[0]}")
    return out


def _frame_captions(facts: FrameFacts) -> Iterator[str]:
    times = NIGHT if facts.night else DAY
    things = _things(facts)
    for place, time in itertools.product(PLACES[facts.scene], times):
        yield from (t.format(place=place, time=time) for t in PLAIN_TEMPLATES)
        yield from (t.format(place=place, time=time, things=x) for t in FRAME_TEMPLATES for x in things)
        if facts.people == 0:
            yield from (t.format(place=place, time=time) for t in NOBODY_TEMPLATES)
    if not things:
        for place, time in itertools.product(PLACES[facts.scene], times):
            noun = place.split(" ", 1)[1]
            yield from (t.format(noun=noun, time=time) for t in EMPTY_TEMPLATES)


def _object_captions(facts: ObjectFacts) -> Iterator[str]:
    things = OBJECTS[facts.cls, facts.state] + OBJECTS_IN_SCENE.get((facts.cls, facts.state, facts.scene), ())
    times = ("",) if facts.night is None else NIGHT if facts.night else DAY
    places = PLACES[facts.scene] if facts.scene is not None else ("",)
    templates = OBJECT_TEMPLATES if facts.scene is not None else [t for t in OBJECT_TEMPLATES if "{place}" not in t]
    for thing, time, place in itertools.product(things, times, places):
        yield from (t.format(thing=thing, time=time, place=place) for t in templates)


@functools.cache
def captions_for(facts: Facts) -> tuple[str, ...]:
    """Every caption that describes ``facts``, sorted, without repeats."""
    found = _frame_captions(facts) if isinstance(facts, FrameFacts) else _object_captions(facts)
    return tuple(sorted(set(found)))


def caption(facts: Facts, rng: np.random.Generator) -> str:
    """One caption of ``facts``, drawn with ``rng`` (the same generator state gives the same caption)."""
    options = captions_for(facts)
    return options[int(rng.integers(len(options)))]


def every_facts() -> Iterator[Facts]:
    """Every set of facts a caption can be written for."""
    for scene, night in itertools.product(SCENES, (False, True)):
        counts = itertools.product(range(MAX_COUNT + 1), range(MAX_COUNT + 1), range(MAX_BAGS + 1), (False, True))
        for people, vehicles, bags, parked in counts:
            if vehicles or not parked:
                yield FrameFacts(scene, night, people, vehicles, bags, parked)
        for cls, states in OBJECT_STATES.items():
            yield from (ObjectFacts(cls, state, scene, night) for state in states)
    for cls, states in OBJECT_STATES.items():  # where the scene and time are not known
        yield from (ObjectFacts(cls, state, None, None) for state in states)


def every_caption() -> frozenset[str]:
    """Every caption ``caption`` can write."""
    return frozenset(c for facts in every_facts() for c in captions_for(facts))


# -- activities: what a clip window shows, for a clip head trained into the sentence encoder's space --

ACTIVITY_CAPTIONS: dict[str, tuple[str, ...]] = {
    "normal": (
        "people walking by as usual",
        "ordinary traffic, nothing unusual happening",
        "a calm scene where everyone goes about their business",
        "cars and pedestrians passing normally",
        "a quiet moment with nothing going on",
        "everyday movement, no incident",
    ),
    "fall": (
        "a person falls down",
        "someone falls to the ground",
        "a man loses his balance and falls over",
        "a woman falls and ends up lying on the ground",
        "a person drops to the floor",
        "someone has a fall",
    ),
    "loiter": (
        "a person loiters",
        "someone stands around in the same place for a long time",
        "a man waits and lingers without going anywhere",
        "a person stays in one place, loitering",
        "someone idles about in the area",
    ),
    "run": (
        "a person runs",
        "someone running fast",
        "a man runs across the scene",
        "a woman in a hurry, running",
        "a person runs past quickly",
    ),
    "abandoned_object": (
        "a bag is abandoned",
        "someone leaves a bag behind and walks away",
        "a bag left on its own",
        "an abandoned bag nobody comes back for",
        "a forgotten bag lying there alone",
    ),
    "crowd": (
        "a crowd forms",
        "lots of people gather in one place",
        "a group of many people standing together",
        "people crowding together",
        "a crowd of people",
    ),
}


def activity_captions() -> dict[str, tuple[str, ...]]:
    """Captions of each activity label (``ACTIVITIES``), ``normal`` the background."""
    return dict(ACTIVITY_CAPTIONS)
