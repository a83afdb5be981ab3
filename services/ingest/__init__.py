"""Connectors: platform APIs → raw payloads, unchanged, into the raw topics (keyed by page)."""
