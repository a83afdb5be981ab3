"""Altering a valid payload in one place, for tests of what schemas and normalisers refuse."""

from __future__ import annotations

import copy

#: `altered(..., value=REMOVE)` deletes the field instead of setting it.
REMOVE = KeyError


def altered(payload: dict, path: tuple, value=REMOVE) -> dict:
    """A deep copy of `payload` with the field at `path` (keys and list indexes) removed or set
    to `value`."""
    changed = copy.deepcopy(payload)
    node = changed
    for key in path[:-1]:
        node = node[key]
    if value is REMOVE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return changed
