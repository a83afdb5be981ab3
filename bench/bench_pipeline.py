"""Throughput, produce→flag latency and memory of the whole worker: raw VK payloads in → flags out.

    .venv/bin/python bench/bench_pipeline.py [--events 2000] [--rate R | --rate R --duration S]
                                             [--variants batched,naive] [--model models/default]
                                             [--pages N]

Starts the embedded broker and, per variant, a fresh `dozor worker` (own topics, own data
directory), then produces N VK comment events (the bundled sample's citizen comments, cycled
and re-numbered so each is new; the pages' own replies are left out, they are never flagged)
into its raw topic, keyed by page id as `dozor replay` keys them:

* without --rate, all at once (as fast as the producer sends them);
* with --rate R, at a steady R events/s, scheduled by absolute time (event i is due at
  start + i/R; a late send is not carried over to the next), each record's Kafka timestamp
  being its send time.

Variants, measured in the same run against the same broker:

* **batched** — the default: the `process` agent takes up to 64 events or 50 ms at a time and
  the classifier runs once per batch;
* **naive** — `DOZOR_BATCH_SIZE=1`: one classifier call per event, the way a plain Faust
  `async for event in stream` agent would do it.

Every bench comment gets exactly one flag: `toxic` with the threshold at 0.0, the other flag
rules out of reach (negative threshold 2.0, spikes need 10⁹ negatives, comment dates are the
planned send time so no question is overdue during a run). The bench consumes the flags topic
while it produces and matches each flag to its item (`item_id`, the VK comment id); an item
with several flags counts its first.

Figures per variant:

* events/s — comments flagged per second from the first to the last flag received
  ((N − 1) / that span), counted on the bench's consumer: /metrics is read once, after the
  last flag, so the worker serves no scrape while it works;
* produce→flag latency p50 / p95 / p99 / max — per item, the flag's arrival at the bench's
  consumer minus the raw record's timestamp (its send time);
* peak RSS — the worker's VmHWM from /proc/PID/status at the end (children added if any);
* time per batch in each stage of the worker's `process` agent (classify, step, publish and wait
  for the acks, store), from its `dozor_batch_stage_seconds` histogram in that one read;
* RSS over time — the VmRSS of the worker and its children, read from /proc every 10 s by the
  bench (no load on the worker), reported as the highest reading of the run's first and last
  minutes and written out in full to the JSON (`rss_series_mib`; the worker alone, without the
  classifier's child process: `worker_rss_series_mib`): a worker whose memory grows with the
  events it has seen shows it here.

With --pages N the comments are spread over N pages (comment i on page i mod N, each page with
its own registry entry, written to a temporary pages file for the worker), as a region's 1,670
pages would send them; without it they go to the bundled sample's pages.

Before the clock starts one warm-up comment goes through and its flag is awaited (the group
has joined and the model has run once); it is not counted. Prints a markdown table and writes
the command line, machine, date and figures to bench/results/pipeline.json (--out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from services.broker import EmbeddedBroker, die_with_parent, free_port  # noqa: E402
from services.replay import payload_key  # noqa: E402

VARIANTS = {
    "batched": (64, "batched (64 / 50 ms)"),
    "naive": (1, "naive (one call per event)"),
}
WARMUP_ID = 999_999  # the warm-up comment's VK id; bench comments are 1,000,000 + i


def sample_comments() -> list[dict]:
    sample = []
    for line in (REPO / "services/sample/vk_events.jsonl").read_bytes().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        obj = event.get("object", {})
        # citizens' comments only: the page's own replies are never flagged
        if (event.get("type") == "wall_reply_new" and "text" in obj
                and isinstance(obj.get("from_id"), int) and obj["from_id"] > 0):
            sample.append(event)
    return sample


PAGE_BASE = 3_000_000  # --pages: VK community ids 3,000,000 + j


def comment_payloads(n: int, start: float, rate: float | None,
                     pages: int | None = None) -> list[tuple[str, bytes]]:
    """N distinct wall_reply_new payloads built from the sample's citizen comments, as (item id,
    payload); each comment is dated at its planned send time (`start` + i/rate). With `pages`,
    comment i goes to community PAGE_BASE + i mod pages."""
    sample = sample_comments()
    out = []
    for i in range(n):
        event = json.loads(json.dumps(sample[i % len(sample)]))
        event["event_id"] = f"bench-{i}"
        event["object"]["id"] = 1_000_000 + i
        event["object"]["date"] = int(start + (i / rate if rate else 0.0))
        if pages:
            community = PAGE_BASE + i % pages
            event["group_id"] = community
            event["object"]["owner_id"] = -community
        out.append((str(event["object"]["id"]), json.dumps(event, ensure_ascii=False).encode()))
    return out


def write_pages_file(path: Path, pages: int) -> Path:
    """A registry of `pages` VK pages (communities PAGE_BASE + j) for the worker."""
    lines = ["pages:"]
    for j in range(pages):
        lines += [f'  - page_id: "vk:-{PAGE_BASE + j}"', "    platform: vk",
                  f'    name: "Страница {j + 1}"', '    municipality: "Бенчмарк"',
                  '    category: "администрация"', "    answer_deadline_hours: 8",
                  "    deadline_mode: working"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def warmup_payload() -> tuple[str, bytes]:
    event = json.loads(json.dumps(sample_comments()[0]))
    event["event_id"] = "bench-warmup"
    event["object"]["id"] = WARMUP_ID
    event["object"]["date"] = int(time.time())
    return str(WARMUP_ID), json.dumps(event, ensure_ascii=False).encode()


def scrape(url: str) -> list:
    """The samples of one /metrics read."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def metric_sums(samples: list, names: tuple[str, ...]) -> dict[str, float]:
    """Sums of the named samples."""
    out = dict.fromkeys(names, 0.0)
    for s in samples:
        if s.name in out:
            out[s.name] += s.value
    return out


def stage_means(samples: list) -> dict[str, dict[str, float]]:
    """Per stage of the process agent (dozor_batch_stage_seconds): batches and mean ms."""
    sums = {s.labels["stage"]: s.value for s in samples
            if s.name == "dozor_batch_stage_seconds_sum"}
    counts = {s.labels["stage"]: s.value for s in samples
              if s.name == "dozor_batch_stage_seconds_count"}
    return {stage: {"batches": int(counts[stage]),
                    "mean_ms": round(1000 * sums[stage] / counts[stage], 2)}
            for stage in sums if counts.get(stage)}


def status_bytes(pid: int, field: str) -> int:
    """A size field of /proc/PID/status (VmHWM, VmRSS) in bytes; 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_status_bytes(pid: int, field: str) -> int:
    """`field` of /proc/PID/status summed over the process and its live descendants (the
    worker's model runs in a child process by default)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += status_bytes(p, field)
        todo.extend(children.get(p, []))
    return total


def peak_rss_bytes(pid: int) -> int:
    """VmHWM (peak resident set) of a process, plus that of its live descendants."""
    return tree_status_bytes(pid, "VmHWM")


class RssSampler:
    """Reads the VmRSS of a process and its descendants every `every` seconds in a thread:
    [(seconds since start, MiB)]."""

    def __init__(self, pid: int, every: float = 10.0) -> None:
        import threading

        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float]] = []
        self.own: list[tuple[float, float]] = []  # the worker alone, without its children
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.monotonic()

    def _run(self) -> None:
        while True:
            t = round(time.monotonic() - self.t0, 1)
            self.samples.append((t, round(tree_status_bytes(self.pid, "VmRSS") / 2**20, 1)))
            self.own.append((t, round(status_bytes(self.pid, "VmRSS") / 2**20, 1)))
            if self._stop.wait(self.every):
                return

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        self._thread.join()
        return self.samples


def rss_summary(samples: list[tuple[float, float]], since: float, until: float) -> dict | None:
    """Highest VmRSS (MiB) in the first and the last minute of [since, until] (sampler time)."""
    inside = [(t, m) for t, m in samples if since <= t <= until and m > 0]
    if not inside:
        return None
    first = [m for t, m in inside if t <= since + 60]
    last = [m for t, m in inside if t >= until - 60]
    return {"first_minute_max_mib": max(first), "last_minute_max_mib": max(last),
            "samples": len(inside)}


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending list."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


class FlagWatch:
    """Consumes the flags topic from its start (no group) and notes each flag's arrival."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.first_arrival: dict[str, float] = {}  # item id → arrival (s, wall clock)
        self.per_item: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.total = 0
        self.wanted: set[str] = set()
        self.all_in = asyncio.Event()
        self.consumer = None
        self.task = None

    async def start(self, timeout: float = 60.0) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=20,
        )
        await self.consumer.start()
        deadline = time.monotonic() + timeout
        while not (parts := self.consumer.partitions_for_topic(self.topic)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {self.topic} has no partitions")
            await self.consumer.topics()  # refresh metadata
            await asyncio.sleep(0.2)
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_beginning(*tps)
        self.task = asyncio.create_task(self._run())

    def expect(self, items) -> None:
        self.wanted = set(items)
        self.all_in.clear()
        self._check()

    def _check(self) -> None:
        if self.wanted and self.wanted.issubset(self.first_arrival.keys()):
            self.all_in.set()

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            now = time.time()
            for records in batch.values():
                for record in records:
                    flag = json.loads(record.value)
                    item = str(flag.get("item_id"))
                    self.total += 1
                    self.reasons[flag.get("reason", "?")] += 1
                    self.per_item[item] += 1
                    self.first_arrival.setdefault(item, now)
            self._check()

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        if self.consumer:
            await self.consumer.stop()


async def drive(bootstrap: str, prefix: str, items: list[tuple[str, bytes]], rate: float | None,
                timeout: float) -> dict:
    """Warm up, produce the items (paced or at once) and collect their flags."""
    from aiokafka import AIOKafkaProducer

    raw_topic = f"{prefix}.raw.vk"
    watch = FlagWatch(bootstrap, f"{prefix}.flags")
    await watch.start()
    # the same producer settings as `dozor replay`
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        item, payload = warmup_payload()
        watch.expect([item])
        await (await producer.send(raw_topic, value=payload, key=payload_key(payload)))
        try:
            await asyncio.wait_for(watch.all_in.wait(), 180)
        except asyncio.TimeoutError:
            raise RuntimeError("the warm-up comment got no flag in 180 s") from None

        watch.expect(item for item, _ in items)
        started_at = time.monotonic()
        sent: dict[str, float] = {}
        pending = []
        behind = 0.0  # the most the producer fell behind its schedule (s)
        t0 = time.monotonic()
        for i, (item, payload) in enumerate(items):
            if rate:
                due = t0 + i / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    behind = max(behind, -delay)
            ts_ms = int(time.time() * 1000)
            pending.append(await producer.send(raw_topic, value=payload,
                                               key=payload_key(payload), timestamp_ms=ts_ms))
            sent[item] = ts_ms / 1000
        send_seconds = time.monotonic() - t0
        await producer.flush()
        await asyncio.gather(*pending)
        # until every item has its flag, `timeout` s pass, or no flag comes for 60 s
        deadline = time.monotonic() + timeout
        seen, quiet_since = len(watch.first_arrival), time.monotonic()
        while not watch.all_in.is_set() and time.monotonic() < deadline:
            try:
                await asyncio.wait_for(watch.all_in.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
            if len(watch.first_arrival) > seen:
                seen, quiet_since = len(watch.first_arrival), time.monotonic()
            elif time.monotonic() - quiet_since > 60:
                break
        await asyncio.sleep(1.0)  # catch a second flag of an item, if any came
    finally:
        await producer.stop()
        await watch.stop()
    return {"sent": sent, "send_seconds": send_seconds, "behind": behind, "watch": watch,
            "started_at": started_at}


#: Extra DOZOR_* settings for every worker of the run (--worker-setting KEY=VALUE).
EXTRA_SETTINGS: dict[str, str] = {}


def worker_env(bootstrap: str, model: str, prefix: str, port: int, batch_size: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOZOR_")}
    env.update(
        DOZOR_KAFKA_BOOTSTRAP=bootstrap, DOZOR_APP_ID=prefix, DOZOR_MODEL=model,
        DOZOR_TOPIC_RAW_VK=f"{prefix}.raw.vk", DOZOR_TOPIC_EVENTS=f"{prefix}.events",
        DOZOR_TOPIC_RAW_TELEGRAM=f"{prefix}.raw.telegram", DOZOR_TOPIC_CLOCK=f"{prefix}.clock",
        DOZOR_TOPIC_CLASSIFIED=f"{prefix}.classified", DOZOR_TOPIC_FLAGS=f"{prefix}.flags",
        DOZOR_TOPIC_DEAD_LETTERS=f"{prefix}.dead-letters",
        DOZOR_TOPIC_FLAG_UPDATES=f"{prefix}.flag-updates", DOZOR_METRICS_PORT=str(port),
        DOZOR_METRICS_HOST="127.0.0.1", DOZOR_BATCH_SIZE=str(batch_size),
        DOZOR_BROKER_SESSION_TIMEOUT_SECONDS="3", DOZOR_BROKER_HEARTBEAT_SECONDS="0.5",
        DOZOR_DATA_DIR=f"/tmp/{prefix}",
        # exactly one flag per comment: `toxic` for all, the other rules out of reach
        DOZOR_FLAG_TOXIC_THRESHOLD="0.0", DOZOR_FLAG_NEGATIVE_THRESHOLD="2.0",
        DOZOR_SPIKE_MIN_NEGATIVE="1000000000",
    )
    env.update(EXTRA_SETTINGS)
    return env


def run_variant(bootstrap: str, model: str, items: list[tuple[str, bytes]], batch_size: int,
                rate: float | None, timeout: float) -> dict:
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    worker = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "worker"], cwd=REPO,
        env=worker_env(bootstrap, model, prefix, port, batch_size),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent,
    )
    try:
        deadline = time.monotonic() + 180
        while True:  # the worker is up once it serves /metrics (it made its topics before)
            try:
                scrape(url)
                break
            except OSError:
                if worker.poll() is not None:
                    raise RuntimeError(f"worker exited with {worker.returncode}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError("worker did not serve /metrics in 180 s") from None
                time.sleep(0.5)
        sampler = RssSampler(worker.pid).start()
        try:
            got = asyncio.run(drive(bootstrap, prefix, items, rate, timeout))
        finally:
            rss_series = sampler.stop()
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited with {worker.returncode} during the run")
        # the one /metrics read of the run, after the last flag
        samples = scrape(url)
        end = metric_sums(samples, ("dozor_comments_total", "dozor_flags_total",
                                    "dozor_dead_letters_total"))
        stages = stage_means(samples)
        rss = peak_rss_bytes(worker.pid)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        shutil.rmtree(f"/tmp/{prefix}", ignore_errors=True)

    watch: FlagWatch = got["watch"]
    sent = got["sent"]
    n = len(items)
    arrivals = {item: watch.first_arrival[item] for item in sent if item in watch.first_arrival}
    latencies = sorted(arrivals[item] - sent[item] for item in arrivals)
    first, last = (min(arrivals.values()), max(arrivals.values())) if arrivals else (0.0, 0.0)
    bench_items = set(sent)
    per_item = [watch.per_item[item] for item in bench_items]
    result = {
        "batch_size": batch_size,
        "events": n,
        "rate_target": rate,
        "rate_sent": round(n / got["send_seconds"], 1) if got["send_seconds"] > 0 else None,
        "producer_behind_schedule_max_seconds": round(got["behind"], 3) if rate else None,
        "flagged": len(arrivals),
        "missing": n - len(arrivals),
        "seconds_first_to_last_flag": round(last - first, 2),
        "seconds_first_send_to_last_flag": round(last - min(sent.values()), 2)
        if arrivals else None,
        "events_per_second": round((len(arrivals) - 1) / (last - first), 1)
        if len(arrivals) > 1 and last > first else None,
        "events_per_second_from_first_send": round(len(arrivals) / (last - min(sent.values())), 1)
        if arrivals else None,
        "latency_seconds": {
            "p50": round(percentile(latencies, 50), 3),
            "p95": round(percentile(latencies, 95), 3),
            "p99": round(percentile(latencies, 99), 3),
            "max": round(latencies[-1], 3),
        } if latencies else None,
        "flags": {
            "total_received": watch.total,
            "by_reason": dict(watch.reasons),
            "items_with_more_than_one": sum(1 for c in per_item if c > 1),
            "other_items": sorted(set(watch.per_item) - bench_items - {str(WARMUP_ID)})[:10],
        },
        "worker_metrics_at_end": {k: int(v) for k, v in end.items()},
        "batch_stages": stages,
        "peak_rss_mib": round(rss / 2**20, 1),
        "rss_during_sends": rss_summary(rss_series, got["started_at"] - sampler.t0,
                                        got["started_at"] - sampler.t0 + got["send_seconds"]),
        "rss_series_mib": rss_series,
        "worker_rss_series_mib": sampler.own,
    }
    return result


def rss_cell(result: dict) -> str:
    during = result.get("rss_during_sends")
    if not during:
        return "–"
    return f"{during['first_minute_max_mib']} → {during['last_minute_max_mib']}"


def machine() -> dict:
    return {
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=None,
                        help="comment events per variant (default 2000; with --duration: "
                        "rate × duration)")
    parser.add_argument("--rate", type=float, default=None, metavar="R",
                        help="produce at a steady R events/s, each record's timestamp its send "
                        "time (default: all at once)")
    parser.add_argument("--duration", type=float, default=None, metavar="S",
                        help="with --rate: produce for S seconds (events = R × S); not "
                        "together with --events")
    parser.add_argument("--variants", default="batched,naive",
                        help="comma-separated variants to run, in order: batched (64 events / "
                        "50 ms per classifier call), naive (DOZOR_BATCH_SIZE=1) "
                        "(default: batched,naive)")
    parser.add_argument("--model", default=str(REPO / "models" / "default"),
                        help="model directory (default: the shipped model, models/default)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds to wait, after the last send, for all flags of a variant "
                        "(default 600; it stops sooner once no flag came for 60 s); the "
                        "missing ones are reported")
    parser.add_argument("--worker-setting", action="append", default=[], metavar="KEY=VALUE",
                        help="a DOZOR_* setting for the workers of this run, e.g. "
                        "DOZOR_PRODUCER_LINGER_SECONDS=0.005 (repeatable; recorded in the JSON)")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N",
                        help="events per batch of the batched variant (DOZOR_BATCH_SIZE; "
                        "default 64); the naive variant always takes 1")
    parser.add_argument("--pages", type=int, default=None, metavar="N",
                        help="spread the comments over N generated pages, each in the worker's "
                        "registry (default: the bundled sample's pages)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pipeline.json",
                        help="where to write the JSON results (default: "
                        "bench/results/pipeline.json)")
    args = parser.parse_args()
    if args.duration is not None:
        if args.rate is None or args.events is not None:
            parser.error("--duration needs --rate and replaces --events")
        args.events = round(args.rate * args.duration)
    if args.events is None:
        args.events = 2000
    for item in args.worker_setting:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("DOZOR_"):
            parser.error(f"--worker-setting: expected DOZOR_NAME=VALUE, got {item!r}")
        if key == "DOZOR_BATCH_SIZE":
            parser.error("--worker-setting: use --batch-size (the naive variant keeps 1)")
        EXTRA_SETTINGS[key] = value
    if args.events < 2:
        parser.error("--events must be at least 2")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be positive")
    if args.pages is not None:
        if args.pages < 1:
            parser.error("--pages must be at least 1")
        pages_file = write_pages_file(
            Path(tempfile.mkdtemp(prefix="dozor-bench-")) / "pages.yaml", args.pages)
        EXTRA_SETTINGS.setdefault("DOZOR_PAGES_FILE", str(pages_file))
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        parser.error(f"--variants: choose from {', '.join(VARIANTS)} (got {args.variants!r})")

    command = shlex.join(["python", "bench/bench_pipeline.py", *sys.argv[1:]])
    started = datetime.now(timezone.utc)
    host = machine()
    results = []
    with EmbeddedBroker() as broker:
        for name in variants:
            batch_size, label = VARIANTS[name]
            if name == "batched" and args.batch_size != batch_size:
                batch_size, label = args.batch_size, f"batched ({args.batch_size} / 50 ms)"
            pace = f"at {args.rate:g}/s" if args.rate else "all at once"
            print(f"running {label}: {args.events} events {pace}…", file=sys.stderr, flush=True)
            items = comment_payloads(args.events, time.time(), args.rate, args.pages)
            result = run_variant(broker.bootstrap, args.model, items, batch_size, args.rate,
                                 args.timeout)
            result = {"variant": label, **result}
            results.append(result)
            if result["missing"]:
                print(f"  {result['missing']} comments got no flag", file=sys.stderr)
            if result["flags"]["items_with_more_than_one"]:
                print(f"  {result['flags']['items_with_more_than_one']} comments got more than "
                      "one flag (their first counts)", file=sys.stderr)

    print(f"`{command}` — {started:%Y-%m-%d %H:%M} UTC, {host['host']}, {host['cpus']} CPUs, "
          f"load at start {host['load_average_at_start'][0]}")
    print()
    print("| variant | events | produced at events/s | processed events/s | "
          "produce→flag p50 / p95 / p99 / max s | flagged | peak RSS MiB | "
          "RSS first → last minute MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        lat = r["latency_seconds"] or {}
        pace = (f"{r['rate_target']:g} (sent {r['rate_sent']})" if r["rate_target"]
                else "all at once")
        print(f"| {r['variant']} | {r['events']} | {pace} | {r['events_per_second']} | "
              f"{lat.get('p50')} / {lat.get('p95')} / {lat.get('p99')} / {lat.get('max')} | "
              f"{r['flagged']}/{r['events']} | {r['peak_rss_mib']} | {rss_cell(r)} |")
    print()
    for r in results:  # where a batch's time goes (the worker's own histogram, read at the end)
        stages = ", ".join(f"{k} {v['mean_ms']} ms" for k, v in r["batch_stages"].items())
        print(f"{r['variant']}: mean per batch: {stages}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": command,
        "date": started.isoformat(timespec="seconds"),
        "machine": host,
        "model": args.model,
        "events": args.events,
        "rate": args.rate,
        "pages": args.pages,
        "worker_settings": EXTRA_SETTINGS,
        "results": results,
    }, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwritten to {args.out}", file=sys.stderr)
    return 0 if all(r["missing"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
