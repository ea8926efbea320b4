"""The exported actor behind onnxruntime: load, validate against its metadata, warm up, act.

Everything that could make the robot misbehave because of the file itself (missing, corrupt,
not our export, metadata contradicting the graph) raises ``ModelError`` here, before the loop
touches the robot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from .metadata import ModelError, ModelMetadata

INPUT = "obs"
OUTPUT = "action"


def _session(path: Path, threads: int | None) -> ort.InferenceSession:
    if not path.is_file():
        raise ModelError(
            f"{path}: no such model file; export one with `sgqn-export <run> -o FILE`."
        )
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads is not None:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Worker threads must not spin between inferences: the loop sleeps most of each period, and
    # on a 2-core robot PC (or under SCHED_FIFO) a spinning worker starves the camera and loop.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises several unrelated types for unreadable files
        raise ModelError(
            f"{path}: onnxruntime cannot load it ({type(e).__name__}: {str(e).splitlines()[0]}); "
            "the file is corrupt or not an ONNX model - copy or re-export it."
        ) from e


class OnnxPolicy:
    """uint8 [C,H,W] (or batched [B,C,H,W]) stacked observation -> float32 action."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = _session(self.path, threads)
        props = self.session.get_modelmeta().custom_metadata_map
        self.meta = ModelMetadata.from_props(props, source=str(self.path))
        self._check_graph()

    def _check_graph(self) -> None:
        ins, outs = self.session.get_inputs(), self.session.get_outputs()
        src = str(self.path)
        if [i.name for i in ins] != [INPUT] or OUTPUT not in [o.name for o in outs]:
            raise ModelError(
                f"{src}: graph has inputs {[i.name for i in ins]} / outputs "
                f"{[o.name for o in outs]}, expected {INPUT!r} -> {OUTPUT!r}; re-export it."
            )
        (inp,) = ins
        if inp.type != "tensor(uint8)" or list(inp.shape[1:]) != list(self.meta.obs_shape):
            raise ModelError(
                f"{src}: graph input is {inp.type} {inp.shape} but metadata says uint8 "
                f"[B, {', '.join(map(str, self.meta.obs_shape))}]; the file was edited or mixed up."
            )
        out = next(o for o in outs if o.name == OUTPUT)
        self._check_action_dim(out.shape[-1])

    def _check_action_dim(self, dim: int | str) -> None:
        """Static dims are checked on load, symbolic ones on the first (warm-up) inference."""
        if isinstance(dim, int) and dim != self.meta.action_dim:
            raise ModelError(
                f"{self.path}: graph outputs {dim} action dims, metadata bounds "
                f"{self.meta.action_dim}; re-export it."
            )

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        batched = obs.ndim == 4
        x = obs if batched else obs[None]
        if x.dtype != np.uint8 or x.shape[1:] != self.meta.obs_shape:
            raise ValueError(
                f"observation {obs.shape} {obs.dtype} does not match the model's uint8 "
                f"{self.meta.obs_shape}"
            )
        (action,) = self.session.run([OUTPUT], {INPUT: x})
        return action if batched else action[0]

    def warmup(self, n: int = 5) -> None:
        """First runs allocate and pick kernels; pay that before the first real tick."""
        x = np.zeros(self.meta.obs_shape, np.uint8)
        for _ in range(n):
            self._check_action_dim(self(x).shape[-1])


class SaliencyModel:
    """Optional attribution predictor graph: (obs, action) -> mask probability [B, C, H, W]."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = _session(self.path, threads)

    def __call__(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        (mask,) = self.session.run(
            ["mask"], {INPUT: obs[None], "action": action[None].astype(np.float32)}
        )
        return mask[0]
