"""The VK poller against the fake VK API, without a broker (sends and cursors in memory)."""

from __future__ import annotations

import json

import httpx
import pytest

from services.ingest.metrics import IngestMetrics
from services.ingest.vk_api import RateLimiters, Token, VkApi
from services.ingest.vk_poll import PagePoller, PollTarget, poll_round
from streams.normalize.vk import normalize_vk, normalize_vk_bytes
from streams.pages import Page
from tests.support.fake_vk import FakeVk
from tests.support.vk_connector import BASE_DATE, OWNER, MemoryCursors, Sent, build_250
from tests.support.vk_schema import check_payload

VERSION = "5.199"


def page(owner: int = OWNER, token: str = "TOKEN_A") -> Page:
    return Page(page_id=f"vk:{owner}", platform="vk", name=f"стена {owner}", municipality="м",
                category="к", connector="vk-poll", vk_token_env=token)


@pytest.fixture
def fake():
    with FakeVk() as server:
        yield server


def make_poller(fake, http, rate=200.0, metrics=None, cursors=None, sent=None, limiters=None):
    metrics = metrics or IngestMetrics()
    api = VkApi(http, fake.url, VERSION, limiters or RateLimiters(), metrics,
                backoff_base=0.01, backoff_max=0.05)
    sent = sent if sent is not None else Sent()
    cursors = cursors if cursors is not None else MemoryCursors()
    # a month after the scenario's posts: they are older than the change window, so these
    # tests see the new-items path only, whatever today's date (test_vk_poll_changes.py
    # covers change detection)
    poller = PagePoller(api, sent, cursors, metrics, VERSION,
                        clock=lambda: BASE_DATE + 30 * 86400)
    return poller, sent, cursors, metrics


def token(value="tok-a", name="TOKEN_A", rate=200.0) -> Token:
    return Token(name, value, rate)


async def test_250_comments_on_3_posts_with_threads_are_read_completely(fake):
    expected = build_250(fake)
    async with httpx.AsyncClient() as http:
        poller, sent, cursors, _ = make_poller(fake, http)
        result = await poller.poll(page(), token())
        assert result.error is None and result.produced == 253
        payloads = sent.payloads()
        posts = [p for p in payloads if p["type"] == "wall_post_new"]
        comments = [p for p in payloads if p["type"] == "wall_reply_new"]
        assert {p["object"]["id"] for p in posts} == expected["posts"]
        assert sorted(c["object"]["id"] for c in comments) == sorted(expected["comments"])
        assert all(page_id == f"vk:{OWNER}" for page_id, _ in sent.items)
        # the worker's normaliser takes them as they are; replies keep their parent
        events = [normalize_vk_bytes(raw) for _, raw in sent.items]
        assert len({e.event_id for e in events}) == 253
        replies = [e for e in events if e.parent_id is not None]
        assert len(replies) == 15 + 25 + 10  # every thread reply names the comment it answers
        assert sum(e.by_page for e in events) == 3 + 10  # the page's posts and its answers
        # every poller payload validates against the official Callback API schema
        errors = [e for raw in {r for _, r in sent.items} for e in check_payload(raw.decode())]
        assert errors == []
        # execute batched the second top-level page and the long thread
        methods = [m for _, m, _ in fake.calls]
        executed = [m for _, _, m in fake.request_log if m == "execute"]
        # first pages of the 3 posts, post 1's second page, post 2's long thread
        assert methods.count("wall.getComments") == 3 + 1 + 1
        assert len(executed) == 1  # the 3 first pages in one request
        assert fake.requests_total() == 1 + 1 + 1 + 1  # wall.get, execute, page 2, thread

        # nothing changed: one wall.get and nothing produced
        before = fake.requests_total()
        again = await poller.poll(page(), token())
        assert again.produced == 0 and fake.requests_total() - before == 1

        # news: a post, a comment in the long thread, a top-level comment on post 1
        new_post = fake.add_post(OWNER, "Новая запись", 1795700000)
        in_thread = fake.add_comment(OWNER, expected["p2"], "ещё в ветке", 1795700100, 123,
                                     reply_to=expected["long_root"])
        top = fake.add_comment(OWNER, expected["p1"], "и у нас нет воды", 1795700200, 124)
        sent.items.clear()
        third = await poller.poll(page(), token())
        assert third.produced == 3
        assert [(p["type"], p["object"]["id"]) for p in sent.payloads()] == [
            ("wall_post_new", new_post), ("wall_reply_new", top), ("wall_reply_new", in_thread)]


async def test_polling_twice_gives_the_same_payloads(fake):
    build_250(fake)
    async with httpx.AsyncClient() as http:
        first, sent1, _, _ = make_poller(fake, http)
        second, sent2, _, _ = make_poller(fake, http)  # no cursor: reads everything again
        await first.poll(page(), token())
        await second.poll(page(), token())
    assert sent1.items == sent2.items


def test_callback_and_poll_give_the_same_canonical_event():
    """The same comment by Callback API (VK's envelope, VK's event id) and by polling."""
    from services.ingest.vk_poll import comment_object, envelope

    comment = {"id": 77, "from_id": 100001, "post_id": 5, "owner_id": OWNER, "date": 1795593700,
               "text": "Когда починят фонарь?", "parents_stack": [],
               "thread": {"count": 2, "items": [{"id": 78, "from_id": 1, "date": 1, "text": "x"}],
                          "can_post": True}}
    by_callback = {"type": "wall_reply_new", "group_id": -OWNER,
                   "event_id": "a3f1c2d4e5b6a7c8d9e0f1a2b3c4d5e6f7a8b9c0", "v": VERSION,
                   "secret": "s", "object": {k: v for k, v in comment.items() if k != "thread"}}
    by_poll = json.loads(envelope("wall_reply_new", OWNER, comment_object(OWNER, 5, comment),
                                  VERSION))
    a, b = normalize_vk(by_callback), normalize_vk(by_poll)
    assert a.event_id == b.event_id
    assert a == b
    assert by_poll["event_id"] != by_callback["event_id"]  # only the canonical id must agree


async def test_bursts_of_error_6_and_9_are_survived(fake):
    expected = build_250(fake)
    fake.fail_next(6, times=4)
    fake.fail_next(9, times=2)
    async with httpx.AsyncClient() as http:
        poller, sent, _, metrics = make_poller(fake, http)
        result = await poller.poll(page(), token())
    assert result.error is None
    assert {p["object"]["id"] for p in sent.payloads()} == expected["posts"] | expected["comments"]
    errors = metrics.registry.get_sample_value
    assert errors("dozor_ingest_api_errors_total", {"connector": "vk-poll", "code": "6"}) == 4
    assert errors("dozor_ingest_api_errors_total", {"connector": "vk-poll", "code": "9"}) == 2


async def test_a_burst_of_error_6_in_the_middle_of_the_read_loses_and_repeats_nothing(fake):
    """wall.get and the first comment pages pass, then every call fails 3 times: the second
    top-level page of post 1 and the long thread are read after retries."""
    expected = build_250(fake)
    fake.fail_next(6, times=3, after=2)
    async with httpx.AsyncClient() as http:
        poller, sent, _, metrics = make_poller(fake, http)
        result = await poller.poll(page(), token())
    assert result.error is None and result.produced == 253
    ids = [p["object"]["id"] for p in sent.payloads()]
    assert len(ids) == len(set(ids)) == 253
    assert set(ids) == expected["posts"] | expected["comments"]
    # the failures hit after the first two requests (wall.get, the execute of first pages)
    methods = [m for _, _, m in fake.request_log]
    assert methods[:2] == ["wall.get", "execute"] and len(methods) == 4 + 3
    errors = metrics.registry.get_sample_value
    assert errors("dozor_ingest_api_errors_total", {"connector": "vk-poll", "code": "6"}) == 3


async def test_a_revoked_token_or_closed_wall_does_not_stop_the_other_pages(fake):
    build_250(fake, -1)
    build_250(fake, -2)
    build_250(fake, -3)
    build_250(fake, -4)
    build_250(fake, -6)
    fake.revoke("revoked")
    fake.wall_error(-3, 15)
    fake.wall_error(-4, 30)
    fake.wall_error(-6, 18)  # the community was deleted or banned
    targets = [
        PollTarget(page(-1, "GOOD"), token("good", "GOOD")),
        PollTarget(page(-2, "OLD"), token("revoked", "OLD")),
        PollTarget(page(-3, "GOOD"), token("good", "GOOD")),
        PollTarget(page(-4, "GOOD"), token("good", "GOOD")),
        PollTarget(page(-5, "MISSING"), None, "токен MISSING не найден"),
        PollTarget(page(-6, "GOOD"), token("good", "GOOD")),
    ]
    async with httpx.AsyncClient() as http:
        poller, sent, _, metrics = make_poller(fake, http)
        results = {r.page_id: r for r in await poll_round(poller, targets)}
    assert results["vk:-1"].error is None and results["vk:-1"].produced == 253
    assert results["vk:-2"].code == 5 and "отозван" in results["vk:-2"].error
    assert results["vk:-3"].code == 15 and results["vk:-4"].code == 30
    assert results["vk:-6"].code == 18 and results["vk:-6"].produced == 0
    assert results["vk:-5"].error and results["vk:-5"].produced == 0
    assert {p for p, _ in sent.items} == {"vk:-1"}
    value = metrics.registry.get_sample_value
    for code in ("5", "15", "18", "30"):
        assert value("dozor_ingest_api_errors_total", {"connector": "vk-poll", "code": code}) == 1
    assert value("dozor_ingest_last_success_timestamp_seconds", {"page_id": "vk:-1"}) > 0
    for failed in ("vk:-2", "vk:-3", "vk:-4", "vk:-5", "vk:-6"):
        assert value("dozor_ingest_last_failure_timestamp_seconds", {"page_id": failed}) > 0
        assert value("dozor_ingest_last_success_timestamp_seconds", {"page_id": failed}) is None


async def test_request_rate_per_token_never_exceeds_the_setting(fake):
    """Six pages share token A (5/s), three have token B (8/s); the fake measures arrivals."""
    owners_a, owners_b = [-1, -2, -3, -4, -5, -6], [-7, -8, -9]
    for owner in owners_a + owners_b:
        for extra in range(3):  # each page: wall.get + one execute for its posts' comments
            p = fake.add_post(owner, f"запись {extra}", 1795593800 + extra)
            fake.add_comment(owner, p, "к", 1795593900 + extra, 100)
    targets = [PollTarget(page(o, "A"), Token("A", "tok-a", 5.0)) for o in owners_a]
    targets += [PollTarget(page(o, "B"), Token("B", "tok-b", 8.0)) for o in owners_b]
    async with httpx.AsyncClient() as http:
        poller, sent, _, _ = make_poller(fake, http)
        results = await poll_round(poller, targets)
    assert all(r.error is None for r in results)
    assert len(sent.items) == 9 * 6
    assert fake.requests_total("tok-a") == 12 and fake.requests_total("tok-b") == 6
    assert fake.max_requests_in_window("tok-a", 1.0) <= 5
    assert fake.max_requests_in_window("tok-b", 1.0) <= 8
    # the limiter is per token: B's pages were not held up behind A's twelve requests
    times_a, times_b = fake.request_times("tok-a"), fake.request_times("tok-b")
    assert max(times_b) - min(times_b) < 1.0 < max(times_a) - min(times_a)


async def test_comments_on_posts_beyond_the_recent_ones_follow_the_setting(fake):
    """25 posts with a comment each: the default follows the 20 newest; `recent_posts=25`
    (DOZOR_VK_POLL_RECENT_POSTS) all of them; 150 needs two wall.get calls of 100 and 50."""
    posts = [fake.add_post(OWNER, f"запись {i}", BASE_DATE + i) for i in range(25)]
    comments = {p: fake.add_comment(OWNER, p, "вопрос?", BASE_DATE + 100 + p, 100001)
                for p in posts}
    async with httpx.AsyncClient() as http:
        default, sent, _, _ = make_poller(fake, http)
        await default.poll(page(), token())
        read = {p["object"]["id"] for p in sent.payloads() if p["type"] == "wall_reply_new"}
        assert read == {comments[p] for p in posts[5:]}  # the 5 oldest posts: not followed
        more, sent, _, _ = make_poller(fake, http)
        more.recent_posts = 25
        await more.poll(page(), token())
        read = {p["object"]["id"] for p in sent.payloads() if p["type"] == "wall_reply_new"}
        assert read == set(comments.values())
    for i in range(25, 160):
        fake.add_post(OWNER, f"запись {i}", BASE_DATE + i)
    fake.request_log.clear()
    fake.calls.clear()
    async with httpx.AsyncClient() as http:
        poller, sent, _, _ = make_poller(fake, http)
        poller.recent_posts = 150
        await poller.poll(page(), token())
    gets = [(p["offset"], p["count"]) for _, m, p in fake.calls if m == "wall.get"]
    assert gets == [("0", "100"), ("100", "50")]
    assert sum(p["type"] == "wall_post_new" for p in sent.payloads()) == 150


def test_poller_options_come_from_the_settings():
    from services.ingest.vk_poll import poller_options
    from services.settings import Settings

    assert poller_options(Settings()) == {"change_window": 72 * 3600.0, "rescan_every": 10,
                                          "recent_posts": 20}
    custom = Settings(vk_change_window_hours=0, vk_rescan_every=0, vk_poll_recent_posts=50)
    assert poller_options(custom) == {"change_window": 0.0, "rescan_every": 0,
                                      "recent_posts": 50}
    with pytest.raises(ValueError):
        Settings(vk_poll_recent_posts=0)
    with pytest.raises(ValueError):
        Settings(vk_rescan_every=-1)
