"""Diagnostic: does SGQN's attribution predictor see the unseen scenes better than its actor?

    python bench/predictor_gating.py SGQN_RUN_OR_CHECKPOINT_DIR [...] [--splits train,test1,...]
        [--episodes 10]

SGQN trains its attribution predictor on random-convolution views, the only place strongly
augmented images enter the training (spec §3 step 5); the actor sees only the training scene.
This plays the evaluation's own episodes (same seeds as `sgqn-eval`) twice per split: `plain`,
the policy as trained, and `gated`, where every observation is first reduced to the predictor's
mask (the top 1 - rho pixels of its probability at the policy's action; everything else set to
the mid value of the frame, the expected value of the consistency loss's random fill) and the
actor acts on that. Not a method of the paper: a probe of where the generalization gap sits.
Prints return per split, the mean of test1-5 and the mean of the unseen splits for each mode.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sgqn_robot.envs import SPLITS

from sgqn_robot.agents.saliency import attribution_mask
from sgqn_robot.checkpoint import checkpoint_label, load_agent, read_config
from sgqn_robot.config import ConfigError
from sgqn_robot.evaluate import Evaluator, check_splits, env_kwargs
from sgqn_robot.malloc_reuse import keep_freed_memory


def policies(agent) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The deterministic policy as trained, and the same actor on predictor-masked frames."""
    actor, predictor = agent.actor_module().eval(), agent.predictor_module().eval()

    @torch.no_grad()
    def plain(obs: np.ndarray) -> np.ndarray:
        return actor(torch.as_tensor(obs)[None]).numpy()[0]

    @torch.no_grad()
    def gated(obs: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(obs)[None].float()
        prob = torch.sigmoid(predictor(x, actor(x)))
        mask = attribution_mask(prob, agent.cfg.mask_quantile)
        return actor(torch.where(mask, x, (x.min() + x.max()) / 2)).numpy()[0]

    return {"plain": plain, "gated": gated}


def gating(run_dir: Path, splits: list[str], episodes: int) -> dict[str, dict[str, float]]:
    """Mean return per mode and split."""
    agent, ckpt = load_agent(run_dir)
    evaluator = Evaluator(ckpt.config["task"], env_kwargs(ckpt.config), splits)
    try:
        return {
            mode: {
                s: r.summary()["return_mean"] for s, r in evaluator.run(act, episodes)[0].items()
            }
            for mode, act in policies(agent).items()
        }
    finally:
        evaluator.close()


def require_sgqn_run(run_dir: Path) -> None:
    """Only SGQN has an attribution predictor to gate with."""
    if (name := read_config(run_dir)["agent"]["name"]) != "sgqn":
        raise SystemExit(f"{run_dir} is a {name} run; pass sgqn runs (they have a predictor)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--splits", default="train,test1,test2,test3,test4,test5")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    splits = args.splits.split(",")
    try:
        check_splits("--splits", splits)
        for run in args.runs:  # all of them before the first (minutes-long) evaluation
            require_sgqn_run(run)
    except (ConfigError, FileNotFoundError) as e:
        parser.error(str(e))
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    means = {
        "mean of test1-5": [s for s in SPLITS if s.startswith("test") and s in splits],
        "mean of unseen splits": [s for s in splits if s != "train"],
    }
    print(f"{args.episodes} episodes per split (the evaluation's seeds); return\n")
    print("| run | mode | " + " | ".join([*splits, *means]) + " |")
    print("|---" * (len(splits) + len(means) + 2) + "|")
    for run in args.runs:
        result = gating(run, splits, args.episodes)
        for mode, row in result.items():
            cells = [f"{row[s]:.1f}" for s in splits]
            cells += [f"{np.mean([row[s] for s in m]):.1f}" if m else "-" for m in means.values()]
            print(f"| {checkpoint_label(run)} | {mode} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
