"""`dozor users ...` and `dozor moderation migrate` on the configured store."""

from __future__ import annotations

import io

import pytest

from services.cli import main
from services.moderation.db import make_engine
from services.moderation.migrations import current
from services.moderation.store import ModerationStore


@pytest.fixture
def cli_env(monkeypatch, fresh_database, tmp_path):
    for name in ("DOZOR_DATABASE_URL", "DOZOR_PAGES_FILE"):
        monkeypatch.delenv(name, raising=False)
    url = fresh_database("sqlite")
    monkeypatch.setenv("DOZOR_DATABASE_URL", url)
    monkeypatch.setenv("DOZOR_DATA_DIR", str(tmp_path / "data"))
    return url


def run(argv, stdin: str = ""):
    import sys

    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        return main(argv)
    finally:
        sys.stdin = old


def test_users_commands(cli_env, capsys, monkeypatch):
    assert run(["users", "add", "anna", "--role", "municipal", "--municipality", "Сыктывкар",
                "--municipality", "Ухта", "--password-stdin"], "пароль анны\n") == 0
    assert run(["users", "add", "vera", "--role", "municipal", "--municipality", "Ухта", "Инта",
                "--password-stdin"], "пароль веры\n") == 0
    assert "anna (municipal; Сыктывкар, Ухта) создан" in capsys.readouterr().out
    # the prompt asks twice; a mismatch is refused
    answers = iter(["пароль админа", "пароль админа"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert run(["users", "add", "boss", "--role", "admin"]) == 0
    answers = iter(["один пароль", "другой пароль"])
    with pytest.raises(SystemExit, match="не совпали"):
        run(["users", "add", "carl", "--role", "operator"])
    with pytest.raises(SystemExit, match="--municipality"):
        run(["users", "add", "dina", "--role", "municipal", "--password-stdin"], "пароль дины\n")
    # the same minimum as the web form's (services/moderation/store.py MIN_PASSWORD_LENGTH)
    with pytest.raises(SystemExit, match="короче 10"):
        run(["users", "add", "dina", "--role", "operator", "--password-stdin"], "123456789\n")
    with pytest.raises(SystemExit, match="уже есть"):
        run(["users", "add", "anna", "--role", "operator", "--password-stdin"], "пароль анны\n")
    capsys.readouterr()

    assert run(["users", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[:4] for line in listing] == [
        ["anna", "municipal", "Сыктывкар, Ухта", "активен"], ["boss", "admin", "все", "активен"],
        ["vera", "municipal", "Инта, Ухта", "активен"]]

    assert run(["users", "token", "anna", "--name", "grafana"]) == 0
    token = capsys.readouterr().out.strip()
    store = ModerationStore(make_engine(cli_env))
    assert store.user_for_token(token).login == "anna"

    assert run(["users", "set-password", "anna", "--password-stdin"], "новый пароль анны\n") == 0
    assert store.authenticate("anna", "новый пароль анны").login == "anna"
    assert store.authenticate("anna", "пароль анны") is None

    assert run(["users", "disable", "anna"]) == 0
    assert store.user_for_token(token) is None
    with pytest.raises(SystemExit, match="нет пользователя"):
        run(["users", "disable", "nobody"])
    with pytest.raises(SystemExit, match="отключён"):
        run(["users", "token", "anna", "--name", "x"])
    store.engine.dispose()


def test_password_minimum_is_the_web_forms(cli_env):
    from services.moderation.store import MIN_PASSWORD_LENGTH

    assert MIN_PASSWORD_LENGTH == 10
    with pytest.raises(SystemExit, match=f"короче {MIN_PASSWORD_LENGTH}"):
        run(["users", "add", "eve", "--role", "operator", "--password-stdin"],
            "x" * (MIN_PASSWORD_LENGTH - 1) + "\n")
    assert run(["users", "add", "eve", "--role", "operator", "--password-stdin"],
               "x" * MIN_PASSWORD_LENGTH + "\n") == 0
    store = ModerationStore(make_engine(cli_env))
    with pytest.raises(SystemExit, match=f"короче {MIN_PASSWORD_LENGTH}"):
        run(["users", "set-password", "eve", "--password-stdin"], "y" * (MIN_PASSWORD_LENGTH - 1) + "\n")
    assert store.authenticate("eve", "x" * MIN_PASSWORD_LENGTH).login == "eve"
    store.engine.dispose()


def test_users_revoke_token(cli_env, capsys):
    assert run(["users", "add", "robot", "--role", "operator", "--password-stdin"],
               "пароль робота\n") == 0
    assert run(["users", "token", "robot", "--name", "grafana"]) == 0
    grafana = capsys.readouterr().out.strip().splitlines()[-1]
    assert run(["users", "token", "robot", "--name", "backup"]) == 0
    backup = capsys.readouterr().out.strip()
    store = ModerationStore(make_engine(cli_env))
    assert store.user_for_token(grafana).login == "robot"

    assert run(["users", "revoke-token", "robot", "--name", "grafana"]) == 0
    assert "токен «grafana» пользователя robot отключён" in capsys.readouterr().out
    assert store.user_for_token(grafana) is None  # refused from now on
    assert store.user_for_token(backup).login == "robot"  # the other token and the user stay
    assert store.authenticate("robot", "пароль робота").login == "robot"
    with pytest.raises(SystemExit, match="нет токена «grafana»"):
        run(["users", "revoke-token", "robot", "--name", "grafana"])  # already revoked
    with pytest.raises(SystemExit, match="нет пользователя"):
        run(["users", "revoke-token", "nobody", "--name", "grafana"])
    store.engine.dispose()


def test_migrate_and_downgrade_commands(cli_env, capsys):
    assert current(cli_env) is None
    assert run(["moderation", "migrate"]) == 0
    assert current(cli_env) == "0002"
    assert run(["moderation", "migrate", "--downgrade", "base"]) == 0
    assert current(cli_env) is None
    assert "пусто (base)" in capsys.readouterr().out


def test_serve_without_a_broker_says_what_to_do(cli_env, monkeypatch):
    monkeypatch.delenv("DOZOR_KAFKA_BOOTSTRAP", raising=False)
    with pytest.raises(SystemExit, match="DOZOR_KAFKA_BOOTSTRAP"):
        run(["moderation"])
