"""`dozor moderation`: one process = migrations + consumer + web app (UI, API, /metrics) +
feedback producer. SIGTERM / SIGINT stop it gracefully (stored offsets committed, the web
server drained); SIGKILL loses nothing either (see services/moderation/consumer.py).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import CollectorRegistry

from services.moderation.consumer import ConsumerConfig, ModerationConsumer
from services.moderation.db import database_url, make_engine
from services.moderation.feedback import run_feedback_producer
from services.moderation.metrics import ModerationMetrics, QueueCollector
from services.moderation.migrations import upgrade
from services.moderation.store import ModerationStore
from services.settings import Settings
from streams.topics import ensure_topics

log = logging.getLogger(__name__)


def consumer_config(settings: Settings) -> ConsumerConfig:
    return ConsumerConfig(
        bootstrap=settings.kafka_bootstrap,
        group=settings.moderation_group,
        topic_flags=settings.topic_flags,
        topic_updates=settings.topic_flag_updates,
        topic_events=settings.topic_events,
        session_timeout=settings.broker_session_timeout_seconds,
        heartbeat=settings.broker_heartbeat_seconds,
        fetch_max_wait=settings.consumer_fetch_max_wait_seconds,
        commit_interval=settings.moderation_commit_interval_seconds,
        thread_retention_days=settings.moderation_thread_retention_days,
    )


def store_url(settings: Settings) -> str:
    return database_url(settings.database_url, settings.data_dir)


def open_migrated_store(settings: Settings) -> ModerationStore:
    """Migrate the configured database to head and open the store on it."""
    url = store_url(settings)
    make_engine(url).dispose()  # SQLite: creates the data directory
    upgrade(url)
    return ModerationStore(make_engine(url), session_hours=settings.moderation_session_hours)


def build_web_app(store: ModerationStore, settings: Settings, registry: CollectorRegistry):
    """The web app of services/moderation/web, or None while that package is not there."""
    try:
        from services.moderation.web.app import create_app
        from services.moderation.web.context import WebConfig
    except ImportError as exc:
        log.warning("moderation web app not available (%s): serving /metrics only", exc)
        return None
    return create_app(store, WebConfig.from_settings(settings), registry)


async def serve(settings: Settings, *, ready_message: bool = True) -> None:
    """Run everything until SIGTERM / SIGINT."""
    if not settings.kafka_bootstrap:
        raise SystemExit(
            "DOZOR_KAFKA_BOOTSTRAP is not set: point it at the Kafka the worker writes flags to "
            "(host:port)")
    store = open_migrated_store(settings)
    registry = CollectorRegistry()
    metrics = ModerationMetrics(registry)
    registry.register(QueueCollector(store))
    store.on_action = metrics.on_action

    await ensure_topics(settings.kafka_bootstrap,
                        [settings.topic_flags, settings.topic_flag_updates, settings.topic_events,
                         settings.topic_feedback], settings.topic_partitions)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    consumer = ModerationConsumer(
        store, consumer_config(settings), on_batch=metrics.on_batch,
        on_invalid=lambda topic, n: metrics.invalid_records.labels(topic=topic).inc(n),
    )
    tasks = [
        asyncio.create_task(consumer.run(stop), name="consumer"),
        asyncio.create_task(run_feedback_producer(
            store, settings.kafka_bootstrap, settings.topic_feedback, stop,
            on_produced=metrics.feedback_produced.inc), name="feedback"),
    ]
    server = None
    app = build_web_app(store, settings, registry)
    if app is not None:
        import uvicorn

        config = uvicorn.Config(app, host=settings.moderation_host, port=settings.moderation_port,
                                log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # ours above stop everything together
        tasks.append(asyncio.create_task(server.serve(), name="web"))
    else:
        from prometheus_client import start_http_server

        http, _thread = start_http_server(settings.moderation_port, addr=settings.moderation_host,
                                          registry=registry)

    async def announce() -> None:
        port = settings.moderation_port
        if server is not None:
            while not server.started:
                await asyncio.sleep(0.05)
            port = server.servers[0].sockets[0].getsockname()[1]
        else:
            port = http.server_port
        print(f"dozor moderation: http://{settings.moderation_host}:{port}/ "
              f"(metrics at /metrics), store {store.engine.url.render_as_string()}", flush=True)

    announcer = asyncio.create_task(announce(), name="announce") if ready_message else None

    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    failed = [t for t in done if t is not stopper and t.exception() is not None]
    stop.set()
    if server is not None:
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    if announcer is not None:
        announcer.cancel()
    if server is None:
        http.shutdown()
    store.engine.dispose()
    if failed:
        raise failed[0].exception()


def run(settings: Settings) -> int:
    asyncio.run(serve(settings))
    return 0
