"""Diagnostic: which of SGQN's losses kills the critic trunk on reach seed 6?

    python bench/sgqn_collapse.py --out DIR [--seed 6] [--fork-at 1950] [--until 2200]
        [--arm NAME KEY=VALUE ...] [--jobs 2] [BASE_OVERRIDE ...]
    python bench/sgqn_collapse.py --survey RUN_DIR [RUN_DIR ...]

Reach SGQN, seed 6 (the `fast` preset, 1 thread, the same settings as `learning_evidence.py`'s
runs) lost every ReLU of its trunk's last hidden layer at ~2000 env steps and never learned the
task (docs/RESULTS.md, "SGQN's dead trunk"). On the CPU a 1-thread run is bit-identical to its
repeat, so the collapse can be re-made and then forked: this trains the seed to `--fork-at`
(`<out>/base`, skipped when it is already there), copies that checkpoint into one run dir per
arm with the arm's agent settings written into its config, and resumes each to `--until`. The
default arms change one thing each: none (the control: it must collapse again), the consistency
loss off, the consistency weight 1% lower (a small perturbation: does any change avoid it?),
and the attribution-prediction update off (aux_lr 1e-12 keeps its random draws, so the arms
stay on one random stream). Prints, per arm, the first episode whose batches all gave constant
trunk features (`feature_std` 0), how many episodes had a mask over half the image, the largest
consistency loss, and the last episode's `feature_std` and `mask_fraction`.
`--survey` prints the same columns for finished runs of any agent (how often does it happen?)
and, for those that kept a checkpoint and replay, how many channels of each hidden layer of its
critic trunk still fire on any of 256 replay observations, and on what share of a frame's pixels
the guided attribution is nonzero, for that critic and for a fresh one of the same config (below
1 - mask_quantile, the mask is the whole frame).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import yaml
from sgqn_robot.envs import EPISODE_STEPS

from sgqn_robot.agents import SACAgent, make_agent
from sgqn_robot.agents.networks import Critic
from sgqn_robot.agents.saliency import attribution, frame_saliency
from sgqn_robot.checkpoint import Checkpoint, checkpoint_dir, load_agent, read_config
from sgqn_robot.replay import ReplayBuffer

DEFAULT_ARMS = [
    ["default"],
    ["no_consistency", "agent.consistency_weight=0"],
    ["consistency_0.99", "agent.consistency_weight=0.99"],
    ["no_aux", "agent.aux_lr=1.0e-12"],
]


def _sgqn_train(*overrides: str) -> list[str]:
    return [str(Path(sys.executable).parent / "sgqn-train"), *overrides]


def _run(cmd: list[str], log: Path) -> None:
    with log.open("w") as f:
        if subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode:
            sys.exit(f"{' '.join(cmd)} failed; its output is in {log}")


def fork(base: Path, run: Path, settings: list[str]) -> None:
    """`run` = `base` at its latest checkpoint, with agent settings KEY=VALUE in its configs (a
    resume refuses changed agent settings, rightly: this is a branch, not a continuation)."""
    shutil.rmtree(run, ignore_errors=True)
    ckpt = checkpoint_dir(base)
    (run / "checkpoints").mkdir(parents=True)
    for name in ("replay.zarr", "config.yaml", "overrides.yaml"):
        copy = shutil.copytree if (base / name).is_dir() else shutil.copy
        copy(base / name, run / name)
    shutil.copytree(ckpt, run / "checkpoints" / ckpt.name)
    (run / "checkpoints" / "latest").symlink_to(ckpt.name)
    for path in (run / "config.yaml", run / "checkpoints" / ckpt.name / "config.yaml"):
        config = yaml.safe_load(path.read_text())
        config["run_dir"] = str(run)
        for setting in settings:
            key, value = setting.split("=", 1)
            config["agent"][key.removeprefix("agent.")] = yaml.safe_load(value)
        path.write_text(yaml.safe_dump(config, sort_keys=False))


def episodes(run: Path, after: int) -> list[dict[str, float]]:
    """Per-episode training metrics past step `after`, oldest first."""
    rows: dict[int, dict[str, float]] = {}
    with (run / "metrics.csv").open() as f:
        for r in csv.DictReader(f):
            if int(r["step"]) > after and r["tag"].startswith("train/"):
                rows.setdefault(int(r["step"]), {})[r["tag"][6:]] = float(r["value"])
    return [rows[s] | {"step": s} for s in sorted(rows)]


def row(name: str, settings: str, rows: list[dict[str, float]]) -> str:
    """A table row: when the trunk died (the first episode all of whose batches gave constant
    features), how many episodes had a mask over half the image (the guided gradient zero on
    most pixels: units dying, transiently or for good), the largest consistency loss and the
    last episode's values. '-' where the run did not log the metric (no SGQN, or trained before
    `feature_std` existed, commit 16d1e22; a run resumed past it is judged on the episodes
    since)."""
    updated = [r for r in rows if "critic_loss" in r]  # past the warm-up
    if not updated:
        sys.exit(f"{name}: no update in its metrics.csv yet")
    last = updated[-1]

    def cell(key: str, fmt: str) -> str:
        return format(last[key], fmt) if key in last else "-"

    dead = "-"
    if "feature_std" in last:
        dead = next((str(r["step"]) for r in updated if r.get("feature_std") == 0), "alive")
    wide = sum(r.get("mask_fraction", 0) > 0.5 for r in updated)
    worst = max((r["consistency_loss"] for r in updated if "consistency_loss" in r), default=None)
    return (
        f"| {name} | {settings} | {dead} | "
        f"{wide if 'mask_fraction' in last else '-'} | "
        f"{'-' if worst is None else format(worst, '.3f')} | "
        f"{cell('feature_std', '.4f')} | {cell('mask_fraction', '.3f')} |"
    )


def _replay(run: Path, ckpt: Checkpoint) -> ReplayBuffer:
    """`run`'s replay as of `ckpt`."""
    frames = int(ckpt.state["replay_frames"])
    c, h, w = ckpt.state["obs_shape"]
    stack = int(ckpt.config["env"]["frame_stack"])
    replay = ReplayBuffer(frames, (c // stack, h, w), int(ckpt.state["action_dim"]), stack)
    replay.load(run / "replay.zarr", num_frames=frames)
    return replay


def _batch(replay: ReplayBuffer, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`samples` observations and actions, the same ones on every call."""
    batch = replay.sample(samples, np.random.default_rng(0))
    return torch.as_tensor(batch.obs), torch.as_tensor(batch.action)


@torch.no_grad()
def live_channels(agent: SACAgent, obs: torch.Tensor) -> tuple[list[int], int]:
    """(per hidden layer of the agent's critic trunk (the ReLUs between the convs) how many
    channels fire anywhere on any of `obs`, channels per layer). A channel that fires on none
    gets no gradient from losses on those images."""
    fired: list[torch.Tensor] = []
    convs = agent.critic.trunk.convs
    hooks = [  # a conv's output before the in-place ReLU that follows it
        conv.register_forward_hook(lambda _m, _i, out: fired.append((out > 0).any((0, 2, 3))))
        for conv in convs[:-1]
    ]
    agent.critic.trunk(obs)
    for hook in hooks:
        hook.remove()
    return [int(f.sum()) for f in fired], convs[0].out_channels


def attribution_coverage(
    agent: SACAgent, ckpt: Checkpoint, obs: torch.Tensor, action: torch.Tensor
) -> tuple[float, float]:
    """Median share of a frame's pixels with a nonzero guided attribution on `obs`: (the agent's
    critic, a freshly initialised critic of `ckpt`'s config). Below 1 - mask_quantile the
    quantile is 0, every pixel ties at it, and the mask is the whole frame: what SGQN's first
    update sees, and what a dead trunk gives forever."""
    torch.manual_seed(int(ckpt.config["seed"]))
    fresh = make_agent(
        ckpt.config["agent"],
        ckpt.config["encoder"],
        tuple(ckpt.state["obs_shape"]),
        int(ckpt.state["action_dim"]),
        "cpu",
    )

    def coverage(critic: Critic) -> float:
        saliency = frame_saliency(attribution(critic, obs.float(), action))
        return float((saliency > 0).float().mean((2, 3)).median())

    return coverage(agent.critic), coverage(fresh.critic)


def trunk_probe(run: Path) -> tuple[int, list[int], int, float, float]:
    """(checkpoint step, `live_channels` on 256 replay observations, `attribution_coverage` on
    128) for `run`'s latest checkpoint, its checkpoint and replay read once."""
    agent, ckpt = load_agent(run)
    replay = _replay(run, ckpt)
    live, width = live_channels(agent, _batch(replay, 256)[0])
    trained, fresh = attribution_coverage(agent, ckpt, *_batch(replay, 128))
    return int(ckpt.state["step"]), live, width, trained, fresh


HEADER = (
    "| {} | settings | trunk dead from step | episodes with mask_fraction > 0.5 | "
    "largest consistency_loss | last feature_std | last mask_fraction |\n"
    "|---|---|---|---|---|---|---|"
)


def survey(runs: list[Path]) -> None:
    """The table for finished runs, and the live channels of those that kept a checkpoint."""
    if missing := [str(run) for run in runs if not (run / "metrics.csv").is_file()]:
        sys.exit(f"not sgqn-train run dirs (no metrics.csv): {', '.join(missing)}")
    print(HEADER.format("run"))
    for run in runs:
        rows = episodes(run, after=0)
        print(row(f"{run.parent.name}/{run.name}", f"{rows[-1]['step']} steps", rows))
    kept = [run for run in runs if (run / "checkpoints" / "latest").exists()]
    if kept:
        print(
            "\n| run | agent | step | live channels per trunk hidden layer | "
            "pixels with nonzero attribution: checkpoint / fresh critic |\n|---|---|---|---|---|"
        )
    for run in kept:
        agent = read_config(run)["agent"]["name"]
        step, live, width, trained, fresh = trunk_probe(run)
        counts = ", ".join(str(n) for n in live)
        print(
            f"| {run.parent.name}/{run.name} | {agent} | {step} | {counts} (of {width} each) | "
            f"{trained:.3f} / {fresh:.3f} |"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path)
    p.add_argument("--survey", type=Path, nargs="+", metavar="RUN_DIR")
    p.add_argument("--seed", type=int, default=6)
    p.add_argument("--fork-at", type=int, default=1950)
    p.add_argument("--until", type=int, default=2200)
    p.add_argument("--arm", nargs="+", action="append", metavar=("NAME", "KEY=VALUE"))
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("extra", nargs="*", help="more sgqn-train overrides for the base run")
    args = p.parse_args()
    if args.survey:
        return survey(args.survey)
    if args.out is None:
        p.error("--out DIR (the forks) or --survey RUN_DIR ... is required")
    if args.fork_at % EPISODE_STEPS or args.until <= args.fork_at:
        p.error(f"--fork-at must be a multiple of {EPISODE_STEPS} (an episode end) below --until")
    arms = args.arm or DEFAULT_ARMS
    for name, *settings in arms:
        if bad := [s for s in settings if not s.startswith("agent.") or "=" not in s]:
            p.error(f"arm {name}: {bad} are not agent.KEY=VALUE settings")

    base = args.out / "base"
    args.out.mkdir(parents=True, exist_ok=True)
    if not (base / "checkpoints" / "latest").exists():
        print(f"training seed {args.seed} to step {args.fork_at} in {base}", flush=True)
        _run(
            _sgqn_train(
                *("task=reach", "agent=sgqn", "encoder=fast", f"seed={args.seed}", "device=cpu"),
                *("threads=1", f"num_train_steps={args.fork_at}", "eval_episodes=0"),
                f"snapshot_every={args.fork_at}",
                f"run_dir={base}",
                *args.extra,
            ),
            args.out / "base.log",
        )

    def branch(arm: list[str]) -> None:
        name, *settings = arm
        fork(base, args.out / name, settings)
        resume = [f"run_dir={args.out / name}", "resume=true", f"num_train_steps={args.until}"]
        _run(_sgqn_train(*resume, *settings), args.out / f"{name}.log")

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(branch, arms))

    print(f"\nreach sgqn seed {args.seed}, forked at step {args.fork_at}, run to {args.until}\n")
    print(HEADER.format("arm"))
    for name, *settings in arms:
        print(row(name, " ".join(settings) or "-", episodes(args.out / name, args.fork_at)))


if __name__ == "__main__":
    main()
