"""``vigil train detector``: ultralytics YOLO (any ``.yaml``/``.pt`` it accepts) trained on frames
exported from ``vigil synth`` folders in YOLO format (decoded from the MP4s, so compression is in the data)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from pipeline.ml.synth.actors import CLASSES
from pipeline.ml.synth.dataset import load_set
from pipeline.ml.training.cards import write_card
from pipeline.ml.training.common import Progress, no_progress, read_frames


def prepare_ultralytics(config_dir: Path) -> None:
    """Offline-safe ultralytics: a settings dir with the fonts it would otherwise download."""
    fonts = config_dir / "Ultralytics"
    fonts.mkdir(parents=True, exist_ok=True)
    import matplotlib

    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (fonts / name).exists():
            shutil.copy(ttf, fonts / name)
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")


def export_yolo(
    data_dirs: list[Path],
    out: Path,
    every: int,
    val_fraction: float = 0.15,
    seed: int = 0,
    progress: Progress = no_progress,
) -> tuple[Path, int, int]:
    """Write frames and labels in YOLO format + ``data.yaml``. Returns (yaml, train images, val images).

    Every ``every``-th frame goes in; training frames with a rare sight (a bag, a person lying)
    four times as often. Validation videos are whole videos held out, sampled uniformly.
    """
    videos = [v for d in data_dirs for v in load_set(d)]
    rng = np.random.default_rng(seed)
    val = set(rng.choice(len(videos), size=max(1, round(val_fraction * len(videos))), replace=False).tolist())
    counts = {"train": 0, "val": 0}
    for split in counts:
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    for k, (video, gt) in enumerate(videos):
        split = "val" if k in val else "train"
        w, h = gt["width"], gt["height"]
        offset = int(rng.integers(0, every))
        for i, frame in read_frames(video):
            rare = split == "train" and _has_rare_object(gt["frames"][i]["objects"])
            if (i - offset) % (max(1, every // 4) if rare else every):
                continue
            stem = f"{video.parent.name}_{video.stem}_{i:05d}"
            cv2.imwrite(str(out / "images" / split / f"{stem}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
            rows = []
            for obj in gt["frames"][i]["objects"]:
                x1, y1, x2, y2 = obj["xyxy"]
                c = CLASSES.index(obj["class"])
                rows.append(
                    f"{c} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
                )
            (out / "labels" / split / f"{stem}.txt").write_text("\n".join(rows) + ("\n" if rows else ""))
            counts[split] += 1
        progress("exporting frames", k + 1, len(videos))
    data_yaml = out / "data.yaml"
    data_yaml.write_text(
        f"path: {out.resolve()}\ntrain: images/train\nval: images/val\n"
        + "names:\n"
        + "".join(f"  {i}: {n}\n" for i, n in enumerate(CLASSES))
    )
    return data_yaml, counts["train"], counts["val"]


def _has_rare_object(objects: list[dict[str, Any]]) -> bool:
    for obj in objects:
        x1, y1, x2, y2 = obj["xyxy"]
        if obj["class"] == "bag" or (obj["class"] == "person" and (y2 - y1) < 1.2 * (x2 - x1)):
            return True
    return False


def train_detector(
    data_dirs: list[Path],
    out: Path,
    *,
    model: str = "yolo11n.yaml",
    epochs: int = 30,
    imgsz: int = 320,
    batch: int = 16,
    every: int = 10,
    seed: int = 0,
    device: str | None = None,
    work_dir: Path = Path(".vigil/train"),
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Train YOLO on exported frames; the best weights go to ``out`` (a .pt any ``YOLO()`` loads)."""
    prepare_ultralytics(work_dir / "ultralytics")
    from ultralytics import YOLO  # type: ignore[attr-defined]

    t0 = time.time()
    previous_card = Path(model).with_suffix(".card.json")  # fine-tuning Vigil's own weights: keep their history
    history = [json.loads(previous_card.read_text())] if previous_card.is_file() else []
    history = (
        [*history[0].get("history", []), {k: history[0].get(k) for k in ("command", "epochs", "metrics")}]
        if history
        else []
    )
    dataset = work_dir / "detector-data"
    shutil.rmtree(dataset, ignore_errors=True)
    data_yaml, n_train, n_val = export_yolo(data_dirs, dataset, every, seed=seed, progress=progress)
    yolo = YOLO(model, task="detect")

    def on_epoch_end(trainer: Any) -> None:
        progress("training detector", trainer.epoch + 1, trainer.epochs)

    yolo.add_callback("on_fit_epoch_end", on_epoch_end)
    results = yolo.train(
        data=str(data_yaml),
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        seed=seed,
        deterministic=True,
        device=device or ("0" if torch.cuda.is_available() else "cpu"),
        workers=min(4, os.cpu_count() or 1),
        project=str((work_dir / "runs").resolve()),
        name="detector",
        exist_ok=True,
        plots=False,
        amp=False,
        verbose=False,
        patience=epochs,
        close_mosaic=max(1, epochs // 5),
    )
    assert yolo.trainer is not None
    best = Path(yolo.trainer.best)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(best, out)
    box = results.box
    metrics = {
        "map50": float(box.map50),
        "map50_95": float(box.map),
        "per_class_map50": {CLASSES[int(c)]: float(box.ap50[i]) for i, c in enumerate(box.ap_class_index)},
    }
    write_card(
        out,
        {
            "model": f"ultralytics YOLO from {model}",
            "task": "detect",
            "labels": list(CLASSES),
            "data": {
                "dirs": [str(d) for d in data_dirs],
                "train_images": n_train,
                "val_images": n_val,
                "frame_every": every,
                "imgsz": imgsz,
            },
            "seed": seed,
            "epochs": epochs,
            "metrics": metrics,
            "train_seconds": round(time.time() - t0, 1),
            "history": history,
        },
    )
    return metrics
