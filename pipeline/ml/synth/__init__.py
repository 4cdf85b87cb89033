"""A labelled synthetic world: seeded camera-like video with exact ground truth (``vigil synth``).

Each video is one scene (street, parking lot or corridor, by day or night) with people, vehicles
and bags moving on plausible paths, and scripted activities (fall, loiter, run, abandoned_object,
crowd; ``normal`` otherwise) with exact start and end frames. Everything is deterministic in the
seed. The modules, by subject:

- ``canvas``: image/point types, the canvas margin, ``Shape`` (what an object draws, and its box);
- ``actors``: people, vehicles and bags: scripted paths and how each is drawn (``CLASSES``);
- ``scenes``: the scene layouts and static backgrounds (``SCENES``);
- ``activities``: a video's script: background traffic and the activities (``ACTIVITIES``);
- ``crossings``: the ``rules`` scenario's script: a line, a pillar on it, people crossing and lingering;
- ``render``: frames and ground truth of a scripted video (the ``vigil-synth/1`` format);
- ``dataset``: writing and loading videos, ground truth and ``index.json``;
- ``posture``: posed people for the crop classifier (``POSTURES``).

The names below are re-exported for convenience; code in Vigil imports them from their modules.
"""

from __future__ import annotations

from pipeline.ml.synth.activities import ACTIVITIES, make_script
from pipeline.ml.synth.actors import CLASSES, actor_shape
from pipeline.ml.synth.canvas import MARGIN, Image, Shape
from pipeline.ml.synth.dataset import ensure_video, gt_bytes, load_set, synth_set, write_mp4, write_video
from pipeline.ml.synth.posture import POSTURES, posture_examples
from pipeline.ml.synth.render import GT_FORMAT, render_video
from pipeline.ml.synth.scenes import SCENES, background

__all__ = [
    "ACTIVITIES",
    "CLASSES",
    "GT_FORMAT",
    "MARGIN",
    "POSTURES",
    "SCENES",
    "Image",
    "Shape",
    "actor_shape",
    "background",
    "ensure_video",
    "gt_bytes",
    "load_set",
    "make_script",
    "posture_examples",
    "render_video",
    "synth_set",
    "write_mp4",
    "write_video",
]
