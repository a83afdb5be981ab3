"""bench/bench_classify_file.py keeps working: its text builder on tiny files in the three source
formats (no ../shared/data needed), and one tiny end-to-end run (no timing is asserted)."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "bench_classify_file.py"
MODEL_DIR = REPO / "models" / "default"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_classify_file", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_sources(root: Path, n: int = 12) -> None:
    """A few rows of SentiRuEval-2015 XML, RuSentiment CSV and kursk_appeals CSV (HTML), as published."""
    (root / "sentirueval2015").mkdir(parents=True)
    for name in ("banks_test_etalon.xml", "telecoms_test_etalon.xml"):
        rows = "".join(f'<table name="t"><column name="id">{i}</column><column name="text">@{name[:5]} опять без '
                       f'связи {i}</column><column name="mts">NULL</column></table>' for i in range(n))
        xml = f'<?xml version="1.0" encoding="utf-8"?><pma_xml_export><database name="d">{rows}</database></pma_xml_export>'
        (root / "sentirueval2015" / name).write_text(xml, encoding="utf-8")
    (root / "rusentiment").mkdir()
    with (root / "rusentiment" / "rusentiment_test.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("label", "text")] + [("neutral", f"Спасибо за фото, {i}!\n") for i in range(n)])
    (root / "kursk_appeals").mkdir()
    long_appeal = "<p>Прошу отремонтировать дорогу&nbsp;на улице Ленина.<br>" + "Яма у дома номер пять. " * 60 + "</p>"
    with (root / "kursk_appeals" / "appeals.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("id", "text_html", "category", "executor", "group")]
                                + [(f"train-{i}", f"{i} {long_appeal}", "Дороги", "Комитет", "1") for i in range(n)])


def test_builder_mixes_the_three_sources_seeded_and_cut_at_600(tmp_path):
    bench = load_bench()
    write_sources(tmp_path)
    texts, described = bench.build_texts(40, tmp_path, seed=3, mix={"tweets": 0.5, "vk": 0.25, "appeals": 0.25})
    assert len(texts) == 40 and not described["synthetic"]
    assert {k: v["texts"] for k, v in described["mix"].items()} == {"tweets": 20, "vk": 10, "appeals": 10}
    assert described["mix"]["vk"]["distinct"] == 10 and described["mix"]["tweets"]["distinct"] == 20  # 24 tweets in the pool
    assert max(len(t) for t in texts) <= 600
    appeals = [t for t in texts if "Ленина" in t]
    assert len(appeals) == 10 and all("<" not in t and "&nbsp;" not in t and "\n" in t for t in appeals)
    assert all(t.endswith("пять.") for t in appeals)  # cut at a word boundary
    assert bench.build_texts(40, tmp_path, seed=3, mix={"tweets": 0.5, "vk": 0.25, "appeals": 0.25})[0] == texts
    # a pool smaller than its share is drawn again
    more, described = bench.build_texts(60, tmp_path, seed=3, mix={"vk": 1.0, "tweets": 0.0, "appeals": 0.0})
    assert described["mix"]["vk"]["texts"] == 60 and described["mix"]["vk"]["distinct"] == 12
    # no data: synthetic texts, said so
    fallback, described = bench.build_texts(30, tmp_path / "absent")
    assert len(fallback) == 30 and described["synthetic"] and "synthetic" in described["source"]


@pytest.mark.skipif(not (MODEL_DIR / "model.safetensors").is_file(), reason="models/default not built")
def test_tiny_end_to_end_run_writes_the_table_and_json(tmp_path):
    write_sources(tmp_path / "data")
    out = tmp_path / "result.json"
    done = subprocess.run([sys.executable, str(BENCH), "--texts", "24", "--naive-texts", "4", "--repeats", "1",
                           "--variants", "default", "--data-dir", str(tmp_path / "data"), "--output", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| default (shipped settings) |" in done.stdout and "naive: pipeline" in done.stdout
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["texts"] == 24 and result["weights_mb"] <= 40
    assert set(result["classify"]) == {"default"} and result["naive_pipeline_per_text"]["texts"] == 4
    assert "[2/2]" in done.stderr  # progress
