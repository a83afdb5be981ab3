"""Processes a user starts: the `dozor` CLI, the demo, ingestion and replay."""
