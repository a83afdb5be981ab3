"""What the moderators read: Russian names of reasons, statuses and actions, times, deadlines.

Pure functions over plain values, so the wording and the working-hours arithmetic are tested
without HTTP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from streams.tracking.calendar import WorkingCalendar, working_seconds_between

REASONS = {
    "toxic": "токсичный комментарий",
    "strongly_negative": "резкий негатив",
    "unanswered_question": "вопрос без ответа",
    "negative_spike": "всплеск негатива",
}
STATUSES = {"new": "новый", "in_progress": "в работе", "resolved": "решён"}
RESOLUTIONS = {
    "answered": "отвечено",
    "hidden": "скрыт",
    "dismissed": "отклонён",
    "answered_by_page": "отвечено страницей",
    "deleted_on_page": "удалён на странице",
}
#: What a moderator may choose; the other resolutions are set by the system.
HUMAN_RESOLUTIONS = ("answered", "hidden", "dismissed")
ACTIONS = {
    "flagged": "поставлен в очередь",
    "take": "взят в работу",
    "release": "возвращён в очередь",
    "resolve": "решён",
    "auto_close": "закрыт автоматически",
    "edited": "комментарий изменён",
    "deleted": "комментарий удалён",
    "restored": "комментарий восстановлен",
    "model_error": "модель ошиблась",
    "answered": "страница ответила",
    "spike_ended": "всплеск закончился",
}
ROLES = {"operator": "оператор ЦУР", "municipal": "модератор муниципалитета", "admin": "администратор"}
LABELS = {"question": "вопрос", "negative": "негатив", "toxic": "токсичность",
          "positive": "позитив", "neutral": "нейтрально"}
PLATFORMS = {"vk": "ВКонтакте", "telegram": "Telegram"}
#: Age filter presets: value → (Russian label, min age seconds, max age seconds).
AGE_FILTERS: dict[str, tuple[str, float | None, float | None]] = {
    "lt1h": ("моложе 1 ч", None, 3600.0),
    "gt1h": ("старше 1 ч", 3600.0, None),
    "gt8h": ("старше 8 ч", 8 * 3600.0, None),
    "gt24h": ("старше суток", 86400.0, None),
    "gt72h": ("старше 3 суток", 3 * 86400.0, None),
}

#: What the «Тема» column shows for an item without a topic.
NO_TOPIC = "—"


def read_topic_names(model: str | Path | None) -> dict[str, str]:
    """Theme key → Russian name from the model folder's ``topics.json`` (``themes``); empty
    when the folder has none (no topic head, a hub id, unreadable): the queue then shows the
    keys themselves."""
    if not model:
        return {}
    try:
        themes = json.loads((Path(model) / "topics.json").read_text(encoding="utf-8"))["themes"]
    except (OSError, ValueError, TypeError, KeyError):
        return {}
    if not isinstance(themes, dict):
        return {}
    return {str(k): str(v) for k, v in themes.items()}


def topic_name(topic: str | None, names: dict[str, str]) -> str:
    """The Russian name of a theme key (the key itself when unknown), «—» for none."""
    if not topic:
        return NO_TOPIC
    return names.get(topic, topic)


def sentence(message: object) -> str:
    """A store's refusal as a sentence for people: capital letter, one full stop."""
    text = str(message).strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else "Действие не выполнено."


def run_action(call):
    """Run a store call for a person's request; the store's refusals become HTTP errors.

    Another municipality's item answers 404 like a missing one (NotFound from the store), so
    flag ids cannot be probed.
    """
    from fastapi import HTTPException

    from services.moderation.errors import (
        InvalidTransition, ModerationError, NotFound, PermissionDenied,
    )

    try:
        return call()
    except NotFound:
        raise HTTPException(404, "Элемент не найден.") from None
    except PermissionDenied as exc:
        raise HTTPException(403, sentence(exc)) from None
    except InvalidTransition as exc:
        raise HTTPException(409, sentence(exc)) from None
    except ModerationError as exc:
        raise HTTPException(422, sentence(exc)) from None


def label(mapping: dict[str, str], value: str | None) -> str:
    """The Russian name of a code, or the code itself when it has none."""
    if value is None:
        return ""
    return mapping.get(value, value)


def format_time(ts: float | None, calendar: WorkingCalendar) -> str:
    """`06.12.2026 09:15` in the region's time zone; empty for None."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, calendar.zone).strftime("%d.%m.%Y %H:%M")


def format_duration(seconds: float) -> str:
    """`2 д 3 ч`, `3 ч 20 мин`, `5 мин`, `меньше минуты` (whole minutes, rounded down)."""
    minutes = int(max(0.0, seconds) // 60)
    if minutes == 0:
        return "меньше минуты"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} д {hours} ч" if hours else f"{days} д"
    if hours:
        return f"{hours} ч {mins} мин" if mins else f"{hours} ч"
    return f"{mins} мин"


@dataclass(frozen=True)
class DeadlineView:
    """A deadline as shown: when, whether it passed, and the working time left or over."""

    deadline_at: float | None
    text: str
    overdue: bool


def deadline_view(deadline_at: float | None, now: float, calendar: WorkingCalendar,
                  resolved: bool = False) -> DeadlineView:
    """Time left until `deadline_at` counted in working hours of the region's calendar.

    Answer deadlines are set in working hours, so "осталось 2 ч" must mean two working hours:
    a question due on Monday morning shows the working time left, not the weekend.
    """
    if deadline_at is None:
        return DeadlineView(None, "срок не задан", False)
    when = format_time(deadline_at, calendar)
    if resolved:
        return DeadlineView(deadline_at, f"срок {when}", False)
    if now < deadline_at:
        left = working_seconds_between(calendar, now, deadline_at)
        return DeadlineView(deadline_at, f"срок {when}, осталось {format_duration(left)} "
                            "рабочего времени", False)
    over = working_seconds_between(calendar, deadline_at, now)
    if over < 60:  # passed after hours: no working time is lost yet
        return DeadlineView(deadline_at, f"срок {when}, просрочено", True)
    return DeadlineView(deadline_at, f"срок {when}, просрочено на {format_duration(over)} "
                        "рабочего времени", True)


def short_text(text: str, limit: int = 180) -> str:
    """One line of at most `limit` characters for the queue table."""
    line = " ".join((text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def queue_row(item, now: float, calendar: WorkingCalendar,
              topic_names: dict[str, str] | None = None) -> dict:
    """An item (store.ItemDetail) as one row of the queue table; ``topic_names``: theme key →
    Russian name (``read_topic_names``)."""
    deadline = deadline_view(item.deadline_at, now, calendar, resolved=item.status == "resolved")
    if item.deadline_at is None:
        deadline_short = "—"
    elif item.status == "resolved":
        deadline_short = format_time(item.deadline_at, calendar)
    elif deadline.overdue:
        over = working_seconds_between(calendar, item.deadline_at, now)
        deadline_short = "просрочен на " + format_duration(over) if over >= 60 else "просрочен"
    else:
        deadline_short = "осталось " + format_duration(
            working_seconds_between(calendar, now, item.deadline_at))
    return {
        "flag_id": item.flag_id,
        "reason": item.reason,
        "reason_name": label(REASONS, item.reason),
        "topic": item.topic,
        "topic_name": topic_name(item.topic, topic_names or {}),
        "page_name": item.page_name,
        "municipality": item.municipality,
        "text_short": short_text(item.text),
        "age_text": format_duration(now - item.created_at),
        "created_at_text": format_time(item.created_at, calendar),
        "deadline_short": deadline_short,
        "overdue": bool(item.overdue),
        "status": item.status,
        "status_name": label(STATUSES, item.status),
        "assignee_name": item.assignee_name,
    }


def why_flagged(item, calendar: WorkingCalendar) -> str:
    """One Russian sentence: why this item is in the queue."""
    scores = item.scores or {}
    details = item.details or {}
    if item.reason == "toxic":
        return (f"Модель сочла комментарий токсичным: вероятность "
                f"{round(100 * scores.get('toxic', 0.0))}%.")
    if item.reason == "strongly_negative":
        return (f"Модель сочла комментарий резко негативным: вероятность "
                f"{round(100 * scores.get('negative', 0.0))}%.")
    if item.reason == "unanswered_question":
        asked = format_time(details.get("asked_at", item.created_at), calendar)
        due = format_time(item.deadline_at, calendar) if item.deadline_at else "не задан"
        return f"Вопрос жителя от {asked} остался без ответа страницы к сроку ({due})."
    if item.reason == "negative_spike":
        count = details.get("negative_count")
        total = details.get("comments_in_window")
        share = details.get("share")
        text = "Всплеск негативных комментариев на странице"
        if count is not None and total is not None:
            text += f": {count} из {total}"
            if isinstance(share, (int, float)):
                text += f" ({round(100 * share)}%)"
        start, end = details.get("window_start"), details.get("window_end")
        if isinstance(start, (int, float)) and isinstance(end, (int, float)):
            text += f" за {format_time(start, calendar)} – {format_time(end, calendar)}"
        if details.get("spike_ended"):
            text += "; всплеск закончился"
        return text + "."
    return f"Причина: {item.reason}."


def item_view(item, now: float, calendar: WorkingCalendar) -> dict:
    """An item (store.ItemDetail) for the item page."""
    row = queue_row(item, now, calendar)
    row.update({
        "page_id": item.page_id,
        "platform_name": label(PLATFORMS, item.platform),
        "author_id": item.author_id,
        "text": item.text,
        "link": safe_link(item.link),
        "answer_link": safe_link(item.answer_link),
        "flagged_at_text": format_time(item.flagged_at, calendar),
        "deadline": deadline_view(item.deadline_at, now, calendar,
                                  resolved=item.status == "resolved"),
        "resolution": item.resolution,
        "resolution_name": label(RESOLUTIONS, item.resolution),
        "resolution_note": item.resolution_note,
        "edited": item.edited,
        "deleted_on_page": item.deleted_on_page,
        "why": why_flagged(item, calendar),
        "scores": [
            {"name": label(LABELS, name), "percent": round(100 * float(value))}
            for name, value in sorted((item.scores or {}).items(), key=lambda kv: -kv[1])
        ],
    })
    return row


def safe_link(url: str | None) -> str | None:
    """Only http(s) links become clickable: a `javascript:` URL in a flag is text, not a link."""
    if url and url.lower().startswith(("https://", "http://")):
        return url
    return None


def thread_view(events, item, calendar: WorkingCalendar) -> list[dict]:
    return [{
        "kind": e.kind,
        "by_page": e.by_page,
        "author_id": e.author_id,
        "text": e.text,
        "url": safe_link(e.url),
        "deleted": e.deleted,
        "current": e.item_id == item.item_id and e.kind == "comment",
        "created_at_text": format_time(e.created_at, calendar),
    } for e in events]


def history_view(entries, calendar: WorkingCalendar) -> list[dict]:
    return [{
        "at_text": format_time(e.at, calendar),
        "actor_name": e.actor_name,
        "action_name": label(ACTIONS, e.action),
        "resolution_name": label(RESOLUTIONS, e.resolution),
        "from_name": label(STATUSES, e.from_status),
        "to_name": label(STATUSES, e.to_status) if e.to_status != e.from_status else "",
        "note": label(REASONS, e.note) if e.action == "flagged" else e.note,
    } for e in entries]
