"""Answer tracking: working-hours deadlines, "is this an answer", per-page state and effects.

Pure and synchronous; the Faust tables and agents that drive it live in the stream layer.
"""

from streams.tracking.answers import is_answer
from streams.tracking.calendar import (
    WorkingCalendar,
    add_working_seconds,
    answer_deadline,
    working_seconds_between,
)
from streams.tracking.effects import (
    Effect,
    NegativeSpike,
    NegativeSpikeEnded,
    PostSeen,
    QuestionAnswered,
    QuestionDeleted,
    QuestionExpired,
    QuestionOpened,
    QuestionOverdue,
    QuestionWithdrawn,
)
from streams.tracking.page_state import PageSnapshot, PageState, SpikePolicy
from streams.tracking.questions import TrackedQuestion

__all__ = [
    "Effect",
    "NegativeSpike",
    "NegativeSpikeEnded",
    "PageSnapshot",
    "PageState",
    "PostSeen",
    "QuestionAnswered",
    "QuestionDeleted",
    "QuestionExpired",
    "QuestionOpened",
    "QuestionOverdue",
    "QuestionWithdrawn",
    "SpikePolicy",
    "TrackedQuestion",
    "WorkingCalendar",
    "add_working_seconds",
    "answer_deadline",
    "is_answer",
    "working_seconds_between",
]
