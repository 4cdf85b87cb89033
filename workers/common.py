"""Helpers shared by the model workers: torch threads/device choice and metric export."""

from __future__ import annotations

import os

from pipeline.metrics import MetricsReport, local_report, set_process_role

__all__ = ["MetricsExporter", "configure_torch", "set_process_role"]


def configure_torch(threads: int, cpu: bool = False) -> str:
    """Set torch's (and OpenCV's, which pre-processes) CPU threads and return the device to run on
    ("cuda:0" when one is visible, unless ``cpu``)."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    return "cuda:0" if not cpu and torch.cuda.is_available() else "cpu"


class MetricsExporter:
    """Mixin for Ray actors: lets the driver's /metrics endpoint pull this process's metrics.
    Subclasses call ``set_process_role`` first thing in ``__init__``."""

    def collect_metrics(self) -> MetricsReport:
        return local_report()
