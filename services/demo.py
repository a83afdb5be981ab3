"""`dozor demo`: broker, worker, moderation queue, replay of the bundled sample, and a live
terminal view.

Nothing but this repository is needed: when DOZOR_KAFKA_BOOTSTRAP is unset an embedded
Kafka-compatible broker (Tansu) runs on a free loopback port for the demo's lifetime. The
moderation service (`dozor moderation`) keeps its queue in a SQLite file of the demo's
temporary directory and serves the web UI on a free loopback port, with a demo login made
for this run. The view is in Russian, as the ЦУР operators read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import tempfile
import time
import uuid
from collections import deque
from pathlib import Path

from services.broker import EmbeddedBroker, die_with_parent, free_port
from services.pages_view import format_age, page_rows, pages_table, scrape
from services.replay import read_lines, replay_lines
from services.settings import SAMPLE_DIR, Settings

REASONS_RU = {
    "toxic": "токсичный комментарий",
    "strongly_negative": "резкий негатив",
    "unanswered_question": "вопрос без ответа",
    "negative_spike": "всплеск негатива",
}


class DemoError(RuntimeError):
    pass


def run_demo(
    settings: Settings,
    events: Path | None,
    pages: Path | None,
    rate: float,
    duration: float | None,
    shift: bool = True,
) -> int:
    events = events or SAMPLE_DIR / "vk_events.jsonl"
    pages = pages or SAMPLE_DIR / "pages.yaml"
    for path in (events, pages):
        if not path.is_file():
            raise SystemExit(f"{path}: no such file")
    if not Path(settings.model).exists():
        raise SystemExit(
            f"model {settings.model} not found: set DOZOR_MODEL to a checkpoint directory "
            "or train the default one with `dozor model train`"
        )
    workdir = Path(tempfile.mkdtemp(prefix="dozor-demo-"))
    broker = None
    try:
        if settings.kafka_bootstrap:
            bootstrap = settings.kafka_bootstrap
            broker_note = f"{bootstrap} (DOZOR_KAFKA_BOOTSTRAP)"
        else:
            print("Запускаю встроенный Kafka-совместимый брокер (Tansu)…", flush=True)
            broker = EmbeddedBroker(log_path=workdir / "broker.log").start()
            bootstrap = broker.bootstrap
            broker_note = f"{bootstrap} (встроенный Tansu, в памяти)"
        return asyncio.run(
            _demo(settings, bootstrap, broker_note, events, pages, rate, duration, workdir,
                  shift, embedded=broker is not None)
        )
    except KeyboardInterrupt:
        return 130
    finally:
        if broker is not None:
            broker.stop()
            print("Брокер остановлен.")


def shift_to_now(lines: list[bytes], now: float) -> list[bytes]:
    """Move every payload's `date` by one offset so that the newest event happens at `now`.

    The sample is a recorded day; shifted, its questions wait minutes to hours rather than
    days, and the last hour's complaints count for the negative share. Unreadable lines stay
    as they are (the worker dead-letters them).
    """
    parsed = []
    newest = 0
    for line in lines:
        try:
            payload = json.loads(line)
            date = payload["object"]["date"]
        except (ValueError, KeyError, TypeError):
            parsed.append((line, None))
            continue
        if isinstance(date, int):
            newest = max(newest, date)
            parsed.append((line, payload))
        else:
            parsed.append((line, None))
    offset = int(now) - newest if newest else 0
    out = []
    for line, payload in parsed:
        if payload is None:
            out.append(line)
            continue
        payload["object"]["date"] += offset
        out.append(json.dumps(payload, ensure_ascii=False).encode())
    return out


async def _demo(settings, bootstrap, broker_note, events, pages, rate, duration, workdir,
                shift, embedded: bool = False) -> int:
    from rich.console import Console, Group
    from rich.live import Live
    from rich.panel import Panel
    from rich.table import Table

    console = Console()
    app_id = f"dozor-demo-{uuid.uuid4().hex[:6]}"
    port = settings.metrics_port if _port_free(settings.metrics_port) else free_port()
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOZOR_")}
    env.update(
        PYTHONUNBUFFERED="1",
        DOZOR_KAFKA_BOOTSTRAP=bootstrap,
        DOZOR_APP_ID=app_id,
        DOZOR_MODEL=str(settings.model),
        DOZOR_PAGES_FILE=str(pages),
        DOZOR_METRICS_HOST="127.0.0.1",
        DOZOR_METRICS_PORT=str(port),
        DOZOR_DATA_DIR=str(workdir / "state"),
        DOZOR_BROKER_SESSION_TIMEOUT_SECONDS="3",
        DOZOR_BROKER_HEARTBEAT_SECONDS="0.5",
        DOZOR_SWEEP_INTERVAL_SECONDS="1",
        # The sample is a past day: once it is replayed, let the clock run to now.
        DOZOR_CLOCK_IDLE_SECONDS="5",
    )
    # The embedded Tansu needs one record per batch (services/settings.py says why); the
    # user's broker (DOZOR_KAFKA_BOOTSTRAP) gets the user's DOZOR_PRODUCER_MAX_BATCH_BYTES.
    batch_bytes = 1 if embedded else settings.producer_max_batch_bytes
    env["DOZOR_PRODUCER_MAX_BATCH_BYTES"] = str(batch_bytes)
    log_path = workdir / "worker.log"
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "--log-level", "info", "worker",
        env=env, stdout=log_path.open("wb"), stderr=asyncio.subprocess.STDOUT,
        start_new_session=True, preexec_fn=die_with_parent,
    )
    moderation_port = (settings.moderation_port if _port_free(settings.moderation_port)
                       else free_port())
    moderation_url = f"http://127.0.0.1:{moderation_port}/"
    moderation_env = dict(env)
    moderation_env.update(
        DOZOR_DATABASE_URL=f"sqlite:///{workdir / 'moderation.sqlite3'}",
        DOZOR_MODERATION_HOST="127.0.0.1",
        DOZOR_MODERATION_PORT=str(moderation_port),
        DOZOR_MODERATION_METRICS_PORT="0",  # any free port: the demo shows no queue metrics
        DOZOR_MODERATION_GROUP=f"{app_id}-moderation",
        # Loopback only, plain HTTP: Chromium keeps Secure cookies on http://127.0.0.1, but
        # not every browser does (Safari), and the demo must log in wherever it is opened.
        DOZOR_MODERATION_COOKIE_SECURE="false",
    )
    moderation_log = workdir / "moderation.log"
    demo_login, demo_password = "demo", secrets.token_urlsafe(12)
    moderation = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    flags: deque = deque(maxlen=8)
    flag_count = {"n": 0}
    lines = shift_to_now(read_lines(events), time.time()) if shift else read_lines(events)
    progress = {"sent": 0}
    tasks: list[asyncio.Task] = []
    try:
        with console.status("Готовлю очередь модерации (база SQLite, демо-пользователь)…"):
            # `users add` migrates the empty database first; the service then finds it ready.
            await _add_demo_user(moderation_env, demo_login, demo_password, moderation_log)
        moderation = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "--log-level", "info", "moderation",
            env=moderation_env, stdout=moderation_log.open("ab"),
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent,
        )
        with console.status("Запускаю воркер Дозора (модель, брокер, группа потребителей)…"):
            await _wait_metrics(metrics_url, worker, log_path, stop)
        with console.status("Запускаю сервис модерации…"):
            await _wait_http(f"{moderation_url}healthz", moderation, "сервис модерации",
                             moderation_log, stop)
        console.print(f"Очередь модерации: {moderation_url} — вход: {demo_login} / "
                      f"{demo_password}")
        tasks.append(asyncio.create_task(
            _collect_flags(bootstrap, settings.topic_flags, app_id, flags, flag_count)))
        tasks.append(asyncio.create_task(
            _replay(bootstrap, settings.topic_raw_vk, lines, rate, progress)))
        started = last_line = time.monotonic()
        urls = Table.grid(padding=(0, 2))
        urls.add_row("Брокер Kafka:", broker_note)
        urls.add_row("Метрики Prometheus:", metrics_url)
        urls.add_row("Журнал воркера:", str(log_path))
        urls.add_row("Очередь модерации:",
                      f"{moderation_url} (вход: {demo_login} / {demo_password})")
        urls.add_row("Журнал модерации:", str(moderation_log))
        with Live(console=console, refresh_per_second=2, screen=False) as live:
            while not stop.is_set():
                if worker.returncode is not None:
                    raise DemoError(f"воркер завершился с кодом {worker.returncode}: {log_path}")
                if moderation.returncode is not None:
                    raise DemoError(f"сервис модерации завершился с кодом "
                                    f"{moderation.returncode}: {moderation_log}")
                try:
                    text = await loop.run_in_executor(None, scrape, metrics_url)
                except OSError:
                    text = ""
                rows, stream_time = page_rows([text]) if text else ([], None)
                attention = [r for r in rows if r.open_questions or r.flags or r.negative_share]
                header = (
                    f"[bold]Дозор[/bold] — демонстрация: {progress['sent']}/{len(lines)} событий "
                    f"VK отправлено, сигналов модераторам: {flag_count['n']}. "
                    f"Ctrl-C — остановить всё."
                )
                live.update(Group(
                    Panel(Group(header, urls), title="Дозор", border_style="blue"),
                    pages_table(attention, stream_time, limit=12),
                    _flags_table(flags),
                ))
                if not console.is_terminal and time.monotonic() - last_line >= 5:
                    # Not a terminal (a log, CI): Live draws only at the end, so say progress.
                    console.print(header)
                    last_line = time.monotonic()
                if duration is not None and time.monotonic() - started >= duration:
                    break
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if moderation is not None:
            await _terminate(moderation)
            console.print("Сервис модерации остановлен.")
        await _terminate(worker)
        console.print("Воркер остановлен.")
    console.print(f"Итого: сигналов модераторам {flag_count['n']}; журнал воркера: {log_path}")
    return 0


async def _terminate(process) -> None:
    """SIGTERM to the process group, SIGKILL after 20 s."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout=20)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


async def _add_demo_user(env: dict, login: str, password: str, log_path: Path) -> None:
    """`dozor users add LOGIN --role operator --password-stdin` in the demo's database."""
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "users", "add", login, "--role", "operator",
            "--display-name", "Демо-модератор", "--password-stdin",
            env=env, stdin=asyncio.subprocess.PIPE, stdout=log, stderr=asyncio.subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        await process.communicate(f"{password}\n".encode())
    if process.returncode != 0:
        raise DemoError(f"не удалось создать демо-пользователя (код {process.returncode}), "
                        f"см. {log_path}")


async def _wait_http(url: str, process, what: str, log_path: Path, stop: asyncio.Event) -> None:
    """Wait until `url` answers 2xx, the process exits, or 120 s pass."""
    import urllib.request

    def get() -> None:
        with urllib.request.urlopen(url, timeout=2):
            pass

    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not stop.is_set():
        if process.returncode is not None:
            raise DemoError(f"{what} не запустился (код {process.returncode}), см. {log_path}")
        try:
            await loop.run_in_executor(None, get)
            return
        except OSError:
            await asyncio.sleep(0.5)
    if not stop.is_set():
        raise DemoError(f"{what} не ответил за 120 с, см. {log_path}")


def _port_free(port: int) -> bool:
    import socket

    if not port:
        return False
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def _wait_metrics(url: str, worker, log_path: Path, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not stop.is_set():
        if worker.returncode is not None:
            raise DemoError(f"воркер не запустился (код {worker.returncode}), см. {log_path}")
        try:
            await loop.run_in_executor(None, scrape, url)
            return
        except OSError:
            await asyncio.sleep(0.5)
    if not stop.is_set():
        raise DemoError(f"воркер не ответил за 120 с, см. {log_path}")


async def _replay(
    bootstrap: str, topic: str, lines: list[bytes], rate: float, progress: dict
) -> None:
    class Counter:
        def update(self, n: int) -> None:
            progress["sent"] += n

    await replay_lines(bootstrap, topic, lines, rate, Counter())


async def _collect_flags(
    bootstrap: str, topic: str, group: str, flags: deque, count: dict
) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"{group}-view",
        auto_offset_reset="earliest", fetch_max_wait_ms=200,
    )
    await consumer.start()
    try:
        async for message in consumer:
            flags.appendleft(json.loads(message.value))
            count["n"] += 1
    finally:
        await consumer.stop()


def _flags_table(flags: deque):
    from rich.table import Table

    table = Table(title="Последние сигналы модераторам", expand=False)
    for header in ("Причина", "Страница", "Текст", "Ссылка"):
        table.add_column(header, overflow="fold")
    for flag in flags:
        details = flag.get("details") or {}
        reason = REASONS_RU.get(flag["reason"], flag["reason"])
        if flag["reason"] == "unanswered_question" and "age_seconds" in details:
            reason += f" ({format_age(details['age_seconds'])})"
        text = flag.get("text", "")
        table.add_row(
            reason, flag.get("page_name", flag["page_id"]),
            text[:70] + ("…" if len(text) > 70 else ""), flag.get("link", ""),
        )
    return table
