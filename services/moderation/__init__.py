"""The moderators' queue: flags from Kafka into a SQL store, a Russian web UI and an HTTP API.

Modules (dependencies point one way: ``web`` → ``store`` → ``db``; nothing here imports the
Faust app):

* ``db`` — SQLAlchemy 2 models and the engine factory (PostgreSQL via
  ``DOZOR_DATABASE_URL``, else a SQLite file ``moderation.sqlite3`` in ``DOZOR_DATA_DIR``);
* ``migrations`` — Alembic, run programmatically (``upgrade(url)`` / ``downgrade(url, "base")``);
  the initial migration also makes ``audit_log`` append-only with a trigger (PostgreSQL:
  plpgsql refusing UPDATE, DELETE and TRUNCATE; SQLite: ``RAISE(ABORT)`` on UPDATE and DELETE);
* ``store`` — ``ModerationStore``, the synchronous API (contract C) the consumer and the web
  layer call;
* ``consumer`` — aiokafka consumer of ``dozor.flags``, ``dozor.flag-updates`` and
  ``dozor.events``; ``feedback`` — «модель ошиблась» to ``dozor.feedback`` and the training
  CSV; ``metrics`` — contract D; ``service`` — ``dozor moderation``; ``commands`` — the CLI;
* ``web`` — the UI and ``/api/v1`` (``create_app(store, WebConfig, registry)``).

What the queue does with what arrives:

* a flag (``streams/flags.py``) becomes an item, inserted only if its ``flag_id`` is new
  (INSERT … ON CONFLICT DO NOTHING), with a "flagged" audit row;
* a flag update (contract A, keyed by ``update_id``) is stored once in ``flag_updates`` and
  applied to its item: ``answered`` closes an open ``unanswered_question`` item as
  resolved / ``answered_by_page`` with the answer's link (audit actor «система», note
  «отвечено страницей»); ``edited`` replaces text and scores and marks the item edited;
  ``deleted`` marks it and closes a *new* item as ``deleted_on_page`` (an item in a
  moderator's work keeps its status, with the mark); ``restored`` removes the mark and
  reopens an item the deletion had closed; ``spike_ended`` is recorded in ``details`` and the
  audit log. An update whose flag is not stored yet (the two come on different topics) waits
  in ``flag_updates`` and is applied the moment the flag arrives;
* canonical events are kept in ``thread_events`` (the post and comments around an item),
  pruned after ``DOZOR_MODERATION_THREAD_RETENTION_DAYS``.

Delivery: a consumed batch is written in one transaction, and only then are its offsets
committed (``DOZOR_MODERATION_COMMIT_INTERVAL_SECONDS``: at once, or at most that often). A
crash in between re-reads the batch, which stores nothing twice (flags by ``flag_id``,
updates by ``update_id``, events by page and item). Tested by SIGKILLing ``dozor moderation``
after its rows are committed and before any offset is (tests/moderation/test_consumer.py).
"""
