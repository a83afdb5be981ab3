"""Topic names and their creation."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


@dataclass(frozen=True)
class TopicNames:
    """Every topic Dozor reads or writes."""

    raw_vk: str = "dozor.raw.vk"
    raw_telegram: str = "dozor.raw.telegram"
    events: str = "dozor.events"
    clock: str = "dozor.clock"
    classified: str = "dozor.classified"
    flags: str = "dozor.flags"
    dead_letters: str = "dozor.dead-letters"
    flag_updates: str = "dozor.flag-updates"

    def inputs(self) -> list[str]:
        """What the worker's `process` agent reads: one partition number owns a page in all."""
        return [self.raw_vk, self.raw_telegram, self.clock]

    def all(self) -> list[str]:
        return [
            self.raw_vk, self.raw_telegram, self.events, self.clock, self.classified,
            self.flags, self.dead_letters, self.flag_updates,
        ]


def partition_mismatch(counts: dict[str, int], names: list[str]) -> str | None:
    """None when the topics `names` have the same number of partitions (`counts`), else what
    is wrong and what to do."""
    found = {name: counts[name] for name in names if counts.get(name)}  # unknown: not checked
    if len(set(found.values())) <= 1:
        return None
    listed = ", ".join(f"{name}: {n}" for name, n in found.items())
    return (f"the worker's input topics must have the same number of partitions ({listed}): "
            "a page's raw records, its clock ticks and its state are matched by partition "
            "number. Usually the raw topics were auto-created with the broker's default: set "
            "DOZOR_TOPIC_PARTITIONS to their count and delete the clock topic (it holds only "
            "ticks; the worker creates it again), or add partitions to the raw topics "
            "(kafka-topics.sh --alter --partitions N) before any page has state.")


async def ensure_topics(
    bootstrap: str, names: list[str], partitions: int, replication: int = 1,
    timeout: float = 30.0,
) -> dict[str, int]:
    """Create the topics that do not exist yet (idempotent); returns each one's partition
    count as the broker reports it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await admin.start()
            break
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        for name in missing:
            try:
                await admin.create_topics(
                    [NewTopic(name, num_partitions=partitions, replication_factor=replication)]
                )
            except TopicAlreadyExistsError:
                pass
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in described if t["partitions"]}
