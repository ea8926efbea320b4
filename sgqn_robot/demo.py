"""`make demo`: the whole pipeline on a small budget, so a new user sees every stage work.

train (sgqn-train) -> evaluate on train and test splits (sgqn-eval) -> export ONNX (sgqn-export)
-> closed-loop ONNX control in the simulator (sgqn-run) -> the shipped pretrained policies on test
splits, with a GIF of each -> one result table. Each stage is the public command a user would
type, so the demo doubles as a tour of the CLI; the commands are printed as they run.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from importlib.resources import files
from pathlib import Path

MODELS = Path(str(files("sgqn_robot.export"))) / "models"  # pretrained policies shipped
MARKER = ".sgqn_demo"  # marks a folder the demo made, so a rerun may delete it
SUMMARY = re.compile(r"^(\S+)/(\S+): mean return (-?[\d.]+), success (\d+)/(\d+)", re.M)


def _cli(name: str, *args: str) -> str:
    """Run one of this environment's console scripts, streaming its output; returns stdout."""
    cmd = [str(Path(sys.executable).parent / name), *args]
    print("$", name, " ".join(args), flush=True)
    lines = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:  # type: ignore[union-attr]
            print(line, end="", flush=True)
            lines.append(line)
    if proc.returncode:
        raise SystemExit(f"demo: `{name}` failed (exit {proc.returncode}); see its output above")
    return "".join(lines)


def _run_onnx(
    model: Path, task: str, splits: list[str], episodes: int, *extra: str
) -> dict[str, tuple[float, float]]:
    """(mean return, success rate) per split, from sgqn-run's summary lines."""
    out = _cli(
        "sgqn-run", str(model), "--sim", task, "--split", ",".join(splits),
        "--episodes", str(episodes), "--clock", "sim", *extra,
    )  # fmt: skip
    found = {m[2]: (float(m[3]), int(m[4]) / int(m[5])) for m in SUMMARY.finditer(out)}
    if list(found) != splits:
        raise RuntimeError(f"sgqn-run printed no summary line for each of {splits}:\n{out}")
    return found


def _summary(res: dict) -> tuple[float, float]:
    return float(res["return_mean"]), float(res["success_rate"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--task", default="reach", choices=["reach", "peg_in_box"])
    p.add_argument("--agent", default="sgqn")
    p.add_argument("--steps", type=int, default=1500, help="env steps (1000 are random warm-up)")
    p.add_argument("--episodes", type=int, default=5, help="evaluation episodes per split")
    args = p.parse_args()
    t0 = time.monotonic()
    if args.out.exists():  # a fresh run every time, but only ever delete the demo's own folder
        if not (args.out / MARKER).is_file():
            sys.exit(f"demo: {args.out} exists and is not a demo folder; pass another --out")
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    (args.out / MARKER).touch()
    run = args.out / "train"
    rows: list[tuple[str, str, float, float]] = []

    print(f"== 1/5 train: {args.agent} on {args.task}, {args.steps} env steps", flush=True)
    _cli(
        "sgqn-train", f"task={args.task}", f"agent={args.agent}", "encoder=fast",
        f"num_train_steps={args.steps}", f"eval_every={args.steps}", "eval_episodes=2",
        "eval_splits=[train,test2]", f"run_dir={run}",
    )  # fmt: skip

    print("== 2/5 evaluate the trained checkpoint on train and test splits", flush=True)
    _cli(
        "sgqn-eval", f"run={run}", "splits=[train,test1,test2,test3]",
        f"episodes={args.episodes}", "tag=demo",
    )  # fmt: skip
    for split, res in json.loads((run / "eval" / "demo.json").read_text())["splits"].items():
        rows.append((f"demo run ({args.steps} steps), torch", split, *_summary(res)))

    print("== 3/5 export the actor to ONNX (with parity check on every split)", flush=True)
    model = args.out / "model.onnx"
    _cli("sgqn-export", str(run), "-o", str(model), "--per-split", "2")
    _cli("sgqn-run", str(model), "--info")  # what the file tells the robot PC about itself

    print("== 4/5 run the ONNX policy in the fixed-rate control loop (simulator)", flush=True)
    for split, res in _run_onnx(model, args.task, ["train", "test2"], 3).items():
        rows.append(("demo run, ONNX loop", split, *res))

    print("== 5/5 the shipped pretrained policies on test splits (and a GIF of each)", flush=True)
    videos = []
    for shipped in sorted(MODELS.glob("*.onnx")):
        if shipped.name.endswith(".saliency.onnx"):
            continue
        task = "peg_in_box" if shipped.name.startswith("peg_in_box") else "reach"
        videos.append(args.out / f"pretrained_{shipped.stem}.gif")
        splits = ["train", "test2", "color_easy", "lighting"]
        found = _run_onnx(shipped, task, splits, args.episodes, "--video", str(videos[-1]))
        rows += [(f"pretrained {shipped.stem}", split, *res) for split, res in found.items()]

    print(f"\n{'policy':<42} {'split':<11} {'return':>8} {'success':>8}")
    for name, split, ret, succ in rows:
        print(f"{name:<42} {split:<11} {ret:>8.1f} {succ:>8.0%}")
    print("\nwatch them: " + ", ".join(map(str, videos)))
    print(f"\ndemo finished in {(time.monotonic() - t0) / 60:.1f} min; artifacts in {args.out}/")


if __name__ == "__main__":
    main()
