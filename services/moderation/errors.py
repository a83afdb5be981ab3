"""Errors of the moderation store. All are ValueError subclasses; the web layer maps them to
HTTP statuses (PermissionDenied → 403, NotFound → 404, InvalidTransition → 409)."""

from __future__ import annotations


class ModerationError(ValueError):
    """Base class: a request the store refuses; the message says why, in Russian for people."""


class PermissionDenied(ModerationError):
    """The viewer may see the item but may not do this with it (e.g. release another's item)."""


class NotFound(ModerationError):
    """No such item / user / token — or one the viewer may not see (never leak its existence)."""


class InvalidTransition(ModerationError):
    """The workflow does not allow this step from the item's status (or the value is unknown)."""


class UserExists(ModerationError):
    """`add_user` with a login that is already taken."""
