"""Dead-letter records: the reason, where the payload came from, and its original bytes."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from streams.normalize.errors import InvalidPayload


def dead_letter_record(
    raw: bytes,
    error: InvalidPayload,
    *,
    topic: str,
    partition: int | None,
    offset: int | None,
    platform: str,
) -> dict[str, Any]:
    """The `dozor.dead-letters` message for one payload that could not be normalised.

    The original bytes travel base64-encoded (exactly as received) and, where they are text,
    also readable, so an operator can fix and replay them.
    """
    try:
        text: str | None = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {
        "reason": error.reason,
        "detail": error.detail,
        "platform": platform,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "received_at": time.time(),
        "payload_base64": base64.b64encode(raw).decode("ascii"),
        "payload_text": text,
    }


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode()
