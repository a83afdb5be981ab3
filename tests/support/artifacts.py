"""Where tests keep files a person looks at after the run (browser screenshots).

`$DOZOR_TEST_ARTIFACTS` if set, else `<repo>/.artifacts/` (git-ignored); pytest's tmp_path
is removed after a few runs and is hard to find, this folder is stable. With
DOZOR_UPDATE_SCREENSHOTS=1 a screenshot is also copied to docs/img (the README's pictures).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS_IMG = REPO / "docs" / "img"


def artifacts_dir() -> Path:
    """The artefacts folder of this run (created)."""
    path = Path(os.environ.get("DOZOR_TEST_ARTIFACTS") or REPO / ".artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def keep(path: Path, *, docs_img: Path | None = None) -> Path:
    """Copy `path` into the artefacts folder (and to docs/img with
    DOZOR_UPDATE_SCREENSHOTS=1); returns the artefact's path."""
    target = artifacts_dir() / path.name
    shutil.copyfile(path, target)
    if os.environ.get("DOZOR_UPDATE_SCREENSHOTS") == "1":
        docs = docs_img or DOCS_IMG
        docs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, docs / path.name)
    return target
