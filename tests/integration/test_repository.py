"""The repository itself: no tracked file is one that .gitignore says to ignore."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_gitignore_covers_no_tracked_file() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    # The repository's .gitignore files only: a developer's global excludes are not the repository's business.
    listed = subprocess.run(
        ["git", "ls-files", "--ignored", "--cached", "--exclude-per-directory=.gitignore"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
    )
    assert listed.stdout.split() == [], f"tracked files that .gitignore ignores:\n{listed.stdout}"
