"""JSON Schema built from the official Telegram Bot API spec, to validate the fakes' payloads.

``<workspace>/shared/data/telegram-bot-api/api.json`` is PaulSonOfLars/telegram-bot-api-spec:
the Bot API documentation scraped into ``{"types": {name: {fields: [{name, types, required,
description}], subtypes, subtype_of}}, "methods": {...}}``. It is not JSON Schema, so this
module translates it, rule by rule, into a draft-07 schema that jsonschema checks:

- each type becomes ``definitions/<name>``: an object whose ``properties`` are its fields and
  whose ``required`` are the fields marked required; ``additionalProperties: false``, because
  the spec lists every field of a type, so an unknown field in a fixture is a typo or a field
  the Bot API removed (e.g. ``forward_from_message_id``, gone since Bot API 7.0);
- field types: ``Integer`` → integer, ``Float`` → number, ``String`` → string, ``Boolean`` →
  boolean, ``Array of X`` → array of X (nested), any other name → ``$ref`` to that type; a
  field with several types (``Integer or String``) → ``anyOf``;
- a type with ``subtypes`` (``MessageOrigin``, ``MaybeInaccessibleMessage``, ...) → ``anyOf``
  of its subtypes; a discriminating field documented as ``always "channel"`` → ``const``;
- a type without fields or subtypes (``ForumTopicClosed``: "holds no information") → an empty
  object.

What it cannot check (the spec is prose there): value constraints like "1-100", "always
positive" or "Always 0". `test_telegram_schema.py` proves the translation rejects broken
payloads (missing required field, wrong type, unknown field, wrong discriminator).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

SPEC_PATH = Path(__file__).resolve().parents[2].parent / "shared/data/telegram-bot-api/api.json"
_SCALARS = {
    "Integer": {"type": "integer"},
    "Float": {"type": "number"},
    "String": {"type": "string"},
    "Boolean": {"type": "boolean"},
}
_ALWAYS = re.compile(r'\balways "([^"]+)"')


@lru_cache(maxsize=None)
def spec() -> dict[str, Any]:
    """The vendored spec; a missing file fails with where it is expected."""
    if not SPEC_PATH.is_file():
        raise FileNotFoundError(
            f"official Telegram Bot API spec not found at {SPEC_PATH}; it is expected next to "
            "the repository (workspace/shared/data/telegram-bot-api/api.json)"
        )
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


def _field_type(name: str) -> dict[str, Any]:
    if name.startswith("Array of "):
        return {"type": "array", "items": _field_type(name[len("Array of "):])}
    if name in _SCALARS:
        return dict(_SCALARS[name])
    return {"$ref": f"#/definitions/{name}"}


def _definition(t: dict[str, Any]) -> dict[str, Any]:
    if t.get("subtypes"):
        return {"anyOf": [{"$ref": f"#/definitions/{s}"} for s in t["subtypes"]]}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in t.get("fields") or []:
        kinds = [_field_type(k) for k in field["types"]]
        schema = kinds[0] if len(kinds) == 1 else {"anyOf": kinds}
        always = _ALWAYS.search(field.get("description", ""))
        if always and field["types"] == ["String"]:
            schema = {"const": always.group(1)}
        properties[field["name"]] = schema
        if field.get("required"):
            required.append(field["name"])
    out: dict[str, Any] = {"type": "object", "properties": properties,
                           "additionalProperties": False}
    if required:
        out["required"] = required
    return out


@lru_cache(maxsize=None)
def bot_api_schema() -> dict[str, Any]:
    """All Bot API types as one draft-07 document with `definitions`."""
    types = spec()["types"]
    return {"$schema": "http://json-schema.org/draft-07/schema#",
            "definitions": {name: _definition(t) for name, t in types.items()}}


@lru_cache(maxsize=None)
def validator(type_name: str) -> Draft7Validator:
    """A validator of one Bot API type (`Update`, `Message`, `ChatFullInfo`, ...)."""
    document = dict(bot_api_schema())
    if type_name not in document["definitions"]:
        raise KeyError(f"the Bot API spec has no type {type_name!r}")
    document["$ref"] = f"#/definitions/{type_name}"
    return Draft7Validator(document)


def errors(type_name: str, instance: Any) -> list[str]:
    """Readable schema errors of `instance` as a `type_name` (empty: valid)."""
    found = []
    for error in validator(type_name).iter_errors(instance):
        # anyOf errors hide the useful part in their context: show the deepest ones
        leaves = [e for e in error.context or []] or [error]
        for leaf in leaves[:3]:
            where = "/".join(map(str, leaf.absolute_path)) or "<root>"
            found.append(f"{type_name}: {where}: {leaf.message}")
    return found
