"""Visual splits: the plain training scene, the paper's five fixed test scenes, and six seeded
per-episode randomizations. Everything here edits one env's private ``MjModel`` in place
(material colours, lights, cameras, texture pixels, distractor poses) - no recompilation, so a
randomized episode costs ~1-3 ms.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import mujoco
import numpy as np

from . import scene, textures

FIXED_TEST_SCENES: dict[str, tuple[tuple[float, float, float], str]] = {
    # split: (colour of sky/wall, floor and pedestal; table texture) - docs/ALGORITHM.md §4
    "test1": ((1.0, 0.5, 1.0), "wood-tiles.png"),  # pink, patterned table top
    "test2": ((0.5, 0.9, 0.8), "carpet:dark"),  # teal, black carpet
    "test3": ((0.5, 0.1, 0.1), "concrete"),  # dark red, concrete
    "test4": ((0.1, 0.5, 0.8), "light-wood.png"),  # blue, light wood
    "test5": ((0.3, 0.2, 0.0), "sponge"),  # brown, sponge
}
RANDOMIZED_SPLITS = ("color_easy", "color_hard", "texture", "lighting", "camera", "distractors")
SPLITS: tuple[str, ...] = ("train", *FIXED_TEST_SCENES, *RANDOMIZED_SPLITS)

# Materials the fixed test scenes recolour. The robot and the task objects (target, box, peg)
# keep their look, as in the paper's scene files, where the arm, gripper and finger textures stay
# white in every test scene (docs/ALGORITHM.md §4); a recoloured robot is `color_hard`'s job.
RECOLOURED = ("floor", "wall", "pedestal")
# Distractors go on the table's sides, away from the reachable task area and the camera ray.
DISTRACTOR_X = (-0.35, 0.15)
DISTRACTOR_Y = (0.3, 0.42)


def check_split(split: str) -> str:
    """``split`` itself, or a ValueError that names it and lists the valid ones."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return split


def _fixed_table_texture(name: str) -> np.ndarray:
    if name.endswith(".png"):
        return textures.load_image(textures.TEXTURE_DIR / name)
    family, _, arg = name.partition(":")
    rng = np.random.default_rng(1234)  # the fixed scenes never change
    if family == "carpet":
        return textures.carpet(rng, dark=arg == "dark")
    return textures.PROCEDURAL[family](rng)


@dataclass
class Appearance:
    """The visual state of one env's model: the split's base look plus per-episode draws."""

    model: mujoco.MjModel
    split: str
    user_textures: dict[str, np.ndarray] = field(default_factory=dict)
    shadows: bool = False

    def __post_init__(self) -> None:
        m = self.model
        check_split(self.split)
        self.mat = {n: m.material(f"mat_{n}").id for n in scene.COLOUR_MATERIALS}
        self.task_mat = {n: m.material(f"mat_{n}").id for n in scene.TASK_MATERIALS}
        self.tex = {s: m.texture(f"tex_{s}").id for s in scene.TEXTURE_SLOTS}
        self.light = m.light("main").id
        self.distractor_mocap = [
            m.body_mocapid[m.body(f"distractor{i}").id] for i in range(scene.N_DISTRACTORS)
        ]
        self.distractor_geom = [m.geom(f"distractor{i}").id for i in range(scene.N_DISTRACTORS)]
        self.distractor_mat = [
            m.material(f"mat_distractor{i}").id for i in range(scene.N_DISTRACTORS)
        ]
        self._set_base_look()
        self._defaults = {
            "mat_rgba": m.mat_rgba.copy(),
            "light": [
                getattr(m, f).copy()
                for f in ("light_dir", "light_diffuse", "light_ambient", "light_castshadow")
            ],
            "headlight": (m.vis.headlight.ambient.copy(), m.vis.headlight.diffuse.copy()),
            "cam": (m.cam_pos.copy(), m.cam_quat.copy(), m.cam_fovy.copy()),
            "geom_size": m.geom_size.copy(),
        }

    @property
    def randomized(self) -> bool:
        return self.split in RANDOMIZED_SPLITS

    def _write_texture(self, slot: str, rgb: np.ndarray) -> int:
        m, tid = self.model, self.tex[slot]
        adr, h, w, c = m.tex_adr[tid], m.tex_height[tid], m.tex_width[tid], m.tex_nchannel[tid]
        if rgb.shape != (h, w, 3):
            raise ValueError(f"texture for {slot} has shape {rgb.shape}, expected {(h, w, 3)}")
        m.tex_data[adr : adr + h * w * c] = rgb.reshape(-1) if c == 3 else _rgba(rgb).reshape(-1)
        return tid

    def _set_base_look(self) -> None:
        """The split's fixed look, written once at construction (before renderers exist)."""
        m = self.model
        if self.split in FIXED_TEST_SCENES:
            colour, table = FIXED_TEST_SCENES[self.split]
            for name in RECOLOURED:
                m.mat_rgba[self.mat[name], :3] = colour
            self._write_texture("table", _fixed_table_texture(table))
        for slot, rgb in self.user_textures.items():
            self._write_texture(slot, rgb)
            m.mat_rgba[self.mat[slot], :3] = 1.0

    def _restore(self) -> None:
        m, d = self.model, self._defaults
        m.mat_rgba[:] = d["mat_rgba"]
        for f, v in zip(
            ("light_dir", "light_diffuse", "light_ambient", "light_castshadow"),
            d["light"],
            strict=True,
        ):
            getattr(m, f)[:] = v
        m.vis.headlight.ambient[:], m.vis.headlight.diffuse[:] = d["headlight"]
        m.cam_pos[:], m.cam_quat[:], m.cam_fovy[:] = d["cam"]
        m.geom_size[:] = d["geom_size"]
        self.shadows = False

    def randomize(self, data: mujoco.MjData, rng: np.random.Generator) -> list[int]:
        """Draw this episode's look from ``rng``; returns texture ids that need re-uploading."""
        if not self.randomized:
            return []
        self._restore()
        return getattr(self, f"_draw_{self.split}")(data, rng) or []

    # ---------------------------------------------------------------- per-split draws

    def _draw_color_easy(self, data: mujoco.MjData, rng: np.random.Generator) -> None:
        for name in scene.COLOUR_MATERIALS:
            rgba = self.model.mat_rgba[self.mat[name]]
            rgba[:3] = np.clip(rgba[:3] + rng.uniform(-0.2, 0.2, 3), 0, 1)

    def _draw_color_hard(self, data: mujoco.MjData, rng: np.random.Generator) -> None:
        """Every scene colour; the task objects get a random *saturated* colour so that the
        target/box/peg stay visible against whatever the table became."""
        for name in scene.COLOUR_MATERIALS:
            self.model.mat_rgba[self.mat[name], :3] = rng.uniform(0, 1, 3)
        for mid in self.task_mat.values():
            hue, sat, val = rng.uniform(0, 1), rng.uniform(0.6, 1), rng.uniform(0.6, 1)
            self.model.mat_rgba[mid, :3] = colorsys.hsv_to_rgb(hue, sat, val)

    def _draw_texture(self, data: mujoco.MjData, rng: np.random.Generator) -> list[int]:
        changed = []
        for slot in scene.TEXTURE_SLOTS:
            if slot in self.user_textures:
                continue
            changed.append(self._write_texture(slot, textures.random_test_texture(rng)))
            self.model.mat_rgba[self.mat[slot], :3] = 1.0
        return changed

    def _draw_lighting(self, data: mujoco.MjData, rng: np.random.Generator) -> None:
        m, li = self.model, self.light
        tilt, azimuth = rng.uniform(0, np.radians(50)), rng.uniform(0, 2 * np.pi)
        m.light_dir[li] = [
            np.sin(tilt) * np.cos(azimuth),
            np.sin(tilt) * np.sin(azimuth),
            -np.cos(tilt),
        ]
        tint = 1.0 - rng.uniform(0, 0.35, 3)
        m.light_diffuse[li] = rng.uniform(0.25, 0.9) * tint
        m.light_ambient[li] = rng.uniform(0.0, 0.25) * tint
        m.vis.headlight.diffuse[:] = rng.uniform(0.1, 0.45)
        m.vis.headlight.ambient[:] = rng.uniform(0.15, 0.45)
        self.shadows = bool(rng.random() < 0.5)
        m.light_castshadow[li] = self.shadows

    def _draw_camera(self, data: mujoco.MjData, rng: np.random.Generator) -> None:
        m = self.model
        for cid in range(m.ncam):
            m.cam_pos[cid] += rng.uniform(-0.03, 0.03, 3)
            axis = rng.normal(size=3)
            angle = np.radians(rng.uniform(0, 3.0))
            dq = np.concatenate(
                [[np.cos(angle / 2)], np.sin(angle / 2) * axis / np.linalg.norm(axis)]
            )
            q = np.empty(4)
            mujoco.mju_mulQuat(q, dq, m.cam_quat[cid])
            m.cam_quat[cid] = q
            m.cam_fovy[cid] += rng.uniform(-3.0, 3.0)

    def _draw_distractors(self, data: mujoco.MjData, rng: np.random.Generator) -> None:
        m = self.model
        chosen = rng.choice(scene.N_DISTRACTORS, size=int(rng.integers(2, 5)), replace=False)
        for i in chosen:
            gid = self.distractor_geom[i]
            half = rng.uniform(0.015, 0.04)
            m.geom_size[gid] = half
            side = rng.choice([-1.0, 1.0])
            xy = [rng.uniform(*DISTRACTOR_X), side * rng.uniform(*DISTRACTOR_Y)]
            data.mocap_pos[self.distractor_mocap[i]] = [*xy, half]
            m.mat_rgba[self.distractor_mat[i], :3] = rng.uniform(0, 1, 3)


def _rgba(rgb: np.ndarray) -> np.ndarray:
    return np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=-1)
