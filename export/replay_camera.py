"""A ``Camera`` that replays a recorded stream: a tick log's frames or a folder of images.

Lets the whole robot-PC stack (preprocessing, inference, safety, timing, logging) run on a
laptop without a camera, and re-runs a field recording through a new model. When the stream
ends, ``read`` raises ``EndOfStream`` and the loop stops the robot with the stop reason
``end_of_stream``: a normal end, not the stale-frame fault of a frozen camera.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .interfaces import Clock, EndOfStream, Frame
from .png import read_png
from .tick_log import open_log

IMAGE_SUFFIXES = (".png", ".npy", ".jpg", ".jpeg", ".bmp")


def _read_image(path: Path) -> np.ndarray:
    """Any stored image as HxWx3: grey is repeated, alpha dropped."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        img = np.load(path)
    elif suffix == ".png":
        img = read_png(path)
    else:
        try:
            from PIL import Image
        except ImportError as e:
            raise ImportError(
                f"{path}: reading {path.suffix} needs Pillow (pip install pillow); or convert the "
                "images to PNG/NPY"
            ) from e
        img = np.asarray(Image.open(path).convert("RGB"))
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"{path}: image of shape {img.shape}; need HxW, HxWx1..4")
    if img.shape[2] <= 2:  # grey or grey + alpha
        return np.repeat(img[:, :, :1], 3, axis=2)
    return img[:, :, :3]


class ReplayCamera:
    """Serves pre-recorded HWC uint8 frames one per ``read``, stamped with the loop's clock."""

    def __init__(
        self,
        frames: Sequence[np.ndarray],
        clock: Clock,
        color_order: str = "RGB",
        loop: bool = False,
    ) -> None:
        if len(frames) == 0:
            raise ValueError("replay stream has no frames")
        self.frames, self.clock, self.color_order, self.loop = frames, clock, color_order, loop
        self.i = 0

    def read(self) -> Frame:
        """The next frame; after the last one, ``EndOfStream`` (or the first again with ``loop``)."""
        n, k = len(self.frames), self.i
        if k >= n and not self.loop:
            raise EndOfStream(f"replayed all {n} frames")
        self.i += 1
        return Frame(np.asarray(self.frames[k % n]), self.clock.now(), index=k)

    @classmethod
    def from_log(cls, path: str | Path, clock: Clock, loop: bool = False) -> ReplayCamera:
        """Frames of a tick log (CHW, already at model size) as an RGB stream."""
        frames = open_log(path)["frame"][:]
        return cls(list(frames.transpose(0, 2, 3, 1)), clock, "RGB", loop)

    @classmethod
    def from_folder(
        cls, path: str | Path, clock: Clock, color_order: str = "RGB", loop: bool = False
    ) -> ReplayCamera:
        """Images in a folder, in file-name order (PNG/NPY natively, JPEG/BMP with Pillow)."""
        files = sorted(p for p in Path(path).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"{path}: no {'/'.join(IMAGE_SUFFIXES)} images to replay")
        return cls([_read_image(p) for p in files], clock, color_order, loop)
