"""Answer tracking as the stream sees it: one page's record, its effects as flags and counts.

Plain and synchronous: the Faust agent (streams/app.py) only loads a record from its table,
calls these functions with the page's events and the stream clock, and stores it back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.classify import Classified
from streams.events import CanonicalEvent
from streams.flags import (
    COMMENT_FLAG_REASONS,
    COMMENT_UPDATE_KINDS,
    Flag,
    FlagUpdate,
    flag_id,
    make_flag,
    make_update,
)
from streams.metrics import QUESTION_OUTCOMES
from streams.pages import Page
from streams.tracking.calendar import WorkingCalendar, answer_deadline
from streams.tracking.effects import (
    Effect,
    NegativeSpike,
    NegativeSpikeEnded,
    QuestionAnswered,
    QuestionDeleted,
    QuestionOverdue,
)
from streams.tracking.page_state import PageSnapshot, PageState, SpikePolicy


@dataclass(frozen=True)
class TrackingPolicy:
    """Deadlines and spikes (values from settings; per-page deadlines from the registry)."""

    calendar: WorkingCalendar
    default_deadline_hours: float = 8.0
    spike: SpikePolicy = field(default_factory=SpikePolicy)


@dataclass
class PageRecord:
    """A page's table value: its tracking state, its partition and its lifetime counts.

    The counts (questions by outcome) live here rather than in process-local counters, so
    `dozor_questions_total` survives a restart or a move of the page to another worker.
    """

    state: PageState
    partition: int
    counts: dict[str, int] = field(default_factory=dict)
    #: (input, offset) of the newest message applied to the page, the input being its raw
    #: topic and partition ("dozor.raw.vk:2"): stored in the same table value as the state, so a
    #: message re-read after a crash is recognised exactly when its effect on the state was
    #: stored (streams/dedup.py).
    applied: tuple[str, int] | None = None
    #: The input the page's events come from (raw topic and partition, e.g. "dozor.raw.vk:2"):
    #: how far that input has got decides how far a clock tick may sweep the page (sweep_time).
    source: str | None = None
    #: The item id of the negative_spike flag of the page's current episode ("spike:<id>"),
    #: so the episode's end can be sent as an update of that flag (flag_updates).
    spike_item: str | None = None
    #: Ids of the page's events, and of the flags sent about it, each with the stream time it
    #: was remembered at (oldest first): what recognises a copy of an event, or a flag sent
    #: before a crash (streams/dedup.py). In this record, so they are stored with the state.
    seen: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)

    @classmethod
    def new(cls, page_id: str, partition: int, policy: TrackingPolicy) -> PageRecord:
        return cls(PageState(page_id, policy.spike), partition, {o: 0 for o in QUESTION_OUTCOMES})

    @classmethod
    def from_value(cls, value: dict[str, Any], policy: TrackingPolicy) -> PageRecord:
        applied = value.get("applied")
        if applied and not isinstance(applied[0], str):
            # Stored before the worker read the raw topics itself: an events-topic offset, not
            # comparable with raw offsets. The remembered ids still recognise copies.
            applied = None
        return cls(
            PageState.from_dict(value["state"], policy.spike),
            int(value["partition"]),
            {**{o: 0 for o in QUESTION_OUTCOMES}, **value.get("counts", {})},
            (applied[0], int(applied[1])) if applied else None,
            value.get("source"),
            value.get("spike_item"),
            value.get("seen") or {},
            value.get("sent") or {},
        )

    @classmethod
    def from_json(cls, value: bytes | str, policy: TrackingPolicy) -> PageRecord:
        return cls.from_value(orjson.loads(value), policy)

    def to_json(self) -> bytes:
        """The `pages` table value: compact JSON bytes (the table keeps bytes, not a dict tree:
        a third of the memory, and nothing for Faust to serialise again). Encoded by orjson:
        a busy page's record is written on every batch, and the standard encoder was most of
        the step's time at 600 comments/s."""
        return orjson.dumps(self.to_value())

    def to_value(self) -> dict[str, Any]:
        return {
            "state": self.state.to_dict(), "partition": self.partition, "counts": self.counts,
            "applied": list(self.applied) if self.applied else None, "source": self.source,
            "spike_item": self.spike_item, "seen": self.seen, "sent": self.sent,
        }


def deadline_for(page: Page, asked_at: float, policy: TrackingPolicy) -> float:
    """When the page must have answered a question asked at `asked_at`."""
    hours = page.answer_deadline_hours
    if hours is None:
        hours = policy.default_deadline_hours
    return answer_deadline(policy.calendar, asked_at, hours, page.deadline_mode)


def apply_event(
    record: PageRecord,
    event: CanonicalEvent,
    classified: Classified | None,
    page: Page,
    policy: TrackingPolicy,
    now: float | None = None,
) -> list[Effect]:
    """Feed one event of the page to its state; returns the effects, counts updated.

    `now` (the stream clock) dates events that carry no time of their own (VK deletes).
    """
    labels = classified.labels if classified else []
    is_question = "question" in labels and not event.by_page
    deadline_at = deadline_for(page, event.created_at, policy) if is_question else 0.0
    effects = record.state.apply(
        event,
        is_question=is_question,
        is_negative="negative" in labels,
        deadline_at=deadline_at,
        now=now if event.action == "delete" else None,
        topic=classified.topic if classified else None,
    )
    count_outcomes(record, effects)
    return effects


def sweep_time(now: float, trusted: bool, source: str | None, source_clocks: dict[str, float]) -> float:
    """How far a clock tick may sweep a page whose partition clock reads `now`.

    The partition clock is the newest event time of *any* page in the partition. Pages reach a
    partition from several inputs (raw partitions, normalised in parallel), and after a restart
    or a backlog one input can be hours ahead of another: sweeping every page at `now` would
    flag a question whose answer is still waiting in the slower input. So a tick sweeps a page
    only as far as the newest event time seen from the page's own input (`source_clocks`); its
    events are read in order, so everything before that time has been applied.

    `trusted`: the time is known to be complete for every input (a forced tick from `dozor
    replay --advance-clock-to`, or the wall clock of an idle partition), so `now` holds. A page
    whose input is unknown (events without the source header) is swept at `now`, as before.
    """
    if trusted or source is None:
        return now
    return min(now, source_clocks.get(source, 0.0))


def sweep(record: PageRecord, now: float) -> list[Effect]:
    """Advance the page to the stream clock `now`: overdue questions, pruning."""
    effects = record.state.sweep(now)
    count_outcomes(record, effects)
    return effects


def count_outcomes(record: PageRecord, effects: list[Effect]) -> None:
    for effect in effects:
        if isinstance(effect, (QuestionAnswered, QuestionDeleted)):
            record.counts[effect.outcome] = record.counts.get(effect.outcome, 0) + 1


def effect_flags(effects: list[Effect], page: Page, now: float) -> list[Flag]:
    """The flags a moderator must see for these effects: overdue questions, spikes."""
    flags = []
    for effect in effects:
        if isinstance(effect, QuestionOverdue):
            flags.append(
                make_flag(
                    "unanswered_question",
                    page,
                    platform=effect.platform,
                    item_id=effect.item_id,
                    thread_id=effect.thread_id,
                    author_id=effect.author_id,
                    text=effect.text,
                    link=effect.url,
                    created_at=effect.asked_at,
                    flagged_at=now,
                    topic=effect.question.topic,
                    details={
                        "asked_at": effect.asked_at,
                        "deadline_at": effect.deadline_at,
                        "age_seconds": effect.age_seconds,
                    },
                )
            )
        elif isinstance(effect, NegativeSpike):
            flags.append(
                make_flag(
                    "negative_spike",
                    page,
                    platform=effect.platform,
                    # One flag per episode: the comment that tipped the window names it.
                    item_id=f"spike:{effect.item_id}",
                    thread_id=effect.thread_id,
                    author_id="",
                    text=effect.text,
                    link=effect.url,
                    created_at=effect.window_end,
                    flagged_at=now,
                    details={
                        "negative_count": effect.negative_count,
                        "comments_in_window": effect.comments_in_window,
                        "share": effect.share,
                        "window_start": effect.window_start,
                        "window_end": effect.window_end,
                        "negative_item_ids": list(effect.negative_item_ids),
                    },
                )
            )
    return flags


def flag_updates(
    record: PageRecord,
    event: CanonicalEvent,
    classified: Classified | None,
    effects: list[Effect],
    now: float,
    flagged: Callable[[str], bool],
) -> list[FlagUpdate]:
    """Updates of flags already raised, for what `event` (and its `effects`) did to the page.

    Call it after the event was applied to `record` and before the event's own new flags are
    remembered: `flagged(flag_id)` says whether that flag was sent earlier (`record.sent`). One update per (flag, happening), its id from the event:

    * answered — the page answered a question flagged overdue (a late answer). `link` and
      `text` are the answer's when this event is the answer (an answer remembered from earlier
      closes a question re-opened by an edit: then they are null, the answer's item id is in
      `details`).
    * edited / deleted / restored — a citizen comment with a toxic, strongly_negative or
      unanswered_question flag changed; an edit carries the new text and scores.
    * spike_ended — the episode whose negative_spike flag `record.spike_item` names ended.
    """
    page_id = event.page_id
    updates: list[FlagUpdate] = []
    for effect in effects:
        if isinstance(effect, QuestionAnswered):
            fid = flag_id(page_id, effect.item_id, "unanswered_question")
            if effect.question.overdue_flagged or flagged(fid):
                direct = event.item_id == effect.answer_item_id
                updates.append(make_update(
                    fid, "answered", page_id, effect.item_id, effect.answered_at, event.event_id,
                    link=event.url if direct else None, text=event.text if direct else None,
                    details={"answer_item_id": effect.answer_item_id,
                             "response_seconds": effect.response_seconds},
                ))
        elif isinstance(effect, NegativeSpike):
            record.spike_item = f"spike:{effect.item_id}"  # the flag effect_flags makes
        elif isinstance(effect, NegativeSpikeEnded) and record.spike_item is not None:
            updates.append(make_update(
                flag_id(page_id, record.spike_item, "negative_spike"), "spike_ended", page_id,
                record.spike_item, effect.ended_at, event.event_id,
                details={"negative_count": effect.negative_count,
                         "comments_in_window": effect.comments_in_window,
                         "share": effect.share, "ended_at": effect.ended_at},
            ))
            record.spike_item = None
    kind = COMMENT_UPDATE_KINDS.get(event.action)
    if kind is not None and event.kind == "comment" and not event.by_page:
        question = record.state.questions.get(event.item_id)
        for reason in COMMENT_FLAG_REASONS:
            fid = flag_id(page_id, event.item_id, reason)
            overdue = reason == "unanswered_question" and question is not None and (
                question.overdue_flagged)
            if not (overdue or flagged(fid)):
                continue
            edited = kind == "edited"
            updates.append(make_update(
                fid, kind, page_id, event.item_id, event.created_at or now, event.event_id,
                text=event.text if edited else None,
                scores=dict(classified.scores) if edited and classified is not None else None,
            ))
    return updates


@dataclass(frozen=True)
class PageView:
    """What metrics and `dozor pages` show of one page at one stream time."""

    snapshot: PageSnapshot
    counts: dict[str, int]
    partition: int


def page_view(record: PageRecord, now: float) -> PageView:
    return PageView(record.state.snapshot(now), dict(record.counts), record.partition)
