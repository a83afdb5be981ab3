"""Stream processing: topics, canonical records, agents and stream state."""
