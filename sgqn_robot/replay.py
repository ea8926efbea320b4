"""Replay buffer types."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Batch(NamedTuple):
    """One sampled minibatch (numpy arrays), as `Agent.update` consumes it."""

    obs: np.ndarray  # uint8 [B, C, H, W]
    action: np.ndarray  # float32 [B, A]
    reward: np.ndarray  # float32 [B]
    next_obs: np.ndarray  # uint8 [B, C, H, W]
    not_done: np.ndarray  # float32 [B]; 0 only on a true termination (truncation keeps 1)
