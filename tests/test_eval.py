"""`sgqn-eval` and the periodic evaluation are one code path: same seeds, same numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sgqn_robot.config import ConfigError, compose_config
from sgqn_robot.evaluate import EvaluationStopped, Evaluator, blind_policy, evaluate_run, table
from sgqn_robot.train import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    overrides = [
        "agent=sgqn",
        "agent.hidden_dim=32",
        "num_train_steps=50",
        "warmup_steps=40",
        "batch_size=8",
        "eval_every=50",
        "eval_episodes=2",
        "eval_splits=[train,test2]",
        "saliency_samples=2",
        "threads=1",
        f"run_dir={tmp_path_factory.mktemp('eval') / 'run'}",
    ]
    return train(compose_config("train", overrides))


def test_eval_matches_the_periodic_evaluation(run_dir: Path) -> None:
    results = evaluate_run(run_dir, ["train", "test2"], episodes=2, tag="again")
    periodic = json.loads((run_dir / "eval" / "step_0000050.json").read_text())
    again = json.loads((run_dir / "eval" / "again.json").read_text())
    assert again["step"] == 50
    for split in ("train", "test2"):
        assert again["splits"][split]["returns"] == periodic["splits"][split]["returns"]
        assert results[split].summary()["episodes"] == 2
    csv_lines = (run_dir / "eval" / "again.csv").read_text().splitlines()
    assert csv_lines[0] == "step,split,episodes,return_mean,return_std,success_rate"
    assert len(csv_lines) == 3
    assert (run_dir / "saliency" / "again.png").stat().st_size > 1000


def _eval_cli(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "sgqn-eval"
    env = os.environ | {"MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    return subprocess.run(
        [str(exe), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )


def test_cli_prints_a_table_and_writes_json_csv(run_dir: Path) -> None:
    out = _eval_cli(f"run={run_dir}", "splits=[test1]", "episodes=1", "saliency_samples=0")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "split" in out.stdout and "test1" in out.stdout and "±" in out.stdout
    assert (run_dir / "eval" / "eval_step_0000050.json").is_file()
    assert (run_dir / "eval" / "eval_step_0000050.csv").is_file()


def test_saliency_picture_shows_the_chosen_splits(run_dir: Path) -> None:
    args = [f"run={run_dir}", "splits=[train,test1,test3]", "episodes=1", "saliency_samples=1"]
    out = _eval_cli(*args, "saliency_splits=[test1,test3,train]", "tag=three")
    assert out.returncode == 0, out.stdout + out.stderr
    two = _eval_cli(*args, "tag=two")  # default: train and the first unseen split
    assert two.returncode == 0, two.stdout + two.stderr
    from PIL import Image

    heights = {t: Image.open(run_dir / "saliency" / f"{t}.png").size[1] for t in ("three", "two")}
    assert heights["three"] > heights["two"]  # one row per split
    bad = _eval_cli(*args, "saliency_splits=[color_hard]", "tag=bad")
    assert bad.returncode == 2
    assert "saliency_splits ['color_hard'] are not evaluated" in bad.stdout + bad.stderr


def test_cli_reports_a_missing_run(tmp_path: Path) -> None:
    out = _eval_cli(f"run={tmp_path / 'nope'}", "episodes=1")
    assert out.returncode == 2
    assert "no checkpoint at" in out.stdout + out.stderr
    assert not (tmp_path / "nope").exists()


def test_own_photos_change_the_scene_the_policy_is_evaluated_in(
    run_dir: Path, tmp_path: Path
) -> None:
    from PIL import Image

    photos = tmp_path / "lab"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name in ("table", "floor", "wall"):
        pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(photos / f"{name}.png")
    plain = evaluate_run(run_dir, ["train"], episodes=2, saliency_samples=0, tag="plain")
    own = evaluate_run(run_dir, ["train"], episodes=2, saliency_samples=0, textures=str(photos))
    assert (run_dir / "eval" / "eval_step_0000050_own_textures.json").is_file()
    # same seeds and policy; only the pixels differ, so the actions and returns do too
    assert own["train"].returns != plain["train"].returns
    out = _eval_cli(f"run={run_dir}", "episodes=1", f"textures={tmp_path / 'none.png'}")
    assert out.returncode == 2 and "Traceback" not in out.stdout + out.stderr
    assert f"texture file {tmp_path / 'none.png'}: no such file" in out.stdout + out.stderr


def test_help_says_what_sgqn_eval_does_and_lists_no_ignored_groups() -> None:
    out = _eval_cli("--help")
    assert out.returncode == 0 and "Usage: sgqn-eval run=<run dir>" in out.stdout, out.stdout
    assert "agent: drq" not in out.stdout  # task/agent come from the run, not from overrides


def test_cli_names_a_missing_run_argument_and_a_bad_device(run_dir: Path) -> None:
    for args, says in (
        (["episodes=1"], "sgqn-eval: run= is required: sgqn-eval run=<run dir>"),
        ([f"run={run_dir}", "device=gpu"], "sgqn-eval: device='gpu' is not a torch device"),
    ):
        out = _eval_cli(*args)
        assert out.returncode == 2 and says in out.stdout + out.stderr, out.stdout + out.stderr
        assert "Traceback" not in out.stdout + out.stderr


def test_cli_refuses_unknown_splits_and_zero_episodes_in_one_line(run_dir: Path) -> None:
    before = sorted((run_dir / "eval").iterdir())
    out = _eval_cli(f"run={run_dir}", "splits=[train,tset1]", "episodes=1")
    assert out.returncode == 2, out.stdout + out.stderr
    text = out.stdout + out.stderr
    assert "sgqn-eval: splits: unknown split 'tset1'; valid splits: train, test1" in text, text
    assert "Traceback" not in text
    with pytest.raises(ConfigError, match="episodes=0: must be an integer >= 1"):
        evaluate_run(run_dir, ["train"], episodes=0)
    with pytest.raises(ConfigError, match=r"must be a list, e.g. splits=\[test1\]"):
        evaluate_run(run_dir, "test1", episodes=1)
    assert sorted((run_dir / "eval").iterdir()) == before


def test_evaluator_closes_the_envs_it_built_when_a_later_one_fails(monkeypatch) -> None:
    import sgqn_robot.envs

    built, real_make_env = [], sgqn_robot.envs.make_env

    def make_env(task: str, split: str, **kwargs):
        if split == "test2":
            raise RuntimeError("no GL context")
        built.append(real_make_env(task, split=split, **kwargs))
        return built[-1]

    monkeypatch.setattr(sgqn_robot.envs, "make_env", make_env)
    with pytest.raises(RuntimeError, match="no GL context"):
        Evaluator("reach", {"image_size": 32}, ["train", "test1", "test2"])
    assert [e.unwrapped.split for e in built] == ["train", "test1"]
    assert all(e.unwrapped._renderer is None for e in built)  # their renderers were freed


def test_evaluation_stops_within_a_step_when_asked() -> None:
    kwargs = {"image_size": 64, "frame_stack": 1, "action_space": "xy", "camera": "third_person"}
    evaluator = Evaluator("reach", kwargs, ["train"])
    polls = []

    def should_stop() -> bool:
        polls.append(1)
        return len(polls) > 5

    try:
        with pytest.raises(EvaluationStopped):
            evaluator.run(lambda o: np.zeros(2, np.float32), 3, 0, should_stop=should_stop)
    finally:
        evaluator.close()
    assert len(polls) == 6  # 5 steps of a 150-step evaluation


def test_a_policy_blind_to_the_image_is_flagged_in_the_table() -> None:
    """The same scenes and episode seeds on every split: a policy that ignores the pixels repeats
    its returns (exactly, or up to noise when its saturated actions barely move with them) and
    gets the warning; one that looks at them does not."""
    kwargs = {"image_size": 64, "frame_stack": 1, "action_space": "xy", "camera": "third_person"}
    evaluator = Evaluator("reach", kwargs, ["train", "test3", "color_hard"])
    try:
        blind, _ = evaluator.run(lambda o: np.array([0.6, -0.4], np.float32), 2)
        # saturated actions that move with the pixels only far below any visible effect
        nearly, _ = evaluator.run(lambda o: np.array([0.6 + 1e-6 * o[0].mean(), -0.4]), 2)
        # red minus green, and blue, averaged over the frame: differs with the scene's colours
        looking, _ = evaluator.run(
            lambda o: np.tanh([(o[0].mean() - o[1].mean()) / 20, (o[2].mean() - 128) / 40]), 2
        )
    finally:
        evaluator.close()
    assert blind_policy(blind) and "warning: all 3 splits gave the same return" in table(blind)
    assert len(set(blind["train"].returns)) == 2  # two different episodes, repeated per split
    assert nearly["train"].returns != nearly["color_hard"].returns and blind_policy(nearly)
    assert not blind_policy(looking) and "warning" not in table(looking)


def test_video_shows_each_split_first_episode_without_changing_it(run_dir: Path) -> None:
    """`video_size` adds a GIF of every split's first episode, in step; rendering it must not
    change the episodes (same returns as the periodic evaluation on the same seeds)."""
    from PIL import Image
    from sgqn_robot.envs import EPISODE_STEPS

    splits = ["train", "test2", "color_hard"]
    results = evaluate_run(run_dir, splits, 2, tag="vid", saliency_samples=0, video_size=64)
    periodic = json.loads((run_dir / "eval" / "step_0000050.json").read_text())
    assert results["train"].returns == periodic["splits"]["train"]["returns"]
    assert results["test2"].returns == periodic["splits"]["test2"]["returns"]
    gif = Image.open(run_dir / "videos" / "vid.gif")
    assert (
        gif.size == (128, 128) and gif.n_frames == EPISODE_STEPS + 1
    )  # 2 x 2 tiles, reset + steps
    gif.seek(EPISODE_STEPS // 2)
    grid = np.asarray(gif.convert("RGB")).astype(int)
    tiles = {
        s: grid[(i // 2) * 64 : (i // 2 + 1) * 64, (i % 2) * 64 :][:, :64]
        for i, s in enumerate(splits)
    }
    assert np.abs(tiles["train"] - tiles["color_hard"]).mean() > 10  # each tile its own scene
    assert grid[64:, 64:].max() == 0  # the fourth cell is empty
    with pytest.raises(ConfigError, match="video_size=16: must be an integer >= 32"):
        evaluate_run(run_dir, ["train"], 1, tag="small", video_size=16)
    assert not (run_dir / "eval" / "small.json").exists()
