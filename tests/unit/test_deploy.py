"""deploy/ files a user runs elsewhere: Docker cannot run here and there is no Kubernetes, so
they are validated against their published schemas (Compose spec, Kubernetes API) and our config."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


def string_values(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from string_values(value)
    elif isinstance(node, list):
        for value in node:
            yield from string_values(value)
    elif isinstance(node, str):
        yield node


def test_grafana_provisioning_expands_only_what_grafana_documents() -> None:
    """Grafana expands ``$NAME`` and ``${NAME}`` in provisioning values (no defaults: ``${NAME:-x}`` would
    reach it as text); every name it expands is set on the compose grafana service."""
    grafana = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]["grafana"]
    names: set[str] = set()
    for path in sorted((DEPLOY / "grafana" / "provisioning").rglob("*.yml")):
        for value in string_values(yaml.safe_load(path.read_text())):
            for ref in re.finditer(r"\$(\{[^}]*\}|[A-Za-z_]\w*)?", value):
                assert re.fullmatch(r"\$(\{[A-Za-z_]\w*\}|[A-Za-z_]\w*)", ref.group(0)), f"{path.name}: {value}"
                names.add(ref.group(0).strip("${}"))
    assert names == {"PROMETHEUS_URL"}
    assert names <= set(grafana["environment"])


SYSTEMD_UNIT = DEPLOY / "systemd" / "vigil.service"


def systemd_unit() -> dict[str, list[str]]:
    """``Section.Key`` -> its values, in order (a key may repeat)."""
    found: dict[str, list[str]] = {}
    section = ""
    for line in SYSTEMD_UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, value = line.split("=", 1)
        found.setdefault(f"{section}.{key}", []).append(value)
    return found


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_verifies_clean(tmp_path: Path) -> None:
    """`systemd-analyze verify` on the unit, its vigil binary swapped for this checkout's (verify checks
    that the binary exists): no warning at all (an unknown or misspelt key is only a warning)."""
    binary = systemd_unit()["Service.ExecStart"][0].split()[0]
    unit = tmp_path / "vigil.service"
    unit.write_text(SYSTEMD_UNIT.read_text().replace(binary, str(Path(sys.executable).parent / "vigil")))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_systemd_unit_agrees_with_the_docs_and_cameras_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    unit = systemd_unit()
    binary, command, config, *flags = unit["Service.ExecStart"][0].split()
    assert (command, flags) == ("run", ["--no-view"])
    assert binary.endswith("/.venv/bin/vigil"), "the venv `make setup` creates in the checkout"
    checkout = binary.removesuffix("/.venv/bin/vigil")
    config_dir = "/etc/" + unit["Service.ConfigurationDirectory"][0]
    state_dir = "/var/lib/" + unit["Service.StateDirectory"][0]
    env_file = unit["Service.EnvironmentFile"][0].removeprefix("-")
    assert Path(config).parent == Path(env_file).parent == Path(config_dir)
    assert unit["Service.WorkingDirectory"] == [state_dir]
    assert unit["Service.ProtectSystem"] == ["strict"] and unit["Service.Restart"] == ["on-failure"]
    assert unit["Service.RestartPreventExitStatus"] == ["2"], "a config error is not retried"
    environment = dict(pair.split("=", 1) for line in unit["Service.Environment"] for pair in shlex.split(line))
    assert environment["HOME"] == state_dir
    # configs/cameras.yaml installed as the unit's config writes its outbox where the sandbox lets it.
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    cfg = parse_config(yaml.safe_load((REPO / "configs" / "cameras.yaml").read_text()))
    assert cfg.events.spool.dir.is_relative_to(state_dir)
    docs = (REPO / "docs" / "deployment.md").read_text()
    for needle in (
        "deploy/systemd/vigil.service",
        f"{checkout}",
        f"configs/cameras.yaml {config}",
        env_file,
        f"useradd --system --home-dir {state_dir} --shell /usr/sbin/nologin {unit['Service.User'][0]}",
    ):
        assert needle in docs, needle


LOCKED_TORCH_BUILD_ONLY = re.compile(r"^(torch|torchvision|triton|cuda-|nvidia-(?!ml-py))")


def fake_venv(tmp_path: Path) -> tuple[Path, Path]:
    """A venv whose python logs every call (``pip show`` answers: not installed) and keeps a copy of
    the requirements file it was given."""
    venv, log = tmp_path / "venv", tmp_path / "calls.log"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {log}\n'
        'prev=""; for a in "$@"; do [ "$prev" = "-r" ] && cp "$a" ' + f'{tmp_path}/installed.lock; prev="$a"; done\n'
        'case " $* " in *" show "*) exit 1;; esac\n'
    )
    python.chmod(0o755)
    return venv, log


def install(tmp_path: Path, torch: str | None) -> subprocess.CompletedProcess[str]:
    venv, _ = fake_venv(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "VIGIL_TORCH"} | ({"VIGIL_TORCH": torch} if torch else {})
    return subprocess.run(
        ["bash", "scripts/install-python-deps.sh", "/bin/true", str(venv)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )


def test_install_script_default_installs_the_lock_as_it_is(tmp_path: Path) -> None:
    result = install(tmp_path, None)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "installed.lock").read_text() == (REPO / "requirements.lock").read_text()
    assert "--index-url" not in (tmp_path / "calls.log").read_text()


def test_install_script_cpu_torch_leaves_out_only_what_the_cuda_build_needs(tmp_path: Path) -> None:
    result = install(tmp_path, "cpu")
    assert result.returncode == 0, result.stderr
    lock = (REPO / "requirements.lock").read_text().splitlines()
    kept = (tmp_path / "installed.lock").read_text().splitlines()
    left_out = [line for line in lock if line not in kept]
    assert all(LOCKED_TORCH_BUILD_ONLY.match(line) for line in left_out)
    assert not any(LOCKED_TORCH_BUILD_ONLY.match(line) for line in kept)
    assert "nvidia-ml-py" in " ".join(kept)
    # Nothing kept needs what was left out (the installed packages' own requirements).
    gone = {canonicalize_name(line.split("==")[0]) for line in left_out} - {"torch", "torchvision"}
    for line in kept:
        if "==" in line and not line.startswith("#"):
            needs = {canonicalize_name(Requirement(r).name) for r in metadata.requires(line.split("==")[0]) or []}
            assert not needs & gone, f"{line} needs {needs & gone}"
    torch = next(line for line in lock if line.startswith("torch=="))
    vision = next(line for line in lock if line.startswith("torchvision=="))
    calls = (tmp_path / "calls.log").read_text()
    assert f"--index-url https://download.pytorch.org/whl/cpu {torch} {vision}" in calls


def test_install_script_refuses_an_unknown_torch_build(tmp_path: Path) -> None:
    result = install(tmp_path, "rocm")
    assert result.returncode == 2
    assert "VIGIL_TORCH=rocm: unknown" in result.stderr
    assert not (tmp_path / "calls.log").exists()
