"""Rebuild the shipped assets from robosuite: ``python -m sgqn_robot.envs.build_assets``.

Needs robosuite, fast-simplification and pillow; writes ``envs/assets/meshes/*.stl`` (decimated
xArm7 + gripper) and ``envs/assets/textures/*.png`` (128 px copies), each file atomically.
"""

from __future__ import annotations

import argparse

from .asset_paths import TEXTURE_DIR, build_meshes, build_textures


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    total = [0, 0]
    for name, (before, after) in build_meshes().items():
        print(f"{name:22s} {before:6d} -> {after:5d} faces")
        total[0] += before
        total[1] += after
    print(f"{'total':22s} {total[0]:6d} -> {total[1]:5d} faces")
    print(f"{len(build_textures())} textures -> {TEXTURE_DIR}")


if __name__ == "__main__":
    main()
