"""Watching a process from a test: wait for a condition, read its Prometheus metrics."""

from __future__ import annotations

import time


def metric_samples(text: str, name: str) -> dict[tuple, float]:
    """{sorted label items: value} of one sample name in an exposition text."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.25, message: str = ""):
    """Poll until `predicate()` returns a truthy value; returns it or fails the test."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except AssertionError:
            raise
        except Exception as exc:  # the process may not be up yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}: last={last!r}")
