"""Tokenizer and model construction for the default classifier.

The model is a plain ``BertForSequenceClassification`` (a few layers, small hidden size) so that
``AutoModelForSequenceClassification`` loads it without custom code. Its WordPiece tokenizer is
trained on the corpus; URL / mention normalisation lives inside the tokenizer's normaliser, so a
loaded checkpoint behaves the same everywhere. Word embeddings may start from navec vectors
(news, 1B tokens), projected to the hidden size with PCA.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from models.training.config import TrainConfig

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tokenizer(texts: Iterable[str], vocab_size: int, lowercase: bool = True):
    """Train a WordPiece tokenizer on ``texts`` and wrap it as a transformers fast tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=50))
    steps = [
        normalizers.NFKC(),
        normalizers.Replace(Regex(r"https?://\S+|www\.\S+"), " url "),
        normalizers.Replace(Regex(r"\[(?:id|club|public)\d+\|[^\]]*\]"), " @user "),
        normalizers.Replace(Regex(r"@\w+"), " @user "),
    ]
    if lowercase:
        steps.append(normalizers.Lowercase())
    steps += [normalizers.Replace("ё", "е"), normalizers.Replace("Ё", "Е")]
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS, limit_alphabet=400,
        continuing_subword_prefix="##", show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_input_names=["input_ids", "attention_mask"],
    )


def build_model(vocab_size: int, labels: tuple[str, ...], hidden_size: int, layers: int, heads: int,
                intermediate_size: int, max_position: int, dropout: float, pad_token_id: int):
    """A randomly initialised multi-label ``BertForSequenceClassification`` with outputs ``labels``."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=intermediate_size, max_position_embeddings=max_position, type_vocab_size=1,
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, pad_token_id=pad_token_id,
        problem_type="multi_label_classification",
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
    )
    return BertForSequenceClassification(config)


def navec_path() -> Path | None:
    """The navec file shipped inside the ``natasha`` wheel, if installed."""
    try:
        import natasha
    except ImportError:
        return None
    path = Path(natasha.__file__).parent / "data" / "emb" / "navec_news_v1_1B_250K_300d_100q.tar"
    return path if path.is_file() else None


def corpus_words(tokenizer, texts: Iterable[str]) -> "Counter[str]":
    """Word counts as the tokenizer's normaliser and pre-tokeniser split the texts (first-seen order)."""
    backend = tokenizer.backend_tokenizer
    words: Counter[str] = Counter()
    for text in texts:
        normalised = backend.normalizer.normalize_str(text)
        words.update(w for w, _ in backend.pre_tokenizer.pre_tokenize_str(normalised))
    return words


def init_embeddings_from_navec(model, tokenizer, texts: Iterable[str], path: Path, scale: float = 0.5) -> float:
    """Initialise word embeddings from navec (PCA to the hidden size); returns the covered share.

    A whole-word token takes its navec vector. A sub-word piece takes the frequency-weighted mean
    of the vectors of corpus words that contain it, so rare inflections start near their stem.
    """
    import numpy as np
    import torch
    from navec import Navec

    navec = Navec.load(str(path))
    hidden = model.config.hidden_size
    backend = tokenizer.backend_tokenizer
    words = corpus_words(tokenizer, texts)
    known = [w for w in words if w in navec]
    if not known:
        return 0.0
    sample = np.stack([navec[w] for w in known[:50_000]])
    mean = sample.mean(axis=0)
    _, _, vt = np.linalg.svd(sample - mean, full_matrices=False)
    projection = vt[:hidden].T  # 300 × hidden
    if projection.shape[1] < hidden:
        # fewer known words than hidden units (a tiny corpus): the missing directions project to 0. (With
        # enough words this never happens, and the projection is unchanged: the shipped model's numbers.)
        projection = np.pad(projection, ((0, 0), (0, hidden - projection.shape[1])))
    projected_sample = (sample - mean) @ projection
    norm = projected_sample.std() / scale

    def project(vec: np.ndarray) -> np.ndarray:
        return ((vec - mean) @ projection) / norm

    vocab = tokenizer.get_vocab()
    sums = np.zeros((len(vocab), hidden), dtype=np.float32)
    weights = np.zeros(len(vocab), dtype=np.float32)
    for word in known:
        vec = project(navec[word])
        count = words[word]
        pieces = backend.model.tokenize(word)
        if len(pieces) == 1:
            sums[pieces[0].id] += 1000.0 * count * vec  # the word itself dominates
            weights[pieces[0].id] += 1000.0 * count
        else:
            for piece in pieces:
                sums[piece.id] += count * vec
                weights[piece.id] += count
    covered = weights > 0
    embeddings = model.bert.embeddings.word_embeddings.weight
    with torch.no_grad():
        rows = torch.from_numpy(sums[covered] / weights[covered][:, None])
        embeddings[torch.from_numpy(np.nonzero(covered)[0])] = rows
    share = float(covered.mean())
    log.info("navec: %d corpus words known, %.1f%% of tokens initialised", len(known), 100 * share)
    return share


def build_student(config: TrainConfig, texts: list[str], max_position: int):
    """The student ``config`` describes: a WordPiece tokenizer trained on ``texts`` and a BERT sized by the
    config, word embeddings started from navec where ``navec_init`` asks for it and natasha is installed.
    Returns (model, tokenizer, share of the vocabulary initialised from navec, or None)."""
    tokenizer = build_tokenizer(texts, vocab_size=config.vocab_size)
    model = build_model(
        vocab_size=len(tokenizer), labels=tuple(config.labels), hidden_size=config.hidden_size,
        layers=config.num_layers, heads=config.num_heads, intermediate_size=config.intermediate_size,
        max_position=max_position, dropout=config.dropout, pad_token_id=tokenizer.pad_token_id,
    )
    if not config.navec_init:
        return model, tokenizer, None
    path = Path(config.navec_path) if config.navec_path else navec_path()
    if path is None:
        log.warning("navec_init is set but the `natasha` package (which ships navec vectors) is not installed; "
                    "starting from random embeddings")
        return model, tokenizer, None
    return model, tokenizer, init_embeddings_from_navec(model, tokenizer, texts, path, config.navec_scale)
