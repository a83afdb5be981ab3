"""Session fixtures: a real Kafka-protocol broker, checkpoints built on the fly, workers.

Kafka tests run against the embedded Tansu broker started here on a random port, or
against any real Kafka when DOZOR_TEST_KAFKA_BOOTSTRAP gives its address. Each test gets its
own topic names and consumer group, so tests share one broker without seeing each other.
Shared helpers (not fixtures) live in tests/support/.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from services.broker import EmbeddedBroker, free_port
from tests.support.checkpoints import build_random_checkpoint
from tests.support.worker import WorkerProcess, worker_environment

UNIT = Path(__file__).resolve().parent / "unit"
# fixture -> the marker of the heavy need it brings (pyproject.toml lists the markers)
NEEDS = {"kafka_bootstrap": "broker", "pg_url": "postgres", "_engines": "postgres"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark each test by what it needs (`-m "not broker and not postgres"` leaves them out);
    tests/unit is the pure tier: a test there that needs either is an error."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        needs = {mark for fixture, mark in NEEDS.items() if fixture in fixtures}
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "fresh_database" in fixtures and "postgresql" in params.values():
            needs.add("postgres")
        for mark in sorted(needs):
            item.add_marker(mark)
        if needs and UNIT in item.path.parents:
            raise pytest.UsageError(f"{item.nodeid} needs {', '.join(sorted(needs))}: "
                                    "tests/unit holds pure tests only")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory) -> str:
    external = os.environ.get("DOZOR_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as broker:
        yield broker.bootstrap


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random-weight checkpoint (question, negative, toxic) saved with save_pretrained."""
    return build_random_checkpoint(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture
def worker_factory(kafka_bootstrap, tiny_model_dir, tmp_path):
    """`worker_factory(env={...}, prefix=None)` → a started WorkerProcess; stopped after."""
    started: list[WorkerProcess] = []
    default_prefix = f"t{uuid.uuid4().hex[:8]}"

    def factory(env: dict[str, str] | None = None, prefix: str | None = None) -> WorkerProcess:
        prefix = prefix or default_prefix
        port = free_port()
        full_env = worker_environment(
            kafka_bootstrap, tiny_model_dir, tmp_path / f"data{len(started)}", prefix, port
        )
        full_env.update(env or {})
        worker = WorkerProcess(
            env=full_env, log_path=tmp_path / f"worker{len(started)}.log", metrics_port=port,
            topics={name: full_env[f"DOZOR_TOPIC_{name.upper()}"] for name in
                    ("raw_vk", "events", "classified", "flags", "dead_letters")},
        )
        started.append(worker)
        return worker.start()

    yield factory
    for worker in started:
        worker.stop()
