"""One frame of every split for both tasks, as a single picture (the README shows it).

``python -m sgqn_robot.envs.gallery --out docs/images/splits.png [--size 128] [--seed 0]``

``--out`` has no default: a default path would overwrite the shipped picture when run from the
repository root, or scatter files elsewhere.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import SPLITS, TASKS, make_env


def gallery(size: int = 128, seed: int = 0) -> np.ndarray:
    """HWC uint8 grid: one row per task, one column per split, each tile from ``reset(seed)``."""
    rows = []
    for task in TASKS:
        tiles = []
        for split in SPLITS:
            env = make_env(task, split=split, image_size=size)
            obs, _ = env.reset(seed=seed)
            env.close()
            tiles.append(obs[-3:].transpose(1, 2, 0))
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def save_gallery(out: str | Path, size: int = 128, seed: int = 0) -> Path:
    """Write the grid with split names above the columns and task names on the left."""
    from PIL import Image, ImageDraw

    grid = gallery(size, seed)
    label_h, label_w = 18, 90
    canvas = Image.new("RGB", (grid.shape[1] + label_w, grid.shape[0] + label_h), "white")
    canvas.paste(Image.fromarray(grid), (label_w, label_h))
    draw = ImageDraw.Draw(canvas)
    for i, split in enumerate(SPLITS):
        draw.text((label_w + i * size + 4, 3), split, fill="black")
    for j, task in enumerate(TASKS):
        draw.text((4, label_h + j * size + size // 2 - 6), task, fill="black")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m sgqn_robot.envs.gallery", description=__doc__.splitlines()[0]
    )
    p.add_argument("--out", required=True, help="PNG to write, e.g. docs/images/splits.png")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(save_gallery(args.out, args.size, args.seed))


if __name__ == "__main__":
    main()
