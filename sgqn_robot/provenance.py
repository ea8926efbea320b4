"""Which code produced a file: the commit and package version, recorded where weights are made.

Checkpoints carry the identity of the code that trained them (`code` in their state.json), and
an ONNX export copies it, so a model names the commit that trained it even when it is exported
from another checkout or from an installed wheel. A checkout with uncommitted changes to tracked
files reads `<sha>-dirty`: the commit alone would not reproduce it. Where there is no git
checkout (an installed wheel, a machine the working tree was copied to), `SGQN_GIT_SHA` names the
commit; otherwise the sha is "unknown".
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
from functools import cache
from pathlib import Path

GIT_SHA_ENV = "SGQN_GIT_SHA"
UNKNOWN = "unknown"
HERE = Path(__file__).resolve().parent


def _git(where: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_sha(where: Path = HERE) -> str:
    """Commit of the checkout holding `where` (this package by default), `-dirty` with
    uncommitted tracked changes; outside git `$SGQN_GIT_SHA`, else "unknown"."""
    sha = _git(where, "rev-parse", "HEAD")
    if not sha:
        return os.environ.get(GIT_SHA_ENV) or UNKNOWN
    return f"{sha}-dirty" if _git(where, "status", "--porcelain", "--untracked-files=no") else sha


def package_version() -> str:
    try:
        return importlib.metadata.version("sgqn-robot")
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN


@cache
def code_identity() -> dict[str, str]:
    """{"git_sha", "package_version"} of the running code, looked up once per process: what a
    long run has imported at its start is what it runs, whatever the checkout does later."""
    return {"git_sha": git_sha(), "package_version": package_version()}


def code_history(state: dict | None, code: dict[str, str], step: int) -> list[dict]:
    """Every code a run was trained by, oldest first, as {"git_sha", "package_version",
    "from_step"}: a run resumed under another commit names both, not only the last.

    `state` is the resumed checkpoint's state (None for a new run). Checkpoints from before the
    history was kept record only their last code, whose first step is then unknown (None), and
    those from before 2026-11-28 record no code at all ("unknown" from step 0).
    """
    if state is None:
        history = []
    elif "code_history" in state:
        history = [dict(entry) for entry in state["code_history"]]
    elif "code" in state:
        history = [{**state["code"], "from_step": None}]
    else:
        history = [{"git_sha": UNKNOWN, "package_version": UNKNOWN, "from_step": 0}]
    last = history[-1] if history else {}
    if (last.get("git_sha"), last.get("package_version")) != (
        code["git_sha"],
        code["package_version"],
    ):
        history.append({**code, "from_step": step})
    return history
