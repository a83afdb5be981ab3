"""The default data directory works from any working directory (issue 18).

`DOZOR_DATA_DIR` defaults to `$XDG_STATE_HOME/dozor` (`~/.local/state/dozor`), absolute, with
its parents created at start: a worker started in an empty directory runs, and the
moderation store's default SQLite file lands there too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from services.broker import free_port
from services.moderation.db import database_url, make_engine
from services.pages_view import scrape
from services.settings import Settings
from tests.support.observe import wait_for
from tests.support.worker import worker_environment

REPO = Path(__file__).resolve().parents[2]


def test_default_is_the_absolute_xdg_state_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("DOZOR_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert Settings(_env_file=None).data_dir == tmp_path / "state" / "dozor"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert Settings(_env_file=None).data_dir == tmp_path / "home" / ".local" / "state" / "dozor"
    # An explicit relative value is made absolute once, so a later chdir cannot move it.
    monkeypatch.setenv("DOZOR_DATA_DIR", "var/dozor")
    assert Settings(_env_file=None).data_dir == tmp_path / "var" / "dozor"


def test_moderation_sqlite_default_creates_its_parents(tmp_path, monkeypatch):
    monkeypatch.delenv("DOZOR_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "a" / "b"))
    settings = Settings(_env_file=None)
    url = database_url(None, settings.data_dir)
    engine = make_engine(url)
    with engine.connect():
        pass
    engine.dispose()
    assert (tmp_path / "a" / "b" / "dozor").is_dir()
    assert url.endswith(str(tmp_path / "a" / "b" / "dozor" / "moderation.sqlite3"))


@pytest.mark.broker
def test_worker_starts_in_an_empty_directory(kafka_bootstrap, tiny_model_dir, tmp_path):
    """`dozor worker` from an empty cwd, no DOZOR_DATA_DIR, a state home that does not exist."""
    cwd = tmp_path / "empty"
    cwd.mkdir()
    state_home = tmp_path / "no" / "such" / "state"
    port = free_port()
    env = worker_environment(kafka_bootstrap, tiny_model_dir, tmp_path / "unused",
                             f"t{uuid.uuid4().hex[:8]}", port)
    del env["DOZOR_DATA_DIR"]
    env.update(XDG_STATE_HOME=str(state_home), PYTHONPATH=str(REPO))
    log_path = tmp_path / "worker.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "worker"], cwd=cwd, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"worker exited {process.returncode}:\n"
                                     f"{log_path.read_text(errors='replace')[-4000:]}")
            return "dozor_events_total" in scrape(f"http://127.0.0.1:{port}/metrics")

        wait_for(up, timeout=90, message="worker metrics")
        # Faust writes its table cache under the default directory once the app runs.
        wait_for(lambda: (state_home / "dozor").is_dir()
                 and any((state_home / "dozor").iterdir()), timeout=60,
                 message="Faust data under $XDG_STATE_HOME/dozor")
        assert process.poll() is None
        assert list(cwd.iterdir()) == [], "nothing written to the working directory"
        assert "Traceback" not in log_path.read_text(errors="replace")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 15)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()
