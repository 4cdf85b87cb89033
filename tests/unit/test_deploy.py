"""deploy/ files a user runs elsewhere: Docker cannot run here and there is no Kubernetes, so
they are validated against their published schemas (Compose spec, Kubernetes API) and our config."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from pipeline.core.config import parse_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S_VERSION = "1.31.0"


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.gpu.yml"])
def test_compose_files_match_the_compose_spec(name: str) -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(DEPLOY / name)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_mounts_and_builds_files_that_exist() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    for svc in compose["services"].values():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), volume
        build = svc.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
    for svc in compose["services"].values():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{port}: publish on loopback only"


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cuda"])
def test_dockerfiles_copy_what_exists_and_pin_opencv_headless(dockerfile: str) -> None:
    text = (DEPLOY / dockerfile).read_text()
    for sources in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for source in sources.split():
            assert (REPO / source).exists(), source
    # The image installs the locked versions without resolving again: OpenCV's headless build only.
    assert "pip install --no-cache-dir --no-deps -r requirements.lock" in text
    locked = (REPO / "requirements.lock").read_text()
    assert re.search(r"^opencv-python-headless==", locked, re.M) and not re.search(r"^opencv-python==", locked, re.M)
    assert re.search(r"^USER vigil$", text, re.M), "run as a non-root user"


def test_compose_vigil_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", "x")
    cfg = parse_config(yaml.safe_load((DEPLOY / "vigil.compose.yaml").read_text()))
    assert cfg.redis.url == "redis://:x@redis:6379/0"


def kuberay_docs() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((DEPLOY / "kuberay" / "raycluster.yaml").read_text()))


def test_kuberay_core_resources_and_pod_templates_validate() -> None:
    docs = kuberay_docs()
    assert [d["kind"] for d in docs] == ["ConfigMap", "RayCluster", "Service"]
    for doc in docs:
        if doc["kind"] == "RayCluster":
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    spec = docs[1]["spec"]
    templates = [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]
    for template in templates:  # the CRD embeds core PodTemplateSpecs: validate them as such
        pod_template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template}
        kubernetes_validate.validate(pod_template, K8S_VERSION, strict=True)


def test_kuberay_cluster_has_a_gpu_group_and_runs_vigil(monkeypatch: pytest.MonkeyPatch) -> None:
    config_map, cluster, _service = kuberay_docs()
    assert cluster["apiVersion"] == "ray.io/v1"
    assert cluster["spec"]["rayVersion"] == "2.60.0"
    groups = {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}
    gpu = groups["gpu"]
    assert gpu["rayStartParams"]["num-gpus"] == "1"
    limits = gpu["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"
    monkeypatch.setenv("VIGIL_REDIS_URL", "redis://redis:6379/0")
    monkeypatch.setenv("FRONT_DOOR_PASSWORD", "x")
    cfg = parse_config(yaml.safe_load(config_map["data"]["vigil.yaml"]))
    assert cfg.ray.address == "auto"
