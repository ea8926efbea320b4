"""Network shapes for both presets, channels_last equivalence, traceable deploy modules."""

from __future__ import annotations

import io

import pytest
import torch

from sgqn_robot.agents import make_agent
from sgqn_robot.agents.networks import PRESETS, AttributionPredictor, Trunk


@pytest.mark.parametrize(("preset", "shape"), [("paper", (32, 21, 21)), ("fast", (32, 11, 11))])
def test_trunk_and_predictor_shapes(preset: str, shape: tuple[int, int, int]) -> None:
    size = PRESETS[preset].image_size
    trunk = Trunk(6, PRESETS[preset])
    assert trunk.out_shape == shape
    obs = torch.randint(0, 256, (2, 6, size, size), dtype=torch.uint8)
    assert trunk(obs).shape == (2, 32 * shape[1] * shape[2])
    predictor = AttributionPredictor(trunk.out_shape, size, 6, in_dim=12)
    assert predictor(torch.randn(2, 10), torch.randn(2, 2)).shape == (2, 6, size, size)


def test_channels_last_is_the_same_function() -> None:
    nhwc = Trunk(3, PRESETS["fast"], channels_last=True)
    nchw = Trunk(3, PRESETS["fast"], channels_last=False)
    nchw.load_state_dict(nhwc.state_dict())
    obs = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    torch.testing.assert_close(nhwc(obs), nchw(obs), rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_deploy_modules_trace_to_onnx() -> None:
    pytest.importorskip("onnx")
    agent = make_agent(
        {"name": "sgqn", "hidden_dim": 32}, {"preset": "fast"}, (3, 64, 64), 2, "cpu"
    )
    obs = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    action = torch.zeros(1, 2)
    actor, predictor = agent.actor_module(), agent.predictor_module()
    assert actor(obs).shape == (1, 2) and predictor(obs, action).shape == (1, 3, 64, 64)
    files = {}
    for name, module, args in (("actor", actor, (obs,)), ("predictor", predictor, (obs, action))):
        files[name] = io.BytesIO()
        torch.onnx.export(
            module, args, files[name], dynamo=False, input_names=["obs", "action"][: len(args)]
        )
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(files["actor"].getvalue())
    (onnx_action,) = session.run(None, {"obs": obs.numpy()})
    torch.testing.assert_close(torch.from_numpy(onnx_action), actor(obs), rtol=1e-4, atol=1e-5)
