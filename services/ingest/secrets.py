"""Secrets by name: the page registry names them (`vk_secret_env`, `vk_token_env`), this
module finds their values in the environment or in DOZOR_SECRETS_FILE.

The environment mapping is handed in: only services/settings.py reads the environment
(`Settings.secret_source()`); `load_secrets(settings)` wires the two. The environment wins
over the file. The Telegram bot token may be in the file too (`DOZOR_TELEGRAM_BOT_TOKEN`),
used when the setting is unset (`telegram_bot_token`).

The file is YAML (``NAME: value``) or .env style (``NAME=value``, ``#`` comments, optional
quotes, optional ``export``), told apart by content. Values are never logged or shown: `Secret`
hides its value in repr/str, so a stray log line or traceback prints ``Secret('NAME')``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml


class Secret(str):
    """A secret value (a str) whose repr and str-formatting in logs do not reveal it."""

    name: str

    def __new__(cls, value: str, name: str = "") -> Secret:
        obj = super().__new__(cls, value)
        obj.name = name
        return obj

    def __repr__(self) -> str:
        return f"Secret({self.name!r})"

    def __format__(self, spec: str) -> str:  # "%s"/f-strings in log lines
        return repr(self)

    def reveal(self) -> str:
        """The plain value, for the one place that must send it (an API call, a compare)."""
        return str.__str__(self)

    def __str__(self) -> str:
        return repr(self)


class SecretsError(ValueError):
    """The secrets file is unreadable; the message names the file, never a value."""


class Secrets:
    """Look secrets up by name: environment first, then the secrets file."""

    def __init__(self, file_values: Mapping[str, str] | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self._file = dict(file_values or {})
        # no environment unless one is handed in (Settings.secret_source() in production)
        self._env: Mapping[str, str] = {} if environ is None else environ

    @classmethod
    def load(cls, path: str | Path | None, environ: Mapping[str, str] | None = None) -> Secrets:
        """Secrets from the environment and the optional file `path`."""
        return cls(read_secrets_file(path) if path else {}, environ)

    def get(self, name: str | None) -> Secret | None:
        """The secret called `name`, or None when unset or empty (or `name` is None)."""
        if not name:
            return None
        value = self._env.get(name)
        if value in (None, ""):
            value = self._file.get(name)
        if value in (None, ""):
            return None
        return Secret(str(value), name)

    def where(self, name: str | None) -> str | None:
        """Where the secret comes from: 'окружение', 'файл секретов' or None (for reports)."""
        if not name:
            return None
        if self._env.get(name):
            return "окружение"
        if self._file.get(name):
            return "файл секретов"
        return None


#: the name under which the secrets file may hold the Telegram bot token
TELEGRAM_TOKEN_NAME = "DOZOR_TELEGRAM_BOT_TOKEN"


def load_secrets(settings) -> Secrets:
    """The secrets of a connector process: DOZOR_SECRETS_FILE and the environment as
    `Settings.secret_source()` gives it."""
    return Secrets.load(settings.secrets_file, settings.secret_source())


def telegram_bot_token(configured: str | None, secrets: Secrets) -> Secret | None:
    """The bot token: the setting DOZOR_TELEGRAM_BOT_TOKEN, else the secrets file's entry of
    that name (None: no bot configured)."""
    if configured:
        return Secret(configured, TELEGRAM_TOKEN_NAME)
    return secrets.get(TELEGRAM_TOKEN_NAME)


def read_secrets_file(path: str | Path) -> dict[str, str]:
    """Parse a secrets file into {name: value}: YAML (``NAME: value``) or .env (``NAME=value``).

    The format is told by the content, not the name: Docker mounts secrets without a suffix
    (``/run/secrets/dozor-secrets``). A file that YAML reads as a mapping is YAML; anything
    else is read line by line as .env.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretsError(f"secrets file {path} unreadable: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict):
        return {str(k): str(v) for k, v in data.items() if v is not None}
    if path.suffix.lower() in (".yaml", ".yml") and data is not None:
        raise SecretsError(f"secrets file {path}: expected NAME: value pairs")
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        name, sep, value = line.partition("=")
        if not sep:
            name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise SecretsError(f"secrets file {path}, line {number}: expected NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values
