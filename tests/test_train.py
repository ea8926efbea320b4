"""End-to-end training on the real simulator with tiny budgets: every agent writes every
artifact, a resumed run reproduces the uninterrupted one, a SIGKILLed run resumes cleanly, a
SIGTERMed one checkpoints before it exits, bad run dirs are refused without touching anything,
and a joblib multirun sweeps seeds."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from sgqn_robot.checkpoint import load_checkpoint, load_policy
from sgqn_robot.config import compose_config
from sgqn_robot.train import RunDirError, train

ROOT = Path(__file__).resolve().parents[1]
# Tiny but complete: updates after warm-up, an eval with saliency grid, a mid-run checkpoint.
# Narrow MLPs and one thread keep it cheap on a busy 2-core machine; the plumbing is the same.
SMOKE = [
    "num_train_steps=60",
    "warmup_steps=45",
    "batch_size=8",
    "agent.hidden_dim=32",
    "eval_every=60",
    "eval_episodes=1",
    "eval_splits=[train,test1]",
    "saliency_samples=2",
    "snapshot_every=50",
    "device=cpu",
    "threads=1",
]
DRQ = "agent=drq"


def run(run_dir: Path, *overrides: str) -> Path:
    return train(compose_config("train", [*SMOKE, *overrides, f"run_dir={run_dir}"]))


def metrics(run_dir: Path) -> list[tuple[int, str, str]]:
    with (run_dir / "metrics.csv").open() as f:
        return [(int(r["step"]), r["tag"], r["value"]) for r in csv.DictReader(f)]


@pytest.mark.parametrize(
    "agent,task,k",
    [("sac", "reach", 1), ("drq", "reach", 1), ("svea", "reach", 1), ("sgqn", "reach", 1)]
    + [("sgqn", "peg_in_box", 3)],  # 3-D actions, stacked frames
)
def test_smoke_training_writes_every_artifact(
    tmp_path: Path, agent: str, task: str, k: int
) -> None:
    run_dir = run(tmp_path / agent, f"agent={agent}", f"task={task}", f"env.frame_stack={k}")
    for rel in [
        "config.yaml",
        "train.log",
        "checkpoints/latest/agent.pt",
        "checkpoints/latest/config.yaml",
        "checkpoints/latest/state.json",
        "eval/step_0000060.json",
        "eval/step_0000060.csv",
        "saliency/step_0000060.png",
    ]:
        assert (run_dir / rel).is_file(), rel
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    tags = {tag for _, tag, _ in metrics(run_dir)}
    assert {"train/episode_return", "train/critic_loss", "eval/test1/return_mean"} <= tags
    if agent == "sgqn":
        assert {"train/aux_accuracy", "train/mask_fraction"} <= tags

    snapshot = zarr.open_group(str(run_dir / "replay.zarr"), mode="r")
    assert snapshot["data/frames"].shape == (62, 3, 64, 64)  # 60 steps + 2 reset frames
    assert list(snapshot["meta/episode_ends"][:]) == [51]  # the second episode is still open

    # Checkpoints load with weights_only=True (load_checkpoint uses it) and give the Policy.
    assert load_checkpoint(run_dir).state["step"] == 60
    policy = load_policy(run_dir)
    assert policy.step == 60 and policy.config["agent"]["name"] == agent
    assert policy.config["env"]["image_size"] == 64
    obs = torch.randint(0, 256, (2, 3 * k, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        action = policy.actor(obs)
        assert action.shape == (2, 2 if task == "reach" else 3) and action.abs().max() <= 1
        torch.testing.assert_close(policy.actor(obs), action)  # deterministic
        if agent == "sgqn":
            assert policy.predictor(obs, action).shape == (2, 3 * k, 64, 64)
        else:
            assert policy.predictor is None


def test_resumed_run_reproduces_the_uninterrupted_one(tmp_path: Path) -> None:
    full = run(tmp_path / "full", DRQ, "num_train_steps=100", "eval_every=50")
    cut = run(tmp_path / "cut", DRQ, "num_train_steps=50", "eval_every=50")
    assert load_checkpoint(cut).state["replay_frames"] == 51
    run(cut, DRQ, "num_train_steps=100", "eval_every=50", "resume=true")

    def comparable(run_dir: Path) -> list[tuple[int, str, str]]:
        return [m for m in metrics(run_dir) if m[1] != "train/steps_per_s"]

    assert comparable(cut) == comparable(full)  # losses, returns and eval, bit for bit
    assert [m[0] for m in metrics(cut)] == sorted(m[0] for m in metrics(cut))


def test_bad_run_dirs_are_refused_and_left_untouched(tmp_path: Path) -> None:
    run_dir = run(tmp_path / "r", DRQ, "num_train_steps=50", "eval_episodes=0")

    def listing() -> dict[str, int]:
        return {str(p): p.stat().st_mtime_ns for p in run_dir.rglob("*")}

    before = listing()
    with pytest.raises(RunDirError, match="already holds a run"):
        run(run_dir, DRQ)
    with pytest.raises(RunDirError, match=r"agent.name: run has 'drq', now 'sac'"):
        run(run_dir, DRQ, "agent=sac", "resume=true")
    with pytest.raises(RunDirError, match="env.frame_stack"):
        run(run_dir, DRQ, "env.frame_stack=3", "resume=true")
    assert listing() == before
    (run_dir / "replay.zarr").rename(tmp_path / "elsewhere")
    with pytest.raises(RunDirError, match="replay snapshot replay.zarr is missing"):
        run(run_dir, DRQ, "resume=true")
    with pytest.raises(RunDirError, match="no checkpoint"):
        run(tmp_path / "missing", DRQ, "resume=true")
    assert not (tmp_path / "missing").exists()


def _cli(*args: str, **kw) -> subprocess.Popen:
    env = os.environ | {"MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    exe = Path(sys.executable).parent / "sgqn-train"
    return subprocess.Popen(
        [str(exe), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def test_sigkill_mid_training_then_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "killed"
    args = [*SMOKE, DRQ, "num_train_steps=300", "eval_every=1000", "eval_splits=[train]"]
    proc = _cli(*args, f"run_dir={run_dir}")
    state = run_dir / "checkpoints" / "latest" / "state.json"
    deadline = time.monotonic() + 120
    while not (state.exists() and json.loads(state.read_text())["step"] >= 100):
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint at step >= 100 in time"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(state.read_text())["step"]
    assert killed_at < 300

    out, _ = _cli("resume=true", f"run_dir={run_dir}").communicate(timeout=240)
    assert f"resumed {run_dir} at step {killed_at}" in out, out
    ckpt = load_checkpoint(run_dir)
    assert ckpt.state["step"] == 300 and ckpt.state["episode"] == 6
    assert ckpt.config["num_train_steps"] == 300  # the run's own overrides were reused
    rows = metrics(run_dir)
    episodes = [(s, float(v)) for s, tag, v in rows if tag == "train/episode"]
    assert episodes == [(50 * (i + 1), float(i)) for i in range(6)]  # no gap, no duplicate
    snapshot = zarr.open_group(str(run_dir / "replay.zarr"), mode="r")
    assert snapshot["data/frames"].shape[0] == ckpt.state["replay_frames"] == 306
    assert list(snapshot["meta/episode_ends"][:]) == [51 * (i + 1) for i in range(6)]
    frames = snapshot["data/frames"][:]
    assert frames.reshape(6, 51, -1).std(axis=(1, 2)).min() > 0  # real, readable frames
    assert (run_dir / "eval" / "step_0000300.json").is_file()
    assert np.isfinite(float(rows[-1][2]))


def test_sigterm_checkpoints_at_the_episode_end_and_exits_cleanly(tmp_path: Path) -> None:
    run_dir = tmp_path / "preempted"
    args = [*SMOKE, DRQ, "num_train_steps=400", "eval_every=1000", "eval_splits=[train]"]
    proc = _cli(*args, "snapshot_every=1000", f"run_dir={run_dir}")  # no periodic checkpoint
    csv_file, deadline = run_dir / "metrics.csv", time.monotonic() + 120
    while not (csv_file.exists() and "train/episode," in csv_file.read_text()):
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "no finished episode in time"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    stopped_at = load_checkpoint(run_dir).state["step"]
    assert 0 < stopped_at < 400 and stopped_at % 50 == 0, stopped_at  # an episode end
    assert f"SIGTERM: stopped at step {stopped_at} with a checkpoint" in out, out

    out, _ = _cli("resume=true", f"run_dir={run_dir}").communicate(timeout=240)
    assert f"resumed {run_dir} at step {stopped_at}" in out, out
    assert load_checkpoint(run_dir).state["step"] == 400


def test_joblib_multirun_sweeps_seeds(tmp_path: Path) -> None:
    args = [
        "-m",
        "sweep=local",
        "seed=1,2",
        *SMOKE,
        DRQ,
        "num_train_steps=50",
        "eval_episodes=0",
        f"hydra.sweep.dir={tmp_path}",
    ]
    out, _ = _cli(*args).communicate(timeout=240)
    runs = sorted(p.name for p in tmp_path.iterdir() if (p / "checkpoints").is_dir())
    assert runs == ["reach-drq-s1", "reach-drq-s2"], out
    returns = [metrics(tmp_path / r)[0] for r in runs]
    assert returns[0] != returns[1]  # different seeds, different episodes
