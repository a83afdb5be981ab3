"""Shared by every connector: produce raw platform payloads to Kafka and wait for the ack.

Usage (one per process, started once, stopped at shutdown)::

    producer = RawProducer(settings.kafka_bootstrap, ack_timeout=10.0)
    await producer.start()
    await producer.send(settings.topic_raw_vk, page_id, raw_bytes)         # one payload
    await producer.send_many(topic, [(page_id, raw1), (page_id, raw2)])     # a batch, in order
    await producer.stop()

Rules this module enforces so that the connectors keep the delivery guarantees:

- The value is the payload's bytes exactly as the platform sent them (or, for pollers, the
  Callback-shaped JSON the poller built). The key is the page id (``vk:-170001``,
  ``telegram:-100123``), utf-8, so one page's payloads keep their order in one partition.
- `send` / `send_many` return only after the broker acknowledged every message (acks=all).
  Anything else raises `ProduceFailed` — the caller must then NOT confirm the payload
  upstream (no "ok" to VK, no cursor/offset commit), so the platform or the next round sends
  it again. A message whose ack timed out may still arrive later: the copy sent again is
  de-duplicated by the worker (canonical event ids are content-based), never lost.
- `enable_idempotence` stays off: Tansu does not support idempotent producers, and repeats
  are handled downstream anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)


class ProduceFailed(RuntimeError):
    """Kafka did not acknowledge a payload in time (broker down, unreachable, refused)."""


class RawProducer:
    """An aiokafka producer that sends raw payloads keyed by page id and awaits the acks."""

    def __init__(
        self,
        bootstrap: str,
        ack_timeout: float = 10.0,
        request_timeout_ms: int = 8000,
        client_id: str = "dozor-ingest",
    ) -> None:
        self.bootstrap = bootstrap
        self.ack_timeout = ack_timeout
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=5,
            request_timeout_ms=request_timeout_ms,
            # reconnect quickly after a broker outage (the default backoff is fine; keep
            # metadata fresh so a moved partition leader is found)
            metadata_max_age_ms=30000,
            client_id=client_id,
        )
        self._started = False

    async def start(self, retry_for: float = 0.0) -> None:
        """Connect to the broker; with `retry_for` > 0 keep trying that many seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + retry_for
        while True:
            try:
                await self._producer.start()
                self._started = True
                return
            except KafkaError as exc:
                if loop.time() >= deadline:
                    raise ProduceFailed(f"Kafka at {self.bootstrap} unreachable: {exc}") from exc
                log.warning("Kafka at %s unreachable (%s); retrying", self.bootstrap, exc)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        """Flush what is pending and disconnect."""
        if self._started:
            self._started = False
            await self._producer.stop()

    async def send(self, topic: str, page_id: str, value: bytes) -> None:
        """Produce one payload keyed by `page_id` and wait for its acknowledgement."""
        await self.send_many(topic, [(page_id, value)])

    async def send_many(self, topic: str, items: Iterable[tuple[str, bytes]]) -> int:
        """Produce payloads (in order) and wait until all are acknowledged; returns how many.

        Raises ProduceFailed if any one is not acknowledged within `ack_timeout` seconds (or
        the broker refused it); some of the batch may then be stored and will be sent again
        by the caller's retry, which the worker de-duplicates.
        """
        items = list(items)
        if not items:
            return 0
        try:
            async with asyncio.timeout(self.ack_timeout):
                futures = [
                    await self._producer.send(topic, value=value, key=page_id.encode())
                    for page_id, value in items
                ]
                await asyncio.gather(*futures)
        except (TimeoutError, KafkaError) as exc:
            raise ProduceFailed(
                f"Kafka did not acknowledge {len(items)} payload(s) to {topic}: "
                f"{type(exc).__name__} {exc}"
            ) from exc
        return len(items)
