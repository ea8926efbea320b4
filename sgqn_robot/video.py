"""Evaluation episodes as one animated GIF: the first episode of every split, side by side, in step.

A table says that a policy fails on `test3`; the GIF shows how (it stalls, drifts, or goes for a
distractor). Each tile is the env's 256 px camera frame scaled down, captioned with the split and
the return so far, and framed green on the steps where the task counts as solved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sgqn_robot.atomic import replaced_atomically
from sgqn_robot.config import require_ints

GREEN = (40, 200, 60)


@dataclass(frozen=True)
class Tile:
    """One step of one split's episode: the rendered frame (HWC uint8) and where it stands."""

    frame: np.ndarray
    episode_return: float
    success: bool


def check_video_size(value: object) -> None:
    """ConfigError unless `video_size` is 0 (no video) or an integer >= 32 (pixels per tile),
    checked before an evaluation renders anything."""
    if value != 0:
        require_ints({"video_size": value}, ["video_size"], minimum=32)


def _draw_tile(split: str, tile: Tile, size: int) -> Image.Image:
    img = Image.fromarray(tile.frame).resize((size, size), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(img)
    for text, y in ((split, 2), (f"return {tile.episode_return:.1f}", size - 13)):
        draw.rectangle((0, y - 1, 6 * len(text) + 5, y + 11), fill=(0, 0, 0))
        draw.text((3, y), text, fill=(255, 255, 255))
    if tile.success:
        draw.rectangle((0, 0, size - 1, size - 1), outline=GREEN, width=3)
    return img


def write_gif(
    path: str | Path,
    episodes: Mapping[str, Sequence[Tile]],
    size: int = 128,
    frame_ms: int = 100,
    hold_ms: int = 1500,
) -> Path:
    """Write the episodes as a near-square grid GIF at `path` (atomically) and return it.
    Episodes may differ in length; a finished one keeps showing its last step. `frame_ms` of 100
    plays a 25 Hz episode at 0.4x speed, slow enough to follow; the last step is held `hold_ms`."""
    if not episodes or not all(episodes.values()):
        raise ValueError("write_gif: no episode frames to draw (evaluate at least one episode)")
    if size < 32:
        raise ValueError(f"video size {size}: must be at least 32 px, e.g. 128")
    splits = list(episodes)
    columns = math.ceil(math.sqrt(len(splits)))  # 6 splits: 3 x 2, 12: 4 x 3
    rows = -(-len(splits) // columns)
    steps = max(len(e) for e in episodes.values())
    frames = []
    for t in range(steps):
        canvas = Image.new("RGB", (columns * size, rows * size))
        for i, split in enumerate(splits):
            tile = episodes[split][min(t, len(episodes[split]) - 1)]
            canvas.paste(
                _draw_tile(split, tile, size), ((i % columns) * size, (i // columns) * size)
            )
        frames.append(canvas)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(path, suffix=".gif") as tmp:
        frames[0].save(
            tmp,
            save_all=True,
            append_images=frames[1:],
            duration=[frame_ms] * (steps - 1) + [hold_ms],
            loop=0,
            optimize=True,
        )
    return path
