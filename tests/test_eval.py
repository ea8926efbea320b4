"""`sgqn-eval` and the periodic evaluation are one code path: same seeds, same numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sgqn_robot.config import compose_config
from sgqn_robot.evaluate import evaluate_run
from sgqn_robot.train import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    overrides = [
        "agent=sgqn",
        "agent.hidden_dim=32",
        "num_train_steps=50",
        "warmup_steps=40",
        "batch_size=8",
        "eval_every=50",
        "eval_episodes=2",
        "eval_splits=[train,test2]",
        "saliency_samples=2",
        "threads=1",
        f"run_dir={tmp_path_factory.mktemp('eval') / 'run'}",
    ]
    return train(compose_config("train", overrides))


def test_eval_matches_the_periodic_evaluation(run_dir: Path) -> None:
    results = evaluate_run(run_dir, ["train", "test2"], episodes=2, tag="again")
    periodic = json.loads((run_dir / "eval" / "step_0000050.json").read_text())
    again = json.loads((run_dir / "eval" / "again.json").read_text())
    assert again["step"] == 50
    for split in ("train", "test2"):
        assert again["splits"][split]["returns"] == periodic["splits"][split]["returns"]
        assert results[split].summary()["episodes"] == 2
    csv_lines = (run_dir / "eval" / "again.csv").read_text().splitlines()
    assert csv_lines[0] == "step,split,episodes,return_mean,return_std,success_rate"
    assert len(csv_lines) == 3
    assert (run_dir / "saliency" / "again.png").stat().st_size > 1000


def _eval_cli(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "sgqn-eval"
    env = os.environ | {"MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    return subprocess.run(
        [str(exe), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )


def test_cli_prints_a_table_and_writes_json_csv(run_dir: Path) -> None:
    out = _eval_cli(f"run={run_dir}", "splits=[test1]", "episodes=1", "saliency_samples=0")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "split" in out.stdout and "test1" in out.stdout and "±" in out.stdout
    assert (run_dir / "eval" / "eval_step_0000050.json").is_file()
    assert (run_dir / "eval" / "eval_step_0000050.csv").is_file()


def test_cli_reports_a_missing_run(tmp_path: Path) -> None:
    out = _eval_cli(f"run={tmp_path / 'nope'}", "episodes=1")
    assert out.returncode == 2
    assert "no checkpoint at" in out.stdout + out.stderr
    assert not (tmp_path / "nope").exists()
