"""Raw camera frames to the model's input, in numpy, exactly as the training frames were made.

Training frames are rendered natively at ``image_size`` x ``image_size`` (square camera, RGB), so a
simulator frame of that size passes through unchanged. A real camera (say 640x480 BGR) needs the
centre crop to a square (the training camera's aspect), an area resize (each output pixel is the
mean of the source pixels it covers, which is what a renderer's supersampling approximates), and
RGB order. The stack is oldest frame first along channels, as the env's frame stack.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from .metadata import ModelError


@lru_cache(maxsize=16)
def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] matrix: overlap of each output cell with each input pixel, rows sum to 1."""
    edges = np.linspace(0.0, n_in, n_out + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    pix = np.arange(n_in)[None, :]
    w = np.clip(np.minimum(hi, pix + 1) - np.maximum(lo, pix), 0.0, None)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def center_crop(image: np.ndarray, aspect: float = 1.0) -> np.ndarray:
    """Largest centred crop with width/height == ``aspect``."""
    h, w = image.shape[:2]
    if w > h * aspect:
        cw = round(h * aspect)
        x0 = (w - cw) // 2
        return image[:, x0 : x0 + cw]
    ch = round(w / aspect)
    y0 = (h - ch) // 2
    return image[y0 : y0 + ch]


def area_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area (box-filter) resize of an HWC uint8 image; identity when the size already matches."""
    h, w, c = image.shape
    if (h, w) == (height, width):
        return image
    wy, wx = _area_weights(h, height), _area_weights(w, width)
    rows = (wy @ image.reshape(h, w * c).astype(np.float32)).reshape(height, w, c)
    out = np.einsum("xw,hwc->hxc", wx, rows, optimize=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class Preprocessor:
    """HWC frame (any size, RGB or BGR) -> CHW uint8 frame at the model's size."""

    def __init__(self, preprocessing: Mapping[str, Any], image_size: int, channels: int = 3):
        if preprocessing.get("crop", "center") != "center" or preprocessing.get("resize") != "area":
            raise ModelError(f"unsupported preprocessing in model metadata: {dict(preprocessing)}")
        self.aspect = float(preprocessing.get("crop_aspect", 1.0))
        self.color_order = str(preprocessing.get("color_order", "RGB")).upper()
        self.size = image_size
        self.channels = channels

    def __call__(self, image: np.ndarray, color_order: str = "RGB") -> np.ndarray:
        if image.ndim != 3 or image.shape[2] != self.channels or image.dtype != np.uint8:
            raise ValueError(
                f"camera frame must be HxWx{self.channels} uint8, got {image.shape} {image.dtype}"
            )
        img = area_resize(center_crop(image, self.aspect), self.size, self.size)
        if color_order.upper() != self.color_order:
            img = img[:, :, ::-1]
        return np.ascontiguousarray(img.transpose(2, 0, 1))


class FrameStack:
    """Keeps the last ``k`` CHW frames; the first frame after ``reset`` fills the whole stack."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.frames: deque[np.ndarray] = deque(maxlen=k)

    def reset(self) -> None:
        self.frames.clear()

    def push(self, frame: np.ndarray) -> np.ndarray:
        """Add a frame, return the stacked observation [k*C, H, W] (oldest first)."""
        if not self.frames:
            self.frames.extend([frame] * self.k)
        else:
            self.frames.append(frame)
        return np.concatenate(self.frames, axis=0)
