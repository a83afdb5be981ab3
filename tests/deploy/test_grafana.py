"""Grafana dashboards: generated from code, committed, provisioned, in Russian."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.support.deploy import DEPLOY, unknown_metrics
from tests.support.scripts import load_script

GRAFANA = DEPLOY / "grafana"
UIDS = {"dozor-overview", "dozor-page", "dozor-pipeline", "dozor-moderation", "dozor-connectors"}
CYRILLIC = re.compile("[а-яё]", re.IGNORECASE)


def load_generator():
    return load_script(GRAFANA / "generate.py")


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def test_committed_json_equals_generator_output():
    rendered = load_generator().render()
    committed = {name: (GRAFANA / "dashboards" / name).read_text(encoding="utf-8")
                 for name in rendered}
    stale = [name for name in rendered if rendered[name] != committed[name]]
    assert not stale, f"run `python deploy/grafana/generate.py`: {stale} differ"
    assert set(dashboards()) == set(rendered), "a dashboard JSON not made by the generator"


def test_stable_uids_and_russian_titles():
    boards = dashboards().values()
    assert {b["uid"] for b in boards} == UIDS
    for board in boards:
        assert CYRILLIC.search(board["title"])
        for panel in board["panels"]:
            assert CYRILLIC.search(panel["title"]), panel["title"]


@pytest.mark.parametrize("name", sorted(dashboards()))
def test_panels_query_prometheus(name):
    board = dashboards()[name]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"]["uid"] == "${datasource}"


def test_queries_name_declared_metrics_and_recording_rules():
    """Every dozor_* series a panel reads is declared in the code or recorded by a rule."""
    unknown = []
    for board in dashboards().values():
        for panel in board["panels"]:
            for target in panel["targets"]:
                unknown += [f"{board['uid']} / {panel['title']}: {name}"
                            for name in unknown_metrics(target["expr"])]
    assert not unknown, "\n".join(sorted(set(unknown)))


def test_moderation_and_connector_panels():
    """Issue 16 and 17: the dashboards show the queue and the connectors (contract D names)."""
    exprs = {uid: " ".join(t["expr"] for p in board["panels"] for t in p["targets"])
             for uid, board in ((b["uid"], b) for b in dashboards().values())}
    for metric in ("dozor_moderation_items", "dozor_moderation_oldest_new_item_timestamp_seconds",
                   "dozor_moderation_first_action_seconds_bucket",
                   "dozor_moderation_resolution_seconds_bucket",
                   "dozor_moderation_actions_total"):
        assert metric in exprs["dozor-moderation"], metric
    for grouping in ("by (status)", "by (reason)", "by (municipality)", "by (action)"):
        assert grouping in exprs["dozor-moderation"], grouping
    for metric in ("dozor_ingest_requests_total", "dozor_ingest_events_total",
                   "dozor_ingest_api_errors_total",
                   "page_id:dozor_ingest_last_failure_timestamp_seconds:max"):
        assert metric in exprs["dozor-connectors"], metric
    for grouping in ("by (connector, outcome)", "by (platform, type)", "by (connector, code)"):
        assert grouping in exprs["dozor-connectors"], grouping


def test_page_dashboard_variable():
    """The page dropdown shows names, for the chosen municipalities; values are page ids."""
    board = dashboards()["dozor-page.json"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    names = [v["name"] for v in board["templating"]["list"]]
    assert names.index("municipality") < names.index("page_id") < names.index("vk_club")
    page = variables["page_id"]
    assert page["definition"] == \
        'query_result(page_id:dozor_page_info:max{municipality=~"$municipality"})'
    regex = re.compile(page["regex"].strip("/").replace("?<", "?P<"))
    line = ('page_id:dozor_page_info:max{category="администрация", municipality="Вербовский '
            'район", name="Администрация Вербовского района", page_id="vk:-2000001", '
            'platform="vk"} 1 1700000000000')
    match = regex.search(line)
    assert match["text"] == "Администрация Вербовского района"
    assert match["value"] == "vk:-2000001"


def test_page_dashboard_links_to_the_page_on_vk():
    board = dashboards()["dozor-page.json"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    club = re.compile(variables["vk_club"]["regex"].strip("/"))
    assert club.search("vk:-2000001").group(1) == "2000001"
    assert not club.search("telegram:-1002000007")
    panel = next(p for p in board["panels"] if p["title"] == "Страница")
    assert panel["links"][0]["url"] == "https://vk.com/club${vk_club}"


def test_overview_table_links_to_the_page_dashboard():
    board = dashboards()["dozor-overview.json"]
    table = next(p for p in board["panels"] if p["type"] == "table")
    links = [prop["value"] for o in table["fieldConfig"]["overrides"]
             for prop in o["properties"] if prop["id"] == "links"]
    assert links and all("/d/dozor-page?var-page_id=${__data.fields.page_id}" in l[0]["url"]
                         for l in links)


def test_provisioning():
    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    uids = {d["uid"] for d in datasource["datasources"]}
    assert "dozor-prometheus" in uids
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/dozor.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards/dozor"
    for board in dashboards().values():
        ds = next(v for v in board["templating"]["list"] if v["name"] == "datasource")
        assert ds["current"]["value"] == "dozor-prometheus"


TOPIC_PANEL = "Темы негативных комментариев по муниципалитетам"
TOPIC_TESTS = DEPLOY / "prometheus" / "tests" / "dozor-topics.test.yml"


def topic_panel_query(municipality: str) -> str:
    """The panel's query as Grafana sends it: range 1h, the municipality variable set."""
    board = dashboards()["dozor-overview.json"]
    panel = next(p for p in board["panels"] if p["title"] == TOPIC_PANEL)
    [query] = panel["targets"]
    return query["expr"].replace("$__range", "1h").replace("$municipality", municipality)


def test_overview_shows_negative_topics_by_municipality():
    """Issue 21: the panel counts negative comments by municipality and topic name over the range."""
    board = dashboards()["dozor-overview.json"]
    panel = next(p for p in board["panels"] if p["title"] == TOPIC_PANEL)
    [query] = panel["targets"]
    assert query["format"] == "table" and query["instant"] is True
    for part in ("sum by (municipality, name)", "increase(dozor_negative_comments_by_topic_total[$__range])",
                 'page_id:dozor_page_info:max{municipality=~"$municipality"}', "topic:dozor_topic_info:max"):
        assert part in query["expr"], part
    [matrix] = panel["transformations"]
    assert matrix["id"] == "groupingToMatrix"
    assert matrix["options"] == {"columnField": "name", "rowField": "municipality", "valueField": "Value"}
    assert not unknown_metrics(query["expr"])


def test_topic_panel_query_on_promtool(tmp_path):
    """The panel's own query, run by promtool on the series of dozor-topics.test.yml: one count
    per municipality and topic name, a page exported by two workers counted once per worker's
    increase, the municipality variable filtering."""
    from tests.support.deploy import run_tool, tool

    source = yaml.safe_load(TOPIC_TESTS.read_text(encoding="utf-8"))
    case = source["tests"][0]
    verbovsky, sosnovka = "Вербовский район", "Сосновское сельское поселение"
    spec = {
        "rule_files": [str(DEPLOY / "prometheus" / "rules" / "dozor-recording.yml")],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": case["interval"], "input_series": case["input_series"],
            "promql_expr_test": [
                {"expr": topic_panel_query(".*"), "eval_time": "30m", "exp_samples": [
                    {"labels": f'{{municipality="{verbovsky}",name="Дороги"}}', "value": 30},
                    {"labels": f'{{municipality="{verbovsky}",name="Мусор и свалки"}}', "value": 0},
                    {"labels": f'{{municipality="{sosnovka}",name="Мусор и свалки"}}', "value": 60},
                ]},
                {"expr": topic_panel_query(sosnovka), "eval_time": "30m", "exp_samples": [
                    {"labels": f'{{municipality="{sosnovka}",name="Мусор и свалки"}}', "value": 60},
                ]},
            ],
        }],
    }
    path = tmp_path / "topics-panel.test.yml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    run_tool([tool("promtool"), "test", "rules", str(path)])
