"""The fake VK API answers as the official schema says (vk-api-schema v5.199).

The fake stands in for VK in every connector test, so its answers must keep the shape of the
real API: wall.get and wall.getComments (top level with threads, one thread, execute'd) are
validated against `wall/responses.json`, errors against `base_error`. The payloads the poller
builds from them are validated as Callback API envelopes in test_vk_poll.py (check_payload).
"""

from __future__ import annotations

from tests.support.fake_vk import FakeVk
from tests.support.vk_connector import OWNER, build_250
from tests.support.vk_schema import errors


def test_fake_answers_validate_against_the_official_schema():
    fake = FakeVk()
    built = build_250(fake)
    token = {"access_token": "t", "v": "5.199"}
    posts = fake.handle("wall.get", {**token, "owner_id": str(OWNER), "count": "100"})
    assert errors("wall/responses.json", "wall_get_response", posts) == []
    assert len(posts["response"]["items"]) == 3

    top = fake.handle("wall.getComments", {**token, "owner_id": str(OWNER),
                                           "post_id": str(built["p2"]), "count": "100",
                                           "thread_items_count": "10"})
    assert errors("wall/responses.json", "wall_getComments_response", top) == []
    assert any(c["thread"]["count"] > len(c["thread"]["items"]) > 0
               for c in top["response"]["items"])
    thread = fake.handle("wall.getComments", {**token, "owner_id": str(OWNER),
                                              "post_id": str(built["p2"]),
                                              "comment_id": str(built["long_root"]),
                                              "count": "20", "offset": "10"})
    assert errors("wall/responses.json", "wall_getComments_response", thread) == []
    assert len(thread["response"]["items"]) == 15

    code = ("return [API.wall.getComments({\"owner_id\": %d, \"post_id\": %d, \"count\": 100}),"
            "API.wall.getComments({\"owner_id\": %d, \"post_id\": 999999}),"
            "API.wall.get({\"owner_id\": %d, \"count\": 1})];") % (OWNER, built["p1"], OWNER, OWNER)
    executed = fake.handle("execute", {**token, "code": code})
    first, failed, wall = executed["response"]
    assert errors("wall/responses.json", "wall_getComments_response", {"response": first}) == []
    assert errors("wall/responses.json", "wall_get_response", {"response": wall}) == []
    assert failed is False and executed["execute_errors"][0]["error_code"] == 100

    for code in (6, 9, 15, 18, 30):
        fake.fail_next(code)
        answer = fake.handle("wall.get", {**token, "owner_id": str(OWNER)})
        assert answer["error"]["error_code"] == code
        assert errors("base/objects.json", "base_error", answer["error"]) == []
    fake.revoke("t")
    assert fake.handle("wall.get", {**token, "owner_id": str(OWNER)})["error"]["error_code"] == 5


def test_fake_enforces_vk_limits():
    fake = FakeVk()
    built = build_250(fake)
    token = {"access_token": "t", "v": "5.199", "owner_id": str(OWNER),
             "post_id": str(built["p1"])}
    assert fake.handle("wall.getComments", {**token, "count": "101"})["error"]["error_code"] == 100
    assert fake.handle("wall.getComments", {**token, "thread_items_count": "11"}
                       )["error"]["error_code"] == 100
    many = "return [" + ",".join(['API.wall.get({"owner_id": %d})' % OWNER] * 26) + "];"
    assert fake.handle("execute", {"access_token": "t", "code": many})["error"]["error_code"] == 100
    page1 = fake.handle("wall.getComments", {**token, "count": "100"})["response"]
    page2 = fake.handle("wall.getComments", {**token, "count": "100", "offset": "100"})["response"]
    assert page1["current_level_count"] == 130 and len(page1["items"]) == 100
    assert len(page2["items"]) == 30
    assert page1["count"] == 130 + 15  # all comments of the post, replies included


def test_fake_edits_deletions_and_restores_keep_the_schema():
    """A deleted top-level comment with replies stays listed as ``deleted: true``; one without
    replies leaves the listing and the counts, as on VK."""
    fake = FakeVk()
    built = build_250(fake)
    token = {"access_token": "t", "v": "5.199", "owner_id": str(OWNER),
             "post_id": str(built["p2"]), "count": "100", "thread_items_count": "10"}
    before = fake.handle("wall.getComments", token)["response"]
    plain = before["items"][-1]["id"]  # a top-level comment without replies
    fake.delete_comment(OWNER, built["long_root"])
    fake.delete_comment(OWNER, plain)
    fake.edit_comment(OWNER, before["items"][-2]["id"], "исправленный текст")
    after = fake.handle("wall.getComments", token)
    assert errors("wall/responses.json", "wall_getComments_response", after) == []
    items = {c["id"]: c for c in after["response"]["items"]}
    assert plain not in items and after["response"]["count"] == before["count"] - 2
    assert items[built["long_root"]]["deleted"] is True and items[built["long_root"]]["text"] == ""
    assert items[built["long_root"]]["thread"]["count"] == 25
    assert items[before["items"][-2]["id"]]["text"] == "исправленный текст"
    posts = fake.handle("wall.get", {"access_token": "t", "owner_id": str(OWNER)})
    assert errors("wall/responses.json", "wall_get_response", posts) == []
    fake.restore_comment(OWNER, plain)
    again = fake.handle("wall.getComments", token)["response"]
    assert again["count"] == before["count"] - 1 and plain in {c["id"] for c in again["items"]}
