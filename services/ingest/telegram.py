"""`dozor ingest telegram`: Bot API long polling → raw Telegram updates in Kafka.

The bot is an administrator of each registered channel and a member of its discussion group.
Every round calls ``getUpdates`` (long poll, `ALLOWED_UPDATES`: messages, channel posts and
their edits), decides each update's page and produces the update **unchanged** (its bytes as
the API sent them) to DOZOR_TOPIC_RAW_TELEGRAM keyed by ``telegram:<channel chat id>``; the
worker normalises it (streams/normalize/telegram.py).

- Page of an update (`UpdateRouter`): a channel post → its channel; a message of a discussion
  group → the group's channel (the page registry's ``telegram_discussion_id``); pages with
  ``connector: telegram`` in the registry only, as `dozor pages check` reads it. Updates of any
  other chat (the bot was added elsewhere, a page not registered) are skipped and counted as
  ``dozor_ingest_requests_total{connector="telegram", outcome="unknown_page"}``. An update
  whose chat cannot be read at all is produced under ``telegram:unknown`` so that the worker
  dead-letters it with the reason (bad platform payloads are never silently dropped).
- **Offset.** After Kafka acknowledged a round's payloads, ``update_id + 1`` of the last update
  is stored in the compacted cursor topic (key ``telegram:offset:<bot id>``; update ids are
  per bot) and the next ``getUpdates`` sends it. The Bot API forgets updates once a call
  confirms them with a higher offset, so why store the offset at all? Because confirmation
  happens only on the *next* call: after a restart without the stored offset, ``getUpdates``
  returns every update not yet confirmed — including the ones already produced just before
  the stop — and they would be produced again. With it, the restart confirms them and reads
  only what is new. The order (produce, wait for the ack, then store the offset) means a crash
  between the two re-delivers the last round; the worker drops those copies by their canonical
  event id. Nothing is lost: the offset never runs ahead of what Kafka holds.
- Metrics (contract D, connector ``telegram``): API calls by outcome, API errors by code,
  updates produced by update type, last success / failure per registered page (one long poll
  serves every page, so a round's outcome is every page's outcome).
- No token (DOZOR_TELEGRAM_BOT_TOKEN unset): says so and exits 0 — docker compose starts the
  service everywhere and it stays quiet where nobody configured a bot.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from services.ingest.cursors import CursorStore
from services.ingest.metrics import IngestMetrics, serve_metrics
from services.ingest.producer import ProduceFailed, RawProducer
from services.ingest.telegram_api import (
    ALLOWED_UPDATES,
    RawUpdate,
    TelegramApiError,
    TelegramClient,
    TelegramTransportError,
    TelegramUnauthorized,
)
from streams.normalize.telegram import page_id_of
from streams.pages import PageRegistry

log = logging.getLogger("dozor.ingest.telegram")

CONNECTOR = "telegram"
#: key of updates whose chat cannot be read: the worker dead-letters them
UNKNOWN_PAGE = "telegram:unknown"
NO_TOKEN_MESSAGE = (
    "dozor ingest telegram: коннектор не запущен — не задан DOZOR_TELEGRAM_BOT_TOKEN "
    "(токен бота от @BotFather; бот — администратор каналов и участник их групп обсуждения).\n"
    "Telegram connector not started: DOZOR_TELEGRAM_BOT_TOKEN is not set."
)


@dataclass
class UpdateRouter:
    """Which page an update belongs to: pure, from the page registry."""

    channels: dict[int, str] = field(default_factory=dict)  # channel chat id -> page id
    discussions: dict[int, int] = field(default_factory=dict)  # group chat id -> channel id

    @classmethod
    def from_registry(cls, registry: PageRegistry) -> UpdateRouter:
        """The registry's pages with ``connector: telegram`` (None means "not read live")."""
        channels: dict[int, str] = {}
        discussions: dict[int, int] = {}
        for page in registry:
            if page.platform == "telegram" and page.connector is None:
                log.warning("telegram: страница %s не читается: в реестре не указано "
                            "connector: telegram", page.page_id)
            if page.connector != CONNECTOR:
                continue
            try:
                channel_id = int(page.page_id.split(":", 1)[1])
            except ValueError:
                log.warning("telegram: страница %s пропущена: id канала должен быть числом "
                            "(telegram:-100...)", page.page_id)
                continue
            channels[channel_id] = page.page_id
            if page.telegram_discussion_id is not None:
                discussions[page.telegram_discussion_id] = channel_id
        return cls(channels, discussions)

    @property
    def page_ids(self) -> list[str]:
        return sorted(self.channels.values())

    def route(self, update: dict[str, Any]) -> str | None:
        """The page id of `update`; None: not a registered page; UNKNOWN_PAGE: unreadable."""
        kind = next((k for k in ALLOWED_UPDATES if k in update), None)
        if kind is None:
            return None  # an update type Dozor did not ask for
        message = update[kind]
        chat = message.get("chat") if isinstance(message, dict) else None
        chat_id = chat.get("id") if isinstance(chat, dict) else None
        if not isinstance(chat_id, int) or isinstance(chat_id, bool):
            return UNKNOWN_PAGE
        if chat_id in self.channels:
            return self.channels[chat_id] if kind in ("channel_post", "edited_channel_post") \
                else None  # a channel has only channel posts; anything else is not ours
        channel_id = self.discussions.get(chat_id)
        if channel_id is not None and kind in ("message", "edited_message"):
            return self.channels.get(channel_id, page_id_of(channel_id))
        return None


@dataclass
class RoundResult:
    """What one getUpdates round did."""

    received: int = 0
    produced: int = 0
    skipped: int = 0
    offset: int | None = None


class TelegramConnector:
    """The polling loop; the Kafka side (producer, cursors) and the API client are injected."""

    def __init__(
        self,
        client: TelegramClient,
        producer: RawProducer,
        cursors: CursorStore,
        router: UpdateRouter,
        metrics: IngestMetrics,
        topic: str,
        poll_timeout: int = 25,
        retry_pause: float = 5.0,
    ) -> None:
        self.client = client
        self.producer = producer
        self.cursors = cursors
        self.router = router
        self.metrics = metrics
        self.topic = topic
        self.poll_timeout = poll_timeout
        self.retry_pause = retry_pause
        self.cursor_key = f"telegram:offset:{client.bot_id}"
        self.offset: int | None = None

    async def start(self) -> None:
        """Load the stored offset (after `cursors.load()`) and check the registered chats."""
        stored = self.cursors.get(self.cursor_key)
        self.offset = int(stored) if stored is not None else None
        log.info("telegram: %d страниц, продолжаю с offset %s", len(self.router.channels),
                 self.offset)
        await self.check_chats()

    async def check_chats(self) -> None:
        """getChat for each channel: warn where the registry and Telegram disagree."""
        for channel_id, page_id in sorted(self.router.channels.items()):
            try:
                info = await self.client.get_chat(channel_id)
            except TelegramUnauthorized:
                raise
            except (TelegramApiError, TelegramTransportError) as exc:
                self.metrics.page_failed(page_id)
                log.warning("telegram: канал %s недоступен боту (%s): добавьте бота "
                            "администратором канала", page_id, exc)
                continue
            linked = info.get("linked_chat_id")
            known = [g for g, c in self.router.discussions.items() if c == channel_id]
            if linked is not None and linked not in known:
                log.warning("telegram: у канала %s группа обсуждения %s, а в реестре %s — "
                            "комментарии этой группы не будут учитываться; исправьте "
                            "telegram_discussion_id", page_id, linked, known or "не указана")

    async def poll_once(self) -> RoundResult:
        """One getUpdates round: produce, wait for the acks, then store the new offset."""
        result = RoundResult(offset=self.offset)
        try:
            updates = await self.client.get_updates(self.offset, timeout=self.poll_timeout)
        except (TelegramApiError, TelegramTransportError):  # 401 included
            self._pages_failed()
            raise
        result.received = len(updates)
        batch, types = self._route(updates, result)
        if batch:
            await self.producer.send_many(self.topic, batch)  # ProduceFailed: offset unchanged
            for kind in types:
                self.metrics.produced("telegram", kind)
        if updates:
            self.offset = updates[-1].update_id + 1
            await self.cursors.commit(self.cursor_key, self.offset)
        result.produced, result.offset = len(batch), self.offset
        for page_id in self.router.page_ids:
            self.metrics.page_ok(page_id)
        return result

    def _route(self, updates: Iterable[RawUpdate], result: RoundResult):
        batch: list[tuple[str, bytes]] = []
        types: list[str] = []
        for update in updates:
            page_id = self.router.route(update.data)
            if page_id is None:
                result.skipped += 1
                self.metrics.request(CONNECTOR, "unknown_page")
                log.debug("telegram: update %s of an unregistered chat skipped",
                          update.update_id)
                continue
            batch.append((page_id, update.raw))
            types.append(update.type or "unknown")
        return batch, types

    def _pages_failed(self) -> None:
        for page_id in self.router.page_ids:
            self.metrics.page_failed(page_id)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Poll until `stop` is set; a failed round is retried after `retry_pause`."""
        stop = stop or asyncio.Event()
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                await self._round_or_stop(stopping)
        finally:
            stopping.cancel()

    async def _round_or_stop(self, stopping: asyncio.Task) -> None:
        """One round; a stop request cancels it (a long poll must not delay shutdown).

        Cancelled between the acks and the offset write, the round's updates come again after
        the restart and the worker drops the copies, as after a crash.
        """
        round_ = asyncio.create_task(self.poll_once())
        await asyncio.wait({round_, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not round_.done():
            round_.cancel()
            await asyncio.gather(round_, return_exceptions=True)
            return
        try:
            round_.result()
        except TelegramUnauthorized:
            raise
        except (TelegramApiError, TelegramTransportError, ProduceFailed) as exc:
            log.warning("telegram: круг не удался (%s); повтор через %.0f с", exc,
                        self.retry_pause)
            await asyncio.wait({stopping}, timeout=self.retry_pause)


async def run_connector(settings, metrics: IngestMetrics, once: bool = False,
                        stop: asyncio.Event | None = None,
                        max_attempts: int = 5) -> RoundResult | None:
    """Wire the connector from `settings`; one round with `once`, else until `stop`."""
    registry = PageRegistry.load(settings.pages_file)
    router = UpdateRouter.from_registry(registry)
    if not router.channels:
        log.warning("telegram: в реестре страниц нет Telegram-каналов; все обновления будут "
                    "пропущены")
    producer = RawProducer(settings.kafka_bootstrap, client_id="dozor-telegram")
    await producer.start(retry_for=60.0)
    cursors = CursorStore(settings.kafka_bootstrap, settings.topic_ingest_cursors, producer)

    def on_call(outcome: str, code: int | None) -> None:
        metrics.request(CONNECTOR, outcome)
        if code is not None:
            metrics.api_error(CONNECTOR, code)

    # Bounded attempts: a long outage must end the round as a failure, so that the pages'
    # last-failure metric moves (alert DozorConnectorFailing); `run` then tries again.
    client = TelegramClient(settings.telegram_bot_token, settings.telegram_api_url,
                            max_attempts=max_attempts, on_call=on_call)
    try:
        await cursors.load()
        connector = TelegramConnector(
            client, producer, cursors, router, metrics, settings.topic_raw_telegram,
            poll_timeout=0 if once else settings.telegram_poll_timeout_seconds,
        )
        await connector.start()
        if once:
            return await connector.poll_once()
        await connector.run(stop)
        return None
    finally:
        await client.close()
        await producer.stop()


def run(settings, args) -> int:
    """Entry point of `dozor ingest telegram [--once]`."""
    if not settings.telegram_bot_token:
        print(NO_TOKEN_MESSAGE)
        return 0
    if not settings.kafka_bootstrap:
        print("dozor ingest telegram: задайте DOZOR_KAFKA_BOOTSTRAP / set DOZOR_KAFKA_BOOTSTRAP",
              file=sys.stderr)
        return 2
    once = bool(getattr(args, "once", False))
    metrics = IngestMetrics()
    if not once:
        serve_metrics(metrics, settings.metrics_host, settings.ingest_metrics_port)

    async def main() -> RoundResult | None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await run_connector(settings, metrics, once=once, stop=stop)

    try:
        result = asyncio.run(main())
    except TelegramUnauthorized as exc:
        print(f"dozor ingest telegram: {exc}", file=sys.stderr)
        return 3
    except (TelegramApiError, TelegramTransportError, ProduceFailed) as exc:
        print(f"dozor ingest telegram: {exc}", file=sys.stderr)
        return 1
    if once and result is not None:
        print(f"получено {result.received}, отправлено в Kafka {result.produced}, "
              f"пропущено {result.skipped}, offset {result.offset}")
    return 0
