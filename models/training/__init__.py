"""Training, evaluation and data preparation for the Dozor comment classifier.

Modules import one way only (tests/unit/test_import_cycles.py checks the tree has no cycle):
``data`` and ``metrics`` (datasets, splits, F1 and thresholds) → ``config`` (``TrainConfig``, defaults
from ``default.yaml``) → ``model`` (tokenizer and BERT) → ``loop`` (the training loop) → ``ngrams``
(the n-gram part) and ``distill`` (the e5 teacher's soft targets) → ``train`` (``train_default``,
``fine_tune``, ``add_ngrams_to_checkpoint``, ``rechoose_thresholds``) → ``in_domain``
(``tune_in_domain``: further training on the rows of models/in_domain labelled by reading) and
``topics`` (the topic head); ``evaluate`` scores a checkpoint against ``baselines`` (and another
checkpoint) on the held-out splits.
"""
