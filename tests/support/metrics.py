"""Reading a Prometheus exposition the way a scraper does: one helper instead of a copy per test."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, tuple[tuple[str, str], ...]]


def scrape(port: int, host: str = "127.0.0.1") -> str:
    """The text of ``http://host:port/metrics``."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as resp:
        return str(resp.read().decode())


def samples(text: str) -> dict[Sample, float]:
    """Every sample of an exposition: ``{(name, sorted label pairs): value}``."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): float(s.value)
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    """The one sample ``name`` whose labels include ``labels`` (None when there is none; an error when
    several match, so a test never reads an arbitrary one)."""
    found = [
        v
        for (n, pairs), v in samples(text).items()
        if n == name and all(dict(pairs).get(k) == want for k, want in labels.items())
    ]
    if len(found) > 1:
        raise AssertionError(f"{name}{labels} matches {len(found)} samples; name more labels")
    return found[0] if found else None


def total(text: str, name: str, **labels: str) -> float:
    """The sum of every sample ``name`` whose labels include ``labels`` (0 when there is none)."""
    return sum(
        v
        for (n, pairs), v in samples(text).items()
        if n == name and all(dict(pairs).get(k) == want for k, want in labels.items())
    )
