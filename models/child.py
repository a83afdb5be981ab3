"""The classifier in a child process: the worker's event loop and the model never share a GIL.

`ChildProcessClassifier(**load_kwargs)` starts one spawned process that loads
`TextClassifier.load(**load_kwargs)`; `predict(texts)` sends the texts there and blocks the
calling thread (the worker calls it from its classifier thread) until the scores are back.
Thresholds, labels and the topic head's theme names are read from the child once, so
`labels_above` runs locally.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from models.labels import labels_reaching

log = logging.getLogger(__name__)

_MODEL: Any = None


def _load(kwargs: dict[str, Any], on_start: Callable[[], None] | None) -> None:
    global _MODEL
    if on_start is not None:
        on_start()
    from models.classifier import TextClassifier

    _MODEL = TextClassifier.load(**kwargs)


def _describe() -> tuple[list[str], dict[str, float], dict[str, str]]:
    return list(_MODEL.labels), dict(_MODEL.thresholds), dict(_MODEL.topic_names)


def _predict(texts: list[str]) -> list[dict[str, float]]:
    return _MODEL.predict(texts)


def _predict_with_topics(texts: list[str]) -> tuple[list[dict[str, float]], list[str | None]]:
    return _MODEL.predict_with_topics(texts)


class ChildProcessClassifier:
    """`TextClassifier`'s predict / predict_with_topics / labels_above / labels / topic_names, the
    model living in a child process."""

    def __init__(self, on_start: Callable[[], None] | None = None, **load_kwargs: Any) -> None:
        """`on_start`: a module-level function the child runs first (the worker passes one
        that ends the child when the worker dies, even by SIGKILL)."""
        self._initargs = (load_kwargs, on_start)
        self.pool = self._start()
        self._labels, self.thresholds, self.topic_names = self.pool.submit(_describe).result()

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: the parent runs an event loop and threads that a fork would copy
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_load, initargs=self._initargs)

    @property
    def labels(self) -> list[str]:
        return self._labels

    def predict(self, texts: list[str]) -> list[dict[str, float]]:
        """Scores from the child; a child that died (killed, out of memory) is started again
        once for this call, and the error is raised if the new one fails too."""
        return self._call(_predict, texts)

    def predict_with_topics(self, texts: list[str]) -> tuple[list[dict[str, float]], list[str | None]]:
        """Scores and topics from the child (see `predict` for a child that died)."""
        return self._call(_predict_with_topics, texts)

    def _call(self, function: Callable[[list[str]], Any], texts: list[str]) -> Any:
        try:
            return self.pool.submit(function, list(texts)).result()
        except BrokenProcessPool:
            log.error("the classifier's child process died; starting a new one")
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._start()
            return self.pool.submit(function, list(texts)).result()

    def labels_above(self, scores: dict[str, float]) -> list[str]:
        return labels_reaching(scores, self.thresholds)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
