"""Web UI and HTTP API of the moderation queue (create_app)."""
