"""Every control tick to a zarr (v3) store: time-major arrays chunked along time.

Ticks are buffered in numpy and appended one chunk at a time, so the loop never pays a file
write per tick. Episode boundaries go to ``meta/episode_ends`` (exclusive end indices, the
layout Diffusion Policy popularised); ``attrs`` keep the model metadata and event names.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore

from .safety import EVENTS


@dataclass
class Tick:
    """One tick. Times are on the loop's clock (s); latencies are durations (s)."""

    t_deadline: float
    t_start: float
    t_frame: float
    t_command: float
    lateness: float
    lat_capture: float
    lat_preprocess: float
    lat_infer: float
    lat_total: float
    overrun: bool
    events: int
    frame: np.ndarray
    raw_action: np.ndarray
    safe_action: np.ndarray
    eef_pos: np.ndarray
    saliency: np.ndarray | None = None


_SCALARS = {
    "t_deadline": "f8",
    "t_start": "f8",
    "t_frame": "f8",
    "t_command": "f8",
    "lateness": "f4",
    "lat_capture": "f4",
    "lat_preprocess": "f4",
    "lat_infer": "f4",
    "lat_total": "f4",
    "overrun": "bool",
    "events": "i4",
}


class TickLogger:
    """Append-only tick log; ``close`` (or leaving the ``with`` block) flushes the last chunk."""

    def __init__(
        self,
        path: str | Path,
        *,
        frame_shape: tuple[int, ...],
        action_dim: int,
        attrs: dict[str, Any] | None = None,
        saliency_shape: tuple[int, ...] | None = None,
        chunk: int = 256,
    ) -> None:
        self.path = Path(path)
        self.chunk = chunk
        self.group = zarr.open_group(store=LocalStore(self.path), mode="w")
        self.group.attrs.update({"events": list(EVENTS), **(attrs or {})})
        shapes: dict[str, tuple[tuple[int, ...], str]] = {k: ((), v) for k, v in _SCALARS.items()}
        shapes |= {
            "frame": (tuple(frame_shape), "u1"),
            "raw_action": ((action_dim,), "f4"),
            "safe_action": ((action_dim,), "f4"),
            "eef_pos": ((3,), "f4"),
        }
        if saliency_shape is not None:
            shapes["saliency"] = (tuple(saliency_shape), "u1")
        self.arrays = {
            name: self.group.create_array(
                name, shape=(0, *shape), chunks=(chunk, *shape), dtype=dtype
            )
            for name, (shape, dtype) in shapes.items()
        }
        self.buffers = {
            name: np.zeros((chunk, *shape), dtype) for name, (shape, dtype) in shapes.items()
        }
        self.ends = self.group.create_array(
            "meta/episode_ends", shape=(0,), chunks=(1024,), dtype="i8"
        )
        self.n_buffered = 0
        self.n_total = 0

    def log(self, tick: Tick) -> None:
        i = self.n_buffered
        for f in fields(tick):
            value = getattr(tick, f.name)
            if f.name in self.buffers and value is not None:
                self.buffers[f.name][i] = value
        self.n_buffered += 1
        self.n_total += 1
        if self.n_buffered == self.chunk:
            self.flush()

    def end_episode(self) -> None:
        """Mark the ticks so far as one finished episode."""
        if self.n_total and (self.ends.shape[0] == 0 or self.ends[-1] != self.n_total):
            self.ends.append(np.array([self.n_total], "i8"))

    def flush(self) -> None:
        if self.n_buffered:
            for name, arr in self.arrays.items():
                arr.append(self.buffers[name][: self.n_buffered])
            self.n_buffered = 0

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> TickLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_log(path: str | Path) -> zarr.Group:
    """Read-only view of a tick log (arrays load lazily)."""
    path = Path(path)
    if not (path / "zarr.json").exists():
        raise FileNotFoundError(f"{path} is not a tick log (no zarr.json); pass a --log directory")
    return zarr.open_group(store=LocalStore(path, read_only=True), mode="r")
