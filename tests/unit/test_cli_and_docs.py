"""The CLI explains itself, the documented settings and metrics match the code, `dozor pages`
ranks by urgency."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from services.pages_view import page_rows
from streams.metrics import DozorMetrics, PageStateCollector
from streams.track import PageView
from streams.tracking.page_state import PageSnapshot

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_every_command_has_help():
    top = run("--help")
    assert top.returncode == 0
    for command in ("demo", "worker", "replay", "classify", "pages", "model", "settings",
                    "ingest", "moderation", "users"):
        assert command in top.stdout
        sub = run(command, "--help")
        assert sub.returncode == 0 and "usage: dozor" in sub.stdout and len(sub.stdout) > 120, command
    for action in ("train", "eval", "prune-teacher", "thresholds"):
        sub = run("model", action, "--help")
        assert sub.returncode == 0 and f"usage: dozor model {action}" in sub.stdout, action
    assert "--device {auto,cpu,cuda}" in run("model", "train", "--help").stdout


def test_configuration_table_matches_the_settings_object():
    table = run("settings").stdout.strip()
    assert table in (REPO / "docs" / "configuration.md").read_text(encoding="utf-8"), (
        "docs/configuration.md is stale: paste `dozor settings`"
    )


def exported_metric_names() -> set[str]:
    """Every metric name the worker, the connectors and the moderation service export."""
    from services.ingest.metrics import IngestMetrics
    from services.moderation.metrics import ModerationMetrics, QueueCollector

    class EmptyStore:
        def queue_depth(self):
            return {("new", "toxic", "Ухта"): 1}

        def oldest_new_flagged_at(self):
            return 1.0

    registry = CollectorRegistry()
    DozorMetrics(registry)
    ModerationMetrics(registry)
    registry.register(QueueCollector(EmptyStore()))
    names = {m.name for m in registry.collect()}
    names |= {m.name for m in IngestMetrics().registry.collect()}
    names |= {m.name for m in PageStateCollector(lambda: []).collect()}
    return names


def test_metrics_page_lists_every_exported_metric():
    names = exported_metric_names()
    assert {"dozor_events", "dozor_ingest_requests", "dozor_moderation_items"} <= names
    page = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(dozor_[a-z_]+)`", page))
    for name in names:
        exported = name + "_total" if name + "_total" in documented else name
        assert exported in documented, name


def test_readme_is_a_short_users_document():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= 10 * 1024
    for link in ("docs/configuration.md", "docs/metrics.md", "docs/ARCHITECTURE.md",
                 "deploy/README.md", "models/default/README.md"):
        assert link in readme and (REPO / link.split("#")[0]).is_file(), link


def test_worker_without_bootstrap_says_what_to_do():
    result = subprocess.run([sys.executable, "-m", "services.cli", "worker"], cwd=REPO,
                            capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode != 0 and "DOZOR_KAFKA_BOOTSTRAP" in result.stderr


def test_bad_model_settings_give_one_line_errors_not_tracebacks(tmp_path):
    def classify(**env):
        return subprocess.run([sys.executable, "-m", "services.cli", "classify"], cwd=REPO, input="Когда?\n",
                              capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", **env})

    missing = classify(DOZOR_MODEL=str(tmp_path / "absent"))
    assert missing.returncode != 0 and "set DOZOR_MODEL" in missing.stderr and "Traceback" not in missing.stderr
    quantize = classify(DOZOR_QUANTIZE="fp4")
    assert quantize.returncode != 0 and "invalid DOZOR_* setting" in quantize.stderr and "quantize" in quantize.stderr
    assert "Traceback" not in quantize.stderr


def snapshot(page_id, open_, overdue, oldest, share):
    return PageView(PageSnapshot(page_id, open_, overdue, oldest, share, 0, 0, None, 0, False),
                    {}, 0)


def test_pages_are_ranked_overdue_first_then_open_then_oldest():
    registry = CollectorRegistry()
    metrics = DozorMetrics(registry)
    metrics.page_info.labels(page_id="vk:-1", platform="vk", name="Школа", municipality="А",
                             category="школа").set(1)
    views = [
        ("vk:-1", snapshot("vk:-1", 3, 0, 100.0, 0.1)),
        ("vk:-2", snapshot("vk:-2", 1, 1, 500.0, 0.0)),
        ("vk:-3", snapshot("vk:-3", 3, 0, 50.0, 0.9)),
        ("vk:-4", snapshot("vk:-4", 0, 0, None, 0.0)),
    ]
    registry.register(PageStateCollector(lambda: views))
    rows, _ = page_rows([generate_latest(registry).decode()])
    assert [r.page_id for r in rows] == ["vk:-2", "vk:-3", "vk:-1", "vk:-4"]
    assert rows[2].name == "Школа" and rows[2].municipality == "А"


def test_demo_shifts_the_sample_so_its_last_event_is_now():
    import json as _json

    from services.demo import shift_to_now

    lines = [
        b'{"type": "wall_reply_new", "object": {"date": 100, "text": "a"}}',
        b"{broken",
        b'{"type": "wall_reply_delete", "object": {"id": 1}}',
        b'{"type": "wall_post_new", "object": {"date": 160, "text": "b"}}',
    ]
    out = shift_to_now(lines, 1000.0)
    assert _json.loads(out[0])["object"]["date"] == 940
    assert _json.loads(out[3])["object"]["date"] == 1000
    assert out[1] == b"{broken" and out[2] == lines[2]
