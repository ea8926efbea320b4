"""Template: drive a real Cartesian-controlled arm and a USB camera with ``ControlLoop``.

Copy this file anywhere (its imports are absolute), fill in the four ``TODO`` calls with your
vendor SDK, and run ``run_real("model.onnx")``. The loop needs nothing else: it crops/resizes the
camera frames as the metadata says, bounds every action (NaN stop, bounds, per-tick step,
workspace box, stale frames, overruns, Ctrl-C) and logs each tick. Checklist before the first run:

* The camera must look at the scene like the training camera (``meta.camera``); the loop only
  centre-crops to a square and area-resizes to ``meta.image_size``. Set ``color_order`` to what
  your driver returns (OpenCV gives "BGR").
* Timestamps must be on the loop's clock (``time.monotonic``) so the watchdog can judge age.
* FRAMES: ``state().eef_pos`` MUST be the end-effector position in the ROBOT BASE frame (metres,
  origin at the arm's base, x forward, y left, z up), because the workspace box in the metadata
  (``meta.workspace``, ``"frame": "robot_base"``) and a ``workspace_low``/``workspace_high``
  override are in that frame. A pose in another frame makes the box clip the wrong motions. The
  exported box assumes the simulator's mounting (base on the table-top plane, 0.5 m behind the
  table centre); measure a box on your own setup if it differs.
* One action unit is ``meta.action_scale_m`` metres of end-effector motion per tick along the
  first ``meta.action_dim`` base-frame axes (x, y[, z]); map it into your robot's base frame.
* Start with ``run_real(..., max_step_m=...)`` well below ``meta.action_scale_m`` (the default
  0.01 m is a fifth of the simulator's 0.05 m) and a tight box: add ``workspace_low=(x, y, z)`` and
  ``workspace_high=(x, y, z)`` (metres, robot base frame) to the ``SafetyLimits.from_metadata``
  call in ``run_real``; every other limit of ``SafetyLimits`` can be tightened there too.
* Every run writes a new tick log (``robot_log-<date>-<time>.zarr`` by default); an existing
  path is refused, never overwritten.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from sgqn_robot.export.control_loop import ControlLoop, LoopResult
from sgqn_robot.export.interfaces import Frame, MonotonicClock, RobotState, raise_priority
from sgqn_robot.export.policy import OnnxPolicy
from sgqn_robot.export.safety import SafetyLimits
from sgqn_robot.export.tick_log import TickLogger


class CartesianArm:
    """``Robot`` over an arm that accepts end-effector position targets (or velocities)."""

    def __init__(self, host: str, action_scale_m: float) -> None:
        self.scale = action_scale_m
        self.sdk = None  # TODO: self.sdk = VendorSDK.connect(host); enable servo/streaming mode

    def state(self) -> RobotState:
        """TODO: return the measured end-effector position in metres, ROBOT BASE frame."""
        raise NotImplementedError("read the end-effector pose from your SDK here")

    def command(self, action: np.ndarray) -> None:
        """Move by ``action * scale`` metres; send it as a pose target or a velocity for one tick.

        For a velocity interface: ``v = action * self.scale / period`` and let the controller
        decelerate to zero when no new command arrives within a period (the arm's own watchdog).
        """
        raise NotImplementedError("send the end-effector delta to your SDK here")

    def stop(self) -> None:
        """Idempotent safe stop: zero velocity / hold current pose. Never raise from here."""
        raise NotImplementedError("command a controlled stop (hold position) here")


class UsbCamera:
    """``Camera`` over a driver that returns the newest HxWx3 uint8 frame without blocking."""

    color_order = "BGR"  # OpenCV's order; set "RGB" if your driver returns RGB

    def __init__(self, device: int = 0) -> None:
        self.driver = None  # TODO: e.g. a grabber thread that keeps only the newest frame
        self.index = 0

    def read(self) -> Frame:
        """TODO: newest frame and its capture time on ``time.monotonic()``."""
        raise NotImplementedError("return Frame(image, capture_time, index) from your driver")


def run_real(model: str | Path, host: str = "192.168.1.10", log: str | Path | None = None,
             max_step_m: float = 0.01, max_ticks: int = 500) -> LoopResult:  # fmt: skip
    """Wire the adapters into the loop, with a tighter per-tick step than in simulation.

    ``log`` defaults to a new timestamped directory, so runs never collide. SCHED_FIFO (if the OS
    grants it) keeps tick lateness in the tens of microseconds on a busy PC (see
    docs/RESULTS.md, "Runner latency").
    """
    log = log or time.strftime("robot_log-%Y%m%d-%H%M%S.zarr")
    clock = MonotonicClock.for_priority("fifo" if raise_priority("fifo") else "normal")
    policy = OnnxPolicy(model, threads=2)
    meta = policy.meta
    arm, camera = CartesianArm(host, meta.action_scale_m), UsbCamera()
    limits = SafetyLimits.from_metadata(meta, max_step_m=max_step_m)
    with TickLogger.for_model(log, meta) as logger:
        loop = ControlLoop(policy, camera, arm, clock, limits=limits, logger=logger)
        return loop.run(max_ticks=max_ticks)
