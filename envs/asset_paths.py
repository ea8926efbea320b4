"""Where the scene's meshes and textures live, and how the shipped copies were built.

The envs ship *decimated* xArm7 meshes and 128 px copies of robosuite's texture PNGs in
``envs/assets/`` (~1.4 MB together). Why ship rather than build a cache on first use: the env
then needs only ``mujoco`` at run time (no slow robosuite import, no writable cache dir, same
bytes on every machine, so rendered pixels are reproducible across installs). Rebuild them with
``python -m sgqn_robot.envs.build_assets`` (needs robosuite + fast-simplification + pillow).
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np

from sgqn_robot.atomic import replaced_atomically

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
MESH_DIR = ASSETS_DIR / "meshes"
TEXTURE_DIR = ASSETS_DIR / "textures"

ARM_MESHES = ("link_base", "link1", "link2", "link3", "link4", "link5", "link6", "link7")
GRIPPER_MESHES = (
    "base_link",
    "left_outer_knuckle",
    "left_finger",
    "left_inner_knuckle",
    "right_outer_knuckle",
    "right_finger",
    "right_inner_knuckle",
)
# Fraction of faces kept per mesh (~91k faces -> ~13k; the decimator overshoots small meshes). Rendering on the software rasterizer
# costs per vertex, so this is the single biggest speed lever after shadows/multisampling.
KEEP_FRACTION = 0.1
MIN_FACES = 300
# Low aggressiveness: slower to build (once) but keeps cylinder caps flat; the default (7)
# collapses link1's top into a spike.
AGGRESSIVENESS = 2.0
TEXTURE_SIZE = 128


def robosuite_assets_dir() -> Path:
    """robosuite's asset folder, found without importing robosuite (its import is slow/noisy)."""
    spec = importlib.util.find_spec("robosuite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("robosuite is not installed; it is needed only to (re)build assets")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "assets"


def full_mesh_files() -> dict[str, Path]:
    """robosuite's original (full-resolution) xArm7 + gripper STL files, by mesh name."""
    root = robosuite_assets_dir()
    files = {n: root / "robots" / "xarm7" / "meshes" / f"{n}.stl" for n in ARM_MESHES}
    files.update(
        {n: root / "grippers" / "meshes" / "xarm7_gripper" / f"{n}.stl" for n in GRIPPER_MESHES}
    )
    return files


def decimated_mesh_files() -> dict[str, Path]:
    """The shipped decimated meshes, by mesh name."""
    return {n: MESH_DIR / f"{n}.stl" for n in ARM_MESHES + GRIPPER_MESHES}


def _read_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and faces of an STL, via mujoco's own loader (it also merges duplicate vertices)."""
    import mujoco

    spec = mujoco.MjSpec()
    mesh = spec.add_mesh()
    mesh.file = str(path)
    model = spec.compile()
    adr, n = model.mesh_vertadr[0], model.mesh_vertnum[0]
    fadr, nf = model.mesh_faceadr[0], model.mesh_facenum[0]
    # mujoco recentres meshes on their centre of mass; undo it so geoms stay where the robot
    # model put them.
    verts = model.mesh_vert[adr : adr + n].astype(np.float64)
    quat, pos = model.mesh_quat[0], model.mesh_pos[0]
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, quat)
    verts = verts @ rot.reshape(3, 3).T + pos
    return verts, model.mesh_face[fadr : fadr + nf].astype(np.int64)


def write_binary_stl(path: Path, verts: np.ndarray, faces: np.ndarray) -> None:
    """Write a binary STL atomically (temp file + rename), so readers never see half a file."""
    tri = verts[faces].astype(np.float32)  # (F, 3, 3)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    rec = np.zeros(len(faces), dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
    rec["n"], rec["v"] = normals, tri
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(path) as tmp, open(tmp, "wb") as f:
        f.write(b"sgqn_robot decimated mesh".ljust(80, b" "))
        f.write(struct.pack("<I", len(faces)))
        f.write(rec.tobytes())


def build_meshes(out_dir: Path = MESH_DIR) -> dict[str, tuple[int, int]]:
    """Decimate robosuite's xArm7 meshes with fast-simplification; returns faces before/after."""
    import fast_simplification

    stats = {}
    for name, src in full_mesh_files().items():
        verts, faces = _read_mesh(src)
        target = max(MIN_FACES, int(len(faces) * KEEP_FRACTION))
        if target < len(faces):
            verts2, faces2 = fast_simplification.simplify(
                verts, faces, target_reduction=1.0 - target / len(faces), agg=AGGRESSIVENESS
            )
        else:
            verts2, faces2 = verts, faces
        write_binary_stl(out_dir / f"{name}.stl", np.asarray(verts2), np.asarray(faces2))
        stats[name] = (len(faces), len(faces2))
    return stats


def build_textures(out_dir: Path = TEXTURE_DIR, size: int = TEXTURE_SIZE) -> list[Path]:
    """Resize robosuite's texture PNGs to ``size`` px RGB copies (small and quick to upload)."""
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for src in sorted((robosuite_assets_dir() / "textures").glob("*.png")):
        img = Image.open(src).convert("RGB").resize((size, size), Image.LANCZOS)
        dst = out_dir / src.name
        with replaced_atomically(dst, suffix=".png") as tmp:
            img.save(tmp, optimize=True)
        written.append(dst)
    return written
