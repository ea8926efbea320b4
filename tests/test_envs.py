"""Environment checks on the real simulator (MuJoCo + software EGL rendering, no mocks)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from sgqn_robot.envs import SPLITS, TASKS, gallery, make_env, oracle, textures
from sgqn_robot.envs.oracle import oracle_action, success_rate
from sgqn_robot.envs.splits import FIXED_TEST_SCENES, RANDOMIZED_SPLITS

ALL = [(t, s) for t in TASKS for s in SPLITS]


@pytest.fixture
def env_factory():
    made: list[gym.Env] = []

    def make(task: str, split: str = "train", **kw) -> gym.Env:
        env = make_env(task, split=split, **kw)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


@pytest.mark.parametrize(("task", "split"), ALL)
def test_check_env_passes(env_factory, task: str, split: str) -> None:
    env = env_factory(task, split)
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert obs.dtype == np.uint8 and obs.shape == (3, 84, 84)
    assert {"is_success", "eef_pos", "dist_xy", "dist_xyz"} <= set(info)


def test_registered_ids_and_spaces() -> None:
    assert set(TASKS.values()) <= set(gym.registry)
    env = gym.make(TASKS["peg_in_box"], split="test2", frame_stack=3, image_size=64)
    try:
        assert env.observation_space.shape == (9, 64, 64)
        assert env.action_space.shape == (3,)
        assert env.unwrapped.control_period == pytest.approx(0.04)
    finally:
        env.close()
    reach = gym.make(TASKS["reach"])
    try:
        assert reach.action_space.shape == (2,)
    finally:
        reach.close()


def test_same_seed_same_observations_across_envs(env_factory) -> None:
    for split in ("train", "texture", "lighting"):
        a, b = env_factory("peg_in_box", split), env_factory("peg_in_box", split)
        oa, _ = a.reset(seed=11)
        ob, _ = b.reset(seed=11)
        np.testing.assert_array_equal(oa, ob)
        act = np.array([0.3, -0.5, -1.0], np.float32)
        np.testing.assert_array_equal(a.step(act)[0], b.step(act)[0])


@pytest.mark.parametrize("split", RANDOMIZED_SPLITS)
def test_randomized_episodes_look_different(env_factory, split: str) -> None:
    env, plain = env_factory("reach", split), env_factory("reach", "train")
    o1, _ = env.reset(seed=1)
    o2, _ = env.reset(seed=2)
    p1, _ = plain.reset(seed=1)
    p2, _ = plain.reset(seed=2)
    # Same seed, same layout on every split: o - p is the split's visible change...
    assert np.abs(o1.astype(int) - p1).mean() > 1.0
    assert np.abs(o2.astype(int) - p2).mean() > 1.0
    # ...and the look itself is drawn anew per episode (a fixed change, as in test1, would not
    # change it; the layout is not part of it).
    looks = [_look(env)]  # episode 2's
    for seed in (3, 4):
        env.reset(seed=seed)
        looks.append(_look(env))
    assert len(set(looks)) == 3


def _look(env: gym.Env) -> str:
    """Fingerprint of everything a split may change, minus the task layout."""
    m = env.unwrapped.model
    fields = (m.mat_rgba, m.light_dir, m.light_diffuse, m.light_ambient, m.light_castshadow)
    fields += (m.vis.headlight.diffuse, m.vis.headlight.ambient, m.cam_pos, m.cam_quat)
    fields += (m.cam_fovy, m.geom_size, m.tex_data)
    return hashlib.sha1(b"".join(np.ascontiguousarray(f).tobytes() for f in fields)).hexdigest()


@pytest.mark.parametrize("split", ["train", "test3"])
def test_fixed_splits_keep_their_look(env_factory, split: str) -> None:
    env = env_factory("reach", split)
    looks = set()
    for seed in (1, 2):
        env.reset(seed=seed)
        looks.add(_look(env))
    assert len(looks) == 1


def test_fixed_test_scenes_change_looks_not_layout(env_factory) -> None:
    base = env_factory("reach", "train")
    p, pinfo = base.reset(seed=5)
    for split in FIXED_TEST_SCENES:
        env = env_factory("reach", split)
        o, info = env.reset(seed=5)
        assert np.abs(o.astype(int) - p).mean() > 10
        np.testing.assert_allclose(info["target_pos"], pinfo["target_pos"])
        np.testing.assert_allclose(info["eef_pos"], pinfo["eef_pos"], atol=1e-6)


def test_fixed_test_scenes_keep_robot_and_task_colours(env_factory) -> None:
    """As in the paper's scene files: sky/wall, floor and pedestal take the split's colour; the
    robot (arm, gripper, fingers) and the task objects look as they do in training."""

    def rgba(env: gym.Env, name: str) -> np.ndarray:
        model = env.unwrapped.model
        return model.mat_rgba[model.material(f"mat_{name}").id].copy()

    base = env_factory("peg_in_box", "train")
    kept = ("robot", "robot_dark", "target", "box", "peg")
    for split, (colour, _) in FIXED_TEST_SCENES.items():
        env = env_factory("peg_in_box", split)
        for name in kept:
            np.testing.assert_array_equal(rgba(env, name), rgba(base, name), err_msg=name)
        for name in ("floor", "wall", "pedestal"):
            np.testing.assert_allclose(rgba(env, name)[:3], colour, err_msg=name)


def test_frame_stack_oldest_first(env_factory) -> None:
    env = env_factory("reach", frame_stack=3)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (9, 84, 84)
    np.testing.assert_array_equal(obs[:3], obs[6:])
    obs2, *_ = env.step(np.array([1.0, 1.0], np.float32))
    np.testing.assert_array_equal(obs2[:6], obs[3:])
    assert not np.array_equal(obs2[6:], obs[6:])


def test_episode_truncates_after_50_steps(env_factory) -> None:
    env = env_factory("reach")
    env.reset(seed=0)
    for i in range(50):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        assert not term
        assert trunc == (i == 49)


def test_bad_inputs_raise_clear_errors(env_factory) -> None:
    with pytest.raises(ValueError, match="unknown task 'pick'.*reach, peg_in_box"):
        make_env("pick")
    with pytest.raises(ValueError, match="unknown split 'test9'.*train, test1"):
        make_env("reach", split="test9")
    with pytest.raises(ValueError, match="camera"):
        make_env("reach", camera="nope")
    env = env_factory("reach")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([np.nan, 0.0], np.float32))


def test_out_of_range_action_is_clipped(env_factory) -> None:
    a, b = env_factory("peg_in_box"), env_factory("peg_in_box")
    a.reset(seed=4)
    b.reset(seed=4)
    oa, ra, *_, ia = a.step(np.array([7.0, -3.0, 2.0]))
    ob, rb, *_, ib = b.step(np.array([1.0, -1.0, 1.0]))
    np.testing.assert_array_equal(oa, ob)
    assert ra == rb
    np.testing.assert_allclose(ia["eef_pos"], ib["eef_pos"])


def test_render_gives_larger_frame(env_factory) -> None:
    env = env_factory("peg_in_box", "texture", render_mode="rgb_array")
    check_env(env.unwrapped)  # includes gymnasium's render checks
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8
    env.reset(seed=1)  # the new episode's textures reach the render() renderer too
    fresh = env_factory("peg_in_box", "texture", render_mode="rgb_array")
    fresh.reset(seed=1)
    assert not np.array_equal(frame, fresh.render())  # episode 1 does look different
    np.testing.assert_array_equal(env.render(), fresh.render())


@pytest.mark.parametrize(("task", "split"), ALL)
def test_oracle_solves_every_split(env_factory, task: str, split: str) -> None:
    rate, _ = success_rate(env_factory(task, split), episodes=2, seed=100)
    assert rate == 1.0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--splits", "train", "tset1"], "unknown split 'tset1'; valid splits: train, test1,"),
        (["--tasks", "reach", "rech"], "unknown task 'rech'; valid tasks: reach, peg_in_box"),
        (["--tasks", "reach", "--splits", "train", "--episodes", "0"], "--episodes 0: must be"),
    ],
)
def test_oracle_cli_refuses_bad_options_in_one_line_before_any_episode(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    ran: list[gym.Env] = []
    monkeypatch.setattr(oracle, "success_rate", lambda env, n: ran.append(env) or (1.0, 0.0))
    with pytest.raises(SystemExit) as stop:
        oracle.main(flags)
    out, err = capsys.readouterr()
    assert stop.value.code == 2 and ran == [] and out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"python -m sgqn_robot.envs.oracle: error: {message}"), err


def test_oracle_action_is_in_bounds(env_factory) -> None:
    env = env_factory("peg_in_box")
    env.reset(seed=0)
    a = oracle_action(env)
    assert a.shape == (3,) and np.all(np.abs(a) <= 1)


def _photo(path, colour) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    img = np.clip(np.array(colour) + rng.integers(-20, 20, (64, 48, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)


def test_user_textures_map_onto_table(env_factory, tmp_path) -> None:
    _photo(tmp_path / "lab_table.jpg", (200, 40, 40))
    _photo(tmp_path / "floor.png", (40, 200, 40))
    plain = env_factory("reach", "train")
    mine = env_factory("reach", "test3", textures=tmp_path)
    p, _ = plain.reset(seed=0)
    o, _ = mine.reset(seed=0)
    # The table fills the bottom of the view: it is now mostly red.
    bottom = o[:, 70:, 20:60].reshape(3, -1).mean(axis=1)
    assert bottom[0] > bottom[1] + 60 and bottom[0] > bottom[2] + 60
    assert np.abs(o.astype(int) - p).mean() > 10


def test_bad_texture_files_are_named(tmp_path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.png.*not a readable image"):
        make_env("reach", textures=[bad])
    with pytest.raises(ValueError, match="missing.jpg: no such file"):
        make_env("reach", textures=[tmp_path / "missing.jpg"])
    with pytest.raises(ValueError, match="unknown surface"):
        make_env("reach", textures={"ceiling": bad})


def _digest(path) -> str:
    return hashlib.sha256(textures.load_image(path).tobytes()).hexdigest()


def test_augmentation_bank_is_disjoint_from_test_bank() -> None:
    aug, test = textures.augmentation_bank(), textures.test_bank_files()
    assert len(aug) >= 10 and len(test) >= 10
    assert all(p.is_file() for p in aug + test)
    assert not {p.name for p in aug} & {p.name for p in test}
    assert not {_digest(p) for p in aug} & {_digest(p) for p in test}
    fixed = {t for _, t in FIXED_TEST_SCENES.values() if t.endswith(".png")}
    assert fixed <= {p.name for p in test}


def test_gallery_writes_picture(tmp_path) -> None:
    from PIL import Image
    from sgqn_robot.envs.gallery import save_gallery

    out = save_gallery(tmp_path / "g.png", size=32)
    w, h = Image.open(out).size
    assert w > 32 * len(SPLITS) and h > 32 * len(TASKS)


def test_gallery_cli_writes_only_where_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    written: list[str] = []
    monkeypatch.setattr(gallery, "save_gallery", lambda out, size, seed: written.append(out))
    with pytest.raises(SystemExit) as stop:  # no default that could overwrite the shipped picture
        gallery.main([])
    assert stop.value.code == 2 and written == [] and "--out" in capsys.readouterr().err
    gallery.main(["--out", str(tmp_path / "g.png")])
    assert written == [str(tmp_path / "g.png")]
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    documented = re.findall(r"python -m sgqn_robot\.envs\.gallery([^`\n]*)", readme)
    assert documented and all("--out docs/images/splits.png" in cmd for cmd in documented)


def test_user_texture_paths_expand_home(tmp_path, monkeypatch) -> None:
    _photo(tmp_path / "table.png", (200, 40, 40))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert set(textures.user_textures("~")) == {"table"}
    assert textures.load_image("~/table.png").shape[-1] == 3


def test_a_written_mesh_reads_back_the_same(tmp_path: Path) -> None:
    """The decimated meshes are written as binary STL (atomically, readable by others) and read
    back through mujoco's loader: a tetrahedron survives the round trip."""
    from sgqn_robot.envs.asset_paths import _read_mesh, write_binary_stl

    verts = np.array([[0, 0, 0], [0.1, 0, 0], [0, 0.2, 0], [0, 0, 0.3]], dtype=np.float64)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    path = tmp_path / "tetra.stl"
    write_binary_stl(path, verts, faces)
    umask = os.umask(0o022)
    os.umask(umask)
    assert os.listdir(tmp_path) == ["tetra.stl"] and path.stat().st_mode & 0o777 == 0o666 & ~umask
    read, read_faces = _read_mesh(path)
    assert len(read_faces) == 4
    assert sorted(map(tuple, np.round(read, 6))) == sorted(map(tuple, verts))
