"""``sgqn-export``: a trained actor to one self-contained ONNX file the robot PC can run.

The graph takes the raw uint8 stacked frames and returns the env action: ``/255``, encoder, mean,
tanh and the scaling to the action bounds are all inside, so the runner does no maths of its own
beyond cropping/resizing camera frames. Export is refused unless onnxruntime reproduces torch on
real rendered observations from every visual split (rtol 1e-3, atol 1e-5) and ``onnx.checker``
passes; the file appears only then (temp file + atomic rename).

We use the TorchScript exporter (``dynamo=False``): it writes weights inside the one file with no
``onnxscript`` dependency and handles these plain conv/MLP graphs exactly (measured ~1e-7 error).
This is the only module of ``sgqn_robot.export`` that imports torch; the runner never imports it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from sgqn_robot.provenance import code_identity

from .metadata import DEFAULT_PREPROCESSING, ModelError, ModelMetadata, base_frame_workspace
from .policy import INPUT, OUTPUT

RTOL, ATOL = 1e-3, 1e-5
OPSET = 17
SALIENCY_FORMAT = "sgqn_robot.saliency/1"


class ExportError(RuntimeError):
    """Export refused (parity or checker failure); nothing was written."""


class ActorGraph(nn.Module):
    """The policy's actor plus the affine map from tanh's [-1, 1] to the action bounds."""

    def __init__(self, actor: nn.Module, low: np.ndarray, high: np.ndarray) -> None:
        super().__init__()
        self.actor = actor
        self.scaled = not (np.all(low == -1) and np.all(high == 1))
        self.register_buffer("center", torch.as_tensor((high + low) / 2, dtype=torch.float32))
        self.register_buffer("radius", torch.as_tensor((high - low) / 2, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        a = self.actor(obs)
        return self.center + self.radius * a if self.scaled else a


class SaliencyGraph(nn.Module):
    """Attribution predictor with the sigmoid inside: (obs, action) -> mask probability."""

    def __init__(self, predictor: nn.Module) -> None:
        super().__init__()
        self.predictor = predictor

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.predictor(obs, action))


def _torch_export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path,
                  inputs: list[str], output: str) -> None:  # fmt: skip
    axes = {name: {0: "batch"} for name in [*inputs, output]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module.eval(),
            args,
            str(path),
            dynamo=False,
            input_names=inputs,
            output_names=[output],
            dynamic_axes=axes,
            opset_version=OPSET,
        )


def _seal(tmp: Path, props: Mapping[str, str]) -> None:
    """Attach metadata to the temp file and run the checker; the file stays a temp file."""
    model = onnx.load(str(tmp))
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"onnx.checker rejected the graph: {e}") from e
    onnx.save(model, str(tmp))


def _temp(out: Path) -> Path:
    return out.with_name(f".{out.name}.{os.getpid()}.tmp")


def output_path(out: str | Path) -> Path:
    """``out`` as the path of a file to write; a directory (or a path ending in "/") is refused
    before any work, since the export would otherwise fail only at the very end."""
    if str(out).endswith(("/", os.sep)) or Path(out).is_dir():
        raise ExportError(
            f"-o {out} is a directory; give the path of the file to write, e.g. "
            f"{Path(out) / 'model.onnx'}"
        )
    return Path(out)


def _parity(
    session: ort.InferenceSession, torch_fn: Any, feeds: Mapping[str, Mapping[str, np.ndarray]]
) -> dict[str, Any]:
    """torch vs onnxruntime on every split's batch; raises ``ExportError`` naming the split."""
    worst: dict[str, float] = {}
    with torch.no_grad():
        for split, feed in feeds.items():
            ref = torch_fn(*(torch.from_numpy(v) for v in feed.values())).numpy()
            (got,) = session.run(None, dict(feed))
            try:
                np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)
            except AssertionError as e:
                raise ExportError(f"onnxruntime differs from torch on split {split!r}:\n{e}") from e
            worst[split] = float(np.max(np.abs(got - ref)))
    return {
        "max_abs_err": max(worst.values()),
        "per_split_max_abs_err": worst,
        "rtol": RTOL,
        "atol": ATOL,
        "n_obs": int(sum(len(f[INPUT]) for f in feeds.values())),
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
    }


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def export_module(
    actor: nn.Module,
    meta: ModelMetadata,
    observations: Mapping[str, np.ndarray],
    out: str | Path,
    predictor: nn.Module | None = None,
) -> ModelMetadata:
    """Export ``actor`` (uint8 [B,C,H,W] -> action in [-1, 1]) with ``meta`` to ``out``.

    ``observations`` maps a split name to uint8 [N,C,H,W] frames; parity must hold on each.
    With ``predictor`` a second graph ``<out stem>.saliency.onnx`` is written beside it.
    Returns the metadata as written (with the parity result).
    """
    out = output_path(out)
    for split, obs in observations.items():
        if obs.dtype != np.uint8 or obs.shape[1:] != meta.obs_shape:
            raise ExportError(
                f"split {split!r}: obs {obs.shape} {obs.dtype}, need {meta.obs_shape}"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    graph = ActorGraph(actor, np.array(meta.action_low), np.array(meta.action_high)).eval()
    example = torch.from_numpy(next(iter(observations.values()))[:1])
    saliency_path = out.with_name(out.stem + ".saliency.onnx") if predictor is not None else None
    tmp = _temp(out)
    tmp_saliency = _temp(saliency_path) if saliency_path else None
    try:
        _torch_export(graph, (example,), tmp, [INPUT], OUTPUT)
        feeds = {s: {INPUT: o} for s, o in observations.items()}
        parity = _parity(_session(tmp), graph, feeds)
        meta = replace(
            meta, parity=parity, saliency_graph=saliency_path.name if saliency_path else ""
        )
        meta.validate(str(out))
        _seal(tmp, meta.to_props())
        if predictor is not None:
            _export_saliency(graph, predictor, feeds, tmp_saliency, meta)
            os.replace(tmp_saliency, saliency_path)
        os.replace(tmp, out)  # both files are checked before either appears
    finally:
        for t in (tmp, tmp_saliency):
            if t is not None:
                t.unlink(missing_ok=True)
    return meta


def _export_saliency(
    actor: nn.Module,
    predictor: nn.Module,
    feeds: Mapping[str, Mapping[str, np.ndarray]],
    tmp: Path,
    meta: ModelMetadata,
) -> None:
    """The attribution predictor as its own graph in ``tmp``, checked on the actor's actions."""
    graph = SaliencyGraph(predictor).eval()
    with torch.no_grad():
        pairs = {
            s: {INPUT: f[INPUT], "action": actor(torch.from_numpy(f[INPUT])).numpy()}
            for s, f in feeds.items()
        }
    first = next(iter(pairs.values()))
    example = (torch.from_numpy(first[INPUT][:1]), torch.from_numpy(first["action"][:1]))
    _torch_export(graph, example, tmp, [INPUT, "action"], "mask")
    parity = _parity(_session(tmp), graph, pairs)
    props = {
        "sgqn.format": SALIENCY_FORMAT,
        "sgqn.actor_git_sha": meta.git_sha,
        "sgqn.parity": str(parity["max_abs_err"]),
    }
    _seal(tmp, props)


def _cfg(config: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _task(config: Mapping[str, Any]) -> str:
    task = _cfg(config, "task")
    return str(_cfg(task, "name") if isinstance(task, Mapping) else task)


def rendered_observations(
    task: str,
    env_kwargs: Mapping[str, Any],
    splits: list[str],
    per_split: int = 4,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """``per_split`` stacked observations from every split: reset then random actions."""
    from sgqn_robot.envs import make_env

    rng = np.random.default_rng(seed)
    out = {}
    for i, split in enumerate(splits):
        env = make_env(task, split=split, seed=seed + i, **env_kwargs)
        try:
            obs, _ = env.reset(seed=seed + i)
            frames = [obs]
            while len(frames) < per_split:
                obs, *_ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
                frames.append(obs)
        finally:
            env.close()
        out[split] = np.stack(frames)
    return out


def metadata_from_policy(policy: Any, env: Any) -> ModelMetadata:
    """Everything the runner needs, from the checkpoint's config and the env it trained in."""
    from sgqn_robot.envs.base_env import ACTION_SCALE
    from sgqn_robot.envs.scene import ROBOT_BASE

    cfg = policy.config
    here = code_identity()
    frame_stack = int(_cfg(cfg, "env.frame_stack", 1))
    size = int(_cfg(cfg, "env.image_size"))
    space = env.action_space
    unwrapped = env.unwrapped
    # the box the env enforces on the end-effector point is in its world frame (origin at the
    # table centre); a real arm reports its pose relative to its base, so store it in that frame
    workspace = base_frame_workspace(*unwrapped.WORKSPACE, ROBOT_BASE)
    return ModelMetadata(
        obs_shape=(3 * frame_stack, size, size),
        frame_stack=frame_stack,
        image_size=size,
        action_low=tuple(float(v) for v in space.low),
        action_high=tuple(float(v) for v in space.high),
        control_period=float(unwrapped.control_period),
        preprocessing=dict(DEFAULT_PREPROCESSING),
        task=_task(cfg),
        agent=str(_cfg(cfg, "agent.name", "unknown")),
        step=int(policy.step),
        camera=str(_cfg(cfg, "env.camera", "unknown")),
        action_space=str(_cfg(cfg, "env.action_space", "unknown")),
        action_scale_m=float(ACTION_SCALE),
        workspace=workspace,
        training_config=dict(cfg),
        # the code that trained the weights; checkpoints from before 2026-11-28 lack it
        package_version=policy.code.get("package_version") or here["package_version"],
        git_sha=policy.code.get("git_sha") or here["git_sha"],
        code_history=list(policy.code_history),
        export_git_sha=here["git_sha"],
    )


def evaluation_of(source: str | Path, step: int) -> dict[str, Any]:
    """The fullest evaluation of step `step` in the run `source` belongs to (most episodes over
    all splits: usually `sgqn-eval`'s, else training's own), as the model's metadata records it;
    {} if there is none. Evaluations on your own photos (`*_own_textures`) are left out: they
    describe your lab, not the model's splits."""
    from sgqn_robot.checkpoint import checkpoint_dir

    best: dict[str, Any] = {}
    best_total = 0
    run_dir = checkpoint_dir(source).parent.parent
    for path in sorted((run_dir / "eval").glob("*.json")):
        if path.stem.endswith("_own_textures"):
            continue
        try:
            data = json.loads(path.read_text())
            if data["step"] != step:
                continue
            splits = {
                split: {k: float(r[k]) for k in ("return_mean", "return_std", "success_rate")}
                for split, r in data["splits"].items()
            }
            episodes = [int(r["episodes"]) for r in data["splits"].values()]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # not an evaluation sgqn-eval or training wrote
        if splits and sum(episodes) > best_total:
            best_total = sum(episodes)
            best = {
                "file": str(path.relative_to(run_dir)),
                "episodes": min(episodes),
                "splits": splits,
            }
    return best


def export_checkpoint(
    source: str | Path,
    out: str | Path,
    with_saliency: bool = False,
    per_split: int = 4,
    seed: int = 0,
) -> ModelMetadata:
    """Load a run dir or checkpoint, check parity on every split, write the ONNX file(s)."""
    from sgqn_robot.envs import SPLITS, make_env

    from sgqn_robot.checkpoint import load_policy
    from sgqn_robot.evaluate import env_kwargs

    out = output_path(out)
    policy = load_policy(source)
    if with_saliency and policy.predictor is None:
        raise ExportError(f"{source}: --with-saliency needs an sgqn checkpoint (no predictor)")
    try:
        kwargs = env_kwargs(policy.config)  # the env training and evaluation built
    except KeyError as e:
        raise ExportError(
            f"{source}: checkpoint config lacks {e}; not written by sgqn-train"
        ) from e
    task = _task(policy.config)
    env = make_env(task, split="train", **kwargs)
    try:
        meta = metadata_from_policy(policy, env)
    finally:
        env.close()
    meta = replace(meta, evaluation=evaluation_of(source, policy.step))
    obs = rendered_observations(task, kwargs, list(SPLITS), per_split, seed)
    predictor = policy.predictor if with_saliency else None
    return export_module(policy.actor, meta, obs, out, predictor)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sgqn-export", description="Export a trained actor to one ONNX file for the robot PC."
    )
    parser.add_argument("source", help="run dir (latest checkpoint) or checkpoint dir/file")
    parser.add_argument("-o", "--output", required=True, help="path of the .onnx file to write")
    parser.add_argument(
        "--with-saliency",
        action="store_true",
        help="also write <output stem>.saliency.onnx with the attribution predictor (sgqn)",
    )
    parser.add_argument("--per-split", type=int, default=4, help="parity observations per split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        meta = export_checkpoint(
            args.source, args.output, args.with_saliency, args.per_split, args.seed
        )
    except (ExportError, ModelError, FileNotFoundError, ValueError) as e:
        print(f"sgqn-export: error: {e}", file=sys.stderr)
        return 2
    err = meta.parity["max_abs_err"]
    print(
        f"wrote {args.output} (task {meta.task}, obs {meta.obs_shape}, trained at code "
        f"{meta.git_sha}, parity max |err| {err:.2e})"
    )
    if meta.saliency_graph:
        print(f"wrote {Path(args.output).with_name(meta.saliency_graph)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
