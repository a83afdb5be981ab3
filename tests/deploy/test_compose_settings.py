"""Every DOZOR_* setting of `.env` reaches the Dozor processes of docker-compose.yml.

The compose file is parsed and a container's environment is computed the way compose does
it: the `env_file` entries first, the service's `environment:` on top (interpolated from
the same `.env`). The worker's `Settings` built from that environment are the effective
settings; they must carry the calendar of `.env`, not the defaults.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values

from services.settings import Settings
from streams.tracking.calendar import WorkingCalendar
from tests.support.deploy import REPO

DOZOR_SERVICES = ("worker", "moderation", "vk-callback", "vk-poll", "telegram")
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))


def interpolate(value, variables: dict[str, str]) -> str:
    def one(match: re.Match) -> str:
        name, operator, argument = match.groups()
        current = variables.get(name)
        if operator in (":?", "?") and not current:
            raise AssertionError(f"compose would refuse to start: {name}: {argument}")
        if operator in (":-", "-") and not current:
            return argument
        return current or ""
    return INTERPOLATION.sub(one, str(value))


def container_environment(service: str, env_file: Path) -> dict[str, str]:
    """The environment compose gives `service` with `env_file` as the project's .env."""
    definition = compose()["services"][service]
    variables = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    files = definition.get("env_file") or []
    paths = [f if isinstance(f, str) else f["path"] for f in files]
    assert ".env" in paths, f"{service}: .env is not an env_file"
    environment = dict(variables)  # env_file: every line of .env
    for key, value in (definition.get("environment") or {}).items():
        environment[key] = interpolate(value, variables)  # environment: wins
    return environment


def settings_from(environment: dict[str, str], monkeypatch) -> Settings:
    for key in [k for k in __import__("os").environ if k.startswith("DOZOR_")]:
        monkeypatch.delenv(key)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    return Settings(_env_file=None)


@pytest.fixture
def project_env(tmp_path) -> Path:
    """An operator's .env: .env.example with a Yekaterinburg calendar and a password."""
    text = (REPO / ".env.example").read_text(encoding="utf-8")
    text = re.sub(r"^POSTGRES_PASSWORD=.*$", "POSTGRES_PASSWORD=0123abcd", text, flags=re.M)
    text = re.sub(r"^DOZOR_TIMEZONE=.*$", "DOZOR_TIMEZONE=Asia/Yekaterinburg", text, flags=re.M)
    text = re.sub(r"^DOZOR_WORKING_HOURS=.*$", "DOZOR_WORKING_HOURS=08:30-17:30", text,
                  flags=re.M)
    text += ("DOZOR_FLAG_NEGATIVE_THRESHOLD=0.9\n"
             # a host-side value: the stack's own address must win over it
             "DOZOR_KAFKA_BOOTSTRAP=localhost:29092\n")
    path = tmp_path / ".env"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("service", DOZOR_SERVICES)
def test_every_dozor_service_reads_dot_env(service):
    files = compose()["services"][service].get("env_file") or []
    assert [f if isinstance(f, str) else f["path"] for f in files] == [".env"], service


def test_worker_effective_settings_come_from_dot_env(project_env, monkeypatch):
    settings = settings_from(container_environment("worker", project_env), monkeypatch)
    assert settings.timezone == "Asia/Yekaterinburg"
    assert settings.working_hours == "08:30-17:30"
    assert settings.working_days == "1-5"
    assert "2027-01-08" in settings.holidays and "2027-05-10" in settings.holidays
    assert settings.flag_negative_threshold == 0.9
    # Addresses inside the stack come from the service's environment, not from .env.
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.metrics_port == 9464
    assert str(settings.pages_file) == "/etc/dozor/pages.yaml"
    calendar = WorkingCalendar.parse(settings.timezone, settings.working_hours,
                                     settings.working_days, settings.holidays)
    assert not calendar.is_working_day(date(2027, 1, 8))
    assert not calendar.is_working_day(date(2027, 6, 14))
    assert calendar.is_working_day(date(2027, 1, 11))


def test_moderation_gets_the_same_calendar(project_env, monkeypatch):
    environment = container_environment("moderation", project_env)
    settings = settings_from(environment, monkeypatch)
    assert settings.timezone == "Asia/Yekaterinburg"
    assert settings.database_url == "postgresql+psycopg://dozor:0123abcd@postgres:5432/dozor"


def test_env_example_settings_are_valid(monkeypatch):
    """Every DOZOR_* line of .env.example parses into Settings (no empty typed value)."""
    values = {k: v for k, v in dotenv_values(REPO / ".env.example").items()
              if k.startswith("DOZOR_") and v is not None}
    settings = settings_from(values, monkeypatch)
    holidays = {date.fromisoformat(d) for d in settings.holidays}
    federal_2027 = {date(2027, 1, d) for d in range(1, 9)} | {
        date(2027, 2, 23), date(2027, 3, 8), date(2027, 5, 1), date(2027, 5, 9),
        date(2027, 6, 12), date(2027, 11, 4)}
    assert federal_2027 <= holidays
    # the weekend holidays moved to the next Monday (Labour Code art. 112)
    assert {date(2027, 5, 3), date(2027, 5, 10), date(2027, 6, 14)} <= holidays
    WorkingCalendar.parse(settings.timezone, settings.working_hours, settings.working_days,
                          settings.holidays)
