"""Example: run an exported policy on a recorded camera stream, no robot and no simulator.

    python -m sgqn_robot.export.replay_example model.onnx STREAM [--bgr] [--log out.zarr]

``STREAM`` is a tick log (``sgqn-run --log``) or a folder of PNG/NPY images in name order. A
``RecordingRobot`` stands in for the arm: it keeps every safe action and integrates them into an
end-effector track, so you can see what the policy would have commanded on that footage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from .control_loop import ControlLoop, LoopResult
from .interfaces import Clock, MonotonicClock, RobotState, SimulatedClock
from .metadata import ModelError
from .policy import OnnxPolicy
from .replay_camera import ReplayCamera
from .run import add_safety_args, apply_priority, limits_from_args
from .safety import SafetyLimits
from .tick_log import TickLogger


class RecordingRobot:
    """A ``Robot`` that moves a virtual end effector by ``action * scale`` per command."""

    def __init__(self, start: Sequence[float] = (0.0, 0.0, 0.0), scale_m: float = 0.05) -> None:
        self.pos = np.array(start, np.float32)
        self.scale = scale_m
        self.actions: list[np.ndarray] = []
        self.stops = 0

    @classmethod
    def for_limits(cls, limits: SafetyLimits) -> RecordingRobot:
        """Start at the workspace centre (base frame), where the safety chain leaves actions be."""
        start = (0.0, 0.0, 0.0)
        if limits.workspace_low is not None and limits.workspace_high is not None:
            start = (np.add(limits.workspace_low, limits.workspace_high) / 2).tolist()
        return cls(start, limits.action_scale_m)

    def state(self) -> RobotState:
        return RobotState(self.pos.copy())

    def command(self, action: np.ndarray) -> None:
        self.actions.append(np.array(action))
        self.pos[: len(action)] += action * self.scale

    def stop(self) -> None:
        self.stops += 1


def replay(model: str | Path, stream: str | Path, clock: Clock, *, color_order: str = "RGB",
           log: str | Path | None = None, args: argparse.Namespace | None = None,
           max_ticks: int | None = None) -> tuple[LoopResult, RecordingRobot]:  # fmt: skip
    """Run the loop over the stream until it ends (stop reason ``end_of_stream``) or
    ``max_ticks``."""
    if args is not None:
        apply_priority(args.priority, "replay_example")
    policy = OnnxPolicy(model, args.threads if args else None)
    meta = policy.meta
    stream = Path(stream)
    is_log = (stream / "zarr.json").exists()
    camera = (
        ReplayCamera.from_log(stream, clock)
        if is_log
        else ReplayCamera.from_folder(stream, clock, color_order)
    )
    limits = limits_from_args(meta, args) if args else SafetyLimits.from_metadata(meta)
    robot = RecordingRobot.for_limits(limits)
    log_or_none = TickLogger.for_model(log, meta) if log else nullcontext()
    with log_or_none as logger:
        loop = ControlLoop(policy, camera, robot, clock, limits=limits,
                           rate_hz=args.rate if args else None, logger=logger)  # fmt: skip
        return loop.run(max_ticks=max_ticks), robot


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sgqn_robot.export.replay_example")
    p.add_argument("model")
    p.add_argument("stream", help="tick log directory or folder of images")
    p.add_argument("--bgr", action="store_true", help="the images are stored BGR")
    p.add_argument("--log", help="write the replayed ticks to this zarr directory")
    p.add_argument("--fast", action="store_true", help="simulated clock: no waiting")
    add_safety_args(p)
    args = p.parse_args(argv)
    clock = SimulatedClock() if args.fast else MonotonicClock.for_priority(args.priority)
    try:
        res, robot = replay(args.model, args.stream, clock, color_order="BGR" if args.bgr else "RGB",
                            log=args.log, args=args)  # fmt: skip
    except (ModelError, FileNotFoundError, FileExistsError, ValueError, ImportError) as e:
        print(f"replay_example: error: {e}", file=sys.stderr)
        return 2
    print(f"{res.ticks} ticks, stop: {res.stop_reason}, events {dict(res.events)}")
    print(f"virtual end effector moved to {np.round(robot.pos, 3).tolist()}")
    print("timing: " + ", ".join(f"{k} {v:.3g}" for k, v in res.timing_summary().items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
