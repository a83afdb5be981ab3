"""The training loop: masked multi-label BCE, optional soft targets, best validation epoch kept.

Also what the loop needs around it: seeding, the device, length-bucketed batches, scoring texts
with a model in training and choosing its thresholds on the validation split.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence

from models.batching import map_batches, pad
from models.training.data import Example, threshold_sets
from models.training.metrics import thresholds_on_sets

log = logging.getLogger(__name__)

# Tokens per text when the model is run (TextClassifier's default); validation is scored at it.
INFERENCE_MAX_LENGTH = 256


def resolve_device(name: str = "auto") -> str:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without a GPU is refused."""
    import torch

    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}: use auto, cpu or cuda")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    elif name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda was asked for, but torch sees no CUDA GPU; use --device cpu")
    if name == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matrix products: small models, no measurable loss
    return name


def set_seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def targets_and_masks(examples: list[Example], labels: list[str], source_weights: dict[str, float] | None = None):
    """Target rows (0/1 per label) and mask rows (the source's loss weight where it knows the label, else 0)."""
    weights = source_weights or {}
    targets = [[float(e.targets.get(label, 0)) for label in labels] for e in examples]
    masks = [[weights.get(e.source, 1.0) if label in e.targets else 0.0 for label in labels] for e in examples]
    return targets, masks


def length_bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Batches of similar length (little padding) in random order."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: lengths[i])
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def run_epoch(batches: list[list[int]], batch_loss: Callable, parameters, optimiser, scheduler, deadline: float,
              desc: str) -> tuple[float, int, bool]:
    """One pass: per batch ``batch_loss(batch)``, backward, clipping at norm 1, an optimiser and a scheduler
    step. Stops after the batch that passes ``deadline`` (``time.monotonic()``).
    Returns (mean loss per example, examples seen, stopped at the deadline)."""
    import torch
    from tqdm import tqdm

    parameters = list(parameters)
    running, seen, stopped = 0.0, 0, False
    bar = tqdm(batches, desc=desc, unit="batch", dynamic_ncols=True)
    for batch in bar:
        loss = batch_loss(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimiser.step()
        scheduler.step()
        optimiser.zero_grad(set_to_none=True)
        running += loss.item() * len(batch)
        seen += len(batch)
        bar.set_postfix(loss=f"{running / seen:.4f}")
        if time.monotonic() > deadline:
            stopped = True
            break
    bar.close()
    return running / max(seen, 1), seen, stopped


def predict_ids(model, ids: Sequence[list[int]], pad_id: int, batch_size: int = 256) -> list[list[float]]:
    """Sigmoid scores for pre-tokenised texts, length-sorted batches, input order kept."""
    import torch

    model.eval()
    device = next(model.parameters()).device

    def run(chunk: list[list[int]]) -> list[list[float]]:
        input_ids, attention = (t.to(device) for t in pad(chunk, pad_id))
        return torch.sigmoid(model(input_ids=input_ids, attention_mask=attention).logits).float().cpu().tolist()

    with torch.inference_mode():
        return map_batches(ids, batch_size, run, lengths=[len(x) for x in ids])


def score_texts(model, tokenizer, texts: list[str], labels: list[str], max_length: int = INFERENCE_MAX_LENGTH) -> dict[str, list[float]]:
    """Per label, the model's probability for each text (texts cut at ``max_length`` tokens)."""
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    rows = predict_ids(model, ids, tokenizer.pad_token_id)
    return {label: [row[j] for row in rows] for j, label in enumerate(labels)}


def thresholds_for_model(model, tokenizer, validation: list[Example], labels: list[str],
                         questions_without_marks: bool | str = False,
                         max_length: int = INFERENCE_MAX_LENGTH) -> tuple[dict[str, float], dict]:
    """F1-maximising threshold per label on the validation split (``data.threshold_sets``), for ``model``
    as given, texts cut at ``max_length``; labels without validation rows get 0.5."""
    sets = threshold_sets(validation, labels, questions_without_marks=questions_without_marks)
    thresholds, report = thresholds_on_sets(sets, lambda texts: score_texts(model, tokenizer, texts, labels, max_length))
    return {label: thresholds.get(label, 0.5) for label in labels}, report


def run_training(model, tokenizer, train: list[Example], validation: list[Example], labels: list[str],
                 epochs: int, batch_size: int, learning_rate: float, weight_decay: float, warmup_ratio: float,
                 max_length: int, seed: int, time_budget_minutes: float, source_weights: dict[str, float] | None = None,
                 soft_targets=None, distill_weight: float = 0.0, label_weights: dict[str, float] | None = None,
                 questions_without_marks: bool | str = False, validation_max_length: int = INFERENCE_MAX_LENGTH,
                 device: str = "cpu"):
    """Masked multi-label BCE training on ``device``; keeps the epoch with the best mean validation F1.

    Thresholds and validation F1 come from ``thresholds_for_model`` with texts cut at
    ``validation_max_length`` (the classifier's default), not at the training cut ``max_length``:
    thresholds must fit the model as it is run. ``label_weights`` scales each label's loss (hard and
    soft), default 1.

    With ``soft_targets`` (a teacher's probabilities, [len(train), len(labels)], NaN where the
    teacher has none) the loss is ``(1 - distill_weight) * masked BCE(hard labels) +
    distill_weight * BCE(teacher probabilities)``. Returns (thresholds, validation report, history).
    The model is left on the CPU.
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    rng = random.Random(seed)
    model.to(device)
    pad_id = tokenizer.pad_token_id
    train_ids = tokenizer([e.text for e in train], truncation=True, max_length=max_length)["input_ids"]
    train_targets, train_masks = targets_and_masks(train, labels, source_weights)
    column_weights = torch.tensor([float((label_weights or {}).get(label, 1.0)) for label in labels], device=device)
    soft = soft_mask = None
    if soft_targets is not None and distill_weight > 0:
        soft_array = torch.as_tensor(soft_targets, dtype=torch.float32, device=device)
        soft_mask = (~torch.isnan(soft_array)).float() * column_weights
        soft = torch.nan_to_num(soft_array, nan=0.0)
    total = math.ceil(len(train_ids) / batch_size) * epochs
    no_decay = ("bias", "LayerNorm.weight")
    params = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimiser = torch.optim.AdamW(params, lr=learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimiser, int(warmup_ratio * total), total)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")

    def batch_loss(batch: list[int]):
        input_ids, attention = (t.to(device) for t in pad([train_ids[i] for i in batch], pad_id))
        target = torch.tensor([train_targets[i] for i in batch], device=device)
        mask = torch.tensor([train_masks[i] for i in batch], device=device) * column_weights
        logits = model(input_ids=input_ids, attention_mask=attention).logits
        loss = (loss_fn(logits, target) * mask).sum() / mask.sum().clamp(min=1.0)
        if soft is None:
            return loss
        rows = torch.tensor(batch, device=device)
        s_target, s_mask = soft[rows], soft_mask[rows]
        soft_loss = (loss_fn(logits, s_target) * s_mask).sum() / s_mask.sum().clamp(min=1.0)
        return (1 - distill_weight) * loss + distill_weight * soft_loss

    lengths = [len(x) for x in train_ids]
    deadline = time.monotonic() + time_budget_minutes * 60
    best = (-1.0, None, None, None)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        started = time.monotonic()
        train_loss, seen, stopped = run_epoch(length_bucketed_batches(lengths, batch_size, rng), batch_loss,
                                              model.parameters(), optimiser, scheduler, deadline,
                                              f"epoch {epoch}/{epochs}")
        thresholds, report = thresholds_for_model(model, tokenizer, validation, labels, questions_without_marks,
                                                  validation_max_length)
        mean_f1 = sum(r["f1"] for r in report.values()) / max(len(report), 1)
        entry = {"epoch": epoch, "train_loss": train_loss, "validation_mean_f1": mean_f1,
                 "validation_f1": {k: round(v["f1"], 4) for k, v in report.items()},
                 "seconds": round(time.monotonic() - started, 1), "examples": seen}
        history.append(entry)
        log.info("epoch %d: loss %.4f, validation mean F1 %.4f %s, %s s", epoch, train_loss, mean_f1,
                 entry["validation_f1"], entry["seconds"])
        if mean_f1 >= best[0]:
            best = (mean_f1, {k: v.detach().clone() for k, v in model.state_dict().items()}, thresholds, report)
        if stopped:
            log.info("time budget of %s min reached; stopping", time_budget_minutes)
            break
    if best[1] is not None:
        model.load_state_dict(best[1])
    model.to("cpu")  # checkpoints are saved and used on the CPU
    return best[2], best[3], history
