"""Fine-tune the e5 teacher, with the frozen lower layers run once per text and cached.

A frozen e5 with logistic-regression heads is *weaker* than TF-IDF on these labels (RuSentiment
negative F1 0.51 vs 0.61), so the teacher has to be fine-tuned. Full fine-tuning of 12 layers runs
at ~50 texts/s on the 2-core CPU (~30 min per epoch of the corpus); there the lower ``frozen_layers``
are run once per text (inference only) and their output is kept in memory (float16, ~3 GB for the
corpus), and only the top layers and a classification head are trained, ~3x faster per epoch.
On a GPU (``device: cuda``) all 12 layers can be trained (``frozen_layers: 0`` caches only the
embedding output): about 100 s per epoch of the corpus on one H200.
"""

from __future__ import annotations

import math
import random
import time

import numpy as np

from models.training.data import Example, threshold_sets
from models.training.metrics import thresholds_on_sets
from models.training.train import length_bucketed_batches, optimiser_step, targets_and_masks
from models.training.train import pad as pad_batch


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

    def __init__(self, teacher, frozen_layers: int, device: str = "cpu"):
        self.teacher = teacher
        self.frozen_layers = frozen_layers
        self.device = device
        self.states: dict[str, np.ndarray] = {}

    def ensure(self, texts: list[str], batch_size: int = 64) -> None:
        import torch
        from tqdm import tqdm

        missing = sorted(set(texts) - set(self.states))
        if not missing:
            return
        model = self.teacher.model.to(self.device)
        encoded = [self.teacher.encode_ids(t) for t in missing]
        order = sorted(range(len(missing)), key=lambda i: len(encoded[i]))
        pad = self.teacher.special["pad"]
        with torch.inference_mode(), tqdm(total=len(missing), desc=f"teacher: layers 1-{self.frozen_layers}",
                                          unit="text", dynamic_ncols=True) as bar:
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                ids, mask = (t.to(self.device) for t in pad_batch([encoded[i] for i in idx], pad))
                hidden = model.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
                hidden = _run_layers(model.encoder.layer[:self.frozen_layers], hidden, mask)
                hidden = hidden.to(torch.float16).cpu()
                for row, i in enumerate(idx):
                    self.states[missing[i]] = hidden[row, :len(encoded[i])].numpy()
                bar.update(len(idx))

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

    def __init__(self, teacher, frozen_layers: int, n_labels: int, dropout: float = 0.1, device: str = "cpu"):
        import copy

        import torch

        hidden = teacher.model.config.hidden_size
        self.layers = torch.nn.ModuleList(copy.deepcopy(teacher.model.encoder.layer[frozen_layers:]))
        self.head = torch.nn.Sequential(torch.nn.Dropout(dropout), torch.nn.Linear(hidden, n_labels))
        self.modules = torch.nn.ModuleDict({"layers": self.layers, "head": self.head}).to(device)

    def __call__(self, hidden, mask):
        hidden = _run_layers(self.layers, hidden, mask)
        weights = mask[..., None].to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.head(pooled)


def fine_tune_top(teacher, train: list[Example], validation: list[Example], labels: list[str],
                  frozen_layers: int = 8, epochs: int = 2, batch_size: int = 32, learning_rate: float = 1e-4,
                  head_learning_rate: float = 1e-3, seed: int = 13, time_budget_minutes: float = 60.0,
                  states: LowerStates | None = None, device: str = "cpu"):
    """Train the top layers; returns (model, states, per-epoch history). Keeps the best validation epoch."""
    import torch
    from tqdm import tqdm

    rng = random.Random(seed)
    torch.manual_seed(seed)
    states = states or LowerStates(teacher, frozen_layers, device)
    states.ensure([e.text for e in train] + [e.text for e in validation])
    model = TopModel(teacher, frozen_layers, len(labels), device=device)
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
    deadline = time.monotonic() + time_budget_minutes * 60
    best, history = (-1.0, None), []
    for epoch in range(1, epochs + 1):
        model.modules.train()
        batches = length_bucketed_batches(lengths, batch_size, rng)
        running = seen = 0
        bar = tqdm(batches, desc=f"teacher epoch {epoch}/{epochs}", unit="batch", dynamic_ncols=True)
        for batch in bar:
            hidden, mask = states.batch([train[i].text for i in batch])
            logits = model(hidden, mask)
            target = torch.tensor([targets[i] for i in batch], device=device)
            weight = torch.tensor([masks[i] for i in batch], device=device)
            loss = (loss_fn(logits, target) * weight).sum() / weight.sum().clamp(min=1.0)
            optimiser_step(loss, model.modules.parameters(), optimiser, scheduler)
            running += loss.item() * len(batch)
            seen += len(batch)
            bar.set_postfix(loss=f"{running / seen:.4f}")
            if time.monotonic() > deadline:
                break
        bar.close()
        scores = predict_top(model, states, [e.text for e in validation])
        report = validation_f1(scores, validation, labels)
        mean = float(np.mean(list(report.values())))
        history.append({"epoch": epoch, "loss": running / max(seen, 1), "validation_f1": report, "mean": mean})
        print(f"teacher epoch {epoch}: loss {running / max(seen, 1):.4f}, validation F1 {report} (mean {mean:.4f})", flush=True)
        if mean > best[0]:
            best = (mean, {k: v.detach().clone() for k, v in model.modules.state_dict().items()})
        if time.monotonic() > deadline:
            break
    model.modules.load_state_dict(best[1])
    return model, states, history


def predict_top(model, states: LowerStates, texts: list[str], batch_size: int = 128) -> np.ndarray:
    import torch

    states.ensure(texts)
    model.modules.eval()
    order = sorted(range(len(texts)), key=lambda i: len(states.states[texts[i]]))
    out = np.zeros((len(texts), model.head[-1].out_features), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            hidden, mask = states.batch([texts[i] for i in idx])
            out[idx] = torch.sigmoid(model(hidden, mask)).float().cpu().numpy()
    return out


def validation_f1(scores: np.ndarray, validation: list[Example], labels: list[str]) -> dict[str, float]:
    """F1 per label at its F1-maximising threshold on the validation rows (``data.threshold_sets``)."""
    row = {e.text: i for i, e in enumerate(validation)}

    def score(texts: list[str]) -> dict[str, list[float]]:
        return {label: [float(scores[row[t], j]) for t in texts] for j, label in enumerate(labels)}

    _, report = thresholds_on_sets(threshold_sets(validation, labels), score)
    return {label: round(r["f1"], 4) for label, r in report.items()}
