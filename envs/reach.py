"""Reach: move the gripper over a red disc on the table (2-D action by default)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base_env import XArmEnv

TARGET_CENTRE = (-0.1, 0.0)
TARGET_RANGE = (0.1, 0.2)
SUCCESS_DIST = 0.05


class ReachEnv(XArmEnv):
    """Reward per step: +1 within 5 cm (xy) of the target, else ``-3 d - 0.5 |a|^2``."""

    TASK = "reach"
    DEFAULT_ACTION_SPACE = "xy"
    WORKSPACE = ((-0.35, -0.28, 0.03), (0.05, 0.28, 0.3))  # hand stays vertical in all of it
    START = (-0.3, 0.0, 0.08)

    def _sample_layout(self, rng: np.random.Generator) -> None:
        xy = np.array(TARGET_CENTRE) + rng.uniform(-1, 1, 2) * TARGET_RANGE
        self.target_pos = np.array([xy[0], xy[1], 0.0015])
        self.data.mocap_pos[self.model.body("target").mocapid[0]] = self.target_pos

    def _evaluate(self, action: np.ndarray) -> tuple[float, dict[str, Any]]:
        eef = self.eef_pos
        d_xy = float(np.linalg.norm(eef[:2] - self.target_pos[:2]))
        success = d_xy < SUCCESS_DIST
        reward = 1.0 if success else -3.0 * d_xy - 0.5 * float(np.sum(np.square(action)))
        info = {
            "is_success": bool(success),
            "eef_pos": eef,
            "target_pos": self.target_pos.copy(),
            "dist_xy": d_xy,
            "dist_xyz": float(np.linalg.norm(eef - self.target_pos)),
        }
        return reward, info
