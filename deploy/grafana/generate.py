#!/usr/bin/env python3
"""Generate Dozor's Grafana dashboards: plain dicts in, committed JSON out.

    python deploy/grafana/generate.py          # rewrite deploy/grafana/dashboards/*.json
    python deploy/grafana/generate.py --check  # exit 1 if the committed JSON is stale

The JSON files are committed so that Grafana provisioning needs no build step; a test
asserts they equal this generator's output. No dependencies beyond the standard library.
Panel titles and descriptions are in Russian: the dashboards are read by ЦУР operators.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39
TAGS = ["dozor"]

# The page registry filtered by the overview's municipality variable (see
# deploy/prometheus/rules/dozor-recording.yml for page_id:dozor_page_info:max).
PAGE_INFO = 'page_id:dozor_page_info:max{municipality=~"$municipality"}'
STREAM_NOW = "scalar(max(dozor_stream_time_timestamp_seconds))"
# Pages needing attention: overdue questions or a firing page alert.
ATTENTION = (
    "group by (page_id) (page_id:dozor_questions_overdue:max > 0)"
    ' or on (page_id) group by (page_id) (ALERTS{alertstate="firing", scope="page"})'
)
PAGE_DASHBOARD_LINK = "/d/dozor-page?var-page_id=${__data.fields.page_id}&${__url_time_range}"


# --- building blocks ---------------------------------------------------------------------

def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False,
           table: bool = False) -> dict:
    out = {"datasource": DATASOURCE, "expr": expr, "refId": ref}
    if legend:
        out["legendFormat"] = legend
    if instant or table:
        out["instant"] = True
        out["range"] = False
    if table:
        out["format"] = "table"
    return out


def panel(kind: str, title: str, targets: list[dict], grid: tuple[int, int, int, int],
          description: str = "", unit: str = "short", **extra) -> dict:
    x, y, w, h = grid
    out = {
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    if description:
        out["description"] = description
    out.update(extra)
    return out


def stat(title: str, expr: str, grid, unit: str = "short", description: str = "",
         thresholds: list[tuple[float | None, str]] | None = None, legend: str = "",
         text_mode: str = "auto") -> dict:
    steps = [{"color": color, "value": value}
             for value, color in (thresholds or [(None, "green")])]
    p = panel("stat", title, [target(expr, legend, instant=True)], grid, description, unit)
    p["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": steps}
    p["options"] = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "background" if thresholds else "none",
        "graphMode": "none",
        "textMode": text_mode,
        "justifyMode": "auto",
    }
    return p


def timeseries(title: str, targets: list[dict], grid, unit: str = "short",
               description: str = "", bars: bool = False, stack: bool = False) -> dict:
    p = panel("timeseries", title, targets, grid, description, unit)
    custom = {"drawStyle": "bars" if bars else "line", "fillOpacity": 60 if bars else 10,
              "lineWidth": 1, "showPoints": "never", "spanNulls": False}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    p["fieldConfig"]["defaults"]["custom"] = custom
    p["options"] = {
        "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return p


def lettered(exprs: list[tuple[str, str]], **kw) -> list[dict]:
    return [target(expr, legend, ref=chr(ord("A") + i), **kw)
            for i, (expr, legend) in enumerate(exprs)]


def dashboard(uid: str, title: str, description: str, panels: list[dict],
              variables: list[dict], refresh: str = "1m", time_from: str = "now-24h") -> dict:
    for number, p in enumerate(panels, 1):
        p["id"] = number
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": TAGS,
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": refresh,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "links": [
            {"type": "dashboards", "tags": TAGS, "asDropdown": True, "title": "Дозор",
             "includeVars": False, "keepTime": True},
        ],
        "annotations": {"list": []},
        "templating": {"list": [datasource_variable(), *variables]},
        "panels": panels,
    }


def datasource_variable() -> dict:
    return {
        "name": "datasource",
        "label": "Источник данных",
        "type": "datasource",
        "query": "prometheus",
        "current": {"selected": False, "text": "Prometheus", "value": "dozor-prometheus"},
        "hide": 0,
        "refresh": 1,
        "regex": "",
    }


def query_variable(name: str, label: str, query: str, multi: bool = False) -> dict:
    out = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": query,
        "refresh": 2,
        "sort": 1,
        "hide": 0,
        "multi": multi,
        "includeAll": multi,
        "current": {},
        "options": [],
    }
    if multi:
        out["allValue"] = ".*"
        out["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return out


# --- Обзор ---------------------------------------------------------------------------------

def attention_table(grid) -> dict:
    def column(value_expr: str) -> str:
        return (f"({value_expr}) * on (page_id) group_left (name, municipality) {PAGE_INFO}"
                f" and on (page_id) ({ATTENTION})")

    columns = [
        ("Просрочено", "page_id:dozor_questions_overdue:max", "short"),
        ("Открыто", "page_id:dozor_questions_open:max", "short"),
        ("Ждёт ответа", f"{STREAM_NOW} - page_id:dozor_oldest_open_question_timestamp_seconds:max",
         "dtdurations"),
        ("Негатив за час", "page_id:dozor_page_negative_ratio:max", "percentunit"),
        ("Без постов", f"{STREAM_NOW} - page_id:dozor_last_post_timestamp_seconds:max",
         "dtdurations"),
        ("Оповещения", 'count by (page_id) (ALERTS{alertstate="firing", scope="page"})', "short"),
    ]
    targets = [target(column(expr), ref=chr(ord("A") + i), table=True)
               for i, (_, expr, _) in enumerate(columns)]
    p = panel(
        "table", "Страницы, требующие внимания", targets, grid,
        "Страницы с просроченными вопросами или активными оповещениями. Щелчок по названию "
        "открывает дашборд страницы. Сортировка — по любому столбцу.",
    )
    rename = {"name": "Страница", "municipality": "Муниципалитет", "page_id": "ID страницы"}
    order = {"name": 0, "municipality": 1, "page_id": 2}
    for i, (title, _, _) in enumerate(columns):
        rename[f"Value #{chr(ord('A') + i)}"] = title
        order[f"Value #{chr(ord('A') + i)}"] = 3 + i
    p["transformations"] = [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {"Time": True},
                                       "renameByName": rename, "indexByName": order}},
    ]
    link = [{"title": "Открыть дашборд страницы", "url": PAGE_DASHBOARD_LINK}]
    p["fieldConfig"]["overrides"] = [
        {"matcher": {"id": "byName", "options": "Страница"},
         "properties": [{"id": "links", "value": link}, {"id": "custom.width", "value": 360}]},
        {"matcher": {"id": "byName", "options": "ID страницы"},
         "properties": [{"id": "links", "value": link}]},
        *[{"matcher": {"id": "byName", "options": title},
           "properties": [{"id": "unit", "value": unit}]}
          for title, _, unit in columns],
        {"matcher": {"id": "byName", "options": "Просрочено"},
         "properties": [{"id": "custom.cellOptions", "value": {"type": "color-background"}},
                        {"id": "thresholds", "value": {"mode": "absolute", "steps": [
                            {"color": "transparent", "value": None},
                            {"color": "red", "value": 1}]}}]},
    ]
    p["options"] = {"showHeader": True, "cellHeight": "sm",
                    "sortBy": [{"displayName": "Просрочено", "desc": True}],
                    "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    return p


# Negative comments over the dashboard's range by municipality and topic (the topic's Russian
# name from the model's dozor_topic_info): issue 21. A comment without a topic is not counted.
TOPICS_BY_MUNICIPALITY = (
    "sum by (municipality, name) ("
    "increase(dozor_negative_comments_by_topic_total[$__range])"
    f" * on (page_id) group_left (municipality) {PAGE_INFO}"
    " * on (topic) group_left (name) topic:dozor_topic_info:max)"
)


def topics_by_municipality(grid) -> dict:
    p = panel(
        "barchart", "Темы негативных комментариев по муниципалитетам",
        [target(TOPICS_BY_MUNICIPALITY, table=True)], grid,
        "Негативные комментарии жителей за выбранный период по темам, которые назвала модель "
        "(16 тем ЦУР: дороги, ЖКХ, мусор…). Комментарии, в которых модель не нашла темы, "
        "не учитываются; без тематической головы у модели панель пуста.",
    )
    p["transformations"] = [
        {"id": "groupingToMatrix",
         "options": {"columnField": "name", "rowField": "municipality", "valueField": "Value"}},
    ]
    p["fieldConfig"]["defaults"]["custom"] = {"fillOpacity": 80, "lineWidth": 0}
    p["options"] = {
        "orientation": "horizontal", "stacking": "normal", "showValue": "never",
        "barWidth": 0.8, "groupWidth": 0.7, "xTickLabelRotation": 0,
        "legend": {"showLegend": True, "displayMode": "list", "placement": "right"},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return p


def overview() -> dict:
    by_municipality = 'municipality=~"$municipality"'
    answered = 'outcome=~"answered_in_time|answered_late"'
    negative_share_by_municipality = (
        "sum by (municipality) (page_id_label:dozor_comments_classified:rate1h{label=\"negative\"}"
        f" * on (page_id) group_left (municipality) {PAGE_INFO})"
        " / sum by (municipality) (page_id:dozor_comments:rate1h"
        f" * on (page_id) group_left (municipality) {PAGE_INFO})"
    )
    panels = [
        stat("Открытые вопросы",
             f"sum(municipality:dozor_questions_open:sum{{{by_municipality}}})", (0, 0, 4, 4),
             description="Вопросы жителей, на которые страницы ещё не ответили."),
        stat("Просроченные вопросы",
             f"sum(municipality:dozor_questions_overdue:sum{{{by_municipality}}})", (4, 0, 4, 4),
             description="Вопросы без ответа после срока страницы.",
             thresholds=[(None, "green"), (1, "red")]),
        stat("Страниц с просрочкой",
             f"count((page_id:dozor_questions_overdue:max > 0) and on (page_id) {PAGE_INFO})"
             " or vector(0)", (8, 0, 4, 4), thresholds=[(None, "green"), (1, "orange")]),
        stat("Доля негатива за час",
             "sum(page_id_label:dozor_comments_classified:rate1h{label=\"negative\"}"
             f" and on (page_id) {PAGE_INFO})"
             f" / sum(page_id:dozor_comments:rate1h and on (page_id) {PAGE_INFO})",
             (12, 0, 4, 4), unit="percentunit",
             thresholds=[(None, "green"), (0.3, "orange"), (0.5, "red")]),
        stat("Ответы в срок за сутки",
             f'sum(municipality_outcome:dozor_questions:increase1d{{outcome="answered_in_time", {by_municipality}}})'
             f" / sum(municipality_outcome:dozor_questions:increase1d{{{answered}, {by_municipality}}})",
             (16, 0, 4, 4), unit="percentunit",
             thresholds=[(None, "red"), (0.8, "orange"), (0.95, "green")]),
        stat("Активные оповещения",
             f'count(ALERTS{{alertstate="firing", scope=~"page|municipality", {by_municipality}}})'
             " or vector(0)", (20, 0, 4, 4), thresholds=[(None, "green"), (1, "orange")]),
        attention_table((0, 4, 24, 10)),
        timeseries("Открытые вопросы по муниципалитетам",
                   [target(f"municipality:dozor_questions_open:sum{{{by_municipality}}}",
                           "{{municipality}}")], (0, 14, 12, 8), stack=True),
        timeseries("Просроченные вопросы по муниципалитетам",
                   [target(f"municipality:dozor_questions_overdue:sum{{{by_municipality}}}",
                           "{{municipality}}")], (12, 14, 12, 8), stack=True),
        timeseries("Доля негативных комментариев за час по муниципалитетам",
                   [target(negative_share_by_municipality, "{{municipality}}")],
                   (0, 22, 12, 8), unit="percentunit"),
        timeseries("Поздние ответы за сутки по муниципалитетам",
                   [target(f"municipality:dozor_questions_answered_late:ratio1d{{{by_municipality}}}",
                           "{{municipality}}")], (12, 22, 12, 8), unit="percentunit",
                   description="Доля ответов, данных позже срока, среди всех ответов за сутки."),
        timeseries("Время ответа страниц (перцентили за час)",
                   lettered([
                       (f"histogram_quantile({q}, sum by (le) (rate(dozor_answer_seconds_bucket[1h])))",
                        f"p{int(q * 100)}") for q in (0.5, 0.9, 0.99)
                   ]), (0, 30, 24, 8), unit="s",
                   description="От вопроса жителя до ответа страницы, по всем страницам "
                               "(гистограмма не делится по муниципалитетам)."),
        topics_by_municipality((0, 38, 24, 10)),
    ]
    return dashboard(
        "dozor-overview", "Дозор — Обзор",
        "Госпаблики региона: вопросы без ответа, негатив, страницы, требующие внимания.",
        panels,
        [query_variable("municipality", "Муниципалитет",
                        "label_values(dozor_page_info, municipality)", multi=True)],
    )


# --- Страница ------------------------------------------------------------------------------

# The page dropdown: names (text) for page ids (value), only the chosen municipalities'.
# query_result prints labels in alphabetical order: name before page_id.
PAGE_VARIABLE_QUERY = 'query_result(page_id:dozor_page_info:max{municipality=~"$municipality"})'
PAGE_VARIABLE_REGEX = '/name="(?<text>[^"]*)".*page_id="(?<value>[^"]*)"/'
# The page on VK: vk:-<community id> -> https://vk.com/club<community id>.
VK_PAGE_URL = "https://vk.com/club${vk_club}"


def page_variable() -> dict:
    out = query_variable("page_id", "Страница", PAGE_VARIABLE_QUERY)
    out["regex"] = PAGE_VARIABLE_REGEX
    return out


def vk_club_variable() -> dict:
    """Hidden: the VK community id of the chosen page (empty for Telegram pages)."""
    out = query_variable("vk_club", "VK",
                         'label_values(page_id:dozor_page_info:max{page_id="$page_id"}, page_id)')
    out["regex"] = "/^vk:-([0-9]+)$/"
    out["hide"] = 2
    return out


def page() -> dict:
    sel = 'page_id="$page_id"'
    name_panel = stat("Страница", f"page_id:dozor_page_info:max{{{sel}}}", (0, 0, 8, 4),
                      legend="{{name}} — {{municipality}}", text_mode="name")
    name_panel["links"] = [{"title": "Открыть страницу во ВКонтакте", "url": VK_PAGE_URL,
                            "targetBlank": True}]
    panels = [
        name_panel,
        stat("Открытые вопросы", f"page_id:dozor_questions_open:max{{{sel}}}", (8, 0, 3, 4)),
        stat("Просроченные", f"page_id:dozor_questions_overdue:max{{{sel}}}", (11, 0, 3, 4),
             thresholds=[(None, "green"), (1, "red")]),
        stat("Самый старый вопрос ждёт",
             f"{STREAM_NOW} - page_id:dozor_oldest_open_question_timestamp_seconds:max{{{sel}}}",
             (14, 0, 4, 4), unit="dtdurations"),
        stat("Доля негатива в окне", f"page_id:dozor_page_negative_ratio:max{{{sel}}}",
             (18, 0, 3, 4), unit="percentunit",
             thresholds=[(None, "green"), (0.3, "orange"), (0.5, "red")]),
        stat("Последний пост",
             f"{STREAM_NOW} - page_id:dozor_last_post_timestamp_seconds:max{{{sel}}}",
             (21, 0, 3, 4), unit="dtdurations", description="Сколько времени назад."),
        timeseries("Вопросы жителей", lettered([
            (f"page_id:dozor_questions_open:max{{{sel}}}", "открытые"),
            (f"page_id:dozor_questions_overdue:max{{{sel}}}", "просроченные"),
        ]), (0, 4, 12, 8)),
        timeseries("Закрытые вопросы за час по исходам",
                   [target(f"sum by (outcome) (increase(dozor_questions_total{{{sel}}}[1h]))",
                           "{{outcome}}")], (12, 4, 12, 8), bars=True, stack=True),
        timeseries("Комментарии в час", lettered([
            (f"page_id:dozor_comments:rate1h{{{sel}}} * 3600", "все"),
            (f"page_id_label:dozor_comments_classified:rate1h{{{sel}}} * 3600", "{{label}}"),
        ]), (0, 12, 12, 8)),
        timeseries("Негатив в окне всплеска", lettered([
            (f"page_id:dozor_page_negative_comments:max{{{sel}}}", "негативных комментариев"),
        ]), (12, 12, 12, 8),
                   description="Порог оповещения: не меньше 5 негативных и доля не меньше 50 %."),
        timeseries("Флаги модераторам за час",
                   [target(f"sum by (reason) (increase(dozor_flags_total{{{sel}}}[1h]))",
                           "{{reason}}")], (0, 20, 12, 8), bars=True, stack=True),
        timeseries("Посты за сутки",
                   [target(f"sum(increase(dozor_posts_total{{{sel}}}[1d]))", "посты")],
                   (12, 20, 12, 8)),
        stat("Последнее успешное чтение коннектором",
             f"time() - page_id:dozor_ingest_last_success_timestamp_seconds:max{{{sel}}}",
             (0, 28, 12, 3), unit="dtdurations",
             description="Сколько времени назад коннектор (Callback API, опрос VK, Telegram) "
                         "прочитал страницу без ошибки. Нет данных — страницу не читает ни один "
                         "коннектор или не прочитал ни разу."),
        stat("Последняя ошибка чтения",
             f"time() - page_id:dozor_ingest_last_failure_timestamp_seconds:max{{{sel}}}",
             (12, 28, 12, 3), unit="dtdurations",
             description="Сколько времени назад чтение страницы завершилось ошибкой."),
        panel("table", "Активные оповещения страницы",
              [target(f'ALERTS{{alertstate="firing", {sel}}}', table=True)], (0, 31, 24, 6),
              transformations=[{"id": "organize", "options": {
                  "excludeByName": {"Time": True, "Value": True, "__name__": True,
                                    "alertstate": True},
                  "renameByName": {"alertname": "Оповещение", "severity": "Важность"}}}]),
    ]
    return dashboard(
        "dozor-page", "Дозор — Страница",
        "История одной страницы: вопросы, ответы, негатив, посты.",
        panels,
        [query_variable("municipality", "Муниципалитет",
                        "label_values(dozor_page_info, municipality)", multi=True),
         page_variable(),
         vk_club_variable()],
        time_from="now-7d",
    )


# --- Конвейер ------------------------------------------------------------------------------

def pipeline() -> dict:
    quantiles = (0.5, 0.9, 0.99)
    panels = [
        stat("Воркеры в работе", 'count(up{job="dozor-worker"} == 1) or vector(0)', (0, 0, 4, 4),
             thresholds=[(None, "red"), (1, "green")]),
        stat("События в секунду", "sum(platform:dozor_events:rate5m)", (4, 0, 4, 4),
             unit="ops"),
        stat("Отставание, сообщений", "sum(topic:dozor_consumer_lag_messages:sum)",
             (8, 0, 4, 4), thresholds=[(None, "green"), (1000, "orange")]),
        stat("Dead letters за час", "sum(increase(dozor_dead_letters_total[1h]))", (12, 0, 4, 4),
             thresholds=[(None, "green"), (1, "orange")]),
        stat("Последнее событие",
             "time() - max by (platform) (dozor_last_event_timestamp_seconds > 0)", (16, 0, 4, 4),
             unit="dtdurations", legend="{{platform}}", description="Сколько времени назад."),
        stat("Часы потока отстают", "time() - max(dozor_stream_time_timestamp_seconds)", (20, 0, 4, 4),
             unit="s", description="Разница настенного времени и часов потока."),
        timeseries("События в секунду",
                   [target("sum by (platform, kind, action) (rate(dozor_events_total[$__rate_interval]))",
                           "{{platform}} {{kind}} {{action}}")], (0, 4, 12, 8), unit="ops",
                   stack=True),
        timeseries("Отставание потребителя по партициям",
                   [target("max by (topic, partition) (dozor_consumer_lag_messages)",
                           "{{topic}} [{{partition}}]")], (12, 4, 12, 8)),
        timeseries("Время пакета классификатора", lettered([
            (f"histogram_quantile({q}, sum by (le) (rate(dozor_classifier_batch_seconds_bucket[$__rate_interval])))",
             f"p{int(q * 100)}") for q in quantiles
        ]), (0, 12, 12, 8), unit="s"),
        timeseries("Размер пакета классификатора", lettered([
            ("sum(rate(dozor_classifier_batch_size_sum[$__rate_interval]))"
             " / sum(rate(dozor_classifier_batch_size_count[$__rate_interval]))", "среднее"),
            ("histogram_quantile(0.9, sum by (le) (rate(dozor_classifier_batch_size_bucket[$__rate_interval])))",
             "p90"),
        ]), (12, 12, 12, 8), description="Текстов в одном пакете."),
        timeseries("Dead letters по причинам",
                   [target("sum by (reason) (rate(dozor_dead_letters_total[$__rate_interval]))",
                           "{{reason}}")], (0, 20, 12, 8), unit="ops"),
        timeseries("Флаги модераторам по причинам",
                   [target("sum by (reason) (rate(dozor_flags_total[$__rate_interval]))",
                           "{{reason}}")], (12, 20, 12, 8), unit="ops"),
        panel("table", "Воркеры", [target("dozor_worker_info", table=True)], (0, 28, 24, 6),
              transformations=[{"id": "organize", "options": {
                  "excludeByName": {"Time": True, "Value": True, "__name__": True},
                  "renameByName": {"instance": "Воркер", "version": "Версия",
                                   "model": "Модель"}}}]),
    ]
    return dashboard(
        "dozor-pipeline", "Дозор — Конвейер",
        "Обработка событий: поток, отставание Kafka, классификатор, dead letters.",
        panels, [], refresh="30s", time_from="now-6h",
    )


# --- Модерация -----------------------------------------------------------------------------

# Replicas of the moderation service export the same database figures: max before sum
# (as status:dozor_moderation_items:sum in dozor-recording.yml), filtered by the variable.
def moderation_items(status: str = "") -> str:
    status_matcher = f'status="{status}", ' if status else ""
    return ("max by (status, reason, municipality) (dozor_moderation_items"
            f'{{{status_matcher}municipality=~"$municipality"}})')


OLDEST_NEW_ITEM_AGE = "time() - min(dozor_moderation_oldest_new_item_timestamp_seconds > 0)"


def moderation_quantiles(metric: str, window: str = "1h") -> list[dict]:
    return lettered([
        (f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket[{window}])))",
         f"p{int(q * 100)}") for q in (0.5, 0.9)
    ])


def moderation() -> dict:
    panels = [
        stat("Новые в очереди", f"sum({moderation_items('new')}) or vector(0)", (0, 0, 4, 4),
             description="Записи, которые ещё никто не взял в работу.",
             thresholds=[(None, "green"), (50, "orange"), (200, "red")]),
        stat("В работе", f"sum({moderation_items('in_progress')}) or vector(0)", (4, 0, 4, 4)),
        stat("Самая старая новая запись ждёт", OLDEST_NEW_ITEM_AGE, (8, 0, 4, 4),
             unit="dtdurations", thresholds=[(None, "green"), (4 * 3600, "orange")],
             description="По всей очереди (метрика не делится по муниципалитетам). "
                         "Оповещение DozorModerationQueueGrowing: больше 4 часов и очередь растёт."),
        stat("До первого действия, медиана за сутки",
             "histogram_quantile(0.5, sum by (le) (rate(dozor_moderation_first_action_seconds_bucket[1d])))",
             (12, 0, 4, 4), unit="s",
             description="От сигнала до первого действия человека (взять, решить)."),
        stat("До решения, медиана за сутки",
             "histogram_quantile(0.5, sum by (le) (rate(dozor_moderation_resolution_seconds_bucket[1d])))",
             (16, 0, 4, 4), unit="s"),
        stat("Сигналов за сутки",
             "sum(increase(dozor_moderation_flags_ingested_total[1d]))", (20, 0, 4, 4),
             description="Записей, добавленных в очередь из топика dozor.flags."),
        timeseries("Очередь по статусам",
                   [target(f"sum by (status) ({moderation_items()})", "{{status}}")],
                   (0, 4, 12, 8), stack=True),
        timeseries("Возраст самой старой новой записи",
                   [target(OLDEST_NEW_ITEM_AGE, "самая старая новая")], (12, 4, 12, 8),
                   unit="s"),
        timeseries("Новые записи по причинам",
                   [target(f"sum by (reason) ({moderation_items('new')})", "{{reason}}")],
                   (0, 12, 12, 8), stack=True),
        timeseries("Новые записи по муниципалитетам",
                   [target(f"sum by (municipality) ({moderation_items('new')})",
                           "{{municipality}}")], (12, 12, 12, 8), stack=True),
        timeseries("Время до первого действия (перцентили за час)",
                   moderation_quantiles("dozor_moderation_first_action_seconds"),
                   (0, 20, 12, 8), unit="s",
                   description="От сигнала до первого действия человека, по всей очереди."),
        timeseries("Время до решения (перцентили за час)",
                   moderation_quantiles("dozor_moderation_resolution_seconds"),
                   (12, 20, 12, 8), unit="s",
                   description="От сигнала до решения модератора (отвечено, скрыто, "
                               "отклонено); закрытые автоматически не учитываются."),
        timeseries("Действия модераторов за час по видам",
                   [target("sum by (action) (increase(dozor_moderation_actions_total[1h]))",
                           "{{action}}")], (0, 28, 12, 8), bars=True, stack=True),
        timeseries("Поступление в очередь", lettered([
            ("sum(rate(dozor_moderation_flags_ingested_total[$__rate_interval]))", "сигналы"),
            ("sum by (kind) (rate(dozor_moderation_updates_applied_total[$__rate_interval]))",
             "обновления: {{kind}}"),
        ]), (12, 28, 12, 8), unit="ops",
                   description="Сигналы из dozor.flags и обновления из dozor.flag-updates "
                               "(ответ страницы, правка, удаление, конец всплеска)."),
    ]
    return dashboard(
        "dozor-moderation", "Дозор — Модерация",
        "Очередь модераторов: глубина по статусам, причинам и муниципалитетам, возраст, "
        "время до действия и до решения.",
        panels,
        [query_variable("municipality", "Муниципалитет",
                        "label_values(dozor_moderation_items, municipality)", multi=True)],
    )


# --- Коннекторы -----------------------------------------------------------------------------

CONNECTOR_JOBS = 'job=~"dozor-vk-callback|dozor-vk-poll|dozor-telegram"'
LAST_SUCCESS = "page_id:dozor_ingest_last_success_timestamp_seconds:max"
LAST_FAILURE = "page_id:dozor_ingest_last_failure_timestamp_seconds:max"
# Pages whose last read failed (never read successfully counts as success at 0), as in
# the alert DozorConnectorFailing without its hour.
FAILING_PAGES = f"{LAST_FAILURE} > on (page_id) ({LAST_SUCCESS} or {LAST_FAILURE} * 0)"


def failing_pages_table(grid) -> dict:
    def column(value_expr: str) -> str:
        return (f"(({value_expr}) and on (page_id) ({FAILING_PAGES}))"
                " * on (page_id) group_left (name, municipality) page_id:dozor_page_info:max")

    columns = [
        ("Последняя ошибка", f"time() - {LAST_FAILURE}"),
        ("Последнее успешное чтение", f"time() - {LAST_SUCCESS}"),
    ]
    targets = [target(column(expr), ref=chr(ord("A") + i), table=True)
               for i, (_, expr) in enumerate(columns)]
    p = panel(
        "table", "Страницы, которые не читаются", targets, grid,
        "Последняя попытка чтения завершилась ошибкой. Пустое «последнее успешное чтение» — "
        "успешных чтений с запуска коннектора не было. Причина — в журнале коннектора и "
        "в `dozor pages check`. Оповещение DozorConnectorFailing — через час.",
        unit="dtdurations",
    )
    rename = {"name": "Страница", "municipality": "Муниципалитет", "page_id": "ID страницы"}
    order = {"name": 0, "municipality": 1, "page_id": 2}
    for i, (title, _) in enumerate(columns):
        rename[f"Value #{chr(ord('A') + i)}"] = title
        order[f"Value #{chr(ord('A') + i)}"] = 3 + i
    p["transformations"] = [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {"Time": True},
                                       "renameByName": rename, "indexByName": order}},
    ]
    link = [{"title": "Открыть дашборд страницы", "url": PAGE_DASHBOARD_LINK}]
    p["fieldConfig"]["overrides"] = [
        {"matcher": {"id": "byName", "options": "Страница"},
         "properties": [{"id": "links", "value": link}, {"id": "custom.width", "value": 360}]},
    ]
    p["options"] = {"showHeader": True, "cellHeight": "sm",
                    "sortBy": [{"displayName": "Последняя ошибка", "desc": False}],
                    "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    return p


def connectors() -> dict:
    panels = [
        stat("Коннекторы в работе", f"count(up{{{CONNECTOR_JOBS}}} == 1) or vector(0)",
             (0, 0, 4, 4), thresholds=[(None, "red"), (1, "green")],
             description="vk-callback, vk-poll и (если запущен) telegram, чьи /metrics отвечают."),
        stat("Страниц не читается", f"count({FAILING_PAGES}) or vector(0)", (4, 0, 4, 4),
             thresholds=[(None, "green"), (1, "orange")]),
        stat("Событий за час", "sum(increase(dozor_ingest_events_total[1h])) or vector(0)",
             (8, 0, 4, 4), description="Сырых событий, принятых Kafka, от всех коннекторов."),
        stat("Ошибок API за час",
             "sum(increase(dozor_ingest_api_errors_total[1h])) or vector(0)", (12, 0, 4, 4),
             thresholds=[(None, "green"), (1, "orange")]),
        stat("Отказы Callback API за час",
             'sum(increase(dozor_ingest_requests_total{connector="vk-callback", outcome!~"ok|confirmation|duplicate"}[1h]))'
             " or vector(0)", (16, 0, 4, 4), thresholds=[(None, "green"), (1, "orange")],
             description="Запросы к /vk/callback, на которые VK получил не «ok»: неверный "
                         "секрет, неизвестное сообщество, слишком большое тело, Kafka недоступна."),
        stat("Давнее всего читалась", f"max(time() - {LAST_SUCCESS})", (20, 0, 4, 4),
             unit="dtdurations",
             description="Сколько времени назад было последнее успешное чтение самой «забытой» "
                         "страницы."),
        timeseries("Запросы по исходам",
                   [target("sum by (connector, outcome) (rate(dozor_ingest_requests_total[$__rate_interval]))",
                           "{{connector}}: {{outcome}}")], (0, 4, 12, 8), unit="reqps",
                   description="Callback API — запросы VK; опрос и Telegram — вызовы API платформ."),
        timeseries("События по платформам и типам",
                   [target("sum by (platform, type) (rate(dozor_ingest_events_total[$__rate_interval]))",
                           "{{platform}}: {{type}}")], (12, 4, 12, 8), unit="ops", stack=True),
        timeseries("Ошибки API по кодам",
                   [target("sum by (connector, code) (increase(dozor_ingest_api_errors_total[$__rate_interval]))",
                           "{{connector}}: {{code}}")], (0, 12, 12, 8), bars=True, stack=True,
                   description="VK: 5 — токен, 6 и 9 — частота запросов (повторяются), 15 — нет "
                               "доступа, 18 — сообщество удалено, 30 — закрыто. Telegram: 401, "
                               "403, 409, 429."),
        timeseries("Давность последнего успешного чтения (10 самых давних страниц)",
                   [target(f"topk(10, time() - {LAST_SUCCESS})", "{{page_id}}")],
                   (12, 12, 12, 8), unit="s"),
        failing_pages_table((0, 20, 24, 8)),
    ]
    return dashboard(
        "dozor-connectors", "Дозор — Коннекторы",
        "Чтение страниц VK и Telegram: запросы, события, ошибки API, страницы, которые не читаются.",
        panels, [], refresh="30s", time_from="now-6h",
    )


DASHBOARDS = {"dozor-overview.json": overview, "dozor-page.json": page,
              "dozor-pipeline.json": pipeline, "dozor-moderation.json": moderation,
              "dozor-connectors.json": connectors}


def render() -> dict[str, str]:
    """File name → JSON text, exactly as committed."""
    return {name: json.dumps(build(), ensure_ascii=False, indent=2) + "\n"
            for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed JSON instead of writing it")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = DASHBOARD_DIR / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale dashboards, run {Path(__file__).name}: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
