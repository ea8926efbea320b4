"""Checkpoints: one directory per save, published atomically, loadable with `weights_only=True`.

Layout of `<run>/checkpoints/step_<N>/`: `agent.pt` (the agent's `state_dict`: networks, target
nets, optimizers), `rng.pt` (torch RNG states), `config.yaml` (the resolved training config) and
`state.json` (counters, numpy RNG state, observation/action shapes, the code that trained it).
A save is written to a hidden temp dir, renamed to `step_<N>`, then the `latest` symlink is
swapped with an atomic rename, so a reader (or a resume after SIGKILL) only ever sees complete
checkpoints. The checkpoint `latest` pointed to before stays until the next save, so a reader
that resolved it just before the swap (`sgqn-eval`, an export) can finish; everything older is
removed.

This module imports torch and the agents, never the simulator: `load_policy` is what deployment
and ONNX export use.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

CHECKPOINTS = "checkpoints"
LATEST = "latest"
AGENT_FILE = "agent.pt"
RNG_FILE = "rng.pt"
CONFIG_FILE = "config.yaml"
STATE_FILE = "state.json"


@dataclass
class Checkpoint:
    """Everything one save holds, as plain containers and tensors."""

    path: Path
    agent: dict[str, Any]
    rng: dict[str, Any]
    config: dict[str, Any]
    state: dict[str, Any]


@dataclass
class Policy:
    """The deployable part of a trained agent (see docs/INTERFACES.md)."""

    actor: nn.Module
    predictor: nn.Module | None
    config: dict[str, Any]
    step: int
    # {"git_sha", "package_version"} of the code that trained it (sgqn_robot.provenance)
    code: dict[str, str] = field(default_factory=dict)
    # every code that trained it, oldest first, with the step it took over at (a resumed run
    # may span commits); sgqn_robot.provenance.code_history
    code_history: list[dict[str, Any]] = field(default_factory=list)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    agent_state: Mapping[str, Any],
    rng_state: Mapping[str, Any],
    config: Mapping[str, Any],
    state: Mapping[str, Any],
) -> Path:
    """Write checkpoint `step_<step>` and make it `latest`; only the previous `latest` is kept
    beside it (a concurrent reader may still be loading it)."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:09d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    torch.save(dict(agent_state), tmp / AGENT_FILE)
    torch.save(dict(rng_state), tmp / RNG_FILE)
    (tmp / CONFIG_FILE).write_text(yaml.safe_dump(dict(config), sort_keys=False))
    (tmp / STATE_FILE).write_text(json.dumps({"step": step, **state}, indent=1))
    for f in tmp.iterdir():
        _fsync(f)
    final = root / name
    if final.exists():  # left by a killed run after its last published checkpoint
        shutil.rmtree(final)
    tmp.rename(final)
    previous = os.readlink(root / LATEST) if (root / LATEST).is_symlink() else None
    link = root / f".{LATEST}.{os.getpid()}"
    link.unlink(missing_ok=True)
    link.symlink_to(name)
    os.replace(link, root / LATEST)
    _fsync(root)
    for old in root.iterdir():
        if old.name in (name, LATEST, previous):
            continue
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink()
    return final


def checkpoint_dir(path: str | Path) -> Path:
    """Resolve a run dir, a checkpoint dir or a checkpoint's `agent.pt` to the checkpoint dir."""
    path = Path(path)
    if path.is_file():
        if path.name != AGENT_FILE:  # e.g. an exported .onnx where a run was meant
            raise FileNotFoundError(
                f"{path} is a file, not a checkpoint: pass a run dir, a checkpoint dir or its "
                f"{AGENT_FILE}"
            )
        path = path.parent
    if (path / CHECKPOINTS / LATEST).exists():
        path = path / CHECKPOINTS / LATEST
    if not (path / AGENT_FILE).is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}: expected a run dir with {CHECKPOINTS}/{LATEST}/, "
            f"a checkpoint dir or its {AGENT_FILE}"
        )
    return path.resolve()


def checkpoint_label(path: str | Path) -> str:
    """'<run name> @ <step>': which run, and which of its checkpoints, a table row describes."""
    ckpt = checkpoint_dir(path)
    step = json.loads((ckpt / STATE_FILE).read_text())["step"]
    return f"{ckpt.parent.parent.name} @ {step}"


def read_config(path: str | Path) -> dict[str, Any]:
    """The resolved training config saved with a checkpoint."""
    return yaml.safe_load((checkpoint_dir(path) / CONFIG_FILE).read_text())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load everything a resume needs; tensors only via `weights_only=True`."""
    ckpt = checkpoint_dir(path)
    return Checkpoint(
        path=ckpt,
        agent=torch.load(ckpt / AGENT_FILE, map_location=map_location, weights_only=True),
        rng=torch.load(ckpt / RNG_FILE, map_location="cpu", weights_only=True),
        config=read_config(ckpt),
        state=json.loads((ckpt / STATE_FILE).read_text()),
    )


def build_agent(config: Mapping[str, Any], state: Mapping[str, Any], device: torch.device):
    """An agent shaped like the one a checkpoint was taken from (shapes recorded in state.json)."""
    from sgqn_robot.agents import make_agent

    return make_agent(
        config["agent"],
        config["encoder"],
        tuple(state["obs_shape"]),
        int(state["action_dim"]),
        device,
    )


def load_agent(path: str | Path, device: str | torch.device = "cpu"):
    """(agent with the checkpoint's weights, the checkpoint) for a run or checkpoint dir."""
    ckpt = load_checkpoint(path, map_location=device)
    agent = build_agent(ckpt.config, ckpt.state, torch.device(device))
    agent.load_state_dict(ckpt.agent)
    return agent, ckpt


def load_policy(path: str | Path, device: str | torch.device = "cpu") -> Policy:
    """Actor (and SGQN's attribution predictor) of a run's latest or a given checkpoint."""
    agent, ckpt = load_agent(path, device)
    predictor = agent.predictor_module()
    return Policy(
        actor=agent.actor_module().eval(),
        predictor=None if predictor is None else predictor.eval(),
        config=ckpt.config,
        step=int(ckpt.state["step"]),
        code=dict(ckpt.state.get("code", {})),  # absent in checkpoints from before 2026-11-28
        code_history=list(ckpt.state.get("code_history", [])),  # since 2026-11-28 (session 20)
    )
