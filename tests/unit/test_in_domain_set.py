"""The in-domain labelled set (models/in_domain/): its draw is reproducible and its files agree."""

from __future__ import annotations

import csv

from models.in_domain.evaluate import LABELS, read_labels
from models.in_domain.select import HERE, N_APPEALS, N_RUSENTIMENT, draw, read_draw, read_sources


def test_the_draw_is_reproduced_by_the_committed_script():
    assert draw(read_sources()) == read_draw()


def test_every_drawn_id_has_three_binary_labels_and_a_fixed_half():
    rows = read_draw()
    labels = read_labels()
    assert [i for i, _ in rows] == list(labels)  # labels.csv follows the draw's order
    assert all(set(v) == set(LABELS) and set(v.values()) <= {0, 1} for v in labels.values())
    for prefix, n in (("kursk:", N_APPEALS), ("rusentiment:", N_RUSENTIMENT)):
        halves = [h for i, h in rows if i.startswith(prefix)]
        assert len(halves) == n and halves.count("test") == n - n // 2


def test_the_second_reading_covers_drawn_ids_only():
    with open(HERE / "second_reader.csv", encoding="utf-8", newline="") as f:
        second = [r["id"] for r in csv.DictReader(f)]
    assert len(second) == 100 and set(second) <= set(read_labels())


def test_every_appeal_category_has_a_theme_and_the_topic_split_leaves_the_draw_out():
    from models.in_domain.topics import appeal_splits, read_topics

    themes, categories = read_topics()
    assert 12 <= len(themes) <= 16 and len(categories) == 171
    train, held_out = appeal_splits()
    assert len(train) + len(held_out) == 2581 - N_APPEALS
    assert {y for _, y in held_out} <= set(themes) and {y for _, y in train} == set(themes)
    assert appeal_splits() == (train, held_out)  # seeded: the same split every time


def test_the_training_draw_is_reproduced_and_never_overlaps_an_evaluation():
    from models.in_domain.data import TRAIN_LABELS, read_labels as read_train_labels
    from models.in_domain.select import (N_TRAIN2_APPEALS, N_TRAIN2_RUSENTIMENT, N_TRAIN_APPEALS,
                                         N_TRAIN_RUSENTIMENT, TRAIN_DRAW)
    from models.in_domain.training_draw import train_draw
    from models.in_domain.topics import appeal_splits_with_ids

    texts = read_sources()
    rows = read_draw(TRAIN_DRAW)
    assert train_draw(texts) == rows
    ids = [i for i, _ in rows]
    for name, appeals, posts in (("train", N_TRAIN_APPEALS, N_TRAIN_RUSENTIMENT),
                                 ("train2", N_TRAIN2_APPEALS, N_TRAIN2_RUSENTIMENT)):
        drawn = [i for i, h in rows if h == name]
        assert sum(i.startswith("kursk:") for i in drawn) == appeals
        assert sum(i.startswith("rusentiment:") for i in drawn) == posts
    assert [h for _, h in rows] == ["train"] * 1080 + ["train2"] * 720  # the first draw is kept as it was
    assert all("?" in texts[i] for i, h in rows if h == "train2" and i.startswith("rusentiment:"))
    assert len(set(ids)) == len(ids)
    assert not set(ids) & {i for i, _ in read_draw()}  # not in either half of the labelled set
    _, held_out = appeal_splits_with_ids()
    assert not set(ids) & {i for i, _, _ in held_out}  # not in the topic held-out part
    labels = read_train_labels(TRAIN_LABELS)
    assert list(labels) == ids and all(set(v.values()) <= {0, 1} for v in labels.values())


def test_training_corpora_lose_every_drawn_text_as_written_or_without_question_marks():
    from models.in_domain.data import drawn_keys, half_examples, without_drawn
    from models.training.data import Example, strip_question_marks

    texts = read_sources()
    keys = drawn_keys(texts)
    drawn_post = next(i for i, _ in read_draw() if i.startswith("rusentiment:") and "?" in texts[i])
    rows = [Example(texts[drawn_post], {"negative": 0}, "rusentiment"),
            Example(strip_question_marks(texts[drawn_post]).upper(), {"negative": 0}, "rusentiment"),
            Example("совсем другой текст про дороги", {"negative": 1}, "rusentiment")]
    assert [e.text for e in without_drawn(rows, keys)] == ["совсем другой текст про дороги"]
    validation = half_examples("validation", texts)
    assert len(validation) == sum(h == "validation" for _, h in read_draw())
    assert all(set(e.targets) == set(LABELS) for e in validation)
