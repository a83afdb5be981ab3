"""Classify a batch of canonical events: which need the model, and what the scores mean."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from streams.events import CanonicalEvent

Predict = Callable[[list[str]], list[dict[str, float]]]

CLASSIFIED_ACTIONS = frozenset({"new", "edit", "restore"})


def needs_classification(event: CanonicalEvent) -> bool:
    """Comments with text to judge: new, edited and restored ones (not deletes, not posts)."""
    return event.kind == "comment" and event.action in CLASSIFIED_ACTIONS


@dataclass(frozen=True)
class Classified:
    """A comment with its probabilities and the labels above threshold."""

    event: CanonicalEvent
    scores: dict[str, float]
    labels: list[str]

    def to_record(self) -> dict[str, Any]:
        """The `dozor.classified` message."""
        return {**self.event.to_dict(), "scores": self.scores, "labels": self.labels}


def classify_events(
    events: Sequence[CanonicalEvent],
    predict: Predict,
    labels_above: Callable[[dict[str, float]], list[str]],
) -> dict[str, Classified]:
    """Run the model once over the batch's comments; returns results by event id.

    Events that need no model (posts, deletes) are absent from the result.
    """
    todo = [event for event in events if needs_classification(event)]
    if not todo:
        return {}
    scores = predict([event.text for event in todo])
    if len(scores) != len(todo):
        raise RuntimeError(f"classifier returned {len(scores)} results for {len(todo)} texts")
    return {
        event.event_id: Classified(event, s, labels_above(s)) for event, s in zip(todo, scores)
    }
