"""Throughput, latency and memory of the whole worker: raw VK payloads in → flags out.

    .venv/bin/python bench/bench_pipeline.py [--events 4000] [--model models/default]

Starts the embedded broker, replays N VK comment events (the bundled sample's comments,
re-numbered so each is new) into `dozor worker` and measures, in the same run:

* **batched** — the default: the `process` agent takes up to 64 events or 50 ms at a time and
  the classifier runs once per batch;
* **naive** — `DOZOR_BATCH_SIZE=1`: one classifier call per event, the way a plain Faust
  `async for event in stream` agent would do it.

Figures: events/s from the first to the last event processed (the worker's own counter),
end-to-end latency p50/p99 of the flags (payload produced → flag consumed), and the worker's
peak resident memory. Prints a markdown table and writes bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from services.broker import EmbeddedBroker, free_port  # noqa: E402
from services.replay import replay_lines  # noqa: E402


def comment_payloads(n: int) -> list[bytes]:
    """N distinct wall_reply_new payloads built from the sample's comments."""
    sample = []
    for line in (REPO / "services/sample/vk_events.jsonl").read_bytes().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("type") == "wall_reply_new" and "text" in event.get("object", {}):
            sample.append(event)
    out = []
    for i in range(n):
        event = json.loads(json.dumps(sample[i % len(sample)]))
        event["event_id"] = f"bench-{i}"
        event["object"]["id"] = 1_000_000 + i
        out.append(json.dumps(event, ensure_ascii=False).encode())
    return out


def metric(url: str, name: str) -> float:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return sum(
        s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name
    )


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):  # peak resident set size
            return int(line.split()[1]) * 1024
    return 0


def run_variant(bootstrap: str, model: str, payloads: list[bytes], batch_size: int) -> dict:
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOZOR_")}
    env.update(
        DOZOR_KAFKA_BOOTSTRAP=bootstrap, DOZOR_APP_ID=prefix, DOZOR_MODEL=model,
        DOZOR_TOPIC_RAW_VK=f"{prefix}.raw.vk", DOZOR_TOPIC_EVENTS=f"{prefix}.events",
        DOZOR_TOPIC_CLASSIFIED=f"{prefix}.classified", DOZOR_TOPIC_FLAGS=f"{prefix}.flags",
        DOZOR_TOPIC_DEAD_LETTERS=f"{prefix}.dead-letters", DOZOR_METRICS_PORT=str(port),
        DOZOR_METRICS_HOST="127.0.0.1", DOZOR_BATCH_SIZE=str(batch_size),
        DOZOR_BROKER_SESSION_TIMEOUT_SECONDS="3", DOZOR_BROKER_HEARTBEAT_SECONDS="0.5",
        DOZOR_DATA_DIR=f"/tmp/{prefix}", DOZOR_FLAG_TOXIC_THRESHOLD="0.0",
    )
    url = f"http://127.0.0.1:{port}/metrics"
    worker = subprocess.Popen([sys.executable, "-m", "services.cli", "worker"], cwd=REPO,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                metric(url, "dozor_events_total")
                break
            except OSError:
                if worker.poll() is not None:
                    raise RuntimeError("worker failed to start") from None
                time.sleep(0.5)
        time.sleep(5)  # let the group join finish before the clock starts
        produced_at = time.time()
        asyncio.run(replay_lines(bootstrap, f"{prefix}.raw.vk", payloads))
        first = last = None
        n = len(payloads)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done = metric(url, "dozor_comments_total")
            now = time.time()
            if done and first is None:
                first = now
            if done >= n:
                last = now
                break
            time.sleep(0.2)
        latencies = flag_latencies(bootstrap, prefix, n)
        return {
            "batch_size": batch_size,
            "events": n,
            "seconds": round(last - produced_at, 2),
            "events_per_second": round(n / (last - produced_at), 1),
            "flag_latency_p50_seconds": round(statistics.median(latencies), 3),
            "flag_latency_p99_seconds": round(latencies[int(0.99 * (len(latencies) - 1))], 3),
            "peak_rss_mib": round(rss_bytes(worker.pid) / 2**20, 1),
        }
    finally:
        worker.terminate()
        worker.wait(timeout=30)


async def timestamps(bootstrap: str, topic: str, key, n: int) -> dict[str, float]:
    """Broker timestamps (s) of a topic's records by `key(value)`; at most n records."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"lat-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    out: dict[str, float] = {}
    try:
        end = time.monotonic() + 60
        while len(out) < n and time.monotonic() < end:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch and out:
                break
            for records in batch.values():
                for record in records:
                    out[key(json.loads(record.value))] = record.timestamp / 1000
    finally:
        await consumer.stop()
    return out


def flag_latencies(bootstrap: str, prefix: str, n: int) -> list[float]:
    """Seconds from a payload's append to the raw topic to its flag's append to dozor.flags."""
    raw = asyncio.run(timestamps(bootstrap, f"{prefix}.raw.vk",
                                 lambda v: str(v["object"]["id"]), n))
    flags = asyncio.run(timestamps(bootstrap, f"{prefix}.flags", lambda v: v["item_id"], n))
    return sorted(flags[k] - raw[k] for k in flags if k in raw)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=4000, help="events per variant")
    parser.add_argument("--model", default=str(REPO / "models" / "default"),
                        help="model directory (default: the shipped model)")
    args = parser.parse_args()
    payloads = comment_payloads(args.events)
    results = []
    with EmbeddedBroker() as broker:
        for batch_size in (64, 1):
            label = "batched (64 / 50 ms)" if batch_size > 1 else "naive (one call per event)"
            print(f"running {label} on {len(payloads)} events…", file=sys.stderr, flush=True)
            result = run_variant(broker.bootstrap, args.model, payloads, batch_size)
            result["variant"] = label
            results.append(result)
    print("| variant | events/s | total s | flag latency p50 / p99 s | peak RSS MiB |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['variant']} | {r['events_per_second']} | {r['seconds']} | "
              f"{r['flag_latency_p50_seconds']} / {r['flag_latency_p99_seconds']} | "
              f"{r['peak_rss_mib']} |")
    out = REPO / "bench" / "results" / "pipeline.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "processor": platform.processor()},
        "model": args.model, "results": results,
    }, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
