"""Update time with glibc's default memory return vs `keep_freed_memory()` (what sgqn-train and
sgqn-eval call at start-up), side by side.

    python bench/malloc_reuse.py [--rounds 3] [--reps 3] [--threads 1] [--presets fast] [--agents drq sgqn]

Each cell runs `bench/update_throughput.py --reps <reps>` in a fresh process, with and without
`--keep-freed-memory`, alternating round by round so load from other work hits both alike.
Besides the median s/update it reports the child process's page faults and system CPU time
(whole process, start-up and FLOP counting included), where the difference comes from.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).with_name("update_throughput.py")
ROW = re.compile(r"^\| (\w+) \| (\w+) \| ([\d.]+) \|", re.M)
MODES = {"default": [], "keep": ["--keep-freed-memory"]}


def run_once(flags: list[str], args: argparse.Namespace) -> tuple[dict, float, float]:
    """({(preset, agent): s/update}, page faults, system CPU s) of one update_throughput run."""
    cmd = [sys.executable, str(BENCH), "--reps", str(args.reps), "--threads", str(args.threads)]
    cmd += ["--presets", *args.presets, "--agents", *args.agents, *flags]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    times = {(p, a): float(s) for p, a, s in ROW.findall(out)}
    return times, after.ru_minflt - before.ru_minflt, after.ru_stime - before.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reps", type=int, default=3, help="timed update pairs per process")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--presets", nargs="+", default=["fast"])
    p.add_argument("--agents", nargs="+", default=["drq", "sgqn"])
    args = p.parse_args()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, threads {args.threads}")
    times: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    faults: dict[str, list[float]] = defaultdict(list)
    sys_s: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.rounds):
        for mode, flags in MODES.items():
            res, flt, st = run_once(flags, args)
            for (preset, agent), s in res.items():
                times[(preset, agent, mode)].append(s)
            faults[mode].append(flt)
            sys_s[mode].append(st)
    print("\n| preset | agent | default s/update | keep s/update | default / keep |")
    print("|---|---|---|---|---|")
    for preset in args.presets:
        for agent in args.agents:
            d = statistics.median(times[(preset, agent, "default")])
            k = statistics.median(times[(preset, agent, "keep")])
            print(f"| {preset} | {agent} | {d:.3f} | {k:.3f} | {d / k:.2f} |")
    print("\n| per benchmark process (median) | default | keep |")
    print("|---|---|---|")
    print(
        f"| page faults | {statistics.median(faults['default']):.0f} |"
        f" {statistics.median(faults['keep']):.0f} |"
    )
    print(
        f"| system CPU s | {statistics.median(sys_s['default']):.1f} |"
        f" {statistics.median(sys_s['keep']):.1f} |"
    )


if __name__ == "__main__":
    main()
