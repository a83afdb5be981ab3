"""Secrets by name: environment first, then the secrets file; never shown."""

from __future__ import annotations

import logging

import pytest

from services.ingest.secrets import Secrets, SecretsError, read_secrets_file
from services.ingest.vk_api import RateLimiters, Token


def test_environment_wins_over_the_file_and_empty_means_unset(tmp_path):
    env_file = tmp_path / "secrets.env"
    env_file.write_text("# comment\nexport A='from-file'\nB=\"quoted value\"\nC=\nD: colon\n",
                        encoding="utf-8")
    secrets = Secrets.load(env_file, environ={"A": "from-env", "C": ""})
    assert secrets.get("A").reveal() == "from-env"
    assert secrets.get("B").reveal() == "quoted value"
    assert secrets.get("C") is None and secrets.get("missing") is None and secrets.get(None) is None
    assert secrets.get("D").reveal() == "colon"
    assert (secrets.where("A"), secrets.where("B"), secrets.where("C")) == (
        "окружение", "файл секретов", None)
    yaml_file = tmp_path / "secrets.yaml"
    yaml_file.write_text("VK_A: yaml-secret\nNUM: 12345\n", encoding="utf-8")
    assert Secrets.load(yaml_file, environ={}).get("NUM").reveal() == "12345"
    # a Docker secret has no suffix: YAML told by its content, values with '=' kept whole
    docker = tmp_path / "dozor-secrets"
    docker.write_text("# VK\nVK_A: 'abc=def:ghi'\nVK_B: plain\n", encoding="utf-8")
    assert read_secrets_file(docker) == {"VK_A": "abc=def:ghi", "VK_B": "plain"}


def test_a_secret_never_shows_in_logs_or_reprs(caplog):
    secret = Secrets({"VK_A": "top-secret-value"}, environ={}).get("VK_A")
    caplog.set_level(logging.INFO)
    logging.getLogger("t").info("secret %s %r", secret, secret)
    logging.getLogger("t").info(f"secret {secret}")
    assert "top-secret-value" not in caplog.text + repr([secret]) + str(secret)
    assert "VK_A" in caplog.text
    assert secret == "top-secret-value"  # compares as the value


def test_unreadable_secrets_file_names_the_file_not_a_value(tmp_path):
    bad = tmp_path / "s.env"
    bad.write_text("A=ok\nthis line has no separator\n", encoding="utf-8")
    with pytest.raises(SecretsError, match="line 2"):
        read_secrets_file(bad)
    with pytest.raises(SecretsError, match="unreadable"):
        read_secrets_file(tmp_path / "missing.env")


def test_pages_with_one_token_share_one_rate_limiter_at_the_lowest_rate():
    limiters = RateLimiters()
    a = limiters.get(Token("NAME_1", "same-token", 5.0).limiter_key, 5.0)
    b = limiters.get(Token("NAME_2", "same-token", 3.0).limiter_key, 3.0)
    c = limiters.get(Token("NAME_1", "other-token", 5.0).limiter_key, 5.0)
    assert a is b and a is not c
    assert a.rate == pytest.approx(3.0 * 0.95)
