"""Where the Hydra configs live and the small helpers both entry points and the tests share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

# configs/ installs as `sgqn_robot.configs` (pyproject), in editable and wheel installs alike.
CONFIG_DIR = Path(str(files("sgqn_robot.configs")))

# `${sgqn_or:${run_dir},default}`: `run_dir` when set, else the default (oc.select keeps nulls).
OmegaConf.register_new_resolver(
    "sgqn_or", lambda value, default: default if value is None else value, replace=True
)

# `${sgqn_suffix:${hydra.job.override_dirname}}`: "-<overrides>" for a sweep job's dir name, ""
# without overrides; "/" in a value would nest dirs, so it becomes "_".
OmegaConf.register_new_resolver(
    "sgqn_suffix", lambda text: f"-{text.replace('/', '_')}" if text else "", replace=True
)


class ConfigError(ValueError):
    """A config value that cannot work; the entry points print it as one line, before any work."""


def require_ints(cfg: Mapping[str, Any], keys: Sequence[str], minimum: int = 1) -> None:
    """ConfigError unless every `cfg[key]` is an integer >= `minimum` (a 0 interval would divide
    by zero hours into a run; a string would fail deep inside the loop)."""
    for key in keys:
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{key}={value!r}: must be an integer >= {minimum}")


def compose_config(name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose `configs/<name>.yaml` with command-line style overrides, without running an app."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain containers (what checkpoints and run dirs store)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
