"""Every VK Callback API payload in the repo's fixtures validates against the official schema.

The schema is vkcom/vk-api-schema v5.199, vendored at ``<workspace>/shared/data/vk-api-schema``
(a sibling of the repository). It says draft-07 but marks required properties draft-03 style
(``"required": true`` inside the property); the loader below rewrites that into draft-07
``required`` arrays, so missing required fields really fail (checked by a self-test).

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
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT7

from tests.support.payloads import REMOVE, altered

REPO = Path(__file__).resolve().parents[1]
SCHEMA_DIR = REPO.parent / "shared/data/vk-api-schema"
BASE_URI = "https://vk-api-schema.invalid/"

FIXTURE_DIRS = ["services/sample", "tests/fixtures/vk", "tests/scenarios", "tests/deploy"]

# (file relative to the repo root, 1-based line number) -> why it must fail
EXPECTED_INVALID: dict[tuple[str, int], str] = {
    ("services/sample/vk_events.jsonl", 137): "invalid JSON (cut off mid-transfer)",
    ("services/sample/vk_events.jsonl", 402): "wall_reply_new without text and date",
    ("tests/fixtures/vk/pipeline_events.jsonl", 8): "invalid JSON (cut off)",
}

# callback type -> definition (file, name) its `object` must satisfy
OBJECT_DEFINITIONS = {
    "wall_post_new": ("wall/objects.json", "wall_wallpost"),
    "wall_repost": ("wall/objects.json", "wall_wallpost"),
    "wall_reply_new": ("wall/objects.json", "wall_wall_comment"),
    "wall_reply_edit": ("wall/objects.json", "wall_wall_comment"),
    "wall_reply_restore": ("wall/objects.json", "wall_wall_comment"),
    "wall_reply_delete": ("callback/objects.json", "callback_wall_comment_delete"),
}


def _draft3_required_to_draft7(node):
    """Copy of a schema node with property-level ``"required": true`` moved to arrays."""
    if isinstance(node, list):
        return [_draft3_required_to_draft7(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "required" and isinstance(value, bool):
            continue  # handled by the parent's properties
        out[key] = _draft3_required_to_draft7(value)
    props = node.get("properties")
    if isinstance(props, dict):
        required = [name for name, sub in props.items()
                    if isinstance(sub, dict) and sub.get("required") is True]
        if required:
            out["required"] = sorted(set(out.get("required", [])) | set(required))
    return out


@lru_cache(maxsize=None)
def _registry() -> Registry:
    if not SCHEMA_DIR.is_dir():
        pytest.fail(
            f"official VK API schema not found at {SCHEMA_DIR}; it is expected next to the "
            "repository (workspace/shared/data/vk-api-schema, vkcom/vk-api-schema v5.199)",
            pytrace=False,
        )
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*/objects.json")):
        doc = _draft3_required_to_draft7(json.loads(path.read_text(encoding="utf-8")))
        doc.pop("$schema", None)  # points at ../schema.json, a meta-schema we don't need
        uri = BASE_URI + path.relative_to(SCHEMA_DIR).as_posix()
        resources.append((uri, Resource.from_contents(doc, default_specification=DRAFT7)))

    def missing(uri: str):
        raise NoSuchResource(ref=f"{uri} (not vendored in {SCHEMA_DIR})")

    return Registry(retrieve=missing).with_resources(resources)


@lru_cache(maxsize=None)
def _validator(file: str, name: str) -> Draft7Validator:
    schema = {"$ref": f"{BASE_URI}{file}#/definitions/{name}"}
    return Draft7Validator(schema, registry=_registry())


def _errors(file: str, name: str, instance) -> list[str]:
    return [f"{name}: {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in _validator(file, name).iter_errors(instance)]


def check_payload(line: str) -> list[str] | None:
    """Schema errors of one line; None if the line is not a VK callback envelope."""
    try:
        payload = json.loads(line)
    except json.JSONDecodeError as exc:
        return [f"invalid JSON: {exc}"]
    if not isinstance(payload, dict) or "type" not in payload or "group_id" not in payload:
        return None
    errors = _errors("callback/objects.json", "callback_base", payload)
    definition = OBJECT_DEFINITIONS.get(payload.get("type"))
    if definition is not None:
        if not isinstance(payload.get("object"), dict):
            errors.append("object: missing or not an object")
        else:
            errors += _errors(*definition, payload["object"])
    return errors


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
    _registry()  # fails clearly if the schema is missing
    wall = json.loads((SCHEMA_DIR / "wall/objects.json").read_text(encoding="utf-8"))
    text_prop = wall["definitions"]["wall_wall_comment"]["properties"]["text"]
    required = wall["definitions"]["wall_wall_comment"].get("required", [])
    assert text_prop.get("required") is True or "text" in required
