"""Every control tick to a zarr (v3) store: time-major arrays chunked along time.

Ticks are buffered in numpy; each full chunk is handed to a writer thread (normal scheduling
priority even when the loop runs SCHED_FIFO), so the loop pays neither a file write per tick nor
the compression and I/O of a chunk. Episode boundaries go to ``meta/episode_ends`` (exclusive end indices, the
layout Diffusion Policy popularised); ``attrs`` keep the model metadata and event names.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore

from .metadata import ModelMetadata
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


def refuse_existing(path: str | Path) -> Path:
    """``path`` as a ``Path`` if nothing is there yet: zarr's overwrite mode would delete a
    directory (even ``.``), and a log must never cost the user a file."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(
            f"{path} exists; choose a new --log path (tick logs are never overwritten)"
        )
    return path


class TickLogger:
    """Append-only tick log in a new directory; ``close`` (or leaving the ``with`` block) flushes
    the last chunk."""

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
        self.path = refuse_existing(path)
        self.path.mkdir(parents=True)  # raises if something appeared there meanwhile
        self.chunk = chunk
        self.group = zarr.open_group(store=LocalStore(self.path), mode="w-")
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
        self.shapes = shapes
        self.buffers = self._new_buffers()
        self.ends = self.group.create_array(
            "meta/episode_ends", shape=(0,), chunks=(1024,), dtype="i8"
        )
        self.n_buffered = 0
        self.n_total = 0
        self.n_episodes_end = 0
        self.error: BaseException | None = None
        self.queue: queue.Queue = queue.Queue()
        self.writer = threading.Thread(target=self._write, name="tick-log-writer", daemon=True)
        self.writer.start()

    @classmethod
    def for_model(
        cls,
        path: str | Path,
        meta: ModelMetadata,
        *,
        attrs: dict[str, Any] | None = None,
        saliency: bool = False,
        chunk: int = 256,
    ) -> TickLogger:
        """A log shaped for ``meta``'s frames and actions, with the model metadata in ``attrs``."""
        size = meta.image_size
        return cls(
            path,
            frame_shape=(meta.channels_per_frame, size, size),
            action_dim=meta.action_dim,
            attrs={"model": meta.to_props(), **(attrs or {})},
            saliency_shape=(size, size) if saliency else None,
            chunk=chunk,
        )

    def _new_buffers(self) -> dict[str, np.ndarray]:
        return {name: np.empty((self.chunk, *s), d) for name, (s, d) in self.shapes.items()}

    def _write(self) -> None:
        """Writer thread: appends chunks and episode ends in order until ``None`` arrives."""
        try:  # Linux: pid 0 is this thread; leave raised priority (fifo/nice) to the loop
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, 0, 0)
        except (AttributeError, OSError):
            pass
        while (item := self.queue.get()) is not None:
            try:
                if isinstance(item, int):
                    self.ends.append(np.array([item], "i8"))
                else:
                    for name, data in item.items():
                        self.arrays[name].append(data)
            except BaseException as e:  # reported by close(); the loop must keep its rate
                self.error = e

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
        if self.n_total > self.n_episodes_end:
            self.flush()
            self.queue.put(self.n_total)
            self.n_episodes_end = self.n_total

    def flush(self) -> None:
        """Hand the buffered ticks to the writer (returns at once)."""
        if self.n_buffered:
            self.queue.put({k: v[: self.n_buffered] for k, v in self.buffers.items()})
            self.buffers = self._new_buffers()
            self.n_buffered = 0

    def close(self) -> None:
        """Write everything and wait for it; raises what the writer thread hit, if anything."""
        self.flush()
        if self.writer.is_alive():
            self.queue.put(None)
            self.writer.join()
        if self.error is not None:
            raise OSError(f"tick log {self.path}: write failed: {self.error}") from self.error

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
