"""Pure parts of the moderation web app: working time left, wording, tokens, the login limit."""

from __future__ import annotations

from datetime import datetime

from services.moderation.web.auth import LoginRateLimiter, bearer_token, tokens_match
from services.moderation.web.ui import safe_next
from services.moderation.web.views import deadline_view, format_duration, safe_link, sentence
from streams.tracking.calendar import WorkingCalendar

CALENDAR = WorkingCalendar(timezone="Europe/Moscow")  # 09:00-18:00, Monday to Friday


def local(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=CALENDAR.zone).timestamp()


def test_time_left_counts_working_hours_only():
    # Friday 17:00 → Monday 11:00: one hour on Friday and two on Monday, not 66 hours
    view = deadline_view(local("2026-06-01 11:00"), local("2026-05-29 17:00"), CALENDAR)
    assert not view.overdue
    assert view.text == "срок 01.06.2026 11:00, осталось 3 ч рабочего времени"


def test_overdue_counts_working_hours_and_after_hours_is_just_overdue():
    due = local("2026-05-29 10:00")  # Friday
    late = deadline_view(due, local("2026-06-01 10:30"), CALENDAR)  # Monday
    assert late.overdue and late.text.endswith("просрочено на 9 ч 30 мин рабочего времени")
    evening = deadline_view(local("2026-05-29 19:00"), local("2026-05-29 20:00"), CALENDAR)
    assert evening.overdue and evening.text == "срок 29.05.2026 19:00, просрочено"
    assert deadline_view(None, 0.0, CALENDAR).text == "срок не задан"
    assert not deadline_view(due, local("2026-06-01 10:30"), CALENDAR, resolved=True).overdue


def test_durations_read_naturally():
    assert format_duration(30) == "меньше минуты"
    assert format_duration(5 * 60) == "5 мин"
    assert format_duration(3 * 3600 + 20 * 60) == "3 ч 20 мин"
    assert format_duration(2 * 86400 + 3 * 3600) == "2 д 3 ч"
    assert format_duration(-5) == "меньше минуты"


def test_only_web_links_are_clickable():
    assert safe_link("https://vk.com/wall-1_2") == "https://vk.com/wall-1_2"
    assert safe_link("javascript:alert(1)") is None
    assert safe_link("JaVaScRiPt:alert(1)") is None
    assert safe_link("data:text/html,<script>") is None
    assert safe_link(None) is None


def test_redirect_after_login_stays_on_the_site():
    assert safe_next("/items/abc?done=take")
    for bad in ("//evil.example", "/\\evil.example", "https://evil.example", "", None,
                "/items/\nSet-Cookie:x", "/" + "a" * 600):
        assert not safe_next(bad), bad


def test_tokens_compare_whole_and_never_empty():
    assert tokens_match("abc", "abc")
    assert not tokens_match("abc", "abd")
    assert not tokens_match("abc", "ab")
    assert not tokens_match("", "")
    assert not tokens_match(None, "abc")
    assert tokens_match("токен", "токен")
    assert bearer_token("Bearer  dzr_x ") == "dzr_x"
    assert bearer_token("bearer dzr_x") == "dzr_x"
    assert bearer_token("Basic dzr_x") is None
    assert bearer_token("Bearer") is None


def test_the_login_limit_is_a_sliding_minute():
    now = [1000.0]
    limiter = LoginRateLimiter(2, lambda: now[0])
    limiter.failed("Anna", "10.0.0.1")
    assert not limiter.blocked("anna", "10.0.0.2")
    now[0] += 30
    limiter.failed("anna", "10.0.0.3")
    assert limiter.blocked("ANNA ", "10.0.0.9")  # the login, whatever its case or address
    assert limiter.retry_after("anna", "10.0.0.9") == 30
    now[0] += 30.5  # the first failure left the window
    assert not limiter.blocked("anna", "10.0.0.9")
    limiter.failed("boris", "10.0.0.3")
    assert limiter.blocked("someone", "10.0.0.3")  # the address: two failures this minute
    limiter.succeeded("anna")
    assert not limiter.blocked("anna", "10.0.0.4")


def test_store_refusals_become_sentences():
    assert sentence("элемент уже решён") == "Элемент уже решён."
    assert sentence("Готово.") == "Готово."
    assert sentence("") == "Действие не выполнено."
