"""A citizen question that Dozor follows until the page answers it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.plain import known_fields, scalars_to_dict


@dataclass(frozen=True, slots=True)
class TrackedQuestion:
    """One citizen comment classified as a question, and what became of it.

    It is open while it is still a question, not deleted and not answered. A closed
    question stays in the page state for a retention period so that duplicates, late
    edits and the page's late replies find it.
    """

    page_id: str
    platform: str
    item_id: str
    thread_id: str
    author_id: str
    text: str
    url: str
    asked_at: float
    deadline_at: float
    is_question: bool = True
    deleted: bool = False
    answered_at: float | None = None
    answer_item_id: str | None = None
    overdue_flagged: bool = False
    closed_at: float | None = None
    #: The topic the model gave the comment's current text (a theme key), or None.
    topic: str | None = None

    @property
    def is_open(self) -> bool:
        return self.is_question and not self.deleted and self.answered_at is None

    @property
    def answered_late(self) -> bool:
        """Answered after the deadline, or after it had been flagged overdue."""
        return self.answered_at is not None and (
            self.overdue_flagged or self.answered_at > self.deadline_at
        )

    def to_dict(self) -> dict[str, Any]:
        return scalars_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrackedQuestion:
        return cls(**known_fields(cls, data))
