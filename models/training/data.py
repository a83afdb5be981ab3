"""Public Russian datasets → Dozor training, validation and held-out evaluation splits.

Every source gives targets only for the labels it knows (a sentiment corpus says nothing about
toxicity), so an example carries a partial ``targets`` dict and training masks the rest.

Splits are fixed by ``seed``: the same data directory and seed give the same splits, so the
model card's held-out numbers can be reproduced. Held-out splits are never used for training or
for choosing thresholds (that is what ``validation`` is for). Any training or validation text
that also occurs in a held-out split is dropped.
"""

from __future__ import annotations

import csv
import json
import random
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

LABELS: tuple[str, ...] = ("question", "negative", "toxic", "positive")

# RuSentiment / RuSentiTweet label → (negative, positive); "skip" (noise, unclear, not Russian)
# is dropped; "speech" (greetings, thanks, congratulations) counts as positive.
_RUSENTIMENT_TARGETS = {
    "negative": (1, 0),
    "neutral": (0, 0),
    "positive": (0, 1),
    "speech": (0, 1),
}
_RUSENTIMENT_3CLASS = {"negative": "negative", "neutral": "neutral", "positive": "positive", "speech": "positive"}

# CEDR emotion codes: 0 joy, 1 sadness, 2 surprise, 3 fear, 4 anger.
_CEDR_NEGATIVE = {1, 3, 4}
_CEDR_POSITIVE = {0}

# ru_goemotions (simplified GoEmotions ids).
_GOEMO_NEGATIVE = {2, 3, 9, 10, 11, 14, 16, 19, 24, 25}
_GOEMO_POSITIVE = {0, 1, 4, 5, 13, 15, 17, 18, 20, 21, 23}

_UNKNOWN_ALONGSIDE = {
    "question": ("negative", "positive"),
    "negative": ("toxic", "question"),
    "toxic": ("negative", "question"),
    "positive": ("question",),
}

_QUESTION_MARKS = re.compile(r"[?？¿]+")

# Source name of the RuBQ / TREC-ru factoid questions (question positives written as questions).
QUESTION_AID_SOURCE = "questions"


@dataclass
class Example:
    """One training text with the targets its source defines (label → 0/1)."""

    text: str
    targets: dict[str, int]
    source: str


@dataclass
class HeldOutSplit:
    """A held-out evaluation split scored on one Dozor label."""

    name: str
    description: str
    label: str
    texts: list[str]
    gold: list[int]
    gold_3class: list[str] | None = None


@dataclass
class Corpus:
    train: list[Example] = field(default_factory=list)
    validation: list[Example] = field(default_factory=list)
    held_out: list[HeldOutSplit] = field(default_factory=list)


def normalise_key(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def strip_question_marks(text: str) -> str:
    """Remove every question mark, so a model must learn the wording of a question."""
    return re.sub(r"\s+", " ", _QUESTION_MARKS.sub(" ", text)).strip()


def has_question_mark(text: str) -> bool:
    return bool(_QUESTION_MARKS.search(text))


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def _split(rows: list, seed: int, fractions: tuple[float, ...]) -> list[list]:
    """Shuffle with a fixed seed and cut into consecutive parts of the given fractions."""
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    parts, start = [], 0
    for i, frac in enumerate(fractions):
        end = len(rows) if i == len(fractions) - 1 else start + int(round(frac * len(rows)))
        parts.append(rows[start:end])
        start = end
    return parts


# ---------------------------------------------------------------- readers (text, label) rows

def _read_rusentiment(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [(_clean(r["text"]), r["label"]) for r in csv.DictReader(f) if _clean(r["text"])]


def read_sentirueval(path: Path) -> list[tuple[str, int, int]]:
    """Rows (text, negative, positive): negative if any organisation column is -1."""
    rows = []
    for table in ET.parse(path).getroot().iter("table"):
        cols = {c.get("name"): (c.text or "") for c in table.findall("column")}
        text = _clean(cols.pop("text", ""))
        for key in ("id", "twitid", "date"):
            cols.pop(key, None)
        values = {v.strip() for v in cols.values() if v.strip() not in ("", "NULL")}
        if not text or not values:
            continue
        negative = int("-1" in values)
        positive = int("1" in values and not negative)
        rows.append((text, negative, positive))
    return rows


def _parse_ids(value: str) -> set[int]:
    return {int(x) for x in re.findall(r"\d+", value or "")}


def _read_cedr(path: Path) -> list[tuple[str, set[int]]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [(_clean(r["text"]), _parse_ids(r["labels"])) for r in csv.DictReader(f)]


def _read_2ch_pikabu(path: Path) -> list[tuple[str, int]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [(_clean(r["comment"]), int(float(r["toxic"]))) for r in csv.DictReader(f) if _clean(r["comment"])]


def _read_detox(path: Path) -> list[tuple[str, list[str]]]:
    """Rows (toxic comment, its neutral paraphrases)."""
    rows = []
    with path.open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            neutral = [_clean(r.get(k) or "") for k in ("neutral_comment1", "neutral_comment2", "neutral_comment3")]
            rows.append((_clean(r["toxic_comment"]), [n for n in neutral if n]))
    return rows


def _read_rubq(path: Path) -> list[str]:
    return [_clean(q["question_text"]) for q in json.loads(path.read_text(encoding="utf-8"))]


def _read_trec(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        _, _, text = line.partition(" ")
        if text.strip():
            out.append(_clean(text))
    return out


def _read_goemotions(path: Path) -> list[tuple[str, set[int]]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [(_clean(r["ru_text"]), _parse_ids(r["labels"])) for r in csv.DictReader(f)]


# ---------------------------------------------------------------- building

def _with_question_weak_label(text: str, targets: dict[str, int], source: str, rng: random.Random,
                              strip_share: float) -> Example:
    """Social-media text: a "?" makes it a weak question positive; ``strip_share`` of them lose the mark."""
    targets = dict(targets)
    if has_question_mark(text):
        targets["question"] = 1
        if rng.random() < strip_share:
            text = strip_question_marks(text)
    else:
        targets["question"] = 0
    return Example(text, targets, source)


def build_corpus(data_dir: str | Path, seed: int = 13, max_rows_per_source: int | None = None,
                 question_mark_strip_share: float = 0.5) -> Corpus:
    """Read every supported dataset under ``data_dir`` and return fixed-seed splits.

    ``max_rows_per_source`` caps each source (for quick experiments and tests).
    ``question_mark_strip_share`` is the share of training / validation questions whose "?" is
    removed, so that the model learns question wording; held-out splits do not depend on it.
    """
    root = Path(data_dir)
    rng = random.Random(seed)
    corpus = Corpus()
    train_val: dict[str, tuple[list[Example], list[Example]]] = {}
    statements_heldout: list[str] = []
    questions_weak_heldout: list[str] = []

    def cap(rows: list) -> list:
        if max_rows_per_source is None or len(rows) <= max_rows_per_source:
            return rows
        return random.Random(seed).sample(rows, max_rows_per_source)

    def social(rows_with_targets: list[tuple[str, dict[str, int]]], source: str) -> list[Example]:
        return [_with_question_weak_label(t, tg, source, rng, question_mark_strip_share) for t, tg in rows_with_targets if t]

    def note_heldout_questions(texts: list[str]) -> None:
        for t in texts:
            if has_question_mark(t):
                stripped = strip_question_marks(t)
                if len(stripped) >= 8:
                    questions_weak_heldout.append(stripped)
            elif len(t) >= 8:
                statements_heldout.append(t)

    # RuSentiment: random + preselected posts for training, the official test for held-out.
    d = root / "rusentiment"
    if d.is_dir():
        rows = _read_rusentiment(d / "rusentiment_random_posts.csv") + _read_rusentiment(d / "rusentiment_preselected_posts.csv")
        rows = cap([(t, l) for t, l in rows if l in _RUSENTIMENT_TARGETS])
        train, val = _split(rows, seed, (0.9, 0.1))
        mk = lambda rs: social([(t, dict(zip(("negative", "positive"), _RUSENTIMENT_TARGETS[l]))) for t, l in rs], "rusentiment")
        train_val["rusentiment"] = (mk(train), mk(val))
        test = cap([(t, l) for t, l in _read_rusentiment(d / "rusentiment_test.csv") if l in _RUSENTIMENT_3CLASS])
        corpus.held_out.append(HeldOutSplit(
            "rusentiment_test", "RuSentiment official test (VK posts); negative vs rest; 'skip' dropped, 'speech' → positive",
            "negative", [t for t, _ in test], [int(l == "negative") for _, l in test], [_RUSENTIMENT_3CLASS[l] for _, l in test]))
        note_heldout_questions([t for t, _ in test])

    # RuSentiTweet: only a train file is published; fixed-seed 80/10/10.
    d = root / "rusentitweet"
    if d.is_dir():
        rows = cap([(t, l) for t, l in ((_clean(r[0]), r[1]) for r in _csv_rows(d / "rusentitweet_train.csv", ("text", "label")))
                    if t and l in _RUSENTIMENT_TARGETS])
        train, val, test = _split(rows, seed, (0.8, 0.1, 0.1))
        mk = lambda rs: social([(t, dict(zip(("negative", "positive"), _RUSENTIMENT_TARGETS[l]))) for t, l in rs], "rusentitweet")
        train_val["rusentitweet"] = (mk(train), mk(val))
        corpus.held_out.append(HeldOutSplit(
            "rusentitweet_heldout", f"RuSentiTweet train, fixed-seed ({seed}) 10% held out; negative vs rest; 'skip' dropped",
            "negative", [t for t, _ in test], [int(l == "negative") for _, l in test], [_RUSENTIMENT_3CLASS[l] for _, l in test]))
        note_heldout_questions([t for t, _ in test])

    # SentiRuEval-2015: banks + telecoms train for training, test etalon held out.
    d = root / "sentirueval2015"
    if d.is_dir():
        rows = cap(read_sentirueval(d / "banks_train.xml") + read_sentirueval(d / "telecoms_train.xml"))
        train, val = _split(rows, seed, (0.9, 0.1))
        mk = lambda rs: social([(t, {"negative": n, "positive": p}) for t, n, p in rs], "sentirueval2015")
        train_val["sentirueval2015"] = (mk(train), mk(val))
        test = cap(read_sentirueval(d / "banks_test_etalon.xml") + read_sentirueval(d / "telecoms_test_etalon.xml"))
        corpus.held_out.append(HeldOutSplit(
            "sentirueval2015_test", "SentiRuEval-2015 test etalon, banks + telecoms; negative if any organisation is -1",
            "negative", [t for t, _, _ in test], [n for _, n, _ in test]))

    # CEDR: main train / main test.
    d = root / "cedr"
    if d.is_dir():
        rows = cap(_read_cedr(d / "cedr-main-train.csv"))
        train, val = _split(rows, seed, (0.9, 0.1))
        mk = lambda rs: social([(t, {"negative": int(bool(ls & _CEDR_NEGATIVE)), "positive": int(bool(ls & _CEDR_POSITIVE) and not ls & _CEDR_NEGATIVE)})
                                for t, ls in rs], "cedr")
        train_val["cedr"] = (mk(train), mk(val))
        test = cap(_read_cedr(d / "cedr-main-test.csv"))
        corpus.held_out.append(HeldOutSplit(
            "cedr_test", "CEDR main test (Twitter, LiveJournal, Lenta.ru); anger/sadness/fear → negative",
            "negative", [t for t, _ in test], [int(bool(ls & _CEDR_NEGATIVE)) for _, ls in test]))
        note_heldout_questions([t for t, _ in test])

    # ru_goemotions (machine-translated Reddit): augmentation only, no held-out split.
    d = root / "ru_goemotions"
    if d.is_dir():
        rows = cap(_read_goemotions(d / "ru-go-emotions-simplified-test.csv") + _read_goemotions(d / "ru-go-emotions-simplified-validation.csv"))
        rows = [(t, ls) for t, ls in rows if t and not (ls & _GOEMO_NEGATIVE and ls & _GOEMO_POSITIVE)]
        train, val = _split(rows, seed, (0.9, 0.1))
        mk = lambda rs: social([(t, {"negative": int(bool(ls & _GOEMO_NEGATIVE)), "positive": int(bool(ls & _GOEMO_POSITIVE))}) for t, ls in rs], "ru_goemotions")
        train_val["ru_goemotions"] = (mk(train), mk(val))

    # 2ch / pikabu toxicity: fixed-seed 80/10/10.
    d = root / "ru_toxic_2ch_pikabu"
    if d.is_dir():
        rows = cap(_read_2ch_pikabu(d / "labeled.csv"))
        train, val, test = _split(rows, seed, (0.8, 0.1, 0.1))
        mk = lambda rs: social([(t, {"toxic": y}) for t, y in rs], "ru_toxic_2ch_pikabu")
        train_val["ru_toxic_2ch_pikabu"] = (mk(train), mk(val))
        corpus.held_out.append(HeldOutSplit(
            "toxic_2ch_pikabu_heldout", f"2ch/pikabu comments, fixed-seed ({seed}) 10% held out; toxic",
            "toxic", [t for t, _ in test], [y for _, y in test]))
        note_heldout_questions([t for t, _ in test])

    # RUSSE-2022 detox: train pairs (90/10) for training; dev pairs + test toxic comments held out.
    d = root / "russe_detox_2022"
    if d.is_dir():
        rows = cap(_read_detox(d / "train.tsv"))
        train, val = _split(rows, seed, (0.9, 0.1))
        def mk(rs):
            pairs = []
            for toxic, neutral in rs:
                pairs.append((toxic, {"toxic": 1}))
                pairs.extend((n, {"toxic": 0}) for n in neutral[:1])
            return social(pairs, "russe_detox_2022")
        train_val["russe_detox_2022"] = (mk(train), mk(val))
        dev = cap(_read_detox(d / "dev.tsv"))
        test_toxic = cap([t for t, _ in _read_detox(d / "test.tsv")])
        texts = [t for t, _ in dev] + [n[0] for _, n in dev if n] + test_toxic
        gold = [1] * len(dev) + [0] * sum(1 for _, n in dev if n) + [1] * len(test_toxic)
        corpus.held_out.append(HeldOutSplit(
            "russe_detox_test", "RUSSE-2022 detox: test toxic comments + dev toxic comments and their first neutral paraphrase; toxic",
            "toxic", texts, gold))

    # Questions: RuBQ 2.0 dev + TREC train for training; RuBQ 1.0 test + TREC test held out.
    rubq_train, rubq_test, trec_train, trec_test = [], [], [], []
    d = root / "rubq"
    if d.is_dir():
        rubq_test = cap(_read_rubq(d / "RuBQ_1.0_RuBQ_1.0_test.json"))
        rubq_train = cap(_read_rubq(d / "RuBQ_2.0_RuBQ_2.0_dev.json"))
    d = root / "senteval_ru_trec"
    if d.is_dir():
        trec_train = cap(_read_trec(d / "TREC_train5500_ru.txt"))
        trec_test = cap(_read_trec(d / "TREC_TREC_ru.txt"))
    if rubq_train or trec_train:
        qs = sorted(set(rubq_train + trec_train))
        train, val = _split(qs, seed, (0.9, 0.1))
        def mk(qs_):
            out = []
            for q in qs_:
                text = strip_question_marks(q) if rng.random() < question_mark_strip_share else q
                out.append(Example(text, {"question": 1, "negative": 0, "positive": 0, "toxic": 0}, QUESTION_AID_SOURCE))
            return out
        train_val[QUESTION_AID_SOURCE] = (mk(train), mk(val))

    # Question held-out splits need statements; they come from the held-out social texts.
    sample_rng = random.Random(seed)
    statements = sorted(set(statements_heldout))
    if rubq_test or trec_test:
        qs = sorted(set(rubq_test + trec_test))
        negs = sample_rng.sample(statements, min(len(statements), len(qs)))
        corpus.held_out.append(HeldOutSplit(
            "questions_rubq_trec_heldout", "RuBQ 1.0 test + TREC-ru test questions (as written) vs statements from held-out social-media splits",
            "question", qs + negs, [1] * len(qs) + [0] * len(negs)))
    if questions_weak_heldout:
        qs = sorted(set(questions_weak_heldout))
        negs = sample_rng.sample(statements, min(len(statements), 3 * len(qs)))
        corpus.held_out.append(HeldOutSplit(
            "questions_weak_no_mark_heldout", "held-out social-media texts that contained '?', with every '?' removed, vs statements from the same splits (1:3)",
            "question", qs + negs, [1] * len(qs) + [0] * len(negs)))

    held_keys = {normalise_key(t) for split in corpus.held_out for t in split.texts}
    held_keys |= {normalise_key(strip_question_marks(t)) for split in corpus.held_out for t in split.texts}
    for source, (train, val) in sorted(train_val.items()):
        corpus.train.extend(e for e in train if normalise_key(e.text) not in held_keys and normalise_key(strip_question_marks(e.text)) not in held_keys)
        corpus.validation.extend(e for e in val if normalise_key(e.text) not in held_keys and normalise_key(strip_question_marks(e.text)) not in held_keys)
    random.Random(seed).shuffle(corpus.train)
    return corpus


# What `questions_without_marks` chooses the question threshold on (``threshold_sets``).
QUESTION_RULES = {
    False: "the validation rows as written",
    True: "the social-media validation rows with every '?' removed",
    "both": "the validation rows as written plus a '?'-free copy of each social-media row",
}


def threshold_sets(validation: list[Example], labels,
                   questions_without_marks: bool | str = False) -> dict[str, tuple[list[str], list[int]]]:
    """Per label, the validation texts and gold values that label's threshold is chosen on.

    Every label uses the validation rows whose source knows it, as written. With
    ``questions_without_marks`` the ``question`` threshold is instead chosen on the social-media
    rows only (not the RuBQ / TREC factoid questions, a training aid rather than the comments
    Dozor reads) with every "?" removed: the threshold is set for the hard case, a question
    written without a mark. That finds more such questions at a lower precision; the model card
    has the measured trade-off. With ``questions_without_marks="both"`` the question set is the
    union of the two: every validation row as written, plus a "?"-free copy of each social-media
    row (its gold unchanged), so one threshold has to serve questions with and without a mark.
    """
    if questions_without_marks not in QUESTION_RULES:
        raise ValueError(f"questions_without_marks {questions_without_marks!r}: use false, true or both")
    sets: dict[str, tuple[list[str], list[int]]] = {}
    for label in labels:
        rows = [e for e in validation if label in e.targets]
        texts = [e.text for e in rows]
        gold = [e.targets[label] for e in rows]
        if label == "question" and questions_without_marks:
            social = [e for e in rows if e.source != QUESTION_AID_SOURCE]
            stripped = [strip_question_marks(e.text) for e in social]
            social_gold = [e.targets[label] for e in social]
            if questions_without_marks == "both":
                texts, gold = texts + stripped, gold + social_gold
            else:
                rows, texts, gold = social, stripped, social_gold
        if rows:
            sets[label] = (texts, gold)
    return sets


def _csv_rows(path: Path, columns: tuple[str, ...]) -> list[tuple[str, ...]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [tuple(r.get(c) or "" for c in columns) for r in csv.DictReader(f)]


def read_user_csv(path: str | Path, labels: tuple[str, ...] = LABELS) -> list[Example]:
    """A ЦУР's own labelled comments: CSV with ``text`` and ``label`` (a Dozor label or ``none``).

    A row labelled ``none`` is a negative example for every label. A row labelled with a label
    is a positive for it and a negative for the others, except for labels that often go
    together and so stay unknown (masked in training): a question may also be negative or
    positive, a negative comment may also be toxic or a question, a toxic one negative or a
    question, a positive one a question. Several labels may be given separated by ``;`` or ``,``.
    An optional ``unknown`` column names labels the labeller did not judge (``positive``: the
    moderators' «модель ошиблась» form does not ask about it); they stay unknown for that row.
    """
    examples = []
    with Path(path).open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "text" not in reader.fieldnames or "label" not in reader.fieldnames:
            raise ValueError(f"{path}: expected a CSV with 'text' and 'label' columns, got {reader.fieldnames}")
        for lineno, row in enumerate(reader, start=2):
            text = _clean(row["text"])
            raw = [p.strip().lower() for p in re.split(r"[;,]", row["label"] or "") if p.strip()]
            unknown = [p for p in raw if p != "none" and p not in labels]
            if unknown or not raw:
                raise ValueError(f"{path}:{lineno}: label {row['label']!r} is not one of {list(labels) + ['none']}")
            if not text:
                continue
            unjudged = {p.strip().lower() for p in re.split(r"[;,]", row.get("unknown") or "")
                        if p.strip()}
            if unjudged - set(LABELS) - set(labels) or unjudged & set(raw):
                raise ValueError(f"{path}:{lineno}: unknown {row.get('unknown')!r} must name labels "
                                 f"of {list(LABELS)} that the label column does not give")
            positives = {p for p in raw if p != "none"}
            targets = {label: int(label in positives) for label in labels if label not in unjudged}
            for label in positives:
                for other in _UNKNOWN_ALONGSIDE.get(label, ()):
                    if other not in positives:
                        targets.pop(other, None)
            examples.append(Example(text, targets, "user"))
    return examples


# Unlabelled text for distillation: sources whose labels Dozor does not use, read for their text only.
_TRANSFER_FILES = (
    ("inappropriate_messages/Version1_appropriateness_val.csv", "text"),
    ("inappropriate_messages/Version1_appropriateness_test.csv", "text"),
    ("inappropriate_messages/Version2_sensitive_topics_val.csv", "text"),
    ("inappropriate_messages/Version2_sensitive_topics_test.csv", "text"),
    ("opensentimentcorpus/opensentimentcorpus-final-by-majority.csv", "Sentence"),
)


def read_transfer_texts(data_dir: str | Path, max_rows_per_file: int | None = None) -> list[str]:
    """Distinct texts from sources used only as unlabelled transfer data for the teacher's targets."""
    root = Path(data_dir)
    texts: set[str] = set()
    for name, column in _TRANSFER_FILES:
        path = root / name
        if not path.is_file():
            continue
        rows = [text for (text,) in _csv_rows(path, (column,)) if _clean(text)]
        texts.update(_clean(t) for t in rows[:max_rows_per_file])
    return sorted(texts)
