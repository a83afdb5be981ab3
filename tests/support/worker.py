"""`dozor worker` as a subprocess of a test, against the test broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from services.pages_view import scrape
from tests.support.observe import wait_for

REPO = Path(__file__).resolve().parents[2]


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


def broker_settings() -> dict[str, str]:
    """The producer settings the test broker needs: on Tansu one record per batch, as Tansu
    hides all but the first record of a partition's last batch from Faust's table recovery
    (docs/ARCHITECTURE.md, "Delivery guarantees"); none on a real Kafka."""
    if os.environ.get("DOZOR_TEST_KAFKA_BOOTSTRAP"):
        return {}
    return {"DOZOR_PRODUCER_MAX_BATCH_BYTES": "1"}


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
        DOZOR_TOPIC_CLOCK=f"{prefix}.clock",
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
    env.update(broker_settings())
    return env
