"""The fixed-rate control loop: capture -> preprocess -> infer -> safety chain -> command -> log.

Deadlines sit on a fixed grid ``t0 + k * period`` of the ``Clock`` (monotonic in the field,
simulated in tests), so lateness does not accumulate. A tick whose work runs past the next
deadline is an overrun: the loop skips to the next free grid slot instead of bursting commands,
and N consecutive overruns stop the robot. Any exception or Ctrl-C also ends in ``robot.stop()``,
as does the end of a recorded stream (``EndOfStream``, stop reason ``end_of_stream``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .interfaces import Camera, Clock, EndOfStream, MonotonicClock, Robot
from .policy import OnnxPolicy, SaliencyModel
from .preprocess import FrameStack, Preprocessor
from .safety import STOPPING, SafetyChain, SafetyLimits, TickContext, event_mask
from .tick_log import Tick, TickLogger

_NO_POSE = np.full(3, np.nan, np.float32)


@dataclass
class LoopResult:
    """Summary of one run of the loop (one episode in the simulator)."""

    ticks: int = 0
    overruns: int = 0
    stop_reason: str = ""
    events: Counter = field(default_factory=Counter)
    lateness: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)

    def timing_summary(self) -> dict[str, float]:
        """p50/p99/max of lateness and work latency in milliseconds."""
        out: dict[str, float] = {"ticks": self.ticks, "overruns": self.overruns}
        for name, values in (("lateness", self.lateness), ("latency", self.latency)):
            if values:
                v = np.asarray(values) * 1e3
                out |= {
                    f"{name}_p50_ms": float(np.percentile(v, 50)),
                    f"{name}_p99_ms": float(np.percentile(v, 99)),
                    f"{name}_max_ms": float(v.max()),
                }
        return out


class ControlLoop:
    """Drives any ``Robot`` from any ``Camera`` with an exported policy at a fixed rate."""

    def __init__(
        self,
        policy: OnnxPolicy,
        camera: Camera,
        robot: Robot,
        clock: Clock | None = None,
        *,
        limits: SafetyLimits | None = None,
        rate_hz: float | None = None,
        logger: TickLogger | None = None,
        saliency: SaliencyModel | None = None,
        warmup: int = 5,
    ) -> None:
        meta = policy.meta
        if rate_hz is not None and not (rate_hz > 0 and math.isfinite(rate_hz)):
            raise ValueError(f"--rate {rate_hz}: the control rate must be a positive number of Hz")
        self.policy, self.camera, self.robot = policy, camera, robot
        # plain sleep: spinning only pays off under SCHED_FIFO (see MonotonicClock)
        self.clock = clock if clock is not None else MonotonicClock.for_priority("normal")
        self.limits = limits if limits is not None else SafetyLimits.from_metadata(meta)
        self.chain: SafetyChain = self.limits.chain()
        self.period = 1.0 / rate_hz if rate_hz is not None else meta.control_period
        self.logger, self.saliency = logger, saliency
        self.preprocess = Preprocessor(meta.preprocessing, meta.image_size, meta.channels_per_frame)
        self.stack = FrameStack(meta.frame_stack)
        policy.warmup(warmup)

    def run(self, max_ticks: int | None = None) -> LoopResult:
        """Run until the robot reports ``done``, ``max_ticks``, a stopping event, Ctrl-C or the
        end of a recorded stream."""
        res = LoopResult()
        self.stack.reset()
        deadline = self.clock.now()
        last_index, repeats, consecutive = None, 0, 0
        try:
            while max_ticks is None or res.ticks < max_ticks:
                self.clock.sleep_until(deadline)
                t_start = self.clock.now()
                state = self.robot.state()
                if state.done:
                    res.stop_reason = "done"
                    break
                frame = self.camera.read()
                t_cap = self.clock.now()
                newest = self.preprocess(frame.image, self.camera.color_order)
                obs = self.stack.push(newest)
                t_pre = self.clock.now()
                raw = self.policy(obs)
                t_inf = self.clock.now()
                repeats = repeats + 1 if frame.index == last_index and frame.index >= 0 else 0
                last_index = frame.index
                ctx = TickContext(state.eef_pos, t_inf - frame.timestamp, repeats, consecutive)
                safe = self.chain(raw, ctx)
                if safe.stop:
                    self.robot.stop()
                else:
                    self.robot.command(safe.action)
                t_cmd = self.clock.now()
                next_deadline = deadline + self.period
                overrun = t_cmd > next_deadline
                if overrun:  # skip the grid slots already missed rather than burst commands
                    next_deadline += self.period * math.ceil((t_cmd - next_deadline) / self.period)
                consecutive = consecutive + 1 if overrun else 0
                res.ticks += 1
                res.overruns += overrun
                res.events.update(safe.events)
                res.lateness.append(t_start - deadline)
                res.latency.append(t_cmd - t_start)
                if self.logger is not None:
                    self.logger.log(
                        Tick(
                            t_deadline=deadline,
                            t_start=t_start,
                            t_frame=frame.timestamp,
                            t_command=t_cmd,
                            lateness=t_start - deadline,
                            lat_capture=t_cap - t_start,
                            lat_preprocess=t_pre - t_cap,
                            lat_infer=t_inf - t_pre,
                            lat_total=t_cmd - t_start,
                            overrun=overrun,
                            events=event_mask(safe.events),
                            frame=newest,
                            raw_action=raw,
                            safe_action=safe.action,
                            eef_pos=_NO_POSE if state.eef_pos is None else state.eef_pos,
                            saliency=self._saliency(obs, raw),
                        )
                    )
                if safe.stop:
                    res.stop_reason = next(e for e in safe.events if e in STOPPING)
                    break
                deadline = next_deadline
            else:
                res.stop_reason = "max_ticks"
        except KeyboardInterrupt:
            self.robot.stop()
            res.events["interrupt"] += 1
            res.stop_reason = "interrupt"
        except EndOfStream:  # a normal end, so no safety event
            self.robot.stop()
            res.stop_reason = "end_of_stream"
        except BaseException:
            self.robot.stop()
            raise
        finally:
            if self.logger is not None:
                self.logger.end_episode()
                self.logger.flush()
        return res

    def _saliency(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray | None:
        """Predicted attribution mask averaged over channels, 0..255, for a cheap overlay."""
        if self.saliency is None:
            return None
        return np.rint(self.saliency(obs, action).mean(axis=0) * 255).astype(np.uint8)
