"""The official VK API schema (vkcom/vk-api-schema v5.199) as validators for the tests.

The schema is vendored at ``<workspace>/shared/data/vk-api-schema`` (a sibling of the
repository). It says draft-07 but marks required properties draft-03 style (``"required":
true`` inside the property); the loader rewrites that into draft-07 ``required`` arrays, so
missing required fields really fail (tests/unit/test_vk_schema.py checks that it does).
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

SCHEMA_DIR = Path(__file__).resolve().parents[2].parent / "shared/data/vk-api-schema"
BASE_URI = "https://vk-api-schema.invalid/"

POST = ("wall/objects.json", "wall_wallpost")
COMMENT = ("wall/objects.json", "wall_wall_comment")
# callback type -> definition (file, name) its `object` must satisfy
OBJECT_DEFINITIONS = {
    "wall_post_new": POST, "wall_repost": POST,
    "wall_reply_new": COMMENT, "wall_reply_edit": COMMENT, "wall_reply_restore": COMMENT,
    "wall_reply_delete": ("callback/objects.json", "callback_wall_comment_delete"),
}
# Definitions whose fields a payload may use, by callback type: a post may carry the fields of
# the full post (what VK sends) besides those of wall_wallpost.
FIELD_DEFINITIONS = {
    **{type_: [definition] for type_, definition in OBJECT_DEFINITIONS.items()},
    "wall_post_new": [POST, ("wall/objects.json", "wall_wallpost_full")],
}
# Nested objects whose fields are checked too: field name -> definition.
NESTED_DEFINITIONS = {
    "comments": ("base/objects.json", "base_comments_info"),
    "likes": ("base/objects.json", "base_likes_info"),
    "reposts": ("base/objects.json", "base_reposts_info"),
    "views": ("wall/objects.json", "wall_views"),
    "thread": ("comment/objects.json", "comment_thread"),
}


def draft3_required_to_draft7(node):
    """Copy of a schema node with property-level ``"required": true`` moved to arrays."""
    if isinstance(node, list):
        return [draft3_required_to_draft7(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "required" and isinstance(value, bool):
            continue  # handled by the parent's properties
        out[key] = draft3_required_to_draft7(value)
    props = node.get("properties")
    if isinstance(props, dict):
        required = [name for name, sub in props.items()
                    if isinstance(sub, dict) and sub.get("required") is True]
        if required:
            out["required"] = sorted(set(out.get("required", [])) | set(required))
    return out


@lru_cache(maxsize=None)
def registry() -> Registry:
    """Every ``*/objects.json`` of the schema, and ``wall/responses.json`` (the fake API's answers)."""
    if not SCHEMA_DIR.is_dir():
        pytest.fail(
            f"official VK API schema not found at {SCHEMA_DIR}; it is expected next to the "
            "repository (workspace/shared/data/vk-api-schema, vkcom/vk-api-schema v5.199)",
            pytrace=False,
        )
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*/objects.json")) + [SCHEMA_DIR / "wall/responses.json"]:
        doc = draft3_required_to_draft7(json.loads(path.read_text(encoding="utf-8")))
        doc.pop("$schema", None)  # points at ../schema.json, a meta-schema we don't need
        uri = BASE_URI + path.relative_to(SCHEMA_DIR).as_posix()
        resources.append((uri, Resource.from_contents(doc, default_specification=DRAFT7)))

    def missing(uri: str):
        raise NoSuchResource(ref=f"{uri} (not vendored in {SCHEMA_DIR})")

    return Registry(retrieve=missing).with_resources(resources)


@lru_cache(maxsize=None)
def _validator(file: str, name: str) -> Draft7Validator:
    schema = {"$ref": f"{BASE_URI}{file}#/definitions/{name}"}
    return Draft7Validator(schema, registry=registry())


def errors(file: str, name: str, instance) -> list[str]:
    """Schema errors of `instance` against ``definitions/<name>`` of `file` (empty: valid)."""
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
    found = errors("callback/objects.json", "callback_base", payload)
    definition = OBJECT_DEFINITIONS.get(payload.get("type"))
    if definition is not None:
        if not isinstance(payload.get("object"), dict):
            found.append("object: missing or not an object")
        else:
            found += errors(*definition, payload["object"])
    return found


@lru_cache(maxsize=None)
def _fields(file: str, name: str) -> frozenset[str]:
    """The property names of a definition, with those of its ``allOf`` parts."""
    definitions = json.loads((SCHEMA_DIR / file).read_text(encoding="utf-8"))["definitions"]
    definition = definitions[name]
    names = set(definition.get("properties", {}))
    for part in definition.get("allOf", []):
        names |= set(part.get("properties", {}))
        ref = part.get("$ref", "")
        if ref.startswith("#/definitions/"):
            names |= _fields(file, ref.rsplit("/", 1)[1])
    return frozenset(names)


def unknown_fields(payload: dict) -> list[str]:
    """Fields of a callback envelope and its object that the schema does not name (the
    validators accept them: VK's definitions allow additional properties)."""
    unknown = [f"envelope: {k}" for k in set(payload) - _fields("callback/objects.json", "callback_base")
               if k != "object"]
    obj = payload.get("object")
    definitions = FIELD_DEFINITIONS.get(payload.get("type"))
    if not isinstance(obj, dict) or definitions is None:
        return sorted(unknown)
    allowed = frozenset().union(*(_fields(*d) for d in definitions))
    unknown += [f"object: {k}" for k in set(obj) - allowed]
    for key, definition in NESTED_DEFINITIONS.items():
        if isinstance(obj.get(key), dict):
            unknown += [f"object/{key}: {k}" for k in set(obj[key]) - _fields(*definition)]
    return sorted(unknown)
