"""The `dozor` command: demo, worker, replay, classify, pages, model, settings."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

DESCRIPTION = """\
Dozor («Дозор») watches official public pages (госпаблики): it ingests posts and comments,
classifies each comment (question / negative / toxic), tracks whether the page answered its
citizens' questions in time, flags what a moderator must see and exports Prometheus metrics.

Configuration comes from DOZOR_* environment variables (or a .env file); `dozor settings`
lists them all with their defaults.
"""

EPILOG = """\
examples:
  dozor demo                                   everything on embedded defaults
  DOZOR_KAFKA_BOOTSTRAP=kafka:9092 dozor worker
  dozor replay services/sample/vk_events.jsonl
  echo "Когда починят дорогу на Советской?" | dozor classify
  dozor pages --metrics-url http://localhost:9464/metrics
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dozor", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", default="warning", help="logging level (default: warning)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo",
        help="run the whole pipeline on a bundled sample, live in the terminal",
        description="Start an embedded Kafka-compatible broker (unless DOZOR_KAFKA_BOOTSTRAP "
        "is set), a Dozor worker with its /metrics endpoint, replay the bundled sample of VK "
        "events from ~30 pages of a fictional district, and show live which pages need "
        "attention and the latest flags. Ctrl-C stops everything, broker included.",
    )
    demo.add_argument("--events", type=Path, default=None,
                      help="JSONL of VK callback payloads (default: the bundled sample)")
    demo.add_argument("--pages", type=Path, default=None,
                      help="page registry (default: the bundled sample's pages)")
    demo.add_argument("--rate", type=float, default=40.0,
                      help="events per second of the replay (default: 40)")
    demo.add_argument("--duration", type=float, default=None,
                      help="stop after this many seconds (default: run until Ctrl-C)")
    demo.add_argument("--keep-dates", action="store_true",
                      help="replay the events with their recorded dates (default: shift them "
                      "so that the last event happens now)")
    demo.set_defaults(handler=cmd_demo)

    worker = sub.add_parser(
        "worker",
        help="run the stream worker (needs DOZOR_KAFKA_BOOTSTRAP)",
        description="Consume raw platform payloads, normalise, classify, flag and track "
        "answers; serve /metrics on DOZOR_METRICS_PORT. Run several for more partitions.",
    )
    worker.set_defaults(handler=cmd_worker)

    replay = sub.add_parser(
        "replay",
        help="produce a JSONL file of VK callback payloads into the raw topic",
        description="Send each line of FILE (a VK Callback API payload, as VK posts it) to "
        "the raw VK topic, unchanged, keyed by community. Malformed lines are sent too: the "
        "worker moves them to the dead-letter topic with the reason.",
    )
    replay.add_argument("file", type=Path, help="JSONL file, one payload per line")
    replay.add_argument("--rate", type=float, default=None,
                        help="events per second (default: as fast as possible)")
    replay.add_argument(
        "--advance-clock-to", metavar="TIME", default=None,
        help="after the worker has consumed the replay, advance the stream clock to TIME "
        "(ISO 8601 with offset, e.g. 2026-03-04T18:00+03:00, or unix seconds): deadlines "
        "up to TIME pass, as if the replayed period had been lived through",
    )
    replay.set_defaults(handler=cmd_replay)

    classify = sub.add_parser(
        "classify",
        help="classify texts from a file or stdin, JSONL out",
        description="Read plain lines or JSONL objects with a `text` field; write one JSON "
        'object per input: {"text", "scores": {label: probability}, "labels": [labels above '
        'threshold], "topic": theme key or null}. The topic needs a topic head in the model '
        "folder (`dozor model train-topics`). Uses DOZOR_MODEL (default: the shipped model).",
    )
    classify.add_argument("file", nargs="?", type=Path, default=None,
                          help="input file (default: stdin)")
    classify.add_argument("--model", default=None, help="model directory (default: DOZOR_MODEL)")
    classify.add_argument(
        "--chunk", type=int, default=4096,
        help="texts read before classifying them together, sorted by length into batches of "
        "DOZOR_BATCH_SIZE; output keeps the input order (default: 4096; a terminal gets one "
        "batch at a time)",
    )
    classify.set_defaults(handler=cmd_classify)

    pages = sub.add_parser(
        "pages",
        help="show every page's state, most urgent first",
        description="Read the metrics of one or more running workers and show open and "
        "overdue questions, the oldest waiting question and the negative share per page.",
    )
    pages.add_argument("action", nargs="?", choices=["check"], default=None,
                       help="check: call each platform once per registered page and print "
                       "which connector, token and secret work, and why not")
    pages.add_argument("--metrics-url", action="append", default=None,
                       help="worker /metrics URL; repeat for several workers "
                       "(default: http://127.0.0.1:DOZOR_METRICS_PORT/metrics)")
    pages.add_argument("--limit", type=int, default=None, help="show at most N pages")
    pages.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    pages.set_defaults(handler=cmd_pages)

    settings = sub.add_parser(
        "settings", help="list every DOZOR_* setting with its default and meaning",
        description="Print the settings table (markdown), as in docs/configuration.md.",
    )
    settings.set_defaults(handler=cmd_settings)

    from services import model_commands
    from services.ingest import commands as ingest_commands
    from services.moderation import commands as moderation_commands

    model_commands.register(sub)
    ingest_commands.register(sub)
    moderation_commands.register(sub)
    return parser


def load_settings(**overrides):
    from services.settings import load_settings as load  # pydantic is imported only when a command needs it

    return load(**overrides)


def cmd_demo(args) -> int:
    from services.demo import run_demo

    return run_demo(load_settings(), args.events, args.pages, args.rate, args.duration,
                    shift=not args.keep_dates)


def cmd_worker(args) -> int:
    from services.worker import run_worker

    run_worker(load_settings(), loglevel=args.log_level)
    return 0


def cmd_replay(args) -> int:
    from tqdm import tqdm

    from services.replay import advance_clock, read_lines, replay_lines, wait_until_consumed

    settings = load_settings()
    if not settings.kafka_bootstrap:
        raise SystemExit("DOZOR_KAFKA_BOOTSTRAP is not set: point it at the Kafka to replay into")
    if not args.file.is_file():
        raise SystemExit(f"{args.file}: no such file")
    lines = read_lines(args.file)
    with tqdm(total=len(lines), unit="ev", desc="replay", disable=not sys.stderr.isatty()) as bar:
        report = asyncio.run(
            replay_lines(settings.kafka_bootstrap, settings.topic_raw_vk, lines, args.rate, bar)
        )
    print(f"sent {report.sent} payloads to {settings.topic_raw_vk}", file=sys.stderr)
    if args.advance_clock_to:
        at = parse_time(args.advance_clock_to)
        asyncio.run(wait_until_consumed(
            settings.kafka_bootstrap, settings.app_id, settings.topic_raw_vk, report.next_offsets
        ))
        n = asyncio.run(advance_clock(settings.kafka_bootstrap, settings.topic_clock, at))
        print(f"stream clock advanced to {args.advance_clock_to} on {n} partitions",
              file=sys.stderr)
    return 0


def parse_time(text: str) -> float:
    """Unix seconds or ISO 8601 with an offset → unix seconds."""
    from datetime import datetime

    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"{text!r}: expected ISO 8601 like 2026-03-04T18:00+03:00") from None
    if moment.tzinfo is None:
        raise SystemExit(f"{text!r}: give the time zone offset, e.g. +03:00")
    return moment.timestamp()


def iter_texts(stream):
    """Texts from plain lines or JSONL objects with a `text` field."""
    for number, line in enumerate(stream, 1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                if not isinstance(obj.get("text"), str):
                    raise SystemExit(f"line {number}: JSON object without a string 'text' field")
                yield obj["text"]
                continue
        yield line


def cmd_classify(args) -> int:
    from services.worker import load_classifier

    settings = load_settings(**({"model": args.model} if args.model else {}))
    # No event loop to keep free here: a child process would only add its start-up.
    classifier = load_classifier(settings.model_copy(update={"classifier_process": False}))
    source = args.file.open(encoding="utf-8") if args.file else sys.stdin
    # A file or a pipe is read in chunks of many batches, which the classifier sorts by length
    # (10,000 mixed texts: 360 -> 1,148 texts/s); a person typing gets each line's answer.
    chunk = settings.batch_size if source.isatty() else args.chunk
    batch: list[str] = []

    def flush() -> None:
        results, topics = classifier.predict_with_topics(batch)
        for text, scores, topic in zip(batch, results, topics):
            rounded = {k: round(v, 4) for k, v in sorted(scores.items())}
            out = {"text": text, "scores": rounded, "labels": classifier.labels_above(scores),
                   "topic": topic}
            sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        batch.clear()

    with source:
        for text in iter_texts(source):
            batch.append(text)
            if len(batch) >= chunk:
                flush()
    if batch:
        flush()
    return 0


def cmd_pages(args) -> int:
    if args.action == "check":
        from services.ingest.check import run_check

        return run_check(load_settings(), args)
    from rich.console import Console

    from services.pages_view import page_rows, pages_table, scrape

    settings = load_settings()
    urls = args.metrics_url or [f"http://127.0.0.1:{settings.metrics_port}/metrics"]
    texts = []
    for url in urls:
        try:
            texts.append(scrape(url))
        except OSError as exc:
            raise SystemExit(f"cannot read {url}: {exc}; is `dozor worker` running?") from None
    rows, stream_time = page_rows(texts)
    if args.json:
        for row in rows[: args.limit]:
            print(json.dumps(row.__dict__, ensure_ascii=False))
    else:
        Console().print(pages_table(rows, stream_time, args.limit))
    return 0


def cmd_settings(args) -> int:
    from services.settings import Settings

    print("| variable | default | meaning |\n|---|---|---|")
    for name, field in Settings.model_fields.items():
        default = field.default if field.default_factory is None else field.default_factory()
        if isinstance(default, Path) or name == "model":
            default = str(default).replace(str(Path.cwd()) + "/", "")
        print(f"| `DOZOR_{name.upper()}` | `{json.dumps(default, ensure_ascii=False, default=str)}` "
              f"| {field.description} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.handler(args) or 0
    except Exception as exc:
        # a wrong DOZOR_MODEL / label map / quantisation: the message says what to do, no traceback
        # (looked up lazily so that commands which never load a model do not import torch)
        classifier = sys.modules.get("models.classifier")
        if classifier is not None and isinstance(exc, classifier.ModelConfigError):
            raise SystemExit(f"dozor: {exc}") from None
        raise


if __name__ == "__main__":
    sys.exit(main())
