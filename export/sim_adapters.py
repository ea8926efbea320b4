"""``Camera`` and ``Robot`` over our simulator, so ``sgqn-run --sim`` and the tests drive the
exact loop the robot PC runs. ``sgqn_robot.envs`` (mujoco) is imported only inside ``SimSession``,
keeping the runner importable on a machine without the simulator (there it raises
``MissingExtra``, which names what to install).

Like a real arm, ``SimRobot`` reports the end effector in the robot base frame (the env's world
position minus ``envs/scene.py``'s ``ROBOT_BASE``), the frame of the metadata's workspace box.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sgqn_robot.extras import needs_train_extra

from .interfaces import Clock, Frame, RobotState
from .metadata import ModelMetadata


def env_kwargs(meta: ModelMetadata) -> dict[str, Any]:
    """The env options a model was trained with, as ``make_env`` keywords (one frame, no stack:
    the loop stacks frames itself, exactly as on the robot)."""
    kwargs: dict[str, Any] = {"image_size": meta.image_size, "frame_stack": 1}
    if meta.action_space != "unknown":
        kwargs["action_space"] = meta.action_space
    if meta.camera != "unknown":
        kwargs["camera"] = meta.camera
    return kwargs


class SimSession:
    """One env shared by a ``SimCamera`` and a ``SimRobot``; tracks the episode's outcome. With
    ``video``, ``record()`` keeps the rest of the episode as rendered ``Tile``s in ``tiles``."""

    def __init__(
        self, task: str, split: str, clock: Clock, video: bool = False, **kwargs: Any
    ) -> None:
        with needs_train_extra("--sim needs the simulator"):
            from sgqn_robot.envs import make_env
            from sgqn_robot.envs.scene import ROBOT_BASE

        render = {"render_mode": "rgb_array"} if video else {}
        self.env = make_env(task, split=split, **kwargs, **render)
        self.tiles: list[Any] | None = None
        self.robot_base = np.asarray(ROBOT_BASE, np.float32)  # in the env's world frame
        self.clock = clock
        self.camera = SimCamera(self)
        self.robot = SimRobot(self)
        self.obs: np.ndarray | None = None
        self.info: dict[str, Any] = {}

    def reset(self, seed: int | None = None) -> None:
        self.obs, self.info = self.env.reset(seed=seed)
        self.steps, self.ret, self.done, self.stopped = 0, 0.0, False, False
        self.tiles = None

    def record(self) -> None:
        """Keep this episode's frames, from now to its end (a video of it)."""
        self.tiles = []
        self._keep_tile()

    def _keep_tile(self) -> None:
        if self.tiles is not None:
            from sgqn_robot.video import Tile

            self.tiles.append(Tile(self.env.render(), self.ret, self.success))

    @property
    def success(self) -> bool:
        return bool(self.info.get("is_success", False))

    def close(self) -> None:
        self.env.close()


class SimCamera:
    """The env's newest rendered frame (RGB), stamped when the loop reads it."""

    color_order = "RGB"

    def __init__(self, session: SimSession) -> None:
        self.session = session

    def read(self) -> Frame:
        s = self.session
        return Frame(s.obs[-3:].transpose(1, 2, 0), s.clock.now(), index=s.steps)


class SimRobot:
    """Commands step the env; ``stop`` freezes the arm for the rest of the episode."""

    def __init__(self, session: SimSession) -> None:
        self.session = session

    def state(self) -> RobotState:
        s = self.session
        pos = s.info.get("eef_pos")  # world frame
        base_pos = None if pos is None else np.asarray(pos, np.float32) - s.robot_base
        return RobotState(base_pos, s.done, s.info)

    def command(self, action: np.ndarray) -> None:
        s = self.session
        if s.stopped or s.done:
            return
        s.obs, reward, terminated, truncated, s.info = s.env.step(action)
        s.steps += 1
        s.ret += float(reward)
        s.done = bool(terminated or truncated)
        s._keep_tile()

    def stop(self) -> None:
        self.session.stopped = True
