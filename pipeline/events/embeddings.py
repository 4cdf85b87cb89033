"""Event embeddings as Redis stores them for search: spaces, keys and the compact value.

An embedding is a unit vector in a named *space*: ``minilm-384`` (all-MiniLM-L6-v2's sentence
space, where a clip window mapped into text space and a Vigil-trained CLIP's images live) or
``clip:<model>`` (a CLIP model's image-text space, :func:`clip_space`). Each is stored as::

    vigil:emb:<tag>:<camera>:<kind>:<event_id>   (string)
    format (u8) | dim (u16) | captured_at (f64, UNIX s) | vector (dim x float16) | space 0x1f label

``<tag>`` is 8 hex digits of a hash of the space name, so a search reads only its space's (and
camera's) keys; the space name in the value tells two spaces of the same tag apart. A 384-d
vector takes 768 bytes, 11 more for the header, and the names.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.core.config.zero_shot import (
    HF_HUB,
    LOCAL_DIR,
    ClipBackend,
    OpenClipBackend,
    VigilClipBackend,
    looks_like_path,
)

EMBEDDING_PREFIX = "vigil:emb:"
MINILM_SPACE = "minilm-384"
CLIP_PREFIX = "clip:"
FORMAT = 1
HEADER = struct.Struct("<BHd")  # format, dim, captured_at
SEP = b"\x1f"  # between the space and the label
SPACE_PATTERN = re.compile(r"^[A-Za-z0-9][\x21-\x7e]{0,199}$")  # printable ASCII, no blanks

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class EventEmbedding:
    """What the pipeline hands the publisher with an event, to make it searchable: a vector of
    shape ``(dim,)`` (any float dtype; stored normalised) and the name of the space it lives in."""

    vector: npt.NDArray[np.floating[Any]]
    space: str


@dataclass(frozen=True, slots=True)
class PackedEmbedding:
    """An embedding as Redis stores it (:func:`pack`): its key, its value and its space."""

    key: str
    value: bytes
    space: str


def space_tag(space: str) -> str:
    """8 hex digits naming ``space`` in keys."""
    return hashlib.blake2b(space.encode(), digest_size=4).hexdigest()


def embedding_key(space: str, camera: str, kind: str, event_id: str) -> str:
    """Redis key of an event's embedding."""
    return f"{EMBEDDING_PREFIX}{space_tag(space)}:{camera}:{kind}:{event_id}"


def check_space(space: str) -> str:
    """``space`` if it is a valid space name (printable ASCII without blanks, at most 200); else ValueError."""
    if not SPACE_PATTERN.match(space):
        raise ValueError(f"not a space name: {space!r} (printable ASCII without blanks, at most 200 characters)")
    return space


def unit(vector: npt.ArrayLike) -> Vector:
    """``vector`` as a float32 unit vector; ValueError for one that is not 1-D, finite and non-zero."""
    v = np.asarray(vector, dtype=np.float32)
    if v.ndim != 1 or v.size == 0 or v.size > 65_535:
        raise ValueError(f"an embedding is one vector of 1 to 65535 values, not shape {v.shape}")
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("an embedding must be finite and non-zero")
    return v / norm


def pack(
    event_id: str, camera: str, kind: str, label: str, ts: float, vector: npt.ArrayLike, space: str
) -> PackedEmbedding:
    """The key and compact value of an event's embedding: the vector normalised and stored as
    float16 (2 bytes a dimension), with the capture time ``ts`` (UNIX s), the space and the label.
    ValueError for a bad vector or name."""
    check_space(space)
    for name, part in (("camera", camera), ("kind", kind)):
        if not part or ":" in part:
            raise ValueError(f"{name} {part!r}: must be non-empty, without ':'")
    v = unit(vector)  # values within [-1, 1]: float16 holds them to about 3 decimal digits
    trailer = space.encode() + SEP + label.replace("\x1f", " ").encode()
    value = HEADER.pack(FORMAT, v.size, float(ts)) + v.astype("<f2").tobytes() + trailer
    return PackedEmbedding(embedding_key(space, camera, kind, event_id), value, space)


def unpack(value: bytes) -> tuple[str, str, float, Vector]:
    """``(space, label, captured_at, vector)`` of a stored value (the vector as float32)."""
    version, dim, ts = HEADER.unpack_from(value)
    if version != FORMAT:
        raise ValueError(f"embedding format {version} is not one this version reads")
    end = HEADER.size + 2 * dim
    space, _, label = value[end:].partition(SEP)
    vector = np.frombuffer(value, "<f2", count=dim, offset=HEADER.size).astype(np.float32)
    return space.decode(), label.decode(errors="replace"), ts, vector


def clip_space(backend: ClipBackend) -> str:
    """The space a ``models.zero_shot.backend`` embeds images and text into: ``clip:<model>``
    (``clip:ViT-B-32:laion2b_s34b_b79k``, ``clip:openai/clip-vit-base-patch32``, a local folder or
    checkpoint by its name), and for a Vigil-trained CLIP the sentence encoder's, ``minilm-384``."""
    if isinstance(backend, VigilClipBackend):
        return MINILM_SPACE
    if isinstance(backend, OpenClipBackend):
        if backend.model.startswith(LOCAL_DIR):
            name = Path(backend.model.removeprefix(LOCAL_DIR)).expanduser().name
        elif backend.model.startswith(HF_HUB):
            name = backend.model.removeprefix(HF_HUB)
        else:
            name = backend.model if backend.pretrained is None else f"{backend.model}:{Path(backend.pretrained).name}"
    else:
        path = backend.name_or_path
        name = Path(path).expanduser().name if looks_like_path(path) else path
    return CLIP_PREFIX + re.sub(r"\s+", "_", name)
