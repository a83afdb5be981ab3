"""Throughput and latency of the default classifier on comment-like Russian texts.

    .venv/bin/python bench/bench_classifier.py [--model models/default] [--threads 2]

Texts: sampled at run time from RuSentiment test and SentiRuEval-2015 test when
../shared/data is present (real VK posts and tweets), otherwise synthesised from comment
templates with a realistic length spread (most 30–150 characters, a tail to ~600).
Measures `TextClassifier.predict` (float32) at batch 64 (length-sorted, dynamically padded; median of
three passes after a warm-up pass) and at batch 1 (per-text latency p50/p99), the same with the
linear layers quantised to dynamic int8 at load time (passes alternate with float32; label
agreement with float32 reported), and, for comparison, the naive way: a transformers
`pipeline("text-classification")` called once per text. Prints a markdown table and writes
bench/results/classifier.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

_OPENINGS = ["Когда", "Подскажите,", "Почему", "Уважаемая администрация,", "Опять", "Спасибо", "Сколько можно",
             "Кто ответит,", "Жители дома 5 просят", "Третий день", "Вы вообще читаете?", "Добрый день!"]
_MIDDLES = ["отремонтируют дорогу на улице Ленина", "нет горячей воды", "не вывозят мусор со двора",
            "автобус 12 не ходит по расписанию", "во дворе нет освещения", "за оперативную работу",
            "куда обращаться по поводу отопления", "яма на перекрёстке у школы", "детская площадка разрушена",
            "в поликлинике очереди по три часа", "снег не убирают с тротуаров", "тарифы опять подняли"]
_TAILS = ["", "?", "!", "!!!", ". Сколько можно ждать?", ". Обращались уже много раз, ответа нет.",
          ". Спасибо заранее.", " (((", " Примите меры, пожалуйста.", ". Позор!"]


def synthetic_texts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = [f"{rng.choice(_OPENINGS)} {rng.choice(_MIDDLES)}{rng.choice(_TAILS)}"]
        while rng.random() < 0.45:  # geometric number of extra sentences → long tail
            parts.append(f"{rng.choice(_OPENINGS)} {rng.choice(_MIDDLES)}{rng.choice(_TAILS)}")
        out.append(" ".join(parts))
    return out


def dataset_texts(n: int, data_dir: Path, seed: int = 7) -> list[str] | None:
    texts = []
    path = data_dir / "rusentiment" / "rusentiment_test.csv"
    if path.is_file():
        with path.open(encoding="utf-8", newline="") as f:
            texts += [r["text"].strip() for r in csv.DictReader(f) if r["text"].strip()]
    try:
        from models.training.data import read_sentirueval

        xml = data_dir / "sentirueval2015" / "telecoms_test_etalon.xml"
        if xml.is_file():
            texts += [t for t, _, _ in read_sentirueval(xml)]
    except Exception:  # noqa: BLE001 - the benchmark still runs on the other texts
        pass
    if len(texts) < n:
        return None
    return random.Random(seed).sample(texts, n)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "default", help="model directory (default: models/default)")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "data", help="where to sample real texts from, if present")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("--batch-texts", type=int, default=2048, help="texts for the batch-64 run (default: 2048)")
    parser.add_argument("--single-texts", type=int, default=300, help="texts for the batch-1 and naive runs (default: 300)")
    parser.add_argument("--repeats", type=int, default=3, help="timed batch-64 passes; the median is reported (default: 3)")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench" / "results" / "classifier.json", help="JSON result path")
    args = parser.parse_args(argv)

    import torch
    import transformers

    from models.classifier import TextClassifier

    torch.set_num_threads(args.threads)
    texts = dataset_texts(args.batch_texts, args.data_dir)
    source = f"sampled from RuSentiment test + SentiRuEval-2015 telecoms test ({args.data_dir})"
    if texts is None:
        texts = synthetic_texts(args.batch_texts)
        source = "synthetic comment-like texts"
    lengths = [len(t) for t in texts]
    single = texts[: args.single_texts]

    clf = TextClassifier.load(args.model, batch_size=64, quantize="none")  # float32
    int8 = TextClassifier.load(args.model, batch_size=64, quantize="int8")
    shipped = TextClassifier.load(args.model).quantize  # what the checkpoint's dozor.json asks for
    fp32_scores, int8_scores = clf.predict(texts), int8.predict(texts)  # warm-up passes

    # float32 and int8 passes alternate, so a busy neighbour slows both alike
    batch64_runs, int8_runs = [], []
    for _ in range(args.repeats):
        for model, runs in ((clf, batch64_runs), (int8, int8_runs)):
            started = time.perf_counter()
            model.predict(texts)
            runs.append(len(texts) / (time.perf_counter() - started))

    latencies, int8_latencies = [], []
    for text in single:
        for model, out in ((clf, latencies), (int8, int8_latencies)):
            t0 = time.perf_counter()
            model.predict([text])
            out.append(time.perf_counter() - t0)
    same_labels = sum(clf.labels_above(a) == clf.labels_above(b) for a, b in zip(fp32_scores, int8_scores))
    max_shift = max(abs(a[k] - b[k]) for a, b in zip(fp32_scores, int8_scores) for k in a)

    pipe = transformers.pipeline("text-classification", model=str(args.model), tokenizer=str(args.model),
                                 top_k=None, function_to_apply="sigmoid", device=-1,
                                 dtype=torch.float32)
    pipe(single[0])
    naive = []
    for text in single:
        t0 = time.perf_counter()
        pipe(text)
        naive.append(time.perf_counter() - t0)

    weights = args.model / "model.safetensors"
    result = {
        "model": str(args.model.relative_to(REPO_ROOT) if args.model.is_relative_to(REPO_ROOT) else args.model),
        "weights_mb": round(weights.stat().st_size / 1e6, 2) if weights.is_file() else None,
        "texts": source,
        "text_chars": {"mean": round(statistics.mean(lengths), 1), "p50": percentile(lengths, 0.5),
                       "p90": percentile(lengths, 0.9), "max": max(lengths)},
        "threads": args.threads,
        "default_quantize": shipped,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "batch64": {"texts": len(texts), "texts_per_s": round(statistics.median(batch64_runs), 1),
                    "runs_texts_per_s": [round(r, 1) for r in batch64_runs]},
        "batch1": {"texts": len(single), "texts_per_s": round(len(single) / sum(latencies), 1),
                   "p50_ms": round(1000 * percentile(latencies, 0.5), 2), "p99_ms": round(1000 * percentile(latencies, 0.99), 2)},
        "int8_dynamic": {"texts_per_s_batch64": round(statistics.median(int8_runs), 1),
                         "runs_texts_per_s": [round(r, 1) for r in int8_runs],
                         "texts_per_s_batch1": round(len(single) / sum(int8_latencies), 1),
                         "p50_ms": round(1000 * percentile(int8_latencies, 0.5), 2),
                         "p99_ms": round(1000 * percentile(int8_latencies, 0.99), 2),
                         "same_labels_share": round(same_labels / len(texts), 4), "max_probability_shift": round(max_shift, 4)},
        "naive_pipeline_per_text": {"texts": len(single), "texts_per_s": round(len(single) / sum(naive), 1),
                                    "p50_ms": round(1000 * percentile(naive, 0.5), 2), "p99_ms": round(1000 * percentile(naive, 0.99), 2)},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    print(f"Model `{result['model']}` ({result['weights_mb']} MB), {args.threads} torch threads, texts: {source}; "
          f"chars mean {result['text_chars']['mean']}, p50 {result['text_chars']['p50']}, p90 {result['text_chars']['p90']}\n")
    print(f"The checkpoint runs {'int8' if shipped == 'int8' else 'float32'} by default (dozor.json quantize: {shipped}).\n")
    print("| mode | texts | texts/s | p50 latency, ms | p99 latency, ms |")
    print("|---|---|---|---|---|")
    b64, b1, nv = result["batch64"], result["batch1"], result["naive_pipeline_per_text"]
    print(f"| TextClassifier.predict float32, batch 64 (length-sorted; median of {len(batch64_runs)} passes) | {b64['texts']} | {b64['texts_per_s']} | — | — |")
    print(f"| TextClassifier.predict float32, batch 1 | {b1['texts']} | {b1['texts_per_s']} | {b1['p50_ms']} | {b1['p99_ms']} |")
    q = result["int8_dynamic"]
    print(f"| int8 dynamic (`DOZOR_QUANTIZE=int8`), batch 64 | {b64['texts']} | {q['texts_per_s_batch64']} | — | — |")
    print(f"| int8 dynamic, batch 1 | {b1['texts']} | {q['texts_per_s_batch1']} | {q['p50_ms']} | {q['p99_ms']} |")
    print(f"| naive: pipeline('text-classification') per text, float32 | {nv['texts']} | {nv['texts_per_s']} | {nv['p50_ms']} | {nv['p99_ms']} |")
    print(f"\nint8 vs float32: same labels on {100 * q['same_labels_share']:.1f}% of texts, largest probability shift {q['max_probability_shift']}")
    print(f"written {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
