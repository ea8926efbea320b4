"""Replay memory: every uint8 frame is stored once; transitions and frame stacks are rebuilt by index.

A transition (s_t, a_t, r_t, s_t+1) shares its frames with its neighbours, so the buffer keeps a
ring of single frames plus small per-frame columns (action, reward, not_done taken *from* that
frame, its step within the episode). Stacks of k frames are gathered at sample time and stop at
the episode start by repeating the first frame, as gymnasium's `FrameStackObservation` pads.
Snapshots append new frames to a time-major zarr store (`data/*`, `meta/episode_ends`) so a run
resumes with its buffer without rewriting what is already on disk.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import zarr
from zarr.storage import LocalStore


class Batch(NamedTuple):
    """One sampled minibatch (numpy arrays), as `Agent.update` consumes it."""

    obs: np.ndarray  # uint8 [B, C, H, W]
    action: np.ndarray  # float32 [B, A]
    reward: np.ndarray  # float32 [B]
    next_obs: np.ndarray  # uint8 [B, C, H, W]
    not_done: np.ndarray  # float32 [B]; 0 only on a true termination (truncation keeps 1)


# Frames per zarr chunk and per copy block when saving/loading (bounded temporary memory).
CHUNK = 256
BLOCK = 4096


class ReplayBuffer:
    """Ring buffer of single frames. Global frame index g lives in slot g % capacity.

    Slot g holds the frame, and, when the episode went on after it (`has_next`), the action taken
    from it, the reward and not_done of that step. Episode starts are known from `t` (the frame's
    step within its episode), which is all frame stacking needs.
    """

    def __init__(
        self,
        capacity: int,
        frame_shape: tuple[int, int, int],
        action_dim: int,
        frame_stack: int = 1,
    ):
        if capacity < 2:
            raise ValueError(f"replay capacity must be >= 2 frames, got {capacity}")
        self.capacity = capacity
        self.frame_shape = tuple(frame_shape)
        self.frame_stack = frame_stack
        # np.zeros maps pages lazily: a buffer sized for all of training costs only what is used.
        self.frames = np.zeros((capacity, *frame_shape), np.uint8)
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.not_done = np.zeros(capacity, np.float32)
        self.t = np.zeros(capacity, np.int32)
        self.has_next = np.zeros(capacity, bool)
        self.total = 0  # frames ever added = global index of the next frame
        self.episode_ends: list[int] = []  # global index one past each closed episode
        self._episode_open = False
        self._saved = 0  # frames already written to the snapshot store

    def __len__(self) -> int:
        """Frames currently held."""
        return min(self.total, self.capacity)

    @property
    def nbytes(self) -> int:
        return sum(
            a.nbytes
            for a in (self.frames, self.action, self.reward, self.not_done, self.t, self.has_next)
        )

    def _put_frame(self, obs: np.ndarray, t: int) -> None:
        slot = self.total % self.capacity
        # Only the newest frame of a stacked observation is new information.
        self.frames[slot] = obs[-self.frame_shape[0] :]
        self.t[slot] = t
        self.has_next[slot] = False
        self.total += 1

    def start_episode(self, obs: np.ndarray) -> None:
        """Store the reset observation; closes the previous episode if it was still open."""
        self.end_episode()
        self._put_frame(obs, 0)
        self._episode_open = True

    def add(
        self, action: np.ndarray, reward: float, next_obs: np.ndarray, terminated: bool
    ) -> None:
        """Store one step taken from the latest frame: its action, reward and the next frame."""
        if not self._episode_open:
            raise RuntimeError("call start_episode(obs) before add()")
        prev = (self.total - 1) % self.capacity
        self.action[prev] = action
        self.reward[prev] = reward
        self.not_done[prev] = 0.0 if terminated else 1.0
        self.has_next[prev] = True
        self._put_frame(next_obs, int(self.t[prev]) + 1)

    def end_episode(self) -> None:
        if self._episode_open:
            self.episode_ends.append(self.total)
            self._episode_open = False

    def _stack_slots(self, g: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Slots [B, k] of the k frames ending at global index g, oldest first, clamped at t=0."""
        back = np.arange(self.frame_stack - 1, -1, -1)
        return (g[:, None] - np.minimum(back[None, :], t[:, None])) % self.capacity

    def _gather(self, slots: np.ndarray) -> np.ndarray:
        b, k = slots.shape
        c, h, w = self.frame_shape
        return self.frames[slots.reshape(-1)].reshape(b, k * c, h, w)

    def _valid(self, g: np.ndarray) -> np.ndarray:
        """Transitions whose action is stored and whose oldest stacked frame is not overwritten."""
        slot = g % self.capacity
        oldest = g - np.minimum(self.t[slot], self.frame_stack - 1)
        return self.has_next[slot] & (oldest >= self.total - self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """Uniform over stored transitions (rejection sampling; a few % of slots are invalid)."""
        lo = max(0, self.total - self.capacity)
        if self.total - lo < 2:
            raise RuntimeError("replay buffer holds no transition yet")
        g = rng.integers(lo, self.total - 1, size=batch_size)
        for _ in range(1000):
            bad = ~self._valid(g)
            if not bad.any():
                break
            g[bad] = rng.integers(lo, self.total - 1, size=int(bad.sum()))
        else:
            raise RuntimeError("replay buffer holds too few valid transitions to sample")
        slot = g % self.capacity
        t = self.t[slot]
        return Batch(
            obs=self._gather(self._stack_slots(g, t)),
            action=self.action[slot],
            reward=self.reward[slot],
            next_obs=self._gather(self._stack_slots(g + 1, t + 1)),
            not_done=self.not_done[slot],
        )

    # --- snapshots -------------------------------------------------------------------------

    def _columns(self) -> dict[str, np.ndarray]:
        return {
            "frames": self.frames,
            "action": self.action,
            "reward": self.reward,
            "not_done": self.not_done,
        }

    @staticmethod
    def _blocks(start: int, stop: int) -> Iterator[tuple[int, int]]:
        for a in range(start, stop, BLOCK):
            yield a, min(a + BLOCK, stop)

    def save(self, path: str | Path) -> None:
        """Append the frames added since the last save (and rewrite the small episode index).

        The open episode's frames are written too; a load treats them as a closed episode.
        """
        if self._saved < self.total - self.capacity:
            raise RuntimeError(
                "frames were overwritten before being snapshotted: snapshot more often than "
                "the replay capacity"
            )
        group = zarr.open_group(store=LocalStore(str(path)), mode="a")
        data = group.require_group("data")
        for name, col in self._columns().items():
            if name not in data:
                data.create_array(
                    name, shape=(0, *col.shape[1:]), chunks=(CHUNK, *col.shape[1:]), dtype=col.dtype
                )
            arr = data[name]
            arr.resize((self.total, *col.shape[1:]))
            for a, b in self._blocks(self._saved, self.total):
                arr[a:b] = col[np.arange(a, b) % self.capacity]
        # Resized in place, never deleted: zarr writes each chunk atomically, so a save killed
        # midway leaves every entry a completed save wrote readable.
        meta = group.require_group("meta")
        if "episode_ends" not in meta:
            meta.create_array("episode_ends", shape=(0,), chunks=(BLOCK,), dtype=np.int64)
        meta["episode_ends"].resize((len(self.episode_ends),))
        meta["episode_ends"][:] = np.asarray(self.episode_ends, np.int64)
        group.attrs.update(frame_stack=self.frame_stack, num_frames=self.total)
        self._saved = self.total

    def load(self, path: str | Path, num_frames: int | None = None) -> None:
        """Restore from a snapshot, keeping its first `num_frames` frames (the count a checkpoint
        recorded; later frames belong to steps the checkpoint does not know about)."""
        group = zarr.open_group(store=LocalStore(str(path)), mode="r")
        data = group["data"]
        stored = data["frames"].shape[0]
        n = stored if num_frames is None else num_frames
        if n > stored:
            raise ValueError(f"replay snapshot {path} holds {stored} frames, checkpoint needs {n}")
        if data["frames"].shape[1:] != self.frame_shape:
            raise ValueError(
                f"replay snapshot frames are {data['frames'].shape[1:]}, expected {self.frame_shape}"
            )
        # Only strictly increasing ends within (0, n]: a save killed between resizing the index
        # and writing it leaves zeros, and later ends belong to frames past the checkpoint.
        ends: list[int] = []
        for e in group["meta/episode_ends"][:].tolist():
            if (ends[-1] if ends else 0) < e <= n:
                ends.append(e)
        if n and (not ends or ends[-1] != n):
            ends.append(n)  # the episode open at save time ends where the checkpoint stopped
        self.total = self._saved = n
        self.episode_ends = ends
        self._episode_open = False
        if n == 0:
            return
        lo = max(0, n - self.capacity)
        for name, col in self._columns().items():
            for a, b in self._blocks(lo, n):
                col[np.arange(a, b) % self.capacity] = data[name][a:b]
        starts = np.repeat(np.r_[0, ends[:-1]], np.diff(np.r_[0, ends]))  # episode start per frame
        g = np.arange(lo, n)
        self.t[g % self.capacity] = g - starts[lo:n]
        self.has_next[g % self.capacity] = ~np.isin(g + 1, ends)
