"""A tiny PNG codec on zlib + numpy, because Pillow is not guaranteed on the robot PC.

Writes 8-bit RGB/grey images; reads the 8-bit non-interlaced PNGs cameras and tools commonly
produce (grey, grey+alpha, RGB, RGBA; all five row filters). Anything else raises ``ValueError``.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}  # PNG colour type -> channels


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Save an HxW or HxWx3 uint8 array (filter 0 rows, zlib level 6)."""
    img = np.ascontiguousarray(image, np.uint8)
    colour = {2: 0, 3: 2}[img.ndim]
    h, w = img.shape[:2]
    raw = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, -1)], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    data = _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6))
    Path(path).write_bytes(data + _chunk(b"IEND", b""))


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def read_png(path: str | Path) -> np.ndarray:
    """Load an 8-bit PNG as HxWxC uint8 (C = 1, 2, 3 or 4 as stored)."""
    data = Path(path).read_bytes()
    if not data.startswith(_SIGNATURE):
        raise ValueError(f"{path}: not a PNG file")
    pos, idat, header = 8, [], None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    if header is None:
        raise ValueError(f"{path}: PNG without IHDR")
    w, h, depth, colour, _, _, interlace = header
    if depth != 8 or interlace or colour not in _CHANNELS:
        raise ValueError(f"{path}: only 8-bit non-interlaced grey/RGB(A) PNGs are supported")
    c = _CHANNELS[colour]
    rows = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(h, 1 + w * c)
    out = np.zeros((h, w * c), np.int32)
    prev = np.zeros(w * c, np.int32)
    for y in range(h):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        if kind in (0, 2):
            cur = (line + (prev if kind == 2 else 0)) & 255
        elif kind in (1, 3, 4):  # these depend on the reconstructed left neighbour: go by pixel
            cur = np.zeros(w * c, np.int32)
            for x in range(0, w * c, c):
                left = cur[x - c : x] if x else np.zeros(c, np.int32)
                up = prev[x : x + c]
                upleft = prev[x - c : x] if x else np.zeros(c, np.int32)
                pred = {1: left, 3: (left + up) // 2, 4: _paeth(left, up, upleft)}[int(kind)]
                cur[x : x + c] = (line[x : x + c] + pred) & 255
        else:
            raise ValueError(f"{path}: bad PNG row filter {kind}")
        out[y] = prev = cur
    return out.reshape(h, w, c).astype(np.uint8)
