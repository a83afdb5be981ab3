"""`dozor moderation`: one process = migrations + consumer + web app (UI, API) + /metrics on
a port of its own + feedback producer. SIGTERM / SIGINT stop it gracefully (stored offsets
committed, the web server drained); SIGKILL loses nothing either (see
services/moderation/consumer.py).

/metrics is not on the UI port: the UI port is published to moderators (and through a proxy
to the internet), and the queue gauges tell anyone the counts per municipality. Like the
worker's and the connectors', it listens on DOZOR_METRICS_HOST, here on
DOZOR_MODERATION_METRICS_PORT, for Prometheus only.
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
    """The web app of services/moderation/web (UI and API; no /metrics)."""
    from services.moderation.web.app import create_app
    from services.moderation.web.context import WebConfig

    return create_app(store, WebConfig.from_settings(settings), registry)


def trusted_proxies(value: str) -> list[str]:
    """DOZOR_MODERATION_TRUSTED_PROXIES as uvicorn's `forwarded_allow_ips` list ([] = none)."""
    return [part.strip() for part in value.split(",") if part.strip()]


def web_server_config(app, settings: Settings):
    """The uvicorn configuration of the web app.

    X-Forwarded-For / -Proto are believed only from DOZOR_MODERATION_TRUSTED_PROXIES: behind
    the HTTPS proxy every request comes from the proxy's address, and the login rate limit
    per client address must count the real client instead. uvicorn's own default (trust
    127.0.0.1) is not used: with no proxy configured, no header is believed.
    """
    import uvicorn

    proxies = trusted_proxies(settings.moderation_trusted_proxies)
    return uvicorn.Config(app, host=settings.moderation_host, port=settings.moderation_port,
                          log_level="warning", lifespan="on",
                          proxy_headers=bool(proxies),
                          forwarded_allow_ips=proxies or None)


def start_metrics_server(settings: Settings, registry: CollectorRegistry):
    """Serve `registry` at /metrics on DOZOR_METRICS_HOST:DOZOR_MODERATION_METRICS_PORT in a
    background thread; returns the HTTP server (`.server_port`, `.shutdown()`)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(settings.moderation_metrics_port,
                                        addr=settings.metrics_host, registry=registry)
    return server


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
    import uvicorn

    http = start_metrics_server(settings, registry)
    server = uvicorn.Server(web_server_config(build_web_app(store, settings, registry), settings))
    server.install_signal_handlers = lambda: None  # ours above stop everything together
    tasks.append(asyncio.create_task(server.serve(), name="web"))

    async def announce() -> None:
        while not server.started:
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        print(f"dozor moderation: http://{settings.moderation_host}:{port}/ "
              f"(metrics at http://{settings.metrics_host}:{http.server_port}/metrics), "
              f"store {store.engine.url.render_as_string()}", flush=True)

    announcer = asyncio.create_task(announce(), name="announce") if ready_message else None

    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    failed = [t for t in done if t is not stopper and t.exception() is not None]
    stop.set()
    server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    if announcer is not None:
        announcer.cancel()
    http.shutdown()
    store.engine.dispose()
    if failed:
        raise failed[0].exception()


def run(settings: Settings) -> int:
    asyncio.run(serve(settings))
    return 0
