"""Tiny, untrained CLIP models saved the way a user's weights are: a transformers CLIPModel folder
(save_pretrained, with a CLIPProcessor and a small byte-level BPE tokenizer written here), an open_clip
``local-dir:`` folder, and an open_clip checkpoint file for an architecture registered by name.

Real CLIP weights live on hubs the tests cannot reach; these exercise the same loading code, in
well under a second each.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

# An open_clip architecture: ViT image tower (32 px, 8 px patches) and text tower, 2 layers, width 32.
OPEN_CLIP_CFG: dict[str, Any] = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
OPEN_CLIP_ARCH = "vigil-test-tiny-clip"  # the name add_model_config registers OPEN_CLIP_CFG under


def _byte_symbols() -> list[str]:
    """The 256 printable symbols byte-level BPE (GPT-2, CLIP) writes bytes as."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            symbols.append(256 + extra)
            extra += 1
    return [chr(c) for c in symbols]


def clip_tokenizer() -> Any:
    """A CLIPTokenizer with CLIP's layout (bytes, bytes ending a word, merges, then the start and end
    tokens) and two merges: enough that every text tokenizes, each word spelt out."""
    from transformers import CLIPTokenizer

    chars = _byte_symbols()
    merges = [("t", "h"), ("th", "e</w>")]
    tokens = [*chars, *(c + "</w>" for c in chars), "th", "the</w>", "<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=merges)


def save_hf_clip(folder: Path, seed: int = 0) -> Path:
    """A random tiny CLIPModel with its CLIPProcessor, saved with save_pretrained into ``folder``."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = clip_tokenizer()
    bos, eos = tokenizer.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"])
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 32,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "pad_token_id": eos,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def open_clip_model(config_dir: Path, seed: int = 0) -> Any:
    """A random open_clip model of OPEN_CLIP_CFG (registered as OPEN_CLIP_ARCH from ``config_dir``)."""
    import open_clip

    register_open_clip_arch(config_dir)
    torch.manual_seed(seed)
    return open_clip.create_model(OPEN_CLIP_ARCH).eval()


def register_open_clip_arch(config_dir: Path) -> None:
    """Make OPEN_CLIP_CFG an open_clip architecture by name: a config file in ``config_dir``, added to
    open_clip's registry as its own are (once per process)."""
    import open_clip

    if OPEN_CLIP_ARCH in open_clip.list_models():
        return
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / f"{OPEN_CLIP_ARCH}.json").write_text(json.dumps(OPEN_CLIP_CFG))
    open_clip.add_model_config(config_dir)


def save_open_clip_dir(folder: Path, seed: int = 0, **preprocess: Any) -> Path:
    """A ``local-dir:`` folder: open_clip_config.json (``preprocess`` overriding the model's image
    pre-processing, e.g. ``resize_mode="longest"``) and open_clip_model.safetensors."""
    import safetensors.torch

    model = open_clip_model(folder.parent / "open-clip-configs", seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": OPEN_CLIP_CFG, "preprocess_cfg": {**model.visual.preprocess_cfg, **preprocess}})
    )
    safetensors.torch.save_file(model.state_dict(), str(folder / "open_clip_model.safetensors"))
    return folder


def save_open_clip_checkpoint(path: Path, seed: int = 0) -> Path:
    """A checkpoint file (a torch state dict) for the architecture OPEN_CLIP_ARCH."""
    torch.save(open_clip_model(path.parent / "open-clip-configs", seed).state_dict(), path)
    return path
