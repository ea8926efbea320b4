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
def _area_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Sparse form of the [n_out, n_in] area matrix: for each output cell the input pixels it
    overlaps (``index``, [n_out, K]) and the overlap fractions (``weight``, rows sum to 1)."""
    edges = np.linspace(0.0, n_in, n_out + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    pix = np.arange(n_in)[None, :]
    w = np.clip(np.minimum(hi, pix + 1) - np.maximum(lo, pix), 0.0, None)
    w /= w.sum(axis=1, keepdims=True)
    k = int((w > 0).sum(axis=1).max())
    first = np.argmax(w > 0, axis=1)
    index = np.minimum(first[:, None] + np.arange(k)[None, :], n_in - 1)
    weight = np.take_along_axis(w, index, axis=1)
    weight[first[:, None] + np.arange(k)[None, :] >= n_in] = 0.0
    return index, weight.astype(np.float32)


def _resize_axis(x: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Weighted sum of a few gathered slices: elementwise numpy, so no BLAS worker threads
    (which would run at normal priority and stall a SCHED_FIFO loop, and compete for 2 cores)."""
    index, weight = _area_taps(x.shape[axis], n_out)
    shape = [1] * x.ndim
    shape[axis] = n_out
    out = np.zeros(x.shape[:axis] + (n_out,) + x.shape[axis + 1 :], np.float32)
    for k in range(index.shape[1]):
        out += np.take(x, index[:, k], axis=axis) * weight[:, k].reshape(shape)
    return out


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
    if image.shape[:2] == (height, width):
        return image
    out = _resize_axis(_resize_axis(image, height, 0), width, 1)
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
