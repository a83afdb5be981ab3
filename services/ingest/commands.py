"""`dozor ingest vk-callback | vk-poll | telegram`: the connectors' command line."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    ingest = sub.add_parser(
        "ingest",
        help="run a connector: VK Callback API server, VK poller or Telegram bot",
        description="Connectors read posts and comments from the platforms and produce each "
        "payload, unchanged, to its raw topic keyed by page; `dozor worker` normalises them.",
    )
    connectors = ingest.add_subparsers(dest="connector", metavar="CONNECTOR", required=True)

    vk_callback = connectors.add_parser(
        "vk-callback",
        help="the HTTP endpoint VK calls for every community (POST /vk/callback)",
    )
    vk_callback.set_defaults(handler=_run("services.ingest.vk_callback"))

    vk_poll = connectors.add_parser(
        "vk-poll",
        help="poll wall.get / wall.getComments for pages without Callback API access",
    )
    vk_poll.set_defaults(handler=_run("services.ingest.vk_poll"))

    telegram = connectors.add_parser(
        "telegram",
        help="Bot API getUpdates long polling: channel posts, comments, edits",
    )
    telegram.set_defaults(handler=_run("services.ingest.telegram"))


def _run(module_name: str):
    def handler(args) -> int:
        import importlib

        from services.cli import load_settings

        module = importlib.import_module(module_name)
        return module.run(load_settings(), args) or 0

    return handler
