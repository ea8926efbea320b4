"""Peg-in-box: lower a peg hanging from the gripper on a short chain into an open box."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import scene
from .base_env import XArmEnv

BOX_CENTRE = (-0.1, 0.0)
BOX_RANGE = (0.1, 0.18)
NEAR_DIST = 0.05
SUCCESS_DIST = 0.08


class PegInBoxEnv(XArmEnv):
    """Reward: ``-|a|^2 - 4 d_xy`` plus ``10 - 20 d_xyz`` once the peg is within 5 cm (xy) of
    the box opening; success when the peg is within 8 cm (xy) and inside the box."""

    TASK = "peg_in_box"
    DEFAULT_ACTION_SPACE = "xyz"
    # The lowest fingertip height keeps the gripper just above the box rim.
    WORKSPACE = ((-0.35, -0.28, scene.BOX_HEIGHT + 0.02), (0.05, 0.28, 0.3))
    START = (-0.28, 0.0, 0.25)

    def _sample_layout(self, rng: np.random.Generator) -> None:
        xy = np.array(BOX_CENTRE) + rng.uniform(-1, 1, 2) * BOX_RANGE
        self.box_pos = np.array([xy[0], xy[1], 0.0])
        self.goal_pos = np.array([xy[0], xy[1], scene.BOX_HEIGHT])
        self.data.mocap_pos[self.model.body("box").mocapid[0]] = self.box_pos
        self._peg_site = self.model.site("peg_center").id

    @property
    def peg_pos(self) -> np.ndarray:
        return self.data.site_xpos[self._peg_site].copy()

    def peg_in_box(self) -> bool:
        """Peg centre below the rim and within the box's inner walls."""
        p = self.peg_pos
        inside_xy = np.all(np.abs(p[:2] - self.box_pos[:2]) < scene.BOX_INNER)
        return bool(inside_xy and p[2] < scene.BOX_HEIGHT)

    def _evaluate(self, action: np.ndarray) -> tuple[float, dict[str, Any]]:
        peg = self.peg_pos
        d_xy = float(np.linalg.norm(peg[:2] - self.goal_pos[:2]))
        d_xyz = float(np.linalg.norm(peg - self.goal_pos))
        reward = -float(np.sum(np.square(action))) - 4.0 * d_xy
        if d_xy <= NEAR_DIST:
            reward += 10.0 - 20.0 * d_xyz
        info = {
            "is_success": bool(d_xy < SUCCESS_DIST and self.peg_in_box()),
            "eef_pos": self.eef_pos,
            "peg_pos": peg,
            "goal_pos": self.goal_pos.copy(),
            "dist_xy": d_xy,
            "dist_xyz": d_xyz,
        }
        return reward, info
