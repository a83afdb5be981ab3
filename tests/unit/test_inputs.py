"""The process agent's input messages → records, dead letters and counts, without a broker."""

from __future__ import annotations

import base64
import json

import pytest

from streams.dead_letter import DeadLetterLimitExceeded
from streams.events import CanonicalEvent
from streams.inputs import DecodedBatch, InputDecoder
from streams.pages import Page, PageRegistry
from streams.process import DEAD_LETTERS, MetricChange, Normalizer
from streams.ticks import TICK_KEY, Tick, tick_message
from tests.support import telegram_payloads as tg

PAGES = PageRegistry([
    Page("vk:-2200001", "vk", "Школа", "Вербовский МО", "школа"),
    Page(f"telegram:{tg.CHANNEL_ID}", "telegram", "Администрация", "Сыктывкар", "администрация",
         connector="telegram", telegram_discussion_id=tg.GROUP_ID),
])
PLATFORMS = {"t.raw.vk": "vk", "t.raw.telegram": "telegram"}


def decoder(limit: int = 1000) -> InputDecoder:
    return InputDecoder(Normalizer.for_pages(PAGES), PLATFORMS, limit)


def vk_comment(item: int = 15) -> bytes:
    return json.dumps({"type": "wall_reply_new", "group_id": 2200001, "event_id": f"e{item}",
                       "v": "5.199", "object": {
                           "id": item, "from_id": 610001, "owner_id": -2200001, "post_id": 3,
                           "date": 1764054000, "text": "Когда починят дорогу?",
                           "parents_stack": [], "thread": {"count": 0}}},
                      ensure_ascii=False).encode()


def test_raw_payloads_become_events_with_their_input_and_ticks_become_ticks():
    batch = DecodedBatch()
    d = decoder()
    d.add(batch, "t.raw.vk", 2, 40, b"vk:-2200001", vk_comment(), ref="m1")
    post = json.dumps(tg.channel_post(41, "Ремонт дорог"), ensure_ascii=False).encode()
    d.add(batch, "t.raw.telegram", 2, 7, b"telegram:x", post, ref="m2")
    d.add(batch, "t.clock", 2, 3, TICK_KEY, tick_message(1.7e9, force=True), ref="m3")
    vk, telegram, tick = batch.records
    assert isinstance(vk.item, CanonicalEvent) and vk.item.page_id == "vk:-2200001"
    assert (vk.partition, vk.offset, vk.source, vk.ref) == (2, 40, "t.raw.vk:2", "m1")
    assert telegram.item.kind == "post" and telegram.source == "t.raw.telegram:2"
    assert tick.item == Tick(1.7e9, True) and tick.source is None and tick.ref == "m3"
    assert batch.dead_letters == [] and batch.metrics == []


def test_an_invalid_payload_becomes_a_dead_letter_with_its_reason_origin_and_bytes():
    batch = DecodedBatch()
    decoder().add(batch, "t.raw.vk", 1, 9, b"vk:-2200001", b"{not json")
    assert batch.records == []
    (letter,) = batch.dead_letters
    assert letter.role == DEAD_LETTERS and letter.key == b"vk:-2200001"
    record = json.loads(letter.value)
    assert record["reason"] == "invalid_json" and record["platform"] == "vk"
    assert record["source"] == {"topic": "t.raw.vk", "partition": 1, "offset": 9}
    assert base64.b64decode(record["payload_base64"]) == b"{not json"
    assert batch.metrics == [MetricChange("dead_letters", (("reason", "invalid_json"),))]


def test_well_formed_updates_dozor_does_not_track_are_counted_and_skipped():
    batch = DecodedBatch()
    chatter = json.dumps(tg.group_chatter(951, "Привет всем"), ensure_ascii=False).encode()
    decoder().add(batch, "t.raw.telegram", 0, 1, b"telegram:x", chatter)
    assert batch.records == [] and batch.dead_letters == []
    assert batch.metrics == [MetricChange("ignored_updates", (("platform", "telegram"),))]


def test_a_clock_message_that_is_not_a_tick_is_skipped():
    batch = DecodedBatch()
    d = decoder()
    d.add(batch, "t.clock", 0, 1, b"other", tick_message(1.0))
    d.add(batch, "t.clock", 0, 2, TICK_KEY, b"{broken")
    assert batch.records == [] and batch.dead_letters == []


def test_a_run_of_invalid_payloads_on_one_platform_stops_the_worker():
    d = decoder(limit=3)
    batch = DecodedBatch()
    d.add(batch, "t.raw.vk", 0, 0, None, b"x")
    d.add(batch, "t.raw.vk", 0, 1, None, b"x")
    d.add(batch, "t.raw.vk", 0, 2, None, vk_comment())  # a valid one resets the count
    d.add(batch, "t.raw.telegram", 0, 0, None, b"x")  # another platform counts apart
    d.add(batch, "t.raw.vk", 0, 3, None, b"x")
    d.add(batch, "t.raw.vk", 0, 4, None, b"x")
    with pytest.raises(DeadLetterLimitExceeded):
        d.add(batch, "t.raw.vk", 0, 5, None, b"x")
