"""`dozor demo` end to end: its own embedded broker, a worker, the sample, Ctrl-C stops all."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.broker


def test_demo_runs_the_sample_and_ctrl_c_stops_everything(tiny_model_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOZOR_")}
    env.update(DOZOR_MODEL=str(tiny_model_dir), DOZOR_METRICS_PORT="0", PYTHONUNBUFFERED="1")
    log = tmp_path / "demo.out"
    with log.open("w") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "demo", "--rate", "200"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
        total = sum(1 for line in (REPO / "services/sample/vk_events.jsonl").read_bytes()
                    .splitlines() if line.strip())
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and f"{total}/{total}" not in log.read_text():
            assert demo.poll() is None, log.read_text()[-3000:]
            time.sleep(1)
        time.sleep(3)
        demo.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert demo.wait(timeout=60) == 0
    text = log.read_text()
    assert f"{total}/{total} событий VK отправлено" in text
    assert "Страницы, требующие внимания" in text and "Последние сигналы модераторам" in text
    assert "Воркер остановлен" in text and "Брокер остановлен" in text
    port = int(re.search(r"127\.0\.0\.1:(\d+) \(встроенный Tansu", text).group(1))
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
