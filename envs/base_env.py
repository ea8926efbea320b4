"""The shared xArm7 pixel env: mocap-driven end effector, splits, rendering, frame stacking.

Tasks subclass :class:`XArmEnv` and supply only their layout (``_sample_layout``), reward and
success (``_evaluate``). Rendering uses one ``mujoco.Renderer`` at ``image_size`` with shadows,
reflections and multisampling off - the settings that make the software rasterizer ~50x faster.
"""

from __future__ import annotations

import atexit
import os
import weakref
from collections import deque
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np

from . import scene, splits
from .textures import user_textures

EPISODE_STEPS = 50
ACTION_SCALE = 0.05  # metres of end-effector motion per unit action per step
ACTION_SPACES = {"xy": 2, "xyz": 3}
HUMAN_SIZE = 256
SETTLE_SUBSTEPS = 120


class XArmEnv(gym.Env):
    """xArm7 table-top task seen by one RGB camera; see ``sgqn_robot.envs`` for the options.

    Actions in [-1, 1] move the end effector by ``0.05 m * action`` per step inside a workspace
    box; values outside [-1, 1] are clipped (documented behaviour), NaN/Inf raise ValueError.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array"],
        "render_fps": int(round(1 / (scene.TIMESTEP * scene.SUBSTEPS))),
    }
    TASK: ClassVar[str]
    DEFAULT_ACTION_SPACE: ClassVar[str]
    # Workspace of the point between the fingertips (min xyz, max xyz), and its start pose.
    WORKSPACE: ClassVar[tuple[tuple[float, float, float], tuple[float, float, float]]]
    START: ClassVar[tuple[float, float, float]]
    START_NOISE: ClassVar[float] = 0.03

    def __init__(
        self,
        split: str = "train",
        image_size: int = 84,
        frame_stack: int = 1,
        action_space: str | None = None,
        camera: str = "third_person",
        textures: str | os.PathLike | list | dict | None = None,
        render_mode: str | None = None,
        meshes: str = "decimated",
    ) -> None:
        splits.check_split(split)
        action_space = action_space or self.DEFAULT_ACTION_SPACE
        if action_space not in ACTION_SPACES:
            raise ValueError(f"unknown action_space {action_space!r}; valid: {list(ACTION_SPACES)}")
        if camera not in scene.CAMERAS:
            raise ValueError(f"unknown camera {camera!r}; valid: {list(scene.CAMERAS)}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"unknown render_mode {render_mode!r}; valid: None, 'rgb_array'")
        if not (isinstance(image_size, int | np.integer) and 16 <= image_size <= 512):
            raise ValueError(f"image_size={image_size!r}; valid: an int in [16, 512]")
        if not (isinstance(frame_stack, int | np.integer) and frame_stack >= 1):
            raise ValueError(f"frame_stack={frame_stack!r}; valid: an int >= 1")
        user = user_textures(textures)  # loads (and checks) every file now

        self.split, self.camera, self.render_mode = split, camera, render_mode
        self.image_size, self.frame_stack = int(image_size), int(frame_stack)
        self.action_dims = ACTION_SPACES[action_space]
        self.control_period = scene.TIMESTEP * scene.SUBSTEPS

        self.model = scene.build_model(self.TASK, meshes)
        self.data = mujoco.MjData(self.model)
        self.appearance = splits.Appearance(self.model, split, user)
        self._cam_id = self.model.camera(camera).id
        self._grip_site = self.model.site("grip").id
        self._home_qpos = _home_qpos(self.TASK, meshes, self.START)
        self._n_arm = len(ARM_GUESS)
        self._lo, self._hi = (np.array(v) for v in self.WORKSPACE)

        self.observation_space = gym.spaces.Box(
            0, 255, (3 * self.frame_stack, self.image_size, self.image_size), np.uint8
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.action_dims,), np.float32)
        self._renderer = _make_renderer(self.model, self.image_size)
        self._human: mujoco.Renderer | None = None
        self._frames: deque[np.ndarray] = deque(maxlen=self.frame_stack)
        self._steps = 0
        if not _LIVE:  # registered after mujoco's EGL exit hook, so it runs before it (LIFO)
            atexit.unregister(_close_live_envs)
            atexit.register(_close_live_envs)
        _LIVE.add(self)

    # ---------------------------------------------------------------- task hooks

    def _sample_layout(self, rng: np.random.Generator) -> None:
        """Place the task's objects for a new episode (mocap bodies in ``self.data``)."""
        raise NotImplementedError

    def _evaluate(self, action: np.ndarray) -> tuple[float, dict[str, Any]]:
        """Reward for the step just taken and the task's info entries (incl. ``is_success``)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        d.qpos[:] = self._home_qpos
        start = np.array(self.START) + self.np_random.uniform(-1, 1, 3) * self.START_NOISE
        if self.action_dims == 2:
            start[2] = self.START[2]
        self._set_grip_target(np.clip(start, self._lo, self._hi))
        self._sample_layout(self.np_random)  # layout first: same seed, same layout on every split
        changed = self.appearance.randomize(d, self.np_random)
        mujoco.mj_step(m, d, nstep=SETTLE_SUBSTEPS)  # let the arm follow to the start pose
        d.qpos[self._n_arm :] = self._home_qpos[self._n_arm :]  # peg (if any) hangs still
        d.qvel[:] = 0
        mujoco.mj_forward(m, d)
        self._upload(changed)
        self._steps = 0
        frame = self._render_obs()
        self._frames.clear()
        self._frames.extend([frame] * self.frame_stack)
        _, info = self._evaluate(np.zeros(self.action_dims))
        return self._obs(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (self.action_dims,):
            raise ValueError(f"action has shape {np.shape(action)}, expected ({self.action_dims},)")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action contains NaN or Inf: {action!r}")
        a = np.clip(a, -1.0, 1.0)
        delta = np.zeros(3)
        delta[: self.action_dims] = ACTION_SCALE * a
        self._set_grip_target(np.clip(self._grip_target + delta, self._lo, self._hi))
        mujoco.mj_step(self.model, self.data, nstep=scene.SUBSTEPS)
        self._steps += 1
        self._frames.append(self._render_obs())
        reward, info = self._evaluate(a)
        truncated = self._steps >= EPISODE_STEPS
        return self._obs(), float(reward), False, truncated, info

    def render(self) -> np.ndarray | None:
        """A larger (256 px) HWC frame from the same camera, for videos and people."""
        if self.render_mode != "rgb_array":
            return None
        if self._human is None:
            self._human = _make_renderer(self.model, HUMAN_SIZE)
        return self._draw(self._human)

    def close(self) -> None:
        for r in (self._human, self._renderer):
            if r is not None:
                r.close()
        self._human = self._renderer = None

    # ---------------------------------------------------------------- helpers

    @property
    def eef_pos(self) -> np.ndarray:
        """Point between the fingertips (world xyz)."""
        return self.data.site_xpos[self._grip_site].copy()

    def _set_grip_target(self, grip: np.ndarray) -> None:
        """Move the mocap so that the fingertip point goes to ``grip`` (hand points down)."""
        self._grip_target = grip
        self.data.mocap_pos[0] = grip + np.array([0.0, 0.0, scene.GRIP_OFFSET])

    def _obs(self) -> np.ndarray:
        return np.concatenate(self._frames, axis=0)

    def _draw(self, renderer: mujoco.Renderer) -> np.ndarray:
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = self.appearance.shadows
        renderer.update_scene(self.data, self._cam_id)
        return renderer.render()

    def _render_obs(self) -> np.ndarray:
        if self._renderer is None:
            raise RuntimeError("env is closed")
        return np.ascontiguousarray(self._draw(self._renderer).transpose(2, 0, 1))

    def _upload(self, tex_ids: list[int]) -> None:
        """Push rewritten texture pixels to every live GL context."""
        for r in (self._renderer, self._human):
            if r is None or not tex_ids:
                continue
            r._gl_context.make_current()  # noqa: SLF001 - mujoco exposes no public handle
            for tid in tex_ids:
                mujoco.mjr_uploadTexture(self.model, r._mjr_context, tid)  # noqa: SLF001


# Renderers still open at interpreter exit would be freed after EGL is torn down (noisy errors).
_LIVE: weakref.WeakSet[XArmEnv] = weakref.WeakSet()


def _close_live_envs() -> None:
    for env in list(_LIVE):
        env.close()


def _make_renderer(model: mujoco.MjModel, size: int) -> mujoco.Renderer:
    r = mujoco.Renderer(model, size, size)
    r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
    r.scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = 0
    return r


_HOME_CACHE: dict[tuple[str, str, tuple[float, ...]], np.ndarray] = {}
ARM_GUESS = (0.0, -0.2, 0.0, 0.6, 0.0, 0.8, 0.0)


def _home_qpos(task: str, meshes: str, start: tuple[float, float, float]) -> np.ndarray:
    """Arm joint angles with the fingertips at ``start``: solved once per process by letting
    the welded arm settle from an elbow-up guess, then reused by every reset."""
    key = (task, meshes, tuple(start))
    if key not in _HOME_CACHE:
        m = scene.build_model(task, meshes)
        d = mujoco.MjData(m)
        d.qpos[: len(ARM_GUESS)] = ARM_GUESS
        d.mocap_pos[0] = np.array(start) + [0.0, 0.0, scene.GRIP_OFFSET]
        mujoco.mj_step(m, d, nstep=1500)
        _HOME_CACHE[key] = d.qpos.copy()
    return _HOME_CACHE[key]
