"""The `process` agent's input messages → `InputRecord`s, without Faust.

A raw payload (VK or Telegram, by its topic) goes through `streams.process.Normalizer`: a
canonical event, a dead letter (invalid: its reason, where it came from and its bytes, sent
with the batch's outputs so its offset is committed only after that), or nothing (well-formed,
but not tracked: counted). A clock-topic message is a tick. The agent (streams/app.py) hands
each message's coordinates and bytes in and gets the batch's records, dead letters and metric
changes back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.dead_letter import DeadLetterLimit, dead_letter_record, encode
from streams.normalize import InvalidPayload
from streams.process import DEAD_LETTERS, InputRecord, MetricChange, Normalizer, Send
from streams.ticks import TICK_KEY, parse_tick

log = logging.getLogger(__name__)


@dataclass
class DecodedBatch:
    """What a batch of input messages became: records for the step, dead letters to publish
    with its outputs, metric changes (dead letters, ignored updates)."""

    records: list[InputRecord] = field(default_factory=list)
    dead_letters: list[Send] = field(default_factory=list)
    metrics: list[MetricChange] = field(default_factory=list)


class InputDecoder:
    """Decodes the messages of the raw topics (`platforms`: topic → "vk" / "telegram") and of
    the clock topic. Keeps one DeadLetterLimit per platform: valid VK traffic must not hide a
    broken Telegram input."""

    def __init__(self, normalizer: Normalizer, platforms: Mapping[str, str],
                 dead_letter_max_consecutive: int) -> None:
        self.normalizer = normalizer
        self.platforms = dict(platforms)
        self.limits = {platform: DeadLetterLimit(dead_letter_max_consecutive)
                       for platform in set(self.platforms.values())}

    def add(self, batch: DecodedBatch, topic: str, partition: int, offset: int,
            key: bytes | None, value: bytes | None, ref: Any = None) -> None:
        """Decode one message into `batch`. Raises DeadLetterLimitExceeded after too many
        invalid payloads in a row on one platform (a misconfiguration, not bad input)."""
        platform = self.platforms.get(topic)
        if platform is None:
            tick = self._tick(topic, partition, offset, key, value)
            if tick is not None:
                batch.records.append(InputRecord(partition, offset, tick, ref=ref))
            return
        raw = bytes(value or b"")
        limit = self.limits[platform]
        try:
            canonical = self.normalizer(platform, raw)
            limit.valid()
        except InvalidPayload as error:
            limit.invalid(error)
            record = dead_letter_record(raw, error, topic=topic, partition=partition,
                                        offset=offset, platform=platform)
            batch.dead_letters.append(Send(DEAD_LETTERS, key or b"", encode(record)))
            batch.metrics.append(MetricChange("dead_letters", (("reason", error.reason),)))
            log.warning("dead letter %s at %s:%s:%s", error, topic, partition, offset)
            return
        if canonical is None:  # well-formed, but nothing Dozor tracks
            batch.metrics.append(MetricChange("ignored_updates", (("platform", platform),)))
            return
        batch.records.append(InputRecord(partition, offset, canonical, f"{topic}:{partition}", ref))

    @staticmethod
    def _tick(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None):
        where = f"{topic}:{partition}:{offset}"
        if key != TICK_KEY:
            log.error("not a clock tick at %s", where)
            return None
        try:
            return parse_tick(value or b"")
        except (ValueError, TypeError, KeyError) as exc:
            log.error("undecodable clock tick at %s: %s", where, exc)
            return None
