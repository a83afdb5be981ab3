"""`dozor pages`: the current state of every page, most urgent first, from workers' /metrics."""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class PageRow:
    page_id: str
    name: str = ""
    municipality: str = ""
    open_questions: int = 0
    overdue_questions: int = 0
    oldest_open_at: float | None = None
    negative_share: float = 0.0
    negative_comments: int = 0
    flags: int = 0

    def urgency(self) -> tuple:
        """Overdue first, then open, then the oldest waiting question, then negativity."""
        return (
            -self.overdue_questions,
            -self.open_questions,
            self.oldest_open_at if self.oldest_open_at is not None else float("inf"),
            -self.negative_share,
            self.page_id,
        )


def scrape(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def page_rows(texts: list[str]) -> tuple[list[PageRow], float | None]:
    """Rows per page from one or more scrapes, sorted by urgency; and the stream time."""
    rows: dict[str, PageRow] = {}
    stream_time: float | None = None

    def row(page_id: str) -> PageRow:
        return rows.setdefault(page_id, PageRow(page_id))

    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels, value = sample.labels, sample.value
                name = sample.name
                if name == "dozor_stream_time_seconds":
                    stream_time = max(stream_time or 0.0, value)
                    continue
                page_id = labels.get("page_id")
                if page_id is None:
                    continue
                if name == "dozor_page_info":
                    r = row(page_id)
                    r.name, r.municipality = labels.get("name", ""), labels.get("municipality", "")
                elif name == "dozor_questions_open":
                    row(page_id).open_questions = int(value)
                elif name == "dozor_questions_overdue":
                    row(page_id).overdue_questions = int(value)
                elif name == "dozor_oldest_open_question_timestamp_seconds":
                    row(page_id).oldest_open_at = value
                elif name == "dozor_page_negative_share":
                    row(page_id).negative_share = value
                elif name == "dozor_page_negative_comments":
                    row(page_id).negative_comments = int(value)
                elif name == "dozor_flags_total":
                    row(page_id).flags += int(value)
    return sorted(rows.values(), key=PageRow.urgency), stream_time


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} д {hours} ч"
    if hours:
        return f"{hours} ч {minutes} мин"
    return f"{minutes} мин"


def pages_table(rows: list[PageRow], now: float | None, limit: int | None = None):
    """A rich Table of the pages (Russian headers: the operators read it)."""
    from rich.table import Table

    now = now or time.time()
    table = Table(title="Страницы, требующие внимания", expand=False)
    for header, justify in (
        ("Страница", "left"), ("Муниципалитет", "left"), ("Просрочено", "right"),
        ("Открыто", "right"), ("Старейший вопрос", "right"), ("Негатив, %", "right"),
        ("Флаги", "right"),
    ):
        table.add_column(header, justify=justify)
    for r in rows[:limit]:
        style = "bold red" if r.overdue_questions else ("yellow" if r.open_questions else None)
        table.add_row(
            r.name or r.page_id,
            r.municipality,
            str(r.overdue_questions),
            str(r.open_questions),
            format_age(now - r.oldest_open_at if r.oldest_open_at else None),
            f"{100 * r.negative_share:.0f}",
            str(r.flags),
            style=style,
        )
    return table
