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
    vk_callback.add_argument(
        "--ack-timeout", type=float, default=5.0, metavar="SECONDS",
        help="longest wait for Kafka's acknowledgement before answering VK 503 (VK retries; "
        "default: 5)",
    )
    vk_callback.set_defaults(handler=_run("services.ingest.vk_callback"))

    vk_poll = connectors.add_parser(
        "vk-poll",
        help="poll wall.get / wall.getComments for pages without Callback API access",
        description="Poll the registry's vk-poll pages every DOZOR_VK_POLL_INTERVAL_SECONDS: "
        "new posts, comments of the DOZOR_VK_POLL_RECENT_POSTS newest posts, and edits / "
        "deletions of comments on posts younger than DOZOR_VK_CHANGE_WINDOW_HOURS (re-read "
        "every DOZOR_VK_RESCAN_EVERY rounds).",
    )
    vk_poll.add_argument(
        "--once", action="store_true",
        help="poll every page once, print a line per page and exit (cron, tests); exit code 1 "
        "if a page failed",
    )
    vk_poll.set_defaults(handler=_run("services.ingest.vk_poll"))

    telegram = connectors.add_parser(
        "telegram",
        help="Bot API getUpdates long polling: channel posts, comments, edits",
        description="Long-poll getUpdates for the bot DOZOR_TELEGRAM_BOT_TOKEN (or that name "
        "in DOZOR_SECRETS_FILE; an admin of each registered channel, a member of its discussion "
        "group) and produce every update of a registered page, unchanged, to "
        "DOZOR_TOPIC_RAW_TELEGRAM; every DOZOR_TELEGRAM_HEALTH_INTERVAL_SECONDS each page is "
        "checked. Without a token it says so and exits 0.",
    )
    telegram.add_argument(
        "--once", action="store_true",
        help="one getUpdates round (short poll), print what was produced and exit (tests, "
        "checks)",
    )
    telegram.set_defaults(handler=_run("services.ingest.telegram"))


def _run(module_name: str):
    def handler(args) -> int:
        import importlib

        from services.settings import load_settings

        module = importlib.import_module(module_name)
        return module.run(load_settings(), args) or 0

    return handler
