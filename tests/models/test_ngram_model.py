"""The n-gram keys of the transformer + token n-gram model (models/ngram_model.py).

Fitting the n-gram part and the checkpoints it gives are tested in tests/training/test_ngrams.py.
"""

from __future__ import annotations

import pytest
import torch

from models.ngram_model import key_space, ngram_keys


def test_ngram_keys_cover_real_tokens_only_and_orders_never_collide():
    vocab, specials = 10, torch.tensor([0, 2, 3])  # pad 0, cls 2, sep 3
    ids = torch.tensor([[2, 5, 6, 5, 3, 0], [2, 9, 3, 0, 0, 0]])
    mask = (ids != 0).long()
    keys = ngram_keys(ids, mask, vocab, 3, specials)
    row0 = sorted(k for k in keys[0].tolist() if k >= 0)
    # unigrams 5, 6, 5; bigrams 56, 65 (+10); trigram 565 (+10 +100)
    assert row0 == sorted([5, 6, 5, 10 + 56, 10 + 65, 110 + 565])
    assert sorted(k for k in keys[1].tolist() if k >= 0) == [9]
    assert key_space(vocab, 3) == 1110
    with pytest.raises(ValueError, match="lower ngram_order"):
        key_space(10 ** 6, 3)
    assert key_space(120_000, 3) > 0  # vocabularies of the size of e5's cut one (25k) and well above fit


def test_skip_bigrams_and_boundary_tokens_get_their_own_keys():
    vocab = 10
    ids = torch.tensor([[2, 5, 6, 7, 3, 0], [2, 9, 3, 0, 0, 0]])  # pad 0, cls 2, sep 3
    mask = (ids != 0).long()
    keys = ngram_keys(ids, mask, vocab, 2, torch.tensor([0, 3]), skip=True)  # [CLS] kept, [SEP] left out
    assert key_space(vocab, 2, skip=True) == 10 + 100 + 100
    # unigrams 2, 5, 6, 7; bigrams 25, 56, 67 (+10); skip-bigrams 26, 57 (+110): nothing reaches past [SEP]
    assert sorted(k for k in keys[0].tolist() if k >= 0) == sorted([2, 5, 6, 7, 10 + 25, 10 + 56, 10 + 67, 110 + 26, 110 + 57])
    assert sorted(k for k in keys[1].tolist() if k >= 0) == [2, 9, 10 + 29]  # too short for a skip-bigram
    short = ngram_keys(ids[:, :2], mask[:, :2], vocab, 3, torch.tensor([0]), skip=True)  # no trigram, no skip fits
    assert sorted(k for k in short[0].tolist() if k >= 0) == [2, 5, 10 + 25]


def test_sentence_rows_cut_texts_of_several_sentences_at_runs_of_end_tokens():
    from models.ngram_model import sentence_rows

    # pad 0, cls 2, sep 3; "." 8 and "?" 9 end a sentence; words 4-7
    ids = torch.tensor([[2, 4, 5, 9, 9, 6, 8, 7, 3],   # "a b ?? c . d": three sentences
                        [2, 4, 5, 9, 3, 0, 0, 0, 0],   # one sentence ending in "?"
                        [2, 6, 8, 7, 3, 0, 0, 0, 0],   # "c . d": two
                        [2, 4, 5, 3, 0, 0, 0, 0, 0]])  # one, no end token
    mask = (ids != 0).long()
    rows, row_mask, owner = sentence_rows(ids, mask, torch.tensor([8, 9]), cls_id=2, sep_id=3, pad_id=0)
    sentences = [[i for i, m in zip(r, k) if m] for r, k in zip(rows.tolist(), row_mask.tolist())]
    assert owner.tolist() == [0, 0, 0, 2, 2]
    assert sentences == [[2, 4, 5, 9, 9, 3], [2, 6, 8, 3], [2, 7, 3], [2, 6, 8, 3], [2, 7, 3]]
    assert all(r[len(s):] == [0] * (len(r) - len(s)) for r, s in zip(rows.tolist(), sentences))  # padded
    none = sentence_rows(ids[1:2], mask[1:2], torch.tensor([8, 9]), cls_id=2, sep_id=3, pad_id=0)
    assert [t.numel() for t in none] == [0, 0, 0]  # a text of one sentence is its own sentence
