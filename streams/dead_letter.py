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


class DeadLetterLimitExceeded(RuntimeError):
    """Too many invalid payloads in a row: most likely a bad deploy or a wrong topic."""


class DeadLetterLimit:
    """Halt instead of dead-lettering all traffic (arroyo's DlqLimit, by consecutive count).

    A few malformed payloads are normal and go to the dead-letter topic; `max_consecutive`
    invalid payloads in a row mean the input or the normaliser is broken, and the worker
    should stop (offsets of the last ones stay uncommitted) so an operator looks. 0 = no limit.
    """

    def __init__(self, max_consecutive: int) -> None:
        self.max_consecutive = max_consecutive
        self.consecutive = 0

    def valid(self) -> None:
        self.consecutive = 0

    def invalid(self, error: InvalidPayload) -> None:
        """Count one more invalid payload; raises once the limit is reached."""
        self.consecutive += 1
        if self.max_consecutive and self.consecutive >= self.max_consecutive:
            raise DeadLetterLimitExceeded(
                f"{self.consecutive} invalid payloads in a row (last: {error}); stopping "
                "instead of dead-lettering all traffic. Check the producer and the topic, "
                "then restart; raise DOZOR_DEAD_LETTER_MAX_CONSECUTIVE if this is expected"
            )
