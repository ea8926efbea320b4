"""Replay buffer: frame stacks rebuilt from single frames, memory, and incremental zarr snapshots.

Frames here are synthetic (each carries its own global index) so every sampled transition can be
checked exactly against a naive reference that stores full stacked observations.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import deque
from pathlib import Path

import numpy as np
import pytest
import zarr

from sgqn_robot.replay import ReplayBuffer

FRAME = (3, 4, 4)


def frame(i: int) -> np.ndarray:
    f = np.empty(FRAME, np.uint8)
    f[:] = i % 251
    f[1] = (i // 251) % 251  # second channel disambiguates indices past 251
    return f


def fill(buf: ReplayBuffer, episodes: list[tuple[int, bool]], start: int = 0):
    """Run episodes of (length, terminated_at_end) with a gymnasium-style frame stacker (reset
    padding, oldest first); return the reference transitions keyed by their action id."""
    k, i, ref = buf.frame_stack, start, {}
    for length, terminated in episodes:
        stack = deque([frame(i)] * k, maxlen=k)
        obs = np.concatenate(stack)
        buf.start_episode(obs)
        for t in range(length):
            i += 1
            stack.append(frame(i))
            next_obs = np.concatenate(stack)
            done = terminated and t == length - 1
            action = np.array([i, -i], np.float32)
            buf.add(action, float(i) / 10, next_obs, done)
            ref[i] = (obs, next_obs, float(i) / 10, 0.0 if done else 1.0)
            obs = next_obs
        i += 1
    return ref


def check(buf: ReplayBuffer, ref: dict, rng: np.random.Generator, n: int = 256) -> set[int]:
    batch = buf.sample(n, rng)
    seen = set()
    for j in range(n):
        key = int(batch.action[j, 0])
        obs, next_obs, reward, not_done = ref[key]
        np.testing.assert_array_equal(batch.obs[j], obs)
        np.testing.assert_array_equal(batch.next_obs[j], next_obs)
        assert batch.reward[j] == pytest.approx(reward)
        assert batch.not_done[j] == not_done
        seen.add(key)
    assert batch.obs.dtype == np.uint8 and batch.action.dtype == np.float32
    assert batch.reward.dtype == np.float32 and batch.not_done.dtype == np.float32
    return seen


@pytest.mark.parametrize("k", [1, 3])
def test_samples_match_reference_stacks_across_episode_boundaries(k: int) -> None:
    buf = ReplayBuffer(1000, FRAME, 2, frame_stack=k)
    ref = fill(buf, [(5, False), (1, True), (7, False)])
    seen = check(buf, ref, np.random.default_rng(0), n=512)
    assert seen == set(ref)  # uniform sampling reaches every transition
    assert buf.sample(8, np.random.default_rng(1)).obs.shape == (8, 3 * k, 4, 4)


def test_ring_wraps_without_sampling_overwritten_frames() -> None:
    buf = ReplayBuffer(20, FRAME, 2, frame_stack=3)
    ref = fill(buf, [(9, False)] * 6)  # 60 frames through 20 slots
    seen = check(buf, ref, np.random.default_rng(0), n=512)
    # Only transitions whose 3-frame stack lies inside the last 20 frames are sampleable.
    assert min(seen) >= buf.total - buf.capacity + 1
    assert len(buf) == 20


def test_memory_is_within_ten_percent_of_raw_frames() -> None:
    shape = (3, 84, 84)
    buf = ReplayBuffer(10_000, shape, 3, frame_stack=3)
    raw = 10_000 * int(np.prod(shape))
    assert buf.nbytes <= 1.1 * raw, buf.nbytes / raw


def test_snapshot_appends_and_restores(tmp_path: Path) -> None:
    path = tmp_path / "replay.zarr"
    buf = ReplayBuffer(1000, FRAME, 2, frame_stack=2)
    ref = fill(buf, [(300, False)])
    buf.save(path)
    first_chunk = path / "data" / "frames" / "c" / "0" / "0" / "0" / "0"
    stamp = first_chunk.stat().st_mtime_ns
    ref |= fill(buf, [(50, True), (30, False)], start=buf.total)
    buf.save(path)
    assert first_chunk.stat().st_mtime_ns == stamp  # full chunks are not rewritten

    restored = ReplayBuffer(1000, FRAME, 2, frame_stack=2)
    restored.load(path)
    # The episode still open at save time is closed where the snapshot stops.
    assert restored.total == buf.total and restored.episode_ends == [*buf.episode_ends, buf.total]
    assert check(restored, ref, np.random.default_rng(0), n=512)

    # A checkpoint taken before the last episode: later frames are dropped, the cut episode ends.
    cut = ReplayBuffer(1000, FRAME, 2, frame_stack=2)
    cut.load(path, num_frames=301 + 20)
    assert cut.total == 321 and cut.episode_ends == [301, 321]
    keep = {i: v for i, v in ref.items() if i < 321}
    assert max(check(cut, keep, np.random.default_rng(0), n=512)) < 321
    # Resuming appends after the cut and overwrites the stale tail on the next save.
    keep |= fill(cut, [(10, False)], start=10_000)
    cut.save(path)
    again = ReplayBuffer(1000, FRAME, 2, frame_stack=2)
    again.load(path)
    assert again.total == 332
    check(again, keep, np.random.default_rng(0))


def test_load_ignores_an_episode_index_a_killed_save_left_unwritten(tmp_path: Path) -> None:
    path = tmp_path / "r.zarr"
    buf = ReplayBuffer(500, FRAME, 2, frame_stack=2)
    ref = fill(buf, [(20, False), (30, True), (10, False)])
    buf.save(path)
    # Killed between resizing meta/episode_ends and writing it: the new entries read as zeros.
    ends = zarr.open_group(str(path), mode="a")["meta/episode_ends"]
    ends.resize((len(buf.episode_ends) + 3,))
    restored = ReplayBuffer(500, FRAME, 2, frame_stack=2)
    restored.load(path)
    assert restored.episode_ends == [21, 52, 63]
    check(restored, ref, np.random.default_rng(0))


def test_load_into_smaller_ring_keeps_the_newest_frames(tmp_path: Path) -> None:
    buf = ReplayBuffer(500, FRAME, 2)
    ref = fill(buf, [(49, False)] * 4)
    buf.save(tmp_path / "r.zarr")
    small = ReplayBuffer(60, FRAME, 2)
    small.load(tmp_path / "r.zarr")
    assert min(check(small, ref, np.random.default_rng(0))) > buf.total - 60


def test_snapshot_rejects_wrong_frame_shape(tmp_path: Path) -> None:
    buf = ReplayBuffer(100, FRAME, 2)
    fill(buf, [(5, False)])
    buf.save(tmp_path / "r.zarr")
    with pytest.raises(ValueError, match="frames are"):
        ReplayBuffer(100, (3, 8, 8), 2).load(tmp_path / "r.zarr")


def test_stacks_rebuilt_from_the_real_env_equal_its_observations() -> None:
    from sgqn_robot.envs import make_env

    env = make_env("reach", image_size=64, frame_stack=3)
    buf = ReplayBuffer(200, (3, 64, 64), 2, frame_stack=3)
    rng = np.random.default_rng(0)
    ref = {}
    for episode in range(2):
        obs, _ = env.reset(seed=episode)
        buf.start_episode(obs)
        done = False
        while not done:
            action = rng.uniform(-1, 1, 2).astype(np.float32)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            buf.add(action, reward, next_obs, terminated)
            ref[float(action[0])] = (obs, next_obs)
            obs, done = next_obs, terminated or truncated
        buf.end_episode()
    env.close()
    batch = buf.sample(64, rng)
    for j in range(64):
        obs, next_obs = ref[float(batch.action[j, 0])]
        np.testing.assert_array_equal(batch.obs[j], obs)
        np.testing.assert_array_equal(batch.next_obs[j], next_obs)
    assert batch.not_done.min() == 1.0  # time-limit truncation is not a termination


_KILLED_SAVE = """
import os, signal, sys
import zarr.storage._local as local
sys.path.insert(0, {tests!r})
from test_replay import FRAME, fill
from sgqn_robot.replay import ReplayBuffer

buf = ReplayBuffer(1000, FRAME, 2, frame_stack=2)
fill(buf, [(120, True), (60, False)])
buf.save({path!r})  # the snapshot the last checkpoint counted on
print(buf.total, flush=True)
fill(buf, [(40, True), (200, False)], start=buf.total)
put, calls = local._put, [0]

def dying_put(path, value, exclusive=False):
    calls[0] += 1
    if calls[0] == {kill_at}:  # half of this file reaches the disk, then the process dies
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".dead.partial").write_bytes(bytes(value.as_buffer_like())[: 1 + len(value) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return put(path, value, exclusive)

local._put = dying_put
buf.save({path!r})
print(calls[0], flush=True)
"""


def _save_killed_at(path: Path, kill_at: int) -> tuple[subprocess.CompletedProcess, list[int]]:
    code = _KILLED_SAVE.format(tests=str(Path(__file__).parent), path=str(path), kill_at=kill_at)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return proc, [int(line) for line in proc.stdout.split()]


def test_a_save_sigkilled_mid_write_keeps_what_the_checkpoint_counted_on(tmp_path: Path) -> None:
    """A real process dies at every stage of `save` (frame chunks, the other columns, the
    episode index, the attributes), half a file on disk; the resume then loads the frames the
    last checkpoint counted, samples them exactly, and its next save repairs the store."""
    proc, (counted, writes) = _save_killed_at(tmp_path / "count.zarr", kill_at=0)
    assert proc.returncode == 0, proc.stderr
    assert counted == 182 and writes > 8
    for kill_at in sorted({1, 2, writes // 3, writes // 2, writes - 2, writes - 1, writes}):
        path = tmp_path / f"killed_at_{kill_at}.zarr"
        proc, printed = _save_killed_at(path, kill_at)
        assert proc.returncode == -signal.SIGKILL and printed == [counted], (kill_at, proc.stderr)
        ref = fill(ReplayBuffer(1000, FRAME, 2, frame_stack=2), [(120, True), (60, False)])
        restored = ReplayBuffer(1000, FRAME, 2, frame_stack=2)
        restored.load(path, num_frames=counted)
        assert restored.episode_ends == [121, 182], kill_at
        check(restored, ref, np.random.default_rng(kill_at))
        ref |= fill(restored, [(30, False)], start=5_000)  # the resumed run goes on and saves
        restored.save(path)
        again = ReplayBuffer(1000, FRAME, 2, frame_stack=2)
        again.load(path)
        assert again.total == 213 and again.episode_ends == [121, 182, 213], kill_at
        check(again, ref, np.random.default_rng(kill_at))
