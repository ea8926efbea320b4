"""xArm7 pixel environments: ``SGQNRobot/Reach-v0`` and ``SGQNRobot/PegInBox-v0``.

Importing this package registers the ids with gymnasium; robosuite is never imported at run time.

Keyword options of both envs (also accepted by :func:`make_env`):
- ``split``: one of :data:`SPLITS` (``train``, ``test1``..``test5``, and the seeded randomized
  ``color_easy``, ``color_hard``, ``texture``, ``lighting``, ``camera``, ``distractors``);
- ``image_size`` (84), ``frame_stack`` (1): observations are uint8 ``(3*frame_stack, H, W)``,
  RGB, oldest frame first;
- ``action_space``: ``"xy"`` (reach default) or ``"xyz"`` (peg-in-box default); actions in
  [-1, 1] move the end effector 5 cm per unit per step; out-of-range values are clipped, NaN/Inf
  raise ``ValueError``;
- ``camera``: ``"third_person"`` (default) or ``"front"``;
- ``textures``: a folder, a list of image files or ``{"table"|"floor"|"wall": file}`` - your own
  photos mapped onto the table/floor/wall on any split;
- ``render_mode="rgb_array"``: ``render()`` returns a 256 px HWC frame;
- ``meshes``: ``"decimated"`` (default, shipped) or ``"full"`` (robosuite's originals; bench only).
"""

from __future__ import annotations

import os
from typing import Any

# Headless software rendering (EGL through Mesa) is this project's default; an explicit
# MUJOCO_GL (e.g. glfw on a desktop) wins. Must be set before mujoco is first imported.
os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium  # noqa: E402

from .base_env import EPISODE_STEPS  # noqa: E402
from .splits import SPLITS  # noqa: E402

TASKS = {"reach": "SGQNRobot/Reach-v0", "peg_in_box": "SGQNRobot/PegInBox-v0"}
_ENTRY_POINTS = {
    "reach": "sgqn_robot.envs.reach:ReachEnv",
    "peg_in_box": "sgqn_robot.envs.peg_in_box:PegInBoxEnv",
}

for _task, _id in TASKS.items():
    if _id not in gymnasium.registry:
        gymnasium.register(
            id=_id, entry_point=_ENTRY_POINTS[_task], max_episode_steps=EPISODE_STEPS
        )


def check_task(task: str) -> str:
    """``task`` itself, or a ValueError that names it and lists the valid ones."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    return task


def make_env(
    task: str,
    split: str = "train",
    image_size: int = 84,
    frame_stack: int = 1,
    seed: int | None = None,
    **kwargs: Any,
) -> gymnasium.Env:
    """``gymnasium.make(TASKS[task], ...)``; with ``seed`` the env is reset once with it."""
    check_task(task)
    env = gymnasium.make(
        TASKS[task], split=split, image_size=image_size, frame_stack=frame_stack, **kwargs
    )
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


__all__ = ["EPISODE_STEPS", "SPLITS", "TASKS", "check_task", "make_env"]
