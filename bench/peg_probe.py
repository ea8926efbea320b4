"""Peg-in-box probe: is a high return an insertion, or a peg held above the box?

    python bench/peg_probe.py RUN_DIR [RUN_DIR ...] [--split train] [--episodes 10]

The spec's reward pays 10 - 20*d_xyz per step once the peg is within 5 cm (xy) of the box
opening, so a peg held ~10 cm above the rim earns ~8 of the ~10 per step an inserted one does:
returns alone cannot tell the two apart. This runs each run's latest policy deterministically and
prints, per run, the mean return, the success rate, the steps paid that bonus, and the peg's final
height over the rim (negative: inside the box).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sgqn_robot.envs import make_env
from sgqn_robot.envs.peg_in_box import NEAR_DIST

from sgqn_robot.checkpoint import load_policy
from sgqn_robot.evaluate import env_kwargs


def probe(run_dir: Path, split: str, episodes: int, seed: int = 100) -> dict[str, float]:
    """Deterministic episodes of a peg-in-box run; where the peg is when each one ends."""
    policy = load_policy(run_dir)
    if policy.config["task"] != "peg_in_box":
        raise SystemExit(f"{run_dir} is a {policy.config['task']} run; pass peg_in_box runs")
    env = make_env("peg_in_box", split=split, **env_kwargs(policy.config))
    returns, successes, near_steps, heights = [], [], [], []
    try:
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            ret, near, done = 0.0, 0, False
            while not done:
                with torch.no_grad():
                    action = policy.actor(torch.as_tensor(obs)[None]).numpy()[0]
                obs, reward, terminated, truncated, info = env.step(action)
                ret += reward
                near += info["dist_xy"] <= NEAR_DIST
                done = terminated or truncated
            returns.append(ret)
            successes.append(info["is_success"])
            near_steps.append(near)
            heights.append(info["peg_pos"][2] - info["goal_pos"][2])
    finally:
        env.close()
    return {
        "return": float(np.mean(returns)),
        "success": float(np.mean(successes)),
        "near_steps": float(np.mean(near_steps)),
        "height_cm": 100 * float(np.median(heights)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--split", default="train")
    parser.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"split {args.split}, {args.episodes} episodes per run (reset seeds 100...)\n")
    print("| run | return | success | steps paid the bonus (of 50) | final peg height over rim |")
    print("|---|---|---|---|---|")
    for run in args.runs:
        r = probe(run, args.split, args.episodes)
        print(
            f"| {run.name} | {r['return']:.1f} | {r['success']:.0%} | {r['near_steps']:.1f} "
            f"| {r['height_cm']:+.1f} cm (median) |"
        )


if __name__ == "__main__":
    main()
