"""DOZOR_CLASSIFIER_PROCESS: the model in a spawned child process gives what it gives in-process."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

from models.child import ChildProcessClassifier
from models.classifier import TextClassifier

REPO = Path(__file__).resolve().parents[2]
TEXTS = ["Когда починят дорогу?", "Спасибо за работу", "Третью неделю не вывозят мусор", "ок"]


def test_child_process_scores_labels_and_thresholds_match_in_process(tiny_model_dir):
    kwargs = dict(thresholds={"toxic": 0.3}, batch_size=2, threads=1)
    local = TextClassifier.load(tiny_model_dir, **kwargs)
    child = ChildProcessClassifier(path=tiny_model_dir, **kwargs)
    try:
        assert child.labels == local.labels
        assert child.thresholds == local.thresholds
        got, want = child.predict(TEXTS), local.predict(TEXTS)
        assert [sorted(g) for g in got] == [sorted(w) for w in want]
        for g, w in zip(got, want):
            assert all(math.isclose(g[k], w[k], abs_tol=1e-6) for k in w)
            assert child.labels_above(g) == local.labels_above(w)
    finally:
        child.close()


def test_a_child_that_died_is_started_again(tiny_model_dir):
    child = ChildProcessClassifier(path=tiny_model_dir, threads=1)
    try:
        want = child.predict(TEXTS)
        for process in list(child.pool._processes.values()):
            os.kill(process.pid, signal.SIGKILL)  # out of memory, say
            process.join(10)
        got = child.predict(TEXTS)
        assert all(math.isclose(g[k], w[k], abs_tol=1e-6) for g, w in zip(got, want) for k in w)
    finally:
        child.close()


def test_with_the_model_in_a_child_the_worker_never_imports_torch(tiny_model_dir):
    """The point of the child for memory: the worker's own process stays without torch and
    transformers, ~350 MiB (they were imported before the branch, and by labels_above, which
    also stalled the first batch by the import's 0.8 s)."""
    script = (
        "import sys\n"
        "from services.settings import Settings\n"
        "from services.worker import load_classifier\n"
        f"c = load_classifier(Settings(model={str(tiny_model_dir)!r}, classifier_process=True))\n"
        "[scores], topics = c.predict_with_topics(['Когда починят дорогу?'])\n"
        "print(c.labels_above(scores), topics)\n"
        "c.close()\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOZOR_")}
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
