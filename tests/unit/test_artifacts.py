"""The browser test's screenshots land in a stable artefacts folder (and docs/img on demand)."""

from __future__ import annotations

from tests.support.artifacts import REPO, artifacts_dir, keep


def test_artefacts_go_to_dozor_test_artifacts_when_set(tmp_path, monkeypatch):
    monkeypatch.setenv("DOZOR_TEST_ARTIFACTS", str(tmp_path / "run-42"))
    monkeypatch.delenv("DOZOR_UPDATE_SCREENSHOTS", raising=False)
    shot = tmp_path / "moderation-queue.png"
    shot.write_bytes(b"\x89PNG fake")
    docs = tmp_path / "docs-img"
    kept = keep(shot, docs_img=docs)
    assert kept == tmp_path / "run-42" / "moderation-queue.png"
    assert kept.read_bytes() == b"\x89PNG fake"
    assert not docs.exists()  # docs/img only when asked

    monkeypatch.setenv("DOZOR_UPDATE_SCREENSHOTS", "1")
    keep(shot, docs_img=docs)
    assert (docs / "moderation-queue.png").read_bytes() == b"\x89PNG fake"


def test_artefacts_default_to_the_repos_dot_artifacts(monkeypatch):
    monkeypatch.delenv("DOZOR_TEST_ARTIFACTS", raising=False)
    assert artifacts_dir() == REPO / ".artifacts"
    ignored = (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".artifacts/" in ignored
