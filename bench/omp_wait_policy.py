"""OpenMP wait policy: update time with torch's default (spinning) vs OMP_WAIT_POLICY=PASSIVE,
on an idle machine and with busy processes beside it (a second training run, a test suite).

    python bench/omp_wait_policy.py [--busy 0 2] [--rounds 2] [--threads 2]

Each cell runs `bench/update_throughput.py --quick --presets fast --agents drq sgqn` in a fresh
process (the policy is read when torch loads OpenMP), policies alternating round by round; `busy`
pure-Python spinning processes stand in for the other work. Prints the median s/update per cell
and default / PASSIVE ratios as a markdown table.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).with_name("update_throughput.py")
ROW = re.compile(r"^\| fast \| (\w+) \| ([\d.]+) \|", re.M)
POLICIES = {"default": None, "PASSIVE": "PASSIVE"}


def time_updates(policy: str | None, threads: int) -> dict[str, float]:
    """s/update per agent from one update_throughput run under `policy` (None = unset)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    cmd = [sys.executable, str(BENCH), "--quick", "--presets", "fast"]
    cmd += ["--agents", "drq", "sgqn", "--threads", str(threads)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return {agent: float(s) for agent, s in ROW.findall(out)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--busy", type=int, nargs="+", default=[0, 2], help="spinning processes")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, torch threads {args.threads}"
    )
    times: dict[tuple[int, str, str], list[float]] = defaultdict(list)
    for busy in args.busy:
        spinners = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)
        ]
        try:
            for _ in range(args.rounds):
                for name, policy in POLICIES.items():
                    for agent, s in time_updates(policy, args.threads).items():
                        times[(busy, name, agent)].append(s)
        finally:
            for proc in spinners:
                proc.kill()
                proc.wait()
    print("\n| busy processes | agent | default s/update | PASSIVE s/update | default / PASSIVE |")
    print("|---|---|---|---|---|")
    for busy in args.busy:
        for agent in ("drq", "sgqn"):
            d = statistics.median(times[(busy, "default", agent)])
            q = statistics.median(times[(busy, "PASSIVE", agent)])
            print(f"| {busy} | {agent} | {d:.3f} | {q:.3f} | {d / q:.2f} |")


if __name__ == "__main__":
    main()
