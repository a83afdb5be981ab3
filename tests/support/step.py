"""Tables as plain dicts for the in-process batch step (streams/process.py)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from streams.process import TableWrite


def store_writes(tables: dict[str, dict], writes: Iterable[TableWrite]) -> None:
    """Apply a batch's table writes as the agent does; values go through JSON as a changelog
    would carry them."""
    for write in writes:
        tables[write.table][write.key] = (
            write.value if isinstance(write.value, bytes)  # pages: as stored
            else json.loads(json.dumps(write.value)))
