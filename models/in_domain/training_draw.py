"""The seeded training draw: messages to read and label for training, never for evaluation.

    python -m models.in_domain.training_draw          # writes models/in_domain/train_draw.csv
    python -m models.in_domain.select batch 2 --size 120 --set train   # a batch to read

First draw (half "train"): 720 Kursk appeals outside draw.csv and outside the held-out part of
the topic split (topics.py), then 360 RuSentiment posts of the organisation pool of select.py
outside draw.csv.

Second draw (half "train2", 2026-12-07; batches 9-14 at size 120), from what the first left: 480
more appeals of the same pool and 240 RuSentiment posts that contain "?" (any post: the
organisation pool has only 79 such posts left), shuffled together. The posts are drawn from
the "?" stratum because the question label is where the
model was weakest on VK posts (jokes, stories and poems with a "?" read as questions); the
stratum picks whom to read, the reader gives every label.

Nothing here assigns a label: readers label the batches by GUIDE.md into train_labels.csv.
"""

from __future__ import annotations

import random
import sys

from models.in_domain.select import (DRAW, N_TRAIN2_APPEALS, N_TRAIN2_RUSENTIMENT, N_TRAIN_APPEALS,
                                     N_TRAIN_RUSENTIMENT, ORG_PATTERN, REPO, TRAIN_DRAW, TRAIN_SEED, read_draw,
                                     read_sources, write_draw)
from models.in_domain.topics import appeal_splits_with_ids


def train_draw(texts: dict[str, str]) -> list[tuple[str, str]]:
    """(id, draw) for the training draws ("train", then "train2"; module docstring): appeals
    outside draw.csv and the topic held-out part, RuSentiment posts of the same organisation pool
    as draw() outside draw.csv."""
    train, _held_out = appeal_splits_with_ids()
    appeals = sorted(i for i, _, _ in train)  # appeal_splits_with_ids already leaves draw.csv out
    drawn = {i for i, _ in read_draw(DRAW)}
    posts = sorted(i for i in texts if i.startswith("rusentiment:") and i not in drawn
                   and ORG_PATTERN.search(texts[i]))
    picked = random.Random(TRAIN_SEED).sample(appeals, N_TRAIN_APPEALS)
    picked += random.Random(TRAIN_SEED + 1).sample(posts, N_TRAIN_RUSENTIMENT)
    first = set(picked)
    more = random.Random(TRAIN_SEED + 2).sample([i for i in appeals if i not in first], N_TRAIN2_APPEALS)
    asking = sorted(i for i in texts if i.startswith("rusentiment:") and i not in drawn and i not in first
                    and "?" in texts[i])
    more += random.Random(TRAIN_SEED + 3).sample(asking, N_TRAIN2_RUSENTIMENT)
    random.Random(TRAIN_SEED + 4).shuffle(more)
    return [(i, "train") for i in picked] + [(i, "train2") for i in more]



def main() -> int:
    rows = train_draw(read_sources())
    write_draw(rows, TRAIN_DRAW)
    print(f"{len(rows)} ids written to {TRAIN_DRAW.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
