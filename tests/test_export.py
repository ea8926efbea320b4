"""Export mechanics on a small stand-in actor (same call signature as the real one).

The stand-in keeps these tests fast and independent of training; the end-to-end export of a real
checkpoint on real rendered frames lives in ``test_export_e2e.py``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from sgqn_robot.export import metadata as md
from sgqn_robot.export import onnx_export
from sgqn_robot.export.onnx_export import ExportError, export_module
from sgqn_robot.export.policy import OnnxPolicy
from torch import nn

OBS = (6, 16, 16)


class TinyActor(nn.Module):
    """uint8 [B,C,H,W] -> tanh action, /255 inside: the contract of ``Policy.actor``."""

    def __init__(self, action_dim: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(OBS[0], 4, 3, stride=2)
        self.head = nn.Linear(4 * 7 * 7, action_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(obs.float() / 255.0))
        return torch.tanh(self.head(h.flatten(1)))


class TinyPredictor(nn.Module):
    """(uint8 obs, action) -> mask logits of the obs shape: the contract of ``Policy.predictor``."""

    def __init__(self, action_dim: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(OBS[0], OBS[0], 3, padding=1)
        self.act = nn.Linear(action_dim, OBS[0])

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.conv(obs.float() / 255.0) + self.act(action)[:, :, None, None]


class DriftingActor(TinyActor):
    """Changes its output after tracing, so ONNX and torch disagree: parity must catch it."""

    calls = 0

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return super().forward(obs) * 0 + float(self.calls) * 0.01


def stand_in_meta(action_dim: int = 3, low: float = -1.0, high: float = 1.0) -> md.ModelMetadata:
    return md.ModelMetadata(
        obs_shape=OBS,
        frame_stack=2,
        image_size=16,
        action_low=(low,) * action_dim,
        action_high=(high,) * action_dim,
        control_period=0.04,
        task="reach",
        workspace={"frame": "robot_base", "low": [-0.3, -0.3, 0.0], "high": [0.3, 0.3, 0.4]},
        training_config={"agent": {"name": "stand-in"}},
    )


def stand_in_obs(n: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {s: rng.integers(0, 256, (n, *OBS), dtype=np.uint8) for s in ("train", "test1")}


def export_stand_in(path: Path, **meta_kwargs: float) -> md.ModelMetadata:
    """Export ``TinyActor`` to ``path`` (used by the runner tests too)."""
    return export_module(TinyActor(), stand_in_meta(**meta_kwargs), stand_in_obs(), path)


def test_export_writes_checked_self_contained_file(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    meta = export_stand_in(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temp files, no .data
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    keys = [p.key for p in model.metadata_props]
    assert len(keys) == len(set(keys))
    assert set(md.REQUIRED) <= set(keys)
    assert [i.name for i in model.graph.input] == ["obs"]
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert meta.parity["max_abs_err"] <= 1e-5
    assert set(meta.parity["per_split_max_abs_err"]) == {"train", "test1"}


def test_metadata_round_trips_through_onnxruntime(tmp_path: Path) -> None:
    written = export_stand_in(tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    assert md.ModelMetadata.from_props(props) == written
    assert props[md.K_TASK] == "reach" and props[md.K_OBS_LAYOUT] == "NCHW"


def test_onnx_matches_torch_at_any_batch_size(tmp_path: Path) -> None:
    export_stand_in(tmp_path / "m.onnx")
    policy = OnnxPolicy(tmp_path / "m.onnx")
    obs = np.random.default_rng(1).integers(0, 256, (5, *OBS), dtype=np.uint8)
    with torch.no_grad():
        ref = TinyActor()(torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(policy(obs), ref, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(policy(obs[0]), ref[0], rtol=1e-3, atol=1e-5)


def test_action_scaling_to_bounds_is_inside_the_graph(tmp_path: Path) -> None:
    # Uneven per-axis bounds: centre and radius differ on every axis and from each other.
    low, high = np.array([-0.5, 0.0, 1.0]), np.array([1.5, 4.0, 1.2])
    meta = dataclasses.replace(stand_in_meta(), action_low=tuple(low), action_high=tuple(high))
    export_module(TinyActor(), meta, stand_in_obs(), tmp_path / "m.onnx")
    obs = stand_in_obs()["train"]
    with torch.no_grad():
        tanh = TinyActor()(torch.from_numpy(obs)).numpy()
    expected = (high + low) / 2 + (high - low) / 2 * tanh
    np.testing.assert_allclose(OnnxPolicy(tmp_path / "m.onnx")(obs), expected, atol=1e-5)


def test_parity_failure_refuses_export_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="differs from torch on split 'train'"):
        export_module(DriftingActor(), stand_in_meta(), stand_in_obs(), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_wrong_observation_shape_is_refused(tmp_path: Path) -> None:
    bad = {"train": np.zeros((2, 3, 16, 16), np.uint8)}
    with pytest.raises(ExportError, match="need"):
        export_module(TinyActor(), stand_in_meta(), bad, tmp_path / "m.onnx")


def test_saliency_graph_is_a_second_file_with_sigmoid_inside(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    predictor = TinyPredictor()
    meta = export_module(TinyActor(), stand_in_meta(), stand_in_obs(), out, predictor)
    assert meta.saliency_graph == "m.saliency.onnx"
    sal = ort.InferenceSession(
        str(tmp_path / meta.saliency_graph), providers=["CPUExecutionProvider"]
    )
    obs = stand_in_obs()["test1"]
    action = OnnxPolicy(out)(obs)
    (mask,) = sal.run(["mask"], {"obs": obs, "action": action})
    with torch.no_grad():
        ref = torch.sigmoid(predictor(torch.from_numpy(obs), torch.from_numpy(action))).numpy()
    np.testing.assert_allclose(mask, ref, rtol=1e-3, atol=1e-5)


class DriftingPredictor(TinyPredictor):
    """Changes its output after tracing: the saliency graph's parity check must catch it."""

    calls = 0

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return super().forward(obs, action) + float(self.calls)


def test_saliency_parity_failure_refuses_export_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match="differs from torch on split"):
        export_module(TinyActor(), stand_in_meta(), stand_in_obs(), out, DriftingPredictor())
    assert list(tmp_path.iterdir()) == []


def test_failing_actor_leaves_no_saliency_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = onnx.checker.check_model

    def reject_actor(model: onnx.ModelProto, **kw: object) -> None:
        if any(p.key == md.K_FORMAT and p.value == md.FORMAT for p in model.metadata_props):
            raise onnx.checker.ValidationError("stand-in rejection")
        check(model, **kw)

    monkeypatch.setattr(onnx.checker, "check_model", reject_actor)
    with pytest.raises(ExportError, match="stand-in rejection"):
        export_module(TinyActor(), stand_in_meta(), stand_in_obs(), tmp_path / "m.onnx",
                      TinyPredictor())  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_directory_as_output_is_refused_up_front(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ExportError, match="is a directory; give the path of the file"):
        export_module(TinyActor(), stand_in_meta(), stand_in_obs(), tmp_path)
    # refused before the (missing) checkpoint is even looked at
    assert onnx_export.main([str(tmp_path / "no-run"), "-o", f"{tmp_path / 'new'}/"]) == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
