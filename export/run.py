"""``sgqn-run``: the exported policy in a closed loop (simulator) or a tick log to a PNG strip.

    sgqn-run model.onnx --sim reach --split test2 --episodes 10 [--log run.zarr]
    sgqn-run model.onnx --sim peg_in_box --split all --episodes 30 --clock sim   # every split
    sgqn-run --replay run.zarr -o strip.png
    sgqn-run model.onnx --info                     # what it expects, what trained it

Needs only numpy, onnxruntime and zarr, plus the simulator (the training extra) for ``--sim``.
Every problem with the model or its inputs is reported as one line and a non-zero exit, before
anything moves.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack, closing
from pathlib import Path

import numpy as np

from sgqn_robot.extras import MissingExtra, needs_train_extra

from .control_loop import ControlLoop, LoopResult
from .interfaces import PRIORITIES, Clock, MonotonicClock, SimulatedClock, raise_priority
from .metadata import ModelError, ModelMetadata
from .policy import OnnxPolicy, SaliencyModel
from .safety import SafetyLimits
from .tick_log import TickLogger, refuse_existing
from .viewer import log_frames, log_strip

SIM_TASKS = ("reach", "peg_in_box")


def add_safety_args(parser: argparse.ArgumentParser) -> None:
    """Safety overrides shared by every entry point that drives a robot."""
    g = parser.add_argument_group("timing and safety (defaults from the model metadata)")
    g.add_argument("--rate", type=float, help="control rate in Hz (default: model's period)")
    g.add_argument("--threads", type=int, help="onnxruntime intra-op threads")
    g.add_argument(
        "--priority",
        choices=PRIORITIES,
        default="normal",
        help="nice: nice -15; fifo: SCHED_FIFO 50 (both need root/CAP_SYS_NICE)",
    )
    g.add_argument("--max-step", type=float, help="max end-effector step per tick, metres")
    g.add_argument("--workspace", type=float, nargs=6, metavar=("XL", "YL", "ZL", "XH", "YH", "ZH"))
    g.add_argument("--max-frame-age", type=float, help="stale-frame watchdog, seconds")
    g.add_argument("--max-overruns", type=int, help="consecutive overruns before a stop")


def apply_priority(kind: str, prog: str) -> None:
    if not raise_priority(kind):
        print(f"{prog}: warning: priority {kind!r} refused, running at normal", file=sys.stderr)


def limits_from_args(meta: ModelMetadata, args: argparse.Namespace) -> SafetyLimits:
    ws = args.workspace
    return SafetyLimits.from_metadata(
        meta,
        max_step_m=args.max_step,
        workspace_low=tuple(ws[:3]) if ws else None,
        workspace_high=tuple(ws[3:]) if ws else None,
        max_frame_age_s=args.max_frame_age,
        max_consecutive_overruns=args.max_overruns,
    )


def load_saliency(policy: OnnxPolicy, threads: int | None) -> SaliencyModel:
    name = policy.meta.saliency_graph
    if not name:
        raise ModelError(f"{policy.path}: exported without --with-saliency; re-export to log masks")
    return SaliencyModel(policy.path.with_name(name), threads)


def sim_splits(spec: str) -> list[str]:
    """``--split``: one split, several comma-separated, or ``all`` (every split, in order)."""
    with needs_train_extra("--sim needs the simulator"):
        from sgqn_robot.envs import SPLITS
        from sgqn_robot.envs.splits import check_split

    if spec == "all":
        return list(SPLITS)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise ValueError(f"--split {spec!r}: name a split, several as a,b,c, or 'all'")
    try:
        return [check_split(s) for s in names]
    except ValueError as e:
        raise ValueError(f"--split: {e}, or 'all'") from None


def run_sim(args: argparse.Namespace) -> int:
    """Closed loop in our simulator: per-episode return/success and one summary line per split,
    then the timing summary."""
    for flag, value in (("--episodes", args.episodes), ("--max-ticks", args.max_ticks)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} {value}: must be >= 1")
    splits = sim_splits(args.split)
    if args.log and len(splits) > 1:
        raise ValueError(f"--log records one split, --split gives {len(splits)}: name one")
    videos = None
    if args.video:
        if not args.video.endswith(".gif"):
            raise ValueError(f"--video {args.video}: must be a .gif path, e.g. rollouts.gif")
        with needs_train_extra("--video needs Pillow"):
            from sgqn_robot.video import write_gif
        videos = {}
    apply_priority(args.priority, "sgqn-run")
    policy = OnnxPolicy(args.model, args.threads)
    meta = policy.meta
    if meta.task not in ("unknown", args.sim):
        raise ModelError(f"{args.model}: trained on {meta.task!r}, not --sim {args.sim!r}")
    # every check that needs no simulator comes before building one
    saliency = load_saliency(policy, args.threads) if args.saliency else None
    limits = limits_from_args(meta, args)
    if args.log:
        refuse_existing(args.log)
    clock: Clock = (
        SimulatedClock() if args.clock == "sim" else MonotonicClock.for_priority(args.priority)
    )
    total = LoopResult()
    started = time.perf_counter()
    for split in splits:
        returns, successes, period, stopped = _run_split(
            args, split, policy, saliency, limits, clock, total, videos
        )
        print(
            f"{args.sim}/{split}: mean return {np.mean(returns):.3f}, success "
            f"{successes}/{len(returns)}, period {period * 1e3:.1f} ms ({args.clock} clock)"
        )
        if stopped:
            break
    if videos:
        print(f"video of each split's first episode: {write_gif(args.video, videos)}")
    if args.clock == "sim":  # simulated time has no lateness or latency to report
        wall = time.perf_counter() - started
        print(
            f"timing: sim clock, no waiting: {total.ticks} ticks in {wall:.1f} s wall "
            f"({wall / max(total.ticks, 1) * 1e3:.1f} ms per tick incl. simulation)"
        )
    else:
        print("timing: " + ", ".join(f"{k} {v:.3g}" for k, v in total.timing_summary().items()))
    return 0


def _run_split(
    args: argparse.Namespace,
    split: str,
    policy: OnnxPolicy,
    saliency: SaliencyModel | None,
    limits: SafetyLimits,
    clock: Clock,
    total: LoopResult,
    videos: dict[str, list] | None = None,
) -> tuple[list[float], int, float, bool]:
    """``args.episodes`` episodes on one split, adding their timing to ``total``: (returns,
    successes, control period, whether a safety stop ended the run). With ``videos``, the first
    episode's frames go in ``videos[split]``."""
    from .sim_adapters import SimSession, env_kwargs

    meta = policy.meta
    kwargs = env_kwargs(meta)
    if args.textures:  # one folder (or file) as given; several files as a list
        kwargs["textures"] = args.textures[0] if len(args.textures) == 1 else args.textures
    with ExitStack() as resources:  # closes the simulator and the log on every path
        video = videos is not None
        session = SimSession(args.sim, split, clock, video=video, **kwargs)
        session = resources.enter_context(closing(session))
        session.reset(args.seed)
        if video:
            session.record()
        frame_shape = session.obs.shape
        if frame_shape != (meta.channels_per_frame, meta.image_size, meta.image_size):
            raise ModelError(
                f"{args.model}: model expects {meta.obs_shape}, sim renders {frame_shape}"
            )
        logger = None
        if args.log:
            logger = resources.enter_context(
                TickLogger.for_model(
                    args.log,
                    meta,
                    attrs={"sim": {"task": args.sim, "split": split, "textures": args.textures}},
                    saliency=saliency is not None,
                )
            )
        loop = ControlLoop(
            policy,
            session.camera,
            session.robot,
            clock,
            limits=limits,
            rate_hz=args.rate,
            logger=logger,
            saliency=saliency,
        )
        successes, returns = 0, []
        for ep in range(args.episodes):
            if ep:
                session.reset(args.seed + ep)
            res = loop.run(max_ticks=args.max_ticks)
            if ep == 0 and video:
                videos[split] = session.tiles
            print(
                f"episode {ep}: return {session.ret:8.3f}  success {session.success!s:5}  "
                f"ticks {res.ticks}  stop {res.stop_reason}  events {dict(res.events)}"
            )
            successes += session.success
            returns.append(session.ret)
            total.ticks += res.ticks
            total.overruns += res.overruns
            total.events.update(res.events)
            total.lateness += res.lateness
            total.latency += res.latency
            if res.stop_reason not in ("done", "max_ticks"):
                return returns, successes, loop.period, True
    return returns, successes, loop.period, False


def run_replay(args: argparse.Namespace) -> int:
    out = Path(args.output or Path(args.replay).with_suffix(".png"))
    print(f"wrote {log_strip(args.replay, out, every=args.every)}")
    if args.frames_dir:
        print(f"wrote {log_frames(args.replay, args.frames_dir)} frames to {args.frames_dir}")
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sgqn-run", description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", help="exported .onnx file")
    p.add_argument(
        "--info", action="store_true", help="print what the model expects and was trained on, exit"
    )
    p.add_argument(
        "--sim", choices=SIM_TASKS, help="closed loop in this simulator task (training extra)"
    )
    p.add_argument(
        "--split",
        default="train",
        help="--sim: visual split of the simulator; several as a,b,c, or 'all' (one summary line "
        "each)",
    )
    p.add_argument(
        "--textures",
        nargs="+",
        metavar="PHOTO",
        help="--sim: your own photos on table/floor/wall (a folder or image files; a file named "
        "*table*, *floor* or *wall* goes there), to check transfer to your lab before deploying",
    )
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="episode i resets with SEED + i (1000000: the episodes sgqn-eval runs)",
    )
    p.add_argument("--max-ticks", type=int, help="cap ticks per episode")
    p.add_argument(
        "--clock",
        choices=("real", "sim"),
        default="real",
        help="real: fixed rate on time.monotonic (default); sim: simulated time, as fast as possible",
    )
    p.add_argument("--log", help="write every tick to this zarr directory")
    p.add_argument("--saliency", action="store_true", help="log the predicted attribution mask")
    p.add_argument(
        "--video",
        metavar="GIF",
        help="--sim: the first episode of every split side by side as an animated GIF (needs the "
        "training extra's Pillow)",
    )
    p.add_argument("--replay", metavar="LOG", help="turn a tick log into a PNG strip and exit")
    p.add_argument("-o", "--output", help="--replay: strip path (default LOG.png)")
    p.add_argument("--every", type=int, default=5, help="--replay: one tile every N ticks")
    p.add_argument("--frames-dir", help="--replay: also write one PNG per tick here")
    add_safety_args(p)
    args = p.parse_args(argv)
    if not args.replay and not (args.model and (args.sim or args.info)):
        p.error("give MODEL --sim TASK, MODEL --info, or --replay LOG")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.info:
            print(f"{args.model}: {OnnxPolicy(args.model).meta.describe()}")
            return 0
        return run_replay(args) if args.replay else run_sim(args)
    except (ModelError, FileNotFoundError, FileExistsError, ValueError, MissingExtra) as e:
        print(f"sgqn-run: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
