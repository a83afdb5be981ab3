"""Shared pieces of the deploy tests: repository paths, the Prometheus tools, rule files."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
ALERTMANAGER_DIR = DEPLOY / "alertmanager"
RUNBOOK_DIR = DEPLOY / "runbooks"
RUNBOOK_BASE_URL = "https://github.com/dozor-project/dozor/blob/main/deploy/runbooks/"

# Debian package that ships each tool (CI: apt-get install prometheus prometheus-alertmanager).
TOOLS = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "amtool": "prometheus-alertmanager",
    "prometheus-alertmanager": "prometheus-alertmanager",
}


def tool(name: str) -> str:
    """Absolute path of a Prometheus tool; fails (never skips) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} not found on PATH: install the Debian package {TOOLS[name]!r} "
            f"(apt-get install -y {TOOLS[name]})",
            pytrace=False,
        )
    return path


def run_tool(args: list[str], cwd: Path = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a tool, failing the test with its output when it exits non-zero."""
    result = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, args))} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}",
            pytrace=False,
        )
    return result


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def load_rules() -> list[dict]:
    """Every rule of every group in deploy/prometheus/rules, each with its group name."""
    rules = []
    for path in rule_files():
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                rules.append({**rule, "_group": group["name"], "_file": path.name})
    return rules


def alert_rules() -> list[dict]:
    return [rule for rule in load_rules() if "alert" in rule]


# A metric name in a PromQL expression: a dozor_* series or a level:metric:operations
# recording rule.
METRIC_NAME = re.compile(r"\b([a-z_]+:dozor_[a-z_]+:[a-z0-9_]+|dozor_[a-z_]+)\b")
EXPOSITION_SUFFIX = re.compile(r"_(bucket|sum|count)$")


def declared_metrics() -> set[str]:
    """Metric names declared in the code (prometheus_client, as quoted string literals).

    client_python adds `_total` to counters and `_bucket`/`_sum`/`_count` to histograms.
    """
    names = set()
    for folder in ("services", "streams", "models"):
        for path in (REPO / folder).rglob("*.py"):
            names.update(re.findall(r'"(dozor_[a-z_]+)"', path.read_text(encoding="utf-8")))
    return names


def unknown_metrics(expr: str) -> list[str]:
    """The names in `expr` that neither the code declares nor a recording rule records."""
    declared = declared_metrics()
    recorded = {rule["record"] for rule in load_rules() if "record" in rule}
    unknown = []
    for name in METRIC_NAME.findall(expr):
        if ":" in name:
            known = name in recorded
        else:
            base = EXPOSITION_SUFFIX.sub("", name)
            known = bool({name, base, base.removesuffix("_total")} & declared)
        if not known:
            unknown.append(name)
    return unknown


def webhook_variables() -> list[str]:
    """The ${ALERT_WEBHOOK_*} placeholders of the Alertmanager template, in order."""
    text = (ALERTMANAGER_DIR / "alertmanager.yml.tmpl").read_text(encoding="utf-8")
    return list(dict.fromkeys(re.findall(r"\$\{(ALERT_WEBHOOK_[A-Z0-9_]+)\}", text)))


def render_alertmanager(destination: Path, urls: dict[str, str],
                        template: Path | None = None) -> Path:
    """Render the Alertmanager config with deploy/alertmanager/render.sh itself."""
    env = {
        "ALERTMANAGER_TEMPLATE": str(template or ALERTMANAGER_DIR / "alertmanager.yml.tmpl"),
        "ALERTMANAGER_CONFIG": str(destination),
        "ALERTMANAGER_TEMPLATES_DIR": str(ALERTMANAGER_DIR / "templates"),
        "ALERT_TELEGRAM_BOT_TOKEN": "123456:test-token",
        **urls,
    }
    run_tool(["sh", str(ALERTMANAGER_DIR / "render.sh"), "--render-only"], env=env)
    return destination
