"""Update throughput of every agent x encoder preset, side by side in one run.

For each preset all agents are timed round-robin on the same random batch (so load drift from
other processes on the machine hits them alike): one warm-up pair of updates (an odd step: critic
only; an even step: + actor, target and SGQN's attribution step), then `--reps` timed pairs; the
median pair / 2 is the cost of one update. FLOPs per update come from torch's FlopCounterMode
(convolutions and matmuls, forward and backward) on the warm-up pair, and are compared with the
machine's conv / matmul peak measured in the same run.

    python bench/update_throughput.py            # batch 128, 3 timed pairs per config (~1 min)
    python bench/update_throughput.py --quick    # 1 timed pair per config (<1 min on 2 idle cores)
    python bench/update_throughput.py --presets fast --agents drq sgqn \
        --variant "sgqn aux_update_freq=1"      # an agent setting's cost, beside the defaults
"""

from __future__ import annotations

import argparse
import ast
import platform
import statistics
import time
from datetime import UTC, datetime

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from sgqn_robot.agents import AGENTS, PRESETS, make_agent
from sgqn_robot.agents.networks import EncoderPreset
from sgqn_robot.malloc_reuse import keep_freed_memory
from sgqn_robot.replay import Batch

# The goal from the reference implementation's cost on this machine type (6.45-6.82 s/update).
PAPER_SGQN_GOAL_S = 3.3

# Trunks considered for the `fast` preset (64 px, 32 filters); `--fast-candidates` times them.
FAST_CANDIDATES = {
    "64px s2-s1x3 (25x25)": EncoderPreset(64, (2, 1, 1, 1), decoder_channels=(32, 32)),
    "64px s2-s2 (15x15)": EncoderPreset(64, (2, 2), decoder_channels=(32, 32)),
    "64px s2-s2-s1 (13x13)": EncoderPreset(64, (2, 2, 1), decoder_channels=(32, 32)),
    "64px s2-s2-s1-s1 (11x11)": EncoderPreset(64, (2, 2, 1, 1), decoder_channels=(32, 32)),
    "64px s2-s2-s1x4 (7x7)": EncoderPreset(64, (2, 2, 1, 1, 1, 1), decoder_channels=(32, 32)),
}


class _GlobalOnly:
    """Stand-in for FlopCounterMode's module tracker, whose tensor hooks make
    `autograd.grad` w.r.t. a leaf (SGQN's attribution) fail; we only need the global count."""

    parents = ("Global",)

    def __enter__(self) -> _GlobalOnly:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def count_flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        fn()
    return counter.get_total_flops()


def _timed(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure_peaks(reps: int) -> dict[str, float]:
    """GFLOP/s of a trunk-like conv (32->32, 3x3, channels_last) and of a 1024^3 matmul."""
    x = torch.randn(128, 32, 39, 39).contiguous(memory_format=torch.channels_last)
    w = torch.randn(32, 32, 3, 3).contiguous(memory_format=torch.channels_last)
    conv_flop = 2 * 128 * 32 * 37 * 37 * 32 * 9
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    return {
        "conv": conv_flop / _timed(lambda: F.conv2d(x, w), reps) / 1e9,
        "matmul": 2 * 1024**3 / _timed(lambda: a @ b, reps) / 1e9,
    }


def random_batch(batch: int, obs_shape: tuple[int, int, int], action_dim: int) -> Batch:
    rng = np.random.default_rng(0)
    return Batch(
        obs=rng.integers(0, 256, (batch, *obs_shape), dtype=np.uint8),
        action=rng.uniform(-1, 1, (batch, action_dim)).astype(np.float32),
        reward=rng.normal(size=batch).astype(np.float32),
        next_obs=rng.integers(0, 256, (batch, *obs_shape), dtype=np.uint8),
        not_done=np.ones(batch, np.float32),
    )


def parse_variant(text: str) -> tuple[str, dict[str, object]]:
    """`"sgqn aux_update_freq=1 mask_quantile=0.9"` -> (that text, an agent config), so a
    setting's cost is timed beside the defaults in the same round-robin."""
    name, *pairs = text.split()
    if name not in AGENTS:
        raise SystemExit(f"--variant {text!r}: unknown agent {name!r}; choose from {list(AGENTS)}")
    cfg: dict[str, object] = {"name": name}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(
                f"--variant {text!r}: {pair!r} is not key=value (e.g. aux_update_freq=1)"
            )
        try:
            cfg[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            cfg[key] = value
    return text, cfg


def bench_preset(
    preset: str,
    agents: dict[str, dict[str, object]],
    batch_size: int,
    frame_stack: int,
    action_dim: int,
    reps: int,
    channels_last: bool,
) -> dict[str, dict[str, float]]:
    size = PRESETS[preset].image_size
    obs_shape = (3 * frame_stack, size, size)
    batch = random_batch(batch_size, obs_shape, action_dim)
    built, out = {}, {}
    for name, agent_cfg in agents.items():
        torch.manual_seed(0)
        encoder = {"preset": preset, "channels_last": channels_last}
        try:
            built[name] = make_agent(agent_cfg, encoder, obs_shape, action_dim, "cpu")
        except ValueError as err:
            raise SystemExit(f"{name}: {err}") from None
        agent = built[name]
        flops = count_flops(lambda agent=agent: (agent.update(batch, 1), agent.update(batch, 2)))
        out[name] = {"gflop": flops / 2 / 1e9}
    pairs: dict[str, list[float]] = {name: [] for name in agents}
    for rep in range(reps):
        for name, agent in built.items():
            start = time.perf_counter()
            agent.update(batch, 2 * rep + 3)
            agent.update(batch, 2 * rep + 4)
            pairs[name].append(time.perf_counter() - start)
    for name in agents:
        out[name]["s"] = statistics.median(pairs[name]) / 2
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 timed pair per config")
    parser.add_argument("--reps", type=int, default=3, help="timed update pairs per config")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--frame-stack", type=int, default=1)
    parser.add_argument("--action-dim", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", nargs="+", default=["paper", "fast"], choices=sorted(PRESETS))
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar='"AGENT KEY=VALUE ..."',
        help='also time an agent with changed settings, e.g. "sgqn aux_update_freq=1"',
    )
    parser.add_argument("--nchw", action="store_true", help="channels_last off (for comparison)")
    parser.add_argument(
        "--fast-candidates", action="store_true", help="also time the trunks FAST_CANDIDATES lists"
    )
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="raise glibc's mmap/trim thresholds first, as sgqn-train does (bench/malloc_reuse.py)",
    )
    args = parser.parse_args()
    if args.keep_freed_memory:
        keep_freed_memory()
    if args.fast_candidates:
        PRESETS.update(FAST_CANDIDATES)
        args.presets += list(FAST_CANDIDATES)
    reps = 1 if args.quick else args.reps
    agents = {name: {"name": name} for name in args.agents}
    agents.update(parse_variant(text) for text in args.variant)
    torch.set_num_threads(args.threads)

    peaks = measure_peaks(reps=3 if args.quick else 10)
    peak = max(peaks.values())
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"# update throughput, {now}, torch {torch.__version__}, {platform.processor() or 'cpu'},"
        f" {args.threads} threads, batch {args.batch}, frame_stack {args.frame_stack},"
        f" action_dim {args.action_dim}, {reps} timed pair(s) per config,"
        f" {'NCHW' if args.nchw else 'channels_last'}"
    )
    print(
        f"# peak: conv {peaks['conv']:.0f} GFLOP/s (32->32 3x3, channels_last),"
        f" matmul {peaks['matmul']:.0f} GFLOP/s (1024^3)\n"
    )
    print("| preset | agent | s/update | updates/s | x drq | GFLOP/update | GFLOP/s | % of peak |")
    print("|---|---|---|---|---|---|---|---|")
    results = {}
    for preset in args.presets:
        results[preset] = res = bench_preset(
            preset,
            agents,
            args.batch,
            args.frame_stack,
            args.action_dim,
            reps,
            channels_last=not args.nchw,
        )
        for name, r in res.items():
            ratio = f"{r['s'] / res['drq']['s']:.2f}" if "drq" in res else "-"
            gflops = r["gflop"] / r["s"]
            print(
                f"| {preset} | {name} | {r['s']:.3f} | {1 / r['s']:.2f} | {ratio} |"
                f" {r['gflop']:.1f} | {gflops:.0f} | {100 * gflops / peak:.0f}% |"
            )
    if "sgqn" in results.get("paper", {}):
        s = results["paper"]["sgqn"]["s"]
        verdict = "met" if s <= PAPER_SGQN_GOAL_S else "missed"
        print(
            f"\nsgqn at paper shapes: {s:.2f} s/update (goal <= {PAPER_SGQN_GOAL_S} s: {verdict})"
        )


if __name__ == "__main__":
    main()
