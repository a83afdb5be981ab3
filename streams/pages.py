"""The page registry: which госпаблики Dozor knows, where they are, their answer deadline."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import yaml

DEADLINE_MODES = ("working", "plain")
CONNECTORS = ("vk-callback", "vk-poll", "telegram")


@dataclass(frozen=True)
class Page:
    """One official page. `page_id` is the platform prefix plus the platform id (`vk:-1`)."""

    page_id: str
    platform: str
    name: str
    municipality: str
    category: str
    answer_deadline_hours: float | None = None
    deadline_mode: str = "working"
    #: how Dozor reads the page: vk-callback, vk-poll or telegram (None: not read live)
    connector: str | None = None
    #: VK Callback API: the confirmation string VK shows in the community's settings
    vk_confirmation: str | None = None
    #: VK Callback API: name of the secret (environment / secrets file) holding the secret key
    vk_secret_env: str | None = None
    #: VK polling: name of the secret holding the service or user token
    vk_token_env: str | None = None
    #: VK polling: requests per second allowed for this page's token (default from settings)
    vk_rate: float | None = None
    #: Telegram: chat id of the channel's linked discussion group (where comments live)
    telegram_discussion_id: int | None = None


class PageRegistryError(ValueError):
    """The registry file is unusable; the message names the file, the row and the fix."""


class PageRegistry:
    """Pages by id; unknown pages are still processed under a placeholder entry."""

    def __init__(self, pages: list[Page] | None = None) -> None:
        self._pages = {page.page_id: page for page in pages or []}

    def __len__(self) -> int:
        return len(self._pages)

    def __iter__(self):
        return iter(self._pages.values())

    def __contains__(self, page_id: str) -> bool:
        return page_id in self._pages

    def get(self, page_id: str) -> Page:
        """The registered page, or a placeholder that says the page is not registered."""
        page = self._pages.get(page_id)
        if page is not None:
            return page
        platform = page_id.split(":", 1)[0] if ":" in page_id else "unknown"
        return Page(
            page_id=page_id,
            platform=platform,
            name=f"незарегистрированная страница {page_id}",
            municipality="не указано",
            category="не указано",
        )

    def telegram_discussions(self) -> dict[int, int]:
        """Discussion group chat id -> channel chat id, for the Telegram pages that have one."""
        return {
            page.telegram_discussion_id: int(page.page_id.split(":", 1)[1])
            for page in self._pages.values()
            if page.platform == "telegram" and page.telegram_discussion_id is not None
        }

    @classmethod
    def load(cls, path: str | Path | None) -> PageRegistry:
        """Read a YAML (`pages:` list) or CSV (header row) registry; None → empty registry."""
        if path is None:
            return cls()
        path = Path(path)
        if not path.is_file():
            raise PageRegistryError(
                f"page registry {path} not found; set DOZOR_PAGES_FILE to a YAML or CSV file "
                "(see services/sample/pages.yaml for the format)"
            )
        if path.suffix.lower() == ".csv":
            with path.open(encoding="utf-8", newline="") as fh:
                rows = list(csv.DictReader(fh))
        else:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            rows = data.get("pages") if isinstance(data, dict) else data
            if not isinstance(rows, list):
                raise PageRegistryError(f"{path}: expected a list under 'pages:'")
        pages = [_page_from_row(row, path, number) for number, row in enumerate(rows, 1)]
        seen: set[str] = set()
        for page in pages:
            if page.page_id in seen:
                raise PageRegistryError(f"{path}: page {page.page_id} is listed twice")
            seen.add(page.page_id)
        return cls(pages)


def _page_from_row(row: object, path: Path, number: int) -> Page:
    where = f"{path}, entry {number}"
    if not isinstance(row, dict):
        raise PageRegistryError(f"{where}: expected a mapping with page_id, name, ...")
    page_id = str(row.get("page_id") or "").strip()
    if ":" not in page_id:
        raise PageRegistryError(
            f"{where}: page_id {page_id!r} must be '<platform>:<id>', e.g. 'vk:-2000001'"
        )
    deadline = row.get("answer_deadline_hours")
    try:
        deadline_hours = float(deadline) if deadline not in (None, "") else None
    except (TypeError, ValueError):
        raise PageRegistryError(f"{where}: answer_deadline_hours must be a number") from None
    if deadline_hours is not None and deadline_hours < 0:
        raise PageRegistryError(f"{where}: answer_deadline_hours must not be negative")
    mode = str(row.get("deadline_mode") or "working").strip()
    if mode not in DEADLINE_MODES:
        raise PageRegistryError(f"{where}: deadline_mode must be one of {DEADLINE_MODES}")
    connector = _optional_str(row, "connector")
    if connector is not None and connector not in CONNECTORS:
        raise PageRegistryError(f"{where}: connector must be one of {CONNECTORS}")
    try:
        vk_rate = float(row["vk_rate"]) if row.get("vk_rate") not in (None, "") else None
        discussion = row.get("telegram_discussion_id")
        discussion_id = int(discussion) if discussion not in (None, "") else None
    except (TypeError, ValueError):
        raise PageRegistryError(
            f"{where}: vk_rate must be a number and telegram_discussion_id an integer chat id"
        ) from None
    if vk_rate is not None and vk_rate <= 0:
        raise PageRegistryError(f"{where}: vk_rate must be positive")
    return Page(
        page_id=page_id,
        platform=str(row.get("platform") or page_id.split(":", 1)[0]),
        name=str(row.get("name") or page_id),
        municipality=str(row.get("municipality") or "не указано"),
        category=str(row.get("category") or "не указано"),
        answer_deadline_hours=deadline_hours,
        deadline_mode=mode,
        connector=connector,
        vk_confirmation=_optional_str(row, "vk_confirmation"),
        vk_secret_env=_optional_str(row, "vk_secret_env"),
        vk_token_env=_optional_str(row, "vk_token_env"),
        vk_rate=vk_rate,
        telegram_discussion_id=discussion_id,
    )


def _optional_str(row: dict, name: str) -> str | None:
    value = row.get(name)
    if value in (None, ""):
        return None
    return str(value).strip()
