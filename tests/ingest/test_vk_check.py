"""`dozor pages check`: one call per page, a Russian table of what works and why not."""

from __future__ import annotations

from services.ingest.check import run_check
from services.settings import Settings
from tests.support import telegram_payloads as tg
from tests.support.fake_telegram import FakeTelegram
from tests.support.fake_vk import FakeVk

BOT_TOKEN = "7000009:AAFakeTokenForPagesCheck"
BOT = 7000009

PAGES = """\
pages:
  - {page_id: 'vk:-1', name: Колбэк, connector: vk-callback, vk_confirmation: abc, vk_secret_env: S1}
  - {page_id: 'vk:-2', name: БезСекрета, connector: vk-callback, vk_secret_env: S_MISSING}
  - {page_id: 'vk:-3', name: Опрос, connector: vk-poll, vk_token_env: T_OK}
  - {page_id: 'vk:-4', name: Отозван, connector: vk-poll, vk_token_env: T_REVOKED}
  - {page_id: 'vk:-5', name: Закрыта, connector: vk-poll, vk_token_env: T_OK}
  - {page_id: 'telegram:-1001', name: Канал, connector: telegram, telegram_discussion_id: -2001}
  - {page_id: 'telegram:-1002', name: ЧужаяГруппа, connector: telegram, telegram_discussion_id: -2002}
  - {page_id: 'telegram:-1003', name: Разжалован, connector: telegram, telegram_discussion_id: -2003}
  - {page_id: 'vk:-6', name: Нечитаемая}
"""


def test_pages_check_prints_what_works_and_why_not(tmp_path, monkeypatch, capsys):
    pages = tmp_path / "pages.yaml"
    pages.write_text(PAGES, encoding="utf-8")
    secrets = tmp_path / "secrets.yaml"
    # the bot token only in the secrets file (DOZOR_TELEGRAM_BOT_TOKEN unset)
    secrets.write_text("S1: callback-secret-value\nT_REVOKED: revoked-token-value\n"
                       f"DOZOR_TELEGRAM_BOT_TOKEN: '{BOT_TOKEN}'\n", encoding="utf-8")
    monkeypatch.setenv("T_OK", "good-token-value")
    monkeypatch.delenv("DOZOR_TELEGRAM_BOT_TOKEN", raising=False)
    with FakeTelegram(token=BOT_TOKEN) as bot, FakeVk() as fake:
        bot.add_chat(tg.channel_chat(-1001, title="Администрация"), linked_chat_id=-2001)
        bot.add_chat(tg.group_chat(-2001))
        bot.add_chat(tg.channel_chat(-1002, title="Другой"), linked_chat_id=-9999)
        bot.add_chat(tg.channel_chat(-1003, title="Разжалован"), linked_chat_id=-2003)
        bot.add_chat(tg.group_chat(-2003))
        for chat in (-1001, -2001, -1002, -2003):
            bot.set_member(chat, BOT, "administrator")
        bot.set_member(-1003, BOT, "member")  # demoted in the channel: gets no posts
        fake.add_post(-3, "запись", 1795593600)
        fake.add_post(-4, "запись", 1795593600)
        fake.add_post(-5, "запись", 1795593600)
        fake.revoke("revoked-token-value")
        fake.wall_error(-5, 15)
        settings = Settings(pages_file=pages, secrets_file=secrets, vk_api_url=fake.url,
                            telegram_api_url=bot.url, telegram_bot_token=None)
        code = run_check(settings, None)
        calls = [(m, p.get("chat_id")) for m, p in bot.calls]
        vk_calls = [(tok, method, p.get("count")) for tok, method, p in fake.calls]
        requests = fake.requests_total()
    out = capsys.readouterr().out
    lines = {line.split(" ", 1)[0]: line for line in out.splitlines()}
    assert code == 1
    assert "страница" in out and "не работает (почему)" in out
    assert "секрет S1 задан (файл секретов)" in lines["vk:-1"]
    assert "строка подтверждения задана" in lines["vk:-1"]
    assert ("проверяется только наличие секрета и строки подтверждения: VK сам вызывает сервер"
            in lines["vk:-1"])
    assert "S_MISSING не найден" in lines["vk:-2"] and "vk_confirmation" in lines["vk:-2"]
    assert "токен T_OK задан (окружение)" in lines["vk:-3"] and "wall.get отвечает" in lines["vk:-3"]
    assert "отозван (ошибка 5)" in lines["vk:-4"]
    assert "нет доступа к стене (ошибка 15)" in lines["vk:-5"]
    assert "канал доступен боту" in lines["telegram:-1001"]
    assert "группа обсуждений доступна" in lines["telegram:-1001"]
    assert "не работает" not in lines["telegram:-1001"] and lines["telegram:-1001"].endswith("—")
    assert "getChat группы обсуждений" in lines["telegram:-1002"]
    assert "привязана группа -9999" in lines["telegram:-1002"]
    # the connector's health rule: a bot demoted to a plain member of the channel is reported
    assert "канал: бот не администратор канала (статус member)" in lines["telegram:-1003"]
    assert "группа обсуждений доступна" in lines["telegram:-1003"]
    assert "vk:-6" not in lines  # no connector: not checked
    assert "страниц с коннектором: 8, с проблемами: 5" in out
    # once per page: one wall.get (count=1) per poll page, getChat per channel and group
    assert requests == 3 and all(m == "wall.get" and c == "1" for _, m, c in vk_calls)
    chats = ["-1001", "-2001", "-1002", "-2002", "-1003", "-2003"]
    assert sorted(c for m, c in calls if m == "getChat") == sorted(chats)
    assert sorted(c for m, c in calls if m == "getChatMember") == sorted(
        set(chats) - {"-2002"})  # not for a chat getChat did not find
    for secret in ("callback-secret-value", "revoked-token-value", "good-token-value",
                   BOT_TOKEN):
        assert secret not in out


def test_pages_check_without_bot_token_says_so(tmp_path, capsys):
    pages = tmp_path / "pages.yaml"
    pages.write_text("pages:\n  - {page_id: 'telegram:-1001', name: К, connector: telegram, "
                     "telegram_discussion_id: -2001}\n", encoding="utf-8")
    code = run_check(Settings(pages_file=pages, telegram_bot_token=None, secrets_file=None),
                     None)
    assert code == 1
    assert "не задан DOZOR_TELEGRAM_BOT_TOKEN" in capsys.readouterr().out


def test_secrets_come_from_the_mapping_handed_in_and_the_bot_token_from_the_file(tmp_path):
    from services.ingest.secrets import Secrets, telegram_bot_token

    # no hidden fallback to os.environ: only what the caller hands in
    assert Secrets({}, None).get("PATH") is None
    assert Secrets({}, {"PATH": "x"}).get("PATH").reveal() == "x"
    from_file = Secrets({"DOZOR_TELEGRAM_BOT_TOKEN": "1:file"}, {})
    assert telegram_bot_token(None, from_file).reveal() == "1:file"
    assert telegram_bot_token("2:setting", from_file).reveal() == "2:setting"
    assert telegram_bot_token(None, Secrets({}, {})) is None


def test_only_settings_reads_the_environment_in_the_connectors():
    import re
    from pathlib import Path

    import services.ingest as ingest

    readers = re.compile(r"os\.environ|os\.getenv|getenv\(|environ\.get")
    offenders = [p.name for p in Path(ingest.__file__).parent.glob("*.py")
                 if readers.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
