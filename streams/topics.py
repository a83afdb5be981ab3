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
    classified: str = "dozor.classified"
    flags: str = "dozor.flags"
    dead_letters: str = "dozor.dead-letters"
    flag_updates: str = "dozor.flag-updates"

    def all(self) -> list[str]:
        return [
            self.raw_vk, self.raw_telegram, self.events, self.classified, self.flags,
            self.dead_letters, self.flag_updates,
        ]


async def ensure_topics(
    bootstrap: str, names: list[str], partitions: int, replication: int = 1,
    timeout: float = 30.0,
) -> None:
    """Create the topics that do not exist yet (idempotent)."""
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
    finally:
        await admin.close()
