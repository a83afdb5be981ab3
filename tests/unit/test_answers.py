"""is_answer: only the page answers, on the same page and thread, after the question."""

from __future__ import annotations

from dataclasses import replace

import pytest

from streams.tracking.answers import is_answer
from streams.tracking.questions import TrackedQuestion
from tests.support.events import PAGE, comment, msk, page_reply

ASKED = msk("2026-03-03 10:00")
QUESTION = TrackedQuestion(
    page_id=PAGE, platform="vk", item_id="1001", thread_id="501", author_id="610001",
    text="Когда починят дорогу?", url="", asked_at=ASKED, deadline_at=ASKED + 8 * 3600,
)
Q_EVENT = comment("1001", ASKED)


def test_page_reply_to_the_question_comment_answers():
    assert is_answer(page_reply("1002", ASKED + 60, to=Q_EVENT), QUESTION)


def test_page_reply_to_the_author_elsewhere_in_the_thread_answers_on_vk():
    reply = page_reply("1009", ASKED + 60, parent="1005", reply_to_user="610001", thread="501")
    assert is_answer(reply, QUESTION)


def test_page_reply_to_another_user_in_the_thread_does_not_answer():
    reply = page_reply("1009", ASKED + 60, parent="1005", reply_to_user="610777", thread="501")
    assert not is_answer(reply, QUESTION)


def test_page_top_level_comment_addressing_nobody_does_not_answer():
    assert not is_answer(page_reply("1009", ASKED + 60, thread="501"), QUESTION)


def test_citizen_reply_never_answers():
    reply = comment("1005", ASKED + 60, "Звоните в УК", author="610002", parent="1001",
                    reply_to_user="610001")
    assert not is_answer(reply, QUESTION)


@pytest.mark.parametrize(
    "change",
    [{"thread": "502"}, {"page": "vk:-2000002"}],
)
def test_other_thread_or_page_does_not_answer(change):
    reply = page_reply("1002", ASKED + 60, parent="1001", reply_to_user="610001", **change)
    assert not is_answer(reply, QUESTION)


def test_reply_before_the_question_does_not_answer_but_same_second_does():
    assert not is_answer(page_reply("1002", ASKED - 1, to=Q_EVENT), QUESTION)
    assert is_answer(page_reply("1002", ASKED, to=Q_EVENT), QUESTION)


def test_telegram_needs_reply_to_message():
    question = replace(QUESTION, platform="telegram", page_id="telegram:-100123")
    tg = dict(page="telegram:-100123", platform="telegram", thread="501")
    direct = page_reply("77", ASKED + 60, parent="1001", reply_to_user="610001", **tg)
    only_user = page_reply("78", ASKED + 60, parent="55", reply_to_user="610001", **tg)
    assert is_answer(direct, question)
    assert not is_answer(only_user, question)
