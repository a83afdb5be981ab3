"""«Модель ошиблась»: feedback rows to Kafka and to the CSV that `dozor model train --data` reads.

Every stored feedback row is produced to the feedback topic (key: flag_id) and marked
produced only after the broker acknowledged it, so a crash re-sends rather than loses one.
``export_feedback`` writes the fine-tuning CSV of ``models/training/data.py``
(``read_user_csv``): columns ``text`` and ``label``, where label is the right labels joined by
``;`` (``question;negative``) or ``none`` when the moderator said the text is none of them, and
``unknown`` = ``positive``, the label the form does not ask about.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
from pathlib import Path

from services.moderation.store import FEEDBACK_LABELS, Feedback, ModerationStore

log = logging.getLogger(__name__)


def feedback_record(fb: Feedback) -> dict:
    """The JSON value produced to the feedback topic."""
    return {
        "id": fb.id, "flag_id": fb.flag_id, "at": fb.at, "user_id": fb.user_id,
        "text": fb.text, "labels": fb.labels(), "note": fb.note,
    }


def csv_label(fb: Feedback) -> str:
    """``question;toxic`` … or ``none`` (a negative example for every judged label)."""
    given = [name for name in FEEDBACK_LABELS if getattr(fb, name)]
    return ";".join(given) if given else "none"


#: Labels of the model the «модель ошиблась» form does not ask about: exported as unknown,
#: so that a thank-you marked "none" does not teach the model it is not positive.
UNJUDGED_LABELS = "positive"


def export_feedback(store: ModerationStore, out_path: str | Path) -> int:
    """Write the newest correction per item as ``text,label`` CSV; returns the rows written.

    Rows with empty text (a deleted comment) are left out: the training loader skips them.
    """
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [fb for fb in store.feedback_for_export() if fb.text.strip()]
    with out.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label", "unknown"])
        for fb in rows:
            writer.writerow([fb.text, csv_label(fb), UNJUDGED_LABELS])
    return len(rows)


async def produce_pending(store: ModerationStore, producer, topic: str, limit: int = 500) -> int:
    """Send the unproduced feedback rows and mark them produced once acknowledged."""
    pending = await asyncio.to_thread(store.unproduced_feedback, limit)
    if not pending:
        return 0
    futures = [
        await producer.send(topic, key=fb.flag_id.encode(),
                            value=json.dumps(feedback_record(fb), ensure_ascii=False).encode())
        for fb in pending
    ]
    await asyncio.gather(*futures)  # acknowledged by the broker
    await asyncio.to_thread(store.mark_feedback_produced, [fb.id for fb in pending])
    return len(pending)


async def run_feedback_producer(store: ModerationStore, bootstrap: str, topic: str,
                                stop: asyncio.Event, interval: float = 2.0,
                                on_produced=None) -> None:
    """Poll the store for new feedback every ``interval`` seconds and produce it until stopped."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        while not stop.is_set():
            try:
                n = await produce_pending(store, producer, topic)
                if n and on_produced:
                    on_produced(n)
            except Exception:
                log.warning("producing feedback failed; will retry", exc_info=True)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except asyncio.TimeoutError:
                pass
        try:
            await produce_pending(store, producer, topic)
        except Exception:
            log.warning("producing the last feedback failed; it is sent on the next start",
                        exc_info=True)
    finally:
        await producer.stop()
