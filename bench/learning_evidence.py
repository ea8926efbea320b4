"""Learning evidence: train agents side by side, evaluate every split, write tables and curves.

    # train (or continue) task x agent x seed runs in parallel for at most --minutes, then stop;
    # run it again with the same --out to resume every run from its last checkpoint:
    python bench/learning_evidence.py train --out runs/evidence --tasks reach \
        --agents sac,svea,sgqn --seeds 1,2 --encoder fast --steps 100000 --minutes 50
    # an ablation: one arm per --variant (NAME alone = the defaults), same seeds and budget:
    python bench/learning_evidence.py train --out runs/ablation --agents sgqn --seeds 3 \
        --steps 15000 --variant base --variant aux1 agent.aux_update_freq=1 \
        --variant q90 agent.mask_quantile=0.9
    # evaluate each run's latest checkpoint on every split (30 episodes), in parallel:
    python bench/learning_evidence.py evaluate --out runs/evidence --episodes 30
    # tables (markdown: means over seeds, per seed, agents paired by seed with a sign test,
    # each run against the goals of issue 6)
    # + learning curves (PNG) from what the runs wrote:
    python bench/learning_evidence.py report --out runs/evidence --images docs/images
    # the same over some seeds only, e.g. while the others still run:
    python bench/learning_evidence.py report --out runs/evidence --seeds 1 --prefix s1_
    # keep what `report` reads (config, metrics, final evaluation, TensorBoard scalars; no
    # checkpoints or replay) in the repository; `report --out docs/evidence/cpu` then works too
    # (--unfinished: also runs still training, so their curves so far outlive the machine):
    python bench/learning_evidence.py keep --out runs/evidence --to docs/evidence/cpu

Each run is a plain `sgqn-train` run dir (`<out>/<task>-<agent>-s<seed>`); this script only
schedules them, so every number can be reproduced with the trainer's own commands. A run that is
stopped at the deadline gets SIGTERM, so it checkpoints at its episode end and exits (SIGKILL
after `GRACE_S` seconds; then it loses the steps since its last checkpoint). A run is resumed
when it has a checkpoint; a run dir without one (killed before its first checkpoint) is moved to
`<out>/stale/` and the run starts afresh. A run dir that another process holds (a `sgqn-train`
started by hand, a second orchestrator) is left alone and named. Runs that exit non-zero are
listed at the end.
`report` reads any run dirs (also ones made by plain `sgqn-train`); a run whose agent or encoder
settings differ from the defaults (an ablation, a sweep) gets its own column, labelled with them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import IO

import numpy as np
from sgqn_robot.envs import SPLITS as ALL_SPLITS

from sgqn_robot.run_lock import LOCK_FILE, RunDirBusy, hold_run_dir

# Seconds a run gets after SIGTERM to finish its episode and checkpoint (an evaluation in
# progress is abandoned at once; a paper-preset episode on a slow CPU still takes a while).
GRACE_S = 600
# Rows under the per-split table: label -> key of `_final_summary`.
# Issue 6's goals per task: train return, return on every unseen split, minutes of training.
GOALS = {"reach": (30.0, 25.0, 60.0), "peg_in_box": (150.0, 100.0, 180.0)}
SUMMARY_ROWS = {
    "test mean": "test_mean",
    "gap (train - test mean)": "gap",
    "mean of test1-5": "test1_5",
    "success on unseen splits": "unseen_success",
}


def _script(name: str) -> str:
    """A console script of this environment (installed beside the interpreter)."""
    return str(Path(sys.executable).parent / name)


@cache
def _defaults(agent: str, preset: str) -> dict:
    """The agent and encoder settings `sgqn-train agent=<agent> encoder=<preset>` starts from."""
    from sgqn_robot.config import compose_config, to_plain

    cfg = to_plain(compose_config("train", [f"agent={agent}", f"encoder={preset}"]))
    return {"agent": cfg["agent"], "encoder": cfg["encoder"]}


def _variant(cfg: dict) -> str:
    """A run's column in the tables: the agent's name plus each agent / encoder setting that
    differs from that agent's and preset's defaults, e.g. `sgqn agent.mask_quantile=0.9`. Runs
    of a hyper-parameter sweep are reported per value, not averaged together as seeds. Keys a
    run's config lacks (configs older than a key) count as the default."""
    name = cfg["agent"]["name"]
    defaults = _defaults(name, cfg["encoder"]["preset"])
    changed = [
        f"{group}.{key}={value}"
        for group in ("agent", "encoder")
        for key, value in cfg[group].items()
        if key in defaults[group] and value != defaults[group][key]
    ]
    return " ".join([name, *changed])


def _agent_order(key: tuple[str, str]) -> tuple:
    """Sort key of a (task, variant) column: the baselines before the method, in the order
    `sgqn_robot.agents.AGENTS` lists them (sac, drq, svea, sgqn), each agent's default before its
    variants; so tables read sac | svea | sgqn and paired rows read "sgqn - svea"."""
    from sgqn_robot.agents import AGENTS

    task, variant = key
    name = variant.split()[0]
    return (task, list(AGENTS).index(name) if name in AGENTS else len(AGENTS), variant)


def _runs(out: Path, seeds: set[int] | None = None) -> list[Path]:
    """The run dirs in `out`, only those of `seeds` when given (a report over some seeds of a
    sweep whose other seeds are still running)."""
    import yaml

    if not out.is_dir():
        raise SystemExit(f"{out}: no such directory; pass the --out that `train` wrote to")
    runs = sorted(p for p in out.iterdir() if (p / "config.yaml").is_file())
    if not runs:
        raise SystemExit(f"{out}: no run dirs in it (a run dir holds config.yaml)")
    if seeds is None:
        return runs
    return [p for p in runs if yaml.safe_load((p / "config.yaml").read_text())["seed"] in seeds]


Command = list[str] | Callable[[], list[str] | None]  # a callable decides at launch (None: skip)


def _parallel(cmds: list[tuple[Command, Path]], jobs: int, minutes: float | None) -> int:
    """Run commands `jobs` at a time; at the deadline stop what is still running. Prints every
    non-zero exit with its log (the runs' own errors go only there) and returns their count."""
    deadline = time.monotonic() + minutes * 60 if minutes else None
    pending, running, failed = list(cmds), [], []

    def finished(proc: subprocess.Popen, f: IO[str], logfile: Path) -> None:
        f.close()
        if proc.returncode != 0:
            failed.append(f"  exit {proc.returncode}: {' '.join(proc.args[1:])}  (log: {logfile})")

    while pending or running:
        while pending and len(running) < jobs:
            cmd, logfile = pending.pop(0)
            cmd = cmd() if callable(cmd) else cmd
            if cmd is None:
                continue
            logfile.parent.mkdir(parents=True, exist_ok=True)
            f = logfile.open("a")
            proc = subprocess.Popen(cmd, stdout=f, stderr=f, start_new_session=True)
            running.append((proc, f, logfile))
            print("started", " ".join(cmd[1:]), flush=True)
        for proc, f, logfile in list(running):
            if proc.poll() is not None:
                finished(proc, f, logfile)
                running.remove((proc, f, logfile))
        if deadline is not None and time.monotonic() > deadline:
            for proc, _, _ in running:  # runs checkpoint at their episode end, then exit
                os.killpg(proc.pid, signal.SIGTERM)
            for proc, f, logfile in running:
                try:
                    proc.wait(timeout=GRACE_S)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                finished(proc, f, logfile)
            print(f"deadline: stopped {len(running)} runs, {len(pending)} not started")
            break
        time.sleep(2)
    if failed:
        print(f"{len(failed)} of {len(cmds)} runs failed:", *failed, sep="\n", flush=True)
    return len(failed)


def _has_checkpoint(run: Path) -> bool:
    return (run / "checkpoints" / "latest").exists()


def _busy(run: Path) -> str | None:
    """Why `run` must be left alone (another live process holds it), or None."""
    if not (run / LOCK_FILE).exists():  # no sgqn-train ever ran there
        return None
    try:
        with hold_run_dir(run):
            return None
    except RunDirBusy as e:
        return str(e)


def _set_aside(run: Path) -> None:
    """Move a run dir that holds files but no checkpoint (killed before its first one) to
    `<out>/stale/`, so the fresh start is not refused and nothing in it is lost."""
    if not run.is_dir() or not any(run.iterdir()):
        return
    dest = run.parent / "stale" / f"{run.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    dest.parent.mkdir(exist_ok=True)
    run.rename(dest)
    print(f"{run} had no checkpoint: moved to {dest}, starting afresh", flush=True)


def train(args: argparse.Namespace) -> None:
    cmds = []
    arms = args.variant or [[""]]  # [name, *overrides] per arm; one unnamed arm by default
    names = [arm[0] for arm in arms]
    bad = [n for n in names if "=" in n or "/" in n or names.count(n) > 1]
    if bad:
        sys.exit(
            f"--variant {bad[0]}: each arm needs its own name (no '=' or '/'), then its "
            "overrides, e.g. --variant q90 agent.mask_quantile=0.9"
        )
    for task, agent, (variant, *overrides), seed in itertools.product(
        args.tasks.split(","), args.agents.split(","), arms, args.seeds.split(",")
    ):
        run = args.out / "-".join(filter(None, (task, agent, variant, f"s{seed}")))
        fresh = [
            f"task={task}",
            f"agent={agent}",
            f"encoder={args.encoder}",
            f"seed={seed}",
            f"device={args.device}",
            f"threads={args.threads}",
            f"num_train_steps={args.steps}",
            f"eval_every={args.eval_every}",
            f"eval_episodes={args.eval_episodes}",
            f"snapshot_every={args.snapshot_every}",
            *args.extra,
            *overrides,
        ]
        launch = partial(_train_cmd, run, fresh)
        cmds.append((launch, args.out / "logs" / f"{run.name}.log"))
    _parallel(cmds, args.jobs or len(cmds), args.minutes)


def _train_cmd(run: Path, fresh: list[str]) -> list[str] | None:
    """The command for `run` as it stands when its turn in the queue comes (a run started, or
    checkpointed, by someone else meanwhile is left alone, or resumed); None to skip it."""
    busy = _busy(run)
    if busy:
        print(f"skipped: {busy}", flush=True)
        return None
    if _has_checkpoint(run):
        return [_script("sgqn-train"), f"run_dir={run}", "resume=true"]
    _set_aside(run)
    return [_script("sgqn-train"), f"run_dir={run}", *fresh]


def evaluate(args: argparse.Namespace) -> None:
    cmds = []
    for run in _runs(args.out):
        if not _has_checkpoint(run):
            continue
        cmd = [_script("sgqn-eval"), f"run={run}", "tag=final"]
        cmd += [f"splits=[{','.join(ALL_SPLITS)}]", f"episodes={args.episodes}", "threads=1"]
        cmds.append((cmd, args.out / "logs" / f"{run.name}.eval.log"))
    _parallel(cmds, args.jobs or len(cmds), None)


@cache  # the tables and the curves both read each run
def _read_metrics(run: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """tag -> (steps, values) from the run's long-format metrics.csv; empty where the run has
    none (the earliest kept evidence sets hold only config and final evaluation)."""
    rows: dict[str, list[tuple[int, float]]] = defaultdict(list)
    path = run / "metrics.csv"
    for line in path.read_text().splitlines()[1:] if path.is_file() else []:
        step, tag, value = line.split(",")
        rows[tag].append((int(step), float(value)))
    return {t: (np.array([s for s, _ in r]), np.array([v for _, v in r])) for t, r in rows.items()}


@cache
def _wall_clock(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """(env step, seconds of training) from TensorBoard's per-scalar wall times; the gaps
    between a stopped run and its resume are not counted."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points = []
    for events in sorted((run / "tb").glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        if "train/episode_return" in acc.Tags()["scalars"]:
            points.append([(e.step, e.wall_time) for e in acc.Scalars("train/episode_return")])
    steps, secs, offset = [], [], 0.0
    for i, seg in enumerate(points):
        # a resumed segment restarts at its checkpoint: drop the killed tail of the one before
        end = points[i + 1][0][0] if i + 1 < len(points) else float("inf")
        seg = [p for p in seg if p[0] < end]
        if not seg:
            continue
        t0 = seg[0][1]
        for step, wall in seg:
            steps.append(step)
            secs.append(offset + wall - t0)
        offset = secs[-1]
    return np.array(steps), np.array(secs)


def _final_json(run: Path) -> Path:
    """A run's final evaluation: `<run>/eval/final.json` in a run dir, `<run>/final.json` in the
    copies kept under docs/evidence (config, metrics and final evaluation only), so the tables
    in docs/RESULTS.md can be regenerated from what the repository holds."""
    in_run = run / "eval" / "final.json"
    return in_run if in_run.is_file() else run / "final.json"


def _eval_curve(run: Path, last: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(eval steps, train-split return, mean return over test1-5) from the in-training evals,
    up to step `last`."""
    metrics = _read_metrics(run)
    steps, train_ret = metrics.get("eval/train/return_mean", (np.array([]), np.array([])))
    keep = steps <= last
    tests = [metrics.get(f"eval/test{i}/return_mean", (None, None)) for i in range(1, 6)]
    if not all(np.array_equal(t[0], steps) for t in tests):  # not every test split evaluated
        return steps[keep], train_ret[keep], np.full(keep.sum(), np.nan)
    return steps[keep], train_ret[keep], np.mean([t[1] for t in tests], axis=0)[keep]


def _eval_table(task: str, runs: dict[str, list[Path]]) -> list[str]:
    """Markdown: the in-training evaluations side by side at equal env steps, per agent
    "train / mean of test1-5 (minutes of training to that step)" averaged over seeds (only steps
    every seed of the agent reached; minutes only where every run's TensorBoard events are there)."""
    table: dict[int, dict[str, str]] = defaultdict(dict)
    for agent, agent_runs in runs.items():
        curves = [_eval_curve(run, np.inf) for run in agent_runs]
        clocks = [_wall_clock(run) for run in agent_runs]
        timed = all(len(ws) for ws, _ in clocks)  # minutes only where every seed has them
        for step in sorted(set.intersection(*(set(c[0].tolist()) for c in curves))):
            train = np.mean([c[1][c[0] == step][0] for c in curves])
            test = np.mean([c[2][c[0] == step][0] for c in curves])
            cell = f"{train:.1f} / {test:.1f}"
            if timed:
                minutes = np.mean([np.interp(step, ws, secs) / 60 for ws, secs in clocks])
                cell += f" ({minutes:.1f} min)"
            table[step][agent] = cell
    agents = list(runs)
    lines = [
        f"\n### {task}: in-training evaluation, train / mean of test1-5 (minutes of training; "
        "seeds averaged)\n"
    ]
    lines += ["| env step | " + " | ".join(agents) + " |", "|---" * (len(agents) + 1) + "|"]
    for step in sorted(table):
        lines.append(f"| {step} | " + " | ".join(table[step].get(a, "") for a in agents) + " |")
    return lines


def _final_summary(res: dict) -> dict[str, float]:
    """One final evaluation in a few numbers: return and success on train, over the unseen
    splits, and over the paper's test1-5."""
    ret = {s: v["return_mean"] for s, v in res["splits"].items()}
    succ = {s: v["success_rate"] for s, v in res["splits"].items()}
    unseen = [s for s in ALL_SPLITS if s in ret and s != "train"]
    paper = [s for s in unseen if s.startswith("test")]
    test_mean = float(np.mean([ret[s] for s in unseen]))
    return {
        "train": ret.get("train", np.nan),
        "train_success": succ.get("train", np.nan),
        "test_mean": test_mean,
        "gap": ret.get("train", np.nan) - test_mean,
        "test1_5": float(np.mean([ret[s] for s in paper])) if paper else np.nan,
        "unseen_success": float(np.mean([succ[s] for s in unseen])),
    }


def _per_seed_table(task: str, finals: dict[tuple[str, str], list[dict]]) -> list[str]:
    """Seed by seed, so a mean over seeds that hides two different outcomes can be seen."""
    lines = [
        f"\n### {task}: final policy per seed\n",
        "| agent | seed | train (success) | test mean | mean of test1-5 | success on unseen splits |",
        "|---|---|---|---|---|---|",
    ]
    for (t, agent), results in sorted(finals.items(), key=lambda kv: _agent_order(kv[0])):
        if t != task:
            continue
        for res in sorted(results, key=lambda r: r["seed"]):
            f = _final_summary(res)
            lines.append(
                f"| {agent} | {res['seed']} | {f['train']:.1f} ({f['train_success']:.0%}) "
                f"| {f['test_mean']:.1f} | {f['test1_5']:.1f} | {f['unseen_success']:.1%} |"
            )
    return lines


def sign_test(wins: int, n: int) -> float:
    """Two-sided exact sign test: the chance of a split at least this uneven when each seed is a
    fair coin (n paired seeds, no ties)."""
    tail = sum(math.comb(n, i) for i in range(min(wins, n - wins) + 1)) / 2**n
    return min(1.0, 2 * tail)


def _paired_table(task: str, finals: dict[tuple[str, str], list[dict]]) -> list[str]:
    """Agents compared seed by seed on the seeds both ran. A seed fixes the warm-up actions, the
    training scenes and the evaluation episodes, so per-seed differences are paired; with a
    handful of seeds the spread across seeds hides what the pairs show (or do not)."""
    by_seed = {
        agent: {res["seed"]: _final_summary(res) for res in results}
        for (t, agent), results in sorted(finals.items(), key=lambda kv: _agent_order(kv[0]))
        if t == task
    }
    lines = [
        f"\n### {task}: agents paired by seed (first minus second)\n",
        "| pair | seeds | test mean: mean difference (per seed) | first above | sign test p "
        "| mean of test1-5: mean difference | first above |",
        "|---|---|---|---|---|---|---|",
    ]
    for b, a in itertools.combinations(by_seed, 2):  # the later agent first: "sgqn - svea"
        seeds = sorted(set(by_seed[a]) & set(by_seed[b]))
        if not seeds:
            continue
        diff, diff5 = (
            [by_seed[a][s][key] - by_seed[b][s][key] for s in seeds]
            for key in ("test_mean", "test1_5")
        )
        wins, wins5, n = sum(d > 0 for d in diff), sum(d > 0 for d in diff5), len(seeds)
        per_seed = ", ".join(f"{d:+.1f}" for d in diff)
        lines.append(
            f"| {a} - {b} | {n} | {np.mean(diff):+.1f} ({per_seed}) | {wins} of {n} "
            f"| {sign_test(wins, n):.3g} | {np.mean(diff5):+.1f} | {wins5} of {n} |"
        )
    return lines


def _goals_table(task: str, curves: dict[tuple[str, str], list[Path]]) -> list[str]:
    """Per run, the goals the toolkit is held to (`GOALS`): when the in-training evaluation
    first reached the train-return goal (steps, minutes of training), and how many unseen
    splits the final policy holds at the per-split goal, with the worst one."""
    import yaml

    if task not in GOALS:
        return []
    train_goal, split_goal, minutes_goal = GOALS[task]
    lines = [
        f"\n### {task}: goals per run (train >= {train_goal:g} within {minutes_goal:g} min; "
        f"every unseen split >= {split_goal:g})\n",
        f"| agent | seed | train >= {train_goal:g} first at (in training) | final train "
        f"| unseen splits >= {split_goal:g} | worst unseen split |",
        "|---|---|---|---|---|---|",
    ]
    for (t, agent), runs in sorted(curves.items(), key=lambda kv: _agent_order(kv[0])):
        if t != task:
            continue
        seeds = {run: yaml.safe_load((run / "config.yaml").read_text())["seed"] for run in runs}
        for run, seed in sorted(seeds.items(), key=lambda kv: kv[1]):
            steps, train, _ = _eval_curve(run, np.inf)
            hit = steps[train >= train_goal]
            if len(hit) == 0:
                first = f"not reached (best {train.max():.1f})" if len(train) else "no evaluations"
            else:
                ws, secs = _wall_clock(run)
                minutes = f", {np.interp(hit[0], ws, secs) / 60:.1f} min" if len(ws) else ""
                first = f"{hit[0]} steps{minutes}"
            final = _final_json(run)
            ret = {}
            if final.is_file():
                splits = json.loads(final.read_text())["splits"]
                ret = {k: v["return_mean"] for k, v in splits.items()}
            unseen = {k: v for k, v in ret.items() if k != "train"}
            if not unseen:
                lines.append(
                    f"| {agent} | {seed} | {first} | (no final evaluation of unseen splits) | | |"
                )
                continue
            worst = min(unseen, key=unseen.get)
            held = sum(v >= split_goal for v in unseen.values())
            lines.append(
                f"| {agent} | {seed} | {first} | {ret.get('train', np.nan):.1f} "
                f"| {held} of {len(unseen)} | {worst} {unseen[worst]:.1f} |"
            )
    return lines


def report(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import yaml

    finals: dict[tuple[str, str], list[dict]] = defaultdict(list)
    curves: dict[tuple[str, str], list[Path]] = defaultdict(list)
    seeds = {int(s) for s in args.seeds.split(",")} if args.seeds else None
    runs = [run for out in args.out for run in _runs(out, seeds)]
    if not runs:
        dirs = ", ".join(map(str, args.out))
        raise SystemExit(f"report: no runs of seeds {sorted(seeds or ())} in {dirs}")
    seen: dict[tuple[str, str, int], Path] = {}
    for run in runs:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        key = (cfg["task"], _variant(cfg))
        if (other := seen.setdefault((*key, cfg["seed"]), run)) != run:
            raise SystemExit(
                f"report: {other} and {run} are the same task, agent settings and seed "
                f"({cfg['task']}, {key[1]}, seed {cfg['seed']}); they would be averaged as two "
                "seeds. Report those dirs separately, or pass --seeds to pick other seeds."
            )
        curves[key].append(run)
        final = _final_json(run)
        if final.is_file():
            finals[key].append(json.loads(final.read_text()) | {"seed": cfg["seed"]})

    lines = []
    for task in sorted({t for t, _ in finals}):
        agents = [a for (t, a) in sorted(finals, key=_agent_order) if t == task]
        splits = [s for s in ALL_SPLITS if s in finals[(task, agents[0])][0]["splits"]]
        lines += [f"\n### {task}: return mean ± std over seeds (success rate)\n"]
        lines += ["| split | " + " | ".join(agents) + " |", "|---" * (len(agents) + 1) + "|"]
        for split in splits + list(SUMMARY_ROWS):
            cells = []
            for agent in agents:
                results = finals[(task, agent)]
                if split in splits:
                    per_seed = [res["splits"][split]["return_mean"] for res in results]
                else:
                    per_seed = [_final_summary(res)[SUMMARY_ROWS[split]] for res in results]
                if split == "success on unseen splits":
                    cell = f"{np.mean(per_seed):.1%} ± {np.std(per_seed):.1%}"
                else:
                    cell = f"{np.mean(per_seed):.1f} ± {np.std(per_seed):.1f}"
                if split in splits:
                    succ = [res["splits"][split]["success_rate"] for res in results]
                    cell += f" ({np.mean(succ):.0%})"
                cells.append(cell)
            lines.append(f"| {split} | " + " | ".join(cells) + " |")
        steps = {
            a: [
                json.loads(_final_json(r).read_text())["step"]
                for r in curves[(task, a)]
                if _final_json(r).is_file()
            ]
            for a in agents
        }
        lines.append("\nenv steps per run: " + ", ".join(f"{a} {steps[a]}" for a in agents))
        lines += _per_seed_table(task, finals)
        lines += _paired_table(task, finals)
    for task in sorted({t for t, _ in curves}):
        lines += _goals_table(task, curves)
        lines += _eval_table(
            task,
            {
                a: runs
                for (t, a), runs in sorted(curves.items(), key=lambda kv: _agent_order(kv[0]))
                if t == task
            },
        )
    print("\n".join(lines))

    args.images.mkdir(parents=True, exist_ok=True)
    colors = {"sac": "C0", "drq": "C3", "svea": "C1", "sgqn": "C2"}
    for task in sorted({t for t, _ in curves}):
        fig, grid = plt.subplots(2, 2, figsize=(14, 8))
        axes = grid.ravel()
        agents = [a for t, a in sorted(curves, key=_agent_order) if t == task]
        for agent in agents:
            for i, run in enumerate(curves[(task, agent)]):
                final = _final_json(run)
                last = json.loads(final.read_text())["step"] if final.is_file() else np.inf
                s, v = _read_metrics(run).get("train/episode_return", ([], []))
                keep = np.asarray(s) <= last  # the killed tail past the checkpoint is not kept
                s, v = np.asarray(s)[keep], np.asarray(v)[keep]
                if len(v) == 0:
                    continue
                k = max(1, len(v) // 40)
                smooth = np.convolve(v, np.ones(k) / k, mode="valid")
                kw = {
                    "color": colors.get(agent, f"C{4 + agents.index(agent)}"),
                    "alpha": 0.8,
                    "label": agent if i == 0 else None,
                }
                axes[0].plot(s[k - 1 :], smooth, **kw)
                ws, secs = _wall_clock(run)
                if len(ws):
                    axes[1].plot(np.interp(s[k - 1 :], ws, secs) / 60, smooth, **kw)
                es, train_ret, test_ret = _eval_curve(run, last)
                axes[2].plot(es, train_ret, marker=".", **kw)
                axes[2].plot(es, test_ret, marker=".", ls="--", **(kw | {"label": None}))
        width = 0.8 / max(1, len(agents))
        splits = ALL_SPLITS
        for j, agent in enumerate(agents):
            res = finals.get((task, agent), [])
            if not res:
                continue
            means = [np.mean([r["splits"][sp]["return_mean"] for r in res]) for sp in splits]
            axes[3].bar(
                np.arange(len(splits)) + j * width,
                means,
                width,
                color=colors.get(agent, f"C{4 + j}"),
                label=agent,
            )
        axes[3].set_xticks(
            np.arange(len(splits)) + width * (len(agents) - 1) / 2,
            splits,
            rotation=45,
            ha="right",
            fontsize=8,
        )
        axes[0].set(title=f"{task}: training episode return", xlabel="env steps")
        axes[1].set(title="vs wall-clock", xlabel="minutes of training")
        axes[2].set(
            title="evaluation during training: train (solid), mean of test1-5 (dashed)",
            xlabel="env steps",
        )
        axes[3].set(title="final policy, mean return per split (seeds averaged)")
        if not axes[1].lines:
            axes[1].text(
                0.5,
                0.5,
                "no TensorBoard events in these run dirs",
                ha="center",
                transform=axes[1].transAxes,
            )
        for ax in axes:
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
        fig.tight_layout()
        path = args.images / f"{args.prefix}curves_{task}.png"
        fig.savefig(path, dpi=90)
        print("wrote", path)


def keep(args: argparse.Namespace) -> None:
    """Copy each finished run's report inputs (a few hundred kB) to `args.to/<run name>/`; with
    `--unfinished` also the runs still without a final evaluation (their curves and in-training
    tables), so a long run's evidence so far survives the loss of the machine that trains it."""
    import shutil

    for run in _runs(args.out):
        final = _final_json(run)
        if not final.is_file() and not args.unfinished:
            print(f"skipped {run.name}: no final evaluation (run `evaluate` first, or pass "
                  "--unfinished to keep its curves so far)")  # fmt: skip
            continue
        dest = args.to / run.name
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        shutil.copy2(run / "config.yaml", dest / "config.yaml")
        metrics = (run / "metrics.csv").read_text()  # a running trainer may be mid-line
        (dest / "metrics.csv").write_text(metrics[: metrics.rfind("\n") + 1])
        if (run / "tb").is_dir():
            shutil.copytree(run / "tb", dest / "tb")
        if final.is_file():
            shutil.copy2(final, dest / "final.json")
            print("kept", dest)
        else:
            print("kept", dest, "(unfinished: no final evaluation yet)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--tasks", default="reach")
    t.add_argument("--agents", default="sac,svea,sgqn")
    t.add_argument("--seeds", default="1,2")
    t.add_argument("--encoder", default="fast")
    t.add_argument("--device", default="auto")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--steps", type=int, default=100_000)
    t.add_argument("--eval-every", type=int, default=10_000)
    t.add_argument("--eval-episodes", type=int, default=10)
    t.add_argument("--snapshot-every", type=int, default=2_000)
    t.add_argument("--minutes", type=float, default=None)
    t.add_argument("--jobs", type=int, default=0, help="parallel runs (0 = all)")
    t.add_argument(
        "--variant",
        nargs="+",
        action="append",
        metavar=("NAME", "OVERRIDE"),
        help="an ablation arm: run dirs <task>-<agent>-NAME-s<seed> with these sgqn-train "
        "overrides (repeat for several arms; NAME alone = the defaults)",
    )
    t.add_argument("extra", nargs="*", help="more sgqn-train overrides for new runs")
    e = sub.add_parser("evaluate")
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--episodes", type=int, default=30)
    e.add_argument("--jobs", type=int, default=0)
    r = sub.add_parser("report")
    r.add_argument(
        "--out",
        type=Path,
        nargs="+",
        required=True,
        help="one or more dirs of run dirs, reported side by side (e.g. an ablation and the "
        "kept default runs it is compared with)",
    )
    r.add_argument("--images", type=Path, default=Path("docs/images"))
    r.add_argument("--prefix", default="", help="file name prefix of the PNGs")
    r.add_argument("--seeds", default="", help="only these seeds, e.g. 1 or 1,2 (default: all)")
    k = sub.add_parser("keep")
    k.add_argument("--out", type=Path, required=True)
    k.add_argument("--to", type=Path, required=True)
    k.add_argument(
        "--unfinished",
        action="store_true",
        help="also runs without a final evaluation (curves and in-training evaluations so far)",
    )
    args = p.parse_args()
    {"train": train, "evaluate": evaluate, "report": report, "keep": keep}[args.cmd](args)


if __name__ == "__main__":
    main()
