"""The images ``vigil train clip`` learns from, read from ``vigil synth`` videos: whole frames and
object crops (people, vehicles, bags), each with the facts its captions are written from
(``captions.FrameFacts`` / ``ObjectFacts``), and for held-out videos the frames and person crops the
zero-shot figures are measured on; and generated people (``generated_people``), for many more people
down than the videos' few falls.

What the ground truth does not say directly comes from it as follows: a person's posture by the
crop classifier's rule (``synth.posture.true_posture``), running inside a ``run`` segment of that
person, moving or still from how far its box's foot point travels; a bag lies left on the ground
inside an ``abandoned_object`` segment of that bag and is carried otherwise.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.ml.synth.posture import POSTURES, posture_examples, true_posture
from pipeline.ml.training.captions import Facts, FrameFacts, ObjectFacts
from pipeline.ml.training.common import read_frames
from workers.classifier import crop_boxes

Image = npt.NDArray[np.uint8]

FRAME_EVERY = 5  # frames (and their objects) taken from a video
FRAME_WH = (192, 108)  # frames are kept at this size: above the tower's input, for the random crops
CROP_MAX_PX = 112  # crops are kept at most this size
PADDING = 0.1  # context around each box, as models.crops.padding has it by default
MIN_VISIBILITY = 0.6
MIN_PX = {"person": 12, "vehicle": 16, "bag": 10}  # shorter box sides are too small to say anything
COUNT_MIN_PX = 8  # what a frame's caption counts
COUNT_MIN_VISIBILITY = 0.5
MOTION_WINDOW_S = 1.0  # moving: the foot point travels MOVING_PX over this either side of the frame
MOVING_PX = 20.0  # above a shaky camera's sway, below a far pedestrian's walk over two seconds
PARKED_KEEP = 0.25  # a parked car looks the same in every frame: a quarter of its crops is enough
HELD_OUT_CROP_EVERY = 10  # held-out person crops: every n-th frame and every frame of a fall


@dataclass
class Examples:
    """Images (BGR uint8) with their facts and the index of the video each came from."""

    images: list[Image] = field(default_factory=list)
    facts: list[Facts] = field(default_factory=list)
    videos: list[int] = field(default_factory=list)

    def add(self, image: Image, facts: Facts, video: int) -> None:
        self.images.append(image)
        self.facts.append(facts)
        self.videos.append(video)


@dataclass
class HeldOut:
    """What the zero-shot figures are measured on: frames with their scene, person crops with their
    posture (``upright`` / ``down``), all BGR uint8."""

    frames: list[Image] = field(default_factory=list)
    scenes: list[str] = field(default_factory=list)
    crops: list[Image] = field(default_factory=list)
    postures: list[str] = field(default_factory=list)


class _Segments:
    """A video's activity segments, looked up by label, track and frame."""

    def __init__(self, gt: dict[str, Any]) -> None:
        self._by_label: dict[str, list[tuple[int, int, set[int]]]] = defaultdict(list)
        for a in gt["activities"]:
            self._by_label[a["label"]].append((a["start_frame"], a["end_frame"], set(a["track_ids"])))

    def holds(self, label: str, track_id: int, frame: int) -> bool:
        return any(s <= frame <= e and track_id in ids for s, e, ids in self._by_label[label])

    def frames(self, label: str) -> set[int]:
        return {f for s, e, _ in self._by_label[label] for f in range(s, e + 1)}


class _Motion:
    """Whether a track moves at a frame, from its boxes' foot points around it."""

    def __init__(self, gt: dict[str, Any]) -> None:
        self.window = max(1, round(MOTION_WINDOW_S * float(gt["fps"])))
        self._foot: dict[int, dict[int, tuple[float, float]]] = defaultdict(dict)
        for f in gt["frames"]:
            for o in f["objects"]:
                x1, _, x2, y2 = o["xyxy"]
                self._foot[o["track_id"]][f["frame"]] = ((x1 + x2) / 2, y2)

    def moving(self, track_id: int, frame: int) -> bool:
        path = self._foot[track_id]
        seen = [f for f in range(frame - self.window, frame + self.window + 1) if f in path]
        if len(seen) < 2:
            return False
        (ax, ay), (bx, by) = path[seen[0]], path[seen[-1]]
        # Scaled to the full window where the track is seen for part of it.
        return math.hypot(bx - ax, by - ay) * 2 * self.window / (seen[-1] - seen[0]) > MOVING_PX


def _shrunk(image: Image, max_px: int) -> Image:
    h, w = image.shape[:2]
    if max(h, w) <= max_px:
        return image
    scale = max_px / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def _crop(frame: Image, obj: dict[str, Any]) -> Image:
    [crop] = crop_boxes(frame, np.array([obj["xyxy"]], np.float32), PADDING)
    return _shrunk(crop, CROP_MAX_PX)


def _big_enough(obj: dict[str, Any], min_px: float, min_visibility: float) -> bool:
    x1, y1, x2, y2 = obj["xyxy"]
    return bool(obj["visibility"] >= min_visibility and min(x2 - x1, y2 - y1) >= min_px)


def frame_facts(gt: dict[str, Any], frame: int, motion: _Motion) -> FrameFacts:
    """What a frame's caption may say: its scene, night or day, and the objects one can make out."""
    seen = [o for o in gt["frames"][frame]["objects"] if _big_enough(o, COUNT_MIN_PX, COUNT_MIN_VISIBILITY)]
    count = {cls: sum(o["class"] == cls for o in seen) for cls in ("person", "vehicle", "bag")}
    parked = all(not motion.moving(o["track_id"], frame) for o in seen if o["class"] == "vehicle")
    return FrameFacts.of(
        gt["scene"], bool(gt["night"]), count["person"], count["vehicle"], count["bag"], parked and count["vehicle"] > 0
    )


def object_facts(gt: dict[str, Any], frame: int, obj: dict[str, Any], segments: _Segments, motion: _Motion) -> Facts:
    """What an object's crop caption may say (raises LookupError in the first moments of a fall,
    when the person is neither upright nor down)."""
    cls, track = obj["class"], obj["track_id"]
    if cls == "person":
        posture = true_posture(gt, frame, track)
        if posture is None:
            raise LookupError("a fall that has not settled")
        if posture == "down":
            state = "down"
        elif segments.holds("run", track, frame):
            state = "running"
        else:
            state = "walking" if motion.moving(track, frame) else "standing"
    elif cls == "vehicle":
        state = "moving" if motion.moving(track, frame) else "parked"
    else:
        state = "left" if segments.holds("abandoned_object", track, frame) else "carried"
    return ObjectFacts(cls, state, gt["scene"], bool(gt["night"]))


def training_examples(video: Path, gt: dict[str, Any], index: int, rng: np.random.Generator, out: Examples) -> None:
    """Add a video's examples to ``out``: every FRAME_EVERY-th frame with the crops of its objects,
    and the people of every second frame of a fall (falls are short and rare)."""
    segments, motion = _Segments(gt), _Motion(gt)
    falls = segments.frames("fall")
    for i, frame in read_frames(video):
        whole = i % FRAME_EVERY == 0
        if not whole and not (i in falls and i % 2 == 0):
            continue
        if whole:
            small = np.asarray(cv2.resize(frame, FRAME_WH, interpolation=cv2.INTER_AREA), dtype=np.uint8)
            out.add(small, frame_facts(gt, i, motion), index)
        for obj in gt["frames"][i]["objects"]:
            if (not whole and obj["class"] != "person") or not _big_enough(obj, MIN_PX[obj["class"]], MIN_VISIBILITY):
                continue
            try:
                facts = object_facts(gt, i, obj, segments, motion)
            except LookupError:
                continue
            if isinstance(facts, ObjectFacts) and facts.state == "parked" and rng.random() >= PARKED_KEEP:
                continue
            out.add(_crop(frame, obj), facts, index)


def held_out_examples(video: Path, gt: dict[str, Any], out: HeldOut) -> None:
    """Add a held-out video's frames (every FRAME_EVERY-th) and its person crops, chosen as
    ``vigil train crops`` chooses its validation crops: every HELD_OUT_CROP_EVERY-th frame and every
    frame of a fall, people at least MIN_PX tall and wide and MIN_VISIBILITY visible, their posture
    by ``true_posture`` (the unsettled start of a fall left out)."""
    falls = _Segments(gt).frames("fall")
    for i, frame in read_frames(video):
        if i % FRAME_EVERY == 0:
            out.frames.append(frame)  # full size, as a camera's frames reach the model
            out.scenes.append(str(gt["scene"]))
        if i % HELD_OUT_CROP_EVERY and i not in falls:
            continue
        for obj in gt["frames"][i]["objects"]:
            if obj["class"] != "person" or not _big_enough(obj, MIN_PX["person"], MIN_VISIBILITY):
                continue
            posture = true_posture(gt, i, obj["track_id"])
            if posture is not None:
                out.crops.append(_crop(frame, obj))
                out.postures.append(posture)


def generated_people(n: int, seed: int, out: Examples) -> None:
    """Add ``n`` generated people (``synth.posture.posture_examples``: each a fresh figure, half of them
    down), whose posture is known and whose motion and surroundings are not: a video holds only a few
    falls, which the tower would otherwise learn by heart."""
    for image, box, label in posture_examples(n, seed):
        state = "down" if POSTURES[label] == "down" else "upright"
        out.add(_crop(image, {"xyxy": box}), ObjectFacts("person", state, None, None), -1)
