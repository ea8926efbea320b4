"""Evaluation on visual splits: shared by training (every `eval_every` steps) and `sgqn-eval`.

`sgqn-eval run=<run_dir> splits=[train,test1] episodes=30` evaluates a run's latest checkpoint
with its deterministic actor, prints mean ± std return and success rate per split, and writes
`<run>/eval/<tag>.json` and `.csv` (plus a saliency grid in `<run>/saliency/`).

Episode i of every split resets with seed `EVAL_SEED + i`, so every run, agent and checkpoint is
scored on the same scenes and layouts. An episode counts as a success when `info["is_success"]`
holds at its last step (the policy must end on the goal, not just pass by it).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from sgqn_robot.atomic import write_text_atomic
from sgqn_robot.config import CONFIG_DIR, ConfigError, require_ints, to_plain
from sgqn_robot.envs import EPISODE_STEPS, SPLITS
from sgqn_robot.malloc_reuse import keep_freed_memory
from sgqn_robot.video import Tile, check_video_size, write_gif

log = logging.getLogger(__name__)

EVAL_SEED = 1_000_000
ActFn = Callable[[np.ndarray], np.ndarray]


class EvaluationStopped(Exception):
    """An evaluation abandoned because a stop was requested; none of its results were kept."""


def check_splits(key: str, splits: Sequence[str]) -> None:
    """ConfigError naming the first unknown split and the valid ones."""
    if isinstance(splits, str):
        raise ConfigError(f"{key}={splits}: must be a list, e.g. {key}=[{splits}]")
    for split in splits:
        if split not in SPLITS:
            raise ConfigError(f"{key}: unknown split {split!r}; valid splits: {', '.join(SPLITS)}")


@dataclass
class SplitResult:
    """Returns and successes of the evaluation episodes on one split."""

    returns: list[float] = field(default_factory=list)
    successes: list[bool] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        r = np.asarray(self.returns)
        return {
            "episodes": len(r),
            "return_mean": float(r.mean()),
            "return_std": float(r.std()),
            "success_rate": float(np.mean(self.successes)),
        }


def env_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """`make_env` keywords from a training config's `env` node (runs saved before `textures`
    existed have none)."""
    env = config["env"]
    return {
        "image_size": env["image_size"],
        "frame_stack": env["frame_stack"],
        "action_space": env["action_space"],
        "camera": env["camera"],
        "textures": env.get("textures"),
    }


class Evaluator:
    """Deterministic episodes on several splits; one env per split, built once and reused.
    With `video`, each `run` also keeps the rendered steps of every split's first episode in
    `self.videos` (for `sgqn_robot.video.write_gif`)."""

    def __init__(
        self, task: str, kwargs: Mapping[str, Any], splits: Sequence[str], video: bool = False
    ):
        from sgqn_robot.envs import make_env

        self.envs = {}
        self.video = video
        self.videos: dict[str, list[Tile]] = {}
        render = {"render_mode": "rgb_array"} if video else {}
        try:
            for split in splits:
                self.envs[split] = make_env(task, split=split, **kwargs, **render)
        except BaseException:
            self.close()  # the renderers already built hold GL contexts and memory
            raise

    def run(
        self,
        act: ActFn,
        episodes: int,
        keep_frames: int = 0,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> tuple[dict[str, SplitResult], dict[str, np.ndarray]]:
        """Results per split, and `keep_frames` observations per split from its first episode
        (evenly spaced in time) for the saliency pictures. `should_stop` is polled every step:
        when it turns True the evaluation raises EvaluationStopped, so that a preempted run
        checkpoints in time instead of finishing minutes of evaluation."""
        results, frames = {}, {}
        self.videos = {}
        keep_at = set(np.linspace(0, EPISODE_STEPS - 1, keep_frames).round().astype(int).tolist())
        for split, env in self.envs.items():
            res, kept, tiles = SplitResult(), [], []
            for i in range(episodes):
                obs, _ = env.reset(seed=EVAL_SEED + i)
                total, t, done, info = 0.0, 0, False, {}
                record = self.video and i == 0
                if record:
                    tiles.append(Tile(env.render(), 0.0, False))
                while not done:
                    if should_stop():
                        raise EvaluationStopped
                    if i == 0 and t in keep_at:
                        kept.append(obs)
                    obs, reward, terminated, truncated, info = env.step(act(obs))
                    total += reward
                    t += 1
                    done = terminated or truncated
                    if record:
                        tiles.append(Tile(env.render(), total, bool(info.get("is_success"))))
                res.returns.append(total)
                res.successes.append(bool(info.get("is_success", False)))
            results[split] = res
            if kept:
                frames[split] = np.stack(kept)
            if tiles:
                self.videos[split] = tiles
        return results, frames

    def close(self) -> None:
        for env in self.envs.values():
            env.close()


def saliency_splits(splits: Sequence[str], chosen: Sequence[str] | None = None) -> list[str]:
    """The splits drawn in the saliency grid: `chosen` (each must be evaluated), else `train` (if
    evaluated) and the first other split, so the picture compares seen vs unseen."""
    if chosen is not None:
        missing = [s for s in chosen if s not in splits]
        if missing:
            raise ConfigError(
                f"saliency_splits {missing} are not evaluated; add them to splits={list(splits)}"
            )
        return list(chosen)
    train = [s for s in splits if s == "train"][:1]
    return train + [s for s in splits if s != "train"][:1]


def table(results: Mapping[str, SplitResult]) -> str:
    """The per-split table, plus a warning line when `blind_policy` holds."""
    lines = [f"{'split':<12} {'return':>18} {'success':>8}"]
    for split, res in results.items():
        s = res.summary()
        ret = f"{s['return_mean']:.1f} ± {s['return_std']:.1f}"
        lines.append(f"{split:<12} {ret:>18} {s['success_rate']:>8.0%}")
    if blind_policy(results):
        lines.append(
            f"warning: all {len(results)} splits gave the same return in every episode, so the "
            "actions do not depend on what the camera sees (common early in training, while "
            "actions saturate; after training, the encoder collapsed, e.g. a dead trunk, "
            "train/feature_std 0 in the run's metrics.csv: retrain with another seed)"
        )
    return "\n".join(lines)


BLIND_TOLERANCE = 0.01  # return units; splits that look different move a policy far more


def blind_policy(results: Mapping[str, SplitResult]) -> bool:
    """True when two or more splits gave the same returns episode by episode (within
    `BLIND_TOLERANCE`). Splits share the episode seeds and physics and differ only in looks, so
    only a policy whose actions ignore the image repeats them: a reach SGQN run whose trunk
    collapsed did so exactly on all 12 splits, and a seed that never learned the task did up to
    the 5th digit (its saturated actions moved with the pixels by ~1e-6)."""
    returns = [np.asarray(res.returns) for res in results.values()]
    if len(returns) < 2 or len(returns[0]) == 0:
        return False
    return all(
        r.shape == returns[0].shape and np.allclose(r, returns[0], rtol=0, atol=BLIND_TOLERANCE)
        for r in returns
    )


def write_results(
    results: Mapping[str, SplitResult], out_dir: str | Path, tag: str, step: int
) -> Path:
    """`<out_dir>/<tag>.json` (summaries + per-episode values) and `<tag>.csv` (summaries)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "step": step,
        "seed": EVAL_SEED,
        "splits": {
            split: res.summary() | {"returns": res.returns, "successes": res.successes}
            for split, res in results.items()
        },
    }
    rows = io.StringIO(newline="")
    w = csv.DictWriter(
        rows, ["step", "split", "episodes", "return_mean", "return_std", "success_rate"]
    )
    w.writeheader()
    for split, res in results.items():
        w.writerow({"step": step, "split": split, **res.summary()})
    write_text_atomic(out_dir / f"{tag}.csv", rows.getvalue())
    # The JSON last: its presence marks a finished evaluation (see `evaluation_written`).
    return write_text_atomic(out_dir / f"{tag}.json", json.dumps(payload, indent=1))


def evaluation_written(out_dir: str | Path, tag: str) -> bool:
    """Whether `write_results(..., out_dir, tag, ...)` completed."""
    return (Path(out_dir) / f"{tag}.json").is_file()


def scalars(results: Mapping[str, SplitResult]) -> dict[str, float]:
    """Flat `eval/<split>/<stat>` scalars for the metrics log."""
    out = {}
    for split, res in results.items():
        s = res.summary()
        for key in ("return_mean", "return_std", "success_rate"):
            out[f"eval/{split}/{key}"] = s[key]
    return out


def evaluate_run(
    run: str | Path,
    splits: Sequence[str],
    episodes: int,
    tag: str | None = None,
    device: str = "cpu",
    saliency_samples: int = 4,
    saliency_split_names: Sequence[str] | None = None,
    textures: str | Sequence[str] | Mapping[str, str] | None = None,
    video_size: int = 0,
) -> dict[str, SplitResult]:
    """Evaluate the latest checkpoint of `run` (what `sgqn-eval` does); the saliency grid shows
    `saliency_split_names` (default: train and one unseen split). `textures` puts your own photos
    on table/floor/wall of every split, to check transfer to your lab before deploying.
    `video_size` > 0 also writes `<run>/videos/<tag>.gif`: every split's first episode side by
    side, tiles of that many pixels."""
    check_splits("splits", splits)
    drawn = saliency_splits(splits, saliency_split_names)
    require_ints({"episodes": episodes}, ["episodes"])
    check_video_size(video_size)
    from sgqn_robot.agents import resolve_device
    from sgqn_robot.checkpoint import load_agent
    from sgqn_robot.saliency_figure import save_saliency_grid

    agent, ckpt = load_agent(run, resolve_device(device))
    step = int(ckpt.state["step"])
    tag = tag or f"eval_step_{step:07d}" + ("_own_textures" if textures else "")
    kwargs = env_kwargs(ckpt.config) | ({"textures": textures} if textures else {})
    evaluator = Evaluator(ckpt.config["task"], kwargs, splits, video=video_size > 0)
    try:
        results, frames = evaluator.run(
            lambda o: agent.act(o, eval_mode=True), episodes, saliency_samples
        )
    finally:
        evaluator.close()
    run_dir = ckpt.path.parent.parent
    log.info("%s (step %d, %d episodes per split)\n%s", run_dir, step, episodes, table(results))
    write_results(results, run_dir / "eval", tag, step)
    shown = {s: frames[s] for s in drawn if s in frames}
    if shown:
        save_saliency_grid(run_dir / "saliency" / f"{tag}.png", shown, agent.saliency, step)
    if evaluator.videos:
        gif = write_gif(run_dir / "videos" / f"{tag}.gif", evaluator.videos, video_size)
        log.info("episode video: %s", gif)
    return results


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def _app(cfg: DictConfig) -> None:
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    keep_freed_memory()  # see sgqn_robot/malloc_reuse.py
    if OmegaConf.is_missing(cfg, "run"):
        log.error("sgqn-eval: run= is required: sgqn-eval run=<run dir> [splits=[train,test1]]")
        sys.exit(2)
    plain = to_plain(cfg)
    try:
        evaluate_run(
            plain["run"],
            plain["splits"],
            plain["episodes"],
            plain["tag"],
            plain["device"],
            plain["saliency_samples"],
            plain["saliency_splits"],
            plain["textures"],
            plain["video_size"],
        )
    except (FileNotFoundError, ValueError) as e:  # a missing run, a bad split, device or value
        log.error("sgqn-eval: %s", e)
        sys.exit(2)


def main() -> None:
    """Console entry point `sgqn-eval`."""
    _app()
