"""The classifier gives freed heap memory back every few calls (models/memory.py)."""

from __future__ import annotations

from models.classifier import TextClassifier
from models.memory import TRIM_EVERY, FreedMemoryReturner


def test_every_nth_call_trims_the_heap_with_nothing_kept():
    calls: list[int] = []
    returner = FreedMemoryReturner(every=3, trim=lambda pad: calls.append(pad) or 1)
    assert [returner() for _ in range(7)] == [False, False, True, False, False, True, False]
    assert calls == [0, 0]  # malloc_trim(0): release everything it can


def test_without_glibc_it_does_nothing():
    returner = FreedMemoryReturner(trim=None)
    assert not any(returner() for _ in range(2 * TRIM_EVERY))


def test_on_linux_it_finds_glibc_malloc_trim_and_calls_it():
    returner = FreedMemoryReturner(every=1)
    assert returner.trim is not None
    assert returner() is True


def test_the_classifier_trims_after_its_predictions(tiny_model_dir):
    classifier = TextClassifier.load(tiny_model_dir)
    calls: list[int] = []
    classifier.return_freed_memory = FreedMemoryReturner(every=2, trim=calls.append)
    for _ in range(4):
        classifier.predict(["Когда починят дорогу?", "Спасибо"])
    classifier.predict_with_topics(["Опять нет света"])
    assert len(calls) == 2  # calls 2 and 4 of 5
