"""Every VK Callback API payload in the repo's fixtures, and what the one payload builder
(services/sample/vk_payloads.py) writes, validates against the official schema.

The schema is vkcom/vk-api-schema v5.199, loaded by tests/support/vk_schema.py (its draft-03
style ``"required": true`` rewritten into draft-07 arrays, so missing required fields really
fail: checked by a self-test below).

Every line of every ``*.jsonl`` under the globbed directories that is a VK callback envelope
(a JSON object with ``type`` and ``group_id``) is checked: the envelope against
``callback_base``, the ``object`` against the definition of its type. Lines that are
malformed on purpose are listed in EXPECTED_INVALID; any other failure fails the test, and an
expected failure that starts passing fails too (the list must stay accurate).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest

from services.sample import vk_payloads as vk
from tests.support.payloads import REMOVE, altered
from tests.support.vk_schema import SCHEMA_DIR, check_payload, registry, unknown_fields

REPO = Path(__file__).resolve().parents[2]

FIXTURE_DIRS = ["services/sample", "tests/fixtures/vk", "tests/scenarios", "tests/deploy"]

# (file relative to the repo root, 1-based line number) -> why it must fail
EXPECTED_INVALID: dict[tuple[str, int], str] = {
    ("services/sample/vk_events.jsonl", 137): "invalid JSON (cut off mid-transfer)",
    ("services/sample/vk_events.jsonl", 402): "wall_reply_new without text and date",
    ("tests/fixtures/vk/pipeline_events.jsonl", 8): "invalid JSON (cut off)",
}


def _fixture_files() -> list[str]:
    files = set()
    for d in FIXTURE_DIRS:
        files.update(p.relative_to(REPO).as_posix() for p in (REPO / d).rglob("*.jsonl"))
    return sorted(files)


@pytest.mark.parametrize("rel", _fixture_files())
def test_fixture_file_matches_vk_schema(rel: str):
    unexpected, fixed = [], []
    for no, line in enumerate((REPO / rel).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        errors = check_payload(line)
        expected = (rel, no) in EXPECTED_INVALID
        if errors is None or (errors and _is_invalid_json(errors) and not _vk_file(rel)):
            assert not expected, f"{rel}:{no} is listed as an expected failure but isn't VK"
            continue
        if not errors:
            errors = unknown_fields(json.loads(line))  # fields the schema does not name
        if errors and not expected:
            unexpected.append(f"{rel}:{no}: " + "; ".join(errors[:5]))
        if not errors and expected:
            fixed.append(f"{rel}:{no} ({EXPECTED_INVALID[(rel, no)]}) now validates; "
                         "update EXPECTED_INVALID")
    assert not unexpected and not fixed, "\n".join(unexpected + fixed)


def _is_invalid_json(errors: list[str]) -> bool:
    return len(errors) == 1 and errors[0].startswith("invalid JSON")


@lru_cache(maxsize=None)
def _vk_file(rel: str) -> bool:
    """A file is a VK payload file if any of its lines is a VK callback envelope."""
    for line in (REPO / rel).read_text(encoding="utf-8").splitlines():
        try:
            payload = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(payload, dict) and "type" in payload and "group_id" in payload:
            return True
    return False


def test_expected_failures_point_at_existing_lines():
    for (rel, no), why in EXPECTED_INVALID.items():
        path = REPO / rel
        assert path.is_file(), f"{rel} listed in EXPECTED_INVALID does not exist"
        lines = path.read_text(encoding="utf-8").splitlines()
        assert no <= len(lines), f"{rel}:{no} ({why}) is past the end of the file"


# --- the validator really validates ------------------------------------------------------
GOOD_COMMENT = {
    "type": "wall_reply_new", "group_id": 2100001, "event_id": "0" * 40, "v": "5.199",
    "object": {"id": 15, "from_id": 123456789, "owner_id": -2100001, "post_id": 3,
               "date": 1795593600, "text": "Когда вывезут мусор?", "parents_stack": [],
               "thread": {"count": 0, "items": [], "can_post": True}},
}
GOOD_POST = {
    "type": "wall_post_new", "group_id": 2100001, "event_id": "1" * 40, "v": "5.199",
    "object": {"inner_type": "wall_wallpost", "id": 3, "owner_id": -2100001,
               "from_id": -2100001, "date": 1795593600, "text": "Новость", "post_type": "post",
               "likes": {"count": 0, "user_likes": 0, "can_like": 1},
               "reposts": {"count": 0, "user_reposted": 0}, "views": {"count": 1}},
}
GOOD_DELETE = {
    "type": "wall_reply_delete", "group_id": 2100001, "event_id": "2" * 40, "v": "5.199",
    "object": {"owner_id": -2100001, "id": 15, "user_id": 123456789, "post_id": 3},
}


def _broken(payload: dict, path: tuple, value=REMOVE) -> str:
    return json.dumps(altered(payload, path, value), ensure_ascii=False)


@pytest.mark.parametrize("payload", [GOOD_COMMENT, GOOD_POST, GOOD_DELETE])
def test_valid_payloads_pass(payload):
    assert check_payload(json.dumps(payload, ensure_ascii=False)) == []


@pytest.mark.parametrize(
    "line",
    [
        _broken(GOOD_COMMENT, ("object", "text")),  # required in wall_wall_comment
        _broken(GOOD_COMMENT, ("object", "date")),
        _broken(GOOD_COMMENT, ("object", "from_id")),
        _broken(GOOD_COMMENT, ("object", "id"), 0),  # minimum 1
        _broken(GOOD_COMMENT, ("object", "thread", "count")),  # cross-file $ref: comment/
        _broken(GOOD_COMMENT, ("object", "date"), "2026-11-25"),
        _broken(GOOD_COMMENT, ("event_id",)),  # callback_base
        _broken(GOOD_COMMENT, ("v",)),
        _broken(GOOD_COMMENT, ("group_id",), -2100001),  # minimum 0
        _broken(GOOD_COMMENT, ("type",), "wall_reply_created"),  # not in callback_type
        _broken(GOOD_POST, ("object", "inner_type")),
        _broken(GOOD_POST, ("object", "likes", "can_like")),  # cross-file $ref: base/
        _broken(GOOD_POST, ("object", "likes", "user_likes"), True),  # base_bool_int is 0/1
        _broken(GOOD_POST, ("object", "post_type"), "status"),
        _broken(GOOD_DELETE, ("object", "user_id"), -5),  # minimum 0
        _broken(GOOD_DELETE, ("object", "post_id")),
        '{"type": "wall_reply_new", "group_id": 2100001, ',
    ],
)
def test_invalid_payloads_fail(line):
    errors = check_payload(line)
    assert errors, f"expected schema errors for {line}"


def test_schema_has_draft3_required_flags():
    """Guard: if upstream moves to draft-07 arrays the translation becomes a no-op, fine."""
    registry()  # fails clearly if the schema is missing
    wall = json.loads((SCHEMA_DIR / "wall/objects.json").read_text(encoding="utf-8"))
    text_prop = wall["definitions"]["wall_wall_comment"]["properties"]["text"]
    required = wall["definitions"]["wall_wall_comment"].get("required", [])
    assert text_prop.get("required") is True or "text" in required


# --- the payload builder ------------------------------------------------------------------
OWNER, T = -2100001, 1795593600
BUILT = {
    "post": vk.envelope("wall_post_new", OWNER, "p" * 40, vk.post(OWNER, 3, T, "Новость")),
    "post by an admin": vk.envelope("wall_post_new", OWNER, "a" * 40,
                                    vk.post(OWNER, 4, T, "Новость", created_by=51000001)),
    "comment": vk.envelope("wall_reply_new", OWNER, "c" * 40,
                           vk.comment(OWNER, 15, 3, 123456789, T, "Когда вывезут мусор?")),
    "reply in a thread": vk.envelope(
        "wall_reply_new", OWNER, "r" * 40,
        vk.comment(OWNER, 17, 3, OWNER, T + 60, "Завтра.", reply_to_comment=16,
                   reply_to_user=987654321, thread_root=15)),
    "edit": vk.envelope("wall_reply_edit", OWNER, "e" * 40,
                        vk.comment(OWNER, 15, 3, 123456789, T, "Когда вывезут мусор? UPD")),
    "delete": vk.envelope("wall_reply_delete", OWNER, "d" * 40,
                          vk.comment_delete(OWNER, 15, 3, 123456789)),
}


@pytest.mark.parametrize("name", sorted(BUILT))
def test_the_builder_writes_valid_payloads_with_only_the_schemas_fields(name):
    line = vk.dumps(BUILT[name])
    assert check_payload(line) == []
    assert unknown_fields(json.loads(line)) == []


def test_a_reply_names_its_thread_and_a_top_level_comment_carries_one():
    reply = BUILT["reply in a thread"]["object"]
    assert (reply["parents_stack"], reply["reply_to_comment"], reply["reply_to_user"]) == (
        [15], 16, 987654321)
    assert "thread" not in reply
    assert BUILT["comment"]["object"]["thread"]["count"] == 0
    assert BUILT["post"]["group_id"] == -OWNER and BUILT["post"]["v"] == vk.API_VERSION


def test_unknown_fields_are_found_where_the_validators_let_them_pass():
    post = altered(BUILT["post"], ("object", "likes", "liked_by_me"), 1)
    post = altered(post, ("object", "headline"), "Важно")
    assert check_payload(json.dumps(post, ensure_ascii=False)) == []  # additional properties
    assert unknown_fields(post) == ["object/likes: liked_by_me", "object: headline"]
    assert unknown_fields(altered(BUILT["comment"], ("signature",), "x")) == ["envelope: signature"]
