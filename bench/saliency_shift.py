"""Saliency shift: on an unseen scene, does the policy still look where it looked, and act alike?

    python bench/saliency_shift.py RUN_DIR [RUN_DIR ...] [--splits test1,test2] [--episodes 5]

SGQN's claim is that the critic keeps attending to the task-relevant pixels when the scene's
colours and textures change. This measures it on the *same states*: episode i of the train
split and of each unseen split reset with the evaluation's seed (same layout on every split),
the train policy's action drives both, so only the pixels differ. At every `--every`-th step
it compares, per split against train:
- mask IoU: overlap of the critic's attribution masks (guided backprop of Q1 at the train
  action, spec §2), newest frame; two random masks of the same size overlap by ~(1-q)/(1+q),
  0.026 at the manipulation quantile 0.95;
- action change: mean |a_split - a_train| per action dimension of the deterministic actor
  (actions lie in [-1, 1]);
- Q1 change: Q1(split frame, a) - Q1(train frame, a), the critic's value shift.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sgqn_robot.envs import EPISODE_STEPS, SPLITS, make_env

from sgqn_robot.agents.saliency import attribution, attribution_mask
from sgqn_robot.checkpoint import checkpoint_label, load_agent, read_config
from sgqn_robot.config import ConfigError
from sgqn_robot.evaluate import EVAL_SEED, check_splits, env_kwargs

METRICS = ("iou", "action_change", "q_change")


def _iou(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Per-sample IoU of bool masks [B, C, H, W], newest frame's first channel."""
    a, b = a[:, -3], b[:, -3]
    inter = (a & b).flatten(1).sum(1).float()
    union = (a | b).flatten(1).sum(1).float()
    return (inter / union).numpy()


def _same_state(env_a, env_b) -> bool:
    return np.allclose(env_a.unwrapped.data.qpos, env_b.unwrapped.data.qpos, atol=1e-9)


def shift(
    run_dir: Path, splits: list[str], episodes: int, every: int = 5
) -> dict[str, dict[str, float]]:
    """Mean mask IoU, action change and Q1 change of each split against train (same states)."""
    check_splits("--splits", splits)
    agent, ckpt = load_agent(run_dir)
    actor, critic = agent.actor_module().eval(), agent.critic
    quantile = agent.cfg.mask_quantile
    kwargs, task = env_kwargs(ckpt.config), ckpt.config["task"]
    train = make_env(task, split="train", **kwargs)
    out = {}
    try:
        for split in splits:
            env = make_env(task, split=split, **kwargs)
            values: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
            try:
                for i in range(episodes):
                    obs_t, _ = train.reset(seed=EVAL_SEED + i)
                    obs_s, _ = env.reset(seed=EVAL_SEED + i)
                    for t in range(EPISODE_STEPS):
                        if not _same_state(train, env):
                            raise SystemExit(f"{split}: the state left train's at step {t}")
                        x = torch.as_tensor(np.stack([obs_t, obs_s]))
                        with torch.no_grad():
                            actions = actor(x)
                        if t % every == 0:
                            a = actions[:1].expand(2, -1)  # train's action on both frames
                            masks = attribution_mask(attribution(critic, x, a), quantile)
                            with torch.no_grad():
                                q1, _ = critic(x.float(), a)
                            values["iou"].append(_iou(masks[:1], masks[1:]))
                            values["q_change"].append((q1[1:] - q1[:1]).numpy())
                            change = (actions[1] - actions[0]).abs().mean()
                            values["action_change"].append(change.numpy()[None])
                        step = actions[0].numpy()
                        obs_t, *_ = train.step(step)
                        obs_s, *_ = env.step(step)
            finally:
                env.close()
            out[split] = {m: float(np.concatenate(v).mean()) for m, v in values.items()}
    finally:
        train.close()
    return out


def _row(name: str, r: dict[str, dict[str, float]], splits: list[str]) -> str:
    cells = [
        f"{r[s]['iou']:.2f} / {r[s]['action_change']:.2f} / {r[s]['q_change']:+.1f}" for s in splits
    ]
    return f"| {name} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--splits", default=",".join(s for s in SPLITS if s != "train"))
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--every", type=int, default=5, help="compare every n-th step")
    args = parser.parse_args()
    if args.episodes < 1 or args.every < 1:
        parser.error("--episodes and --every must be >= 1")
    torch.set_num_threads(1)
    splits = args.splits.split(",")
    try:
        check_splits("--splits", splits)
        for run in args.runs:
            checkpoint_label(run)
    except (ConfigError, FileNotFoundError) as e:
        parser.error(str(e))
    print(f"{args.episodes} episodes per split (the evaluation's seeds), every {args.every} steps")
    print("cells: mask IoU with train / action change / Q1 change\n")
    header = " | ".join(splits) + " |\n" + "|---" * (len(splits) + 1) + "|"
    print("| run | " + header)
    by_agent: dict[str, list[dict[str, dict[str, float]]]] = {}
    for run in args.runs:
        r = shift(run, splits, args.episodes, args.every)
        by_agent.setdefault(read_config(run)["agent"]["name"], []).append(r)
        print(_row(checkpoint_label(run), r, splits), flush=True)
    print("\n| agent (mean over its runs) | " + header)
    for agent, runs in sorted(by_agent.items()):
        mean = {s: {m: float(np.mean([r[s][m] for r in runs])) for m in METRICS} for s in splits}
        print(_row(f"{agent} ({len(runs)})", mean, splits))


if __name__ == "__main__":
    main()
