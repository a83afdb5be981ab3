"""`dozor pages check`: call each platform once per registered page with a connector and
print what works and what does not, and why (a Russian table for the ЦУР's operators).

- ``vk-callback``: the secret named by ``vk_secret_env`` is found (environment or secrets
  file) and ``vk_confirmation`` is set (VK's confirmation request needs it). No VK call: the
  Callback API is VK calling us.
- ``vk-poll``: the token named by ``vk_token_env`` is found, and ``wall.get`` with ``count=1``
  works with it (error 5/15/18/30 and the like are shown with their meaning).
- ``telegram``: the bot token is set, ``getChat`` works for the channel and for its
  discussion group, and the channel's linked group is the registered one.

The Telegram call is injectable (`get_chat`); by default the connector's client
(`services.ingest.telegram_api.TelegramClient`) is used when present, plain httpx otherwise.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from services.ingest.secrets import Secrets
from services.ingest.vk_api import RateLimiters, Token, VkApi, VkApiError, VkTransportError
from streams.pages import Page, PageRegistry

GetChat = Callable[[int], Awaitable[dict]]


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


async def check_telegram_page(page: Page, get_chat: GetChat | None) -> CheckRow:
    """A telegram page: getChat of the channel and of its discussion group."""
    row = CheckRow(page.page_id, page.name, "telegram")
    if get_chat is None:
        row.fails.append("не задан DOZOR_TELEGRAM_BOT_TOKEN")
        return row
    try:
        channel_id = int(page.page_id.split(":", 1)[1])
    except ValueError:
        row.fails.append("page_id не вида telegram:<id канала>")
        return row
    linked = None
    try:
        chat = await get_chat(channel_id)
        linked = chat.get("linked_chat_id")
        row.works.append(f"канал доступен боту ({chat.get('title') or channel_id})")
    except Exception as exc:  # any failure of the call is what the operator must see
        row.fails.append(f"getChat канала: {_reason(exc)}")
    if page.telegram_discussion_id is None:
        row.fails.append("не задан telegram_discussion_id: комментарии не будут видны")
        return row
    try:
        await get_chat(page.telegram_discussion_id)
        row.works.append("группа обсуждений доступна боту")
    except Exception as exc:
        row.fails.append(f"getChat группы обсуждений: {_reason(exc)}")
    if linked is not None and linked != page.telegram_discussion_id:
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
                      get_chat: GetChat | None) -> list[CheckRow]:
    """One row per registered page with a connector, in registry order."""
    rows = []
    for page in registry:
        if page.connector == "vk-callback":
            rows.append(check_callback_page(page, secrets))
        elif page.connector == "vk-poll":
            rows.append(await check_poll_page(page, secrets, api, default_rate))
        elif page.connector == "telegram":
            rows.append(await check_telegram_page(page, get_chat))
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


def _default_get_chat(settings) -> tuple[GetChat | None, Callable[[], Awaitable[None]]]:
    async def nothing() -> None:
        return None

    token = settings.telegram_bot_token
    if not token:
        return None, nothing
    try:
        from services.ingest.telegram_api import TelegramClient
    except ImportError:
        TelegramClient = None  # noqa: N806
    if TelegramClient is not None:
        client = TelegramClient(token, settings.telegram_api_url, max_attempts=2,
                                backoff_base=0.5, backoff_max=2.0)
        return client.get_chat, client.close
    http = httpx.AsyncClient(timeout=20.0)

    async def get_chat(chat_id: int) -> dict:
        response = await http.post(f"{settings.telegram_api_url.rstrip('/')}/bot{token}/getChat",
                                   data={"chat_id": chat_id})
        answer = response.json()
        if not answer.get("ok"):
            error = RuntimeError(str(answer.get("description")))
            error.code = answer.get("error_code")  # type: ignore[attr-defined]
            raise error
        return answer["result"]

    return get_chat, http.aclose


def run_check(settings, args, get_chat: GetChat | None = None) -> int:
    """Entry point of `dozor pages check`: print the table; exit code 1 if a page has a problem."""
    registry = PageRegistry.load(settings.pages_file)
    secrets = Secrets.load(settings.secrets_file, os.environ)

    async def main() -> list[CheckRow]:
        chat, close = (get_chat, None) if get_chat is not None else _default_get_chat(settings)
        try:
            async with httpx.AsyncClient(timeout=20.0) as http:
                api = VkApi(http, settings.vk_api_url, settings.vk_api_version, RateLimiters(),
                            connector="vk-poll", max_retries=2, backoff_base=0.5)
                return await check_pages(registry, secrets, api,
                                         settings.vk_requests_per_second, chat)
        finally:
            if close is not None:
                await close()

    rows = asyncio.run(main())
    if not rows:
        print("в реестре нет страниц с коннектором "
              "(поле connector: vk-callback, vk-poll, telegram)")
        return 0
    print(render(rows))
    return 0 if all(r.ok for r in rows) else 1
