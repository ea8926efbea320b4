"""The three small I/O Protocols the control loop talks to, plus the two clocks.

Keeping the loop behind ``Camera``/``Robot``/``Clock`` lets the same code drive the simulator in
tests, a recorded stream on a laptop and a real arm in the field; only adapters differ.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One camera image (HWC uint8) and when it was captured, on the loop's clock."""

    image: np.ndarray
    timestamp: float
    index: int = -1


@dataclass(frozen=True)
class RobotState:
    """What the safety chain needs from the arm: end-effector position (m) and end of episode."""

    eef_pos: np.ndarray | None
    done: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class EndOfStream(Exception):
    """Raised by ``Camera.read`` of a finite recording after its last frame.

    A replayed stream that ends is a normal end of the run, not a fault, so it must not look like
    a frozen camera (the stale-frame safety stop). A live camera never raises it.
    """


@runtime_checkable
class Camera(Protocol):
    color_order: str  # "RGB" or "BGR": what ``read`` returns

    def read(self) -> Frame:
        """Return the newest frame (never block longer than a control period).

        A recording raises ``EndOfStream`` when it has no frames left.
        """
        ...


@runtime_checkable
class Robot(Protocol):
    def state(self) -> RobotState:
        """Current end-effector position; called once per tick before the safety chain."""
        ...

    def command(self, action: np.ndarray) -> None:
        """Send one normalized end-effector delta (already made safe by the loop)."""
        ...

    def stop(self) -> None:
        """Safe stop: hold position. Must be idempotent; the loop may call it more than once."""
        ...


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic time base."""
        ...

    def sleep_until(self, deadline: float) -> None:
        """Return at (not before) ``deadline``; immediately if it has passed."""
        ...


class MonotonicClock:
    """Real time: ``time.sleep`` until ``spin_s`` before the deadline, then spin.

    ``time.sleep`` wakes ~0.1 ms late on an idle box; spinning the last millisecond removes that,
    but only pays off under ``raise_priority("fifo")``: at normal priority on a busy 2-core box
    the scheduler preempts a spinning thread and the p99 got worse (4.3 vs 2.2 ms, see
    docs/RESULTS.md). ``for_priority`` picks accordingly.
    """

    @classmethod
    def for_priority(cls, kind: str) -> MonotonicClock:
        return cls(spin_s=1e-3 if kind == "fifo" else 0.0)

    def __init__(self, spin_s: float = 1e-3) -> None:
        self.spin_s = spin_s

    def now(self) -> float:
        return time.monotonic()

    def sleep_until(self, deadline: float) -> None:
        coarse = deadline - self.spin_s - time.monotonic()
        if coarse > 0:
            time.sleep(coarse)
        while time.monotonic() < deadline:
            pass


PRIORITIES = ("normal", "nice", "fifo")


def raise_priority(kind: str) -> bool:
    """Give the calling thread (and threads it starts later) precedence over ordinary processes.

    On a busy 2-core PC a normal-priority loop waits ~2-4 ms for a core after its timer fires;
    ``nice`` (nice -15) or ``fifo`` (SCHED_FIFO 50) remove that. Both need root or
    CAP_SYS_NICE; returns False (changing nothing) where the OS refuses. Call it before creating
    the onnxruntime session so its workers inherit it. A FIFO loop only spins ~1 ms per tick, so
    it cannot starve the machine.
    """
    try:
        if kind == "fifo":
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
        elif kind == "nice":
            os.setpriority(os.PRIO_PROCESS, 0, -15)
        elif kind != "normal":
            raise ValueError(f"priority {kind!r}; valid: {PRIORITIES}")
    except (AttributeError, PermissionError):
        return False
    return True


class SimulatedClock:
    """Deterministic time for tests: sleeping jumps to the deadline; ``advance`` models work."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def sleep_until(self, deadline: float) -> None:
        self.t = max(self.t, deadline)

    def advance(self, dt: float) -> None:
        self.t += dt
