"""Peg-in-box probe: is a high return an insertion, or a peg held above the box?

    python bench/peg_probe.py RUN_OR_CHECKPOINT_DIR [...] [--split train] [--episodes 10]

The spec's reward pays 10 - 20*d_xyz per step once the peg is within 5 cm (xy) of the box
opening, so a peg held ~10 cm above the rim earns ~8 of the ~10 per step an inserted one does:
returns alone cannot tell the two apart. This replays the evaluation's own episodes (`Evaluator`,
same seeds) and prints, per run, the mean return, the success rate, the steps paid that bonus,
and the peg's final height over the rim (negative: inside the box).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium
import numpy as np
import torch
from sgqn_robot.envs.peg_in_box import NEAR_DIST

from sgqn_robot.checkpoint import checkpoint_dir, load_policy, read_config
from sgqn_robot.config import ConfigError
from sgqn_robot.evaluate import Evaluator, check_splits, env_kwargs


class PegTrace(gymnasium.Wrapper):
    """Per episode: the steps paid the near-opening bonus, the peg's height over the rim at the end."""

    def __init__(self, env: gymnasium.Env):
        super().__init__(env)
        self.near_steps: list[int] = []
        self.heights: list[float] = []

    def reset(self, **kwargs):
        self.near_steps.append(0)
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.near_steps[-1] += info["dist_xy"] <= NEAR_DIST
        if terminated or truncated:
            self.heights.append(float(info["peg_pos"][2] - info["goal_pos"][2]))
        return obs, reward, terminated, truncated, info


def require_peg_run(run_dir: Path) -> None:
    """The probe reads peg-in-box state: any other task is refused by name."""
    if (task := read_config(run_dir)["task"]) != "peg_in_box":
        raise SystemExit(f"{run_dir} is a {task} run; pass peg_in_box runs")


def probe(run_dir: Path, split: str, episodes: int) -> dict[str, float]:
    """The evaluation's own episodes (same seeds as `sgqn-eval`), traced: where the peg ends."""
    require_peg_run(run_dir)
    policy = load_policy(run_dir)
    evaluator = Evaluator("peg_in_box", env_kwargs(policy.config), [split])
    trace = evaluator.envs[split] = PegTrace(evaluator.envs[split])

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return policy.actor(torch.as_tensor(obs)[None]).numpy()[0]

    try:
        results, _ = evaluator.run(act, episodes)
    finally:
        evaluator.close()
    summary = results[split].summary()
    return {
        "return": summary["return_mean"],
        "success": summary["success_rate"],
        "near_steps": float(np.mean(trace.near_steps)),
        "height_cm": 100 * float(np.median(trace.heights)),
        "step": policy.step,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--split", default="train")
    parser.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args()
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    try:
        check_splits("--split", [args.split])
        for run in args.runs:  # all of them before the first (minutes-long) probe
            require_peg_run(run)
    except (ConfigError, FileNotFoundError) as e:
        parser.error(str(e))
    torch.set_num_threads(1)
    print(f"split {args.split}, {args.episodes} episodes per run (the evaluation's seeds)\n")
    columns = ["run", "env steps", "return", "success", "steps paid the bonus (of 50)"]
    print("| " + " | ".join([*columns, "final peg height over rim"]) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for run in args.runs:
        r = probe(run, args.split, args.episodes)
        name = checkpoint_dir(run).parent.parent.name
        print(
            f"| {name} | {r['step']} | {r['return']:.1f} | {r['success']:.0%} "
            f"| {r['near_steps']:.1f} | {r['height_cm']:+.1f} cm (median) |"
        )


if __name__ == "__main__":
    main()
