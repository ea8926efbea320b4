"""`sgqn-train task=reach agent=sgqn`: train one agent on one task (Hydra app, configs/train.yaml).

The loop, per env step: act (uniform random during warm-up) -> step the env -> store the new
frame in replay -> one agent update (after warm-up). At each episode end a CSV/TensorBoard row;
every `eval_every` steps deterministic evaluation on `eval_splits` with a saliency grid; at the
first episode end past every `snapshot_every` steps (and at the end) a replay snapshot, then a
checkpoint. Checkpoints fall on episode ends so that `resume=true run_dir=<run>` restarts from a
fresh reset exactly as the uninterrupted run would have: with the RNG states restored, a resumed
CPU run reproduces the uninterrupted one. The one exception is the final checkpoint when
`num_train_steps` is not a multiple of the episode length: it counts the unfinished episode as
done, so a run extended from it starts the next episode (new seed) rather than replaying that
one. SIGTERM or Ctrl-C ends the run at the next episode end with a checkpoint, abandoning an
evaluation in progress (a second signal stops at once); `resume=true` runs that evaluation
first, so preempted or time-sliced runs lose nothing.

Settings that could only fail hours into a run (a zero interval, a replay ring too small to
snapshot, an unknown split) are refused before anything is written, and so is a run dir that
another live process holds (`run_lock`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import OverrideType
from omegaconf import DictConfig
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from sgqn_robot.atomic import write_text_atomic
from sgqn_robot.checkpoint import Checkpoint, load_checkpoint, read_config, save_checkpoint
from sgqn_robot.config import CONFIG_DIR, ConfigError, require_ints, to_plain
from sgqn_robot.envs import EPISODE_STEPS
from sgqn_robot.evaluate import (
    EvaluationStopped,
    Evaluator,
    check_splits,
    env_kwargs,
    evaluation_written,
    saliency_splits,
    scalars,
    table,
    write_results,
)
from sgqn_robot.graceful_stop import stop_on_signal
from sgqn_robot.logger import Logger
from sgqn_robot.malloc_reuse import keep_freed_memory
from sgqn_robot.provenance import code_history, code_identity
from sgqn_robot.replay import ReplayBuffer
from sgqn_robot.run_lock import RunDirBusy, hold_run_dir
from sgqn_robot.saliency_figure import save_saliency_grid
from sgqn_robot.video import check_video_size, write_gif

log = logging.getLogger(__name__)

REPLAY_DIR = "replay.zarr"
OVERRIDES_FILE = "overrides.yaml"
# Overrides that name this call's action, not the run: never saved in OVERRIDES_FILE.
CALL_KEYS = ("resume", "run_dir")
# What a resumed run must share with the run it continues (budgets and eval settings may change).
COMPATIBLE_KEYS = ("task", "env", "agent", "encoder")
DEAD_TRUNK = (
    "step %d: the critic trunk gave the same features for every image of every batch this "
    "episode (feature_std 0: a whole layer of its ReLUs is dead). The policy no longer "
    "sees the image, and a unit dead on every training image gets no gradient from them (reach "
    "SGQN seed 6 stayed so for 8000 more steps): stop this run and start again with another seed "
    "(docs/RESULTS.md, 'SGQN's dead trunk')"
)


class RunDirError(RuntimeError):
    """A run dir that cannot be started or resumed; reported without a traceback."""


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out |= _flatten(v, f"{prefix}.{k}" if prefix else k)
    return out


def prepare_run_dir(cfg: DictConfig) -> tuple[Path, Checkpoint | None]:
    """The run dir, and its last checkpoint when resuming; refuses anything that would overwrite
    or mix runs, before writing a byte."""
    if cfg.run_dir:
        run_dir = Path(cfg.run_dir)
    elif HydraConfig.initialized():
        run_dir = Path(HydraConfig.get().runtime.output_dir)
    else:
        raise RunDirError("run_dir is required when train() runs outside a Hydra app")
    if not cfg.resume:
        if (run_dir / "checkpoints").exists() or (run_dir / "metrics.csv").exists():
            raise RunDirError(
                f"{run_dir} already holds a run: pass resume=true to continue it, "
                "or choose another run_dir"
            )
        return run_dir, None
    if not cfg.run_dir:
        raise RunDirError("resume=true needs run_dir=<the run to continue>")
    try:
        saved = read_config(run_dir)
    except FileNotFoundError as e:
        raise RunDirError(f"cannot resume: {e}") from None
    now = to_plain(cfg)
    diffs = []
    for key in COMPATIBLE_KEYS:
        a, b = _flatten(saved.get(key), key), _flatten(now.get(key), key)
        diffs += [
            f"  {k}: run has {a.get(k)!r}, now {b.get(k)!r}" for k in a | b if a.get(k) != b.get(k)
        ]
    if diffs:
        raise RunDirError(
            f"cannot resume {run_dir}: its config differs from this one\n" + "\n".join(diffs)
        )
    if not (run_dir / REPLAY_DIR / "zarr.json").is_file():
        raise RunDirError(f"cannot resume {run_dir}: its replay snapshot {REPLAY_DIR} is missing")
    return run_dir, load_checkpoint(run_dir)


def default_capacity(num_train_steps: int) -> int:
    """Frames for all of training: one per step plus each episode's reset frame."""
    return num_train_steps + -(-num_train_steps // EPISODE_STEPS) + 1


def snapshot_frames(snapshot_every: int) -> int:
    """Most frames added between two snapshots: they fall on the first episode end past each
    multiple of `snapshot_every`, so at most ceil(snapshot_every / episode) whole episodes."""
    return -(-snapshot_every // EPISODE_STEPS) * (EPISODE_STEPS + 1)


def check_config(cfg: DictConfig) -> None:
    """ConfigError for settings that would crash mid-run (a zero interval divides by zero; a
    replay ring smaller than one snapshot interval dies at the first snapshot)."""
    require_ints(cfg, ("num_train_steps", "batch_size", "eval_every", "snapshot_every"))
    require_ints(cfg, ("warmup_steps", "eval_episodes", "saliency_samples"), minimum=0)
    check_video_size(cfg.video_size)
    capacity = cfg.replay_capacity
    needed = min(snapshot_frames(cfg.snapshot_every), default_capacity(cfg.num_train_steps))
    if capacity is not None and (
        isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < needed
    ):
        raise ConfigError(
            f"replay_capacity={capacity!r} cannot hold the {needed} frames added between two "
            f"snapshots (snapshot_every={cfg.snapshot_every}): use an integer >= {needed}, a "
            "lower snapshot_every, or replay_capacity=null (all of training)"
        )
    check_splits("eval_splits", cfg.eval_splits)


def eval_tag(step: int) -> str:
    """Name of the in-training evaluation files (`eval/<tag>.json|csv`, `saliency/<tag>.png`)."""
    return f"step_{step:07d}"


def episode_seed(seed: int, episode: int) -> int:
    """Reset seed of training episode `episode`: a resumed run replays the same scenes."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


def _attach_log_file(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def train(cfg: DictConfig, overrides: list[str] | None = None) -> Path:
    """Train as `cfg` says (composed configs/train.yaml); returns the run dir. `overrides` (the
    command line that made `cfg`) are kept in the run dir for `resume=true`."""
    from sgqn_robot.agents import make_agent, resolve_device
    from sgqn_robot.envs import make_env

    check_config(cfg)
    run_dir, ckpt = prepare_run_dir(cfg)
    config = to_plain(cfg) | {"run_dir": str(run_dir)}
    code = code_identity()  # before training: the code this process runs, for every checkpoint
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    keep_freed_memory()  # ~10% of an update's CPU time went to page faults otherwise
    with ExitStack() as cleanup:
        # Built before the run dir is touched: a setting that cannot work here (device, camera,
        # image size vs preset, textures) is refused with nothing written.
        try:
            device = resolve_device(cfg.device)
            torch.manual_seed(cfg.seed)
            kwargs = env_kwargs(config)
            env = make_env(cfg.task, split="train", **kwargs)
            cleanup.callback(env.close)
            obs_shape = tuple(env.observation_space.shape)
            action_dim = int(env.action_space.shape[0])
            agent = make_agent(config["agent"], config["encoder"], obs_shape, action_dim, device)
        except (ValueError, FileNotFoundError) as e:
            raise ConfigError(str(e)) from None
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            cleanup.enter_context(hold_run_dir(run_dir))
        except RunDirBusy as e:
            raise RunDirError(str(e)) from None
        write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        if overrides is not None:
            write_text_atomic(run_dir / OVERRIDES_FILE, yaml.safe_dump(overrides))
        stop = cleanup.enter_context(stop_on_signal())
        log_file = _attach_log_file(run_dir)
        cleanup.callback(log_file.close)
        cleanup.callback(logging.getLogger().removeHandler, log_file)
        rng = np.random.default_rng(cfg.seed)
        num_steps = int(cfg.num_train_steps)
        capacity = cfg.replay_capacity or default_capacity(num_steps)
        replay = ReplayBuffer(capacity, (3, *obs_shape[1:]), action_dim, cfg.env.frame_stack)

        step = episode = 0
        if ckpt is not None:
            agent.load_state_dict(ckpt.agent)
            torch.set_rng_state(ckpt.rng["torch"])
            if device.type == "cuda" and ckpt.rng.get("cuda"):
                torch.cuda.set_rng_state_all(ckpt.rng["cuda"])
            rng.bit_generator.state = ckpt.state["numpy_rng"]
            step, episode = int(ckpt.state["step"]), int(ckpt.state["episode"])
            replay.load(run_dir / REPLAY_DIR, num_frames=int(ckpt.state["replay_frames"]))
            log.info("resumed %s at step %d (%d replay frames)", run_dir, step, replay.total)
        else:
            log.info("run dir %s", run_dir)
        history = code_history(None if ckpt is None else ckpt.state, code, step)
        for entry in history:
            log.info(
                "code %s (sgqn-robot %s) from step %s",
                entry["git_sha"],
                entry["package_version"],
                "?" if entry["from_step"] is None else entry["from_step"],
            )

        logger = Logger(run_dir, resume_step=step if ckpt is not None else None)
        cleanup.callback(logger.close)
        evaluator = None
        if cfg.eval_episodes > 0:
            evaluator = Evaluator(cfg.task, kwargs, cfg.eval_splits, video=cfg.video_size > 0)
            cleanup.callback(evaluator.close)
        pbar = tqdm(total=num_steps, initial=step, unit="step", disable=None, dynamic_ncols=True)
        cleanup.callback(pbar.close)
        last_return, last_eval = float("nan"), "-"
        trunk_dead = False

        def show() -> None:
            pbar.set_postfix_str(f"return {last_return:.1f} | eval: {last_eval}")

        def evaluate(step: int) -> None:
            nonlocal last_eval
            try:
                results, frames = evaluator.run(
                    lambda o: agent.act(o, eval_mode=True),
                    cfg.eval_episodes,
                    cfg.saliency_samples,
                    should_stop=lambda: stop.requested,
                )
            except EvaluationStopped:
                log.info("%s: evaluation at step %d abandoned", stop.signal_name, step)
                return
            tag = eval_tag(step)
            write_results(results, run_dir / "eval", tag, step)
            logger.log(step, scalars(results))
            shown = {s: frames[s] for s in saliency_splits(cfg.eval_splits) if s in frames}
            if shown:
                save_saliency_grid(run_dir / "saliency" / f"{tag}.png", shown, agent.saliency, step)
            if evaluator.videos:
                write_gif(run_dir / "videos" / f"{tag}.gif", evaluator.videos, cfg.video_size)
            last_eval = " ".join(
                f"{s} {r.summary()['return_mean']:.1f}" for s, r in results.items()
            )
            show()
            log.info("eval at step %d\n%s", step, table(results))

        def save(step: int) -> None:
            replay.save(run_dir / REPLAY_DIR)  # first: the checkpoint records how much it holds
            rng_state = {"torch": torch.get_rng_state()}
            if device.type == "cuda":
                rng_state["cuda"] = torch.cuda.get_rng_state_all()
            state = {
                # Inside an episode (the last checkpoint only) that episode counts as done, as
                # replay.load closes it: an extended run starts the next one, with a new seed.
                "episode": episode if obs is None else episode + 1,
                "replay_frames": replay.total,
                "numpy_rng": rng.bit_generator.state,
                "obs_shape": list(obs_shape),
                "action_dim": action_dim,
                "code": code,
                "code_history": history,
            }
            save_checkpoint(run_dir, step, agent.state_dict(), rng_state, config, state)

        if ckpt is not None and evaluator is not None and step % cfg.eval_every == 0:
            if not evaluation_written(run_dir / "eval", eval_tag(step)):
                evaluate(step)  # the stop that made this checkpoint abandoned it
        next_save = (step // cfg.snapshot_every + 1) * cfg.snapshot_every
        obs = None
        ep_return, ep_steps, ep_metrics = 0.0, 0, defaultdict(list)
        ep_start = time.perf_counter()
        while step < num_steps:
            if obs is None:
                obs, _ = env.reset(seed=episode_seed(cfg.seed, episode))
                replay.start_episode(obs)
            if step < cfg.warmup_steps:
                action = rng.uniform(-1.0, 1.0, action_dim).astype(np.float32)
            else:
                action = agent.act(obs, eval_mode=False)
            obs, reward, terminated, truncated, info = env.step(action)
            replay.add(action, reward, obs, terminated)
            ep_return += reward
            ep_steps += 1
            step += 1
            if step >= cfg.warmup_steps:
                for k, v in agent.update(replay.sample(cfg.batch_size, rng), step).items():
                    ep_metrics[k].append(v)
            pbar.update(1)

            done = terminated or truncated
            if done:
                replay.end_episode()
                fps = ep_steps / max(time.perf_counter() - ep_start, 1e-9)
                row = {
                    "train/episode_return": ep_return,
                    "train/episode_success": float(info.get("is_success", False)),
                    "train/episode": episode,
                    "train/steps_per_s": fps,
                } | {f"train/{k}": float(np.mean(v)) for k, v in ep_metrics.items()}
                logger.log(step, row)
                spread = ep_metrics.get("feature_std")
                if spread and max(spread) == 0 and not trunk_dead:
                    trunk_dead = True  # permanent: warn once, not every episode
                    log.warning(DEAD_TRUNK, step)
                last_return = ep_return
                show()
                if pbar.disable and episode % 10 == 0:  # no live bar (not a TTY): a log line
                    log.info(
                        "step %d/%d  episode %d  return %.1f  %.1f steps/s",
                        *(step, num_steps, episode, ep_return, fps),
                    )
                episode += 1
                obs = None
                ep_return, ep_steps, ep_metrics = 0.0, 0, defaultdict(list)
                ep_start = time.perf_counter()
            if evaluator is not None and (step % cfg.eval_every == 0 or step == num_steps):
                evaluate(step)
            if (done and (step >= next_save or stop.requested)) or step == num_steps:
                save(step)
                next_save = (step // cfg.snapshot_every + 1) * cfg.snapshot_every
            if done and stop.requested:
                log.info(
                    "%s: stopped at step %d with a checkpoint; resume=true run_dir=%s continues",
                    *(stop.signal_name, step, run_dir),
                )
                break
    return run_dir


def merge_overrides(overrides: list[str]) -> list[str]:
    """One override per key, the last value winning, so that saved + new overrides compose (a
    repeated `+key=` would make Hydra refuse) and the saved list does not grow with every resume.
    A key the run added with `+` stays added; `~key` after `+key=` drops both."""
    merged: dict[tuple[str, str | None], str] = {}
    added: set[tuple[str, str | None]] = set()
    for o in OverridesParser.create().parse_overrides(overrides):
        key = (o.key_or_group, o.package)
        if o.type == OverrideType.ADD:
            added.add(key)
        if o.type == OverrideType.DEL and key in added:
            merged.pop(key, None)
            added.discard(key)
        elif o.type == OverrideType.CHANGE and key in added:
            merged[key] = "+" + o.input_line
        else:
            merged[key] = o.input_line
    return list(merged.values())


def _saved_overrides(overrides: list[str]) -> list[str]:
    """What OVERRIDES_FILE keeps: the run's settings, without this call's resume/run_dir."""
    return [o for o in overrides if o.lstrip("+~").split("=")[0] not in CALL_KEYS]


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def _app(cfg: DictConfig) -> None:
    overrides = merge_overrides(list(HydraConfig.get().overrides.task))
    saved = Path(cfg.run_dir or "") / OVERRIDES_FILE
    if cfg.resume and cfg.run_dir and saved.is_file():
        # The run's own overrides first, so `sgqn-train resume=true run_dir=<run>` continues it
        # without repeating them; new ones win.
        overrides = merge_overrides(yaml.safe_load(saved.read_text()) + overrides)
        cfg = hydra.compose("train", overrides=overrides)
    try:
        with logging_redirect_tqdm():  # log lines print above the progress bar, not through it
            train(cfg, _saved_overrides(overrides))
    except (RunDirError, ConfigError) as e:
        output_dir = Path(HydraConfig.get().runtime.output_dir)
        if output_dir.is_dir() and not any(output_dir.iterdir()):
            output_dir.rmdir()  # made by Hydra for this call only
        log.error("sgqn-train: %s", e)
        sys.exit(2)


def main() -> None:
    """Console entry point `sgqn-train`."""
    _app()
