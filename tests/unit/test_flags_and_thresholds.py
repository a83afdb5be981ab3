"""Flag rules, label mapping and thresholds: pure functions, no model, no broker."""

from __future__ import annotations

import pytest

from models.classifier import ModelConfigError, combine_scores, map_labels
from streams.events import CanonicalEvent
from streams.flags import FlagPolicy, comment_flag_reasons, comment_flags, flag_id
from streams.pages import PageRegistry


def comment(by_page=False, action="new", kind="comment") -> CanonicalEvent:
    return CanonicalEvent(
        event_id="e", platform="vk", kind=kind, action=action, page_id="vk:-1", item_id="7",
        thread_id="3", parent_id=None, reply_to_user=None, author_id="5", by_page=by_page,
        text="текст", created_at=100.0, url="https://vk.com/wall-1_3?reply=7",
    )


POLICY = FlagPolicy(toxic_threshold=0.5, negative_threshold=0.85)


@pytest.mark.parametrize(
    ("scores", "reasons"),
    [
        ({"toxic": 0.5, "negative": 0.1}, ["toxic"]),
        ({"toxic": 0.49, "negative": 0.84}, []),
        ({"toxic": 0.1, "negative": 0.85}, ["strongly_negative"]),
        ({"toxic": 0.9, "negative": 0.95}, ["toxic", "strongly_negative"]),
        ({}, []),
    ],
)
def test_thresholds_are_inclusive(scores, reasons):
    assert comment_flag_reasons(comment(), scores, POLICY) == reasons


def test_pages_own_comments_posts_and_deletes_are_never_flagged():
    scores = {"toxic": 1.0, "negative": 1.0}
    assert comment_flag_reasons(comment(by_page=True), scores, POLICY) == []
    assert comment_flag_reasons(comment(kind="post"), scores, POLICY) == []
    assert comment_flag_reasons(comment(action="delete"), scores, POLICY) == []


def test_flag_carries_page_link_and_deterministic_id():
    page = PageRegistry().get("vk:-1")
    [flag] = comment_flags(comment(), {"toxic": 0.9}, page, POLICY)
    assert flag.link == "https://vk.com/wall-1_3?reply=7"
    assert flag.flag_id == flag_id("vk:-1", "7", "toxic") != flag_id("vk:-1", "7", "negative")
    assert "незарегистрированная" in flag.page_name


def test_label_mapping_by_name_alias_and_explicit_map():
    assert map_labels({0: "Question", 1: "NEG", 2: "other"}, None) == {0: "question", 1: "negative"}
    assert map_labels({0: "LABEL_0", 1: "LABEL_1"}, {"LABEL_1": "toxic"}) == {1: "toxic"}
    with pytest.raises(ModelConfigError, match="DOZOR_LABEL_MAP"):
        map_labels({0: "LABEL_0"}, None)
    with pytest.raises(ModelConfigError, match="not a Dozor label"):
        map_labels({0: "LABEL_0"}, {"LABEL_0": "angry"})


def test_several_outputs_for_one_label():
    mapping = {0: "toxic", 1: "toxic", 2: "neutral"}
    assert combine_scores([0.2, 0.7, 0.1], mapping, multi_label=True) == {
        "toxic": 0.7, "neutral": 0.1}
    softmax = combine_scores([0.2, 0.7, 0.1], mapping, multi_label=False)
    assert softmax["toxic"] == pytest.approx(0.9)
