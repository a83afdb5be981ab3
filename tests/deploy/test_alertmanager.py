"""Alertmanager: generated from routing.yaml, renders, amtool accepts it, alerts reach the
right receivers (municipality first, the ЦУР by escalation), warnings wait out quiet hours."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.support.deploy import DEPLOY, REPO, alert_rules, render_alertmanager, run_tool, tool, webhook_variables
from tests.support.scripts import load_script


def receiver_of(variable: str) -> str:
    return variable.removeprefix("ALERT_WEBHOOK_").lower().replace("_", "-")


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> str:
    urls = {v: f"http://127.0.0.1:9/{receiver_of(v)}?token=a&b=|c" for v in webhook_variables()}
    path = render_alertmanager(tmp_path_factory.mktemp("am") / "alertmanager.yml", urls)
    return str(path)


def routes(config: str, *labels: str) -> list[str]:
    result = run_tool([tool("amtool"), "config", "routes", "test", f"--config.file={config}",
                       *labels])
    return result.stdout.strip().split(",")


def municipalities() -> list[str]:
    pages = yaml.safe_load((DEPLOY / "pages.example.yaml").read_text(encoding="utf-8"))["pages"]
    return sorted({page["municipality"] for page in pages})


def municipality_receivers(config: str) -> dict[str, str]:
    tree = yaml.safe_load(open(config, encoding="utf-8"))["route"]
    out = {}
    for route in tree["routes"]:
        for matcher in route.get("matchers", []):
            match = re.fullmatch(r'municipality="(.+)"', matcher)
            if match:
                out[match.group(1)] = route["receiver"]
    return out


def test_amtool_check_config(config):
    run_tool([tool("amtool"), "check-config", config])


def test_render_keeps_urls_verbatim(config):
    text = open(config, encoding="utf-8").read()
    assert not re.search(r"\$\{ALERT_WEBHOOK_[A-Z0-9_]+\}", text)
    assert "http://127.0.0.1:9/cur-duty?token=a&b=|c" in text


def render_env(tmp_path, **overrides) -> dict:
    env = {"PATH": "/usr/bin:/bin",
           "ALERTMANAGER_TEMPLATE": str(DEPLOY / "alertmanager" / "alertmanager.yml.tmpl"),
           "ALERTMANAGER_CONFIG": str(tmp_path / "am.yml"),
           "ALERT_TELEGRAM_BOT_TOKEN": "1:t"}
    env.update({v: f"http://127.0.0.1:9/{receiver_of(v)}" for v in webhook_variables()})
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def render_result(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(DEPLOY / "alertmanager" / "render.sh"), "--render-only"],
                          env=env, capture_output=True, text=True)


def test_render_refuses_a_missing_url(tmp_path):
    result = render_result(render_env(tmp_path, ALERT_WEBHOOK_CUR_DUTY=None))
    assert result.returncode != 0 and "ALERT_WEBHOOK_CUR_DUTY is not set" in result.stderr
    assert not (tmp_path / "am.yml").exists()


def test_render_refuses_an_empty_url(tmp_path):
    """What compose passes for a variable missing from .env (${VAR:-})."""
    result = render_result(render_env(tmp_path, ALERT_WEBHOOK_WATCHDOG=""))
    assert result.returncode != 0 and "ALERT_WEBHOOK_WATCHDOG is not set" in result.stderr


@pytest.mark.parametrize("url", ["http://alert-relay.invalid/dozor/cur-duty",
                                 "https://relay.example.invalid", "http://x.invalid:8080/a"])
def test_render_refuses_an_invalid_host(tmp_path, url):
    result = render_result(render_env(tmp_path, ALERT_WEBHOOK_CUR_DUTY=url))
    assert result.returncode != 0 and ".invalid" in result.stderr


def test_render_reads_the_telegram_token_from_a_file(tmp_path):
    token = tmp_path / "token"
    token.write_text("123456:ABC-def_ghi\n")
    result = render_result(render_env(tmp_path, ALERT_TELEGRAM_BOT_TOKEN=None,
                                      ALERT_TELEGRAM_BOT_TOKEN_FILE=str(token)))
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((tmp_path / "am.yml").read_text(encoding="utf-8"))
    tokens = {c["bot_token"] for r in config["receivers"] for c in r.get("telegram_configs", [])}
    assert tokens == {"123456:ABC-def_ghi"}


def test_render_refuses_an_empty_token_file(tmp_path):
    """The compose default is the empty example file: no start until a real token is set."""
    result = render_result(render_env(
        tmp_path, ALERT_TELEGRAM_BOT_TOKEN=None,
        ALERT_TELEGRAM_BOT_TOKEN_FILE=str(DEPLOY / "alertmanager" / "telegram-bot-token.example")))
    assert result.returncode != 0 and "ALERT_TELEGRAM_BOT_TOKEN is not set" in result.stderr


# --- routing.yaml: the one place of municipalities and receivers --------------------------

def generator():
    return load_script(DEPLOY / "alertmanager" / "generate.py")


def routing() -> dict:
    return yaml.safe_load((DEPLOY / "alertmanager" / "routing.yaml").read_text("utf-8"))


def test_committed_template_is_generated_from_routing_yaml():
    module = generator()
    committed = (DEPLOY / "alertmanager" / "alertmanager.yml.tmpl").read_text(encoding="utf-8")
    assert committed == module.render(routing()), \
        "stale: run python deploy/alertmanager/generate.py"


def test_routing_names_every_municipality_of_the_registries():
    listed = {m["name"] for m in routing()["municipalities"]}
    for registry in (DEPLOY / "pages.example.yaml",
                     REPO / "tests/deploy/live_scenario/pages.yaml"):
        pages = yaml.safe_load(registry.read_text(encoding="utf-8"))["pages"]
        assert {p["municipality"] for p in pages} <= listed, registry


def test_generator_rejects_inconsistent_routing():
    module = generator()
    base = routing()
    twice = {**base, "municipalities": base["municipalities"] + base["municipalities"][:1]}
    with pytest.raises(module.RoutingError, match="twice"):
        module.build(twice)
    mute = {**base, "municipalities": [{"name": "Нигде", "receiver": "mo-nowhere"}]}
    with pytest.raises(module.RoutingError, match="telegram_chat_id or webhook"):
        module.build(mute)
    bad_chat = {**base, "municipalities": [{"name": "Нигде", "receiver": "mo-nowhere",
                                            "telegram_chat_id": "@chat"}]}
    with pytest.raises(module.RoutingError, match="integer"):
        module.build(bad_chat)


def test_municipality_receivers_are_telegram_chats_of_routing_yaml(config):
    rendered = yaml.safe_load(open(config, encoding="utf-8"))
    receivers = {r["name"]: r for r in rendered["receivers"]}
    for entry in routing()["municipalities"]:
        telegram = receivers[entry["receiver"]]["telegram_configs"][0]
        assert telegram["chat_id"] == entry["telegram_chat_id"]
        assert telegram["bot_token"] == "123456:test-token"
        assert telegram["send_resolved"] is True
        assert "dozor.telegram.message" in telegram["message"]
    assert receivers["cur-duty"]["telegram_configs"] and receivers["cur-duty"]["webhook_configs"]
    templates = (DEPLOY / "alertmanager" / "templates" / "dozor.tmpl").read_text("utf-8")
    assert "Решено" in templates and "Что делать" in templates


def leaf_routes(route: dict):
    for child in route.get("routes", []):
        yield child
        yield from leaf_routes(child)


def test_quiet_hours_hold_warnings_never_critical(config):
    rendered = yaml.safe_load(open(config, encoding="utf-8"))
    assert [t["name"] for t in rendered["time_intervals"]] == ["quiet-hours"]
    quiet = rendered["time_intervals"][0]["time_intervals"]
    assert all(entry["location"] == routing()["quiet_hours"]["location"] for entry in quiet)
    for route in leaf_routes(rendered["route"]):
        if 'severity="critical"' in route.get("matchers", []):
            assert "mute_time_intervals" not in route, route
    muted = [r for r in leaf_routes(rendered["route"]) if r.get("mute_time_intervals")]
    receivers = {r["receiver"] for r in muted}
    assert {m["receiver"] for m in routing()["municipalities"]} | {"cur-duty"} <= receivers


def test_cur_escalation_waits_and_follows_every_municipality_route(config):
    rendered = yaml.safe_load(open(config, encoding="utf-8"))
    routes = rendered["route"]["routes"]
    municipal = [r for r in routes if any(m.startswith("municipality=\"")
                                          for m in r.get("matchers", []))]
    assert municipal and all(r["continue"] is True for r in municipal)
    escalation = next(r for r in routes if r.get("matchers") == ['municipality=~".+"'])
    assert routes.index(escalation) > routes.index(municipal[-1])
    assert escalation["receiver"] == "cur-duty"
    assert escalation["group_wait"] == routing()["cur_escalation"]["escalate_after"]


def test_every_example_municipality_has_its_own_receiver(config):
    receivers = municipality_receivers(config)
    assert set(municipalities()) <= set(receivers)
    assert len(set(receivers.values())) == len(receivers)


@pytest.mark.parametrize("municipality", municipalities())
@pytest.mark.parametrize("severity", ["critical", "warning", "info"])
def test_page_alert_reaches_its_municipality_then_the_cur(config, municipality, severity):
    got = routes(config, "alertname=DozorQuestionsOverdue", f"severity={severity}",
                 "scope=page", "page_id=vk:-2000001", f"municipality={municipality}",
                 "name=Страница")
    assert got == [municipality_receivers(config)[municipality], "cur-duty"]


def test_municipality_alert_reaches_the_municipality_and_the_cur(config):
    got = routes(config, "alertname=DozorQuestionsUnansweredDays", "severity=warning",
                 "scope=municipality", "municipality=Вербовский район")
    assert got == ["mo-verbovsky-rayon", "cur-duty"]


def test_unregistered_page_goes_to_cur(config):
    assert routes(config, "alertname=DozorQuestionsOverdue", "severity=warning", "scope=page",
                  "page_id=vk:-2999999") == ["cur-duty"]


def test_pipeline_alerts_go_to_engineers_by_severity(config):
    for rule in alert_rules():
        labels = rule["labels"]
        if labels.get("scope") != "pipeline":
            continue
        expected = "dozor-oncall" if labels["severity"] == "critical" else "dozor-engineers"
        got = routes(config, f"alertname={rule['alert']}", f"severity={labels['severity']}",
                     "scope=pipeline")
        assert got == [expected], rule["alert"]


@pytest.mark.parametrize("municipality", municipalities())
def test_connector_alert_goes_to_cur_only(config, municipality):
    """A failing connector carries its page's municipality, but the ЦУР keeps the tokens."""
    got = routes(config, "alertname=DozorConnectorFailing", "severity=warning",
                 "scope=connector", "page_id=vk:-2000001", f"municipality={municipality}",
                 "name=Страница")
    assert got == ["cur-duty"]


def test_moderation_queue_alert_goes_to_cur(config):
    got = routes(config, "alertname=DozorModerationQueueGrowing", "severity=warning",
                 "scope=moderation")
    assert got == ["cur-duty"]


def test_every_rule_scope_has_its_receivers(config):
    """Each alert of the rule files, with its own labels, reaches exactly the expected receivers."""
    expected = {"pipeline": None, "connector": ["cur-duty"], "moderation": ["cur-duty"]}
    for rule in alert_rules():
        labels = rule["labels"]
        scope = labels.get("scope")
        if scope not in expected:
            continue
        want = expected[scope] or (
            ["dozor-oncall"] if labels["severity"] == "critical" else ["dozor-engineers"])
        got = routes(config, f"alertname={rule['alert']}", f"severity={labels['severity']}",
                     f"scope={scope}", "municipality=Вербовский район")
        assert got == want, rule["alert"]


def test_watchdog_goes_to_the_dead_mans_switch(config):
    assert routes(config, "alertname=Watchdog", "severity=none") == ["watchdog"]


def test_webhook_urls_come_from_compose_and_env_example():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    environment = compose["services"]["alertmanager"]["environment"]
    example = (REPO / ".env.example").read_text(encoding="utf-8")
    for variable in webhook_variables():
        assert environment[variable] == "${%s:-}" % variable, variable
        assert re.search(rf"^{variable}=$", example, flags=re.MULTILINE), variable
    assert "alert-relay.invalid" not in (REPO / "docker-compose.yml").read_text("utf-8")


def test_inhibition_targets_page_alerts():
    text = (DEPLOY / "alertmanager" / "alertmanager.yml.tmpl").read_text(encoding="utf-8")
    rules = yaml.safe_load(text)["inhibit_rules"]
    sources = {m for rule in rules for m in rule["source_matchers"]}
    assert 'alertname="DozorWorkerDown"' in sources
    assert 'alertname="DozorIngestionStalled"' in sources
    connector = next(r for r in rules
                     if r["source_matchers"] == ['alertname="DozorConnectorFailing"'])
    assert connector["target_matchers"] == ['scope="page"'] and connector["equal"] == ["page_id"]
