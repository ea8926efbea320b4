"""Hydra configs compose for every task x agent x encoder, agents accept their keys, bad choices
fail Hydra-style with the valid options, and the sweep launchers resolve."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hydra.errors import MissingConfigException

from sgqn_robot.agents import AgentConfig, make_agent
from sgqn_robot.config import compose_config, to_plain

AGENTS = ["sac", "drq", "svea", "sgqn"]


@pytest.mark.parametrize("task,space", [("reach", "xy"), ("peg_in_box", "xyz")])
@pytest.mark.parametrize("encoder,size", [("fast", 64), ("paper", 84)])
def test_task_and_encoder_fill_the_env_node(task: str, space: str, encoder: str, size: int) -> None:
    cfg = to_plain(compose_config("train", [f"task={task}", f"encoder={encoder}"]))
    assert cfg["task"] == task and cfg["encoder"]["preset"] == encoder
    assert cfg["env"] == {
        "action_space": space,
        "image_size": size,
        "frame_stack": 1,
        "camera": "third_person",
        "textures": None,
    }


@pytest.mark.parametrize("agent", AGENTS)
def test_agent_configs_build_their_agent(agent: str) -> None:
    cfg = to_plain(compose_config("train", [f"agent={agent}", "agent.hidden_dim=16"]))
    assert cfg["agent"]["name"] == agent
    fields = {f.name for f in dataclasses.fields(AgentConfig)}
    assert set(cfg["agent"]) - {"name"} <= fields
    built = make_agent(cfg["agent"], cfg["encoder"], (3, 64, 64), 2, torch.device("cpu"))
    assert built.cfg.hidden_dim == 16
    assert (agent == "sgqn") == (built.predictor_module() is not None)


@pytest.mark.parametrize(
    "override,options",
    [("task=pick", "peg_in_box"), ("agent=ppo", "svea"), ("encoder=huge", "paper")],
)
def test_unknown_choice_lists_the_options(override: str, options: str) -> None:
    with pytest.raises(MissingConfigException, match="Available options") as err:
        compose_config("train", [override])
    assert options in str(err.value)


def test_run_dir_override_sets_the_output_dir() -> None:
    from hydra import compose, initialize_config_dir

    from sgqn_robot.config import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        default = compose("train", return_hydra_config=True)
        given = compose("train", ["run_dir=/tmp/x"], return_hydra_config=True)
        sweep = compose("train", ["sweep=local"], return_hydra_config=True)
        slurm = compose(
            "train", ["sweep=slurm", "hydra.launcher.partition=gpu"], return_hydra_config=True
        )
    assert default.hydra.run.dir.startswith("runs/reach-sgqn-s1-")
    assert given.hydra.run.dir == "/tmp/x"
    assert sweep.hydra.launcher._target_.endswith("JoblibLauncher")
    assert sweep.hydra.launcher.n_jobs == 2 and sweep.threads == 1
    assert slurm.hydra.launcher._target_.endswith("SlurmLauncher")
    assert slurm.hydra.launcher.partition == "gpu" and slurm.device == "cuda"
    assert default.hydra.sweep.subdir == "reach-sgqn-s1"
    # jobs of one sweep that differ in any other key get a dir each (they used to share one)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        subdirs = [
            compose(
                "train", ["seed=2", f"agent.mask_quantile={q}"], return_hydra_config=True
            ).hydra.sweep.subdir
            for q in (0.9, 0.95)
        ]
    assert subdirs == [
        "reach-sgqn-s2-agent.mask_quantile=0.9",
        "reach-sgqn-s2-agent.mask_quantile=0.95",
    ]
