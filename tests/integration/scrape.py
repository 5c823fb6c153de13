"""Reading a process's /metrics, /healthz and /readyz over real HTTP, with its bearer token."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import Endpoint, wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def get(url: str, token: str = "") -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def scrape(at: Endpoint) -> Samples:
    """Every sample of /metrics, keyed by (sample name, labels)."""
    status, body = get(f"{at.base}/metrics", at.token)
    assert 200 == status, body
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample (0 when the series does not exist yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def probe(at: Endpoint, path: str) -> tuple[int, dict[str, Any]]:
    status, body = get(f"{at.base}{path}", at.token)
    return status, orjson.loads(body)


def probe_until(
    at: Endpoint,
    path: str,
    accept: Callable[[int, dict[str, Any]], bool],
    timeout: float,
    what: str,
) -> tuple[int, dict[str, Any]]:
    """Poll a probe until `accept(status, body)`; the last answer is returned."""

    def answer() -> tuple[int, dict[str, Any]] | None:
        status, body = probe(at, path)
        return (status, body) if accept(status, body) else None

    found: tuple[int, dict[str, Any]] = wait_until(answer, timeout, what)
    return found
