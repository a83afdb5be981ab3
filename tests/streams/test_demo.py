"""`dozor demo` end to end: its own embedded broker, a worker, the moderation queue, the
sample, Ctrl-C stops all."""

from __future__ import annotations

import os
import re
import urllib.parse
import urllib.request
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.broker


MODERATION_LINE = re.compile(
    r"Очередь модерации: (http://127\.0\.0\.1:(\d+)/) — вход: (\S+) / (\S+)")


def log_in(url: str, login: str, password: str) -> str:
    """Sign in through the login form as a browser would; returns the page it lands on."""
    import http.cookiejar

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(url, timeout=10) as response:
        assert response.status == 200
        form = response.read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    body = urllib.parse.urlencode({"csrf_token": csrf, "login": login,
                                   "password": password}).encode()
    with opener.open(urllib.request.Request(f"{url}login", data=body), timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


def test_demo_runs_the_sample_and_ctrl_c_stops_everything(tiny_model_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOZOR_")}
    env.update(DOZOR_MODEL=str(tiny_model_dir), DOZOR_METRICS_PORT="0",
               DOZOR_MODERATION_PORT="0", PYTHONUNBUFFERED="1")
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
        # The moderation queue runs beside the worker: its URL answers, the printed demo
        # login signs in and lands on the queue.
        moderation = MODERATION_LINE.search(log.read_text())
        assert moderation, log.read_text()[-3000:]
        url, moderation_port, login, password = moderation.groups()
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            assert 'name="password"' in response.read().decode()
        queue = log_in(url, login, password)
        assert 'name="password"' not in queue and "Дозор" in queue
        time.sleep(3)
        demo.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert demo.wait(timeout=60) == 0
    text = log.read_text()
    assert f"{total}/{total} событий VK отправлено" in text
    assert "Страницы, требующие внимания" in text and "Последние сигналы модераторам" in text
    assert "Воркер остановлен" in text and "Брокер остановлен" in text
    assert "Сервис модерации остановлен" in text
    port = int(re.search(r"127\.0\.0\.1:(\d+) \(встроенный Tansu", text).group(1))
    for closed in (port, int(moderation_port)):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", closed), timeout=1).close()
