"""Live: a real worker replays a scenario, real Prometheus and Alertmanager alert on it.

The repository's own configuration is rendered into a temporary directory with loopback
targets and ports. Only timings are changed in the rendered copy, never the logic: scrape
and evaluation every second, every `for:` cut to a few seconds, Alertmanager grouping
timers cut to a second. Then:

  * the unanswered-question alert fires in Prometheus for both pages of the scenario; the
    Alertmanager configuration is generated from deploy/alertmanager/routing.yaml with the
    Telegram API pointed at a local fake Bot API (tests/support/fake_bot_api.py) and a quiet
    window covering "now": the warning is held while the window lasts, then the window is
    moved to end at the next minute (config reload) and the alert arrives after it, as a
    Russian message, in each page's municipal chat and in the ЦУР duty chat (escalation),
    and at the ЦУР webhook;
  * the watchdog webhook answers 500: DozorAlertNotificationsFailing fires and reaches the
    Dozor on-call webhook;
  * every PromQL expression of every rule and every dashboard panel is evaluated against
    that Prometheus and must succeed; those about open/overdue questions must return data,
    and so must those about the moderation queue and about failing connector reads:
    a real `dozor moderation` (SQLite) consumes the worker's flags and is scraped as
    `dozor-moderation`, and the connectors' own metrics module (services/ingest/metrics.py)
    is served as `dozor-vk-poll` with one page whose reads fail.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from services.broker import free_port
from services.ingest.metrics import IngestMetrics, serve_metrics
from tests.support.deploy import ALERTMANAGER_DIR, DEPLOY, PROMETHEUS_DIR, rule_files, run_tool, tool, webhook_variables
from tests.support.fake_bot_api import FakeBotApi
from tests.support.kafka import replay_file
from tests.support.observe import wait_for
from tests.support.scripts import load_script

pytestmark = pytest.mark.broker

SCENARIO = Path(__file__).resolve().parent / "live_scenario"
SHORT_FOR = "3s"
PAGES = {
    "vk:-2000001": ("Администрация Вербовского района", "Вербовский район",
                    "mo-verbovsky-rayon"),
    "vk:-2000006": ("Администрация Сосновского сельского поселения",
                    "Сосновское сельское поселение", "mo-sosnovskoe-sp"),
}
BOT_TOKEN = "123456:TEST-token"
# The receiver that fails: its webhook answers 500.
FAILING = "ALERT_WEBHOOK_WATCHDOG"
# Values Grafana would put in place of the dashboards' variables.
DASHBOARD_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
    "$page_id": "vk:-2000006",
    "$municipality": ".*",
}


# --- local webhook receiver -------------------------------------------------------------

class WebhookReceiver:
    """Collects Alertmanager webhook POSTs: (path, payload)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append((self.path, json.loads(body)))
                self.send_response(500 if self.path.startswith("/fail/") else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self, alertname: str) -> list[tuple[str, dict]]:
        """(receiver path, alert) for every firing alert named `alertname` received so far."""
        return [(path, alert) for path, payload in list(self.received)
                for alert in payload["alerts"]
                if alert["labels"].get("alertname") == alertname and alert["status"] == "firing"]

    def close(self) -> None:
        self.server.shutdown()


# --- rendering the repository's configuration ----------------------------------------

def render_rules(destination: Path) -> Path:
    destination.mkdir()
    for path in rule_files():
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in doc["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = SHORT_FOR  # test timing only
        (destination / path.name).write_text(yaml.safe_dump(doc, allow_unicode=True),
                                             encoding="utf-8")
    return destination


# Scrape jobs of prometheus.yml that this test runs nothing for (dropped from the copy).
NOT_RUN = {"dozor-vk-callback", "dozor-telegram"}


def render_prometheus(tmp: Path, loopback: dict[str, int], am_port: int) -> Path:
    """The repository's prometheus.yml with every job it runs pointed at a loopback port."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")  # test timing
    rules = render_rules(tmp / "rules")
    config["rule_files"] = [str(rules / "*.yml")]
    config["alerting"]["alertmanagers"] = [
        {"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}
    ]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == set(loopback) | NOT_RUN, f"a scrape job the test does not know: {jobs}"
    config["scrape_configs"] = [job for job in config["scrape_configs"]
                                if job["job_name"] not in NOT_RUN]
    for job in config["scrape_configs"]:
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [f"127.0.0.1:{loopback[job['job_name']]}"]}]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def am_generator():
    return load_script(ALERTMANAGER_DIR / "generate.py")


def routing_for_test(telegram_url: str, quiet_until: float | None) -> dict:
    """The repository's routing.yaml with the Telegram API on loopback and a quiet window in
    UTC from 00:00 to `quiet_until` (minute precision, as time_intervals have it), or to the
    end of the day when None. Municipalities and receivers are the repository's."""
    routing = am_generator().load()
    routing["telegram"] = {"api_url": telegram_url}
    end = "24:00" if quiet_until is None else time.strftime("%H:%M", time.gmtime(quiet_until))
    end = "24:00" if end == "00:00" else end  # a window ending at midnight
    routing["quiet_hours"] = {"location": "UTC", "times": [{"start": "00:00", "end": end}]}
    return routing


def render_alertmanager_template(tmp: Path, routing: dict) -> Path:
    """The template generated from `routing`, grouping timers cut to a second (test timing)."""
    doc = yaml.safe_load(am_generator().render(routing))

    def shorten(route: dict) -> None:
        for key, value in (("group_wait", "1s"), ("group_interval", "1s"),
                           ("repeat_interval", "1m")):
            if key in route or route is doc["route"]:
                route[key] = value
        for child in route.get("routes", []):
            shorten(child)

    shorten(doc["route"])
    path = tmp / "alertmanager.yml.tmpl"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def shifted_events(tmp: Path) -> Path:
    """The scenario with its dates moved to just before now, keeping their spacing."""
    lines = [json.loads(line) for line in
             (SCENARIO / "events.jsonl").read_text(encoding="utf-8").splitlines() if line]
    newest = max(event["object"]["date"] for event in lines)
    offset = int(time.time()) - 5 - newest
    for event in lines:
        event["object"]["date"] += offset
    path = tmp / "events.jsonl"
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in lines),
                    encoding="utf-8")
    return path


# --- processes ------------------------------------------------------------------------

class Process:
    def __init__(self, args: list[str], log: Path, env: dict | None = None) -> None:
        self.log_path = log
        self.log = open(log, "ab")
        self.popen = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                      env={**os.environ, **(env or {})},
                                      start_new_session=True)

    def check(self) -> None:
        if self.popen.poll() is not None:
            raise AssertionError(f"exited {self.popen.returncode}: {self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self.log.close()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def ready(process: Process, url: str) -> bool:
    process.check()
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


# --- the expressions to evaluate ----------------------------------------------------

def rule_expressions() -> list[tuple[str, str]]:
    out = []
    for path in rule_files():
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                out.append((f"rule {rule.get('alert') or rule.get('record')}", rule["expr"]))
    return out


def dashboard_expressions() -> list[tuple[str, str]]:
    out = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel["targets"]:
                expr = target["expr"]
                for variable, value in DASHBOARD_VARIABLES.items():
                    expr = expr.replace(variable, value)
                assert "$" not in expr.replace("$1", ""), f"unsubstituted variable in {expr}"
                out.append((f"{board['uid']}: {panel['title']} [{target['refId']}]", expr))
    return out


def needs_data(expr: str) -> bool:
    """Expressions that must return data in this scenario.

    The scenario leaves open and overdue questions, the worker flags them into the
    moderation queue (new items), and one page's connector reads fail. The queue alert's
    own expression stays empty (it needs hours of growth in working hours).
    """
    if re.search(r"dozor_questions_(open|overdue)", expr):
        return True
    if "dozor_moderation_items" in expr and "deriv(" not in expr:
        return True
    return "dozor_ingest_last_failure_timestamp_seconds" in expr


def start_connector_metrics(port: int):
    """The connectors' metrics module, as `dozor ingest vk-poll` serves it.

    vk:-2000099 (not in the registry) has failed since its last success an hour ago;
    vk:-2000006 failed once and was read again, so its own alerts are not inhibited.
    """
    metrics = IngestMetrics()
    now = time.time()
    metrics.page_ok("vk:-2000099", at=now - 3600)
    metrics.page_failed("vk:-2000099", at=now - 5)
    metrics.page_failed("vk:-2000006", at=now - 600)
    metrics.page_ok("vk:-2000006", at=now - 5)
    metrics.request("vk-poll", "ok")
    metrics.request("vk-poll", "api_error")
    metrics.api_error("vk-poll", 5)
    metrics.produced("vk", "wall_reply_new", 3)
    server, _thread = serve_metrics(metrics, "127.0.0.1", port)
    return server


# --- the test -------------------------------------------------------------------------

@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def telegram():
    fake = FakeBotApi()
    yield fake
    fake.close()


def test_overdue_question_alerts_reach_the_municipality(worker_factory, kafka_bootstrap,
                                                        webhook, telegram, tmp_path):
    worker = worker_factory({
        "DOZOR_PAGES_FILE": str(SCENARIO / "pages.yaml"),
        # The test model has random weights: threshold 0 makes every comment a question.
        "DOZOR_THRESHOLDS": json.dumps({"question": 0.0}),
        "DOZOR_CLOCK_IDLE_SECONDS": "1",
    })
    prometheus_port, am_port = free_port(), free_port()
    moderation_port, connector_port = free_port(), free_port()
    moderation_metrics_port = free_port()
    processes: list[Process] = []
    connector_metrics = start_connector_metrics(connector_port)
    try:
        moderation_env = {k: v for k, v in worker.env.items()
                          if k.startswith("DOZOR_TOPIC_") or k == "DOZOR_KAFKA_BOOTSTRAP"}
        moderation_env = {k: v for k, v in os.environ.items() if not k.startswith("DOZOR_")} | \
            moderation_env | {
                "DOZOR_DATABASE_URL": f"sqlite:///{tmp_path / 'moderation.sqlite3'}",
                "DOZOR_DATA_DIR": str(tmp_path / "moderation-data"),
                "DOZOR_PAGES_FILE": str(SCENARIO / "pages.yaml"),
                "DOZOR_MODERATION_HOST": "127.0.0.1",
                "DOZOR_MODERATION_PORT": str(moderation_port),
                "DOZOR_MODERATION_METRICS_PORT": str(moderation_metrics_port),
                "DOZOR_METRICS_HOST": "127.0.0.1",
                "DOZOR_MODERATION_GROUP": f"{worker.env['DOZOR_APP_ID']}-moderation",
            }
        moderation = Process([sys.executable, "-m", "services.cli", "moderation"],
                             tmp_path / "moderation.log", env=moderation_env)
        processes.append(moderation)
        urls = {v: f"{webhook.url}/{v.removeprefix('ALERT_WEBHOOK_').lower().replace('_', '-')}"
                for v in webhook_variables()}
        urls[FAILING] = f"{webhook.url}/fail/watchdog"
        am_env = {"ALERTMANAGER_CONFIG": str(tmp_path / "alertmanager.yml"),
                  "ALERTMANAGER_TEMPLATES_DIR": str(ALERTMANAGER_DIR / "templates"),
                  "ALERTMANAGER_BIN": tool("prometheus-alertmanager"),
                  "ALERT_TELEGRAM_BOT_TOKEN": BOT_TOKEN, **urls}
        # Quiet hours until the end of the (UTC) day: every warning is held for now.
        template = render_alertmanager_template(tmp_path, routing_for_test(telegram.url, None))
        alertmanager = Process(
            ["sh", str(ALERTMANAGER_DIR / "render.sh"),
             f"--storage.path={tmp_path / 'am-data'}",
             f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
            tmp_path / "alertmanager.log",
            env={"ALERTMANAGER_TEMPLATE": str(template), **am_env},
        )
        processes.append(alertmanager)
        loopback = {"dozor-worker": worker.metrics_port, "prometheus": prometheus_port,
                    "alertmanager": am_port, "dozor-moderation": moderation_metrics_port,
                    "dozor-vk-poll": connector_port}
        prometheus = Process(
            [tool("prometheus"),
             f"--config.file={render_prometheus(tmp_path, loopback, am_port)}",
             f"--storage.tsdb.path={tmp_path / 'prom-data'}",
             f"--web.listen-address=127.0.0.1:{prometheus_port}",
             # Alerts that fire before the notifier has found Alertmanager are sent again
             # only after this delay (default 1m): test timing.
             "--rules.alert.resend-delay=2s"],
            tmp_path / "prometheus.log",
        )
        processes.append(prometheus)
        api = f"http://127.0.0.1:{prometheus_port}/api/v1"
        wait_for(lambda: ready(alertmanager, f"http://127.0.0.1:{am_port}/-/ready"), 30,
                 message="alertmanager ready")
        wait_for(lambda: ready(prometheus, f"http://127.0.0.1:{prometheus_port}/-/ready"), 30,
                 message="prometheus ready")
        wait_for(lambda: ready(moderation, f"http://127.0.0.1:{moderation_port}/healthz"), 120,
                 message="moderation ready")

        sent = replay_file(shifted_events(tmp_path), kafka_bootstrap,
                           topic=worker.topics["raw_vk"])
        assert sent == 4

        # 1. Prometheus: the alert fires for both pages, labelled from the page registry.
        def firing() -> list[dict]:
            alerts = get_json(f"{api}/alerts")["data"]["alerts"]
            return [a for a in alerts if a["labels"]["alertname"] == "DozorQuestionsOverdue"
                    and a["state"] == "firing"]

        alerts = wait_for(lambda: len(firing()) == 2 and firing(), 120,
                          message=f"DozorQuestionsOverdue firing; worker log: {worker.logs()}")
        for alert in alerts:
            name, municipality, _ = PAGES[alert["labels"]["page_id"]]
            assert alert["labels"]["name"] == name
            assert alert["labels"]["municipality"] == municipality
            assert name in alert["annotations"]["description"]
            assert municipality in alert["annotations"]["description"]

        # 2. Alertmanager holds the warning during the quiet window ...
        routing = am_generator().load()
        chats = {m["name"]: m["telegram_chat_id"] for m in routing["municipalities"]}
        cur_chat = routing["receivers"]["cur-duty"]["telegram_chat_id"]
        am_api = f"http://127.0.0.1:{am_port}/api/v2"

        def in_alertmanager() -> bool:
            alerts = get_json(f"{am_api}/alerts?filter=alertname%3D%22DozorQuestionsOverdue%22")
            return {a["labels"]["page_id"] for a in alerts} == set(PAGES)

        wait_for(in_alertmanager, 60, message=f"alerts in Alertmanager; {alertmanager.logs()}")
        # Several notification rounds pass (the failing watchdog's attempts count them) ...
        attempts = len(webhook.alerts("Watchdog"))
        wait_for(lambda: len(webhook.alerts("Watchdog")) >= attempts + 3, 60,
                 message="watchdog notification attempts")
        # ... and no warning was sent: not to Telegram, not to the ЦУР webhook.
        assert not [m for m in telegram.messages if "DozorQuestionsOverdue" in m.text]
        assert not webhook.alerts("DozorQuestionsOverdue")

        # ... until the window ends: now it ends at the next minute (15 s away at least).
        window_end = (int(time.time() + 15) // 60 + 1) * 60
        template = render_alertmanager_template(tmp_path,
                                                routing_for_test(telegram.url, window_end))
        run_tool(["sh", str(ALERTMANAGER_DIR / "render.sh"), "--render-only"],
                 env={"ALERTMANAGER_TEMPLATE": str(template), **am_env})
        urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{am_port}/-/reload", method="POST"), timeout=10)

        def delivered():
            got = {page_id: [m for m in telegram.to(chats[municipality], "DozorQuestionsOverdue")
                             if name in m.text]
                   for page_id, (name, municipality, _) in PAGES.items()}
            return all(got.values()) and got

        got = wait_for(delivered, 90,
                       message=f"Telegram messages; alertmanager log: {alertmanager.logs()}")
        for page_id, messages in got.items():
            name, municipality, _ = PAGES[page_id]
            other = [n for p, (n, _, _) in PAGES.items() if p != page_id]
            for message in messages:
                assert message.at >= window_end, "a held warning was sent inside the quiet window"
                assert message.token == BOT_TOKEN
                text = message.text
                assert text.startswith("🔴 Внимание: DozorQuestionsOverdue"), text
                assert f"Страница: {name} ({municipality})" in text, text
                assert "Вопросы жителей остаются без ответа после срока." in text, text
                assert "Что делать: https://" in text and "/DozorQuestionsOverdue.md" in text
                # a municipality's chat gets its own pages only
                assert not any(n in text for n in other), text
        # The ЦУР duty receiver gets every municipality's alert too (escalation, continue):
        # its Telegram chat and its webhook.
        for name, _, _ in PAGES.values():
            wait_for(lambda name=name: telegram.to(cur_chat, name), 30,
                     message=f"ЦУР chat message about {name}")
        wait_for(lambda: {a["labels"]["page_id"] for _, a in
                          webhook.alerts("DozorQuestionsOverdue")} == set(PAGES), 30,
                 message="DozorQuestionsOverdue at the ЦУР webhook")
        assert {path for path, _ in webhook.alerts("DozorQuestionsOverdue")} == {"/cur-duty"}
        assert min(m.at for m in telegram.to(cur_chat, "DozorQuestionsOverdue")) >= window_end
        for _, alert in webhook.alerts("DozorQuestionsOverdue"):
            name, municipality, _ = PAGES[alert["labels"]["page_id"]]
            assert f"«{name}» ({municipality}" in alert["annotations"]["description"]
            assert alert["annotations"]["runbook_url"].endswith("/DozorQuestionsOverdue.md")
        assert {path for path, _ in webhook.alerts("Watchdog")} == {"/fail/watchdog"}

        # The failing watchdog receiver (500) raises DozorAlertNotificationsFailing, which
        # reaches the Dozor on-call.
        failing = wait_for(
            lambda: [a for a in get_json(f"{api}/alerts")["data"]["alerts"]
                     if a["labels"]["alertname"] == "DozorAlertNotificationsFailing"
                     and a["state"] == "firing"], 60,
            message="DozorAlertNotificationsFailing firing")
        assert [a["labels"]["integration"] for a in failing] == ["webhook"]
        wait_for(lambda: webhook.alerts("DozorAlertNotificationsFailing"), 60,
                 message=f"DozorAlertNotificationsFailing at dozor-oncall; {alertmanager.logs()}")
        assert {path for path, _ in webhook.alerts("DozorAlertNotificationsFailing")} == \
            {"/dozor-oncall"}

        # 3. The flags reached the moderation queue, and Prometheus scraped it.
        def queued() -> bool:
            query = urllib.parse.urlencode(
                {"query": 'status:dozor_moderation_items:sum{status="new"}'})
            result = get_json(f"{api}/query?{query}")["data"]["result"]
            return bool(result) and float(result[0]["value"][1]) >= 2

        wait_for(queued, 60, message=f"flags in the moderation queue: {moderation.logs()}")
        connector_alert = wait_for(
            lambda: [a for a in get_json(f"{api}/alerts")["data"]["alerts"]
                     if a["labels"]["alertname"] == "DozorConnectorFailing"
                     and a["state"] == "firing"], 60, message="DozorConnectorFailing firing")
        assert [a["labels"]["page_id"] for a in connector_alert] == ["vk:-2000099"]
        # A connector alert goes to the ЦУР only, whatever page it is about.
        wait_for(lambda: webhook.alerts("DozorConnectorFailing"), 60,
                 message=f"DozorConnectorFailing at cur-duty; {alertmanager.logs()}")
        assert {path for path, _ in webhook.alerts("DozorConnectorFailing")} == {"/cur-duty"}

        # 4. Every rule and dashboard expression evaluates; those about questions, the
        # moderation queue and failing connector reads have data.
        failures = []
        for where, expr in rule_expressions() + dashboard_expressions():
            query = urllib.parse.urlencode({"query": expr})
            try:
                result = get_json(f"{api}/query?{query}")
            except urllib.error.HTTPError as error:
                failures.append(f"{where}: {error.read().decode()}")
                continue
            if result["status"] != "success":
                failures.append(f"{where}: {result}")
            elif needs_data(expr) and not result["data"]["result"]:
                failures.append(f"{where}: no data for\n    {expr}")
        assert not failures, "\n".join(failures)

        # The page dashboard's variable: label_values(dozor_page_info, page_id).
        values = get_json(f"{api}/label/page_id/values?match[]=dozor_page_info")["data"]
        assert set(PAGES) <= set(values)
    finally:
        for process in reversed(processes):
            process.stop()
        connector_metrics.shutdown()
        worker.stop()
