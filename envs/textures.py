"""Texture banks: procedural generators, robosuite's PNGs, and the user's own photos.

Two disjoint banks, so test scenes never show a texture that training-time augmentation saw:
- the *test bank* (``test_bank_files()`` + the procedural families in ``PROCEDURAL``) feeds the
  fixed test scenes and the ``texture`` split;
- the *augmentation bank* (``augmentation_bank()``) lists the image files an overlay/background
  augmentation may use (the DMC variant of SGQN/SVEA; the shipped agents follow the manipulation
  spec and use random convolution, no images). ``tests/test_envs.py`` checks the two banks share
  no file and no pixels.
All textures are ``TEXTURE_SIZE`` x ``TEXTURE_SIZE`` uint8 RGB arrays.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from .asset_paths import TEXTURE_DIR, TEXTURE_SIZE

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# robosuite textures reserved for evaluation (the rest form the augmentation bank).
TEST_FILES = (
    "light-wood.png",
    "wood-tiles.png",
    "gray-plaster.png",
    "dark-wood.png",
    "white-bricks.png",
    "light-gray-floor-tile.png",
    "blue-wood.png",
    "ceramic.png",
    "cream-plaster.png",
    "gray-felt.png",
    "wood-varnished-panels.png",
    "red-wood.png",
)


def test_bank_files() -> list[Path]:
    """Image files used only by test scenes (never hand these to augmentation)."""
    return [TEXTURE_DIR / n for n in TEST_FILES]


def augmentation_bank() -> list[Path]:
    """Image files an overlay augmentation may use (not the shipped agents, which use random
    convolution); disjoint from every test texture."""
    return sorted(p for p in TEXTURE_DIR.glob("*.png") if p.name not in TEST_FILES)


# ---------------------------------------------------------------- procedural generators


def _smooth_noise(rng: np.random.Generator, cells: int, size: int = TEXTURE_SIZE) -> np.ndarray:
    """Value noise in [0, 1]: a random ``cells`` grid bilinearly upsampled (tileable enough)."""
    grid = rng.random((cells + 1, cells + 1))
    t = np.linspace(0, cells, size, endpoint=False)
    i = t.astype(int)
    f = t - i
    f = f * f * (3 - 2 * f)
    rows = grid[i] * (1 - f)[:, None] + grid[i + 1] * f[:, None]
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]


def _octaves(rng: np.random.Generator, cells: Iterable[int]) -> np.ndarray:
    total, weight = 0.0, 0.0
    for k, c in enumerate(cells):
        w = 0.5**k
        total = total + w * _smooth_noise(rng, c)
        weight += w
    return total / weight


def _colourize(value: np.ndarray, dark: np.ndarray, light: np.ndarray) -> np.ndarray:
    rgb = dark[None, None] + value[..., None] * (light - dark)[None, None]
    return np.clip(rgb * 255, 0, 255).astype(np.uint8)


def _rand_colour(rng: np.random.Generator, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    return rng.uniform(lo, hi, 3)


def noise(rng: np.random.Generator) -> np.ndarray:
    """Soft cloudy blotches in two random colours."""
    return _colourize(_octaves(rng, (4, 8, 16)), _rand_colour(rng), _rand_colour(rng))


def stripes(rng: np.random.Generator) -> np.ndarray:
    """Straight stripes at a random angle and period."""
    y, x = np.mgrid[0:TEXTURE_SIZE, 0:TEXTURE_SIZE] / TEXTURE_SIZE
    a = rng.uniform(0, np.pi)
    period = rng.integers(3, 12)
    v = (np.sin(2 * np.pi * period * (x * np.cos(a) + y * np.sin(a))) > 0).astype(float)
    return _colourize(v, _rand_colour(rng), _rand_colour(rng))


def checker(rng: np.random.Generator) -> np.ndarray:
    """Checkerboard with a random cell count."""
    n = int(rng.integers(2, 10))
    y, x = np.mgrid[0:TEXTURE_SIZE, 0:TEXTURE_SIZE] * n // TEXTURE_SIZE
    return _colourize(((x + y) % 2).astype(float), _rand_colour(rng), _rand_colour(rng))


def carpet(rng: np.random.Generator, dark: bool | None = None) -> np.ndarray:
    """Fine fibre noise over a faint weave; ``dark`` gives the test2-style black carpet."""
    if dark or (dark is None and rng.random() < 0.5):
        base = rng.uniform(0.03, 0.1) + rng.uniform(0, 0.03, 3)
    else:
        base = _rand_colour(rng, 0.2, 0.8)
    fibre = rng.random((TEXTURE_SIZE, TEXTURE_SIZE))
    weave = _smooth_noise(rng, 32)
    v = 0.6 * fibre + 0.4 * weave
    return _colourize(v, base * 0.6, np.minimum(base * 1.6 + 0.05, 1.0))


def concrete(rng: np.random.Generator) -> np.ndarray:
    """Grey multi-scale noise with pits, like poured concrete."""
    grey = rng.uniform(0.35, 0.7)
    v = 0.7 * _octaves(rng, (4, 16, 64)) + 0.3 * rng.random((TEXTURE_SIZE, TEXTURE_SIZE))
    v = np.where(rng.random((TEXTURE_SIZE, TEXTURE_SIZE)) < 0.02, 0.1, v)
    tint = np.full(3, grey) + rng.uniform(-0.03, 0.03, 3)
    return _colourize(v, tint * 0.6, np.minimum(tint * 1.3, 1.0))


def sponge(rng: np.random.Generator) -> np.ndarray:
    """Yellow-ish porous foam: thresholded noise gives dark pores."""
    base = np.array([0.95, 0.8, 0.25]) + rng.uniform(-0.15, 0.05, 3)
    n = _octaves(rng, (16, 32, 64))
    pores = n < rng.uniform(0.35, 0.45)
    v = np.where(pores, 0.25, 0.75 + 0.25 * n)
    return _colourize(v, np.zeros(3), np.clip(base, 0, 1))


PROCEDURAL: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "noise": noise,
    "stripes": stripes,
    "checker": checker,
    "carpet": carpet,
    "concrete": concrete,
    "sponge": sponge,
}


# ---------------------------------------------------------------- image files


@functools.lru_cache(maxsize=256)
def _load_cached(path: str, mtime: float) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if min(img.size) < 8:
                raise ValueError(f"texture file {path}: image is {img.size}, need at least 8x8 px")
            img = img.resize((TEXTURE_SIZE, TEXTURE_SIZE), Image.BILINEAR)
            out = np.asarray(img, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"texture file {path}: not a readable image ({e})") from e
    out.setflags(write=False)
    return out


def load_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as a TEXTURE_SIZE^2 RGB uint8 array; a clear ValueError names bad files."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"texture file {p}: no such file")
    return _load_cached(str(p.resolve()), p.stat().st_mtime)


def user_textures(spec: str | os.PathLike | Iterable | dict | None) -> dict[str, np.ndarray]:
    """Map the user's photos onto the scene surfaces ``table``, ``floor``, ``wall``.

    ``spec`` is a folder, a list of image files, or a dict ``{surface: file}``. Files whose name
    contains a surface name go to that surface; the others fill the remaining surfaces in order
    (table, floor, wall). Every file is loaded now, so a bad file fails at env construction.
    """
    from .scene import TEXTURE_SLOTS

    if spec is None:
        return {}
    if isinstance(spec, dict):
        bad = set(spec) - set(TEXTURE_SLOTS)
        if bad:
            raise ValueError(f"textures: unknown surface(s) {sorted(bad)}; valid: {TEXTURE_SLOTS}")
        return {k: load_image(v) for k, v in spec.items()}
    if isinstance(spec, (str, os.PathLike)):
        folder = Path(spec).expanduser()
        if folder.is_dir():
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ValueError(f"textures: folder {folder} holds no image files {IMAGE_SUFFIXES}")
        else:
            files = [folder]
    else:
        files = [Path(p) for p in spec]
    if not files:
        raise ValueError("textures: empty list of image files")
    out: dict[str, np.ndarray] = {}
    rest = []
    for f in files:
        slot = next((s for s in TEXTURE_SLOTS if s in f.stem.lower() and s not in out), None)
        if slot is None:
            rest.append(f)
        else:
            out[slot] = load_image(f)
    free = [s for s in TEXTURE_SLOTS if s not in out]
    for slot, f in zip(free, rest, strict=False):
        out[slot] = load_image(f)
    for f in rest[len(free) :]:
        load_image(f)  # still validate extra files
    return out


PROCEDURAL_VARIANTS = 120  # 20 per family; each is generated on first use, then cached
_TEST_BANK_SEED = 20221209


@functools.lru_cache(maxsize=PROCEDURAL_VARIANTS)
def procedural_variant(index: int) -> np.ndarray:
    """Procedural test texture number ``index``: fixed family and seed, so episodes stay
    reproducible while a redraw costs only the texture upload (keeps randomization < 5 ms)."""
    families = list(PROCEDURAL)
    rng = np.random.default_rng([_TEST_BANK_SEED, index])
    out = PROCEDURAL[families[index % len(families)]](rng)
    out.setflags(write=False)
    return out


def random_test_texture(rng: np.random.Generator) -> np.ndarray:
    """One texture from the test bank: a robosuite test PNG or a procedural variant, 50/50."""
    if rng.random() < 0.5:
        files = test_bank_files()
        return load_image(files[int(rng.integers(len(files)))])
    return procedural_variant(int(rng.integers(PROCEDURAL_VARIANTS)))
