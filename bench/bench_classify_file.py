"""`dozor classify FILE` end to end on 10,000 mixed-length texts, against the naive pipeline.

    .venv/bin/python bench/bench_classify_file.py [--texts 10000] [--naive-texts 1000] [--repeats 3]

1. Builds a JSONL file of --texts texts, seeded (--seed), mixed by --mix: tweets (SentiRuEval-2015
   banks + telecoms test etalon), VK posts and comments (RuSentiment official test) and citizens'
   appeals to the authorities (kursk_appeals/appeals.csv, HTML stripped); every text is cut at
   600 characters at a word boundary. Only test files are used for the social texts (RuSentiTweet
   is not: only its train file is published); a pool smaller than its share is drawn again, and
   the output says how many texts are distinct. Without ../shared/data the texts are synthetic comments (as in
   bench/bench_classifier.py), and the output says so. JSONL, because appeals hold line breaks.
2. Runs the real command as a subprocess, `python -m services.cli classify FILE --model M`, stdout
   to a scratch file whose lines are counted, and the same command on a one-line file (start-up +
   model load). Runs alternate (one line, full file, per variant, --repeats rounds); medians of
   each. texts/s excluding load = N / (median full - median one-line), including load = N /
   median full. Variants (--variants): `default` (the shipped settings: float32 as the
   checkpoint's dozor.json says, DOZOR_INFERENCE_THREADS=1), `int8` (DOZOR_QUANTIZE=int8),
   `threads2` (DOZOR_INFERENCE_THREADS=2) and `int8-threads2` (both). int8 label agreement is not
   measured here (bench/bench_classifier.py does).
3. In the same run, the naive way: a transformers `pipeline("text-classification")` on the model
   (as in bench/bench_classifier.py), called once per text on a seeded sample (--naive-texts) of
   the same file, pipeline load excluded; and the ratio of each variant to it. It runs on
   --threads torch threads, 1 by default like the shipped `dozor classify`
   (DOZOR_INFERENCE_THREADS=1): like for like, and two threads per text collapse when another
   process holds a core (13 texts/s against 270 with one thread, measured under load).
4. Prints a markdown table with the model's weight size and writes bench/results/classify_file.json.

The load average is recorded before and after: on a busy machine (1-minute load above 3/4 of
the cores) every figure is low, and the output warns. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_classifier import percentile, synthetic_texts  # noqa: E402  (same synthetic fallback)

from models.in_domain.select import appeal_text  # noqa: E402  (the appeals as the labelled set reads them)

#: default shares of the mix: short tweets, VK posts/comments, long appeals
DEFAULT_MIX = {"tweets": 0.45, "vk": 0.30, "appeals": 0.25}
MAX_CHARS = 600
#: environment of each variant of `dozor classify` (on top of the caller's, minus these keys)
VARIANTS = {
    "default": {},
    "int8": {"DOZOR_QUANTIZE": "int8"},
    "threads2": {"DOZOR_INFERENCE_THREADS": "2"},
    "int8-threads2": {"DOZOR_QUANTIZE": "int8", "DOZOR_INFERENCE_THREADS": "2"},
}
VARIANT_KEYS = ("DOZOR_QUANTIZE", "DOZOR_INFERENCE_THREADS", "DOZOR_BATCH_SIZE", "DOZOR_MAX_TEXT_LENGTH",
                "DOZOR_CLASSIFIER_PROCESS")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ texts

def cut_at_word(text: str, limit: int = MAX_CHARS) -> str:
    """At most `limit` characters, cut at the last whitespace before the limit (if any)."""
    if len(text) <= limit:
        return text
    head = text[: limit + 1]
    space = max(head.rfind(" "), head.rfind("\n"))
    return (head[:space] if space > 0 else text[:limit]).rstrip()


def read_pools(data_dir: Path) -> dict[str, tuple[list[str], str]]:
    """Distinct non-empty texts per kind, with where they came from; kinds whose files are missing are left out."""
    pools: dict[str, tuple[list[str], str]] = {}
    tweets: list[str] = []
    for name in ("banks_test_etalon.xml", "telecoms_test_etalon.xml"):
        path = data_dir / "sentirueval2015" / name
        if path.is_file():
            for table in ET.parse(path).getroot().iter("table"):
                for column in table.findall("column"):
                    if column.get("name") == "text" and (column.text or "").strip():
                        tweets.append(column.text.strip())
    if tweets:
        pools["tweets"] = (tweets, "SentiRuEval-2015 banks + telecoms test etalon")
    path = data_dir / "rusentiment" / "rusentiment_test.csv"
    if path.is_file():
        with path.open(encoding="utf-8", newline="") as f:
            pools["vk"] = ([r["text"].strip() for r in csv.DictReader(f) if r["text"].strip()], "RuSentiment official test")
    path = data_dir / "kursk_appeals" / "appeals.csv"
    if path.is_file():
        csv.field_size_limit(10**9)
        with path.open(encoding="utf-8", newline="") as f:
            appeals = [appeal_text(r["text_html"]) for r in csv.DictReader(f)]
        pools["appeals"] = ([t for t in appeals if t], "kursk_appeals, HTML stripped")
    # every text cut at MAX_CHARS at a word boundary; distinct texts, in a stable order
    return {kind: (sorted({cut_at_word(t) for t in texts}), where) for kind, (texts, where) in pools.items()}


def build_texts(n: int, data_dir: Path, seed: int = 7, mix: dict[str, float] | None = None) -> tuple[list[str], dict]:
    """`n` texts mixed by `mix` (shares of tweets / vk / appeals), shuffled, seeded; and a description.

    Falls back to synthetic comment-like texts when any of the three sources is missing.
    """
    mix = dict(mix or DEFAULT_MIX)
    pools = read_pools(data_dir)
    if set(mix) - set(pools):
        texts = [cut_at_word(t) for t in synthetic_texts(n, seed)]
        return texts, {"source": f"synthetic comment-like texts ({data_dir} lacks "
                                 f"{', '.join(sorted(set(mix) - set(pools)))})", "synthetic": True, "mix": {}}
    rng = random.Random(seed)
    total = sum(mix.values())
    counts = {kind: int(round(n * share / total)) for kind, share in mix.items()}
    counts[max(counts, key=counts.get)] += n - sum(counts.values())  # rounding goes to the largest share
    texts: list[str] = []
    described = {}
    for kind, count in counts.items():
        pool, where = pools[kind]
        picked = rng.sample(pool, min(count, len(pool)))
        while len(picked) < count:  # a pool smaller than its share is drawn again
            picked += rng.sample(pool, min(count - len(picked), len(pool)))
        texts += picked
        described[kind] = {"texts": count, "share": round(count / n, 3) if n else 0.0,
                           "distinct": len(set(picked)), "pool": len(pool), "from": where,
                           "chars": length_stats(picked)}
    rng.shuffle(texts)
    return texts, {"source": "; ".join(f"{k}: {v['from']}" for k, v in described.items()), "synthetic": False,
                   "mix": described}


def length_stats(texts: list[str]) -> dict:
    lengths = [len(t) for t in texts] or [0]
    return {"mean": round(statistics.mean(lengths), 1), "p50": percentile(lengths, 0.5),
            "p90": percentile(lengths, 0.9), "max": max(lengths)}


def write_jsonl(path: Path, texts: list[str]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for text in texts:
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")


# ------------------------------------------------------------------------- the real command

def classify_command(file: Path, model: Path) -> list[str]:
    return [sys.executable, "-m", "services.cli", "classify", str(file), "--model", str(model)]


def time_classify(file: Path, model: Path, env: dict[str, str], expect: int, scratch: Path) -> float:
    """Wall seconds of one `dozor classify FILE`, stdout to a scratch file; checks one line out per text."""
    with scratch.open("wb") as out:
        started = time.perf_counter()
        done = subprocess.run(classify_command(file, model), cwd=REPO_ROOT, env=env, stdout=out,
                              stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"dozor classify failed ({done.returncode}):\n{done.stderr[-3000:]}")
    with scratch.open("rb") as f:
        lines = sum(1 for _ in f)
    if lines != expect:
        raise SystemExit(f"dozor classify wrote {lines} lines for {expect} texts ({file})")
    return elapsed


def run_variants(file: Path, one: Path, n: int, model: Path, variants: list[str], repeats: int,
                 workdir: Path) -> dict[str, dict]:
    base = {k: v for k, v in os.environ.items() if k not in VARIANT_KEYS}
    full: dict[str, list[float]] = {v: [] for v in variants}
    load: dict[str, list[float]] = {v: [] for v in variants}
    steps, step = repeats * len(variants) * 2, 0
    for round_ in range(repeats):
        for variant in variants:  # alternate: a busy neighbour slows every variant alike
            env = {**base, **VARIANTS[variant]}
            for kind, path, count, runs in (("one line", one, 1, load), (f"{n} texts", file, n, full)):
                step += 1
                seconds = time_classify(path, model, env, count, workdir / "out.jsonl")
                runs[variant].append(seconds)
                progress(f"[{step}/{steps}] round {round_ + 1} {variant:>13} {kind:>11}: {seconds:6.2f} s")
    results = {}
    for variant in variants:
        t_full, t_load = statistics.median(full[variant]), statistics.median(load[variant])
        work = t_full - t_load
        results[variant] = {
            "env": VARIANTS[variant],
            "full_s_runs": [round(s, 3) for s in full[variant]], "one_line_s_runs": [round(s, 3) for s in load[variant]],
            "full_s": round(t_full, 3), "start_and_load_s": round(t_load, 3),
            "texts_per_s_excluding_load": round(n / work, 1) if work > 0 else None,
            "texts_per_s_including_load": round(n / t_full, 1),
        }
    return results


# ------------------------------------------------------------------------------- the naive way

def run_naive(texts: list[str], model: Path, threads: int) -> dict:
    import torch
    import transformers

    import models.ngram_model  # noqa: F401  (registers the checkpoint's architecture with the Auto classes)

    torch.set_num_threads(threads)
    transformers.utils.logging.disable_progress_bar()
    pipe = transformers.pipeline("text-classification", model=str(model), tokenizer=str(model), top_k=None,
                                 function_to_apply="sigmoid", device=-1, dtype=torch.float32)
    pipe(texts[0], truncation=True, max_length=256)  # warm-up
    seconds = []
    for i, text in enumerate(texts, 1):
        started = time.perf_counter()
        pipe(text, truncation=True, max_length=256)  # the model's limit, as `dozor classify` cuts
        seconds.append(time.perf_counter() - started)
        if i % 200 == 0 or i == len(texts):
            progress(f"naive pipeline: {i}/{len(texts)} texts, {i / sum(seconds):.0f} texts/s so far")
    return {"texts": len(texts), "threads": threads, "texts_per_s": round(len(texts) / sum(seconds), 1),
            "p50_ms": round(1000 * percentile(seconds, 0.5), 2), "p99_ms": round(1000 * percentile(seconds, 0.99), 2)}


# ------------------------------------------------------------------------------------- main

def parse_mix(text: str) -> dict[str, float]:
    mix = {}
    for part in text.split(","):
        kind, _, share = part.partition("=")
        if kind.strip() not in DEFAULT_MIX or not share:
            raise argparse.ArgumentTypeError(f"{part!r}: expected kind=share with kind in {', '.join(DEFAULT_MIX)}")
        mix[kind.strip()] = float(share)
    return mix


def folder_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.iterdir() if f.is_file()) / 1e6, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=10_000, help="texts in the file (default: 10000)")
    parser.add_argument("--naive-texts", type=int, default=1000, help="texts of the file sampled for the naive "
                        "per-text pipeline (default: 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of runs; medians are reported (default: 3)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, of {', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--mix", type=parse_mix, default=DEFAULT_MIX,
                        help="shares of the file, e.g. tweets=0.45,vk=0.30,appeals=0.25 (the default)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the draw and of the naive sample (default: 7)")
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "default", help="model directory "
                        "(default: models/default), passed to `dozor classify --model`")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "data",
                        help="where the real texts are (default: ../shared/data); synthetic texts without it")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the naive pipeline "
                        "(default: 1, as the shipped `dozor classify`)")
    parser.add_argument("--keep", type=Path, default=None, help="also write the text file here")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench" / "results" / "classify_file.json",
                        help="JSON result path")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants or args.texts < 1 or args.repeats < 1:
        parser.error(f"bad --variants {unknown}, --texts or --repeats")
    load_before = os.getloadavg()

    progress(f"building {args.texts} texts from {args.data_dir} ...")
    texts, described = build_texts(args.texts, args.data_dir, args.seed, args.mix)
    n = len(texts)
    chars = length_stats(texts)
    with tempfile.TemporaryDirectory(prefix="dozor-bench-") as tmp:
        workdir = Path(tmp)
        file, one = workdir / "texts.jsonl", workdir / "one.jsonl"
        write_jsonl(file, texts)
        write_jsonl(one, texts[:1])
        if args.keep:
            write_jsonl(args.keep, texts)
        progress(f"{n} texts, chars mean {chars['mean']}, p50 {chars['p50']}, p90 {chars['p90']}, max {chars['max']}; "
                 f"running `dozor classify` {args.repeats} x {len(variants)} variants x (one line + file) ...")
        runs = run_variants(file, one, n, args.model, variants, args.repeats, workdir)

    sample = random.Random(args.seed).sample(texts, min(args.naive_texts, n))
    progress(f"naive pipeline on {len(sample)} of the texts ...")
    naive = run_naive(sample, args.model, args.threads)
    for result in runs.values():
        rate = result["texts_per_s_excluding_load"]
        result["vs_naive"] = round(rate / naive["texts_per_s"], 2) if rate else None
    load_after = os.getloadavg()

    import torch
    import transformers

    weights = {f.name: round(f.stat().st_size / 1e6, 2) for f in sorted(args.model.iterdir())
               if f.is_file() and f.suffix in (".safetensors", ".bin")}  # classifier and any topic head
    result = {
        "command": "python -m services.cli classify FILE --model MODEL > scratch (lines counted)",
        "model": str(args.model.relative_to(REPO_ROOT) if args.model.is_relative_to(REPO_ROOT) else args.model),
        "weights_mb": round(sum(weights.values()), 2), "weight_files_mb": weights,
        "model_folder_mb": folder_mb(args.model),
        "texts": n, "seed": args.seed, "source": described["source"], "synthetic": described["synthetic"],
        "mix": described["mix"], "text_chars": chars,
        "repeats": args.repeats,
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "load_average_1min": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        "torch": torch.__version__, "transformers": transformers.__version__,
        "classify": runs,
        "naive_pipeline_per_text": naive,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    files = ", ".join(f"{name} {mb}" for name, mb in weights.items())
    print(f"Model `{result['model']}`: weights {result['weights_mb']} MB ({files}; folder {result['model_folder_mb']} MB; "
          f"limit 40 MB). {n} texts, {result['cores']} cores.")
    if described["synthetic"]:
        print(f"Texts: SYNTHETIC, {described['source']}.")
    else:
        print("Texts: " + "; ".join(f"{k} {100 * v['share']:.0f}% ({v['texts']}, {v['distinct']} distinct, "
                                    f"{v['from']}; chars mean {v['chars']['mean']}, p90 {v['chars']['p90']})"
                                    for k, v in described["mix"].items()) + ".")
    print(f"Length of all texts, chars: mean {chars['mean']}, p50 {chars['p50']}, p90 {chars['p90']}, max {chars['max']}.\n")
    print("| `dozor classify` variant | median full file, s | median one line (start + load), s | "
          "texts/s excl. load | texts/s incl. load | vs naive |")
    print("|---|---|---|---|---|---|")
    for variant, r in runs.items():
        env = " ".join(f"{k}={v}" for k, v in r["env"].items()) or "shipped settings"
        print(f"| {variant} ({env}) | {r['full_s']} | {r['start_and_load_s']} | {r['texts_per_s_excluding_load']} | "
              f"{r['texts_per_s_including_load']} | {r['vs_naive']}x |")
    print(f"| naive: pipeline('text-classification') per text, {naive['threads']} thread{'s' if naive['threads'] != 1 else ''}, "
          f"{naive['texts']} texts (load excluded) | — | — | {naive['texts_per_s']} | — | 1x |")
    best = max(runs, key=lambda v: runs[v]["texts_per_s_excluding_load"] or 0)
    print(f"\nBest: {best}, {runs[best]['texts_per_s_excluding_load']} texts/s excluding load "
          f"(target ≥ 1,000: {'met' if (runs[best]['texts_per_s_excluding_load'] or 0) >= 1000 else 'NOT met'}).")
    busiest = max(load_before[0], load_after[0])
    if busiest > (os.cpu_count() or 1) * 0.75:
        print(f"WARNING: load average {load_before[0]:.1f} before, {load_after[0]:.1f} after on {os.cpu_count()} "
              "cores: other work was running, every figure is low. Re-measure on a quiet machine.")
    print(f"written {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
