"""The demo deletes its output folder on a rerun, so it must refuse any folder it did not make."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_refuses_to_wipe_a_folder_it_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "notes.txt"
    precious.write_text("keep me")
    proc = subprocess.run(
        [sys.executable, "-m", "sgqn_robot.demo", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "is not a demo folder; pass another --out" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert precious.read_text() == "keep me"
