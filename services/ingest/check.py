"""`dozor pages check`: call each platform once per registered page with a connector and
print what works and what does not, and why (a Russian table for the ЦУР's operators).

- ``vk-callback``: offline only — the secret named by ``vk_secret_env`` is found (environment
  or secrets file) and ``vk_confirmation`` is set (VK's confirmation request needs it). No VK
  call can test it: the Callback API is VK calling us; the row says so.
- ``vk-poll``: the token named by ``vk_token_env`` is found, and ``wall.get`` with ``count=1``
  works with it (error 5/15/18/30 and the like are shown with their meaning).
- ``telegram``: the bot token is set (DOZOR_TELEGRAM_BOT_TOKEN, or that name in the secrets
  file), ``getChat`` and ``getChatMember`` (the bot) work for the channel and for its
  discussion group and the bot's status is right — the same rule as the connector's periodic
  health check (`services.ingest.telegram.member_problem`: admin of the channel; admin of the
  group, or a member with privacy mode off), so a demoted bot shows — and the channel's linked
  group is the registered one.

The Telegram client is injectable (`bot`: get_me, get_chat, get_chat_member, bot_user_id);
by default the connector's `TelegramClient`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from services.ingest.secrets import Secrets, load_secrets, telegram_bot_token
from services.ingest.telegram import member_problem
from services.ingest.telegram_api import TelegramClient, TelegramUnauthorized
from services.ingest.vk_api import RateLimiters, Token, VkApi, VkApiError, VkTransportError
from streams.pages import Page, PageRegistry

CALLBACK_NOTE = ("проверяется только наличие секрета и строки подтверждения: VK сам вызывает "
                 "сервер")


class Bot(Protocol):
    """The Bot API calls the check needs (`TelegramClient` has them)."""

    @property
    def bot_user_id(self) -> int: ...

    async def get_me(self) -> dict[str, Any]: ...

    async def get_chat(self, chat_id: int) -> dict[str, Any]: ...

    async def get_chat_member(self, chat_id: int, user_id: int) -> dict[str, Any]: ...


@dataclass
class CheckRow:
    """One page's result: what works, what does not (with the reason)."""

    page_id: str
    name: str
    connector: str
    works: list[str] = field(default_factory=list)
    fails: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.fails


def check_callback_page(page: Page, secrets: Secrets) -> CheckRow:
    """A vk-callback page: secret and confirmation configured (no network)."""
    row = CheckRow(page.page_id, page.name, "vk-callback")
    where = secrets.where(page.vk_secret_env)
    if not page.vk_secret_env:
        row.fails.append("не задан vk_secret_env: VK-запросы будут отклонены (403)")
    elif where is None:
        row.fails.append(f"секрет {page.vk_secret_env} не найден ни в окружении, ни в файле "
                         "секретов: VK-запросы будут отклонены (403)")
    else:
        row.works.append(f"секрет {page.vk_secret_env} задан ({where})")
    if page.vk_confirmation:
        row.works.append("строка подтверждения задана")
    else:
        row.fails.append("не задан vk_confirmation: VK не подтвердит адрес сервера")
    row.works.append(f"({CALLBACK_NOTE})")
    return row


async def check_poll_page(page: Page, secrets: Secrets, api: VkApi,
                          default_rate: float) -> CheckRow:
    """A vk-poll page: token found and wall.get count=1 answers."""
    row = CheckRow(page.page_id, page.name, "vk-poll")
    token = secrets.get(page.vk_token_env)
    if token is None:
        row.fails.append(f"токен {page.vk_token_env or '(vk_token_env не задан)'} не найден")
        return row
    row.works.append(f"токен {page.vk_token_env} задан ({secrets.where(page.vk_token_env)})")
    try:
        owner = int(page.page_id.split(":", 1)[1])
        await api.method(Token(page.vk_token_env, token.reveal(), page.vk_rate or default_rate),
                         "wall.get", owner_id=owner, count=1)
    except VkApiError as exc:
        row.fails.append(f"wall.get: {exc.reason}")
    except VkTransportError as exc:
        row.fails.append(f"wall.get: VK недоступен ({exc})")
    except ValueError:
        row.fails.append("page_id не вида vk:<id стены>")
    else:
        row.works.append("wall.get отвечает")
    return row


async def check_telegram_page(page: Page, bot: Bot | None,
                              reads_all_group_messages: bool = True) -> CheckRow:
    """A telegram page: channel and discussion group readable, the bot's status in each right
    (`member_problem`, as the connector's health check), the linked group the registered one."""
    row = CheckRow(page.page_id, page.name, "telegram")
    if bot is None:
        row.fails.append("не задан DOZOR_TELEGRAM_BOT_TOKEN (ни в окружении, ни в файле "
                         "секретов)")
        return row
    try:
        channel_id = int(page.page_id.split(":", 1)[1])
    except ValueError:
        row.fails.append("page_id не вида telegram:<id канала>")
        return row
    linked = None
    chats = ((channel_id, True), (page.telegram_discussion_id, False))
    for chat_id, is_channel in chats:
        if chat_id is None:
            row.fails.append("не задан telegram_discussion_id: комментарии не будут видны")
            continue
        where = "канала" if is_channel else "группы обсуждений"
        try:
            chat = await bot.get_chat(chat_id)
        except Exception as exc:  # any failure of the call is what the operator must see
            row.fails.append(f"getChat {where}: {_reason(exc)}")
            if isinstance(exc, TelegramUnauthorized):
                return row
            continue
        try:
            member = await bot.get_chat_member(chat_id, bot.bot_user_id)
        except Exception as exc:
            row.fails.append(f"getChatMember {where}: {_reason(exc)}")
            continue
        if is_channel:
            linked = chat.get("linked_chat_id")
        problem = member_problem(member, channel=is_channel,
                                 reads_all_group_messages=reads_all_group_messages)
        if problem is not None:
            row.fails.append(("канал: " if is_channel else "группа обсуждений: ") + problem[1])
        elif is_channel:
            row.works.append(f"канал доступен боту ({chat.get('title') or channel_id}), "
                             f"бот — {member.get('status')}")
        else:
            row.works.append(f"группа обсуждений доступна боту (бот — {member.get('status')})")
    if (linked is not None and page.telegram_discussion_id is not None
            and linked != page.telegram_discussion_id):
        row.fails.append(f"к каналу привязана группа {linked}, а в реестре "
                         f"{page.telegram_discussion_id}")
    return row


def _reason(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    text = getattr(exc, "description", None) or str(exc)
    if code == 401:
        return "токен бота отклонён (401)"
    if code in (400, 403):
        return f"бот не видит чат ({code}: {text}); добавьте бота администратором"
    return f"{type(exc).__name__}: {text}"


async def check_pages(registry: PageRegistry, secrets: Secrets, api: VkApi, default_rate: float,
                      bot: Bot | None) -> list[CheckRow]:
    """One row per registered page with a connector, in registry order."""
    rows = []
    reads_all = True  # unknown: the page checks show what is really wrong
    if bot is not None and any(p.connector == "telegram" for p in registry):
        try:
            reads_all = bool((await bot.get_me()).get("can_read_all_group_messages"))
        except Exception:  # noqa: BLE001 — 401 and the like show in the page rows
            pass
    for page in registry:
        if page.connector == "vk-callback":
            rows.append(check_callback_page(page, secrets))
        elif page.connector == "vk-poll":
            rows.append(await check_poll_page(page, secrets, api, default_rate))
        elif page.connector == "telegram":
            rows.append(await check_telegram_page(page, bot, reads_all))
    return rows


def render(rows: list[CheckRow]) -> str:
    """The table: страница | коннектор | работает | не работает и почему."""
    header = ("страница", "коннектор", "работает", "не работает (почему)")
    lines = [(f"{r.page_id} {r.name}", r.connector, "; ".join(r.works) or "—",
              "; ".join(r.fails) or "—") for r in rows]
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(3)]

    def fmt(cells):
        return " | ".join(c.ljust(w) for c, w in zip(cells[:3], widths)) + " | " + cells[3]

    out = [fmt(header), "-+-".join("-" * w for w in widths) + "-+-" + "-" * 20]
    out += [fmt(line) for line in lines]
    broken = sum(1 for r in rows if not r.ok)
    out.append(f"страниц с коннектором: {len(rows)}, с проблемами: {broken}")
    return "\n".join(out)


def run_check(settings, args, bot: Bot | None = None) -> int:
    """Entry point of `dozor pages check`: print the table; exit code 1 if a page has a problem.

    `bot`: a Bot API client for the Telegram pages (tests); by default a `TelegramClient`
    with the bot token from the settings or the secrets file."""
    registry = PageRegistry.load(settings.pages_file)
    secrets = load_secrets(settings)

    async def main() -> list[CheckRow]:
        client = None
        if bot is None:
            token = telegram_bot_token(settings.telegram_bot_token, secrets)
            if token is not None:
                client = TelegramClient(token.reveal(), settings.telegram_api_url,
                                        max_attempts=2, backoff_base=0.5, backoff_max=2.0)
        try:
            async with httpx.AsyncClient(timeout=20.0) as http:
                api = VkApi(http, settings.vk_api_url, settings.vk_api_version, RateLimiters(),
                            connector="vk-poll", max_retries=2, backoff_base=0.5)
                return await check_pages(registry, secrets, api,
                                         settings.vk_requests_per_second, bot or client)
        finally:
            if client is not None:
                await client.close()

    rows = asyncio.run(main())
    if not rows:
        print("в реестре нет страниц с коннектором "
              "(поле connector: vk-callback, vk-poll, telegram)")
        return 0
    print(render(rows))
    return 0 if all(r.ok for r in rows) else 1
