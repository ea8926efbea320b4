"""The evaluation GIF: tiles in a grid, in step, captioned, framed green while solved."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sgqn_robot.video import GREEN, Tile, write_gif


def _episode(colour: int, steps: int, solved_from: int) -> list[Tile]:
    frame = np.full((96, 96, 3), colour, np.uint8)
    return [Tile(frame, float(t), t >= solved_from) for t in range(steps)]


def test_grid_plays_the_episodes_in_step_and_frames_success_green(tmp_path: Path) -> None:
    episodes = {"train": _episode(200, 5, 3), "test1": _episode(100, 3, 99)}
    path = write_gif(tmp_path / "v.gif", episodes, size=48, frame_ms=70, hold_ms=900)
    gif = Image.open(path)
    assert gif.size == (96, 48) and gif.n_frames == 5  # 2 splits side by side; the longer one
    durations, border = [], []
    for t in range(gif.n_frames):
        gif.seek(t)
        durations.append(gif.info["duration"])
        rgb = np.asarray(gif.convert("RGB")).astype(int)
        border.append(np.abs(rgb[24, 0] - GREEN).max() < 30)  # left edge of the train tile
        assert np.abs(rgb[24, 60] - 100).max() < 10  # test1's tile (its last step held)
        assert (rgb[4:12, 4:24] < 60).mean() > 0.3  # the caption's dark box over the bright scene
    assert border == [False, False, False, True, True]
    assert durations == [70, 70, 70, 70, 900]
    assert os.listdir(tmp_path) == ["v.gif"]  # no temp file left


def test_nothing_to_draw_or_too_small_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no episode frames"):
        write_gif(tmp_path / "v.gif", {"train": []})
    with pytest.raises(ValueError, match="at least 32 px"):
        write_gif(tmp_path / "v.gif", {"train": _episode(0, 2, 9)}, size=8)
    assert not (tmp_path / "v.gif").exists()
