"""Guided backprop and the quantile mask against hand-computed cases."""

from __future__ import annotations

import torch

from sgqn_robot.agents import make_agent
from sgqn_robot.agents.saliency import GuidedReLU, attribution, attribution_mask

# y = w2 . relu(W1 x) at x = (1, 1): h = W1 x = (3, -1, 2), so unit 2 is off, and unit 3 is on
# but receives a negative gradient (-2), which guided backprop drops.
W1 = torch.tensor([[1.0, 2.0], [2.0, -3.0], [1.0, 1.0]])
W2 = torch.tensor([1.0, 5.0, -2.0])
ORDINARY = torch.tensor([-1.0, 0.0])  # W1^T (w2 * [h > 0]) = W1^T (1, 0, -2)
GUIDED = torch.tensor([1.0, 2.0])  # W1^T (clamp(w2, 0) * [h > 0]) = W1^T (1, 0, 0)


def _tiny(relu: GuidedReLU) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.ones(2, requires_grad=True)
    return x, W2 @ relu(W1 @ x)


def test_guided_relu_hand_computed() -> None:
    for guided, expected in ((True, GUIDED), (False, ORDINARY)):
        x, y = _tiny(GuidedReLU(guided))
        (grad,) = torch.autograd.grad(y, x)
        torch.testing.assert_close(grad, expected)


def test_one_graph_serves_guided_then_ordinary_backward() -> None:
    relu = GuidedReLU(guided=True)
    x, y = _tiny(relu)
    (guided,) = torch.autograd.grad(y, x, retain_graph=True)
    relu.guided = False
    (ordinary,) = torch.autograd.grad(y, x)
    torch.testing.assert_close(guided, GUIDED)
    torch.testing.assert_close(ordinary, ORDINARY)


def _critic():
    torch.manual_seed(0)
    agent = make_agent({"name": "sac", "hidden_dim": 16}, {"preset": "fast"}, (6, 64, 64), 2, "cpu")
    # Leave the delta-orthogonal init: spread weight over the whole 3x3 kernels.
    for p in agent.critic.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    obs = torch.randint(0, 256, (3, 6, 64, 64), dtype=torch.uint8)
    return agent.critic, obs, torch.rand(3, 2) * 2 - 1


def test_attribution_is_guided_gradient_of_q1_only() -> None:
    critic, obs, action = _critic()
    attr = attribution(critic, obs, action)
    assert attr.shape == obs.shape and attr.dtype == torch.float32
    # Non-guided plumbing equals plain autograd with nn ReLUs.
    x = obs.float().requires_grad_()
    (plain,) = torch.autograd.grad(critic(x, action)[0].sum(), x)
    x2 = obs.float().requires_grad_()
    (switch_off,) = torch.autograd.grad(critic(x2, action, GuidedReLU(False))[0].sum(), x2)
    torch.testing.assert_close(switch_off, plain)
    assert not torch.allclose(attr, plain)
    # Q2's head plays no part.
    with torch.no_grad():
        for p in critic.q2.parameters():
            p.mul_(-3.0)
    torch.testing.assert_close(attribution(critic, obs, action), attr)


def test_attribution_of_single_sample_is_independent_of_batch() -> None:
    critic, obs, action = _critic()
    torch.testing.assert_close(
        attribution(critic, obs[1:2], action[1:2]), attribution(critic, obs, action)[1:2]
    )


def test_mask_hand_computed() -> None:
    # One RGB frame, 2x2: max over colour of |A| is [[1, 4], [3, 2]]; the 0.5-quantile of
    # (1, 2, 3, 4) is 2.5, so the top half (4 and 3) is kept, on all three channels.
    attr = torch.tensor(
        [[[[1.0, -4.0], [0.0, 2.0]], [[0.5, 1.0], [-3.0, 0.0]], [[0.0, 0.0], [1.0, -1.0]]]]
    )
    mask = attribution_mask(attr, 0.5)
    expected = torch.tensor([[False, True], [True, False]]).expand(1, 3, 2, 2)
    assert mask.dtype == torch.bool
    assert torch.equal(mask, expected)


def test_mask_keeps_top_fraction_per_frame_with_frame_stack() -> None:
    torch.manual_seed(0)
    attr = torch.randn(4, 9, 20, 20)
    attr[:, :3] *= 100.0  # a global threshold would keep only frame 0
    mask = attribution_mask(attr, 0.95)
    per_frame = mask.view(4, 3, 3, 400)
    assert torch.equal(per_frame, per_frame[:, :, :1].expand_as(per_frame))  # same on R, G, B
    assert torch.equal(per_frame[:, :, 0].sum(-1), torch.full((4, 3), 20))  # 5% of 400
    sal = attr.abs().view(4, 3, 3, 400).amax(2)
    reference = sal >= torch.quantile(sal, 0.95, dim=-1, keepdim=True)
    assert torch.equal(per_frame[:, :, 0], reference)
