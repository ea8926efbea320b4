"""Where the Hydra configs live and the small helpers both entry points and the tests share."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf


def _config_dir() -> Path:
    """`sgqn_robot.configs` when packaging maps configs/ there (a wheel install), else the
    repository's configs/ beside the package (the editable install)."""
    spec = importlib.util.find_spec("sgqn_robot.configs")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parent.parent / "configs"


CONFIG_DIR = _config_dir()

# `${sgqn_or:${run_dir},default}`: `run_dir` when set, else the default (oc.select keeps nulls).
OmegaConf.register_new_resolver(
    "sgqn_or", lambda value, default: default if value is None else value, replace=True
)


def compose_config(name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose `configs/<name>.yaml` with command-line style overrides, without running an app."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain containers (what checkpoints and run dirs store)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
