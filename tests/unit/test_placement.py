"""``ray.placement``: what auto picks on a cluster, and how many cameras share a host."""

from __future__ import annotations

import pytest

from pipeline.core.config import parse_config
from pipeline.runtime.placement import resolve_placement


def _ray(n_cameras: int, **ray: object):  # type: ignore[no-untyped-def]
    cams = [{"id": f"c{i}", "url": "/x.mp4"} for i in range(n_cameras)]
    cfg = parse_config({"cameras": cams, "ray": ray})
    return cfg.ray, cfg.cameras


@pytest.mark.parametrize(
    ("cluster", "layout", "per_host"),
    [
        ({"CPU": 2.0}, "hosts", 2),  # 4 cameras over one host per core
        ({"CPU": 4.0}, "hosts", 1),
        ({"CPU": 1.0}, "hosts", 4),
        ({"CPU": 16.0, "GPU": 1.0}, "workers", 16),  # GPU: shared pools, hosts only decode
    ],
)
def test_auto_picks_the_layout_for_the_cluster(cluster: dict[str, float], layout: str, per_host: int) -> None:
    ray_cfg, cameras = _ray(4)
    choice = resolve_placement(ray_cfg, cameras, cluster)
    assert (choice.layout, choice.cameras_per_host) == (layout, per_host)
    assert f"placement: {layout} (auto: the Ray cluster has {'a' if 'GPU' in cluster else 'no'} GPU)" in (
        choice.describe()
    )


def test_an_explicit_layout_and_host_size_are_kept() -> None:
    ray_cfg, cameras = _ray(4, placement="fused", cameras_per_host=3)
    choice = resolve_placement(ray_cfg, cameras, {"CPU": 2.0})
    assert (choice.layout, choice.cameras_per_host, choice.reason) == ("fused", 3, "as configured")


def test_hosts_with_more_torch_threads_are_fewer() -> None:
    ray_cfg, cameras = _ray(4, placement="hosts", detector={"torch_threads": 2})
    assert resolve_placement(ray_cfg, cameras, {"CPU": 4.0}).cameras_per_host == 2
