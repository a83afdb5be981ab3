"""The moderators' queue: flags from Kafka into a SQL store, a Russian web UI and an HTTP API."""
