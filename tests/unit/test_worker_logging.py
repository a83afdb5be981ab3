"""The worker's Faust runner leaves the root logger at the level asked for."""

from __future__ import annotations

import logging

import faust

from services.worker import faust_worker


def configured_root(worker) -> logging.Logger:
    """A root-like logger with one handler, configured by `worker` as Faust does at start."""
    logger = logging.Logger("root-under-test")
    logger.addHandler(logging.StreamHandler())
    logger.setLevel(logging.WARNING)
    worker.on_setup_root_logger(logger, logging.WARNING)
    return logger


def test_at_warning_level_the_root_logger_stays_at_warning():
    app = faust.App("log-test", broker="kafka://127.0.0.1:1", web_enabled=False)
    plain = configured_root(faust.Worker(app, loglevel="warning", quiet=True))
    assert plain.level == logging.DEBUG  # what Faust's spinner does on its own
    ours = configured_root(faust_worker(app, "warning"))
    assert ours.level == logging.WARNING and len(ours.handlers) == 1
