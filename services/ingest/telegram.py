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
  updates produced by update type, last success / failure per registered page.
- **Per-page health.** One long poll serves every page, so a successful ``getUpdates`` says
  nothing about one channel: a bot demoted or removed in one channel simply stops receiving
  its updates. At the start and then every `health_interval` seconds
  (DOZOR_TELEGRAM_HEALTH_INTERVAL_SECONDS, default 600) each page
  is checked (`check_health`, 8 pages at a time): ``getChat`` and ``getChatMember`` (the bot
  itself) of the channel — the bot must be an administrator or the creator — and of the
  discussion group — the bot must be an administrator, or a member with privacy mode off
  (``getMe().can_read_all_group_messages``; a plain member with privacy mode on does not get
  the comments). Cost: 4 calls per page + 1 ``getMe`` per check, i.e. 0.7 calls/s for 100
  pages against the Bot API's ~30/s. A failing page gets
  ``dozor_ingest_last_failure_timestamp_seconds`` now, the Bot API error code (or
  ``not_admin`` / ``not_member`` / ``privacy_mode`` where the call worked but the status is
  wrong) in ``dozor_ingest_api_errors_total``, and one Russian log line per check; it gets no
  success timestamp until a check passes again, so DozorConnectorFailing fires after an hour.
  Healthy pages get a success timestamp after every successful ``getUpdates`` round; a failed
  round marks every page failed. The health check never stops reading.
- The token: DOZOR_TELEGRAM_BOT_TOKEN, else the entry of that name in DOZOR_SECRETS_FILE.
  No token: says so and exits 0 — docker compose starts the
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
from services.ingest.secrets import load_secrets, telegram_bot_token
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
    "(ни в окружении, ни в файле секретов; токен бота от @BotFather; бот — администратор "
    "каналов и участник их групп обсуждения).\n"
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


#: pages checked at the same time by `check_health`
HEALTH_CONCURRENCY = 8
DEFAULT_HEALTH_INTERVAL = 600.0
CHANNEL_STATUSES_OK = frozenset({"administrator", "creator"})


@dataclass
class PageHealth:
    """The outcome of one page's health check: ok, or a metric code and a Russian reason."""

    page_id: str
    code: str | None = None  # Bot API error code, or not_admin / not_member / privacy_mode
    reason: str | None = None
    api_error: bool = False  # the code is a Bot API error (already counted by the client)

    @property
    def ok(self) -> bool:
        return self.reason is None


def member_problem(member: dict[str, Any], *, channel: bool,
                   reads_all_group_messages: bool) -> tuple[str, str] | None:
    """What is wrong with the bot's ChatMember in a channel or discussion group (None: fine).

    Channel: administrator or creator (only admins receive channel posts). Group: an
    administrator, or a member (or restricted member) that reads all messages, i.e. with
    privacy mode off — with it on, a plain member does not receive the comments.
    """
    status = member.get("status")
    if status in CHANNEL_STATUSES_OK:
        return None
    if channel:
        return "not_admin", f"бот не администратор канала (статус {status})"
    if status == "member" or (status == "restricted" and member.get("is_member")):
        if reads_all_group_messages:
            return None
        return ("privacy_mode", "бот — рядовой участник группы обсуждения с включённым "
                "режимом приватности и не получает комментарии: сделайте его администратором "
                "группы или отключите privacy mode в @BotFather")
    return "not_member", f"бот не состоит в группе обсуждения (статус {status})"


def call_counter(metrics: IngestMetrics):
    """The client's `on_call` hook: API calls by outcome and API errors by code (contract D)."""
    def on_call(outcome: str, code: int | None) -> None:
        metrics.request(CONNECTOR, outcome)
        if code is not None:
            metrics.api_error(CONNECTOR, code)

    return on_call


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
        health_interval: float | None = DEFAULT_HEALTH_INTERVAL,
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
        #: seconds between two health checks (None: none after the one at the start)
        self.health_interval = health_interval
        #: page id -> passed its last health check (pages are healthy until checked)
        self.healthy: dict[str, bool] = {p: True for p in router.page_ids}
        self._next_health = 0.0  # loop time of the next check in `run`
        self._linked_warned: set[int] = set()

    async def start(self) -> None:
        """Load the stored offset (after `cursors.load()`) and check the registered pages."""
        stored = self.cursors.get(self.cursor_key)
        self.offset = int(stored) if stored is not None else None
        log.info("telegram: %d страниц, продолжаю с offset %s", len(self.router.channels),
                 self.offset)
        await self.check_health()

    async def check_health(self) -> list[PageHealth]:
        """Check every page (see the module docstring) and set its metrics; 401 raises."""
        try:
            me = await self.client.get_me()
            reads_all = bool(me.get("can_read_all_group_messages"))
        except TelegramUnauthorized:
            raise
        except (TelegramApiError, TelegramTransportError):
            reads_all = True  # unknown: the page checks below show what is really wrong
        groups = {c: g for g, c in self.router.discussions.items()}
        semaphore = asyncio.Semaphore(HEALTH_CONCURRENCY)

        async def one(channel_id: int, page_id: str) -> PageHealth:
            async with semaphore:
                return await self._check_page(channel_id, page_id, groups.get(channel_id),
                                              reads_all)

        pages = sorted(self.router.channels.items())
        # every check ends before a 401 (or a bug) is raised: no check left running
        outcomes = await asyncio.gather(*(one(c, p) for c, p in pages), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        results = [o for o in outcomes if isinstance(o, PageHealth)]
        for health in results:
            self._record(health)
        if self.health_interval is not None:
            self._next_health = asyncio.get_running_loop().time() + self.health_interval
        return results

    async def _check_page(self, channel_id: int, page_id: str, group_id: int | None,
                          reads_all: bool) -> PageHealth:
        bot = self.client.bot_user_id
        for chat_id, is_channel in ((channel_id, True), (group_id, False)):
            if chat_id is None:
                continue  # no discussion group registered: `dozor pages check` says so
            where = "канал" if is_channel else f"группа обсуждения {chat_id}"
            try:
                info = await self.client.get_chat(chat_id)
                member = await self.client.get_chat_member(chat_id, bot)
            except TelegramUnauthorized:
                raise
            except TelegramApiError as exc:
                return PageHealth(page_id, str(exc.code), f"{where}: ошибка Bot API "
                                  f"{exc.code} ({exc.description})", api_error=True)
            except TelegramTransportError as exc:
                return PageHealth(page_id, None, f"{where}: Telegram недоступен ({exc})")
            problem = member_problem(member, channel=is_channel,
                                     reads_all_group_messages=reads_all)
            if problem is not None:
                return PageHealth(page_id, problem[0], f"{where}: {problem[1]}")
            if is_channel:
                self._warn_linked(channel_id, page_id, info.get("linked_chat_id"), group_id)
        return PageHealth(page_id)

    def _warn_linked(self, channel_id: int, page_id: str, linked: int | None,
                     group_id: int | None) -> None:
        """Warn (once per run) where the registry and Telegram disagree on the group."""
        if linked is None or linked == group_id or channel_id in self._linked_warned:
            return
        self._linked_warned.add(channel_id)
        log.warning("telegram: у канала %s группа обсуждения %s, а в реестре %s — "
                    "комментарии этой группы не будут учитываться; исправьте "
                    "telegram_discussion_id", page_id, linked,
                    group_id if group_id is not None else "не указана")

    def _record(self, health: PageHealth) -> None:
        was_healthy = self.healthy.get(health.page_id, True)
        self.healthy[health.page_id] = health.ok
        if health.ok:
            self.metrics.page_ok(health.page_id)
            if not was_healthy:
                log.info("telegram: страница %s снова читается", health.page_id)
            return
        self.metrics.page_failed(health.page_id)
        if health.code is not None and not health.api_error:
            self.metrics.api_error(CONNECTOR, health.code)  # API errors: counted by the client
        log.warning("telegram: страница %s не читается: %s", health.page_id, health.reason)

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
            if self.healthy.get(page_id, True):  # a failing page waits for a passed check
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
        """One round (after the health check when it is due); a stop request cancels it (a
        long poll must not delay shutdown).

        Cancelled between the acks and the offset write, the round's updates come again after
        the restart and the worker drops the copies, as after a crash.
        """
        loop = asyncio.get_running_loop()
        if self.health_interval is not None and loop.time() >= self._next_health:
            check = asyncio.create_task(self.check_health())
            await asyncio.wait({check, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not check.done():
                check.cancel()
                await asyncio.gather(check, return_exceptions=True)
                return
            check.result()  # only 401 raises: the token is gone, the connector stops
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
                        max_attempts: int = 5,
                        health_interval: float | None = None,
                        token: str | None = None,
                        ) -> RoundResult | None:
    """Wire the connector from `settings`; one round with `once`, else until `stop`.

    `health_interval`: seconds between two per-page health checks (one at the start always;
    None: DOZOR_TELEGRAM_HEALTH_INTERVAL_SECONDS). `token`: the bot token (None: the setting).
    """
    if health_interval is None:
        health_interval = settings.telegram_health_interval_seconds
    registry = PageRegistry.load(settings.pages_file)
    router = UpdateRouter.from_registry(registry)
    if not router.channels:
        log.warning("telegram: в реестре страниц нет Telegram-каналов; все обновления будут "
                    "пропущены")
    producer = RawProducer(settings.kafka_bootstrap, client_id="dozor-telegram")
    await producer.start(retry_for=60.0)
    cursors = CursorStore(settings.kafka_bootstrap, settings.topic_ingest_cursors, producer)

    # Bounded attempts: a long outage must end the round as a failure, so that the pages'
    # last-failure metric moves (alert DozorConnectorFailing); `run` then tries again.
    client = TelegramClient(token or settings.telegram_bot_token, settings.telegram_api_url,
                            max_attempts=max_attempts, on_call=call_counter(metrics))
    try:
        await cursors.load()
        connector = TelegramConnector(
            client, producer, cursors, router, metrics, settings.topic_raw_telegram,
            poll_timeout=0 if once else settings.telegram_poll_timeout_seconds,
            health_interval=health_interval,
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
    """Entry point of `dozor ingest telegram [--once]` (token: DOZOR_TELEGRAM_BOT_TOKEN or the
    secrets file; health checks every DOZOR_TELEGRAM_HEALTH_INTERVAL_SECONDS)."""
    token = telegram_bot_token(settings.telegram_bot_token, load_secrets(settings))
    if token is None:
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
        return await run_connector(settings, metrics, once=once, stop=stop,
                                   health_interval=settings.telegram_health_interval_seconds,
                                   token=token.reveal())

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
