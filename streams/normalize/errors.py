"""The error a normaliser raises for input that must go to the dead-letter topic."""

from __future__ import annotations

#: Reasons are a small fixed set: they become the `reason` label of dozor_dead_letters_total.
DEAD_LETTER_REASONS = (
    "invalid_json",
    "not_an_object",
    "unsupported_type",
    "missing_field",
    "invalid_field",
)


class InvalidPayload(ValueError):
    """A payload that cannot become a canonical event.

    `reason` is one of DEAD_LETTER_REASONS; `detail` says what exactly is wrong, for the
    human reading the dead-letter topic.
    """

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in DEAD_LETTER_REASONS:
            raise ValueError(f"unknown dead-letter reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
