"""`dozor ingest vk-callback`: the HTTP endpoint VK's Callback API calls for every community.

One URL for all communities: ``POST /vk/callback``; the community comes from ``group_id`` and
must be a page ``vk:-<group_id>`` of the registry. Answers (VK retries anything but ``ok``):

==========================================  ======  =============================================
request                                      status  body
==========================================  ======  =============================================
``confirmation`` of a registered community   200     its ``vk_confirmation`` (text/plain)
event, right secret, Kafka acknowledged      200     ``ok`` (bytes produced unchanged, key page id)
repeated ``event_id`` seen in this process   200     ``ok`` (not produced again)
unknown community / wrong or missing secret  403     refused (one log line, never the secret)
body over DOZOR_VK_CALLBACK_MAX_BODY_BYTES   413
not JSON / too deeply nested / no group_id   400     (VK retries: a broken proxy is worth a log)
Kafka did not acknowledge in time            503     VK retries later; nothing is lost
==========================================  ======  =============================================

Unknown communities get 403, not 404: the URL is right, the caller is not allowed, and an
unknown community and a wrong secret look the same from outside (no probing of the registry).
The in-memory LRU of recent event ids only spares Kafka a repeat; correctness rests on the
worker's de-duplication by canonical event id.

The body is read to its end (however many TCP segments or chunks it comes in) up to the cap:
a Content-Length over the cap is refused before reading, a chunked body as soon as it passes
the cap. Refusal log lines show the caller-supplied ``type`` with ``%r``, cut to 64
characters, so a crafted value cannot forge log lines.

aiohttp.web rather than FastAPI: one route that needs the raw body bytes unchanged, a body
cap and nothing of FastAPI's validation or OpenAPI; aiohttp is already a dependency and
shares the asyncio loop with aiokafka.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
from collections import OrderedDict
from dataclasses import dataclass

from aiohttp import web

from services.ingest.metrics import IngestMetrics, serve_metrics
from services.ingest.producer import ProduceFailed, RawProducer
from services.ingest.secrets import Secret, Secrets, load_secrets
from streams.pages import PageRegistry

log = logging.getLogger("dozor.ingest.vk_callback")
CONNECTOR = "vk-callback"
TYPE_LOG_CHARS = 64  # the caller's event type is cut to this in log lines


@dataclass(frozen=True)
class CallbackCommunity:
    """What the server needs of one community: page id, confirmation string, secret."""

    group_id: int
    page_id: str
    confirmation: str | None
    secret: Secret | None
    secret_name: str | None


def communities_from_registry(
    registry: PageRegistry, secrets: Secrets
) -> dict[int, CallbackCommunity]:
    """Communities the server accepts: every VK page of the registry (`vk:-<group id>`).

    Pages registered for polling are accepted too if VK calls for them (both paths may run
    for one page; the worker de-duplicates).
    """
    out: dict[int, CallbackCommunity] = {}
    for page in registry:
        if page.platform != "vk":
            continue
        try:
            owner = int(page.page_id.split(":", 1)[1])
        except ValueError:
            continue
        if owner >= 0:
            continue  # a user's wall has no Callback API
        out[-owner] = CallbackCommunity(
            group_id=-owner, page_id=page.page_id, confirmation=page.vk_confirmation,
            secret=secrets.get(page.vk_secret_env), secret_name=page.vk_secret_env,
        )
    return out


@dataclass(frozen=True)
class Answer:
    status: int
    text: str
    outcome: str


class RecentEvents:
    """A small LRU of (group id, event id) already acknowledged by Kafka."""

    def __init__(self, size: int = 10000) -> None:
        self.size = size
        self._seen: OrderedDict[tuple[int, str], None] = OrderedDict()

    def __contains__(self, key: tuple[int, str]) -> bool:
        if key in self._seen:
            self._seen.move_to_end(key)
            return True
        return False

    def add(self, key: tuple[int, str]) -> None:
        self._seen[key] = None
        self._seen.move_to_end(key)
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)


class CallbackHandler:
    """The decision for one request body; `send(page_id, body)` produces and awaits the ack."""

    def __init__(self, communities: dict[int, CallbackCommunity], send, metrics: IngestMetrics,
                 recent: RecentEvents | None = None) -> None:
        self.communities = communities
        self.send = send
        self.metrics = metrics
        self.recent = recent if recent is not None else RecentEvents()

    async def handle(self, body: bytes, peer: str = "-") -> Answer:
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            return self._refuse(400, "invalid_json", "тело запроса не JSON", peer)
        except RecursionError:  # "[[[[…" deeper than the parser's stack: not a VK payload
            return self._refuse(400, "invalid_json", "JSON слишком глубокой вложенности", peer)
        if not isinstance(payload, dict):
            return self._refuse(400, "invalid_json", "тело запроса не JSON-объект", peer)
        group_id = payload.get("group_id")
        event_type = payload.get("type")
        if (not isinstance(group_id, int) or isinstance(group_id, bool)
                or not isinstance(event_type, str)):
            return self._refuse(400, "invalid_json", "нет group_id или type", peer)
        community = self.communities.get(group_id)
        if community is None:
            return self._refuse(403, "unknown_page", f"сообщество {group_id} не в реестре", peer,
                                group_id, event_type)
        if event_type == "confirmation":
            if not community.confirmation:
                return self._refuse(403, "forbidden", "у страницы не задан vk_confirmation", peer,
                                    group_id, event_type)
            self.metrics.request(CONNECTOR, "confirmation")
            return Answer(200, community.confirmation, "confirmation")
        if community.secret is None:
            return self._refuse(403, "forbidden",
                                f"секрет {community.secret_name or '(vk_secret_env не задан)'} "
                                "не найден", peer, group_id, event_type)
        given = payload.get("secret")
        if not isinstance(given, str) or not hmac.compare_digest(
            given.encode(), community.secret.reveal().encode()
        ):
            return self._refuse(403, "forbidden", "неверный или отсутствующий secret", peer,
                                group_id, event_type)
        event_id = payload.get("event_id")
        key = (group_id, event_id) if isinstance(event_id, str) and event_id else None
        if key is not None and key in self.recent:
            self.metrics.request(CONNECTOR, "duplicate")
            return Answer(200, "ok", "duplicate")
        try:
            await self.send(community.page_id, body)
        except ProduceFailed as exc:
            self.metrics.page_failed(community.page_id)
            return self._refuse(503, "kafka_unavailable", f"Kafka недоступна: {exc}", peer,
                                group_id, event_type)
        if key is not None:
            self.recent.add(key)
        self.metrics.request(CONNECTOR, "ok")
        self.metrics.produced("vk", event_type)
        self.metrics.page_ok(community.page_id)
        return Answer(200, "ok", "ok")

    def _refuse(self, status: int, outcome: str, why: str, peer: str,
                group_id: int | None = None, event_type: str | None = None) -> Answer:
        self.metrics.request(CONNECTOR, outcome)
        # one line per refused request; the body (and so the secret) is never logged; the
        # caller's `type` is shown with %r and cut, so "\n" in it cannot forge a log line
        log.warning("vk-callback: отказ %s (%s) group_id=%s type=%r от %s", status, why,
                    group_id, None if event_type is None else event_type[:TYPE_LOG_CHARS],
                    peer)
        return Answer(status, {400: "bad request", 403: "forbidden",
                               503: "kafka unavailable"}.get(status, "error"), outcome)


def create_app(handler: CallbackHandler, max_body_bytes: int) -> web.Application:
    """The aiohttp application: POST /vk/callback."""

    async def callback(request: web.Request) -> web.Response:
        peer = request.remote or "-"
        if request.content_length is not None and request.content_length > max_body_bytes:
            return _too_large(handler, peer)
        body = await read_body(request.content, max_body_bytes)
        if body is None:
            return _too_large(handler, peer)
        answer = await handler.handle(body, peer)
        return web.Response(status=answer.status, text=answer.text, content_type="text/plain")

    app = web.Application(client_max_size=max_body_bytes + 1)
    app.router.add_post("/vk/callback", callback)
    return app


async def read_body(stream, cap: int) -> bytes | None:
    """The whole body up to EOF, or None as soon as it is longer than `cap` bytes.

    `StreamReader.read(n)` returns what is buffered (at least one byte), not n bytes: a body
    in several TCP segments or chunks takes several reads.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.read(cap + 1 - size)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)


def _too_large(handler: CallbackHandler, peer: str) -> web.Response:
    handler.metrics.request(CONNECTOR, "too_large")
    log.warning("vk-callback: отказ 413 (тело больше лимита) от %s", peer)
    response = web.Response(status=413, text="too large", content_type="text/plain")
    response.force_close()  # do not wait for (or read) the rest of a body we refused
    return response


async def serve(settings, registry: PageRegistry, secrets: Secrets, metrics: IngestMetrics,
                stop: asyncio.Event, ready: asyncio.Event | None = None,
                ack_timeout: float = 5.0) -> None:
    """Run the server until `stop` is set (wired from Settings by `run`)."""
    producer = RawProducer(settings.kafka_bootstrap, ack_timeout=ack_timeout,
                           client_id="dozor-vk-callback")
    await producer.start(retry_for=60.0)

    async def send(page_id: str, body: bytes) -> None:
        await producer.send(settings.topic_raw_vk, page_id, body)

    communities = communities_from_registry(registry, secrets)
    handler = CallbackHandler(communities, send, metrics)
    runner = web.AppRunner(create_app(handler, settings.vk_callback_max_body_bytes),
                           access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.vk_callback_host, settings.vk_callback_port)
    await site.start()
    log.warning("vk-callback: слушаю %s:%s/vk/callback, сообществ: %d",
                settings.vk_callback_host, settings.vk_callback_port, len(communities))
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await producer.stop()


def run(settings, args) -> int:
    """Entry point of `dozor ingest vk-callback`."""
    if not settings.kafka_bootstrap:
        print("dozor ingest vk-callback: задайте DOZOR_KAFKA_BOOTSTRAP")
        return 2
    registry = PageRegistry.load(settings.pages_file)
    secrets = load_secrets(settings)
    metrics = IngestMetrics()
    serve_metrics(metrics, settings.metrics_host, settings.ingest_metrics_port)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, registry, secrets, metrics, stop,
                    ack_timeout=getattr(args, "ack_timeout", 5.0))

    asyncio.run(main())
    return 0
