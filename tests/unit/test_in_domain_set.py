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
