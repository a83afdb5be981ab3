"""Synthetic training data in the formats of the public datasets, and a tiny training config.

No training test needs ../shared/data: a few hundred rows are written in the formats of
RuSentiment (CSV), 2ch/pikabu (CSV), RuBQ (JSON) and the transfer texts' CSV.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import replace
from pathlib import Path

from models.training.config import TrainConfig

LABELS = ["question", "negative", "toxic", "positive"]
PLACES = ["улице Ленина", "Советской", "проспекте Мира", "Садовой", "площади Победы", "набережной"]
NEGATIVE = ["Опять нет горячей воды на {p}, безобразие", "Ужасная яма на {p}, всё разбито",
            "Мусор не вывозят неделю на {p}, отвратительно", "Кошмар, на {p} снова авария, надоело"]
POSITIVE = ["Спасибо за быструю работу на {p}!", "Отличный новый парк на {p}, молодцы",
            "Благодарим за ремонт на {p}, очень красиво", "Прекрасная ёлка на {p}, спасибо"]
NEUTRAL = ["Сегодня на {p} прошло собрание жильцов", "На {p} открылся новый магазин",
           "Завтра на {p} будет ярмарка", "Автобус на {p} ходит по расписанию"]
TOXIC = ["Ты тупой идиот с {p}", "Заткнись, дебил, с {p}", "Вы там все уроды и придурки на {p}",
         "Пошёл вон, скотина с {p}"]
CLEAN = ["Хороший комментарий про {p}", "Согласен с автором насчёт {p}", "Интересная новость про {p}",
         "Был вчера на {p}, всё нормально"]
QUESTIONS = ["Когда отремонтируют дорогу на {p}?", "Подскажите, куда обращаться по поводу {p}",
             "Почему не убирают снег на {p}?", "Кто отвечает за освещение на {p}?"]


def rows(templates: list[str], n: int, rng: random.Random) -> list[str]:
    """``n`` texts from ``templates`` with a random place and ending."""
    return [rng.choice(templates).format(p=rng.choice(PLACES)) + rng.choice(["", " ", " !", " ))"]) for _ in range(n)]


def every(templates: list[str]) -> list[str]:
    """Each template with each place."""
    return [t.format(p=p) for t in templates for p in PLACES]


def write_datasets(root: Path) -> Path:
    """Write the synthetic datasets under ``root``; returns ``root``."""
    rng = random.Random(0)
    (root / "rusentiment").mkdir(parents=True)
    for name, n in (("rusentiment_random_posts.csv", 60), ("rusentiment_preselected_posts.csv", 20), ("rusentiment_test.csv", 15)):
        with (root / "rusentiment" / name).open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["label", "text"])
            for label, templates in (("negative", NEGATIVE), ("positive", POSITIVE), ("neutral", NEUTRAL)):
                w.writerows((label, t) for t in rows(templates, n, rng))
            w.writerows(("neutral", t) for t in rows(QUESTIONS, n // 2, rng))
            w.writerow(("skip", "asdf"))
    (root / "ru_toxic_2ch_pikabu").mkdir()
    with (root / "ru_toxic_2ch_pikabu" / "labeled.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["comment", "toxic"])
        w.writerows((t, "1.0") for t in rows(TOXIC, 120, rng))
        w.writerows((t, "0.0") for t in rows(CLEAN, 120, rng))
    (root / "rubq").mkdir()
    for name in ("RuBQ_1.0_RuBQ_1.0_test.json", "RuBQ_2.0_RuBQ_2.0_dev.json"):
        qs = [{"question_text": q} for q in sorted(set(rows(["Какой город стоит на {p}?", "Сколько домов на {p}?"], 40, rng)))]
        (root / "rubq" / name).write_text(json.dumps(qs, ensure_ascii=False), encoding="utf-8")
    (root / "opensentimentcorpus").mkdir()
    with (root / "opensentimentcorpus" / "opensentimentcorpus-final-by-majority.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Sentence"])
        w.writerows((t,) for t in sorted(set(rows(NEUTRAL + CLEAN, 60, rng))))
    return root


def write_user_csv(path: Path, seed: int = 1) -> Path:
    """A ЦУР's labelled CSV (text,label) of 90 rows: questions, complaints and neither."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows((t, "question") for t in rows(QUESTIONS, 30, rng))
        w.writerows((t, "negative") for t in rows(NEGATIVE, 30, rng))
        w.writerows((t, "none") for t in rows(NEUTRAL, 30, rng))
    return path


def tiny_config(data_dir: Path, **changes) -> TrainConfig:
    """default.yaml's config at a size that trains in seconds: no teacher, no navec, one thread."""
    tiny = dict(data_dir=str(data_dir), teacher=None, vocab_size=400, hidden_size=32, num_layers=1, num_heads=2,
                intermediate_size=64, navec_init=False, max_length=32, batch_size=16, epochs=8,
                learning_rate=1e-2, time_budget_minutes=1, threads=1, device="cpu")
    return replace(TrainConfig(), **{**tiny, **changes})
