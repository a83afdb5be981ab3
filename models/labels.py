"""The threshold rule, without torch: the worker applies it to scores that come back from a
classifier in a child process (models/child.py), so its own process never imports the model's
libraries."""

from __future__ import annotations

#: A label's threshold where the model's dozor.json and the settings give none.
DEFAULT_THRESHOLD = 0.5


def labels_reaching(scores: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """The labels whose probability reaches its threshold (DEFAULT_THRESHOLD if none), sorted."""
    return [label for label, p in sorted(scores.items())
            if p >= thresholds.get(label, DEFAULT_THRESHOLD)]
