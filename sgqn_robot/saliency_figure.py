"""Saliency pictures: what the critic looks at, on the training scene and on an unseen one.

One row per observation, columns frame | attribution | mask | predicted mask (the last only for
SGQN, whose attribution predictor exists). With stacked frames the newest frame is drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

SaliencyFn = Callable[[np.ndarray], Mapping[str, np.ndarray]]


def _newest_rgb(x: np.ndarray) -> np.ndarray:
    """[C, H, W] stacked channels -> the newest frame's [3, H, W]."""
    return x[-3:]


def _heat(x: np.ndarray) -> np.ndarray:
    """Max over colour of |x|, scaled to [0, 1] per picture."""
    m = np.abs(_newest_rgb(x)).max(axis=0)
    return m / max(float(m.max()), 1e-12)


def save_saliency_grid(
    path: str | Path, obs_by_split: Mapping[str, np.ndarray], saliency: SaliencyFn, step: int
) -> Path:
    """Draw the grid for uint8 observations [n, C, H, W] per split into a PNG at `path`."""
    rows = []
    for split, obs in obs_by_split.items():
        out = saliency(obs)
        for i in range(len(obs)):
            frame = _newest_rgb(obs[i]).transpose(1, 2, 0)
            mask = _newest_rgb(out["mask"][i]).any(axis=0)
            cells = [frame, _heat(out["attribution"][i]), frame * mask[..., None]]
            if "predicted" in out:
                cells.append(_newest_rgb(out["predicted"][i]).max(axis=0))
            rows.append((split, cells))
    titles = ["frame", "attribution", "mask", "predicted mask"][: len(rows[0][1])]
    fig, axes = plt.subplots(
        len(rows), len(titles), figsize=(1.6 * len(titles), 1.6 * len(rows)), squeeze=False
    )
    for r, (split, cells) in enumerate(rows):
        for c, cell in enumerate(cells):
            ax = axes[r, c]
            ax.imshow(cell, cmap=None if cell.ndim == 3 else "inferno", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(split, fontsize=8)
    fig.suptitle(f"step {step}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
