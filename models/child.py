"""The classifier in a child process: the worker's event loop and the model never share a GIL.

`ChildProcessClassifier(**load_kwargs)` starts one spawned process that loads
`TextClassifier.load(**load_kwargs)`; `predict(texts)` sends the texts there and blocks the
calling thread (the worker calls it from its classifier thread) until the scores are back.
Thresholds and labels are read from the child once, so `labels_above` runs locally.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

_MODEL: Any = None


def _load(kwargs: dict[str, Any], on_start: Callable[[], None] | None) -> None:
    global _MODEL
    if on_start is not None:
        on_start()
    from models.classifier import TextClassifier

    _MODEL = TextClassifier.load(**kwargs)


def _describe() -> tuple[list[str], dict[str, float]]:
    return list(_MODEL.labels), dict(_MODEL.thresholds)


def _predict(texts: list[str]) -> list[dict[str, float]]:
    return _MODEL.predict(texts)


class ChildProcessClassifier:
    """`TextClassifier`'s predict / labels_above / labels, the model living in a child process."""

    def __init__(self, on_start: Callable[[], None] | None = None, **load_kwargs: Any) -> None:
        """`on_start`: a module-level function the child runs first (the worker passes one
        that ends the child when the worker dies, even by SIGKILL)."""
        # spawn, not fork: the parent runs an event loop and threads that a fork would copy
        self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_load, initargs=(load_kwargs, on_start))
        self._labels, self.thresholds = self.pool.submit(_describe).result()

    @property
    def labels(self) -> list[str]:
        return self._labels

    def predict(self, texts: list[str]) -> list[dict[str, float]]:
        return self.pool.submit(_predict, list(texts)).result()

    def labels_above(self, scores: dict[str, float]) -> list[str]:
        from models.classifier import DEFAULT_THRESHOLD

        return [label for label, p in sorted(scores.items())
                if p >= self.thresholds.get(label, DEFAULT_THRESHOLD)]

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
