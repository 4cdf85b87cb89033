"""CPU cost of the zero-shot CLIP image embedding per frame, beside the demo's scene ViT.

    .venv/bin/python -m benchmarks.clip_cost [--threads 1 2] [--batches 1 8] [--reps 7] [--json OUT]

Three scene models, each timed through the call the pipeline makes for a batch of frames
(``classify_batch``: pre-processing, the image tower, the label from the prompts), in fp32:

- ``scene ViT (demo)``: ``workers.classifier.Classifier`` with configs/demo.yaml's
  ``models.classifier`` (the demo pack's ``classifier.pt``), the baseline. The demo config's
  ``cpu_precision: auto`` runs it in bf16 on a CPU with native bf16; here it runs fp32 like the
  CLIP towers (which always run fp32).
- ``CLIP demo (clip.pt)``: ``workers.zero_shot.ZeroShotSceneClassifier`` with the config
  ``ModelsConfig.scene_model`` makes from configs/demo.yaml's ``models.zero_shot`` (backend
  ``{kind: vigil, weights: models/demo/clip.pt}``), given the scenes the demo config suggests.
- ``CLIP ViT-B/32 (untrained)``: the same with ``{kind: open_clip, model: ViT-B-32}`` and no
  pretrained weights. Nothing can be downloaded on the machines Vigil is built on, so the weights
  are random: the compute is that of the real ViT-B/32 (same architecture and input size), the
  labels are meaningless.

Frames are the demo cameras' (640x360, the street by day and the car park by night, rendered as
``vigil demo`` renders them), scaled down as the cameras scale them before the models
(``models.input_px``: 384x216). Each (torch threads, model, batch) pair gets warm-up calls; then
``--reps`` repetitions, the pairs taking turns (a VM's speed drifts within seconds), each timing
calls for at least ``--min-rep-s``. Printed: the median wall time per frame and the frames/s it
gives, as a Markdown table (docs/performance.md). Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "configs" / "demo.yaml"
# The scenes configs/demo.yaml suggests for models.zero_shot (commented out there).
SCENES = {"street": ["a street with traffic"], "parking": ["a car park"], "corridor": ["an indoor corridor"]}
WARMUP_CALLS = 2

Frame = npt.NDArray[np.uint8]
BatchFn = Callable[[list[Frame]], list[Any]]


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_busy_s() -> float | None:
    """CPU seconds all processes on the machine have used since boot (/proc/stat), None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:9]
    except (OSError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def demo_frames(longest_px: int, per_camera: int = 4) -> list[Frame]:
    """``per_camera`` frames of each demo camera (street by day, car park by night, as ``vigil demo``
    renders them), scaled down to ``longest_px`` as the cameras hand them to the models."""
    from pipeline.ml.synth.render import render_video
    from workers.decoder import model_input

    frames: list[Frame] = []
    for seed, scene, night in ((1, "street", False), (2, "parking", True)):
        rendered, _gt = render_video(seed, scene, night, seconds=per_camera / 10, fps=10)
        frames += [model_input(np.ascontiguousarray(image), longest_px)[0] for image in rendered[:per_camera]]
    return frames


def load_models(config: Path) -> tuple[dict[str, BatchFn], dict[str, dict[str, Any]], int]:
    """The three scene models, built as the pipeline builds them from ``config``: their
    ``classify_batch``, a description of each, and ``models.input_px``."""
    from pipeline.core.config import OpenClipBackend, ZeroShotConfig, load_config
    from workers.classifier import Classifier
    from workers.zero_shot import ZeroShotSceneClassifier

    cfg = load_config(config)
    if cfg.models.classifier is None or cfg.models.zero_shot is None:
        raise SystemExit(f"{config}: needs models.classifier and models.zero_shot (the demo config has both)")
    zs = ZeroShotConfig.model_validate({**cfg.models.zero_shot.model_dump(), "scenes": SCENES})
    vit = Classifier(cfg.models.classifier.model_copy(update={"cpu_precision": "fp32"}), batching=False, cpu=True)
    fns: dict[str, BatchFn] = {"scene ViT (demo)": vit.classify_batch}
    info: dict[str, dict[str, Any]] = {
        "scene ViT (demo)": {
            "weights": str(cfg.models.classifier.weights),
            "input_px": vit.image_size,
            "embedding": vit.embedding_dim(),
            "params_m": sum(p.numel() for p in vit.model.parameters()) / 1e6,
        }
    }
    backends = {
        "CLIP demo (clip.pt)": zs.backend,
        "CLIP ViT-B/32 (untrained)": OpenClipBackend(model="ViT-B-32"),
    }
    for name, backend in backends.items():
        models = cfg.models.model_copy(update={"zero_shot": zs.model_copy(update={"backend": backend})})
        scene_cfg = models.scene_model
        assert scene_cfg is not None
        clip = ZeroShotSceneClassifier(scene_cfg.model_copy(update={"cpu_precision": "fp32"}), batching=False, cpu=True)
        fns[name] = clip.classify_batch
        image_tower = getattr(clip.clip, "tower", None) or getattr(getattr(clip.clip, "model", None), "visual", None)
        size = getattr(image_tower, "image_size", None)
        info[name] = {
            "backend": backend.model_dump(),
            "input_px": size[0] if isinstance(size, tuple | list) else size,
            "embedding": clip.embedding_dim(),
            "image_tower_params_m": sum(p.numel() for p in image_tower.parameters()) / 1e6 if image_tower else None,
            "max_batch": scene_cfg.max_batch,
        }
    return fns, info, cfg.models.input_px


def one_rep(fn: BatchFn, batch: list[Frame], min_s: float) -> tuple[float, float]:
    """Calls of ``fn`` on ``batch`` for at least ``min_s`` (one at least): wall and CPU ms per frame."""
    calls, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while calls < 1 or time.perf_counter() - wall0 < min_s:
        out = fn(batch)
        assert len(out) == len(batch)
        calls += 1
    frames = calls * len(batch)
    return 1000 * (time.perf_counter() - wall0) / frames, 1000 * (time.process_time() - cpu0) / frames


def bench(
    fns: dict[str, BatchFn], frames: list[Frame], threads: int, batches: list[int], reps: int, min_s: float
) -> list[dict[str, Any]]:
    """Every model at every batch size with ``threads`` torch threads: warm-up calls, then ``reps``
    repetitions, the (model, batch) pairs taking turns."""
    import torch

    from workers.common import configure_torch

    configure_torch(threads, cpu=True)
    pairs = [(name, b) for name in fns for b in batches]
    inputs = {b: [frames[i % len(frames)] for i in range(b)] for b in batches}
    for name, b in pairs:
        for _ in range(WARMUP_CALLS):
            fns[name](inputs[b])
    walls: dict[tuple[str, int], list[float]] = {pair: [] for pair in pairs}
    cpus: dict[tuple[str, int], list[float]] = {pair: [] for pair in pairs}
    busy0, own0, wall0 = machine_busy_s(), time.process_time(), time.perf_counter()
    for _ in range(reps):
        for name, b in pairs:
            wall, cpu = one_rep(fns[name], inputs[b], min_s)
            walls[name, b].append(wall)
            cpus[name, b].append(cpu)
    busy1, own1, wall1 = machine_busy_s(), time.process_time(), time.perf_counter()
    # What other processes took meanwhile (in cores): the figures hold for a machine near 0.
    others = None if busy0 is None or busy1 is None else max(0.0, busy1 - busy0 - (own1 - own0)) / (wall1 - wall0)
    rows = []
    for name, b in pairs:
        ms = statistics.median(walls[name, b])
        rows.append(
            {
                "model": name,
                "threads": torch.get_num_threads(),
                "batch": b,
                "ms_per_frame": ms,
                "frames_per_s": 1000 / ms,
                "cpu_ms_per_frame": statistics.median(cpus[name, b]),
                "reps_ms_per_frame": walls[name, b],
                "other_processes_cores": others,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG, help="whose scene ViT and zero_shot backend")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads, each in turn")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="frames per classify_batch call")
    parser.add_argument("--reps", type=int, default=7, help="timed repetitions per row (the median is printed)")
    parser.add_argument("--min-rep-s", type=float, default=0.5, help="shortest repetition (repeats fast calls)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    if min(args.threads) < 1 or min(args.batches) < 1 or args.reps < 1:
        parser.error("--threads, --batches and --reps must be at least 1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the text towers load from local files only

    t0 = time.perf_counter()
    fns, info, input_px = load_models(args.config)
    frames = demo_frames(input_px)
    h, w = frames[0].shape[:2]
    import torch

    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}; fp32")
    print(f"frames: the demo cameras' 640x360, scaled to {w}x{h} (models.input_px {input_px}) as the cameras do")
    for name, about in info.items():
        params = about.get("params_m") or about.get("image_tower_params_m")
        print(f"  {name}: {about['input_px']} px input, embedding {about['embedding']}, {params:.1f} M parameters")
    print("ViT-B/32: open_clip's architecture with random weights (no download possible here): real compute\n")

    rows = [
        row
        for threads in args.threads
        for row in bench(fns, frames, threads, args.batches, args.reps, args.min_rep_s)
    ]  # fmt: skip
    print("| model | threads | batch | ms/frame | frames/s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['threads']} | {r['batch']} | {r['ms_per_frame']:.2f} | {r['frames_per_s']:.1f} |")
    print(f"\n({args.reps} repetitions per row, median; {time.perf_counter() - t0:.0f} s in all)")
    others = {r["threads"]: r["other_processes_cores"] for r in rows if r["other_processes_cores"] is not None}
    if others:
        print(
            "other processes on this machine while timing: "
            + ", ".join(f"{n} thread{'s' if n > 1 else ''}: {c:.2f} cores" for n, c in others.items())
            + " (near 0 on a quiet machine; more makes the figures slower)"
        )
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "cpu": cpu_name(),
                    "cores": os.cpu_count(),
                    "torch": torch.__version__,
                    "frame_wh": [w, h],
                    "models": info,
                    "rows": rows,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
