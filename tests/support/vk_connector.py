"""Shared helpers of the VK tests: a scenario wall for the fake API, in-memory cursors and
sends, Callback API bodies and raw-topic payloads (from the one builder), a broker that can be
cut off."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time
import uuid
from typing import Any

from services.broker import free_port, tansu_binary
from services.sample import vk_payloads as vk
from tests.support.fake_vk import FakeVk

OWNER = -2100001
BASE_DATE = 1795593600
CITIZENS = [100000 + i for i in range(40)]
SECRET_A = "s3cr3t-a-value"  # the Callback API secret of community 2100001 in these tests


def callback_comment(group_id: int = 2100001, event_id: str = "e" * 40, secret: str | None = SECRET_A,
                     text: str = "Когда вывезут мусор?") -> bytes:
    """The body VK posts for a new comment (with `secret` unless None)."""
    payload = vk.envelope("wall_reply_new", -group_id, event_id,
                          vk.comment(-group_id, 15, 3, 123456789, BASE_DATE, text))
    if secret is not None:
        payload["secret"] = secret
    return json.dumps(payload, ensure_ascii=False).encode()


class MemoryCursors:
    """The CursorStore interface (get / commit) in memory, with a log of commits."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.commits: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def commit(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))
        self.commits.append(key)


class Sent:
    """A `send(page_id, payloads)` that keeps everything in order."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []

    async def __call__(self, page_id: str, payloads: list[bytes]) -> None:
        self.items.extend((page_id, p) for p in payloads)

    def payloads(self) -> list[dict]:
        return [json.loads(p) for _, p in self.items]


def build_250(fake: FakeVk, owner: int = OWNER) -> dict[str, set[int]]:
    """3 posts with 250 comments: long top levels (paging), short and long threads.

    post 1: 130 top-level comments (2 pages), 5 of them with 3 replies each (inline threads)
    post 2: 40 top-level comments, one thread of 25 replies (> 10: read by comment_id),
            replies to replies included
    post 3: 30 top-level comments and 10 replies spread over threads (the page answers some)
    Returns {"posts": ids, "comments": ids, "p1", "p2": post ids, "long_root": the long
    thread's top-level comment}.
    """
    date = BASE_DATE
    posts, comments = set(), set()

    def comment(post, text, reply_to=None, from_id=None):
        nonlocal date
        date += 7
        cid = fake.add_comment(owner, post, text, date,
                               from_id if from_id is not None else CITIZENS[len(comments) % 40],
                               reply_to=reply_to)
        comments.add(cid)
        return cid

    p1 = fake.add_post(owner, "Отключение воды на Советской", BASE_DATE - 3600)
    posts.add(p1)
    for i in range(130):
        cid = comment(p1, f"Когда дадут воду? дом {i}")
        if i % 26 == 0:
            for j in range(3):
                comment(p1, f"ответ {j} на {i}", reply_to=cid)
    p2 = fake.add_post(owner, "Ремонт дороги", BASE_DATE - 1800)
    posts.add(p2)
    root = comment(p2, "Дорогу опять раскопали")
    previous = root
    for j in range(25):
        previous = comment(p2, f"в ветке {j}", reply_to=previous if j % 2 else root)
    for i in range(39):
        comment(p2, f"мнение {i}")
    p3 = fake.add_post(owner, "Вывоз мусора", BASE_DATE - 900)
    posts.add(p3)
    tops = [comment(p3, f"вопрос {i}?") for i in range(30)]
    for j in range(10):
        comment(p3, f"Ответ администрации {j}", reply_to=tops[j * 3], from_id=owner)
    assert len(comments) == 250, len(comments)
    return {"posts": posts, "comments": comments, "p1": p1, "p2": p2, "long_root": root}


# --- a broker that can be cut off -----------------------------------------------------------


class CuttableBroker:
    """A private in-memory Tansu reachable only through a TCP proxy that can be cut.

    Tansu advertises the proxy's address, so every client connection (bootstrap and
    partition leader) goes through it; `cut()` drops every connection and refuses new ones
    (Kafka "stopped" for its clients, its data kept), `restore()` listens again. The proxy
    runs an asyncio loop in its own thread, so sync and async tests can both use it. The
    session broker is not used: it is in-memory and must not be stopped.
    """

    def __init__(self) -> None:
        self.broker_port = free_port()
        self.proxy_port = free_port()
        self.process: subprocess.Popen | None = None
        self._server = None
        self._transports: set = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.proxy_port}"

    def start(self) -> CuttableBroker:
        self.process = subprocess.Popen(
            [str(tansu_binary()), "broker",
             "--listener-url", f"tcp://127.0.0.1:{self.broker_port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{self.proxy_port}",
             "--cluster-id", f"cut-{uuid.uuid4().hex[:8]}",
             "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.broker_port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("private Tansu did not start") from None
                time.sleep(0.1)
        self._thread.start()
        self.restore()
        return self

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _pipe(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _accept(self, client_reader, client_writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.broker_port)
        except OSError:
            client_writer.close()
            return
        pair = {client_writer.transport, up_writer.transport}
        self._transports |= pair
        await asyncio.gather(self._pipe(client_reader, up_writer),
                             self._pipe(up_reader, client_writer))
        self._transports -= pair

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def _restore(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.proxy_port,
                                                  reuse_address=True)

    def cut(self) -> None:
        """Kafka unreachable: listener closed, open connections dropped."""
        self._run(self._cut())

    def restore(self) -> None:
        """Kafka reachable again (same broker, same data)."""
        self._run(self._restore())

    def stop(self) -> None:
        if self._thread.is_alive():
            self.cut()
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


async def read_topic(bootstrap: str, topic: str, timeout: float = 20.0) -> list:
    """Every record of `topic` from the beginning up to its current end offsets."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                group_id=None, fetch_max_wait_ms=100)
    await consumer.start()
    records: list = []
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not tps:
            return records
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, f"reading {topic} timed out"
            for batch in (await consumer.getmany(*tps, timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def create_topic(bootstrap: str, topic: str, partitions: int = 4) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


def vk_comment(owner: int, item_id: int, at: int, text: str, from_id: int,
               reply_to: int | None = None, reply_to_user: int | None = None) -> bytes:
    """A new comment under post 501 of `owner` as the raw topic carries it (a random event id)."""
    obj = vk.comment(owner, item_id, 501, from_id, at, text, reply_to_comment=reply_to,
                     reply_to_user=reply_to_user)
    return vk.dumps(vk.envelope("wall_reply_new", owner, uuid.uuid4().hex, obj)).encode()
