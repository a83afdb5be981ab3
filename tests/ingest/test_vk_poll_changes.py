"""Change detection of the VK poller: edits, deletions and restores of recent posts' comments.

Against the fake VK API (tests/support/fake_vk.py), sends and cursors in memory, with a fixed
clock so that "younger than the window" does not depend on today's date.
"""

from __future__ import annotations

import json

import httpx
import pytest

from services.ingest.metrics import IngestMetrics
from services.ingest.vk_api import RateLimiters, Token, VkApi
from services.ingest.vk_poll import DELETED, PagePoller, cursor_key, diff_comments, fingerprint
from streams.normalize.vk import normalize_vk_bytes
from streams.pages import Page
from tests.support.fake_vk import FakeVk
from tests.support.vk_connector import CITIZENS, OWNER, MemoryCursors, Sent
from tests.support.vk_schema import check_payload

VERSION = "5.199"
NOW = 1796000000.0  # the poller's clock in these tests
HOUR = 3600
PAGE = Page(page_id=f"vk:{OWNER}", platform="vk", name="стена", municipality="м",
            category="к", connector="vk-poll", vk_token_env="T")
TOKEN = Token("T", "tok", 500.0)


@pytest.fixture
def fake():
    with FakeVk() as server:
        yield server


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_poller(fake, http, cursors=None, sent=None, clock=None, **options):
    metrics = IngestMetrics()
    api = VkApi(http, fake.url, VERSION, RateLimiters(), metrics, backoff_base=0.01,
                backoff_max=0.05)
    sent = sent if sent is not None else Sent()
    cursors = cursors if cursors is not None else MemoryCursors()
    poller = PagePoller(api, sent, cursors, metrics, VERSION, clock=clock or Clock(), **options)
    return poller, sent, cursors, metrics


def build_recent(fake: FakeVk) -> dict[str, int]:
    """A post 2 h old: 12 top-level comments, one with a thread of 14 replies (read by
    comment_id), one with 2 inline replies."""
    date = int(NOW) - 2 * HOUR
    post = fake.add_post(OWNER, "Отключение света на Лесной", date)
    ids: dict[str, int] = {"post": post}
    tops = [fake.add_comment(OWNER, post, f"Когда дадут свет? дом {i}", date + 60 + i,
                             CITIZENS[i]) for i in range(12)]
    ids["plain"], ids["question"], ids["long_root"], ids["short_root"] = tops[:4]
    ids["long_reply"] = [fake.add_comment(OWNER, post, f"в ветке {j}", date + 600 + j,
                                          CITIZENS[20 + j % 10], reply_to=tops[2])
                         for j in range(14)][5]
    for j in range(2):
        fake.add_comment(OWNER, post, f"ответ {j}", date + 900 + j, CITIZENS[30],
                         reply_to=tops[3])
    return ids


def kinds(sent: Sent) -> list[tuple[str, int]]:
    return [(p["type"], p["object"]["id"]) for p in sent.payloads()]


def schema_errors(sent: Sent) -> list[str]:
    return [e for _, raw in sent.items for e in check_payload(raw.decode())]


async def test_edit_delete_restore_are_detected_once_each_and_normalised(fake):
    ids = build_recent(fake)
    async with httpx.AsyncClient() as http:
        poller, sent, cursors, metrics = make_poller(fake, http, rescan_every=1)
        first = await poller.poll(PAGE, TOKEN)
        assert first.error is None and first.produced == 1 + 12 + 14 + 2
        assert {t for t, _ in kinds(sent)} == {"wall_post_new", "wall_reply_new"}

        async def round_() -> list[tuple[str, int]]:
            sent.items.clear()
            result = await poller.poll(PAGE, TOKEN)
            assert result.error is None
            return kinds(sent)

        # an unchanged re-read (every round is a rescan here) produces nothing
        assert await round_() == []

        fake.edit_comment(OWNER, ids["question"], "Когда дадут свет на Лесной, 5?")
        assert await round_() == [("wall_reply_edit", ids["question"])]
        edit = normalize_vk_bytes(sent.items[0][1])
        assert (edit.action, edit.item_id, edit.text) == (
            "edit", str(ids["question"]), "Когда дадут свет на Лесной, 5?")
        assert edit.thread_id == str(ids["post"]) and edit.author_id == str(CITIZENS[1])
        assert schema_errors(sent) == []
        assert await round_() == []  # detected once

        fake.delete_comment(OWNER, ids["plain"])  # vanishes from the listing
        fake.delete_comment(OWNER, ids["long_root"])  # listed as deleted: it has replies
        fake.delete_comment(OWNER, ids["long_reply"])  # a reply in the long thread
        assert await round_() == [("wall_reply_delete", ids["plain"]),
                                  ("wall_reply_delete", ids["long_root"]),
                                  ("wall_reply_delete", ids["long_reply"])]
        assert schema_errors(sent) == []
        deletes = [normalize_vk_bytes(raw) for _, raw in sent.items]
        assert [(e.action, e.item_id, e.thread_id, e.page_id) for e in deletes] == [
            ("delete", str(i), str(ids["post"]), f"vk:{OWNER}")
            for i in (ids["plain"], ids["long_root"], ids["long_reply"])]
        assert await round_() == []

        fake.restore_comment(OWNER, ids["plain"])
        fake.restore_comment(OWNER, ids["long_root"])
        assert await round_() == [("wall_reply_restore", ids["plain"]),
                                  ("wall_reply_restore", ids["long_root"])]
        assert schema_errors(sent) == []
        restored = normalize_vk_bytes(sent.items[0][1])
        assert (restored.action, restored.item_id, restored.text) == (
            "restore", str(ids["plain"]), "Когда дадут свет? дом 0")
        assert await round_() == []
    value = metrics.registry.get_sample_value
    assert value("dozor_ingest_events_total", {"platform": "vk", "type": "wall_reply_edit"}) == 1
    assert value("dozor_ingest_events_total",
                 {"platform": "vk", "type": "wall_reply_delete"}) == 3
    assert value("dozor_ingest_events_total",
                 {"platform": "vk", "type": "wall_reply_restore"}) == 2
    prints = cursors.values[cursor_key(PAGE.page_id)]["posts"][str(ids["post"])]["fp"]
    assert prints[str(ids["long_reply"])] == DELETED
    assert prints[str(ids["question"])] == fingerprint({"text": "Когда дадут свет на Лесной, 5?"})


async def test_change_payloads_are_deterministic(fake):
    ids = build_recent(fake)
    async with httpx.AsyncClient() as http:
        base, _, cursors, _ = make_poller(fake, http)
        await base.poll(PAGE, TOKEN)
        start = json.loads(json.dumps(cursors.values))
        fake.edit_comment(OWNER, ids["question"], "новый текст")
        fake.delete_comment(OWNER, ids["plain"])
        runs = []
        for _ in range(2):
            again = MemoryCursors()
            again.values = json.loads(json.dumps(start))
            poller, sent, _, _ = make_poller(fake, http, cursors=again)
            await poller.poll(PAGE, TOKEN)  # a fresh poller's first round is a rescan
            runs.append(sent.items)
    assert runs[0] == runs[1]
    assert [json.loads(p)["type"] for _, p in runs[0]] == ["wall_reply_edit", "wall_reply_delete"]


async def test_edits_are_seen_on_rescan_rounds_only_and_cost_one_request(fake):
    ids = build_recent(fake)
    async with httpx.AsyncClient() as http:
        poller, sent, _, _ = make_poller(fake, http, rescan_every=3)
        await poller.poll(PAGE, TOKEN)  # round 0: read everything (new post)
        fake.edit_comment(OWNER, ids["plain"], "исправлено")
        costs = []
        for _ in range(3):  # rounds 1, 2: nothing re-read; round 3: the rescan
            sent.items.clear()
            before = fake.requests_total()
            await poller.poll(PAGE, TOKEN)
            costs.append((fake.requests_total() - before, kinds(sent)))
    assert costs[0] == (1, []) and costs[1] == (1, [])  # wall.get only
    # wall.get, the post's first comment page, its long thread (a tracked post's long threads
    # are re-read with it): 3 requests, once every 3 rounds
    assert costs[2] == (3, [("wall_reply_edit", ids["plain"])])


async def test_a_restart_rescans_and_sees_what_changed_while_down(fake):
    ids = build_recent(fake)
    cursors = MemoryCursors()
    async with httpx.AsyncClient() as http:
        before, _, _, _ = make_poller(fake, http, cursors=cursors, rescan_every=100)
        await before.poll(PAGE, TOKEN)
        await before.poll(PAGE, TOKEN)
        fake.edit_comment(OWNER, ids["short_root"], "другой текст")
        after, sent, _, _ = make_poller(fake, http, cursors=cursors, rescan_every=100)
        await after.poll(PAGE, TOKEN)
    assert kinds(sent) == [("wall_reply_edit", ids["short_root"])]


async def test_a_new_comment_already_deleted_is_not_produced(fake):
    ids = build_recent(fake)
    async with httpx.AsyncClient() as http:
        poller, sent, _, _ = make_poller(fake, http, rescan_every=1)
        await poller.poll(PAGE, TOKEN)
        root = fake.add_comment(OWNER, ids["post"], "сейчас удалю", int(NOW) - 60, 555)
        fake.add_comment(OWNER, ids["post"], "ответ", int(NOW) - 30, 556, reply_to=root)
        fake.delete_comment(OWNER, root)  # listed as deleted (it has a reply)
        sent.items.clear()
        await poller.poll(PAGE, TOKEN)
    assert [t for t, _ in kinds(sent)] == ["wall_reply_new"]  # only the reply
    assert schema_errors(sent) == []


async def test_old_posts_are_not_tracked_and_the_cursor_stays_bounded(fake):
    clock = Clock()
    old = fake.add_post(OWNER, "старая запись", int(NOW) - 100 * HOUR)
    for i in range(5):
        fake.add_comment(OWNER, old, f"к старой {i}", int(NOW) - 99 * HOUR, CITIZENS[i])
    ids = build_recent(fake)
    newer = fake.add_post(OWNER, "новая запись", int(NOW) - HOUR)
    for i in range(40):
        fake.add_comment(OWNER, newer, f"к новой {i}", int(NOW) - HOUR + i, CITIZENS[i])
    async with httpx.AsyncClient() as http:
        # 40 + 28 fingerprints fit in 70: both recent posts are tracked, the old one is not
        poller, sent, cursors, _ = make_poller(fake, http, clock=clock, rescan_every=1,
                                               max_fingerprints=70)
        await poller.poll(PAGE, TOKEN)
        posts = cursors.values[cursor_key(PAGE.page_id)]["posts"]
        assert "fp" not in posts[str(old)]
        assert len(posts[str(ids["post"])]["fp"]) == 28 and len(posts[str(newer)]["fp"]) == 40
        fake.edit_comment(OWNER, ids["question"], "правка")
        sent.items.clear()
        await poller.poll(PAGE, TOKEN)
        assert kinds(sent) == [("wall_reply_edit", ids["question"])]

        # the newer post grows past the cap: the older tracked post is dropped, not churned
        for i in range(40, 45):
            fake.add_comment(OWNER, newer, f"к новой {i}", int(NOW) - HOUR + i, CITIZENS[i % 40])
        await poller.poll(PAGE, TOKEN)
        posts = cursors.values[cursor_key(PAGE.page_id)]["posts"]
        assert "fp" not in posts[str(ids["post"])] and len(posts[str(newer)]["fp"]) == 45
        fake.edit_comment(OWNER, ids["question"], "ещё правка")  # untracked now: not seen
        sent.items.clear()
        await poller.poll(PAGE, TOKEN)
        assert kinds(sent) == []

        # three days later every post left the window: no fingerprint is kept at all
        clock.now += 72 * HOUR
        await poller.poll(PAGE, TOKEN)
        cursor = cursors.values[cursor_key(PAGE.page_id)]
        assert all("fp" not in p for p in cursor["posts"].values())
        assert len(json.dumps(cursor)) < 400
        fake.edit_comment(OWNER, ids["plain"], "правка после окна")
        before = fake.requests_total()
        await poller.poll(PAGE, TOKEN)
        assert fake.requests_total() - before == 1  # nothing tracked: wall.get only


def test_diff_comments_rules():
    known = {"1": fingerprint({"text": "a"}), "2": fingerprint({"text": "b"}), "3": DELETED,
             "4": fingerprint({"text": "d"})}
    now = [{"id": 1, "text": "a"}, {"id": 2, "text": "b2"}, {"id": 3, "text": "c"},
           {"id": 5, "text": "new"}]
    changes, prints = diff_comments(known, now)
    assert [c["id"] for c in changes.edited] == [2]
    assert [c["id"] for c in changes.restored] == [3]
    assert changes.deleted == [4]
    assert prints["4"] == DELETED and prints["5"] == fingerprint({"text": "new"})
    # an incomplete read (offsets shifted) deletes nothing and keeps the prints
    changes, prints = diff_comments(known, now[:1], complete=False)
    assert changes.deleted == [] and prints["4"] == known["4"] and prints["2"] == known["2"]
    # nothing known (a post seen for the first time): a baseline, no events
    changes, prints = diff_comments({}, now)
    assert (changes.edited, changes.deleted, changes.restored) == ([], [], [])
    assert set(prints) == {"1", "2", "3", "5"}
    # a comment listed as deleted
    changes, _ = diff_comments(known, [{"id": 1, "text": "", "deleted": True}], complete=True)
    assert changes.deleted == [1, 2, 4]


@pytest.mark.broker
async def test_fingerprints_survive_a_restart_in_the_cursor_topic(kafka_bootstrap):
    """Two `run_poller(once=True)` processes in a row, cursors in the compacted topic: the
    second one (a fresh start, so a rescan) reads the fingerprints back and produces only the
    edit made in between, and the delete."""
    import time
    import uuid

    from services.ingest.cursors import read_cursors
    from services.ingest.secrets import Secrets
    from services.ingest.vk_poll import run_poller
    from services.settings import Settings
    from streams.pages import PageRegistry
    from tests.support.vk_connector import read_topic

    name = f"vkc{uuid.uuid4().hex[:8]}"
    now = int(time.time())
    with FakeVk() as fake:
        post = fake.add_post(OWNER, "запись", now - HOUR)
        first = fake.add_comment(OWNER, post, "первый", now - 600, CITIZENS[0])
        second = fake.add_comment(OWNER, post, "второй", now - 500, CITIZENS[1])
        settings = Settings(kafka_bootstrap=kafka_bootstrap, vk_api_url=fake.url,
                            topic_raw_vk=f"{name}.raw.vk", topic_ingest_cursors=f"{name}.cursors",
                            vk_requests_per_second=50)
        registry = PageRegistry([PAGE])
        secrets = Secrets({}, {"T": "tok"})
        results = await run_poller(settings, registry, secrets, IngestMetrics(), once=True)
        assert results[0].error is None and results[0].produced == 3
        fake.edit_comment(OWNER, first, "первый, исправленный")
        fake.delete_comment(OWNER, second)
        results = await run_poller(settings, registry, secrets, IngestMetrics(), once=True)
        assert results[0].error is None and results[0].produced == 2
    raw = [json.loads(r.value) for r in await read_topic(kafka_bootstrap, f"{name}.raw.vk")]
    assert [(p["type"], p["object"]["id"]) for p in raw] == [
        ("wall_post_new", post), ("wall_reply_new", first), ("wall_reply_new", second),
        ("wall_reply_edit", first), ("wall_reply_delete", second)]
    cursor = (await read_cursors(kafka_bootstrap, f"{name}.cursors"))[cursor_key(PAGE.page_id)]
    assert cursor["posts"][str(post)]["fp"] == {
        str(first): fingerprint({"text": "первый, исправленный"}), str(second): DELETED}
