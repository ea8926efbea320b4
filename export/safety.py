"""The safety chain every action passes through, as small composable checks that emit events.

Each check sees the proposed action and the tick's context and returns a (possibly) modified
action plus the events it raised. Events in ``STOPPING`` end the run with a safe stop; the others
only record that the action was changed. Events are logged as a bitmask (``EVENTS`` order).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .metadata import ModelMetadata

EVENTS = (
    "nonfinite",
    "clip_bounds",
    "delta_clamp",
    "workspace",
    "no_pose",
    "stale_frame",
    "overruns",
    "interrupt",
    "error",
)
STOPPING = frozenset({"nonfinite", "no_pose", "stale_frame", "overruns", "interrupt", "error"})
BIT = {name: 1 << i for i, name in enumerate(EVENTS)}


def event_mask(events: Iterable[str]) -> int:
    """Bitmask of event names, for the tick log."""
    mask = 0
    for e in events:
        mask |= BIT[e]
    return mask


def event_names(mask: int) -> list[str]:
    return [name for name in EVENTS if mask & BIT[name]]


@dataclass(frozen=True)
class TickContext:
    """What the checks may look at besides the action."""

    eef_pos: np.ndarray | None
    frame_age: float
    frame_repeats: int
    consecutive_overruns: int


class Check:
    """One link of the chain; subclasses override ``__call__``."""

    def __call__(self, action: np.ndarray, ctx: TickContext) -> tuple[np.ndarray, list[str]]:
        raise NotImplementedError


class StaleFrame(Check):
    """Stop when the newest frame is older than ``max_age_s`` or repeats ``max_repeats`` ticks."""

    def __init__(self, max_age_s: float, max_repeats: int) -> None:
        self.max_age_s, self.max_repeats = max_age_s, max_repeats

    def __call__(self, action, ctx):
        stale = ctx.frame_age > self.max_age_s or ctx.frame_repeats >= self.max_repeats
        return action, ["stale_frame"] if stale else []


class OverrunLimit(Check):
    """Stop after ``n`` consecutive ticks that missed their deadline."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, action, ctx):
        return action, ["overruns"] if ctx.consecutive_overruns >= self.n else []


class Finite(Check):
    """NaN/Inf from the network means something is broken upstream: zero the action and stop."""

    def __call__(self, action, ctx):
        if np.all(np.isfinite(action)):
            return action, []
        return np.zeros_like(action), ["nonfinite"]


class ClipBounds(Check):
    def __init__(self, low: Sequence[float], high: Sequence[float]) -> None:
        self.low = np.asarray(low, np.float32)
        self.high = np.asarray(high, np.float32)

    def __call__(self, action, ctx):
        out = np.clip(action, self.low, self.high)
        return out, ["clip_bounds"] if np.any(out != action) else []


class DeltaClamp(Check):
    """Bound the end-effector displacement per tick to ``max_step_m`` per axis.

    The action is a normalized delta: one unit moves the end effector by ``scale_m`` metres, so
    this caps the commanded step in metres, tighter than the bounds when set below ``scale_m``.
    """

    def __init__(self, max_step_m: float, scale_m: float) -> None:
        self.limit = max_step_m / scale_m

    def __call__(self, action, ctx):
        out = np.clip(action, -self.limit, self.limit)
        return out, ["delta_clamp"] if np.any(out != action) else []


class WorkspaceBox(Check):
    """Keep the commanded end-effector target (pose + action*scale) from leaving a box.

    Pose and box are in the robot base frame. Per axis only the outward part of a step is removed:
    a step that would cross a face ends on it; from a pose already outside, motion further out is
    cut while motion back in or along the face passes. The check never adds motion of its own, so
    a pose in the wrong frame cannot make it drive the arm toward the box. The first
    ``len(action)`` axes of the box are used (an "xy" policy moves x and y). Without a (finite)
    pose the target is unknown, so the chain stops rather than guess.
    """

    def __init__(self, low: Sequence[float], high: Sequence[float], scale_m: float) -> None:
        self.low = np.asarray(low, np.float64)
        self.high = np.asarray(high, np.float64)
        self.scale = scale_m

    def __call__(self, action, ctx):
        a = len(action)
        if ctx.eef_pos is None or not np.all(np.isfinite(ctx.eef_pos[:a])):
            return np.zeros_like(action), ["no_pose"]
        pos = np.asarray(ctx.eef_pos, np.float64)[:a]
        target = pos + action.astype(np.float64) * self.scale
        # a pose outside widens the box up to itself: staying put is always allowed
        allowed = np.clip(target, np.minimum(self.low[:a], pos), np.maximum(self.high[:a], pos))
        if np.array_equal(allowed, target):
            return action, []
        out = np.where(allowed == target, action, (allowed - pos) / self.scale)
        return out.astype(action.dtype), ["workspace"]


@dataclass(frozen=True)
class SafetyResult:
    action: np.ndarray
    events: tuple[str, ...]

    @property
    def stop(self) -> bool:
        return any(e in STOPPING for e in self.events)


class SafetyChain:
    """Runs every check in order; once a stopping event fires the action is zero."""

    def __init__(self, checks: Sequence[Check]) -> None:
        self.checks = list(checks)

    def __call__(self, action: np.ndarray, ctx: TickContext) -> SafetyResult:
        events: list[str] = []
        out = np.asarray(action, np.float32).copy()
        for check in self.checks:
            out, new = check(out, ctx)
            events += new
        result = SafetyResult(out, tuple(events))
        return SafetyResult(np.zeros_like(out), result.events) if result.stop else result


@dataclass(frozen=True)
class SafetyLimits:
    """Tunable limits; defaults come from the model metadata, the CLI may override each."""

    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    action_scale_m: float
    max_step_m: float
    workspace_low: tuple[float, ...] | None
    workspace_high: tuple[float, ...] | None
    max_frame_age_s: float
    max_frame_repeats: int
    max_consecutive_overruns: int

    def __post_init__(self) -> None:
        """Refuse limits that would disable a check or stop at once (each names its CLI flag)."""
        if not self.max_step_m > 0:
            raise ValueError(f"--max-step {self.max_step_m}: the per-tick step must be > 0 m")
        if not self.max_frame_age_s > 0:
            raise ValueError(f"--max-frame-age {self.max_frame_age_s}: must be > 0 s")
        if self.max_consecutive_overruns < 1:
            raise ValueError(f"--max-overruns {self.max_consecutive_overruns}: must be >= 1")
        if self.max_frame_repeats < 1:
            raise ValueError(f"max_frame_repeats {self.max_frame_repeats}: must be >= 1")
        if not self.action_scale_m > 0:
            raise ValueError(f"action_scale_m {self.action_scale_m}: must be > 0 m")
        low, high = self.workspace_low, self.workspace_high
        if (low is None) != (high is None):
            raise ValueError("workspace: give both low and high corners, or neither")
        if low is not None and high is not None:
            if len(low) != len(high) or len(low) < len(self.action_low):
                raise ValueError(
                    f"--workspace {low} {high}: need low and high for x, y, z (6 numbers)"
                )
            if not all(lo < hi for lo, hi in zip(low, high, strict=True)):
                raise ValueError(
                    f"--workspace low {tuple(low)} must be below high {tuple(high)} on every "
                    "axis (XL YL ZL XH YH ZH, metres, robot base frame)"
                )

    @classmethod
    def from_metadata(cls, meta: ModelMetadata, **overrides: object) -> SafetyLimits:
        ws = meta.workspace or {}  # robot base frame (ModelMetadata checks it)
        limits = cls(
            action_low=meta.action_low,
            action_high=meta.action_high,
            action_scale_m=meta.action_scale_m,
            max_step_m=meta.action_scale_m,
            workspace_low=tuple(ws["low"]) if ws else None,
            workspace_high=tuple(ws["high"]) if ws else None,
            max_frame_age_s=3 * meta.control_period,
            max_frame_repeats=3,
            max_consecutive_overruns=5,
        )
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls(**{**limits.__dict__, **given})

    def chain(self) -> SafetyChain:
        bounds = ClipBounds(self.action_low, self.action_high)
        checks: list[Check] = [
            StaleFrame(self.max_frame_age_s, self.max_frame_repeats),
            OverrunLimit(self.max_consecutive_overruns),
            Finite(),
            bounds,
        ]
        if self.workspace_low is not None and self.workspace_high is not None:
            checks.append(
                WorkspaceBox(self.workspace_low, self.workspace_high, self.action_scale_m)
            )
        # bounds again last: pulling back into the box from outside may exceed them
        checks += [DeltaClamp(self.max_step_m, self.action_scale_m), bounds]
        return SafetyChain(checks)
