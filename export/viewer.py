"""Tick log -> a PNG strip (or one PNG per tick for a video tool), with numpy + zarr only.

Each tile is one logged frame, upscaled by pixel repetition; ticks with a safety event get a red
border, and if the log holds predicted saliency masks a second row shows them over the frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .png import write_png
from .tick_log import open_log


def _tile(frame: np.ndarray, scale: int, flagged: bool) -> np.ndarray:
    img = np.repeat(np.repeat(frame.transpose(1, 2, 0), scale, axis=0), scale, axis=1)
    img = np.pad(img, ((2, 2), (2, 2), (0, 0)))
    if flagged:
        img[:2] = img[-2:] = img[:, :2] = img[:, -2:] = (255, 0, 0)
    return img


def _overlay(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Dimmed frame with the mask in the red channel: where the policy looks."""
    out = frame.astype(np.float32) * 0.4
    out[0] = np.maximum(out[0], mask.astype(np.float32))
    return out.astype(np.uint8)


def log_strip(log: str | Path, out: str | Path, every: int = 5, max_tiles: int = 20,
              scale: int = 2) -> Path:  # fmt: skip
    """Write a PNG strip of every ``every``-th tick (at most ``max_tiles``); returns the path."""
    group = open_log(log)
    n = group["frame"].shape[0]
    if n == 0:
        raise ValueError(f"{log}: the log has no ticks")
    idx = np.arange(0, n, max(1, every))[:max_tiles]
    # oindex reads only the chunks holding the chosen ticks, not the whole log
    frames, events = group["frame"].oindex[idx], group["events"].oindex[idx]
    rows = [
        np.concatenate(
            [_tile(f, scale, bool(e)) for f, e in zip(frames, events, strict=True)], axis=1
        )
    ]
    if "saliency" in group:
        masks = group["saliency"].oindex[idx]
        overlays = [_overlay(f, m) for f, m in zip(frames, masks, strict=True)]
        rows.append(np.concatenate([_tile(o, scale, False) for o in overlays], axis=1))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)  # like the tick log and --frames-dir
    write_png(out, np.concatenate(rows, axis=0))
    return out


def log_frames(log: str | Path, folder: str | Path, scale: int = 4) -> int:
    """One PNG per tick (``000000.png`` ...), e.g. for ``ffmpeg -i %06d.png out.mp4``."""
    frames = open_log(log)["frame"]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n, block = frames.shape[0], frames.chunks[0]
    for start in range(0, n, block):  # one read (and decompression) per chunk, not per frame
        for i, frame in enumerate(frames[start : start + block], start):
            write_png(folder / f"{i:06d}.png", _tile(frame, scale, False)[2:-2, 2:-2])
    return n
