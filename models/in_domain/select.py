"""The seeded draw of the in-domain labelled set, and the batches a reader labels.

    python -m models.in_domain.select draw            # writes models/in_domain/draw.csv (ids)
    python -m models.in_domain.select batch 3 --size 80   # prints batch 3 (id + text) to read
    python -m models.in_domain.select batch 2 --size 120 --set train   # a training batch to read

Nothing here assigns a label: the script picks messages by a seeded random draw and prints
them; a person reads each one and writes its labels into labels.csv (guide: GUIDE.md).

Sources (../shared/data, never committed):
* kursk_appeals/appeals.csv — real citizen appeals to Kursk regional and municipal bodies;
  440 drawn from all 2,581 (the text is HTML: tags stripped, entities unescaped).
* rusentiment/ random and preselected posts — VK posts; 200 drawn from those that mention an
  organisation or an official (ORG_PATTERN, a pool filter only, it labels nothing). These are
  RuSentiment *training* files: the shipped model was trained on them (its figures on this part
  are optimistic, README.md), and models/training does not exclude the drawn ids.

Each drawn id gets its half (validation or test) here, once, before any model sees the set:
a seeded shuffle within each source, half and half.

The training draw (`python -m models.in_domain.training_draw`, train_draw.csv, labels in
train_labels.csv; its batches: `batch N --set train`) is a second,
separate seeded draw for training only: 720 appeals, none in draw.csv or in the held-out part of
the topic split (topics.py), then 360 RuSentiment posts of the same organisation pool, none in
draw.csv; a second training draw (2026-12-07) added 480 appeals and 240 posts that contain "?"
(training_draw.py says why). No evaluation reads a training text.
"""

from __future__ import annotations

import argparse
import csv
import html
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DATA = REPO.parent / "shared" / "data"
DRAW = HERE / "draw.csv"
TRAIN_DRAW = HERE / "train_draw.csv"
SEED = 20261206
TRAIN_SEED = 20261207
N_TRAIN_APPEALS = 720
N_TRAIN_RUSENTIMENT = 360
N_TRAIN2_APPEALS = 480
N_TRAIN2_RUSENTIMENT = 240
N_APPEALS = 440
N_RUSENTIMENT = 200
RUSENTIMENT_FILES = ("rusentiment_random_posts.csv", "rusentiment_preselected_posts.csv")
ORG_PATTERN = re.compile(
    r"администрац|власт|мэр|губернатор|депутат|чиновник|глава |главе |главы |министер|"
    r"правительств|поликлиник|больниц|школ|детск(ий|ого) сад|жкх|управляющ|полици|мвд|суд|"
    r"прокуратур|пенсионн|соцзащит|дорог|мусор|отоплени|водоканал|автобус",
    re.IGNORECASE,
)
TAG = re.compile(r"<[^>]+>")


def appeal_text(text_html: str) -> str:
    """An appeal as plain text: tags stripped, entities unescaped, spaces collapsed."""
    text = html.unescape(TAG.sub(" ", text_html.replace("<br>", "\n")))
    return re.sub(r"[ \t\xa0]+", " ", text).strip()


def read_sources(data: Path = DATA) -> dict[str, str]:
    """Every candidate message by id: `kursk:<id>` and `rusentiment:<file stem>:<row>`."""
    csv.field_size_limit(10**9)
    texts: dict[str, str] = {}
    with open(data / "kursk_appeals" / "appeals.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            texts[f"kursk:{row['id']}"] = appeal_text(row["text_html"])
    for name in RUSENTIMENT_FILES:
        with open(data / "rusentiment" / name, encoding="utf-8", newline="") as f:
            for i, row in enumerate(csv.DictReader(f)):
                texts[f"rusentiment:{Path(name).stem}:{i}"] = row["text"].strip()
    return texts


def draw(texts: dict[str, str]) -> list[tuple[str, str]]:
    """(id, half) for the drawn messages, in reading order (shuffled, seeded)."""
    rng = random.Random(SEED)
    kursk = sorted(i for i in texts if i.startswith("kursk:"))
    pool = sorted(i for i in texts if i.startswith("rusentiment:") and ORG_PATTERN.search(texts[i]))
    rows: list[tuple[str, str]] = []
    for ids, n in ((kursk, N_APPEALS), (pool, N_RUSENTIMENT)):
        picked = rng.sample(ids, n)
        halves = ["validation"] * (n // 2) + ["test"] * (n - n // 2)
        rng.shuffle(halves)
        rows.extend(zip(picked, halves))
    rng.shuffle(rows)
    return rows


def write_draw(rows: list[tuple[str, str]], path: Path = DRAW) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "half"])
        writer.writerows(rows)


def read_draw(path: Path = DRAW) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return [(r["id"], r["half"]) for r in csv.DictReader(f)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("draw", help="draw the ids and their halves into draw.csv")
    batch = sub.add_parser("batch", help="print one batch of drawn messages to read")
    batch.add_argument("number", type=int, help="batch number, from 0")
    batch.add_argument("--size", type=int, default=80)
    batch.add_argument("--set", choices=("eval", "train"), default="eval",
                       help="eval: draw.csv (default); train: train_draw.csv")
    args = parser.parse_args(argv)
    texts = read_sources()
    if args.command == "draw":
        rows = draw(texts)
        write_draw(rows)
        print(f"{len(rows)} ids written to {DRAW.relative_to(REPO)}")
        return 0
    drawn = read_draw(TRAIN_DRAW if args.set == "train" else DRAW)
    rows = drawn[args.number * args.size:(args.number + 1) * args.size]
    for message_id, _half in rows:
        print(f"=== {message_id}\n{texts[message_id]}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
