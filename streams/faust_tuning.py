"""Consumer settings Faust does not expose.

Faust builds its aiokafka consumer with `fetch_max_wait_ms=1500` hard-coded. Apache Kafka
answers a fetch as soon as data is there, but some Kafka-protocol brokers (Tansu, the
embedded broker of the demo and the tests) hold every fetch for the full wait, which caps
each hop of the pipeline at one batch per 1.5 s. Dozor sets the wait from
`DOZOR_CONSUMER_FETCH_MAX_WAIT_SECONDS` instead.
"""

from __future__ import annotations

from faust.transport.drivers import aiokafka as faust_aiokafka

_fetch_max_wait_ms = 1500


def set_fetch_max_wait(seconds: float) -> None:
    """Use `seconds` as the fetch wait of every Faust worker consumer in this process."""
    global _fetch_max_wait_ms
    _fetch_max_wait_ms = max(1, int(seconds * 1000))
    thread_class = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread_class._create_worker_consumer, "_dozor_patched", False):
        return
    original = thread_class._create_worker_consumer

    def _create_worker_consumer(self, transport):
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = _fetch_max_wait_ms  # read by aiokafka's Fetcher on start
        return consumer

    _create_worker_consumer._dozor_patched = True
    thread_class._create_worker_consumer = _create_worker_consumer
