"""The canonical event every platform payload is normalised into."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from streams.plain import known_fields, scalars_to_dict


@dataclass(frozen=True)
class CanonicalEvent:
    """One post or comment action on one page, whatever platform it came from."""

    event_id: str
    platform: str
    kind: str
    action: str
    page_id: str
    item_id: str
    thread_id: str
    parent_id: str | None
    reply_to_user: str | None
    author_id: str
    by_page: bool
    text: str
    created_at: float
    url: str

    @property
    def item_key(self) -> str:
        """Identity of the item (post or comment) across its actions."""
        return f"{self.page_id}:{self.kind}:{self.item_id}"

    def to_dict(self) -> dict[str, Any]:
        return scalars_to_dict(self)

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False).encode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CanonicalEvent:
        return cls(**known_fields(cls, data))


def make_event_id(*parts: object) -> str:
    """A deterministic id: the same platform item, action and content give the same id.

    Used for de-duplication: a payload delivered twice (VK retries callbacks, a poller
    overlaps a webhook) normalises to the same id.
    """
    digest = hashlib.sha1("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return digest[:24]


def text_digest(text: str) -> str:
    """A short digest of an item's text, a part of its event id (an edit is a new event)."""
    return hashlib.sha1(text.encode()).hexdigest()[:12]
