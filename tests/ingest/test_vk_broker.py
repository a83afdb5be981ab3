"""VK connectors against a real Kafka-protocol broker: cursors, a Kafka outage during a
callback (private Tansu behind a cuttable proxy) and a SIGKILLed poller that resumes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from services.broker import free_port
from services.ingest.cursors import CursorStore, read_cursors
from services.ingest.metrics import IngestMetrics
from services.ingest.producer import RawProducer
from services.ingest.secrets import Secrets
from services.ingest.vk_callback import serve
from services.settings import Settings
from streams.normalize.vk import normalize_vk_bytes
from streams.pages import Page, PageRegistry
from tests.support.observe import metric_samples, wait_for
from tests.support.worker import REPO, WorkerProcess, worker_environment
from tests.support.vk_connector import (
    OWNER, SECRET_A, CuttableBroker, build_250, callback_comment, create_topic, read_topic)
from tests.support.fake_vk import FakeVk

pytestmark = pytest.mark.broker


def prefix() -> str:
    return f"vk{uuid.uuid4().hex[:8]}"


async def test_cursors_are_durable_and_the_last_value_wins(kafka_bootstrap):
    topic = f"{prefix()}.cursors"
    producer = RawProducer(kafka_bootstrap)
    await producer.start()
    try:
        store = CursorStore(kafka_bootstrap, topic, producer)
        assert await store.load() == {}
        await store.commit("vk-poll:vk:-1", {"post_id": 1})
        await store.commit("vk-poll:vk:-2", {"post_id": 7})
        await store.commit("vk-poll:vk:-1", {"post_id": 3})
    finally:
        await producer.stop()
    assert await read_cursors(kafka_bootstrap, topic) == {
        "vk-poll:vk:-1": {"post_id": 3}, "vk-poll:vk:-2": {"post_id": 7}}
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    configs = {entry["config_names"]: entry["config_value"]
               for response in described for resource in response.to_object()["resources"]
               for entry in resource["config_entries"]}
    assert configs.get("cleanup.policy") == "compact"


async def _callback_through_an_outage(broker: CuttableBroker, topic: str) -> dict:
    settings = Settings(kafka_bootstrap=broker.bootstrap, topic_raw_vk=topic,
                        vk_callback_host="127.0.0.1", vk_callback_port=free_port())
    registry = PageRegistry([Page(page_id=f"vk:{OWNER}", platform="vk", name="п",
                                  municipality="м", category="к", connector="vk-callback",
                                  vk_confirmation="c0nf", vk_secret_env="VK_A")])
    secrets = Secrets({}, environ={"VK_A": SECRET_A})
    metrics = IngestMetrics()
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(settings, registry, secrets, metrics, stop, ready,
                                     ack_timeout=2.0))
    await asyncio.wait_for(ready.wait(), 30)
    url = f"http://127.0.0.1:{settings.vk_callback_port}/vk/callback"
    first = callback_comment(event_id="a" * 40, text="Первый вопрос?")
    retried = callback_comment(event_id="b" * 40, text="Когда починят свет во дворе?")
    answers = {}
    try:
        async with httpx.AsyncClient(timeout=20) as http:
            answers["before"] = (await http.post(url, content=first)).text
            broker.cut()
            during = await http.post(url, content=retried)
            answers["during"] = (during.status_code, during.text)
            broker.restore()
            # VK retries until it gets "ok"; the producer needs a moment to reconnect
            for attempt in range(30):
                response = await http.post(url, content=retried)
                if response.text == "ok":
                    break
                await asyncio.sleep(0.5)
            answers["retry"] = (response.status_code, response.text, attempt)
    finally:
        stop.set()
        await task
    return answers


def test_kafka_outage_during_a_callback_ends_with_one_canonical_event(tmp_path, tiny_model_dir):
    broker = CuttableBroker().start()
    worker = None
    try:
        name = prefix()
        topic = f"{name}.raw.vk"
        asyncio.run(create_topic(broker.bootstrap, topic))
        answers = asyncio.run(_callback_through_an_outage(broker, topic))
        assert answers["before"] == "ok"
        assert answers["during"][0] == 503 and answers["during"][1] != "ok"
        assert answers["retry"][:2] == (200, "ok")
        raw = asyncio.run(read_topic(broker.bootstrap, topic))
        assert {r.key for r in raw} == {f"vk:{OWNER}".encode()}
        events = [normalize_vk_bytes(r.value) for r in raw]
        # the refused request may still have reached the broker later: then it is there twice
        assert 2 <= len(raw) <= 3 and len({e.event_id for e in events}) == 2

        port = free_port()
        env = worker_environment(broker.bootstrap, tiny_model_dir, tmp_path / "data", name, port)
        worker = WorkerProcess(env=env, log_path=tmp_path / "worker.log", metrics_port=port)
        worker.start()
        labels = (("action", "new"), ("kind", "comment"), ("platform", "vk"))
        wait_for(lambda: metric_samples(worker.metrics(), "dozor_events_total").get(labels) == 2
                 and (metric_samples(worker.metrics(), "dozor_duplicate_events_total")
                      .get((), 0) == len(raw) - 2),
                 timeout=60, message="two canonical events, repeats dropped")
        assert metric_samples(worker.metrics(), "dozor_events_total")[labels] == 2
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()


def _poller_env(kafka_bootstrap: str, fake: FakeVk, tmp_path: Path, name: str) -> dict:
    pages = tmp_path / "pages.yaml"
    pages.write_text(
        "pages:\n"
        f"  - page_id: 'vk:{OWNER}'\n    name: Тестовая\n    connector: vk-poll\n"
        "    vk_token_env: VK_POLL_TOKEN\n    vk_rate: 20\n"
        "  - page_id: 'vk:-42'\n    name: Отозванный токен\n    connector: vk-poll\n"
        "    vk_token_env: VK_REVOKED\n",
        encoding="utf-8",
    )
    secrets = tmp_path / "secrets.env"
    secrets.write_text("VK_REVOKED=revoked-token\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOZOR_")}
    env.update(
        PYTHONUNBUFFERED="1", VK_POLL_TOKEN="poll-token",
        DOZOR_KAFKA_BOOTSTRAP=kafka_bootstrap, DOZOR_PAGES_FILE=str(pages),
        DOZOR_SECRETS_FILE=str(secrets), DOZOR_VK_API_URL=fake.url,
        DOZOR_TOPIC_RAW_VK=f"{name}.raw.vk", DOZOR_TOPIC_INGEST_CURSORS=f"{name}.cursors",
        DOZOR_INGEST_METRICS_PORT=str(free_port()),
    )
    return env


def test_a_sigkilled_poller_resumes_from_its_cursor_without_duplicates(kafka_bootstrap, tmp_path):
    name = prefix()
    with FakeVk() as fake:
        expected = build_250(fake)
        fake.wall(-42)
        fake.revoke("revoked-token")
        env = _poller_env(kafka_bootstrap, fake, tmp_path, name)
        command = [sys.executable, "-m", "services.cli", "--log-level", "info",
                   "ingest", "vk-poll", "--once"]
        asyncio.run(create_topic(kafka_bootstrap, f"{name}.raw.vk"))
        # slow answers open a window between post 1's commit and post 2's comments
        fake.delay = 1.0
        log = open(tmp_path / "poll1.log", "wb")
        first = subprocess.Popen(command, cwd=REPO, env=env, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)

        def post1_committed():
            assert first.poll() is None, (tmp_path / "poll1.log").read_text()
            cursor = asyncio.run(read_cursors(kafka_bootstrap, f"{name}.cursors"))
            posts = cursor.get(f"vk-poll:vk:{OWNER}", {}).get("posts", {})
            return posts.get(str(expected["p1"]), {}).get("max_id", 0) > 0

        wait_for(post1_committed, timeout=40, interval=0.2, message="post 1 committed")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        log.close()
        after_kill = asyncio.run(read_topic(kafka_bootstrap, f"{name}.raw.vk"))
        assert 3 + 145 <= len(after_kill) < 253

        fake.delay = 0.0
        second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=60)
    assert second.returncode == 1, second.stdout + second.stderr  # the revoked page failed
    assert f"vk:{OWNER}\tсобытий: {253 - len(after_kill)}" in second.stdout
    assert "vk:-42\tошибка: токен недействителен или отозван (ошибка 5)" in second.stdout
    raw = asyncio.run(read_topic(kafka_bootstrap, f"{name}.raw.vk"))
    events = [normalize_vk_bytes(r.value) for r in raw]
    ids = [e.event_id for e in events]
    assert len(ids) == 253 and len(set(ids)) == 253  # all of them, none twice
    assert {int(e.item_id) for e in events} == expected["posts"] | expected["comments"]
    assert "poll-token" not in second.stdout + second.stderr
    assert "revoked-token" not in second.stdout + second.stderr


def test_dozor_ingest_vk_callback_serves_vk_and_its_metrics(kafka_bootstrap, tmp_path):
    """The command as deployed: settings from the environment, /metrics on its own port."""
    name = prefix()
    pages = tmp_path / "pages.yaml"
    pages.write_text(f"pages:\n  - {{page_id: 'vk:{OWNER}', name: П, connector: vk-callback, "
                     "vk_confirmation: 'c0nf1rm', vk_secret_env: VK_CB_SECRET}\n",
                     encoding="utf-8")
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOZOR_")}
    env.update(PYTHONUNBUFFERED="1", VK_CB_SECRET=SECRET_A,
               DOZOR_KAFKA_BOOTSTRAP=kafka_bootstrap, DOZOR_PAGES_FILE=str(pages),
               DOZOR_TOPIC_RAW_VK=f"{name}.raw.vk", DOZOR_VK_CALLBACK_HOST="127.0.0.1",
               DOZOR_VK_CALLBACK_PORT=str(port), DOZOR_METRICS_HOST="127.0.0.1",
               DOZOR_INGEST_METRICS_PORT=str(metrics_port))
    log_path = tmp_path / "callback.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "ingest", "vk-callback"], cwd=REPO, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/vk/callback"

        def confirmed():
            assert process.poll() is None, log_path.read_text()
            return httpx.post(url, json={"type": "confirmation", "group_id": -OWNER}).text

        assert wait_for(confirmed, timeout=30, message="vk-callback up") == "c0nf1rm"
        body = callback_comment(event_id="c" * 40)
        assert httpx.post(url, content=body).text == "ok"
        assert httpx.post(url, content=callback_comment(secret="nope")).status_code == 403
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        requests = metric_samples(metrics, "dozor_ingest_requests_total")
        assert requests[(("connector", "vk-callback"), ("outcome", "ok"))] == 1
        assert requests[(("connector", "vk-callback"), ("outcome", "forbidden"))] == 1
        assert requests[(("connector", "vk-callback"), ("outcome", "confirmation"))] >= 1
        raw = asyncio.run(read_topic(kafka_bootstrap, f"{name}.raw.vk"))
        assert [(r.key, r.value) for r in raw] == [(f"vk:{OWNER}".encode(), body)]
        assert SECRET_A not in log_path.read_text() and "nope" not in log_path.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, log_path.read_text()


async def test_the_poller_loops_rounds_until_stopped(kafka_bootstrap):
    """Without --once: a round every DOZOR_VK_POLL_INTERVAL_SECONDS, new items each time."""
    from services.ingest.vk_poll import run_poller

    name = prefix()
    with FakeVk() as fake:
        post = fake.add_post(OWNER, "запись", 1795593600)
        settings = Settings(kafka_bootstrap=kafka_bootstrap, vk_api_url=fake.url,
                            topic_raw_vk=f"{name}.raw.vk",
                            topic_ingest_cursors=f"{name}.cursors",
                            vk_poll_interval_seconds=0.2, vk_requests_per_second=50)
        registry = PageRegistry([Page(page_id=f"vk:{OWNER}", platform="vk", name="п",
                                      municipality="м", category="к", connector="vk-poll",
                                      vk_token_env="T")])
        metrics = IngestMetrics()
        stop = asyncio.Event()
        task = asyncio.create_task(run_poller(settings, registry, Secrets({}, {"T": "tok"}),
                                              metrics, stop=stop))
        produced = lambda: metrics.registry.get_sample_value(  # noqa: E731
            "dozor_ingest_events_total", {"platform": "vk", "type": "wall_reply_new"}) or 0
        for i in range(3):
            fake.add_comment(OWNER, post, f"комментарий {i}", 1795593700 + i, 100 + i)
            for _ in range(100):
                if produced() == i + 1:
                    break
                await asyncio.sleep(0.1)
            assert produced() == i + 1
        stop.set()
        await asyncio.wait_for(task, 20)
    raw = await read_topic(kafka_bootstrap, f"{name}.raw.vk")
    assert len(raw) == 4  # the post and three comments, each once
    cursor = (await read_cursors(kafka_bootstrap, f"{name}.cursors"))[f"vk-poll:vk:{OWNER}"]
    assert cursor["posts"][str(post)]["count"] == 3
