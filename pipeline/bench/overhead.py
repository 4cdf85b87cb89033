"""The Vigil run against the limit run: the CPU the pipeline spent beyond decoding and the model calls
(``overhead``), and how fast the machine ran the models during the run (``model_speed``)."""

from __future__ import annotations

from typing import Any

# The camera actors' CPU by step (``vigil_camera_cpu_seconds``), by what the step is: the pipeline's
# own work (resizing to the model size, motion gating, ByteTrack, the frame summary, event rules), which
# a user's loop does too, and orchestration: the Ray calls, delivery to Redis (spool, snapshots,
# the sender thread) and metrics. "decode" is decoding, measured where it happens.
WORK_STEPS = ("prepare", "track", "features", "events")
ORCHESTRATION_STEPS = {
    "ray_calls": ("submit", "coalesce", "wait", "crops", "clip", "queue"),
    "redis": ("publish", "redis"),
    "metrics": ("metrics",),
}
NOT_WORKERS = ("camera", "driver")
# Models that can run inside the camera hosts, by the host step that clocks them: ray.clip_head: hosts
# ("clip_head") and ray.placement: hosts ("vision"; "crop_model" with models.crops).
HOST_MODEL_STEPS = {"clip_head": ("temporal",), "vision": ("detector", "classifier"), "crop_model": ("crops",)}


def overhead(limit: dict[str, Any], vigil: dict[str, Any]) -> dict[str, Any]:
    """CPU the pipeline spent beyond decoding and the model calls of the frames it processed, and
    how much of that is orchestration (Ray, Redis, metrics) rather than the pipeline's own work.

    The model calls' CPU is what the workers measured during the run (``vigil_model_cpu_seconds``:
    the same machine at the same moment, so a CPU that runs faster or slower between modes does
    not leak into the overhead); without it (``--no-ray``), the limit run's single-threaded CPU
    time at the batch size nearest to the workers' mean batch. Decoding, and the split of the rest,
    come from the cameras' own step clocks (``vigil_camera_cpu_seconds``) when the run has them;
    decoding otherwise from the limit run."""

    def at_batch(table: dict[str, dict[str, float]], batch: float) -> float:
        return table[min(table, key=lambda b: abs(int(b) - batch))]["cpu_ms_per_frame"] / 1000

    frames = vigil["frames"]
    batches = vigil.get("batch_mean", {})
    measured = vigil.get("model_cpu_s", {})
    steps: dict[str, float] = vigil.get("camera_cpu_s", {})
    estimate = {"detector": frames * at_batch(limit["detector"], batches.get("detector", 1.0))}
    if "vit" in limit:  # none without a ViT (models.classifier: null)
        estimate["classifier"] = frames * at_batch(limit["vit"], batches.get("classifier", 1.0))
    source = "measured" if all(measured.get(k, 0) > 0 for k in estimate) else "limit"
    models = {k: measured.get(k, 0.0) for k in measured} if source == "measured" else estimate
    dec_s = steps["decode"] if "decode" in steps else frames * limit["decode"]["cpu_ms_per_frame"] / 1000
    total = vigil["cpu_s"]
    rest = total - sum(models.values()) - dec_s
    out: dict[str, Any] = {
        "cpu_s_total": total,
        "cpu_s_forward_detector": models["detector"],
        "cpu_s_forward_vit": models.get("classifier", 0.0),
        "cpu_s_models": models,  # every model the run called (the clip head too, when measured)
        "forward_source": source,
        "forward_estimate_from_limit": estimate,
        "cpu_s_decode": dec_s,
        "decode_source": "measured" if "decode" in steps else "limit",
        "cpu_s_other": rest,
        "other_share": rest / total if total > 0 else None,
        "note": "other = everything but decode and forward passes: Ray (transport, object store, raylet/GCS), "
        "tracking, clip head, events, Redis, metrics, Python threads, and batching inefficiency",
    }
    if not steps or source != "measured":
        return out
    by_actor: dict[str, float] = vigil.get("cpu_s_by_actor", {})
    work = {k: steps.get(k, 0.0) for k in WORK_STEPS}
    parts = {name: sum(steps.get(k, 0.0) for k in keys) for name, keys in ORCHESTRATION_STEPS.items()}
    # Camera actors' CPU their step clocks do not see: Ray's core-worker threads, the metrics exporter.
    # Models run in the camera processes (HOST_MODEL_STEPS) are counted with the models; what their
    # steps spent beyond the model calls (hand-offs, result lists) with the workers' dispatch.
    host_steps = sum(v for k, v in steps.items() if k in HOST_MODEL_STEPS)
    in_cameras = sum(models.get(m, 0.0) for k, names in HOST_MODEL_STEPS.items() if k in steps for m in names)
    parts["camera_unattributed"] = by_actor.get("camera", 0.0) - sum(steps.values())
    workers = sum(v for k, v in by_actor.items() if k not in NOT_WORKERS)
    # dispatch, deserialising, batching (in worker actors, or around the models in the hosts)
    parts["workers_beyond_model_calls"] = workers - (sum(models.values()) - in_cameras) + (host_steps - in_cameras)
    parts["driver"] = by_actor.get("driver", 0.0)
    parts["ray_system_and_redis_server"] = total - sum(by_actor.values())  # raylet, GCS, idle workers, redis
    orchestration = sum(parts.values())
    out.update(
        {
            "cpu_s_pipeline_work": work,  # resize, ByteTrack, frame summaries, event rules
            "cpu_s_orchestration": parts,
            "orchestration_share": orchestration / total if total > 0 else None,
        }
    )
    return out


def per_frame_at(table: dict[str, dict[str, float]], batch: float) -> float:
    """CPU ms per frame from a limit table at a (mean) batch size, interpolated between the sizes measured."""
    sizes = sorted(int(b) for b in table)
    batch = min(max(batch, sizes[0]), sizes[-1])
    hi = next(b for b in sizes if b >= batch)
    lo = max((b for b in sizes if b <= batch), default=hi)
    a, b = table[str(lo)]["cpu_ms_per_frame"], table[str(hi)]["cpu_ms_per_frame"]
    return a if hi == lo else a + (b - a) * (batch - lo) / (hi - lo)


def model_speed(limit: dict[str, Any], vigil: dict[str, Any]) -> float | None:
    """How fast the machine ran the detector and the ViT during the Vigil run relative to the limit
    run (1.0: the same; 0.8: each call cost 25 % more CPU), from what the calls cost in the run
    (``vigil_model_cpu_seconds``) and what the limit run measured at the run's mean batch sizes,
    on the frames the pipeline feeds the models (scaled down near the decoder: the ViT's own
    scaling then costs less) where the limit run timed them, else on the decoded frames.

    A VM's speed drifts within minutes (docs/performance.md) and the modes run minutes apart, so
    ``ratio_vs_limit`` moves with it; dividing by this speed compares the two at the same speed.
    Where the calls ran slower in the run, the matched ratio forgives that whatever the cause (a
    slower machine, or Vigil's own threads sharing the caches), so there the truth lies between
    the two. CPU only (on a GPU the limit is wall time). The limit is on the wall clock and this
    speed on CPU time: on one machine the two scale together, so the quotient stays a fair match."""
    measured, batches = vigil.get("model_cpu_s", {}), vigil.get("batch_mean", {})
    spent = measured.get("detector", 0.0) + measured.get("classifier", 0.0)
    if limit.get("device") != "cpu" or spent <= 0 or not vigil.get("frames"):
        return None
    det = limit.get("detector_model_input", limit["detector"])
    expected_ms = per_frame_at(det, batches.get("detector", 1.0))
    if "vit" in limit:  # none without a ViT (models.classifier: null)
        vit = limit.get("vit_model_input", limit["vit"])
        expected_ms += per_frame_at(vit, batches.get("classifier", 1.0))
    return float(vigil["frames"] * expected_ms / 1000 / spent)
