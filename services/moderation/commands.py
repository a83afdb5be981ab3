"""`dozor moderation` and `dozor users`: the moderation service's command line."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Placeholder until the moderation service lands."""
