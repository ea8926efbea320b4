"""Scripted policies that read the simulator state: proof that each task is solvable and that
success is detected (``python -m sgqn_robot.envs.oracle`` measures the success rate per split)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from .base_env import ACTION_SCALE, XArmEnv
from .splits import check_split

GAIN = 1.5  # >1 so the last centimetres are covered in few steps without overshooting much
ALIGNED = 0.012  # fingertips this close (xy) to the box centre before descending
STILL = 0.035  # peg this close (xy) to the box centre: it has stopped swinging enough


def oracle_action(env: gym.Env) -> np.ndarray:
    """The scripted action for the env's current state (reach or peg-in-box), in [-1, 1]."""
    base: XArmEnv = env.unwrapped  # type: ignore[assignment]
    eef = base.eef_pos
    if base.TASK == "reach":
        goal = np.array([*base.target_pos[:2], eef[2]])
    else:
        goal = np.array([*base.goal_pos[:2], eef[2]])
        aligned = np.linalg.norm(eef[:2] - goal[:2]) < ALIGNED
        still = np.linalg.norm(base.peg_pos[:2] - goal[:2]) < STILL
        if aligned and still:
            goal[2] = base.WORKSPACE[0][2]
    action = np.clip(GAIN * (goal - eef) / ACTION_SCALE, -1.0, 1.0)
    return action[: base.action_dims].astype(np.float32)


def success_rate(env: gym.Env, episodes: int, seed: int = 0) -> tuple[float, float]:
    """Fraction of episodes whose final step reports success, and the mean return."""
    wins, returns = 0, []
    for ep in range(episodes):
        env.reset(seed=seed + ep)
        total, done, info = 0.0, False, {}
        while not done:
            _, r, term, trunc, info = env.step(oracle_action(env))
            total += r
            done = term or trunc
        wins += bool(info["is_success"])
        returns.append(total)
    return wins / episodes, float(np.mean(returns))


def main(argv: Sequence[str] | None = None) -> None:
    from . import SPLITS, TASKS, check_task, make_env

    p = argparse.ArgumentParser(
        prog="python -m sgqn_robot.envs.oracle",
        description="Oracle success rate per task and split.",
    )
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--tasks", nargs="+", default=list(TASKS))
    p.add_argument("--splits", nargs="+", default=list(SPLITS))
    args = p.parse_args(argv)
    try:  # every option checked before the first (slow) episode
        if args.episodes < 1:
            raise ValueError(f"--episodes {args.episodes}: must be >= 1")
        for task in args.tasks:
            check_task(task)
        for split in args.splits:
            check_split(split)
    except ValueError as e:
        p.exit(2, f"{p.prog}: error: {e}\n")
    print("| task | split | success | mean return |\n|---|---|---|---|")
    for task in args.tasks:
        for split in args.splits:
            env = make_env(task, split=split)
            rate, ret = success_rate(env, args.episodes)
            env.close()
            print(f"| {task} | {split} | {rate:.2f} | {ret:.1f} |", flush=True)


if __name__ == "__main__":
    main()
