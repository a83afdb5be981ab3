"""Alertmanager: the template renders, amtool accepts it, alerts reach the right receiver."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.deploy.support import (
    DEPLOY,
    REPO,
    alert_rules,
    render_alertmanager,
    run_tool,
    tool,
    webhook_variables,
)


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


def test_render_refuses_a_missing_url(tmp_path):
    import subprocess

    result = subprocess.run(
        ["sh", str(DEPLOY / "alertmanager" / "render.sh"), "--render-only"],
        env={"PATH": "/usr/bin:/bin",
             "ALERTMANAGER_TEMPLATE": str(DEPLOY / "alertmanager" / "alertmanager.yml.tmpl"),
             "ALERTMANAGER_CONFIG": str(tmp_path / "am.yml")},
        capture_output=True, text=True,
    )
    assert result.returncode != 0 and "is not set" in result.stderr


def test_every_example_municipality_has_its_own_receiver(config):
    receivers = municipality_receivers(config)
    assert set(municipalities()) <= set(receivers)
    assert len(set(receivers.values())) == len(receivers)


@pytest.mark.parametrize("municipality", municipalities())
@pytest.mark.parametrize("severity", ["warning", "info"])
def test_page_alert_reaches_only_its_municipality(config, municipality, severity):
    got = routes(config, "alertname=DozorQuestionsOverdue", f"severity={severity}",
                 "scope=page", "page_id=vk:-2000001", f"municipality={municipality}",
                 "name=Страница")
    assert got == [municipality_receivers(config)[municipality]]


def test_municipality_alert_reaches_cur_and_the_municipality(config):
    got = routes(config, "alertname=DozorMunicipalityAnswersLate", "severity=warning",
                 "scope=municipality", "municipality=Вербовский район")
    assert got == ["cur-duty", "mo-verbovsky-rayon"]


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
        assert variable in environment, variable
        assert re.search(rf"^{variable}=\S+", example, flags=re.MULTILINE), variable


def test_inhibition_targets_page_alerts():
    text = (DEPLOY / "alertmanager" / "alertmanager.yml.tmpl").read_text(encoding="utf-8")
    rules = yaml.safe_load(text)["inhibit_rules"]
    sources = {m for rule in rules for m in rule["source_matchers"]}
    assert 'alertname="DozorWorkerDown"' in sources
    assert 'alertname="DozorIngestionStalled"' in sources
    connector = next(r for r in rules
                     if r["source_matchers"] == ['alertname="DozorConnectorFailing"'])
    assert connector["target_matchers"] == ['scope="page"'] and connector["equal"] == ["page_id"]
