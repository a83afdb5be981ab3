"""The one settings object of Dozor.

Every process reads its configuration here, once, where it is wired together, and hands
plain values down to `streams/` and `models/`. Every field can be set from the environment
with the prefix ``DOZOR_`` (``DOZOR_KAFKA_BOOTSTRAP=kafka:9092``) or from a ``.env`` file.
docs/configuration.md is generated from these descriptions (``dozor settings``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "default"
SAMPLE_DIR = REPO_ROOT / "services" / "sample"


class Settings(BaseSettings):
    """Dozor configuration; docs/configuration.md has the table."""

    model_config = SettingsConfigDict(env_prefix="DOZOR_", env_file=".env", extra="ignore")

    # --- Kafka ---------------------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        None,
        description="Kafka bootstrap servers, `host:port[,host:port]`. Unset: `dozor demo` "
        "starts an embedded Kafka-compatible broker (Tansu) on a free loopback port.",
    )
    app_id: str = Field("dozor", description="Faust application id = Kafka consumer group.")
    topic_partitions: int = Field(
        4, description="Partitions of the topics Dozor creates (the worker scale limit)."
    )
    topic_raw_vk: str = Field("dozor.raw.vk", description="Raw VK Callback API payloads.")
    topic_raw_telegram: str = Field(
        "dozor.raw.telegram", description="Raw Telegram Bot API `Update` objects."
    )
    topic_events: str = Field(
        "dozor.events",
        description="Canonical events, keyed by page: what the worker read, for the moderation "
        "queue's threads (the worker itself reads the raw topics).",
    )
    topic_clock: str = Field(
        "dozor.clock",
        description="Clock ticks that move each partition's stream time (the worker's timer, "
        "`dozor replay --advance-clock-to`); as many partitions as the raw topics.",
    )
    topic_classified: str = Field(
        "dozor.classified", description="Every classified comment with its scores."
    )
    topic_flags: str = Field("dozor.flags", description="Items a human should see (JSON).")
    topic_dead_letters: str = Field(
        "dozor.dead-letters", description="Malformed payloads with the reason and original bytes."
    )
    topic_flag_updates: str = Field(
        "dozor.flag-updates",
        description="What happened to a flagged item since its flag (answered by the page, "
        "edited, deleted, spike ended), keyed by page; the moderation queue applies them.",
    )
    topic_feedback: str = Field(
        "dozor.feedback",
        description="Moderators' «модель ошиблась» corrections (text and the right labels).",
    )
    topic_ingest_cursors: str = Field(
        "dozor.ingest-cursors",
        description="Compacted topic with the connectors' cursors (VK poll position per page, "
        "Telegram update offset), so a restarted connector resumes exactly.",
    )
    broker_session_timeout_seconds: float = Field(
        10.0, description="Consumer group session timeout; the group join takes about half."
    )
    broker_heartbeat_seconds: float = Field(
        2.0, description="Consumer heartbeat interval; keep it well below the session timeout."
    )
    consumer_fetch_max_wait_seconds: float = Field(
        0.1,
        description="Longest time a fetch waits for data. Faust fixes 1.5 s; brokers that "
        "hold fetches that long (Tansu) then add 1.5 s per pipeline hop.",
    )
    producer_max_batch_bytes: int = Field(
        16384,
        ge=1,
        description="Largest batch of records the worker sends to one partition at once. "
        "1 sends every record alone: needed with the embedded Tansu broker, which reports a "
        "partition's end offset as the last batch's first offset + 1, so Faust's table "
        "recovery stopped short of the newest changelog records and a restarted worker lost "
        "state (`dozor demo` and the tests set it for Tansu; keep the default with Kafka).",
    )
    producer_linger_seconds: float = Field(
        0.005,
        ge=0.0,
        description="How long the worker's producer waits to fill a batch before sending it "
        "(Faust's producer_linger; Faust's default 0 sends each record at once). 5 ms: p99 "
        "0.50 vs 0.55 s at a steady 200/s, throughput within the noise (bench/bench_pipeline.py, "
        "2026-12-06).",
    )
    dead_letter_max_consecutive: int = Field(
        1000,
        description="Stop the worker after this many invalid payloads in a row (a bad "
        "deploy or a wrong topic) instead of dead-lettering everything; 0 = never stop.",
    )
    data_dir: Path = Field(
        Path("$XDG_STATE_HOME/dozor"),
        validate_default=True,
        description="Process-local state directory (the worker's pages table on RocksDB, one "
        "directory per worker; the moderation store's SQLite file when DOZOR_DATABASE_URL is "
        "unset). `$XDG_STATE_HOME` "
        "(unset: `~/.local/state`) and `~` are expanded; a relative path is taken from the "
        "current directory; missing parents are created at start.",
    )

    table_store: Literal["rocksdb", "memory"] = Field(
        "rocksdb",
        description="Where the worker keeps its pages table (every page's tracking state and "
        "remembered ids): 'rocksdb' on disk under DOZOR_DATA_DIR, with only the pages in use "
        "parsed in memory (DOZOR_PAGE_CACHE_MIB), so the worker's memory stays flat as the "
        "state grows; 'memory' in the heap (~1 KB per comment still inside the 14-day "
        "horizons, docs/ARCHITECTURE.md). Either way it is rebuilt from its changelog topic "
        "on every start.",
    )
    page_cache_mib: float = Field(
        8.0,
        ge=0.0,
        description="The worker's cache of parsed page records, in MiB of their stored JSON "
        "(parsed they take about 3x that); the least recently used are dropped once a batch "
        "is stored and read back from the table when needed. 0 = no limit.",
    )

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        """Expand $XDG_STATE_HOME and ~ so the default works from any working directory."""
        state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        text = str(value).replace("$XDG_STATE_HOME", state_home).replace(
            "${XDG_STATE_HOME}", state_home)
        return Path(text).expanduser().resolve()

    # --- classifier ------------------------------------------------------------------------
    model: str = Field(
        str(DEFAULT_MODEL_DIR),
        description="Sequence-classification checkpoint: a local directory (or a hub id "
        "where a network exists).",
    )
    label_map: dict[str, str] = Field(
        default_factory=dict,
        description='JSON map from the checkpoint\'s label names to Dozor labels '
        '(question, negative, toxic, positive, neutral), e.g. {"LABEL_0": "neutral"}.',
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="JSON map label -> probability threshold; overrides the thresholds "
        "stored with the model (`dozor.json`), default 0.5.",
    )
    flag_toxic_threshold: float = Field(
        0.5, description="A comment with toxic probability at least this is flagged `toxic`."
    )
    flag_negative_threshold: float = Field(
        0.85,
        description="A comment with negative probability at least this is flagged "
        "`strongly_negative`.",
    )
    batch_size: int = Field(64, description="Most texts the classifier takes at once.")
    batch_wait_seconds: float = Field(
        0.05, description="Longest wait to fill a batch before classifying what is there."
    )
    max_text_length: int = Field(256, description="Tokens per text; longer texts are cut.")
    quantize: Literal["auto", "none", "int8"] = Field(
        "auto",
        description="'int8': dynamic int8 linear layers at load time; 'none': float32; 'auto': "
        "what the checkpoint's dozor.json says (float32 if it says nothing). int8 scores shift "
        "with the other texts of a batch; measured in the model card.",
    )
    inference_threads: int = Field(
        1,
        description="torch intra-op threads of the classifier; 0 = torch's default (all "
        "cores). One leaves a core to the event loop and the broker (see bench/).",
    )
    classifier_process: bool = Field(
        True,
        description="Run the worker's classifier in a child process, so the model and the "
        "event loop never share a GIL: at a steady 600 comments/s p99 2.4 s instead of 7.8 s, "
        "for ~50 MiB more (the worker itself never loads torch). false: in the worker's own "
        "process. `dozor classify` always runs it in-process (see bench/ in the README).",
    )

    # --- pages and deadlines ----------------------------------------------------------------
    pages_file: Path | None = Field(
        None, description="Page registry (YAML or CSV): platform id, name, municipality, "
        "category, answer deadline. Unknown pages are still processed."
    )
    answer_deadline_hours: float = Field(
        8.0, description="Default answer deadline of a page, in working hours."
    )
    timezone: str = Field("Europe/Moscow", description="Region's time zone for working hours.")
    working_hours: str = Field("09:00-18:00", description="Working day, local time.")
    working_days: str = Field("1-5", description="ISO weekdays that are working days (1=Mon).")
    holidays: list[str] = Field(
        default_factory=list,
        description='JSON list of public holidays, ISO dates: ["2026-01-01", "2026-01-02"].',
    )

    def working_calendar(self):
        """The region's working calendar (time zone, hours, days, holidays) for deadlines."""
        from streams.tracking.calendar import WorkingCalendar

        return WorkingCalendar.parse(
            timezone=self.timezone,
            working_hours=self.working_hours,
            working_days=self.working_days,
            holidays=self.holidays,
        )

    spike_window_seconds: float = Field(3600.0, description="Negative-spike sliding window.")
    spike_min_negative: int = Field(
        5, description="Negative comments in the window that a spike needs at least."
    )
    spike_min_share: float = Field(
        0.5, description="Share of negative comments in the window that a spike needs at least."
    )
    sweep_interval_seconds: float = Field(
        5.0, description="How often the SLA sweep looks for overdue questions."
    )
    clock_idle_seconds: float = Field(
        30.0,
        description="The stream clock follows event time; after this many seconds without "
        "events it follows the wall clock, so deadlines pass on a quiet stream too.",
    )

    # --- metrics ----------------------------------------------------------------------------
    metrics_host: str = Field("0.0.0.0", description="Address of the /metrics endpoint.")
    metrics_port: int = Field(9464, description="Port of the /metrics endpoint; 0 = any free.")

    # --- connectors (dozor ingest ...) ------------------------------------------------------
    secrets_file: Path | None = Field(
        None,
        description="YAML or .env-style file of secrets (`NAME: value`) that the page registry "
        "names by `*_env` fields; the environment wins over the file. Secrets are never logged.",
    )
    ingest_metrics_port: int = Field(
        9465, description="Port of a connector's /metrics endpoint (on DOZOR_METRICS_HOST)."
    )
    vk_callback_host: str = Field("0.0.0.0", description="Address of the VK Callback API server.")
    vk_callback_port: int = Field(8081, description="Port of the VK Callback API server.")
    vk_callback_max_body_bytes: int = Field(
        262144, description="Largest callback request body accepted; larger ones get 413."
    )
    vk_api_url: str = Field("https://api.vk.com/method", description="VK API base URL.")
    vk_api_version: str = Field("5.199", description="VK API version sent with every call.")
    vk_poll_interval_seconds: float = Field(
        60.0, description="Pause between two polling rounds over all pages of `dozor ingest vk-poll`."
    )
    vk_requests_per_second: float = Field(
        3.0,
        description="Default request rate per VK token (VK allows 3/s for user and service "
        "tokens); a page registry entry may set `vk_rate` for its token.",
    )
    telegram_bot_token: str | None = Field(
        None,
        description="Telegram bot token for `dozor ingest telegram` (the bot is an admin of "
        "each channel and a member of its discussion group). Unset: the connector does not start.",
    )
    telegram_api_url: str = Field("https://api.telegram.org", description="Telegram Bot API base URL.")
    telegram_poll_timeout_seconds: int = Field(
        25, description="Long-polling timeout of getUpdates."
    )
    vk_poll_recent_posts: int = Field(
        20, ge=1, le=1000,
        description="`dozor ingest vk-poll` follows the comments of a page's N newest posts; "
        "comments on older posts are not read (new posts are always read).",
    )
    vk_change_window_hours: float = Field(
        72.0, ge=0,
        description="`dozor ingest vk-poll`: comments of posts younger than this are checked "
        "for edits, deletions and restores; 0 = off.",
    )
    vk_rescan_every: int = Field(
        10, ge=0,
        description="`dozor ingest vk-poll`: re-read the checked posts every N rounds to see "
        "edits (with the 60 s interval: within ~10 min); 0 = only when a comment count changes.",
    )
    telegram_health_interval_seconds: float = Field(
        600.0, gt=0,
        description="`dozor ingest telegram`: how often each channel and discussion group is "
        "checked (the bot still an admin / member), apart from the check at the start.",
    )

    @staticmethod
    def secret_source() -> Mapping[str, str]:
        """The environment the connectors look secrets up in, by the names the page registry
        gives (`vk_secret_env`, `vk_token_env`) at run time: the one place besides the fields
        above that reads the environment. Callers pass the mapping down (`Secrets`)."""
        return os.environ

    # --- moderation (dozor moderation) -------------------------------------------------------
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the moderation store, e.g. "
        "`postgresql+psycopg://dozor:…@postgres/dozor`. Unset: a SQLite file "
        "`moderation.sqlite3` in DOZOR_DATA_DIR.",
    )
    moderation_host: str = Field("127.0.0.1", description="Address of the moderation web UI and API.")
    moderation_port: int = Field(8080, description="Port of the moderation web UI and API; 0 = any free.")
    moderation_metrics_port: int = Field(
        9466,
        description="Port of the moderation service's /metrics (on DOZOR_METRICS_HOST), apart "
        "from the UI port so that the queue figures are not public; 0 = any free.",
    )
    moderation_trusted_proxies: str = Field(
        "",
        description="Addresses of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto the "
        "moderation web app believes (comma-separated IPs or networks, e.g. "
        "`127.0.0.1,10.0.0.0/8`); the login rate limit then counts the real client. `*` "
        "believes every hop, so only where nothing but the proxy can reach the app. "
        "Empty: none (the connecting address is the client).",
    )
    moderation_group: str = Field(
        "dozor-moderation", description="Kafka consumer group of the moderation service."
    )
    moderation_cookie_secure: bool = Field(
        True,
        description="Mark session cookies Secure (HTTPS only; browsers accept them on "
        "http://localhost too). Turn off only behind plain HTTP on a trusted network.",
    )
    moderation_session_hours: float = Field(12.0, description="A login session expires after this.")
    moderation_login_attempts_per_minute: int = Field(
        5, description="Failed logins allowed per login name and per client address a minute."
    )
    moderation_thread_retention_days: float = Field(
        30.0, description="Days the moderation store keeps the events around flagged items."
    )
    moderation_commit_interval_seconds: float = Field(
        0.0,
        description="Commit the moderation consumer's offsets at most this often; 0 = after "
        "every batch. Rows are always committed first, so a crash only re-reads (harmless: "
        "items are upserted by flag id, updates by update id).",
    )


def load_settings(**overrides) -> Settings:
    """The settings of this process; an invalid ``DOZOR_*`` value ends the command with the reason."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SystemExit(f"invalid DOZOR_* setting:\n{exc}") from None
