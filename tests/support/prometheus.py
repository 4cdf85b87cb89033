"""A real Prometheus (Debian's `prometheus` binary) running the shipped config and rules, rewritten
to scrape a given port every second, for the tests and for benchmarks/metrics_plot.py."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from pipeline.runtime.redis_server import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


class Prometheus:
    """The shipped prometheus.yml and rules, with the target, intervals and `for:` rewritten for a test."""

    def __init__(self, tmp: Path, target_port: int) -> None:
        self.port = free_port()
        config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        config["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{target_port}"]}]
        rules = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "vigil-alerts.yml").read_text())
        for rule in rules["groups"][0]["rules"]:
            rule["for"] = "0s"  # fire at once: the test cannot wait a minute per alert
        (tmp / "rules").mkdir()
        (tmp / "rules" / "vigil-alerts.yml").write_text(yaml.safe_dump(rules))
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def query(self, expr: str) -> dict[str, Any]:
        return http_json(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def query_range(self, expr: str, start: float, end: float, step_s: float) -> dict[str, Any]:
        params = {"query": expr, "start": start, "end": end, "step": step_s}
        return http_json(f"{self.url}/api/v1/query_range?" + urllib.parse.urlencode(params))  # type: ignore[no-any-return]
