"""The commit a checkpoint or model names: a real git checkout, a dirty one, none at all."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sgqn_robot.provenance import GIT_SHA_ENV, UNKNOWN, git_sha

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")


def git(repo: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(cmd, cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_git_sha_names_the_commit_and_marks_uncommitted_tracked_changes(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    git(tmp_path, "commit", "-qm", "first")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert git_sha(tmp_path) == head
    (tmp_path / "scratch.txt").write_text("untracked files do not change the code\n")
    assert git_sha(tmp_path) == head
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_sha(tmp_path) == f"{head}-dirty"


def test_outside_git_the_environment_names_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repo above tmp_path
    monkeypatch.delenv(GIT_SHA_ENV, raising=False)
    assert git_sha(tmp_path) == UNKNOWN
    monkeypatch.setenv(GIT_SHA_ENV, "44027d2")
    assert git_sha(tmp_path) == "44027d2"
