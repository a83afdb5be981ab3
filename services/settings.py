"""The one settings object of Dozor.

Every process reads its configuration here, once, where it is wired together, and hands
plain values down to `streams/` and `models/`. Every field can be set from the environment
with the prefix ``DOZOR_`` (``DOZOR_KAFKA_BOOTSTRAP=kafka:9092``) or from a ``.env`` file.
The README's settings table is generated from these descriptions (``dozor settings``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "default"
SAMPLE_DIR = REPO_ROOT / "services" / "sample"


class Settings(BaseSettings):
    """Dozor configuration; see README "Settings" for the table."""

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
        "dozor.events", description="Canonical events, keyed by page (one partition owns a page)."
    )
    topic_classified: str = Field(
        "dozor.classified", description="Every classified comment with its scores."
    )
    topic_flags: str = Field("dozor.flags", description="Items a human should see (JSON).")
    topic_dead_letters: str = Field(
        "dozor.dead-letters", description="Malformed payloads with the reason and original bytes."
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
    dead_letter_max_consecutive: int = Field(
        1000,
        description="Stop the worker after this many invalid payloads in a row (a bad "
        "deploy or a wrong topic) instead of dead-lettering everything; 0 = never stop.",
    )
    data_dir: Path = Field(
        Path(".cache/dozor"), description="Worker-local state directory (Faust table cache)."
    )

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
        "with the other texts of a batch; measured in the README benchmark.",
    )
    inference_threads: int = Field(
        1,
        description="torch intra-op threads of the classifier; 0 = torch's default (all "
        "cores). One leaves a core to the event loop and the broker (see bench/).",
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
