"""Network shapes for both presets, channels_last equivalence, traceable deploy modules."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F

from sgqn_robot.agents import make_agent
from sgqn_robot.agents.networks import PRESETS, AttributionPredictor, Trunk, upsample_conv3x3


@pytest.mark.parametrize(("preset", "shape"), [("paper", (32, 21, 21)), ("fast", (32, 11, 11))])
def test_trunk_and_predictor_shapes(preset: str, shape: tuple[int, int, int]) -> None:
    size = PRESETS[preset].image_size
    trunk = Trunk(6, PRESETS[preset])
    assert trunk.out_shape == shape
    obs = torch.randint(0, 256, (2, 6, size, size), dtype=torch.uint8)
    assert trunk(obs).shape == (2, 32 * shape[1] * shape[2])
    predictor = AttributionPredictor(PRESETS[preset], 6, in_dim=12)
    assert predictor(torch.randn(2, 10), torch.randn(2, 2)).shape == (2, 6, size, size)


def test_upsample_conv_equals_conv_of_upsampled_map() -> None:
    conv = torch.nn.Conv2d(5, 7, 3, padding=1)
    x = torch.randn(2, 5, 6, 9)
    expected = conv(F.interpolate(x, scale_factor=2, mode="nearest"))
    torch.testing.assert_close(upsample_conv3x3(x, conv), expected, rtol=1e-4, atol=1e-5)


def test_predictor_is_the_spec_decoder_at_paper_size() -> None:
    predictor = AttributionPredictor(PRESETS["paper"], 3, in_dim=103)
    z, a = torch.randn(2, 100), torch.randn(2, 3)
    x = predictor.fc(torch.cat([z, a], 1)).view(2, 32, 21, 21)
    x = F.relu(F.interpolate(predictor.conv1(x), scale_factor=2, mode="nearest"))
    x = F.relu(F.interpolate(predictor.conv2(x), scale_factor=2, mode="nearest"))
    spec = predictor.conv3(x)
    assert spec.shape == (2, 3, 84, 84)
    torch.testing.assert_close(predictor(z, a), spec, rtol=1e-4, atol=1e-5)


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
