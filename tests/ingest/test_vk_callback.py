"""The VK Callback API server: answers per community, secrets, limits, Kafka acknowledgement.

These tests run the real aiohttp application in-process with a recording `send` (no broker);
tests/ingest/test_vk_broker.py runs it against a real broker, a Kafka outage included.
"""

from __future__ import annotations

import json
import logging

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.ingest.metrics import IngestMetrics
from services.ingest.producer import ProduceFailed
from services.ingest.secrets import Secrets
from services.ingest.vk_callback import CallbackHandler, communities_from_registry, create_app
from streams.pages import Page, PageRegistry
from tests.support.vk_connector import SECRET_A, callback_comment

SECRET_B = "s3cr3t-b-value"


def registry() -> PageRegistry:
    def vk(owner, **kw):
        return Page(page_id=f"vk:{owner}", platform="vk", name=f"страница {owner}",
                    municipality="м", category="к", **kw)

    return PageRegistry([
        vk(-2100001, connector="vk-callback", vk_confirmation="a1b2c3d4", vk_secret_env="VK_A"),
        vk(-2100002, connector="vk-callback", vk_confirmation="ffee0099", vk_secret_env="VK_B"),
        vk(-2100003, connector="vk-callback", vk_confirmation="00000003", vk_secret_env="VK_NONE"),
        Page(page_id="telegram:-1001", platform="telegram", name="t", municipality="м",
             category="к", connector="telegram"),
    ])


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.down = False

    async def __call__(self, page_id: str, body: bytes) -> None:
        if self.down:
            raise ProduceFailed("broker down (test)")
        self.sent.append((page_id, body))


@pytest.fixture
async def server():
    secrets = Secrets({"VK_B": SECRET_B}, environ={"VK_A": SECRET_A})
    recorder = Recorder()
    metrics = IngestMetrics()
    handler = CallbackHandler(communities_from_registry(registry(), secrets), recorder, metrics)
    client = TestClient(TestServer(create_app(handler, max_body_bytes=4096)))
    await client.start_server()
    client.recorder, client.metrics = recorder, metrics
    yield client
    await client.close()


def outcome(client, name: str) -> float:
    value = client.metrics.registry.get_sample_value(
        "dozor_ingest_requests_total", {"connector": "vk-callback", "outcome": name})
    return value or 0.0


async def post(client, body: bytes):
    response = await client.post("/vk/callback", data=body,
                                  headers={"Content-Type": "application/json"})
    return response.status, await response.text(), response.headers.get("Content-Type", "")


async def test_confirmation_answers_each_community_its_own_string(server):
    for group, expected in ((2100001, "a1b2c3d4"), (2100002, "ffee0099")):
        body = json.dumps({"type": "confirmation", "group_id": group}).encode()
        status, text, ctype = await post(server, body)
        assert (status, text) == (200, expected)
        assert ctype.startswith("text/plain")
    assert server.recorder.sent == []
    assert outcome(server, "confirmation") == 2


async def test_event_is_ok_only_after_it_was_sent_unchanged_keyed_by_page(server):
    body = callback_comment()
    assert (await post(server, body))[:2] == (200, "ok")
    assert server.recorder.sent == [("vk:-2100001", body)]
    # the secret from the secrets file works as well as the one from the environment
    body_b = callback_comment(group_id=2100002, secret=SECRET_B)
    assert (await post(server, body_b))[:2] == (200, "ok")
    assert server.recorder.sent[-1] == ("vk:-2100002", body_b)
    value = server.metrics.registry.get_sample_value
    assert value("dozor_ingest_events_total", {"platform": "vk", "type": "wall_reply_new"}) == 2
    assert value("dozor_ingest_last_success_timestamp_seconds", {"page_id": "vk:-2100001"}) > 0


@pytest.mark.parametrize("secret", [None, "wrong", SECRET_B, ""])
async def test_wrong_or_missing_secret_is_refused_and_nothing_is_produced(server, secret, caplog):
    caplog.set_level(logging.WARNING, logger="dozor.ingest.vk_callback")
    status, _, _ = await post(server, callback_comment(secret=secret))
    assert status == 403
    assert server.recorder.sent == []
    refused = [r for r in caplog.records if "отказ" in r.getMessage()]
    assert len(refused) == 1
    assert "2100001" in refused[0].getMessage()
    for value in (SECRET_A, SECRET_B, "wrong"):
        assert value not in caplog.text
    assert outcome(server, "forbidden") == 1


async def test_a_community_whose_secret_is_not_configured_is_refused(server):
    status, _, _ = await post(server, callback_comment(group_id=2100003, secret="anything"))
    assert status == 403 and server.recorder.sent == []


async def test_unknown_community_is_refused_with_403(server, caplog):
    caplog.set_level(logging.WARNING, logger="dozor.ingest.vk_callback")
    status, _, _ = await post(server, callback_comment(group_id=999999))
    assert status == 403 and server.recorder.sent == []
    confirm = json.dumps({"type": "confirmation", "group_id": 999999}).encode()
    assert (await post(server, confirm))[0] == 403
    assert outcome(server, "unknown_page") == 2
    assert caplog.text.count("отказ 403") == 2


async def test_a_repeated_event_id_is_ok_but_produced_once(server):
    body = callback_comment()
    assert (await post(server, body))[:2] == (200, "ok")
    assert (await post(server, body))[:2] == (200, "ok")
    assert len(server.recorder.sent) == 1
    assert outcome(server, "duplicate") == 1
    # the same event id in another community is another event
    assert (await post(server, callback_comment(group_id=2100002, secret=SECRET_B)))[:2] == (200, "ok")
    assert len(server.recorder.sent) == 2


async def test_oversized_body_gets_413_and_nothing_is_produced(server):
    body = callback_comment(text="я" * 4000)  # about 8 KB of UTF-8 against a 4 KB cap
    status, _, _ = await post(server, body)
    assert status == 413 and server.recorder.sent == []
    # also without a Content-Length (chunked)
    async def chunks():
        yield body[:1000]
        yield body[1000:]
    response = await server.post("/vk/callback", data=chunks())
    assert response.status == 413 and server.recorder.sent == []
    assert outcome(server, "too_large") == 2


@pytest.mark.parametrize("body", [b'{"type": "wall_reply_new", "group_id": 2100001, ',
                                  b"[1, 2]", b'{"type": "wall_reply_new"}', b"\xff\xfe"])
async def test_invalid_json_gets_400(server, body):
    status, _, _ = await post(server, body)
    assert status == 400 and server.recorder.sent == []
    assert outcome(server, "invalid_json") == 1


async def test_kafka_unavailable_gets_503_and_the_retry_is_accepted(server):
    body = callback_comment()
    server.recorder.down = True
    status, text, _ = await post(server, body)
    assert status == 503 and text != "ok"
    server.recorder.down = False
    # VK retries the same event: it must not be taken for an already-sent duplicate
    assert (await post(server, body))[:2] == (200, "ok")
    assert server.recorder.sent == [("vk:-2100001", body)]
    value = server.metrics.registry.get_sample_value
    assert value("dozor_ingest_last_failure_timestamp_seconds", {"page_id": "vk:-2100001"}) > 0


# --- the body read to its end; raw socket clients -------------------------------------------
async def raw_request(client, head: bytes, pieces: list[bytes]) -> tuple[int, bytes]:
    """Send `head` and the body `pieces` on a raw socket, each piece flushed and followed by
    a short pause so that it leaves as its own TCP segment; return (status, body)."""
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(head)
        await writer.drain()
        for piece in pieces:
            await asyncio.sleep(0.05)  # a pause between segments (the case under test)
            writer.write(piece)
            await writer.drain()
        header = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        lines = header.decode().split("\r\n")
        fields = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        body = await asyncio.wait_for(reader.readexactly(int(fields["content-length"])), 10)
    finally:
        writer.close()
    return int(lines[0].split()[1]), body


def head(length: int | None) -> bytes:
    framing = (f"Content-Length: {length}" if length is not None
               else "Transfer-Encoding: chunked")
    return (f"POST /vk/callback HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\n{framing}\r\nConnection: close\r\n\r\n").encode()


def chunked(*parts: bytes) -> list[bytes]:
    out = [f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts]
    out[-1] += b"0\r\n\r\n"
    return out


async def test_a_body_in_two_segments_with_content_length_is_read_whole(server):
    body = callback_comment(text="Когда вывезут мусор? " * 20)
    status, text = await raw_request(server, head(len(body)), [body[:100], body[100:]])
    assert (status, text) == (200, b"ok")
    assert server.recorder.sent == [("vk:-2100001", body)]


async def test_a_chunked_body_in_two_pieces_is_read_whole(server):
    body = callback_comment(text="Когда вывезут мусор? " * 20)
    status, text = await raw_request(server, head(None), chunked(body[:150], body[150:]))
    assert (status, text) == (200, b"ok")
    assert server.recorder.sent == [("vk:-2100001", body)]


async def test_a_chunked_body_over_the_cap_gets_413_and_nothing_is_produced(server):
    body = callback_comment(text="я" * 4000)  # about 8 KB against the 4 KB cap
    status, _ = await raw_request(server, head(None), chunked(body[:3000], body[3000:]))
    assert status == 413 and server.recorder.sent == []
    assert outcome(server, "too_large") == 1


async def test_content_length_over_the_cap_is_refused_before_the_body_is_sent(server):
    status, _ = await raw_request(server, head(10_000_000), [])
    assert status == 413 and server.recorder.sent == []


async def test_deeply_nested_json_is_invalid_not_a_server_error(server):
    for body in (b"[" * 4000, b"{\"a\":" * 800):  # within the 4 KB cap, deeper than the stack
        status, _, _ = await post(server, body)
        assert status == 400
    assert server.recorder.sent == [] and outcome(server, "invalid_json") == 2


async def test_a_crafted_type_cannot_forge_log_lines(server, caplog):
    caplog.set_level(logging.WARNING, logger="dozor.ingest.vk_callback")
    forged = "wall_reply_new\nWARNING vk-callback: всё хорошо" + "x" * 500
    body = json.dumps({"type": forged, "group_id": 999999}).encode()
    assert (await post(server, body))[0] == 403
    [line] = [r.getMessage() for r in caplog.records if "отказ" in r.getMessage()]
    assert "\n" not in line and "\\n" in line
    assert "x" * 100 not in line  # cut
