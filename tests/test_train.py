"""End-to-end training on the real simulator with tiny budgets: every agent writes every
artifact, a resumed run reproduces the uninterrupted one (CSV and TensorBoard), a SIGKILLed run
resumes cleanly, a SIGTERMed one checkpoints before it exits (abandoning an evaluation that the
resume redoes), bad run dirs and unworkable settings are refused without touching anything,
resumes keep one override per key, and a joblib multirun sweeps seeds. Also the learning-evidence scheduler's run handling and the peg probe."""

from __future__ import annotations

import argparse
import csv
import importlib
import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
import zarr
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sgqn_robot.checkpoint import load_checkpoint, load_policy
from sgqn_robot.config import ConfigError, compose_config
from sgqn_robot.evaluate import Evaluator
from sgqn_robot.provenance import code_identity
from sgqn_robot.run_lock import hold_run_dir
from sgqn_robot.train import RunDirError, merge_overrides, train

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
    overrides = [f"agent={agent}", f"task={task}", f"env.frame_stack={k}", "video_size=32"]
    run_dir = run(tmp_path / agent, *overrides)
    for rel in [
        "config.yaml",
        "train.log",
        "checkpoints/latest/agent.pt",
        "checkpoints/latest/config.yaml",
        "checkpoints/latest/state.json",
        "eval/step_0000060.json",
        "eval/step_0000060.csv",
        "saliency/step_0000060.png",
        "videos/step_0000060.gif",
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
    assert policy.code == code_identity()  # the code that trained it, for the export's metadata
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


def test_resumed_run_reproduces_the_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = run(tmp_path / "full", DRQ, "num_train_steps=100", "eval_every=50")
    cut = run(tmp_path / "cut", DRQ, "num_train_steps=50", "eval_every=50")
    assert load_checkpoint(cut).state["replay_frames"] == 51
    # resumed by another commit: the checkpoint names both codes, with the step each took over
    later = {"git_sha": "feedbee", "package_version": "9.9.9"}
    monkeypatch.setattr("sgqn_robot.train.code_identity", lambda: later)
    run(cut, DRQ, "num_train_steps=100", "eval_every=50", "resume=true")
    policy = load_policy(cut)
    assert policy.code == later
    assert policy.code_history == [
        {**code_identity(), "from_step": 0},
        {**later, "from_step": 50},
    ]

    def comparable(run_dir: Path) -> list[tuple[int, str, str]]:
        return [m for m in metrics(run_dir) if m[1] != "train/steps_per_s"]

    assert comparable(cut) == comparable(full)  # losses, returns and eval, bit for bit
    assert [m[0] for m in metrics(cut)] == sorted(m[0] for m in metrics(cut))
    # TensorBoard keeps the checkpoint step's rows too (only the orphaned tail is purged).
    for tag in ("train/episode_return", "eval/train/return_mean"):
        assert tb_steps(cut, tag) == tb_steps(full, tag) == [50, 100], tag


def tb_steps(run_dir: Path, tag: str) -> list[int]:
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def test_extending_a_run_that_ended_mid_episode_starts_the_next_episode(tmp_path: Path) -> None:
    run_dir = run(tmp_path / "r", DRQ, "eval_episodes=0")  # 60 steps: 10 into episode 1
    assert load_checkpoint(run_dir).state["episode"] == 2
    run(run_dir, DRQ, "eval_episodes=0", "num_train_steps=110", "resume=true")
    assert load_checkpoint(run_dir).state["episode"] == 3
    episodes = [(s, float(v)) for s, tag, v in metrics(run_dir) if tag == "train/episode"]
    assert episodes == [(50, 0.0), (110, 2.0)]
    snapshot = zarr.open_group(str(run_dir / "replay.zarr"), mode="r")
    assert list(snapshot["meta/episode_ends"][:]) == [51, 62, 113]  # the cut episode is closed
    frames = snapshot["data/frames"]
    assert not np.array_equal(frames[62], frames[51])  # episode 2's reset, not episode 1's again


def test_a_dead_trunk_is_reported_once_and_a_live_one_never(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The failure of reach SGQN seed 6: every ReLU before the trunk's last conv dead, so the
    features are the same for every image. Made here by hand in a real run's checkpoint."""
    caplog.set_level(logging.INFO, logger="sgqn_robot.train")
    run_dir = run(tmp_path / "r", DRQ, "num_train_steps=50", "eval_episodes=0")
    live = [float(v) for _, tag, v in metrics(run_dir) if tag == "train/feature_std"]
    assert live and min(live) > 0 and "critic trunk" not in caplog.text
    agent_pt = run_dir / "checkpoints/latest/agent.pt"
    state = torch.load(agent_pt, weights_only=True)
    for net in ("critic", "critic_target"):
        state[net]["trunk.convs.2.weight"].zero_()
        state[net]["trunk.convs.2.bias"].fill_(-1.0)  # pre-activation -1 on every input
    torch.save(state, agent_pt)
    run(run_dir, DRQ, "eval_episodes=0", "num_train_steps=150", "resume=true")
    dead = [(s, float(v)) for s, tag, v in metrics(run_dir) if tag == "train/feature_std"]
    assert dead[1:] == [(100, 0.0), (150, 0.0)]
    assert caplog.text.count("the critic trunk gave the same features") == 1
    assert "step 100: " in caplog.text and "another seed" in caplog.text


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
    with pytest.raises(RunDirError) as refused:  # every difference listed, one per line
        run(run_dir, DRQ, "task=peg_in_box", "encoder=paper", "resume=true")
    lines = [line.strip() for line in str(refused.value).splitlines()[1:]]
    assert "task: run has 'reach', now 'peg_in_box'" in lines, lines
    assert "encoder.preset: run has 'fast', now 'paper'" in lines, lines
    assert listing() == before
    (run_dir / "replay.zarr").rename(tmp_path / "elsewhere")
    with pytest.raises(RunDirError, match="replay snapshot replay.zarr is missing"):
        run(run_dir, DRQ, "resume=true")
    with pytest.raises(RunDirError, match="no checkpoint"):
        run(tmp_path / "missing", DRQ, "resume=true")
    assert not (tmp_path / "missing").exists()


def test_a_run_dir_in_use_is_refused_until_its_process_ends(tmp_path: Path) -> None:
    run_dir = run(tmp_path / "r", DRQ, "num_train_steps=50", "eval_episodes=0")
    code = (
        "import sys, time\nfrom sgqn_robot.run_lock import hold_run_dir\n"
        "with hold_run_dir(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(600)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(RunDirError, match=rf"in use by another process \(pid {holder.pid}\)"):
            run(run_dir, DRQ, "resume=true", "num_train_steps=100", "eval_episodes=0")
        assert load_checkpoint(run_dir).state["step"] == 50  # nothing was touched
    finally:
        holder.kill()  # SIGKILL: no clean-up runs, yet the lock ends with the process
        holder.wait()
    run(run_dir, DRQ, "resume=true", "num_train_steps=100", "eval_episodes=0")
    assert load_checkpoint(run_dir).state["step"] == 100


@pytest.mark.parametrize(
    "override,message",
    [
        ("eval_every=0", "eval_every=0: must be an integer >= 1"),
        ("snapshot_every=0", "snapshot_every=0: must be an integer >= 1"),
        ("batch_size=0", "batch_size=0: must be an integer >= 1"),
        ("num_train_steps=-5", "num_train_steps=-5: must be an integer >= 1"),
        ("eval_every=2.5", "eval_every=2.5: must be an integer >= 1"),
        ("warmup_steps=ten", "warmup_steps='ten': must be an integer >= 0"),
        ("eval_episodes=-1", "eval_episodes=-1: must be an integer >= 0"),
        ("video_size=16", "video_size=16: must be an integer >= 32"),
        ("replay_capacity=50", "replay_capacity=50 cannot hold the 51 frames added between"),
        ("eval_splits=[train,tset1]", "unknown split 'tset1'; valid splits: train, test1, "),
        # caught by building env and agent, which now happens before the run dir is made
        ("device=gpu", "device='gpu' is not a torch device: use auto, cpu, cuda"),
        ("env.camera=side", "unknown camera 'side'"),
        ("env.image_size=84", "preset 'fast' needs obs (3k, 64, 64), got (3, 84, 84)"),
        ("env.textures=/no/such/photo.png", "texture file /no/such/photo.png: no such file"),
        ("agent.mask_quantile=1.5", "agent.mask_quantile=1.5: must be in (0, 1): the mask"),
        ("agent.critic_lr=1e3x", "agent.critic_lr='1e3x': must be a number > 0"),
    ],
)
def test_unworkable_settings_are_refused_before_anything_is_written(
    tmp_path: Path, override: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        run(tmp_path / "r", DRQ, override)
    assert not (tmp_path / "r").exists()


def test_the_smallest_accepted_replay_capacity_survives_its_snapshots(tmp_path: Path) -> None:
    # snapshot_every=50: one 50-step episode, 51 frames, between two snapshots.
    run_dir = run(tmp_path / "r", DRQ, "replay_capacity=51", "num_train_steps=100")
    assert load_checkpoint(run_dir).state["replay_frames"] == 102


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


def test_a_stop_during_evaluation_abandons_it_and_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sgqn_robot.train")

    class Preempted(Evaluator):
        """SIGTERM arrives as the evaluation starts (an evaluation can take minutes)."""

        def run(self, *args, **kwargs):
            signal.raise_signal(signal.SIGTERM)
            return super().run(*args, **kwargs)

    monkeypatch.setattr(importlib.import_module("sgqn_robot.train"), "Evaluator", Preempted)
    run_dir = run(tmp_path / "r", DRQ, "num_train_steps=100", "eval_every=50")
    assert load_checkpoint(run_dir).state["step"] == 50
    assert not (run_dir / "eval").exists() and not (run_dir / "saliency").exists()
    assert not [m for m in metrics(run_dir) if m[1].startswith("eval/")]
    assert "SIGTERM: evaluation at step 50 abandoned" in caplog.text
    assert "SIGTERM: stopped at step 50 with a checkpoint" in caplog.text

    monkeypatch.undo()  # the next evaluation runs to the end
    run(run_dir, DRQ, "num_train_steps=100", "eval_every=50", "resume=true")
    evals = sorted(p.name for p in (run_dir / "eval").glob("*.json"))
    assert evals == ["step_0000050.json", "step_0000100.json"]  # the abandoned one redone
    assert sorted(p.name for p in (run_dir / "saliency").iterdir()) == [
        "step_0000050.png",
        "step_0000100.png",
    ]
    eval_steps = [m[0] for m in metrics(run_dir) if m[1] == "eval/train/return_mean"]
    assert eval_steps == [50, 100]


def test_a_second_ctrl_c_raises_keyboard_interrupt() -> None:
    code = (
        "import signal\n"
        "from sgqn_robot.graceful_stop import stop_on_signal\n"
        "with stop_on_signal() as stop:\n"
        "    signal.raise_signal(signal.SIGINT)\n"
        "    assert stop.requested and stop.signal_name == 'SIGINT'\n"
        "    try:\n"
        "        signal.raise_signal(signal.SIGINT)\n"
        "    except KeyboardInterrupt:\n"
        "        print('cleanup ran')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "cleanup ran\n", out


def test_a_second_sigterm_stops_at_once() -> None:
    code = (
        "import signal\n"
        "from sgqn_robot.graceful_stop import stop_on_signal\n"
        "with stop_on_signal() as stop:\n"
        "    signal.raise_signal(signal.SIGTERM)\n"
        "    assert stop.requested and stop.signal_name == 'SIGTERM'\n"
        "    print('first only flagged', flush=True)\n"
        "    signal.raise_signal(signal.SIGTERM)\n"
        "    print('not reached')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == -signal.SIGTERM and out.stdout == "first only flagged\n", out


def test_cli_refuses_an_unworkable_setting_in_one_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "bad"
    out, _ = _cli(*SMOKE, "eval_every=0", f"run_dir={run_dir}").communicate(timeout=120)
    assert "sgqn-train: eval_every=0: must be an integer >= 1" in out, out
    assert "Traceback" not in out and not run_dir.exists()
    out, _ = _cli(*SMOKE, "device=gpu", f"run_dir={run_dir}").communicate(timeout=120)
    assert "sgqn-train: device='gpu' is not a torch device" in out, out
    assert "Traceback" not in out and not run_dir.exists()


def test_merge_overrides_keeps_the_last_value_per_key() -> None:
    saved = ["agent=drq", "+note=a", "seed=1", "resume=true", "run_dir=r"]
    new = ["resume=true", "run_dir=r", "note=b", "seed=2", "+extra=1", "~extra"]
    assert merge_overrides(saved + new) == [
        "agent=drq",
        "+note=b",
        "seed=2",
        "resume=true",
        "run_dir=r",
    ]
    assert merge_overrides(["+note=a", "+note=b"]) == ["+note=b"]


def test_consecutive_resumes_keep_one_override_per_key(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    calls = [
        [*SMOKE, DRQ, "num_train_steps=50", "eval_episodes=0", "+note=a"],
        ["resume=true", "+note=b"],  # a repeated `+key=` once made Hydra refuse
        ["resume=true"],
    ]
    saved = []
    for args in calls:
        proc = _cli(*args, f"run_dir={run_dir}")
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, out
        saved.append(yaml.safe_load((run_dir / "overrides.yaml").read_text()))
    assert saved[1] == saved[2]  # does not grow with every resume
    keys = [o.lstrip("+").split("=")[0] for o in saved[2]]
    assert len(keys) == len(set(keys)) and "resume" not in keys and "run_dir" not in keys
    assert "+note=b" in saved[2] and "eval_episodes=0" in saved[2]
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["note"] == "b"


def _bench(name: str):
    path = ROOT / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_learning_evidence_resumes_runs_with_a_checkpoint_and_leaves_busy_ones_at_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    le = _bench("learning_evidence")
    out = tmp_path / "evidence"
    killed = out / "reach-sac-s1"  # killed before its first checkpoint: a temp dir and a CSV
    (killed / "checkpoints" / ".step_000000050.x").mkdir(parents=True)
    (killed / "metrics.csv").write_text("step,tag,value\n")
    resumable = out / "reach-sac-s2"
    busy = out / "reach-sac-s4"  # started by hand, still before its first checkpoint
    busy.mkdir()
    (busy / "metrics.csv").write_text("step,tag,value\n")
    planned = []
    monkeypatch.setattr(le, "_parallel", lambda cmds, jobs, minutes: planned.extend(cmds))
    args = argparse.Namespace(
        out=out, tasks="reach", agents="sac", seeds="1,2,3,4", encoder="fast", device="cpu",
        threads=1, steps=100, eval_every=50, eval_episodes=1, snapshot_every=50, extra=[],
        jobs=1, minutes=None, variant=None,
    )  # fmt: skip
    le.train(args)
    late = {Path(log).stem: launch for launch, log in planned}  # decided when its turn comes
    # after the queue was planned, s2 got a checkpoint and s4 a process (started by hand)
    (resumable / "checkpoints" / "step_000000050").mkdir(parents=True)
    (resumable / "checkpoints" / "latest").symlink_to("step_000000050")
    with hold_run_dir(busy):  # another open file description: locked as if by another process
        cmds = {name: launch() for name, launch in late.items()}
    assert cmds.pop("reach-sac-s4") is None and (busy / "metrics.csv").is_file()  # not moved aside
    assert (
        f"skipped: {busy} is in use by another process (pid {os.getpid()})"
        in capsys.readouterr().out
    )
    assert "resume=true" in cmds["reach-sac-s2"]
    for fresh in ("reach-sac-s1", "reach-sac-s3"):
        assert "resume=true" not in cmds[fresh] and "task=reach" in cmds[fresh]
    assert not killed.exists()  # moved aside, not deleted
    (stale,) = (out / "stale").iterdir()
    assert stale.name.startswith("reach-sac-s1-") and (stale / "metrics.csv").is_file()
    assert le.ALL_SPLITS[:2] == ("train", "test1") and len(le.ALL_SPLITS) == 12


def test_learning_evidence_trains_one_run_dir_per_ablation_arm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    le = _bench("learning_evidence")
    planned = []
    monkeypatch.setattr(le, "_parallel", lambda cmds, jobs, minutes: planned.extend(cmds))
    args = argparse.Namespace(
        out=tmp_path, tasks="reach", agents="sgqn", seeds="3,4", encoder="fast", device="cpu",
        threads=1, steps=100, eval_every=50, eval_episodes=1, snapshot_every=50,
        extra=["eval_splits=[train,test1]"], jobs=1, minutes=None,
        variant=[["base"], ["q90", "agent.mask_quantile=0.9"]],
    )  # fmt: skip
    le.train(args)
    cmds = {Path(log).stem: launch() for launch, log in planned}
    assert sorted(cmds) == [f"reach-sgqn-{v}-s{s}" for v in ("base", "q90") for s in (3, 4)]
    assert "agent.mask_quantile=0.9" in cmds["reach-sgqn-q90-s4"]
    assert "eval_splits=[train,test1]" in cmds["reach-sgqn-q90-s4"]
    assert not any("mask_quantile" in o for o in cmds["reach-sgqn-base-s3"])
    args.variant = [["q90", "agent.mask_quantile=0.9"], ["q90", "agent.mask_quantile=0.8"]]
    with pytest.raises(SystemExit, match="--variant q90: each arm needs its own name"):
        le.train(args)


def test_learning_evidence_report_keeps_only_the_seeds_asked_for(tmp_path: Path) -> None:
    le = _bench("learning_evidence")
    for name, seed in (("reach-sac-s1", 1), ("reach-sac-s2", 2), ("peg_in_box-sac-s1", 1)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump({"seed": seed}))
    (tmp_path / "logs").mkdir()  # not a run: no config.yaml
    assert [p.name for p in le._runs(tmp_path, {1})] == ["peg_in_box-sac-s1", "reach-sac-s1"]
    assert [p.name for p in le._runs(tmp_path, {2, 3})] == ["reach-sac-s2"]
    assert len(le._runs(tmp_path)) == 3
    report = argparse.Namespace(out=[tmp_path], images=tmp_path, prefix="", seeds="7")
    with pytest.raises(SystemExit, match=r"no runs of seeds \[7\] in "):
        le.report(report)
    with pytest.raises(SystemExit, match="no run dirs in it"):
        le._runs(tmp_path / "logs")
    with pytest.raises(SystemExit, match="no such directory; pass the --out that `train`"):
        le._runs(tmp_path / "typo")


def test_learning_evidence_summarizes_a_final_evaluation() -> None:
    le = _bench("learning_evidence")
    splits = {"train": (300.0, 0.9), "test1": (-100.0, 0.0), "test2": (50.0, 0.5)}
    splits |= {"camera": (200.0, 1.0)}
    res = {"splits": {k: {"return_mean": r, "success_rate": s} for k, (r, s) in splits.items()}}
    f = le._final_summary(res)
    assert f["test_mean"] == pytest.approx(50.0) and f["gap"] == pytest.approx(250.0)
    assert f["test1_5"] == pytest.approx(-25.0)  # camera is unseen but not one of the paper's
    assert f["unseen_success"] == pytest.approx(0.5) and f["train_success"] == 0.9


def test_learning_evidence_reports_failed_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    le = _bench("learning_evidence")
    ok = [sys.executable, "-c", "pass"]
    bad = [sys.executable, "-c", "raise SystemExit(3)"]
    logs = tmp_path / "logs"
    assert le._parallel([(ok, logs / "ok.log"), (bad, logs / "bad.log")], 2, None) == 1
    printed = capsys.readouterr().out
    assert "1 of 2 runs failed" in printed and "exit 3" in printed
    assert str(logs / "bad.log") in printed


def test_peg_probe_reports_where_each_episode_leaves_the_peg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    probe = _bench("peg_probe")
    peg = run(tmp_path / "peg", "task=peg_in_box", "agent=sac")
    r = probe.probe(peg, "train", episodes=2)
    assert 0.0 <= r["success"] <= 1.0 and 0.0 <= r["near_steps"] <= 50.0
    assert -10.0 < r["height_cm"] < 40.0  # box floor to the top of the mocap workspace
    assert r["step"] == 60  # the run's latest checkpoint
    with pytest.raises(SystemExit, match="reach run; pass peg_in_box runs"):
        probe.probe(run(tmp_path / "reach"), "train", episodes=1)
    for bad, says in (
        ([str(tmp_path / "missing")], "no checkpoint at"),
        ([str(peg), "--split", "tst1"], "unknown split 'tst1'"),
        ([str(peg), "--episodes", "0"], "--episodes must be >= 1"),
        ([str(peg), str(tmp_path / "reach")], "reach run; pass peg_in_box runs"),  # before probing
    ):
        monkeypatch.setattr(sys, "argv", ["peg_probe", *bad])
        with pytest.raises(SystemExit) as refused:
            probe.main()
        printed = capsys.readouterr()
        assert says in str(refused.value.code) + printed.err  # argparse prints, SystemExit carries
        assert "split train" not in printed.out  # refused before any episode ran


def test_predictor_gating_replays_the_evaluation_plain_and_on_the_predicted_mask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    bench = _bench("predictor_gating")
    reach = run(tmp_path / "reach")  # sgqn; its step-60 evaluation: train and test1, 1 episode
    result = bench.gating(reach, ["train", "test1"], episodes=1)
    evaluated = json.loads((reach / "eval" / "step_0000060.json").read_text())["splits"]
    for split in ("train", "test1"):  # plain is the evaluation itself: same seeds and policy
        assert result["plain"][split] == pytest.approx(evaluated[split]["return_mean"], abs=1e-4)
    assert result["gated"] != result["plain"]  # the actor saw other pixels, so it moved otherwise
    other = tmp_path / "drq-checkpoint"
    other.mkdir()
    (other / "agent.pt").write_bytes(b"")
    cfg = yaml.safe_load((reach / "checkpoints" / "latest" / "config.yaml").read_text())
    (other / "config.yaml").write_text(yaml.safe_dump(cfg | {"agent": {"name": "drq"}}))
    for bad, says in (
        ([str(other)], "drq run; pass sgqn runs"),
        ([str(reach), "--splits", "train,tst1"], "unknown split 'tst1'"),
        ([str(reach), "--episodes", "0"], "--episodes must be >= 1"),
        ([str(reach), str(tmp_path / "missing")], "no checkpoint at"),  # before any episode
    ):
        monkeypatch.setattr(sys, "argv", ["predictor_gating", *bad])
        with pytest.raises(SystemExit) as refused:
            bench.main()
        printed = capsys.readouterr()
        assert says in str(refused.value.code) + printed.err
        assert "| plain |" not in printed.out


def test_sgqn_collapse_forks_one_checkpoint_into_arms_that_differ_only_in_their_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    bench = _bench("sgqn_collapse")
    small = ["warmup_steps=45", "batch_size=8", "agent.hidden_dim=32", "video_size=0"]
    argv = ["sgqn_collapse", "--out", str(tmp_path), "--fork-at", "50", "--until", "100", *small]
    arms = ["--arm", "default", "--arm", "no_consistency", "agent.consistency_weight=0"]
    monkeypatch.setattr(sys, "argv", [*argv, *arms])
    bench.main()
    table = capsys.readouterr().out.splitlines()
    assert table[-2].startswith("| default | - | alive | 0 | ")
    assert table[-1].startswith("| no_consistency | agent.consistency_weight=0 | alive | 0 | ")
    for arm, weight in (("default", 1.0), ("no_consistency", 0.0)):
        run_dir = tmp_path / arm
        assert load_checkpoint(run_dir).config["agent"]["consistency_weight"] == weight
        assert load_checkpoint(run_dir).state["step"] == 100
        rows = bench.episodes(run_dir, after=50)
        assert [r["step"] for r in rows] == [100] and rows[0]["feature_std"] > 0
    # The consistency term is measured in both arms and weighted into the loss in one only.
    default, off = (
        bench.episodes(tmp_path / a, after=50)[0] for a in ("default", "no_consistency")
    )
    assert default["consistency_loss"] > 0 and default["critic_loss"] != off["critic_loss"]
    monkeypatch.setattr(sys, "argv", ["sgqn_collapse", "--survey", str(tmp_path / "base")])
    bench.main()  # the base run: updates from step 45, so its first episode has the metric
    lines = capsys.readouterr().out.splitlines()
    cells = lines[2].strip("| ").split(" | ")
    assert cells[:4] == [f"{tmp_path.name}/base", "50 steps", "alive", "0"]
    assert float(cells[5]) > 0 and 0 < float(cells[6]) < 1  # feature_std, mask fraction
    live = re.fullmatch(
        rf"\| {tmp_path.name}/base \| sgqn \| 50 \| (\d+), (\d+), (\d+) \(of 32 each\) \| "
        r"([\d.]+) / ([\d.]+) \|",
        lines[-1],
    )
    assert live and all(int(n) > 0 for n in live.groups()[:3])
    assert 0 < float(live[4]) <= 1 and 0 < float(live[5]) <= 1  # attribution coverage
    agent_pt = tmp_path / "default" / "checkpoints" / "latest" / "agent.pt"
    state = torch.load(agent_pt, weights_only=True)
    state["critic"]["trunk.convs.1.bias"].fill_(-1e4)  # the second hidden layer never fires
    torch.save(state, agent_pt)
    step, channels, width, trained, fresh = bench.trunk_probe(tmp_path / "default")
    assert step == 100 and width == 32 and channels[1] == 0 and channels[0] > 0
    assert trained == 0 and fresh > 0  # no guided gradient reaches any pixel past a dead layer
    # A run resumed with a newer trainer logs feature_std only from the resume on.
    resumed = [
        {"step": 50, "critic_loss": 1.0},
        {"step": 100, "critic_loss": 1.0, "feature_std": 0.0},
    ]
    assert bench.row("resumed", "-", resumed).startswith("| resumed | - | 100 | ")
    monkeypatch.setattr(sys, "argv", ["sgqn_collapse", "--survey", str(tmp_path / "nothing")])
    with pytest.raises(SystemExit, match="not sgqn-train run dirs .*/nothing$"):
        bench.main()
    monkeypatch.setattr(sys, "argv", [*argv, "--arm", "x", "warmup_steps=10"])
    with pytest.raises(SystemExit) as refused:
        bench.main()
    assert refused.value.code == 2
    assert "arm x: ['warmup_steps=10'] are not agent.KEY=VALUE" in capsys.readouterr().err


def test_update_throughput_times_an_agent_variant_beside_its_default() -> None:
    bench = _bench("update_throughput")
    _, cfg = bench.parse_variant("sgqn aux_update_freq=1 mask_quantile=0.9")
    assert cfg == {"name": "sgqn", "aux_update_freq": 1, "mask_quantile": 0.9}
    label, cfg = bench.parse_variant("sgqn aux_update_freq=1")
    agents = {"sgqn": {"name": "sgqn"}, label: cfg}
    res = bench.bench_preset("fast", agents, 4, 1, 3, reps=1, channels_last=True)
    # the attribution step on every update instead of every other one: more work per pair
    assert res[label]["gflop"] > res["sgqn"]["gflop"] > 0 and res[label]["s"] > 0
    for bad, says in (
        ("sgqm aux_update_freq=1", "unknown agent 'sgqm'"),
        ("sgqn aux_update_freq", "is not key=value"),
        ("sgqn aux_freq=1", "unknown agent config keys ['aux_freq']"),
    ):
        with pytest.raises(SystemExit, match=re.escape(says)):
            _, bad_cfg = bench.parse_variant(bad)
            bench.bench_preset("fast", {bad: bad_cfg}, 4, 1, 3, reps=1, channels_last=True)


def test_saliency_shift_compares_each_split_on_trains_own_states(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    bench = _bench("saliency_shift")
    shift = bench.shift
    r = shift(run(tmp_path / "reach"), ["train", "test1"], episodes=1, every=10)
    # train against itself: same seed, same states, same pixels -> identical masks and values
    # (up to float summation order: oneDNN may pick another kernel when the machine is loaded)
    assert r["train"] == pytest.approx(
        {"iou": 1.0, "action_change": 0.0, "q_change": 0.0}, abs=1e-5
    )
    assert 0.0 <= r["test1"]["iou"] < 1.0 and r["test1"]["action_change"] > 0.0
    with pytest.raises(ConfigError, match="unknown split 'test9'"):
        shift(tmp_path / "reach", ["test9"], episodes=1)
    argv = ["saliency_shift", str(tmp_path / "reach"), "--splits", "train", "--every", "25"]
    monkeypatch.setattr(sys, "argv", argv + ["--episodes", "1"])
    bench.main()
    runs, table = capsys.readouterr().out.split("| agent (mean over its runs) |")
    assert "| reach @ 60 | 1.00 / 0.00 /" in runs  # run name @ its checkpoint's step
    assert re.search(r"\| sgqn \(1\) \| 1\.00 / 0\.00 / [+-]0\.0 \|", table)
    monkeypatch.setattr(sys, "argv", ["saliency_shift", str(tmp_path / "nothing-here")])
    with pytest.raises(SystemExit):
        bench.main()
    assert f"no checkpoint at {tmp_path / 'nothing-here'}" in capsys.readouterr().err


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
    assert len(runs) == 2 and runs[0].startswith("reach-drq-s1-"), out
    assert runs[1] == runs[0].replace("-s1-", "-s2-", 1)  # the jobs differ in the seed only
    assert "eval_episodes=0," in runs[0] and "num_train_steps=50," in runs[0]  # last value wins
    returns = [metrics(tmp_path / r)[0] for r in runs]
    assert returns[0] != returns[1]  # different seeds, different episodes


def test_learning_evidence_report_regenerates_the_results_table_from_the_kept_evidence(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """docs/evidence keeps each run's config, metrics and final evaluation (no checkpoints; the
    TensorBoard events only from 2026-11-27 on); `report` over those copies must print the table
    RESULTS.md shows."""
    le = _bench("learning_evidence")
    evidence = ROOT / "docs" / "evidence" / "cpu_fast"
    le.report(argparse.Namespace(out=[evidence], images=tmp_path, prefix="", seeds=""))
    printed = capsys.readouterr().out
    results = (ROOT / "docs" / "RESULTS.md").read_text()
    rows = [line for line in printed.splitlines() if line.startswith("| ")]
    table = [r for r in rows if r.startswith(("| train |", "| test3 |", "| test mean |"))]
    assert len(table) == 3 and all(r in results for r in table)
    (at_10k,) = [r for r in rows if r.startswith("| 10000 | ")]  # in-training evaluation
    assert at_10k.count(" / ") == 3 and "min)" not in at_10k  # no events kept: no minutes
    assert (tmp_path / "curves_reach.png").stat().st_size > 10_000
    # paired by seed: the differences are those of the per-seed rows
    per_seed = {
        (cells[0], cells[1]): float(cells[3])
        for r in rows
        if len(cells := [c.strip() for c in r.strip("|").split("|")]) == 6
        and cells[1].isdigit()
        and " of " not in r  # not the goals table
    }
    # baselines first, the method last; pairs read "later agent minus earlier"
    assert "| split | sac | svea | sgqn |" in printed
    pairs = [r.split(" | ")[0] for r in rows if r.split(" | ")[1].isdigit() and " - " in r]
    assert pairs == ["| svea - sac", "| sgqn - sac", "| sgqn - svea"]
    (pair,) = [r for r in rows if r.startswith("| sgqn - svea | 3 |")]
    expect = [per_seed[("sgqn", s)] - per_seed[("svea", s)] for s in "123"]
    shown = pair.split("(")[1].split(")")[0].split(", ")
    assert [float(d) for d in shown] == pytest.approx(expect, abs=0.11)  # rows rounded to 0.1
    # each run against issue 6's goals: the count of unseen splits at >= 25 is the final
    # evaluation's, and the train goal's first step one of the in-training evaluations
    goals = [r for r in rows if r.count(" of 11 |") == 1]
    assert len(goals) == 9
    for row in goals:
        agent, seed, first, _, held, _ = (c.strip() for c in row.strip("|").split("|"))
        final = json.loads((evidence / f"reach-{agent}-s{seed}" / "final.json").read_text())
        unseen = [v["return_mean"] for k, v in final["splits"].items() if k != "train"]
        assert held == f"{sum(v >= 25 for v in unseen)} of 11"
        assert first.split()[0] in {"2500", "5000", "7500", "10000", "12500", "15000"}
    assert [le.sign_test(k, n) for k, n in ((5, 5), (0, 4), (3, 4), (2, 4))] == [
        0.0625,
        0.125,
        0.625,
        1.0,
    ]


def test_learning_evidence_reports_hyper_parameter_variants_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Runs of one agent with other settings (an ablation, a sweep) get their own column instead
    of being averaged in as extra seeds, also when they come from separate dirs; a kept run
    without metrics.csv still reports; the same run found in two dirs is refused."""
    le = _bench("learning_evidence")
    kept = ROOT / "docs" / "evidence" / "paper_scenes_15k" / "reach-sgqn-s3"
    default_dir, ablation_dir = tmp_path / "default", tmp_path / "ablation"
    for out, name, quantile in (
        (default_dir, "reach-sgqn-s3", None),
        (ablation_dir, "reach-sgqn-q90-s3", 0.9),
    ):
        run = out / name
        run.mkdir(parents=True)
        cfg = yaml.safe_load((kept / "config.yaml").read_text())
        if quantile is not None:
            cfg["agent"]["mask_quantile"] = quantile
        (run / "config.yaml").write_text(yaml.safe_dump(cfg))
        (run / "final.json").write_bytes((kept / "final.json").read_bytes())
        if quantile is None:
            (run / "metrics.csv").write_bytes((kept / "metrics.csv").read_bytes())
    dirs = [default_dir, ablation_dir]
    le.report(argparse.Namespace(out=dirs, images=tmp_path / "img", prefix="", seeds=""))
    printed = capsys.readouterr().out
    assert "| split | sgqn | sgqn agent.mask_quantile=0.9 |" in printed
    (test_mean,) = [r for r in printed.splitlines() if r.startswith("| test mean |")]
    assert test_mean.count("± 0.0") == 2  # one run per column, not two seeds of one
    assert le._variant(yaml.safe_load((kept / "config.yaml").read_text())) == "sgqn"

    shutil.copytree(default_dir / "reach-sgqn-s3", ablation_dir / "reach-sgqn-s3")
    with pytest.raises(SystemExit, match="would be averaged as two seeds"):
        le.report(argparse.Namespace(out=dirs, images=tmp_path / "img", prefix="", seeds=""))


def test_learning_evidence_keeps_only_what_the_report_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    le = _bench("learning_evidence")
    kept = ROOT / "docs" / "evidence" / "cpu_fast" / "reach-sgqn-s1"
    runs = tmp_path / "runs"
    for name in ("reach-sgqn-s1", "reach-sgqn-s2"):
        run = runs / name
        (run / "eval").mkdir(parents=True)
        (run / "checkpoints" / "step_000015000").mkdir(parents=True)
        (run / "tb").mkdir()
        for f in ("config.yaml", "metrics.csv"):
            (run / f).write_bytes((kept / f).read_bytes())
        (run / "tb" / "events.out.tfevents.1").write_bytes(b"x")
    (runs / "reach-sgqn-s1" / "eval" / "final.json").write_bytes((kept / "final.json").read_bytes())
    with (runs / "reach-sgqn-s2" / "metrics.csv").open("a") as f:
        f.write("15050,train/ret")  # still training: its trainer is mid-line
    to = tmp_path / "evidence"
    le.keep(argparse.Namespace(out=runs, to=to, unfinished=False))
    assert "skipped reach-sgqn-s2: no final evaluation" in capsys.readouterr().out
    (dest,) = to.iterdir()
    names = {p.relative_to(dest).as_posix() for p in dest.rglob("*")}
    assert names == {"config.yaml", "metrics.csv", "final.json", "tb", "tb/events.out.tfevents.1"}
    assert json.loads((dest / "final.json").read_text())["step"] == 15000
    # --unfinished: the unevaluated run's curves so far too, without its cut-off last row
    le.keep(argparse.Namespace(out=runs, to=to, unfinished=True))
    assert "reach-sgqn-s2 (unfinished: no final evaluation yet)" in capsys.readouterr().out
    dest = to / "reach-sgqn-s2"
    names = {p.relative_to(dest).as_posix() for p in dest.rglob("*")}
    assert names == {"config.yaml", "metrics.csv", "tb", "tb/events.out.tfevents.1"}
    assert (dest / "metrics.csv").read_text() == (kept / "metrics.csv").read_text()


def test_learning_evidence_goals_table_counts_splits_and_names_missing_evaluations(
    tmp_path: Path,
) -> None:
    """A run whose final evaluation is missing (or covers no unseen split) gets a row saying
    so instead of breaking the table; the train goal is read from the in-training evaluations."""
    le = _bench("learning_evidence")
    kept = ROOT / "docs" / "evidence" / "paper_scenes_15k" / "reach-sgqn-s3"
    runs = []
    for seed, final in ((3, "all"), (4, "train only"), (5, None)):
        run = tmp_path / f"reach-sgqn-s{seed}"
        run.mkdir()
        cfg = yaml.safe_load((kept / "config.yaml").read_text()) | {"seed": seed}
        (run / "config.yaml").write_text(yaml.safe_dump(cfg))
        (run / "metrics.csv").write_bytes((kept / "metrics.csv").read_bytes())
        result = json.loads((kept / "final.json").read_text())
        if final == "train only":
            result["splits"] = {"train": result["splits"]["train"]}
        if final is not None:
            (run / "final.json").write_text(json.dumps(result))
        runs.append(run)
    rows = le._goals_table("reach", {("reach", "sgqn"): runs})[3:]
    assert [r.split(" | ")[1] for r in rows] == ["3", "4", "5"]
    full = json.loads((kept / "final.json").read_text())["splits"]
    held = sum(v["return_mean"] >= 25 for k, v in full.items() if k != "train")
    assert f"| {held} of 11 |" in rows[0]
    assert all(r.split(" | ")[2].endswith(" steps") for r in rows)  # kept metrics, no events
    assert all("(no final evaluation of unseen splits)" in r for r in rows[1:])
    assert le._goals_table("lift", {("lift", "sgqn"): runs}) == []
