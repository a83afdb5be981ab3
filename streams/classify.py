"""Classify a batch of canonical events: which need the model, and what the scores mean."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from streams.events import CanonicalEvent

Predict = Callable[[list[str]], list[dict[str, float]]]
#: Scores and, per text, its topic (a theme key, or None): models.classifier's predict_with_topics.
PredictWithTopics = Callable[[list[str]], tuple[list[dict[str, float]], list[str | None]]]

CLASSIFIED_ACTIONS = frozenset({"new", "edit", "restore"})


def needs_classification(event: CanonicalEvent) -> bool:
    """Comments with text to judge: new, edited and restored ones (not deletes, not posts)."""
    return event.kind == "comment" and event.action in CLASSIFIED_ACTIONS


@dataclass(frozen=True)
class Classified:
    """A comment with its probabilities, the labels above threshold and its topic (a theme key
    of the model's topic head, or None: no head, or no theme probable enough)."""

    event: CanonicalEvent
    scores: dict[str, float]
    labels: list[str]
    topic: str | None = None

    def to_record(self) -> dict[str, Any]:
        """The `dozor.classified` message."""
        return {**self.event.to_dict(), "scores": self.scores, "labels": self.labels,
                "topic": self.topic}


def classify_events(
    events: Sequence[CanonicalEvent],
    predict: Predict,
    labels_above: Callable[[dict[str, float]], list[str]],
    predict_with_topics: PredictWithTopics | None = None,
) -> dict[str, Classified]:
    """Run the model once over the batch's comments; returns results by event id.

    With `predict_with_topics` the model is run through it instead (scores and topics in one
    pass); otherwise every topic is None. Events that need no model (posts, deletes) are
    absent from the result.
    """
    todo = [event for event in events if needs_classification(event)]
    if not todo:
        return {}
    texts = [event.text for event in todo]
    if predict_with_topics is not None:
        scores, topics = predict_with_topics(texts)
    else:
        scores, topics = predict(texts), [None] * len(todo)
    if len(scores) != len(todo) or len(topics) != len(todo):
        raise RuntimeError(f"classifier returned {len(scores)} results for {len(todo)} texts")
    return {
        event.event_id: Classified(event, s, labels_above(s), topic)
        for event, s, topic in zip(todo, scores, topics)
    }
