"""``ray.placement``: what auto picks on a cluster, and how cameras share camera hosts."""

from __future__ import annotations

import pytest

from pipeline.core.config import RayConfig, parse_config
from pipeline.runtime.placement import resolve_placement, unused_keys


def _ray(**ray: object) -> RayConfig:
    return parse_config({"cameras": [{"id": "a", "url": "/x.mp4"}], "ray": ray}).ray


@pytest.mark.parametrize(
    ("cluster", "layout", "per_host", "max_hosts"),
    [
        ({"CPU": 2.0}, "hosts", None, 2),  # one host per core, cameras spread over them
        ({"CPU": 4.0, "GPU": 0.0}, "hosts", None, 4),
        ({"CPU": 16.0, "GPU": 1.0}, "workers", 16, None),  # GPU: shared pools, hosts only decode
    ],
)
def test_auto_picks_the_layout_for_the_cluster(
    cluster: dict[str, float], layout: str, per_host: int | None, max_hosts: int | None
) -> None:
    choice = resolve_placement(_ray(), cluster)
    assert (choice.layout, choice.cameras_per_host, choice.max_hosts) == (layout, per_host, max_hosts)
    gpu = "a" if cluster.get("GPU") else "no"
    assert choice.describe().startswith(f"placement: {layout} (auto: the Ray cluster has {gpu} GPU)")


def test_an_explicit_layout_and_host_size_are_kept() -> None:
    choice = resolve_placement(_ray(placement="fused", cameras_per_host=3), {"CPU": 2.0})
    assert (choice.layout, choice.cameras_per_host, choice.max_hosts, choice.reason) == (
        "fused",
        3,
        None,
        "as configured",
    )


def test_hosts_with_more_torch_threads_are_fewer() -> None:
    assert resolve_placement(_ray(placement="hosts", detector={"torch_threads": 2}), {"CPU": 4.0}).max_hosts == 2


def test_auto_names_the_keys_the_chosen_layout_leaves_unused() -> None:
    ray_cfg = _ray(pin_hosts=False, detector={"replicas": 2, "torch_threads": 2}, classifier={"num_cpus": 1})
    assert unused_keys(ray_cfg, resolve_placement(ray_cfg, {"CPU": 4.0}).layout) == ["classifier", "detector.replicas"]
    assert unused_keys(ray_cfg, resolve_placement(ray_cfg, {"CPU": 4.0, "GPU": 1.0}).layout) == ["pin_hosts"]
    assert unused_keys(_ray(), "hosts") == []
