"""Platform payload → canonical event. Pure functions; bad input raises InvalidPayload."""

from streams.normalize.errors import InvalidPayload

__all__ = ["InvalidPayload"]
