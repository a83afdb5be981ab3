"""Session fixtures: a real Kafka-protocol broker, checkpoints built on the fly, workers.

Kafka tests run against the embedded Tansu broker started here on a random port, or
against any real Kafka when DOZOR_TEST_KAFKA_BOOTSTRAP gives its address. Each test gets its
own topic names and consumer group, so tests share one broker without seeing each other.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.broker import EmbeddedBroker, free_port
from tests.checkpoints import build_random_checkpoint
from services.pages_view import scrape
from tests.helpers import wait_for

REPO = Path(__file__).resolve().parent.parent


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


@dataclass
class WorkerProcess:
    """`dozor worker` running as a subprocess against the test broker."""

    env: dict[str, str]
    log_path: Path
    metrics_port: int
    process: subprocess.Popen | None = None
    topics: dict[str, str] = field(default_factory=dict)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> WorkerProcess:
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "--log-level", "info", "worker"],
            cwd=REPO, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self._metrics_up, timeout=90, message=f"worker metrics ({self.log_path})")
        return self

    def _metrics_up(self):
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited {self.process.returncode}:\n{self.logs()}")
        return "dozor_events_total" in scrape(self.metrics_url)

    def metrics(self) -> str:
        return scrape(self.metrics_url)

    def logs(self, tail: int | None = 5000) -> str:
        """The worker's log; by default only the tail, for assertion messages."""
        text = self.log_path.read_text(errors="replace")
        return text if tail is None else text[-tail:]

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit — a crash."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "log", None):
            self.log.close()


def worker_environment(
    bootstrap: str, model_dir: Path, data_dir: Path, prefix: str, port: int
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOZOR_")}
    env.update(
        PYTHONUNBUFFERED="1",
        DOZOR_KAFKA_BOOTSTRAP=bootstrap,
        DOZOR_APP_ID=prefix,
        DOZOR_TOPIC_RAW_VK=f"{prefix}.raw.vk",
        DOZOR_TOPIC_RAW_TELEGRAM=f"{prefix}.raw.telegram",
        DOZOR_TOPIC_EVENTS=f"{prefix}.events",
        DOZOR_TOPIC_CLASSIFIED=f"{prefix}.classified",
        DOZOR_TOPIC_FLAGS=f"{prefix}.flags",
        DOZOR_TOPIC_DEAD_LETTERS=f"{prefix}.dead-letters",
        DOZOR_TOPIC_FLAG_UPDATES=f"{prefix}.flag-updates",
        DOZOR_TOPIC_FEEDBACK=f"{prefix}.feedback",
        DOZOR_MODEL=str(model_dir),
        DOZOR_DATA_DIR=str(data_dir),
        DOZOR_METRICS_HOST="127.0.0.1",
        DOZOR_METRICS_PORT=str(port),
        DOZOR_BROKER_SESSION_TIMEOUT_SECONDS="3",
        DOZOR_BROKER_HEARTBEAT_SECONDS="0.5",
        DOZOR_SWEEP_INTERVAL_SECONDS="0.5",
        DOZOR_TOPIC_PARTITIONS="4",
    )
    return env


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
