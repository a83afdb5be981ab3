"""What a change of page state means for the outside world.

`PageState` returns these; the stream layer turns them into flags and metrics. Question
effects carry a frozen copy of the question as it was after the change, and expose the
fields a flag needs directly (`page_id`, `item_id`, `text`, `url`, `asked_at` …).
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.tracking.questions import TrackedQuestion

OUTCOME_ANSWERED_IN_TIME = "answered_in_time"
OUTCOME_ANSWERED_LATE = "answered_late"
OUTCOME_DELETED = "deleted"


@dataclass(frozen=True)
class _QuestionEffect:
    question: TrackedQuestion

    @property
    def page_id(self) -> str:
        return self.question.page_id

    @property
    def platform(self) -> str:
        return self.question.platform

    @property
    def item_id(self) -> str:
        return self.question.item_id

    @property
    def thread_id(self) -> str:
        return self.question.thread_id

    @property
    def author_id(self) -> str:
        return self.question.author_id

    @property
    def text(self) -> str:
        return self.question.text

    @property
    def url(self) -> str:
        return self.question.url

    @property
    def asked_at(self) -> float:
        return self.question.asked_at

    @property
    def deadline_at(self) -> float:
        return self.question.deadline_at


@dataclass(frozen=True)
class QuestionOpened(_QuestionEffect):
    """A question started (or resumed) being tracked: new, edited into a question, restored."""

    reason: str  # "new" / "edit" / "restore"


@dataclass(frozen=True)
class QuestionAnswered(_QuestionEffect):
    """The page answered; `in_time` is False after the deadline or once flagged overdue."""

    answered_at: float
    response_seconds: float
    in_time: bool
    answer_item_id: str

    @property
    def outcome(self) -> str:
        return OUTCOME_ANSWERED_IN_TIME if self.in_time else OUTCOME_ANSWERED_LATE


@dataclass(frozen=True)
class QuestionOverdue(_QuestionEffect):
    """The deadline passed without an answer; emitted once per question, ever."""

    age_seconds: float


@dataclass(frozen=True)
class QuestionDeleted(_QuestionEffect):
    """An open question was deleted before it was answered; it stops counting."""

    deleted_at: float

    @property
    def outcome(self) -> str:
        return OUTCOME_DELETED


@dataclass(frozen=True)
class QuestionWithdrawn(_QuestionEffect):
    """An edit turned an open question into a statement; no outcome is counted."""

    withdrawn_at: float


@dataclass(frozen=True)
class QuestionExpired(_QuestionEffect):
    """A question still open after the open-question retention was dropped from state."""

    age_seconds: float


@dataclass(frozen=True)
class NegativeSpike:
    """A page entered a negative-spike episode; emitted once per episode.

    `item_id` / `thread_id` / `text` / `url` are those of the comment that tipped the
    window over the thresholds; `negative_item_ids` lists the negative comments in it.
    """

    page_id: str
    platform: str
    negative_count: int
    comments_in_window: int
    share: float
    window_start: float
    window_end: float
    item_id: str
    thread_id: str
    text: str
    url: str
    negative_item_ids: tuple[str, ...]


@dataclass(frozen=True)
class NegativeSpikeEnded:
    """The page's negative-spike episode ended (counts fell below the exit thresholds)."""

    page_id: str
    platform: str
    negative_count: int
    comments_in_window: int
    share: float
    ended_at: float


@dataclass(frozen=True)
class PostSeen:
    """The page published a post not seen before."""

    page_id: str
    platform: str
    item_id: str
    posted_at: float
    posts_total: int


Effect = (
    QuestionOpened
    | QuestionAnswered
    | QuestionOverdue
    | QuestionDeleted
    | QuestionWithdrawn
    | QuestionExpired
    | NegativeSpike
    | NegativeSpikeEnded
    | PostSeen
)
