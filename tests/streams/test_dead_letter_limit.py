"""A stream of nothing but garbage stops the worker instead of filling the dead-letter topic."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.replay import replay_lines
from tests.support.kafka import consume_json

pytestmark = pytest.mark.broker


def test_worker_halts_after_too_many_invalid_payloads_in_a_row(worker_factory, kafka_bootstrap):
    worker = worker_factory(env={"DOZOR_DEAD_LETTER_MAX_CONSECUTIVE": "5"})
    garbage = [b"{not json %d" % i for i in range(20)]
    asyncio.run(replay_lines(kafka_bootstrap, worker.topics["raw_vk"], garbage))
    deadline = time.monotonic() + 90
    while worker.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert worker.process.poll() is not None, "the worker kept dead-lettering everything"
    assert worker.process.returncode != 0
    assert "invalid payloads in a row" in worker.logs(tail=None), worker.logs()
    dead = consume_json(kafka_bootstrap, worker.topics["dead_letters"], timeout=5)
    assert len(dead) < len(garbage)
