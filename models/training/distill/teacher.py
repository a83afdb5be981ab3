"""The e5 teacher fine-tuned on the training split, with the frozen lower layers run once per text and cached.

A frozen e5 with logistic-regression heads is *weaker* than TF-IDF on these labels, so the
teacher is fine-tuned. Full fine-tuning of 12 layers runs at ~50 texts/s on the 2-core CPU (~30
min per epoch of the corpus); so the lower ``frozen_layers`` are run once per text (inference
only) and their output is kept in memory (float16, ~3 GB for the corpus), and only the top layers
and a classification head are trained, ~3x faster per epoch. On a GPU (``device: cuda``) all 12
layers can be trained (``frozen_layers: 0`` caches only the embedding output).
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time

import numpy as np

from models.batching import map_batches, pad
from models.training.data import Example, threshold_sets
from models.training.loop import length_bucketed_batches, run_epoch, targets_and_masks
from models.training.metrics import precision_recall_f1, thresholds_on_sets

log = logging.getLogger(__name__)


def _run_layers(layers, hidden, mask):
    """Run BERT layers with an additive attention mask (padding positions get the dtype's minimum)."""
    import torch

    ext = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
    for layer in layers:
        out = layer(hidden, attention_mask=ext)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


class LowerStates:
    """Per text, the output of the embeddings + the first ``frozen_layers`` e5 layers (float16)."""

    def __init__(self, encoder, frozen_layers: int, device: str = "cpu"):
        self.encoder = encoder
        self.frozen_layers = frozen_layers
        self.device = device
        self.states: dict[str, np.ndarray] = {}

    def ensure(self, texts: list[str], batch_size: int = 64) -> None:
        import torch
        from tqdm import tqdm

        missing = sorted(set(texts) - set(self.states))
        if not missing:
            return
        model = self.encoder.model.to(self.device)
        encoded = [self.encoder.encode_ids(t) for t in missing]

        def run(chunk: list[list[int]]) -> list[np.ndarray]:
            ids, mask = (t.to(self.device) for t in pad(chunk, self.encoder.special["pad"]))
            hidden = model.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
            hidden = _run_layers(model.encoder.layer[:self.frozen_layers], hidden, mask)
            hidden = hidden.to(torch.float16).cpu()
            bar.update(len(chunk))
            return [hidden[row, :len(ids)].numpy() for row, ids in enumerate(chunk)]

        with torch.inference_mode(), tqdm(total=len(missing), desc=f"teacher: layers 1-{self.frozen_layers}",
                                          unit="text", dynamic_ncols=True) as bar:
            states = map_batches(encoded, batch_size, run, lengths=[len(ids) for ids in encoded])
        self.states.update(zip(missing, states))

    def batch(self, texts: list[str]):
        import torch

        width = max(len(self.states[t]) for t in texts)
        dim = next(iter(self.states.values())).shape[1]
        hidden = torch.zeros((len(texts), width, dim), dtype=torch.float32)
        mask = torch.zeros((len(texts), width), dtype=torch.long)
        for row, text in enumerate(texts):
            state = self.states[text]
            hidden[row, :len(state)] = torch.from_numpy(state.astype(np.float32))
            mask[row, :len(state)] = 1
        return hidden.to(self.device), mask.to(self.device)


class TopModel:
    """The trainable top e5 layers + mean pooling + a linear multi-label head."""

    def __init__(self, encoder, frozen_layers: int, n_labels: int, dropout: float = 0.1, device: str = "cpu"):
        import torch

        hidden = encoder.model.config.hidden_size
        self.layers = torch.nn.ModuleList(copy.deepcopy(encoder.model.encoder.layer[frozen_layers:]))
        self.head = torch.nn.Sequential(torch.nn.Dropout(dropout), torch.nn.Linear(hidden, n_labels))
        self.modules = torch.nn.ModuleDict({"layers": self.layers, "head": self.head}).to(device)

    def __call__(self, hidden, mask):
        hidden = _run_layers(self.layers, hidden, mask)
        weights = mask[..., None].to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.head(pooled)


def fine_tune_top(encoder, train: list[Example], validation: list[Example], labels: list[str],
                  frozen_layers: int = 8, epochs: int = 2, batch_size: int = 32, learning_rate: float = 1e-4,
                  head_learning_rate: float = 1e-3, seed: int = 13, time_budget_minutes: float = 60.0,
                  device: str = "cpu"):
    """Train the top layers; returns (model, states, per-epoch history). Keeps the best validation epoch."""
    import torch

    rng = random.Random(seed)
    torch.manual_seed(seed)
    states = LowerStates(encoder, frozen_layers, device)
    states.ensure([e.text for e in train] + [e.text for e in validation])
    model = TopModel(encoder, frozen_layers, len(labels), device=device)
    optimiser = torch.optim.AdamW([
        {"params": model.layers.parameters(), "lr": learning_rate},
        {"params": model.head.parameters(), "lr": head_learning_rate},
    ], weight_decay=0.01)
    steps = math.ceil(len(train) / batch_size) * epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / max(1, int(0.06 * steps))) * max(0.0, (steps - s) / steps))
    targets, masks = targets_and_masks(train, labels)
    lengths = [len(states.states[e.text]) for e in train]
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")

    def batch_loss(batch: list[int]):
        hidden, mask = states.batch([train[i].text for i in batch])
        logits = model(hidden, mask)
        target = torch.tensor([targets[i] for i in batch], device=device)
        weight = torch.tensor([masks[i] for i in batch], device=device)
        return (loss_fn(logits, target) * weight).sum() / weight.sum().clamp(min=1.0)

    deadline = time.monotonic() + time_budget_minutes * 60
    best, history = (-1.0, None), []
    for epoch in range(1, epochs + 1):
        model.modules.train()
        loss, _, _ = run_epoch(length_bucketed_batches(lengths, batch_size, rng), batch_loss,
                               model.modules.parameters(), optimiser, scheduler, deadline,
                               f"teacher epoch {epoch}/{epochs}")
        report = validation_f1(predict_top(model, states, [e.text for e in validation]), validation, labels)
        mean = float(np.mean(list(report.values())))
        history.append({"epoch": epoch, "loss": loss, "validation_f1": report, "mean": mean})
        log.info("teacher epoch %d: loss %.4f, validation F1 %s (mean %.4f)", epoch, loss, report, mean)
        if mean > best[0]:
            best = (mean, {k: v.detach().clone() for k, v in model.modules.state_dict().items()})
        if time.monotonic() > deadline:
            break
    model.modules.load_state_dict(best[1])
    return model, states, history


def predict_top(model, states: LowerStates, texts: list[str], batch_size: int = 128) -> np.ndarray:
    """[len(texts), labels] probabilities of the fine-tuned top."""
    import torch

    states.ensure(texts)
    model.modules.eval()

    def run(chunk: list[str]) -> np.ndarray:
        return torch.sigmoid(model(*states.batch(chunk))).float().cpu().numpy()

    with torch.inference_mode():
        rows = map_batches(texts, batch_size, run, lengths=[len(states.states[t]) for t in texts])
    return np.stack(rows) if rows else np.zeros((0, model.head[-1].out_features), dtype=np.float32)


def validation_f1(scores: np.ndarray, validation: list[Example], labels: list[str]) -> dict[str, float]:
    """F1 per label at its F1-maximising threshold on the validation rows (``data.threshold_sets``)."""
    row = {e.text: i for i, e in enumerate(validation)}

    def score(texts: list[str]) -> dict[str, list[float]]:
        return {label: [float(scores[row[t], j]) for t in texts] for j, label in enumerate(labels)}

    _, report = thresholds_on_sets(threshold_sets(validation, labels), score)
    return {label: round(r["f1"], 4) for label, r in report.items()}


def mix_with_tfidf(scores: np.ndarray, tfidf_scores: dict[str, list[float]], weight: float, labels: list[str]) -> np.ndarray:
    """``(1 - weight) * scores + weight * TF-IDF`` per label the TF-IDF baseline has (others unchanged)."""
    out = np.array(scores, dtype=np.float32, copy=True)
    for j, label in enumerate(labels):
        if label in tfidf_scores:
            out[:, j] = (1 - weight) * out[:, j] + weight * np.asarray(tfidf_scores[label], dtype=np.float32)
    return out


class FineTunedTeacher:
    """e5 with its top layers fine-tuned on the training split, optionally averaged with the TF-IDF baseline."""

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

    def fit(self, train: list[Example], validation: list[Example], seed: int = 13) -> FineTunedTeacher:
        self.model, self.states, history = fine_tune_top(
            self.encoder, train, validation, self.labels, frozen_layers=self.frozen_layers, epochs=self.epochs,
            learning_rate=self.learning_rate, seed=seed, time_budget_minutes=self.time_budget_minutes,
            device=self.device)
        self.report = {"kind": f"e5, top {self.encoder.model.config.num_hidden_layers - self.frozen_layers} layers fine-tuned",
                       "device": str(self.device), "history": history}
        return self

    def with_tfidf(self, tfidf, weight: float, validation: list[Example]) -> FineTunedTeacher:
        """Average with a fitted TF-IDF baseline (``weight`` = TF-IDF's share)."""
        self.tfidf, self.tfidf_weight = tfidf, weight
        scores = self.predict([e.text for e in validation])
        self.report["validation_f1_ensemble"] = validation_f1(scores, validation, self.labels)
        return self

    def predict(self, texts: list[str]) -> np.ndarray:
        """[len(texts), len(labels)] probabilities."""
        out = predict_top(self.model, self.states, texts)
        if self.tfidf is not None and self.tfidf_weight > 0:
            out = mix_with_tfidf(out, self.tfidf.predict_proba(texts), self.tfidf_weight, self.labels)
        return out


def held_out_diagnostics(teacher: FineTunedTeacher, validation: list[Example], held_out, labels: list[str],
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
