"""Prometheus configuration, recording and alerting rules, their unit tests and runbooks."""

from __future__ import annotations

import re

import pytest

from tests.support.deploy import PROMETHEUS_DIR, RUNBOOK_BASE_URL, RUNBOOK_DIR, alert_rules, load_rules, rule_files, run_tool, tool, unknown_metrics

SEVERITIES = {"critical", "warning", "info", "none"}
RUNBOOK_SECTIONS = ("Значение", "Влияние", "Диагностика", "Устранение")
CYRILLIC = re.compile("[а-яё]", re.IGNORECASE)
# Alerts the issue asks for; a rename must be deliberate.
REQUIRED_ALERTS = {
    "DozorQuestionsOverdue", "DozorNegativeSpike", "DozorPageSilent",
    "DozorMunicipalityAnswersLate", "DozorIngestionStalled", "DozorWorkerDown",
    "DozorConsumerLagGrowing", "DozorDeadLettersRising", "DozorClassifierSlow", "Watchdog",
    # issue 16 (moderation queue) and issue 17 (connectors)
    "DozorModerationQueueGrowing", "DozorModerationServiceDown",
    "DozorConnectorFailing", "DozorConnectorDown",
    # issue 18 (alerting that reaches people): stale clock, working days, self-monitoring
    "DozorStreamClockStale", "DozorQuestionsUnansweredDays", "DozorAlertNotificationsFailing",
    "DozorAlertmanagerUnreachable", "DozorRuleEvaluationFailing",
}
# Alerts whose thresholds live in dozor-thresholds.yml (global:...:threshold), not in the rule.
THRESHOLDED = {"DozorIngestionStalled", "DozorStreamClockStale", "DozorQuestionsUnansweredDays",
               "DozorNegativeSpike"}
SCOPES = {"page", "municipality", "pipeline", "connector", "moderation"}


def test_promtool_check_config():
    run_tool([tool("promtool"), "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")])


def test_promtool_check_rules():
    run_tool([tool("promtool"), "check", "rules", *map(str, rule_files())])


def test_promtool_unit_tests():
    tests = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
    assert tests, "no promtool unit tests in deploy/prometheus/tests"
    run_tool([tool("promtool"), "test", "rules", *map(str, tests)], cwd=PROMETHEUS_DIR)


def test_every_alert_has_a_promtool_test_before_and_after_for():
    """Each alert: a test expecting nothing and a test expecting exact labels/annotations."""
    import yaml

    empty, exact = set(), set()
    for path in sorted((PROMETHEUS_DIR / "tests").glob("*.yml")):
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                expected = check.get("exp_alerts") or []
                if not expected:
                    empty.add(check["alertname"])
                elif all("exp_labels" in a and "exp_annotations" in a for a in expected):
                    exact.add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - empty == set(), "alerts without a 'not yet firing' check"
    assert names - exact == set(), "alerts without an exact labels+annotations check"


def test_required_alerts_exist():
    assert REQUIRED_ALERTS <= {rule["alert"] for rule in alert_rules()}


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_conventions(rule):
    name = rule["alert"]
    assert re.fullmatch(r"(Dozor[A-Z][A-Za-z]+|Watchdog)", name), "CamelCase, Dozor prefix"
    assert rule.get("for"), f"{name}: every alert needs for:"
    labels, annotations = rule.get("labels", {}), rule.get("annotations", {})
    assert labels.get("severity") in SEVERITIES, f"{name}: severity"
    for key in ("summary", "description", "runbook_url"):
        assert annotations.get(key), f"{name}: annotation {key}"
    assert "{{" not in annotations["summary"], f"{name}: summary must be static"
    assert "{{" in annotations["description"], f"{name}: description must be templated"
    assert CYRILLIC.search(annotations["summary"]) and CYRILLIC.search(annotations["description"])
    assert annotations["runbook_url"] == f"{RUNBOOK_BASE_URL}{name}.md"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_page_alerts_carry_page_and_municipality(rule):
    """Alertmanager routes page alerts on `municipality`: they must join the page registry.

    A connector alert is about one page too: it names the page the same way.
    """
    scope = rule.get("labels", {}).get("scope")
    assert scope in SCOPES or rule["alert"] == "Watchdog", f"{rule['alert']}: scope {scope}"
    if scope in ("page", "connector"):
        assert "group_left (platform, name, municipality)" in rule["expr"] or \
            'page_id:dozor_page_info:max{name!=""}' in rule["expr"], rule["alert"]
        assert "$labels.name" in rule["annotations"]["description"]
        assert "$labels.municipality" in rule["annotations"]["description"]
    elif scope == "municipality":
        assert "$labels.municipality" in rule["annotations"]["description"]


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_runbook_exists_with_sections(rule):
    path = RUNBOOK_DIR / f"{rule['alert']}.md"
    assert path.is_file(), f"missing runbook {path}"
    text = path.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+?)\s*$", text, flags=re.MULTILINE)
    assert headings == list(RUNBOOK_SECTIONS), f"{path.name}: sections {headings}"


def test_no_orphan_runbooks():
    names = {rule["alert"] for rule in alert_rules()}
    assert {p.stem for p in RUNBOOK_DIR.glob("*.md")} == names


def test_rules_use_the_scrape_jobs_of_prometheus_yml():
    """A `job="..."` in a rule must name a job that prometheus.yml scrapes."""
    import yaml

    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    for rule in load_rules():
        for match in re.finditer(r'job(=~?)"([^"]+)"', rule["expr"]):
            named = match.group(2).split("|") if match.group(1) == "=~" else [match.group(2)]
            assert set(named) <= jobs, f"{rule.get('alert') or rule.get('record')}: {named}"


def test_new_service_metrics_are_the_contract_names():
    """The connector and moderation rules read the metric names of the team's contract D."""
    exprs = " ".join(rule["expr"] for rule in load_rules())
    for name in ("dozor_ingest_last_success_timestamp_seconds",
                 "dozor_ingest_last_failure_timestamp_seconds",
                 "dozor_moderation_items", "dozor_moderation_oldest_new_item_timestamp_seconds"):
        assert name in exprs, name


@pytest.mark.parametrize("rule", load_rules(), ids=lambda r: r.get("alert") or r["record"])
def test_rules_read_declared_metrics(rule):
    """A rule over a misspelt or undeclared metric would never fire: names must exist."""
    assert not unknown_metrics(rule["expr"])


def test_recording_rule_names():
    for rule in load_rules():
        if "record" in rule:
            level, metric, operations = rule["record"].split(":")
            assert metric.startswith("dozor_") and operations, rule["record"]


@pytest.mark.parametrize("name", sorted(THRESHOLDED))
def test_thresholds_are_kept_in_one_place(name):
    """The alert reads its thresholds from the recording rules of dozor-thresholds.yml."""
    rule = next(r for r in alert_rules() if r["alert"] == name)
    assert "scalar(global:dozor_" in rule["expr"], name
    bare = re.findall(r"[<>]=?\s*[0-9.]+", rule["expr"])
    assert not bare, f"{name}: literal thresholds {bare}"
    recorded = {r["record"] for r in load_rules() if "record" in r and r["_file"] ==
                "dozor-thresholds.yml"}
    for used in re.findall(r"global:dozor_[a-z_]+:[a-z]+", rule["expr"]):
        assert used in recorded, used


def test_ingestion_stalled_survives_a_restart():
    """Silence is judged from Prometheus's memory of the last event and the worker start."""
    rules = {r.get("record"): r["expr"] for r in load_rules() if "record" in r}
    silence = rules["platform:dozor_ingestion_silence_seconds:max"]
    assert "dozor_worker_start_timestamp_seconds" in silence
    assert "max_over_time(dozor_last_event_timestamp_seconds[" in \
        rules["platform:dozor_last_event_timestamp_seconds:max"]
