"""End to end on the real thing: an agent built by ``sgqn_robot.agents`` and saved through
``sgqn_robot.checkpoint``, exported with ``sgqn-export`` (parity on frames rendered from all 12
splits), then driven by ``sgqn-run`` in the simulator and replayed with torch and the simulator
blocked."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from sgqn_robot.envs import SPLITS, make_env
from sgqn_robot.export import metadata as md
from sgqn_robot.export import onnx_export, run
from sgqn_robot.export.control_loop import ControlLoop
from sgqn_robot.export.interfaces import SimulatedClock
from sgqn_robot.export.onnx_export import ExportError
from sgqn_robot.export.policy import OnnxPolicy
from sgqn_robot.export.sim_adapters import SimSession, env_kwargs
from sgqn_robot.export.tick_log import TickLogger, open_log
from test_runner import BLOCKER

from sgqn_robot.agents import make_agent
from sgqn_robot.checkpoint import load_policy, save_checkpoint
from sgqn_robot.config import compose_config, to_plain
from sgqn_robot.evaluate import SplitResult, evaluate_run, write_results
from sgqn_robot.provenance import code_identity


def real_run_dir(
    root: Path, preset: str, task: str = "reach", frame_stack: int = 1, agent: str = "sgqn"
) -> Path:
    """A checkpoint as training writes it: the composed config, a freshly built agent."""
    overrides = [
        f"task={task}",
        f"agent={agent}",
        f"encoder={preset}",
        f"env.frame_stack={frame_stack}",
    ]
    cfg = to_plain(compose_config("train", overrides))
    size = cfg["env"]["image_size"]
    obs_shape = (3 * frame_stack, size, size)
    action_dim = make_env(task, image_size=size).action_space.shape[0]
    torch.manual_seed(0)
    built = make_agent(cfg["agent"], cfg["encoder"], obs_shape, action_dim, "cpu")
    run_dir = root / f"{task}-{preset}-{agent}"
    state = {"obs_shape": list(obs_shape), "action_dim": action_dim}
    save_checkpoint(run_dir, 7, built.state_dict(), {}, cfg, state)
    return run_dir


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run dir, exported model) for the fast preset with a 3-frame stack and the saliency graph."""
    root = tmp_path_factory.mktemp("fast")
    run_dir = real_run_dir(root, "fast", frame_stack=3)
    evaluate_run(run_dir, ["train", "test2"], episodes=1, tag="final")  # what the model records
    model = root / "actor.onnx"
    argv = [str(run_dir), "-o", str(model), "--with-saliency", "--per-split", "2"]
    assert onnx_export.main(argv) == 0
    return run_dir, model


@pytest.fixture(scope="module")
def sim_log(fast: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    log = tmp_path_factory.mktemp("log") / "run.zarr"
    argv = [str(fast[1]), "--sim", "reach", "--split", "test2", "--episodes", "2", "--clock",
            "sim", "--log", str(log), "--saliency"]  # fmt: skip
    assert run.main(argv) == 0
    return log


def test_export_records_metadata_and_parity_on_every_split(fast: tuple[Path, Path]) -> None:
    session = ort.InferenceSession(str(fast[1]), providers=["CPUExecutionProvider"])
    meta = md.ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map)
    assert (meta.task, meta.agent, meta.step, meta.action_space) == ("reach", "sgqn", 7, "xy")
    assert (meta.obs_shape, meta.frame_stack, meta.image_size) == ((9, 64, 64), 3, 64)
    assert meta.action_low == (-1.0, -1.0) and meta.control_period == pytest.approx(0.04)
    assert meta.workspace is not None and meta.action_scale_m == 0.05
    assert set(meta.parity["per_split_max_abs_err"]) == set(SPLITS)
    assert meta.parity["max_abs_err"] < 1e-5 and meta.training_config["encoder"]["preset"] == "fast"
    # a checkpoint without a recorded `code` (from before 2026-11-28) takes the exporter's
    assert meta.git_sha == meta.export_git_sha == code_identity()["git_sha"] != ""
    assert (fast[1].parent / meta.saliency_graph).is_file()
    final = json.loads((fast[0] / "eval" / "final.json").read_text())["splits"]
    assert meta.evaluation["file"] == "eval/final.json" and meta.evaluation["episodes"] == 1
    assert meta.evaluation["splits"]["test2"]["return_mean"] == final["test2"]["return_mean"]


def test_info_says_what_the_model_expects_and_which_code_made_it(
    fast: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run.main([str(fast[1]), "--info"]) == 0
    out = capsys.readouterr().out
    sha = code_identity()["git_sha"]
    for expected in [
        "sgqn policy for reach, 7 env steps (encoder fast, seed 1)",
        f"trained by   code {sha} (sgqn-robot {code_identity()['package_version']})",
        "uint8 NCHW [9, 64, 64]: 3 frame(s) of 64x64 RGB",
        "2 actions (xy) in [-1, 1] x [-1, 1], 0.05 m end-effector step per unit",
        "every 40.0 ms (25.0 Hz)",
        "robot_base frame, low [",
        "on 24 frames of 12 splits",
        f"saliency     {fast[1].stem}",
        "evaluated    eval/final.json, 1 episode per split:\n      train ",
    ]:
        assert expected in out, (expected, out)


def test_export_records_the_fullest_evaluation_of_the_exported_step(tmp_path: Path) -> None:
    def results(episodes: int, splits: list[str]) -> dict[str, SplitResult]:
        return {s: SplitResult([float(episodes)] * episodes, [True] * episodes) for s in splits}

    run_dir = real_run_dir(tmp_path, "fast")  # its checkpoint is step 7
    assert onnx_export.evaluation_of(run_dir, 7) == {}
    write_results(results(2, ["train", "test1"]), run_dir / "eval", "step_0000007", 7)
    write_results(results(5, ["train", "test1"]), run_dir / "eval", "final", 7)
    write_results(results(9, ["train"]), run_dir / "eval", "eval_step_0000007_own_textures", 7)
    write_results(results(9, ["train", "test1"]), run_dir / "eval", "older", 6)
    (run_dir / "eval" / "notes.json").write_text('{"not": "an evaluation"}')
    ev = onnx_export.evaluation_of(run_dir / "checkpoints" / "latest", 7)
    assert (ev["file"], ev["episodes"], list(ev["splits"])) == (
        "eval/final.json",
        5,
        ["train", "test1"],
    )
    assert ev["splits"]["test1"] == {"return_mean": 5.0, "return_std": 0.0, "success_rate": 1.0}


def test_export_names_the_code_that_trained_the_weights(tmp_path: Path) -> None:
    """A run trained at one commit and exported from another checkout names both, apart."""
    run_dir = real_run_dir(tmp_path, "fast")
    state_file = run_dir / "checkpoints" / "latest" / "state.json"
    state = json.loads(state_file.read_text())
    trained = {"git_sha": "0123abc-dirty", "package_version": "0.0.1"}
    history = [
        {"git_sha": "fedcba9", "package_version": "0.0.1", "from_step": 0},
        {**trained, "from_step": 5},
    ]  # a run resumed at step 5 under another commit
    state_file.write_text(json.dumps(state | {"code": trained, "code_history": history}))
    policy = load_policy(run_dir)
    env = make_env("reach", image_size=64)
    try:
        meta = onnx_export.metadata_from_policy(policy, env)
    finally:
        env.close()
    meta = md.ModelMetadata.from_props(meta.to_props())  # as the runner reads it back
    assert (meta.git_sha, meta.package_version) == ("0123abc-dirty", "0.0.1")
    assert meta.export_git_sha == code_identity()["git_sha"]
    assert meta.code_history == history
    assert (
        "trained by   code fedcba9 (sgqn-robot 0.0.1) from step 0, then 0123abc-dirty "
        "(sgqn-robot 0.0.1) from step 5; exported by code"
    ) in meta.describe()


def test_workspace_box_and_sim_pose_share_the_robot_base_frame(fast: tuple[Path, Path]) -> None:
    """The box a real arm's base-frame pose is checked against, and the pose the sim reports."""
    from sgqn_robot.envs.scene import ROBOT_BASE

    meta = OnnxPolicy(fast[1]).meta
    session = SimSession("reach", "train", SimulatedClock(), **env_kwargs(meta))
    try:
        session.reset(seed=0)
        low, high = np.subtract(session.env.unwrapped.WORKSPACE, ROBOT_BASE)
        pos = session.robot.state().eef_pos
        world = np.asarray(session.info["eef_pos"])
    finally:
        session.close()
    assert meta.workspace["frame"] == "robot_base"
    np.testing.assert_allclose([meta.workspace["low"], meta.workspace["high"]], [low, high])
    np.testing.assert_allclose(pos, world - ROBOT_BASE, atol=1e-6)
    assert np.all(pos >= low) and np.all(pos <= high)
    # the shipped reach model (as every export, older world-frame ones included) has this box
    shipped = Path(md.__file__).parent / "models" / "reach_sgqn_fast.onnx"
    assert OnnxPolicy(shipped).meta.workspace == meta.workspace


def test_paper_preset_exports_with_parity(tmp_path: Path) -> None:
    run_dir = real_run_dir(tmp_path, "paper", task="peg_in_box")
    meta = onnx_export.export_checkpoint(run_dir, tmp_path / "paper.onnx", per_split=1)
    assert meta.obs_shape == (3, 84, 84) and meta.action_dim == 3
    assert len(meta.parity["per_split_max_abs_err"]) == len(SPLITS)
    obs = make_env("peg_in_box", split="camera", seed=3).reset(seed=3)[0]
    with torch.no_grad():
        ref = load_policy(run_dir).actor(torch.from_numpy(obs[None])).numpy()[0]
    np.testing.assert_allclose(OnnxPolicy(tmp_path / "paper.onnx")(obs), ref, rtol=1e-3, atol=1e-5)


def test_export_of_a_missing_run_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert onnx_export.main([str(tmp_path / "nope"), "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sgqn-export: error: no checkpoint") and "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()


def test_with_saliency_on_a_non_sgqn_run_fails_before_rendering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = real_run_dir(tmp_path, "fast", agent="sac")

    def no_rendering(*args: object, **kwargs: object) -> None:
        raise AssertionError("rendered every split before checking --with-saliency")

    monkeypatch.setattr(onnx_export, "rendered_observations", no_rendering)
    with pytest.raises(ExportError, match="--with-saliency needs an sgqn checkpoint"):
        onnx_export.export_checkpoint(run_dir, tmp_path / "m.onnx", with_saliency=True)
    assert not (tmp_path / "m.onnx").exists()


def test_model_for_another_task_is_refused_before_the_sim_starts(
    fast: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run.main([str(fast[1]), "--sim", "peg_in_box", "--episodes", "1"]) == 2
    assert "trained on 'reach', not --sim 'peg_in_box'" in capsys.readouterr().err


def test_sim_closed_loop_logs_every_tick(sim_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    g = open_log(sim_log)
    assert g["meta/episode_ends"][:].tolist() == [50, 100]
    assert g["frame"].shape == (100, 3, 64, 64) and g["saliency"].shape == (100, 64, 64)
    assert not g["overrun"][:].any()
    assert np.all(np.abs(g["safe_action"][:]) <= 1)
    assert g.attrs["sim"] == {"task": "reach", "split": "test2", "textures": None}


def test_sim_clock_reports_wall_time_not_zero_latencies(
    fast: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(fast[1]), "--sim", "reach", "--episodes", "1", "--max-ticks", "5", "--clock", "sim"]
    assert run.main(argv) == 0
    timing = capsys.readouterr().out.splitlines()[-1]
    assert timing.startswith("timing: sim clock, no waiting: 5 ticks in "), timing
    assert "latency" not in timing


def test_loop_feeds_the_policy_exactly_the_training_observations(fast: tuple[Path, Path]) -> None:
    """The loop's own preprocessing + frame stack on single sim frames must equal the env's
    stacked observation, so the ONNX actions equal the torch actor's on the training obs."""
    policy = OnnxPolicy(fast[1])
    clock = SimulatedClock()
    session = SimSession("reach", "color_hard", clock, **env_kwargs(policy.meta))
    session.reset(seed=5)
    log_dir = fast[0] / "loop.zarr"
    with TickLogger(log_dir, frame_shape=(3, 64, 64), action_dim=2) as log:
        ControlLoop(policy, session.camera, session.robot, clock, logger=log).run(max_ticks=12)
    g = open_log(log_dir)
    reference = make_env("reach", split="color_hard", image_size=64, frame_stack=3)
    obs, _ = reference.reset(seed=5)
    actor = load_policy(fast[0]).actor
    for t in range(12):
        np.testing.assert_array_equal(obs[-3:], g["frame"][t])
        with torch.no_grad():
            ref = actor(torch.from_numpy(obs[None])).numpy()[0]
        np.testing.assert_allclose(g["raw_action"][t], ref, rtol=1e-3, atol=1e-5)
        obs, *_ = reference.step(g["safe_action"][t])


def test_runner_replays_real_frames_with_torch_and_simulator_blocked(
    fast: tuple[Path, Path], sim_log: Path, tmp_path: Path
) -> None:
    code = BLOCKER + textwrap.dedent(f"""
        from sgqn_robot.export import interfaces, replay_example, run
        res, robot = replay_example.replay({str(fast[1])!r}, {str(sim_log)!r},
                                           interfaces.SimulatedClock(),
                                           log={str(tmp_path / "replay.zarr")!r})
        # the recorded stream ends: a normal end after its 100 frames, not a stale-frame fault
        assert res.stop_reason == "end_of_stream" and len(robot.actions) == 100, res
        assert run.main(["--replay", {str(tmp_path / "replay.zarr")!r}]) == 0
        bad = [k for k in sys.modules if k.split(".")[0] in ("torch", "mujoco", "robosuite")]
        assert not bad, bad
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    replayed = open_log(tmp_path / "replay.zarr")["raw_action"][:100]
    recorded = open_log(sim_log)["raw_action"][:]
    # same frames, same model; the replay's stack never resets between the two episodes
    np.testing.assert_allclose(replayed[:50], recorded[:50], atol=1e-6)


def test_seed_help_names_the_episodes_sgqn_eval_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """README tells users to compare the loop with `sgqn-eval` on the same episodes via --seed;
    the number in the help must follow the evaluator's seed."""
    from sgqn_robot.evaluate import EVAL_SEED

    with pytest.raises(SystemExit):
        run.parse_args(["--help"])
    assert f"SEED + i ({EVAL_SEED}: the episodes sgqn-eval runs)" in " ".join(
        capsys.readouterr().out.split()
    )


def test_sim_runs_several_splits_with_one_summary_line_each(
    fast: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(fast[1]), "--sim", "reach", "--split", "train,test2", "--episodes", "2",
            "--max-ticks", "3", "--clock", "sim"]  # fmt: skip
    assert run.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    summaries = [line.split(":")[0] for line in out if ": mean return " in line]
    assert summaries == ["reach/train", "reach/test2"]
    assert sum(line.startswith("episode ") for line in out) == 4
    assert out[-1].startswith("timing: sim clock, no waiting: 12 ticks in "), out[-1]
    assert run.sim_splits("all") == list(SPLITS)


def test_sim_video_shows_the_first_episode_of_each_split(
    fast: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    gif = tmp_path / "rollouts.gif"
    argv = [str(fast[1]), "--sim", "reach", "--split", "train,color_hard", "--episodes", "2",
            "--max-ticks", "3", "--clock", "sim", "--video", str(gif)]  # fmt: skip
    assert run.main(argv) == 0
    assert f"video of each split's first episode: {gif}" in capsys.readouterr().out
    video = Image.open(gif)
    assert video.size == (256, 128) and video.n_frames == 4  # 2 tiles; reset + 3 ticks of ep 0
    video.seek(3)
    rgb = np.asarray(video.convert("RGB")).astype(int)
    assert np.abs(rgb[:, :128] - rgb[:, 128:]).mean() > 10  # each split its own scene
    assert run.main([*argv[:-1], str(tmp_path / "rollouts.png")]) == 2
    assert "--video " in capsys.readouterr().err and not (tmp_path / "rollouts.png").exists()
