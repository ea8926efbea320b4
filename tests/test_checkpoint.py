"""Checkpoint files: weights_only loading, atomic `latest`, saves killed midway and their
leftovers, atomic text writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sgqn_robot import atomic, checkpoint
from sgqn_robot.atomic import write_text_atomic
from sgqn_robot.checkpoint import checkpoint_dir, load_checkpoint, save_checkpoint


def _save(run: Path, step: int) -> Path:
    agent = {"critic": {"w": torch.full((2, 2), float(step))}, "log_alpha": torch.tensor(0.1)}
    rng = {"torch": torch.get_rng_state()}
    state = {"episode": step // 50, "numpy_rng": np.random.default_rng(0).bit_generator.state}
    return save_checkpoint(
        run, step, agent, rng, {"task": "reach", "agent": {"name": "sac"}}, state
    )


def test_roundtrip_with_weights_only(tmp_path: Path) -> None:
    _save(tmp_path, 100)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.state["step"] == 100 and ckpt.state["episode"] == 2
    torch.testing.assert_close(ckpt.agent["critic"]["w"], torch.full((2, 2), 100.0))
    assert torch.equal(ckpt.rng["torch"], torch.get_rng_state())
    rng = np.random.default_rng()
    rng.bit_generator.state = ckpt.state["numpy_rng"]  # JSON keeps the 128-bit PCG64 state
    assert rng.integers(1 << 30) == np.random.default_rng(0).integers(1 << 30)
    assert yaml.safe_load((ckpt.path / "config.yaml").read_text())["agent"]["name"] == "sac"
    # The three ways to name a checkpoint.
    assert checkpoint_dir(tmp_path) == checkpoint_dir(ckpt.path) == ckpt.path
    assert checkpoint_dir(ckpt.path / "agent.pt") == ckpt.path


def test_latest_moves_atomically_and_old_ones_go(tmp_path: Path) -> None:
    _save(tmp_path, 50)
    # A save killed before publishing leaves a hidden temp dir and possibly its final dir.
    (tmp_path / "checkpoints" / ".step_000000100.abc").mkdir()
    (tmp_path / "checkpoints" / "step_000000100").mkdir()
    assert load_checkpoint(tmp_path).state["step"] == 50
    _save(tmp_path, 100)
    root = tmp_path / "checkpoints"
    assert sorted(os.listdir(root)) == ["latest", "step_000000050", "step_000000100"]
    assert os.readlink(root / "latest") == "step_000000100"
    assert load_checkpoint(tmp_path).state["step"] == 100
    _save(tmp_path, 150)
    assert sorted(os.listdir(root)) == ["latest", "step_000000100", "step_000000150"]


@pytest.mark.parametrize("dies_at", ["publishing the dir", "moving latest"])
def test_a_save_killed_midway_leaves_the_previous_checkpoint_loadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dies_at: str
) -> None:
    _save(tmp_path, 50)

    def killed(*args, **kwargs):
        raise SystemExit("killed")  # nothing after this point of the save runs

    if dies_at == "publishing the dir":
        monkeypatch.setattr(Path, "rename", killed)
    else:
        monkeypatch.setattr(checkpoint.os, "replace", killed)
    with pytest.raises(SystemExit):
        _save(tmp_path, 100)
    monkeypatch.undo()
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.state["step"] == 50
    torch.testing.assert_close(ckpt.agent["critic"]["w"], torch.full((2, 2), 50.0))
    _save(tmp_path, 100)  # the next save cleans up after the killed one
    root = tmp_path / "checkpoints"
    assert sorted(os.listdir(root)) == ["latest", "step_000000050", "step_000000100"]
    assert load_checkpoint(tmp_path).state["step"] == 100


def test_atomic_text_write_keeps_the_old_file_when_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_text_atomic(tmp_path / "config.yaml", "old")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(path, "new")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["config.yaml"]
    monkeypatch.undo()
    assert write_text_atomic(path, "new").read_text() == "new"
    assert os.listdir(tmp_path) == ["config.yaml"]
    umask = os.umask(0o027)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would, not mkstemp's 0600


def test_a_reader_of_the_previous_checkpoint_survives_a_save(tmp_path: Path) -> None:
    # sgqn-eval resolves `latest` (step 50), then the training run publishes step 100.
    _save(tmp_path, 50)
    resolved = checkpoint_dir(tmp_path)
    _save(tmp_path, 100)
    assert load_checkpoint(resolved).state["step"] == 50
    assert load_checkpoint(tmp_path).state["step"] == 100


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="expected a run dir with checkpoints/latest/"):
        checkpoint_dir(tmp_path)
    exported = tmp_path / "policy.onnx"  # a file where a run was meant: named, not its folder
    exported.write_bytes(b"onnx")
    with pytest.raises(FileNotFoundError, match=f"{exported} is a file, not a checkpoint"):
        checkpoint_dir(exported)
