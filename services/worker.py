"""`dozor worker`: wire settings, model, page registry and metrics into the stream app."""

from __future__ import annotations

import asyncio
import fcntl
import logging
from pathlib import Path
from typing import IO

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

from models.memory import map_large_blocks
from services.settings import Settings
from streams.app import DozorStreams, StreamConfig
from streams.flags import FlagPolicy
from streams.metrics import DozorMetrics, PageStateCollector
from streams.pages import PageRegistry
from streams.topics import TopicNames, ensure_topics, partition_mismatch
from streams.track import TrackingPolicy
from streams.tracking.page_state import SpikePolicy

log = logging.getLogger(__name__)
VERSION = "0.1.0"


def lock_data_dir(data_dir: Path) -> IO[bytes]:
    """Hold `data_dir` for this worker (an exclusive lock on `worker.lock` in it, released when
    the process ends, however it ends): the worker deletes and rewrites its table files there,
    so two workers must never share one. Keep the returned file open."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "worker.lock", "ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise SystemExit(
            f"dozor worker: another worker uses DOZOR_DATA_DIR={data_dir}; give each worker "
            "on this machine its own (e.g. DOZOR_DATA_DIR=~/.local/state/dozor-2)"
        ) from None
    return handle


def topic_names(settings: Settings) -> TopicNames:
    return TopicNames(
        raw_vk=settings.topic_raw_vk,
        raw_telegram=settings.topic_raw_telegram,
        events=settings.topic_events,
        clock=settings.topic_clock,
        classified=settings.topic_classified,
        flags=settings.topic_flags,
        dead_letters=settings.topic_dead_letters,
        flag_updates=settings.topic_flag_updates,
    )


def tracking_policy(settings: Settings) -> TrackingPolicy:
    return TrackingPolicy(
        calendar=settings.working_calendar(),
        default_deadline_hours=settings.answer_deadline_hours,
        spike=SpikePolicy(
            window_seconds=settings.spike_window_seconds,
            min_negative=settings.spike_min_negative,
            min_share=settings.spike_min_share,
        ),
    )


def stream_config(settings: Settings, bootstrap: str) -> StreamConfig:
    return StreamConfig(
        bootstrap=bootstrap,
        app_id=settings.app_id,
        partitions=settings.topic_partitions,
        topics=topic_names(settings),
        session_timeout=settings.broker_session_timeout_seconds,
        heartbeat=settings.broker_heartbeat_seconds,
        data_dir=settings.data_dir,
        batch_size=settings.batch_size,
        batch_wait=settings.batch_wait_seconds,
        flag_policy=FlagPolicy(
            toxic_threshold=settings.flag_toxic_threshold,
            negative_threshold=settings.flag_negative_threshold,
        ),
        tracking=tracking_policy(settings),
        sweep_interval=settings.sweep_interval_seconds,
        clock_idle_seconds=settings.clock_idle_seconds,
        fetch_max_wait=settings.consumer_fetch_max_wait_seconds,
        producer_max_batch_size=settings.producer_max_batch_bytes,
        producer_linger=settings.producer_linger_seconds,
        dead_letter_max_consecutive=settings.dead_letter_max_consecutive,
        table_store=settings.table_store,
        page_cache_bytes=int(settings.page_cache_mib * 2**20),
    )


def load_classifier(settings: Settings):
    """The model in this process, or (DOZOR_CLASSIFIER_PROCESS) in a child process: then this
    process never imports torch or transformers (~350 MiB that only the child needs)."""
    kwargs = dict(
        label_map=settings.label_map or None,
        thresholds=settings.thresholds or None,
        max_length=settings.max_text_length,
        batch_size=settings.batch_size,
        threads=settings.inference_threads,
        quantize=settings.quantize,
    )
    if settings.classifier_process:
        from models.child import ChildProcessClassifier
        from services.broker import die_with_parent

        return ChildProcessClassifier(on_start=die_with_parent, path=settings.model, **kwargs)
    from models.classifier import TextClassifier

    return TextClassifier.load(settings.model, **kwargs)


def build_streams(
    settings: Settings, bootstrap: str, registry: CollectorRegistry = REGISTRY, classifier=None
) -> DozorStreams:
    """Everything a worker runs, not yet started (tests use it in-process too)."""
    pages = PageRegistry.load(settings.pages_file)
    classifier = classifier or load_classifier(settings)
    metrics = DozorMetrics(registry)
    metrics.worker_info.labels(version=VERSION, model=str(settings.model)).set(1)
    metrics.init_topics(classifier.topic_names)
    for page in pages:
        metrics.page_info.labels(
            page_id=page.page_id, platform=page.platform, name=page.name,
            municipality=page.municipality, category=page.category,
        ).set(1)
        metrics.init_page(page.page_id, classifier.labels)
    streams = DozorStreams(stream_config(settings, bootstrap), classifier, pages, metrics)
    registry.register(PageStateCollector(streams.page_views))
    return streams


def faust_worker(app, loglevel: str):
    """A `faust.Worker` for `app` without the terminal spinner.

    At `--log-level warning` (the default) Faust keeps its spinner, whose handler sets the
    root logger to DEBUG: every library's debug record was then built and handled (7 % of the
    worker's CPU in a profile at 200 events/s).
    """
    import faust

    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.spinner = None
    return worker


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the Faust worker until interrupted; /metrics served on the metrics port."""
    if not settings.kafka_bootstrap:
        raise SystemExit(
            "DOZOR_KAFKA_BOOTSTRAP is not set: point it at Kafka (host:port), "
            "or run `dozor demo`, which starts an embedded broker"
        )
    bootstrap = settings.kafka_bootstrap
    # Faust creates only the last level of its datadir: a worker started from any directory
    # (or a fresh container volume) needs the parents made first (lock_data_dir makes them).
    data_dir_lock = lock_data_dir(settings.data_dir)
    topics = topic_names(settings)
    counts = asyncio.run(ensure_topics(bootstrap, topics.all(), settings.topic_partitions))
    problem = partition_mismatch(counts, topics.inputs())
    if problem:
        raise SystemExit(f"dozor worker: {problem}")
    map_large_blocks()  # page records of growing sizes fragment the heap (models/memory.py)
    streams = build_streams(settings, bootstrap)
    for path in streams.discard_local_tables():
        log.info("deleted %s: the pages table is rebuilt from its changelog", path)
    server, _thread = start_http_server(settings.metrics_port, addr=settings.metrics_host)
    log.info(
        "metrics on http://%s:%s/metrics", settings.metrics_host, server.server_port
    )
    print(f"dozor worker: metrics on http://{settings.metrics_host}:{server.server_port}/metrics",
          flush=True)
    worker = faust_worker(streams.app, loglevel)
    try:
        worker.execute_from_commandline()
    finally:
        streams.close()
        server.shutdown()
        data_dir_lock.close()
