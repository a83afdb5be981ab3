"""`dozor pages check`: one call per page, a Russian table of what works and why not."""

from __future__ import annotations

from services.ingest.check import run_check
from services.settings import Settings
from tests.support.fake_vk import FakeVk

PAGES = """\
pages:
  - {page_id: 'vk:-1', name: Колбэк, connector: vk-callback, vk_confirmation: abc, vk_secret_env: S1}
  - {page_id: 'vk:-2', name: БезСекрета, connector: vk-callback, vk_secret_env: S_MISSING}
  - {page_id: 'vk:-3', name: Опрос, connector: vk-poll, vk_token_env: T_OK}
  - {page_id: 'vk:-4', name: Отозван, connector: vk-poll, vk_token_env: T_REVOKED}
  - {page_id: 'vk:-5', name: Закрыта, connector: vk-poll, vk_token_env: T_OK}
  - {page_id: 'telegram:-1001', name: Канал, connector: telegram, telegram_discussion_id: -2001}
  - {page_id: 'telegram:-1002', name: ЧужаяГруппа, connector: telegram, telegram_discussion_id: -2002}
  - {page_id: 'vk:-6', name: Нечитаемая}
"""


def test_pages_check_prints_what_works_and_why_not(tmp_path, monkeypatch, capsys):
    pages = tmp_path / "pages.yaml"
    pages.write_text(PAGES, encoding="utf-8")
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("S1: callback-secret-value\nT_REVOKED: revoked-token-value\n",
                       encoding="utf-8")
    monkeypatch.setenv("T_OK", "good-token-value")
    chats = {-1001: {"id": -1001, "title": "Администрация", "linked_chat_id": -2001},
             -2001: {"id": -2001, "title": "Обсуждение"},
             -1002: {"id": -1002, "title": "Другой", "linked_chat_id": -9999}}
    calls = []

    async def get_chat(chat_id):
        calls.append(chat_id)
        if chat_id not in chats:
            error = RuntimeError("Bad Request: chat not found")
            error.code = 400
            raise error
        return chats[chat_id]

    with FakeVk() as fake:
        fake.add_post(-3, "запись", 1795593600)
        fake.add_post(-4, "запись", 1795593600)
        fake.add_post(-5, "запись", 1795593600)
        fake.revoke("revoked-token-value")
        fake.wall_error(-5, 15)
        settings = Settings(pages_file=pages, secrets_file=secrets, vk_api_url=fake.url)
        code = run_check(settings, None, get_chat=get_chat)
        vk_calls = [(tok, method, p.get("count")) for tok, method, p in fake.calls]
        requests = fake.requests_total()
    out = capsys.readouterr().out
    lines = {line.split(" ", 1)[0]: line for line in out.splitlines()}
    assert code == 1
    assert "страница" in out and "не работает (почему)" in out
    assert "секрет S1 задан (файл секретов)" in lines["vk:-1"]
    assert "строка подтверждения задана" in lines["vk:-1"]
    assert "S_MISSING не найден" in lines["vk:-2"] and "vk_confirmation" in lines["vk:-2"]
    assert "токен T_OK задан (окружение)" in lines["vk:-3"] and "wall.get отвечает" in lines["vk:-3"]
    assert "отозван (ошибка 5)" in lines["vk:-4"]
    assert "нет доступа к стене (ошибка 15)" in lines["vk:-5"]
    assert "канал доступен боту" in lines["telegram:-1001"]
    assert "группа обсуждений доступна" in lines["telegram:-1001"]
    assert "getChat группы обсуждений" in lines["telegram:-1002"]
    assert "привязана группа -9999" in lines["telegram:-1002"]
    assert "vk:-6" not in lines  # no connector: not checked
    assert "страниц с коннектором: 7, с проблемами: 4" in out
    # once per page: one wall.get (count=1) per poll page, getChat per channel and group
    assert requests == 3 and all(m == "wall.get" and c == "1" for _, m, c in vk_calls)
    assert sorted(calls) == sorted([-1001, -2001, -1002, -2002])
    for secret in ("callback-secret-value", "revoked-token-value", "good-token-value"):
        assert secret not in out


def test_pages_check_without_bot_token_says_so(tmp_path, capsys):
    pages = tmp_path / "pages.yaml"
    pages.write_text("pages:\n  - {page_id: 'telegram:-1001', name: К, connector: telegram, "
                     "telegram_discussion_id: -2001}\n", encoding="utf-8")
    code = run_check(Settings(pages_file=pages, telegram_bot_token=None), None)
    assert code == 1
    assert "не задан DOZOR_TELEGRAM_BOT_TOKEN" in capsys.readouterr().out
