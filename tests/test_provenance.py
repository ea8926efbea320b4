"""The commit a checkpoint or model names: a real git checkout, a dirty one, none at all."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sgqn_robot.provenance import GIT_SHA_ENV, UNKNOWN, code_history, git_sha

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")


def git(repo: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(cmd, cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@needs_git
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


@needs_git
def test_outside_git_the_environment_names_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repo above tmp_path
    monkeypatch.delenv(GIT_SHA_ENV, raising=False)
    assert git_sha(tmp_path) == UNKNOWN
    monkeypatch.setenv(GIT_SHA_ENV, "44027d2")
    assert git_sha(tmp_path) == "44027d2"


A = {"git_sha": "aaaa", "package_version": "0.1.0"}
B = {"git_sha": "bbbb", "package_version": "0.1.0"}


def test_code_history_adds_a_code_only_when_a_resume_changes_it() -> None:
    new = code_history(None, A, 0)
    assert new == [{**A, "from_step": 0}]
    state = {"code": A, "code_history": new}
    assert code_history(state, A, 500) == new  # same code resumed: nothing to add
    assert code_history(state, B, 500) == [{**A, "from_step": 0}, {**B, "from_step": 500}]
    assert state["code_history"] == [{**A, "from_step": 0}]  # the checkpoint's is left as it was


def test_code_history_of_older_checkpoints_says_what_is_not_known() -> None:
    # recorded only its last code (2026-11-28, before the history): where that began is unknown
    assert code_history({"code": A}, B, 700) == [
        {**A, "from_step": None},
        {**B, "from_step": 700},
    ]
    # recorded no code at all (before 2026-11-28)
    assert code_history({"step": 300}, B, 300) == [
        {"git_sha": UNKNOWN, "package_version": UNKNOWN, "from_step": 0},
        {**B, "from_step": 300},
    ]
