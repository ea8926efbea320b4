"""Runner latency: onnxruntime vs torch eager on the same actor, and control-tick timing.

    python bench/runner_latency.py [--ticks 2000] [--rounds 40] [--presets fast paper]

Part 1, per encoder preset: an sgqn agent is built and checkpointed as training does, exported
with ``sgqn-export``'s code path (parity on all 12 splits), then batch-1 inference is timed in
interleaved rounds (torch, ORT, torch, ...) so both see the same machine load; same thread count.
Part 2: ``ControlLoop`` on the real monotonic clock at the model's control rate, fed 4:3 BGR camera
frames (rendered frames upscaled x6 and padded, so crop + area resize + colour swap run every
tick), a recording robot and the zarr tick log: lateness (tick start - deadline), work latency,
overruns. Also pure ``time.sleep`` scheduling vs sleep + 1 ms spin.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sgqn_robot.envs import make_env
from sgqn_robot.export.control_loop import ControlLoop
from sgqn_robot.export.interfaces import MonotonicClock, raise_priority
from sgqn_robot.export.onnx_export import export_checkpoint
from sgqn_robot.export.policy import OnnxPolicy
from sgqn_robot.export.replay_camera import ReplayCamera
from sgqn_robot.export.replay_example import RecordingRobot
from sgqn_robot.export.safety import SafetyLimits
from sgqn_robot.export.tick_log import TickLogger

from sgqn_robot.agents import make_agent
from sgqn_robot.checkpoint import load_policy, save_checkpoint
from sgqn_robot.config import compose_config, to_plain


def build(root: Path, preset: str) -> tuple[Path, Path]:
    cfg = to_plain(compose_config("train", ["task=reach", "agent=sgqn", f"encoder={preset}"]))
    size, stack = cfg["env"]["image_size"], cfg["env"]["frame_stack"]
    obs_shape = (3 * stack, size, size)
    torch.manual_seed(0)
    agent = make_agent(cfg["agent"], cfg["encoder"], obs_shape, 2, "cpu")
    run_dir = root / preset
    save_checkpoint(run_dir, 0, agent.state_dict(), {}, cfg, {"obs_shape": obs_shape,
                    "action_dim": 2})  # fmt: skip
    model = root / f"{preset}.onnx"
    export_checkpoint(run_dir, model, per_split=1)
    return run_dir, model


def camera_frames(size: int, n: int = 60) -> list[np.ndarray]:
    """Rendered frames as a 4:3 BGR camera would deliver them (x6, padded left/right)."""
    env = make_env("reach", split="train", image_size=size, seed=0)
    frames = []
    obs, _ = env.reset(seed=0)
    for _ in range(n):
        big = np.repeat(np.repeat(obs[-3:].transpose(1, 2, 0), 6, 0), 6, 1)[:, :, ::-1]
        pad = big.shape[0] * 4 // 3 - big.shape[1]
        frames.append(
            np.ascontiguousarray(np.pad(big, ((0, 0), (pad // 2, pad - pad // 2), (0, 0))))
        )
        obs, *_ = env.step(env.action_space.sample())
    env.close()
    return frames


def pct(values: list[float]) -> tuple[float, float]:
    v = np.asarray(values) * 1e3
    return float(np.percentile(v, 50)), float(np.percentile(v, 99))


def inference(run_dir: Path, model: Path, threads: int, rounds: int, per_round: int = 25):
    torch.set_num_threads(threads)
    actor = load_policy(run_dir).actor
    policy = OnnxPolicy(model, threads=threads)
    policy.warmup(20)
    env = make_env("reach", image_size=policy.meta.image_size, seed=1)
    try:
        obs = env.reset(seed=1)[0]
    finally:
        env.close()
    x = torch.from_numpy(obs[None])
    times: dict[str, list[float]] = {"torch": [], "ort": []}
    with torch.inference_mode():
        for _ in range(20):
            actor(x)
        for _ in range(rounds):
            for name, fn in (("torch", lambda: actor(x)), ("ort", lambda: policy(obs))):
                for _ in range(per_round):
                    t = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t)
    return {k: pct(v) for k, v in times.items()}


def ticks(model: Path, frames: list[np.ndarray], n: int, spin_s: float, threads: int, log: Path):
    """``n`` ticks at the model's rate; overruns and stalls are measured, never allowed to stop
    the run (the watchdogs are what the tests check)."""
    clock = MonotonicClock(spin_s)
    policy = OnnxPolicy(model, threads=threads)
    limits = SafetyLimits.from_metadata(
        policy.meta, max_consecutive_overruns=n + 1, max_frame_age_s=float("inf")
    )
    camera = ReplayCamera(frames, clock, color_order="BGR", loop=True)
    robot = RecordingRobot.for_limits(limits)
    with TickLogger.for_model(log, policy.meta) as logger:
        loop = ControlLoop(policy, camera, robot, clock, limits=limits, logger=logger)
        res = loop.run(max_ticks=n)
    return res, loop.period


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", nargs="+", default=["fast", "paper"])
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--ticks", type=int, default=2000)
    p.add_argument("--sleep-only-ticks", type=int, default=1000)
    args = p.parse_args()
    print(f"# runner latency, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"torch {torch.__version__}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        built = {preset: build(root, preset) for preset in args.presets}
        print("\n| preset | threads | torch p50 / p99 ms | ORT p50 / p99 ms | ORT/torch p50 |")
        print("|---|---|---|---|---|")
        for preset, (run_dir, model) in built.items():
            for threads in (1, 2):
                r = inference(run_dir, model, threads, args.rounds)
                (tp50, tp99), (op50, op99) = r["torch"], r["ort"]
                print(f"| {preset} | {threads} | {tp50:.2f} / {tp99:.2f} | {op50:.2f} / {op99:.2f} "
                      f"| {op50 / tp50:.2f} |")  # fmt: skip
        print("\n| preset | priority | scheduling | ticks | rate | lateness p50 / p99 / max ms | "
              "work p50 / p99 ms | overruns |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        frames = {p: camera_frames(OnnxPolicy(m).meta.image_size) for p, (_, m) in built.items()}
        first = args.presets[0]
        schedules = [
            ("normal", "sleep + 1 ms spin", 1e-3, args.ticks, args.presets),
            ("normal", "sleep only", 0.0, args.sleep_only_ticks, [first]),
            ("nice", "sleep + 1 ms spin", 1e-3, args.ticks, args.presets),
            ("fifo", "sleep + 1 ms spin", 1e-3, args.ticks, args.presets),
        ]
        for priority, label, spin, n, presets in schedules:  # priority only ever goes up
            if not raise_priority(priority):
                print(f"| - | {priority} | refused by the OS | | | | | |")
                continue
            for preset in presets:
                cam = frames[preset]
                log = root / f"{preset}-{priority}-{spin}.zarr"
                res, period = ticks(built[preset][1], cam, n, spin, 2, log)
                s = res.timing_summary()
                print(f"| {preset} ({cam[0].shape[1]}x{cam[0].shape[0]} BGR in) | {priority} "
                      f"| {label} | {res.ticks} | {1 / period:.0f} Hz | "
                      f"{s['lateness_p50_ms']:.3f} / {s['lateness_p99_ms']:.3f} / "
                      f"{s['lateness_max_ms']:.2f} | {s['latency_p50_ms']:.2f} / "
                      f"{s['latency_p99_ms']:.2f} | {res.overruns} |")  # fmt: skip


if __name__ == "__main__":
    main()
