"""A BERT classifier with a token n-gram TF-IDF logistic regression beside it ("wide and deep").

The transformer ranks sentiment and toxicity well; a linear model over n-grams ranks some
surface patterns better (the wording of a question written without "?"). This model runs both on
the same token ids and mixes their logits per label:

    logit = mix[label] * bert_logit + (1 - mix[label]) * ngram_logit

The n-gram part is sklearn's TfidfVectorizer (sublinear tf, smooth idf, l2 norm) followed by a
logistic regression, computed in torch from ``input_ids``: unigrams, bigrams and trigrams of the
WordPiece ids (padding and the special tokens in ``ngram_special_ids`` excluded; a checkpoint may
keep [CLS] / [SEP] in, so that n-grams also tell where the text starts and ends) and optionally
skip-bigrams (token i with token i + 2), looked up in a sorted table of the n-grams seen in
training (``ngram_keys``). So it needs no text, no extra tokenizer and no custom code
outside this module; weights, idf and table live in ``model.safetensors``.

A label may also take the largest n-gram logit of the whole text and of each of its sentences
(``ngram_sentence_labels``): a question asked in one sentence of a long appeal otherwise weighs
little in the whole text's l2-normalised n-grams. Sentences end at the ids in
``ngram_sentence_end_ids`` (".", "!", "?"; a run of them ends one sentence), and each is scored as a
text of its own, between the ids of ``ngram_sentence_bounds`` ([CLS], [SEP]).

Importing this module registers the architecture with transformers' Auto classes, so
``AutoModelForSequenceClassification.from_pretrained`` (and ``pipeline``) load such checkpoints.
``save_pretrained`` copies this file into the checkpoint with an ``auto_map``, so transformers
alone loads it too (``trust_remote_code=True``); this file must therefore import nothing from Dozor.
"""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification
from transformers.modeling_outputs import SequenceClassifierOutput

MODEL_TYPE = "dozor-bert-ngram"


class BertNgramConfig(BertConfig):
    """BertConfig plus the n-gram part: its order, skip-bigrams, table size and the per-label logit mix."""

    model_type = MODEL_TYPE

    def __init__(self, ngram_order: int = 3, ngram_features: int = 0, ngram_mix: list[float] | None = None,
                 ngram_special_ids: list[int] | None = None, ngram_skip: bool = False,
                 ngram_sentence_labels: list[int] | None = None, ngram_sentence_end_ids: list[int] | None = None,
                 ngram_sentence_bounds: list[int] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.ngram_sentence_labels = list(ngram_sentence_labels or [])
        self.ngram_sentence_end_ids = list(ngram_sentence_end_ids or [])
        self.ngram_sentence_bounds = list(ngram_sentence_bounds or [])
        self.ngram_order = ngram_order
        self.ngram_skip = bool(ngram_skip)
        self.ngram_features = ngram_features
        self.ngram_mix = list(ngram_mix) if ngram_mix is not None else [1.0] * self.num_labels
        self.ngram_special_ids = list(ngram_special_ids or [])


#: Rows whose n-gram keys are numbered together (row * key_space + key must fit in int64).
MAX_ROWS = 2 ** 12


def key_space(vocab_size: int, order: int, skip: bool = False) -> int:
    """Number of distinct n-gram keys: V + V^2 + ... + V^order, + V^2 with skip-bigrams (times MAX_ROWS,
    must fit in int64)."""
    total = sum(vocab_size ** n for n in range(1, order + 1)) + (vocab_size ** 2 if skip else 0)
    if total * MAX_ROWS >= 2 ** 63:
        raise ValueError(f"a vocabulary of {vocab_size} with n-grams up to {order}"
                         f"{' and skip-bigrams' if skip else ''} does not fit int64 keys: use a lower ngram_order")
    return total


def ngram_keys(input_ids: torch.Tensor, attention_mask: torch.Tensor, vocab_size: int, order: int,
               special_ids: torch.Tensor, skip: bool = False) -> torch.Tensor:
    """Keys of every 1..order-gram (and with ``skip`` every skip-bigram) of real tokens, shape
    (batch, positions); -1 where none.

    A unigram's key is its id; an n-gram's is its ids read as a base-V number, offset past the
    keys of shorter n-grams, so keys of different orders never collide. A skip-bigram (ids a, b
    two positions apart, whatever lies between) is a * V + b, offset past all n-gram keys.
    """
    ids = input_ids.long()
    valid = attention_mask.bool() & ~torch.isin(ids, special_ids)
    keys = [torch.where(valid, ids, torch.full_like(ids, -1))]
    span, span_valid, offset = ids, valid, vocab_size
    for n in range(2, order + 1):
        if span.shape[1] < 2:
            break
        span = span[:, :-1] * vocab_size + ids[:, n - 1:]
        span_valid = span_valid[:, :-1] & valid[:, n - 1:]
        keys.append(torch.where(span_valid, span + offset, torch.full_like(span, -1)))
        offset += vocab_size ** n
    offset = sum(vocab_size ** n for n in range(1, order + 1))  # also when the batch is too short for some orders
    if skip and ids.shape[1] >= 3:
        pair = ids[:, :-2] * vocab_size + ids[:, 2:]
        keys.append(torch.where(valid[:, :-2] & valid[:, 2:], pair + offset, torch.full_like(pair, -1)))
    return torch.cat(keys, dim=1)


def ngram_counts(input_ids: torch.Tensor, attention_mask: torch.Tensor, vocab_size: int, order: int,
                 special_ids: torch.Tensor, skip: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(row, key, count, real) for each distinct n-gram of each row (rows are batch positions).

    On a GPU, written without boolean indexing (each costs a sync and a copy on the model's hot
    path): the entries may hold one for the -1 "no n-gram" key (padding, special tokens), with
    ``real`` False. On the CPU the -1 entries are dropped before the sort: sorting them cost more
    than the copy (n-gram part 48 -> 41 ms for 640 appeals in batches of 64, 2026-12-07).
    """
    if input_ids.shape[0] > MAX_ROWS:
        raise ValueError(f"at most {MAX_ROWS} rows at a time")
    keys = ngram_keys(input_ids, attention_mask, vocab_size, order, special_ids, skip)
    total = key_space(vocab_size, order, skip)
    rows = torch.arange(keys.shape[0], device=keys.device).unsqueeze(1)
    flat = torch.where(keys >= 0, rows * total + keys, torch.full_like(keys, -1)).flatten()
    if flat.device.type == "cpu":
        flat = flat[flat >= 0]
    unique, counts = torch.unique(flat, return_counts=True)
    return (unique // total).clamp(min=0), unique % total, counts, unique >= 0


def sentence_rows(input_ids: torch.Tensor, attention_mask: torch.Tensor, end_ids: torch.Tensor, cls_id: int,
                  sep_id: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each sentence of each text of more than one sentence as a row of its own:
    (sentence ids [sentences, length], their attention mask, the text row of each sentence).

    A sentence is the text's tokens up to and including a run of end ids (".", "!", "?");
    the rest after the last run is a sentence too. Each row is [CLS] sentence [SEP], as the
    tokenizer writes a one-sentence text. Texts of one sentence give no rows (their sentence is
    the text)."""
    ids = input_ids.long()
    word = attention_mask.bool() & (ids != cls_id) & (ids != sep_id) & (ids != pad_id)
    end = torch.isin(ids, end_ids) & word
    follows = torch.zeros_like(end)
    follows[:, :-1] = end[:, 1:]
    closes = end & ~follows  # the last end id of a run closes its sentence
    segment = torch.cumsum(closes.long(), dim=1) - closes.long()  # sentences closed before each token
    words_after = torch.flip(torch.cumsum(torch.flip(word.long(), [1]), dim=1), [1]) - word.long()
    closes_text = closes & (words_after > 0)  # a closing run with words after it: the text goes on
    multi = closes_text.any(dim=1)
    if not bool(multi.any()):
        none = torch.zeros((0, 2), dtype=torch.long, device=ids.device)
        return none, none, torch.zeros(0, dtype=torch.long, device=ids.device)
    width = ids.shape[1]
    row, column = torch.nonzero(word & multi.unsqueeze(1), as_tuple=True)
    sentence_key = row * width + segment[row, column]
    keys, sentence = torch.unique(sentence_key, return_inverse=True)
    first = torch.full((keys.numel(),), width, dtype=torch.long, device=ids.device)
    first = first.scatter_reduce(0, sentence, column, reduce="amin")
    position = column - first[sentence] + 1
    lengths = torch.zeros_like(first).index_add_(0, sentence, torch.ones_like(sentence))
    out = torch.full((keys.numel(), int(lengths.max()) + 2), pad_id, dtype=torch.long, device=ids.device)
    out[:, 0] = cls_id
    out[sentence, position] = ids[row, column]
    out[torch.arange(keys.numel(), device=ids.device), lengths + 1] = sep_id
    mask = (torch.arange(out.shape[1], device=ids.device).unsqueeze(0) <= (lengths + 1).unsqueeze(1)).long()
    return out, mask, keys // width


class BertNgramForSequenceClassification(BertForSequenceClassification):
    """``BertForSequenceClassification`` whose logits are mixed with an n-gram TF-IDF linear model."""

    config_class = BertNgramConfig

    def __init__(self, config: BertNgramConfig):
        super().__init__(config)
        features = max(1, config.ngram_features)
        self.register_buffer("ngram_keys", torch.zeros(features, dtype=torch.long))
        self.register_buffer("ngram_idf", torch.zeros(features))
        self.register_buffer("ngram_special_ids", torch.tensor(config.ngram_special_ids, dtype=torch.long))
        self.register_buffer("ngram_mix", torch.tensor(config.ngram_mix, dtype=torch.float32))
        if config.ngram_sentence_labels and len(config.ngram_sentence_bounds) != 2:
            raise ValueError("ngram_sentence_labels needs ngram_sentence_bounds: the [CLS] and [SEP] ids")
        self.ngram_weight = torch.nn.Parameter(torch.zeros(features, config.num_labels))
        self.ngram_bias = torch.nn.Parameter(torch.zeros(config.num_labels))
        key_space(config.vocab_size, config.ngram_order, config.ngram_skip)  # a clear error now if the keys cannot fit int64

    def _init_weights(self, module):  # the n-gram tensors come from the checkpoint or `set_ngram_model`
        if module is self:
            return
        super()._init_weights(module)

    def set_ngram_model(self, keys, idf, weight, bias, mix) -> None:
        """Install a fitted n-gram model: sorted keys, idf per key, weight [keys, labels], bias, mix."""
        keys = torch.as_tensor(keys, dtype=torch.long)
        if keys.numel() > 1 and not bool((keys[1:] > keys[:-1]).all()):
            raise ValueError("n-gram keys must be sorted and distinct")
        self.ngram_keys = keys
        self.ngram_idf = torch.as_tensor(idf, dtype=torch.float32)
        self.ngram_weight = torch.nn.Parameter(torch.as_tensor(weight, dtype=torch.float32).clone())
        self.ngram_bias = torch.nn.Parameter(torch.as_tensor(bias, dtype=torch.float32).clone())
        self.set_mix(mix)
        self.config.ngram_features = int(keys.numel())

    def set_mix(self, mix) -> None:
        self.ngram_mix = torch.as_tensor(mix, dtype=torch.float32)
        self.config.ngram_mix = [round(float(m), 4) for m in mix]

    def set_sentence_labels(self, labels: list[int], end_ids: list[int], bounds: list[int]) -> None:
        """Let the label indices ``labels`` take the largest n-gram logit of the text and its sentences."""
        if labels and len(bounds) != 2:
            raise ValueError("bounds must be the [CLS] and [SEP] ids")
        self.config.ngram_sentence_labels = sorted(int(j) for j in labels)
        self.config.ngram_sentence_end_ids = [int(i) for i in end_ids]
        self.config.ngram_sentence_bounds = [int(i) for i in bounds]

    def ngram_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The n-gram logits, (batch, labels): per text, and for ``ngram_sentence_labels`` the largest of
        the text's and its sentences' (see the module docstring)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        logits = self.text_ngram_logits(input_ids, attention_mask)
        labels = self.config.ngram_sentence_labels
        if not labels:
            return logits
        cls_id, sep_id = self.config.ngram_sentence_bounds
        pad_id = self.config.pad_token_id if self.config.pad_token_id is not None else 0
        ends = torch.tensor(self.config.ngram_sentence_end_ids, dtype=torch.long, device=input_ids.device)
        ids, mask, owner = sentence_rows(input_ids, attention_mask, ends, cls_id, sep_id, pad_id)
        if owner.numel() == 0:
            return logits
        per_sentence = self.text_ngram_logits(ids, mask)[:, labels]
        best = logits[:, labels].scatter_reduce(0, owner.unsqueeze(1).expand_as(per_sentence), per_sentence,
                                                reduce="amax", include_self=True)
        logits = logits.clone()
        logits[:, labels] = best
        return logits

    def text_ngram_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The n-gram logistic regression's logits of each row as one text, (batch, labels); n-grams
        missing from the table add nothing."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if input_ids.shape[0] > MAX_ROWS:
            return torch.cat([self.text_ngram_logits(input_ids[i:i + MAX_ROWS], attention_mask[i:i + MAX_ROWS])
                              for i in range(0, input_ids.shape[0], MAX_ROWS)])
        row, key, counts, real = ngram_counts(input_ids, attention_mask, self.config.vocab_size,
                                              self.config.ngram_order, self.ngram_special_ids, self.config.ngram_skip)
        table, batch = self.ngram_keys, input_ids.shape[0]
        position = torch.searchsorted(table, key).clamp(max=table.numel() - 1)
        found = (table[position] == key) & real
        values = (1.0 + torch.log(counts.float())) * self.ngram_idf[position] * found
        norms = torch.zeros(batch, device=values.device).index_add_(0, row, values * values).sqrt().clamp(min=1e-12)
        values = values / norms[row]
        weight = self.ngram_weight
        out = torch.zeros(batch, weight.shape[1], device=values.device, dtype=weight.dtype)
        return out.index_add_(0, row, values.unsqueeze(1).to(weight.dtype) * weight[position]) + self.ngram_bias

    def bert_logits(self, input_ids, attention_mask=None, **kwargs) -> torch.Tensor:
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs).logits

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                **kwargs) -> SequenceClassifierOutput:
        if input_ids is None:
            raise ValueError("the n-gram model needs input_ids")
        deep = self.bert_logits(input_ids, attention_mask, token_type_ids=token_type_ids, position_ids=position_ids)
        mix = self.ngram_mix.to(deep.dtype)
        logits = mix * deep + (1 - mix) * self.ngram_logits(input_ids, attention_mask).to(deep.dtype)
        loss = None
        if labels is not None:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        return SequenceClassifierOutput(loss=loss, logits=logits)


# Saved checkpoints carry this file and an `auto_map`, so plain transformers loads them with
# trust_remote_code=True where Dozor is not installed.
BertNgramConfig.register_for_auto_class()
BertNgramForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
try:
    AutoConfig.register(MODEL_TYPE, BertNgramConfig)
    AutoModelForSequenceClassification.register(BertNgramConfig, BertNgramForSequenceClassification)
except ValueError:  # already registered: this file was also loaded as a checkpoint's remote code
    pass
