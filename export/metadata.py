"""The one place that defines the metadata an exported policy carries, and how it is read back.

The robot PC has no training code, so everything the control loop needs to feed the network and
bound its actions (frame size, colour order, frame stack, action bounds, control period, safety
limits) travels inside the ONNX file as ``metadata_props``. Keys are unique, values are strings,
structured values are JSON.

The workspace box is in the ROBOT BASE frame (``{"frame": "robot_base", "low": [x, y, z],
"high": [x, y, z]}``, metres), the frame a real arm reports its end-effector pose in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

FORMAT = "sgqn_robot.actor/1"

# Every key the exporter writes. ``REQUIRED`` are the ones the runner cannot work without.
K_FORMAT = "sgqn.format"
K_VERSION = "sgqn.package_version"
K_GIT_SHA = "sgqn.git_sha"
K_EXPORT_GIT_SHA = "sgqn.export_git_sha"
K_CODE_HISTORY = "sgqn.code_history"
K_TASK = "sgqn.task"
K_AGENT = "sgqn.agent"
K_STEP = "sgqn.step"
K_OBS_SHAPE = "sgqn.obs_shape"
K_OBS_DTYPE = "sgqn.obs_dtype"
K_OBS_LAYOUT = "sgqn.obs_layout"
K_FRAME_STACK = "sgqn.frame_stack"
K_IMAGE_SIZE = "sgqn.image_size"
K_CAMERA = "sgqn.camera"
K_PREPROCESSING = "sgqn.preprocessing"
K_ACTION_SPACE = "sgqn.action_space"
K_ACTION_LOW = "sgqn.action_low"
K_ACTION_HIGH = "sgqn.action_high"
K_ACTION_SCALE_M = "sgqn.action_scale_m"
K_WORKSPACE = "sgqn.workspace"
K_CONTROL_PERIOD = "sgqn.control_period_s"
K_TRAINING_CONFIG = "sgqn.training_config"
K_PARITY = "sgqn.parity"
K_SALIENCY = "sgqn.saliency_graph"
K_EVALUATION = "sgqn.evaluation"

REQUIRED = (
    K_FORMAT,
    K_OBS_SHAPE,
    K_OBS_DTYPE,
    K_OBS_LAYOUT,
    K_FRAME_STACK,
    K_IMAGE_SIZE,
    K_PREPROCESSING,
    K_ACTION_LOW,
    K_ACTION_HIGH,
    K_CONTROL_PERIOD,
)

# What a camera frame must go through to look like a training frame. Training frames are rendered
# natively at ``image_size`` x ``image_size`` from a square camera, so a frame of that size and
# colour order passes unchanged; a real camera needs the centre crop to a square and the area
# resize, in this order, then RGB channel order.
DEFAULT_PREPROCESSING: dict[str, Any] = {
    "input": "HWC uint8 frame from one camera, any size",
    "crop": "center",
    "crop_aspect": 1.0,
    "resize": "area",
    "color_order": "RGB",
    "layout": "CHW",
    "stack": "oldest frame first along channels; the first frame of an episode fills the stack",
}


WORKSPACE_FRAME = "robot_base"
# Exports made before the box carried a frame stored it in the simulator's world frame (origin
# at the table centre), where the robot base stood at this point (envs/scene.py ``ROBOT_BASE``).
_LEGACY_ROBOT_BASE_IN_WORLD = (-0.5, 0.0, 0.0)


def base_frame_workspace(
    low: Sequence[float], high: Sequence[float], base_in_world: Sequence[float]
) -> dict[str, Any]:
    """The metadata box from world-frame corners and the robot base's world position."""

    def shift(corner: Sequence[float]) -> list[float]:
        return [round(float(v) - b, 9) for v, b in zip(corner, base_in_world, strict=True)]

    return {"frame": WORKSPACE_FRAME, "low": shift(low), "high": shift(high)}


def _workspace_in_base_frame(ws: Any) -> dict[str, Any] | None:
    """The stored box, moved into the robot base frame if it predates the ``frame`` key."""
    if ws is None:
        return None
    if not isinstance(ws, dict):
        raise TypeError(f"workspace {ws!r} is not a JSON object")
    if "frame" in ws:
        return ws
    return base_frame_workspace(ws["low"], ws["high"], _LEGACY_ROBOT_BASE_IN_WORLD)


class ModelError(Exception):
    """A model file the runner must refuse before the robot moves (message says how to fix it)."""


@dataclass(frozen=True)
class ModelMetadata:
    """Typed view of the metadata; ``to_props``/``from_props`` are the only (de)serialisers."""

    obs_shape: tuple[int, int, int]
    frame_stack: int
    image_size: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    control_period: float
    preprocessing: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PREPROCESSING))
    task: str = "unknown"
    agent: str = "unknown"
    step: int = -1
    camera: str = "unknown"
    action_space: str = "unknown"
    action_scale_m: float = 0.05
    workspace: dict[str, Any] | None = None  # {"frame": "robot_base", "low": .., "high": ..}
    training_config: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    package_version: str = "unknown"
    git_sha: str = "unknown"  # the code that trained the weights
    export_git_sha: str = "unknown"  # the code that exported them
    # every code that trained them, oldest first: [{"git_sha", "package_version", "from_step"}]
    # (more than one where a run was resumed under another commit; git_sha is the last)
    code_history: list[dict[str, Any]] = field(default_factory=list)
    saliency_graph: str = ""
    # the run's evaluation of these weights: {"file", "episodes", "splits": {split: {...}}}
    evaluation: dict[str, Any] = field(default_factory=dict)
    obs_dtype: str = "uint8"
    obs_layout: str = "NCHW"

    @property
    def action_dim(self) -> int:
        return len(self.action_low)

    @property
    def channels_per_frame(self) -> int:
        return self.obs_shape[0] // self.frame_stack

    def describe(self) -> str:
        """What a person deploying the file needs to know about it, one aspect per line."""
        cfg = self.training_config
        encoder = cfg.get("encoder")
        encoder = encoder.get("preset", "?") if isinstance(encoder, dict) else "?"
        size = f"{self.image_size}x{self.image_size}"
        bounds = " x ".join(
            f"[{lo:g}, {hi:g}]" for lo, hi in zip(self.action_low, self.action_high, strict=True)
        )
        p = self.preprocessing
        lines = [
            f"{self.agent} policy for {self.task}, {self.step} env steps "
            f"(encoder {encoder}, seed {cfg.get('seed', '?')})",
            f"trained by   {self._trained_by()}; exported by code {self.export_git_sha}",
            f"input        {self.obs_dtype} {self.obs_layout} {list(self.obs_shape)}: "
            f"{self.frame_stack} frame(s) of {size} {p.get('color_order', '?')} from camera "
            f"{self.camera!r} ({p.get('crop', '?')} crop, {p.get('resize', '?')} resize)",
            f"output       {self.action_dim} actions ({self.action_space}) in {bounds}, "
            f"{self.action_scale_m:g} m end-effector step per unit",
            f"control      every {self.control_period * 1e3:.1f} ms "
            f"({1 / self.control_period:.1f} Hz)",
        ]
        if self.workspace:
            ws = self.workspace
            lines.append(
                f"workspace    {ws['frame']} frame, low {ws['low']} m, high {ws['high']} m"
            )
        if self.parity:
            n_splits = len(self.parity.get("per_split_max_abs_err", {}))
            lines.append(
                f"parity       max |err| {self.parity['max_abs_err']:.1e} vs torch "
                f"{self.parity.get('torch', '?')} on {self.parity.get('n_obs', '?')} frames of "
                f"{n_splits} splits"
            )
        lines.append(f"saliency     {self.saliency_graph or 'none (export with --with-saliency)'}")
        ev = self.evaluation
        if ev:
            n = ev["episodes"]
            lines.append(f"evaluated    {ev['file']}, {n} episode{'s' * (n != 1)} per split:")
            results = [
                f"{split} {r['return_mean']:.1f} ({r['success_rate']:.0%})"
                for split, r in ev["splits"].items()
            ]
            for i in range(0, len(results), 4):
                lines.append("    " + ", ".join(results[i : i + 4]))
        else:
            lines.append("evaluated    none recorded (sgqn-eval the run, then export it)")
        return "\n  ".join(lines)

    def _trained_by(self) -> str:
        """One code, or each code of a run resumed across commits with the steps it trained."""
        if len(self.code_history) < 2:
            return f"code {self.git_sha} (sgqn-robot {self.package_version})"
        parts = []
        for entry in self.code_history:
            start = "?" if entry["from_step"] is None else entry["from_step"]
            parts.append(
                f"{entry['git_sha']} (sgqn-robot {entry['package_version']}) from step {start}"
            )
        return "code " + ", then ".join(parts)

    def to_props(self) -> dict[str, str]:
        """String-valued ``metadata_props`` (JSON for anything structured)."""
        j = json.dumps
        return {
            K_FORMAT: FORMAT,
            K_VERSION: self.package_version,
            K_GIT_SHA: self.git_sha,
            K_EXPORT_GIT_SHA: self.export_git_sha,
            K_CODE_HISTORY: j(self.code_history),
            K_TASK: self.task,
            K_AGENT: self.agent,
            K_STEP: str(self.step),
            K_OBS_SHAPE: j(list(self.obs_shape)),
            K_OBS_DTYPE: self.obs_dtype,
            K_OBS_LAYOUT: self.obs_layout,
            K_FRAME_STACK: str(self.frame_stack),
            K_IMAGE_SIZE: str(self.image_size),
            K_CAMERA: self.camera,
            K_PREPROCESSING: j(self.preprocessing, sort_keys=True),
            K_ACTION_SPACE: self.action_space,
            K_ACTION_LOW: j(list(self.action_low)),
            K_ACTION_HIGH: j(list(self.action_high)),
            K_ACTION_SCALE_M: repr(self.action_scale_m),
            K_WORKSPACE: j(self.workspace),
            K_CONTROL_PERIOD: repr(self.control_period),
            K_TRAINING_CONFIG: j(self.training_config, sort_keys=True, default=str),
            K_PARITY: j(self.parity, sort_keys=True),
            K_SALIENCY: self.saliency_graph,
            K_EVALUATION: j(self.evaluation),
        }

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str = "model") -> ModelMetadata:
        """Parse and validate; raises ``ModelError`` naming the file and the missing/bad key."""
        if props.get(K_FORMAT) != FORMAT:
            raise ModelError(
                f"{source}: not an sgqn_robot actor export (metadata {K_FORMAT!r} is "
                f"{props.get(K_FORMAT)!r}, expected {FORMAT!r}); export it with `sgqn-export`."
            )
        missing = [k for k in REQUIRED if k not in props]
        if missing:
            raise ModelError(f"{source}: metadata lacks {missing}; re-export with `sgqn-export`.")
        try:
            meta = cls(
                obs_shape=tuple(int(v) for v in json.loads(props[K_OBS_SHAPE])),
                frame_stack=int(props[K_FRAME_STACK]),
                image_size=int(props[K_IMAGE_SIZE]),
                action_low=tuple(float(v) for v in json.loads(props[K_ACTION_LOW])),
                action_high=tuple(float(v) for v in json.loads(props[K_ACTION_HIGH])),
                control_period=float(props[K_CONTROL_PERIOD]),
                preprocessing=json.loads(props[K_PREPROCESSING]),
                task=props.get(K_TASK, "unknown"),
                agent=props.get(K_AGENT, "unknown"),
                step=int(props.get(K_STEP, "-1")),
                camera=props.get(K_CAMERA, "unknown"),
                action_space=props.get(K_ACTION_SPACE, "unknown"),
                action_scale_m=float(props.get(K_ACTION_SCALE_M, "0.05")),
                workspace=_workspace_in_base_frame(json.loads(props.get(K_WORKSPACE, "null"))),
                training_config=json.loads(props.get(K_TRAINING_CONFIG, "{}")),
                parity=json.loads(props.get(K_PARITY, "{}")),
                package_version=props.get(K_VERSION, "unknown"),
                git_sha=props.get(K_GIT_SHA, "unknown"),
                export_git_sha=props.get(K_EXPORT_GIT_SHA, "unknown"),
                code_history=[
                    {k: entry[k] for k in ("git_sha", "package_version", "from_step")}
                    for entry in json.loads(props.get(K_CODE_HISTORY, "[]"))
                ],
                saliency_graph=props.get(K_SALIENCY, ""),
                evaluation=json.loads(props.get(K_EVALUATION, "{}")),
                obs_dtype=props[K_OBS_DTYPE],
                obs_layout=props[K_OBS_LAYOUT],
            )
        except (ValueError, TypeError, KeyError) as e:
            raise ModelError(f"{source}: malformed metadata ({e}); re-export the model.") from e
        meta.validate(source)
        return meta

    def validate(self, source: str = "model") -> None:
        """Internal consistency: the runner trusts these numbers to shape frames and bound actions."""
        problems = []
        if len(self.obs_shape) != 3 or self.obs_shape[1:] != (self.image_size, self.image_size):
            problems.append(f"obs_shape {self.obs_shape} vs image_size {self.image_size}")
        if self.frame_stack < 1 or self.obs_shape[0] % self.frame_stack:
            problems.append(
                f"{self.obs_shape[0]} channels not divisible by stack {self.frame_stack}"
            )
        if self.obs_dtype != "uint8" or self.obs_layout != "NCHW":
            problems.append(f"obs {self.obs_dtype}/{self.obs_layout}, runner feeds uint8/NCHW")
        if len(self.action_low) != len(self.action_high) or not self.action_low:
            problems.append("action bounds of different lengths")
        elif any(lo >= hi for lo, hi in zip(self.action_low, self.action_high, strict=True)):
            problems.append("action_low >= action_high")
        if not self.control_period > 0:
            problems.append(f"control period {self.control_period}")
        if not self.action_scale_m > 0:
            problems.append(f"action scale {self.action_scale_m} m")
        ws = self.workspace
        if ws is not None:
            if ws.get("frame") != WORKSPACE_FRAME:
                problems.append(f"workspace frame {ws.get('frame')!r}, runner needs 'robot_base'")
            low, high = ws.get("low"), ws.get("high")
            xyz = isinstance(low, list) and isinstance(high, list) and len(low) == len(high) == 3
            if not (xyz and all(a < b for a, b in zip(low, high, strict=True))):
                problems.append(f"workspace low {low} not below high {high} on x, y, z")
        if problems:
            problems_text = "; ".join(problems)
            raise ModelError(f"{source}: inconsistent metadata: {problems_text}; re-export it.")
