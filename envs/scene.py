"""MJCF for the xArm7 table scene, built as a string and compiled once per process.

Layout (metres, table top at z = 0, robot facing +x):
- robot base on a box pedestal at ``ROBOT_BASE``, table from x -0.39 to 0.45;
- the hand (gripper base) is welded to a mocap body, so the arm's joints follow it with damping
  and gravity compensation - a kinematic arm that still looks like an xArm7;
- everything the splits recolour uses a named material (``mat_*``), and the table, floor and
  wall use fixed-size 2-D textures (``tex_*``) whose pixels are rewritten at run time.
Only the peg, the box and the table collide; arm and gripper are visual-only, which keeps each
physics substep cheap.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import mujoco
import numpy as np

from . import asset_paths

TIMESTEP = 0.002
SUBSTEPS = 20
ROBOT_BASE = (-0.5, 0.0, 0.0)
GRIP_OFFSET = 0.155  # gripper base -> point between the fingertips, along the gripper's z axis
TABLE_X = (-0.39, 0.45)  # back edge just in front of the pedestal
TABLE_HALF_Y = 0.55
TABLE_HEIGHT = 0.75
HAND_DOWN_QUAT = (0.0, 1.0, 0.0, 0.0)  # gripper z axis pointing at the table

# Box for peg-in-box: inner half-width, wall thickness, wall height.
BOX_INNER = 0.06
BOX_WALL = 0.008
BOX_HEIGHT = 0.07
CHAIN_LINKS = 2
CHAIN_LINK_LEN = 0.035
PEG_HALF_LEN = 0.035
PEG_RADIUS = 0.014

N_DISTRACTORS = 6
DISTRACTOR_TYPES = ("box", "sphere", "cylinder")

CAMERAS = {
    # name: (position, point looked at) - third_person is the paper-style front-side view.
    "third_person": ((0.45, 0.8, 0.75), (-0.24, 0.0, 0.13)),
    "front": ((0.75, 0.0, 0.85), (-0.3, 0.0, 0.18)),
}

# Which textured surfaces exist (slot name -> texture/material suffix).
TEXTURE_SLOTS = ("table", "floor", "wall")
COLOUR_MATERIALS = ("table", "floor", "wall", "pedestal", "robot", "robot_dark")
TASK_MATERIALS = ("target", "box", "peg")


def _f(v: tuple[float, ...] | list[float] | np.ndarray) -> str:
    return " ".join(f"{x:.6g}" for x in v)


def look_at_xyaxes(pos: tuple[float, ...], target: tuple[float, ...]) -> np.ndarray:
    """MJCF ``xyaxes`` of a camera at ``pos`` looking at ``target`` with the world z axis up."""
    fwd = np.asarray(target, float) - np.asarray(pos, float)
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    return np.concatenate([right, up])


def _arm_xml(mesh_files: dict[str, Path]) -> tuple[str, str]:
    """Asset and body XML for the xArm7 and its gripper (joint frames from robosuite's model)."""
    mesh_assets = "\n".join(f'<mesh name="{n}" file="{p}"/>' for n, p in mesh_files.items())

    def link(name: str, mat: str = "mat_robot") -> str:
        return f'<geom class="visual" mesh="{name}" material="{mat}"/>'

    def joint(name: str, rng: str, damping: float = 2.0) -> str:
        return (
            f'<joint name="{name}" axis="0 0 1" range="{rng}" damping="{damping}" armature="0.05"/>'
        )

    dark = "mat_robot_dark"
    gripper = f"""
      <body name="gripper" pos="0 0 0">
        <inertial pos="0 0 0.05" mass="0.5" diaginertia="0.0005 0.0005 0.0005"/>
        {link("base_link")}
        <body pos="0 0.035 0.059098">{link("left_outer_knuckle", dark)}
          <body pos="0 0.035465 0.042039">{link("left_finger", dark)}</body></body>
        <body pos="0 0.02 0.074098">{link("left_inner_knuckle", dark)}</body>
        <body pos="0 -0.035 0.059098">{link("right_outer_knuckle", dark)}
          <body pos="0 -0.035465 0.042039">{link("right_finger", dark)}</body></body>
        <body pos="0 -0.02 0.074098">{link("right_inner_knuckle", dark)}</body>
        <site name="grip" pos="0 0 {GRIP_OFFSET}" size="0.005" rgba="1 0 0 0"/>
        CHAIN
      </body>"""
    inertial = '<inertial pos="0 0 0" mass="1" diaginertia="0.005 0.005 0.005"/>'
    body = f"""
    <body name="arm_base" pos="{_f(ROBOT_BASE)}" gravcomp="1">
      {link("link_base")}
      <body name="link1" pos="0 0 0.267" gravcomp="1">{inertial}{joint("j1", "-6.28 6.28")}{link("link1")}
       <body name="link2" quat="1 -1 0 0" gravcomp="1">{inertial}{joint("j2", "-2.059 2.0944")}{link("link2")}
        <body name="link3" pos="0 -0.293 0" quat="1 1 0 0" gravcomp="1">{inertial}{joint("j3", "-6.28 6.28")}{link("link3")}
         <body name="link4" pos="0.0525 0 0" quat="1 1 0 0" gravcomp="1">{inertial}{joint("j4", "-0.19198 3.927")}{link("link4")}
          <body name="link5" pos="0.0775 -0.3425 0" quat="1 1 0 0" gravcomp="1">{inertial}{joint("j5", "-6.28 6.28")}{link("link5")}
           <body name="link6" quat="1 1 0 0" gravcomp="1">{inertial}{joint("j6", "-1.69297 3.14159", 1.0)}{link("link6")}
            <body name="link7" pos="0.076 0.097 0" quat="1 -1 0 0" gravcomp="1">{inertial}{joint("j7", "-6.28 6.28", 1.0)}{link("link7")}
             <body name="right_hand" pos="0 0 -0.027" quat="0 0 0 1" gravcomp="1">
              {gripper}
             </body>
            </body>
           </body>
          </body>
         </body>
        </body>
       </body>
      </body>
    </body>"""
    return mesh_assets, body


def _chain_xml() -> str:
    """A peg hanging from the fingertips on a short string of capsules with damped ball joints."""
    xml = '<body name="peg" pos="0 0 {z}">' + (
        '<joint name="peg_ball" type="ball" damping="0.01"/>'
        f'<geom name="peg" type="capsule" fromto="0 0 0 0 0 {2 * PEG_HALF_LEN}" '
        f'size="{PEG_RADIUS}" material="mat_peg" mass="0.05" contype="1" conaffinity="1" '
        'condim="3" friction="0.5"/><site name="peg_center" '
        f'pos="0 0 {PEG_HALF_LEN + PEG_RADIUS}" size="0.004" rgba="0 0 0 0"/></body>'
    )
    xml = xml.format(z=CHAIN_LINK_LEN)
    for i in reversed(range(CHAIN_LINKS)):
        z = GRIP_OFFSET if i == 0 else CHAIN_LINK_LEN
        xml = (
            f'<body name="chain{i}" pos="0 0 {z}">'
            f'<joint name="chain{i}_ball" type="ball" damping="0.01"/>'
            f'<geom type="capsule" fromto="0 0 0 0 0 {CHAIN_LINK_LEN}" size="0.003" '
            f'material="mat_robot_dark" mass="0.01" contype="0" conaffinity="0"/>{xml}</body>'
        )
    return xml


def _box_xml() -> str:
    """An open-top box on a mocap body (static for physics, movable per episode)."""
    w, t, h = BOX_INNER, BOX_WALL, BOX_HEIGHT
    walls = [
        (0, 0, t / 2, w + t, w + t, t / 2),
        (w + t / 2, 0, h / 2, t / 2, w + t, h / 2),
        (-w - t / 2, 0, h / 2, t / 2, w + t, h / 2),
        (0, w + t / 2, h / 2, w + t, t / 2, h / 2),
        (0, -w - t / 2, h / 2, w + t, t / 2, h / 2),
    ]
    geoms = "".join(
        f'<geom type="box" pos="{_f(g[:3])}" size="{_f(g[3:])}" material="mat_box"/>' for g in walls
    )
    return f'<body name="box" mocap="true" pos="0 0 -2">{geoms}</body>'


def _distractor_xml() -> str:
    parts = []
    for i in range(N_DISTRACTORS):
        kind = DISTRACTOR_TYPES[i % len(DISTRACTOR_TYPES)]
        size = {"box": "0.03 0.03 0.03", "sphere": "0.03", "cylinder": "0.03 0.03"}[kind]
        parts.append(
            f'<body name="distractor{i}" mocap="true" pos="0 0 -0.5">'
            f'<geom name="distractor{i}" type="{kind}" size="{size}" class="visual" '
            f'material="mat_distractor{i}"/></body>'
        )
    return "".join(parts)


def scene_xml(task: str, mesh_files: dict[str, Path]) -> str:
    """The full MJCF string for ``task`` ("reach" or "peg_in_box")."""
    mesh_assets, arm = _arm_xml(mesh_files)
    arm = arm.replace("CHAIN", _chain_xml() if task == "peg_in_box" else "")
    tex = "".join(
        f'<texture name="tex_{s}" type="2d" builtin="flat" width="{asset_paths.TEXTURE_SIZE}" '
        f'height="{asset_paths.TEXTURE_SIZE}" rgb1="1 1 1" rgb2="1 1 1"/>'
        for s in TEXTURE_SLOTS
    )
    repeat = {"table": "2 2", "floor": "6 6", "wall": "4 2"}
    mats = "".join(
        f'<material name="mat_{s}" texture="tex_{s}" texrepeat="{repeat[s]}" rgba="1 1 1 1" '
        'specular="0.1" shininess="0.1"/>'
        for s in TEXTURE_SLOTS
    )
    mats += (
        '<material name="mat_pedestal" rgba="0.85 0.85 0.85 1" specular="0.1"/>'
        '<material name="mat_robot" rgba="0.95 0.95 0.95 1" specular="0.3" shininess="0.4"/>'
        '<material name="mat_robot_dark" rgba="0.15 0.15 0.15 1" specular="0.3"/>'
        '<material name="mat_target" rgba="0.9 0.1 0.1 1" specular="0"/>'
        '<material name="mat_box" rgba="0.2 0.35 0.8 1" specular="0.1"/>'
        '<material name="mat_peg" rgba="0.95 0.55 0.05 1" specular="0.2"/>'
    )
    mats += "".join(
        f'<material name="mat_distractor{i}" rgba="0.5 0.5 0.5 1"/>' for i in range(N_DISTRACTORS)
    )
    cams = "".join(
        f'<camera name="{n}" pos="{_f(p)}" xyaxes="{_f(look_at_xyaxes(p, t))}" fovy="45"/>'
        for n, (p, t) in CAMERAS.items()
    )
    tx, tcx, ty = (TABLE_X[1] - TABLE_X[0]) / 2, (TABLE_X[1] + TABLE_X[0]) / 2, TABLE_HALF_Y
    bx, by, bz = ROBOT_BASE
    task_bodies = (
        '<body name="target" mocap="true" pos="0 0 -2"><geom type="cylinder" size="0.05 0.0015" '
        'class="visual" material="mat_target"/></body>'
        if task == "reach"
        else _box_xml()
    )
    return f"""
<mujoco model="sgqn_xarm7_{task}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{TIMESTEP}" integrator="implicitfast"/>
  <visual>
    <quality offsamples="0" shadowsize="1024"/>
    <global offwidth="512" offheight="512"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.3 0.3 0.3" specular="0.05 0.05 0.05"/>
    <map znear="0.05" zfar="20"/>
  </visual>
  <default>
    <default class="visual"><geom type="mesh" contype="0" conaffinity="0" group="1"/></default>
    <geom contype="0" conaffinity="1"/>
  </default>
  <asset>{tex}{mats}{mesh_assets}</asset>
  <worldbody>
    <light name="main" pos="0.3 -0.3 2.0" dir="-0.15 0.15 -1" directional="true"
      diffuse="0.6 0.6 0.6" specular="0.1 0.1 0.1" ambient="0.1 0.1 0.1" castshadow="false"/>
    {cams}
    <geom name="floor" type="plane" pos="0 0 {-TABLE_HEIGHT}" size="4 4 0.1" material="mat_floor"
      contype="0" conaffinity="0"/>
    <geom name="wall" type="box" pos="-1.3 0 0.4" size="0.02 2.5 1.6" material="mat_wall"
      contype="0" conaffinity="0"/>
    <geom name="wall_side" type="box" pos="0 -1.8 0.4" size="2.5 0.02 1.6" material="mat_wall"
      contype="0" conaffinity="0"/>
    <geom name="table" type="box" pos="{tcx} 0 {-TABLE_HEIGHT / 2}" size="{tx} {ty} {TABLE_HEIGHT / 2}"
      material="mat_table" contype="1" conaffinity="1"/>
    <geom name="pedestal" type="box" pos="{bx} {by} {(bz - TABLE_HEIGHT) / 2}"
      size="0.11 0.11 {(bz + TABLE_HEIGHT) / 2}" material="mat_pedestal" contype="0" conaffinity="0"/>
    <body name="hand_mocap" mocap="true" pos="-0.25 0 0.4" quat="{_f(HAND_DOWN_QUAT)}"/>
    {task_bodies}
    {_distractor_xml()}
    {arm}
  </worldbody>
  <equality>
    <weld name="hand_weld" body1="hand_mocap" body2="gripper" relpose="0 0 0 1 0 0 0"
      solref="0.008 1" solimp="0.95 0.99 0.001"/>
  </equality>
</mujoco>"""


@functools.lru_cache(maxsize=8)
def _compiled(task: str, meshes: str) -> mujoco.MjModel:
    files = (
        asset_paths.decimated_mesh_files()
        if meshes == "decimated"
        else asset_paths.full_mesh_files()
    )
    return mujoco.MjModel.from_xml_string(scene_xml(task, files))


def build_model(task: str, meshes: str = "decimated") -> mujoco.MjModel:
    """A private copy of the compiled scene (compiled once per process, then copied: ~ms)."""
    if meshes not in ("decimated", "full"):
        raise ValueError(f"meshes={meshes!r}; valid: 'decimated', 'full'")
    return copy.deepcopy(_compiled(task, meshes))
