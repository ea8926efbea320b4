"""Agents' behaviour: config handling, metric keys, which parameters each step moves,
checkpoint round trip, seeded reproducibility, and a small learning sanity check."""

from __future__ import annotations

import copy
import dataclasses
import io
import re

import numpy as np
import pytest
import torch

from sgqn_robot.agents import AGENTS, make_agent, resolve_device
from sgqn_robot.agents.saliency import attribution, attribution_mask
from sgqn_robot.replay import Batch

OBS = (6, 64, 64)  # fast preset, frame_stack 2
SMALL = {"hidden_dim": 32}
BASE_KEYS = {"critic_loss", "q1", "q2", "target_q", "feature_std"}
ACTOR_KEYS = {"actor_loss", "alpha_loss", "alpha", "entropy"}
EXTRA_KEYS = {
    "sac": (set(), set()),
    "drq": (set(), set()),
    "svea": ({"critic_loss_aug"}, set()),
    "sgqn": ({"consistency_loss", "mask_fraction"}, {"aux_loss", "aux_accuracy"}),
}


def _agent(name: str, seed: int = 0, **cfg):
    torch.manual_seed(seed)
    return make_agent({"name": name, **SMALL, **cfg}, {"preset": "fast"}, OBS, 3, "cpu")


def _batch(seed: int = 0, b: int = 8, reward: float | None = None) -> Batch:
    rng = np.random.default_rng(seed)
    obs = rng.integers(0, 256, (b, *OBS), dtype=np.uint8)
    r = rng.normal(size=b) if reward is None else np.full(b, reward)
    return Batch(
        obs=obs,
        action=rng.uniform(-1, 1, (b, 3)).astype(np.float32),
        reward=r.astype(np.float32),
        next_obs=np.roll(obs, 1, axis=0),
        not_done=np.ones(b, np.float32),
    )


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(b, p) for b, p in zip(before, module.parameters(), strict=True))


def test_make_agent_rejects_unknown_names_listing_choices() -> None:
    with pytest.raises(ValueError, match="sgqn"):
        make_agent({"name": "ppo"}, {"preset": "fast"}, OBS, 3, "cpu")
    with pytest.raises(ValueError, match="paper"):
        make_agent({"name": "sac"}, {"preset": "huge"}, OBS, 3, "cpu")
    with pytest.raises(ValueError, match="discount"):
        make_agent({"name": "sac", "discont": 0.9}, {"preset": "fast"}, OBS, 3, "cpu")
    with pytest.raises(ValueError, match="84"):
        make_agent({"name": "sac"}, {"preset": "paper"}, OBS, 3, "cpu")


@pytest.mark.parametrize(
    "key,value,says",
    [
        ("mask_quantile", 1.0, "in (0, 1)"),
        ("discount", 1.5, "in [0, 1]"),
        ("encoder_tau", 0.0, "in (0, 1]"),
        ("aux_update_freq", 0, "an integer >= 1"),
        ("hidden_dim", 64.0, "an integer >= 1"),
        ("actor_lr", -1e-3, "a number > 0"),
        ("alpha_beta", 1.0, "in [0, 1)"),
        ("consistency_weight", -1.0, "a number >= 0"),
        ("shift_pad", True, "an integer >= 0"),
        ("target_entropy", "auto", "a number or null"),
        ("log_std_min", 2.0, "must be below agent.log_std_max=2.0"),
    ],
)
def test_make_agent_refuses_out_of_range_settings_naming_the_key(
    key: str, value: object, says: str
) -> None:
    with pytest.raises(
        ValueError, match=re.escape(f"agent.{key}={value!r}") + ".*" + re.escape(says)
    ):
        make_agent({"name": "sgqn", key: value}, {"preset": "fast"}, OBS, 3, "cpu")


def test_encoder_decoder_channels_set_sgqn_decoder_widths() -> None:
    torch.manual_seed(0)
    enc = {"preset": "fast", "decoder_channels": [16, 8]}
    agent = make_agent({"name": "sgqn", **SMALL}, enc, OBS, 3, "cpu")
    assert (agent.predictor.conv1.out_channels, agent.predictor.conv2.out_channels) == (16, 8)
    metrics = agent.update(_batch(0), step=2)
    assert np.isfinite(metrics["aux_loss"])
    assert _agent("sgqn").predictor.conv1.out_channels == 32  # null/absent: the preset's
    with pytest.raises(ValueError, match="two positive integers"):
        make_agent({"name": "sgqn"}, {"preset": "fast", "decoder_channels": [16]}, OBS, 3, "cpu")


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="'gpu' is not a torch device: use auto, cpu, cuda"):
        resolve_device("gpu")
    if not torch.cuda.is_available():  # a CPU machine refuses cuda with the fix, not an assert
        with pytest.raises(ValueError, match="device=cuda but .*: use device=cpu"):
            resolve_device("cuda")
    else:
        with pytest.raises(ValueError, match="GPU\\(s\\) are visible"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_update_metric_keys_act_and_saliency(name: str) -> None:
    agent = _agent(name)
    every, periodic = EXTRA_KEYS[name]
    odd = agent.update(_batch(0), step=1)
    even = agent.update(_batch(1), step=2)
    assert set(odd) == BASE_KEYS | every
    assert set(even) == BASE_KEYS | every | ACTOR_KEYS | periodic
    assert all(np.isfinite(v) for v in even.values())
    obs = _batch(2).obs
    for eval_mode in (True, False):
        action = agent.act(obs[0], eval_mode)
        assert action.shape == (3,) and action.dtype == np.float32
        assert np.all(np.abs(action) <= 1)
    sal = agent.saliency(obs[:2])
    assert sal["attribution"].shape == obs[:2].shape and sal["mask"].dtype == bool
    assert ("predicted" in sal) == (name == "sgqn")
    if name == "sgqn":
        assert 0 < even["mask_fraction"] < 0.2
        assert sal["predicted"].shape == obs[:2].shape
        assert sal["predicted"].min() >= 0 and sal["predicted"].max() <= 1


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_update_copies_its_metrics_to_the_host_once(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On a GPU every float(tensor)/item()/tolist() is a device sync; an update should pay one.
    copies = []
    for method in ("__float__", "item", "tolist"):
        original = getattr(torch.Tensor, method)

        def counted(self, *args, _original=original, _method=method):
            copies.append(_method)
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, method, counted)
    agent = _agent(name)
    for step in (1, 2):
        copies.clear()
        metrics = agent.update(_batch(step), step)
        assert copies == ["tolist"], copies
        assert all(type(v) is float for v in metrics.values())


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_which_parameters_each_step_moves(name: str) -> None:
    agent = _agent(name)
    critic, actor = _params(agent.critic), _params(agent.actor)
    agent.update(_batch(0), step=1)  # critic step only
    assert _changed(critic, agent.critic) and not _changed(actor, agent.actor)
    # Step 2 through update(), with and without its actor step (SGQN's attribution step, which
    # trains the encoder, off in both): the actor step moves the actor, never the critic.
    with_actor = copy.deepcopy(agent)
    with_actor.cfg = dataclasses.replace(agent.cfg, aux_update_freq=10**9)
    without = copy.deepcopy(with_actor)
    without.cfg = dataclasses.replace(with_actor.cfg, actor_update_freq=10**9)
    for a in (with_actor, without):
        torch.manual_seed(1)
        a.update(_batch(1), step=2)
    assert _changed(_params(without.actor), with_actor.actor)
    assert not _changed(_params(without.critic), with_actor.critic)  # trunk, projection, heads


def test_sgqn_attribution_loss_trains_predictor_and_critic_encoder_only() -> None:
    agent = _agent("sgqn")
    agent.update(_batch(0), step=1)
    encoder, heads = _params(agent.critic.trunk), _params(agent.critic.q1)
    proj, predictor = _params(agent.critic.proj), _params(agent.predictor)
    obs = agent.augment(torch.as_tensor(_batch(1).obs))
    metrics = agent._aux_update(obs, torch.as_tensor(_batch(1).action), step=2)
    assert set(metrics) == {"aux_loss", "aux_accuracy"}
    assert _changed(encoder, agent.critic.trunk) and _changed(proj, agent.critic.proj)
    assert _changed(predictor, agent.predictor)
    assert not _changed(heads, agent.critic.q1)
    assert agent._aux_update(obs, torch.as_tensor(_batch(1).action), step=3) == {}


def test_sgqn_shared_pass_critic_loss_equals_the_literal_spec() -> None:
    """One forward serving both the guided attribution and the loss gives the spec's loss and
    gradients: mask from a separate attribution pass, fresh forwards of s and s~."""
    agent = _agent("sgqn")
    agent.update(_batch(0), step=1)  # leave the delta-orthogonal init (sparse attributions)
    obs = agent.augment(torch.as_tensor(_batch(1).obs))
    action = torch.as_tensor(_batch(1).action)
    target = torch.randn(obs.shape[0])
    params = list(agent.critic.parameters())

    torch.manual_seed(5)
    loss, _, metrics = agent.critic_loss(obs, action, target)
    grads = torch.autograd.grad(loss, params)

    mask = attribution_mask(attribution(agent.critic, obs, action), 0.95)
    x = obs.float()
    torch.manual_seed(5)
    fill = x.min() + (x.max() - x.min()) * torch.rand(())
    q1, q2 = agent.critic(x, action)
    mq1, mq2 = agent.critic(torch.where(mask, x, fill), action)
    mse = torch.nn.functional.mse_loss
    spec = mse(q1, target) + mse(q2, target) + mse(q1, mq1) + mse(q2, mq2)
    torch.testing.assert_close(loss, spec)
    for g, ref in zip(grads, torch.autograd.grad(spec, params), strict=True):
        torch.testing.assert_close(g, ref, rtol=1e-4, atol=1e-6)
    assert metrics["mask_fraction"] == mask.float().mean()
    assert 0.04 < float(metrics["mask_fraction"]) < 0.1


def test_soft_target_update_uses_encoder_and_head_taus() -> None:
    agent = _agent("sac", critic_tau=0.25, encoder_tau=0.5)
    with torch.no_grad():
        for p in agent.critic.parameters():
            p.add_(1.0)
    before = _params(agent.critic_target)
    agent._soft_update_target()
    names = [n for n, _ in agent.critic_target.named_parameters()]
    for n, b, p in zip(names, before, agent.critic_target.parameters(), strict=True):
        tau = 0.25 if n.startswith(("q1.", "q2.")) else 0.5
        torch.testing.assert_close(p - b, torch.full_like(p, tau))


@pytest.mark.parametrize("name", ["drq", "sgqn"])
def test_state_dict_round_trip_with_weights_only_load(name: str) -> None:
    agent = _agent(name)
    for step in (1, 2):
        agent.update(_batch(step), step)
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    buf.seek(0)
    clone = _agent(name, seed=123)
    clone.load_state_dict(torch.load(buf, weights_only=True))
    obs = _batch(5).obs
    for o in obs[:3]:
        np.testing.assert_array_equal(agent.act(o, True), clone.act(o, True))
    torch.manual_seed(7)
    a = agent.update(_batch(6), step=4)
    torch.manual_seed(7)
    b = clone.update(_batch(6), step=4)
    assert a == b


def test_seeded_runs_are_reproducible() -> None:
    def run() -> list[torch.Tensor]:
        agent = _agent("sgqn", seed=3)
        for step in range(1, 4):
            agent.update(_batch(step), step)
        return _params(agent.critic) + _params(agent.actor) + _params(agent.predictor)

    assert all(torch.equal(a, b) for a, b in zip(run(), run(), strict=True))


def test_q_regresses_to_constant_reward() -> None:
    # discount 0: the TD target is the reward itself, so both Q heads must learn 1.0.
    agent = _agent("drq", discount=0.0)
    for step in range(1, 61):
        metrics = agent.update(_batch(step % 4, reward=1.0), step)
    assert abs(metrics["q1"] - 1.0) < 0.1 and abs(metrics["q2"] - 1.0) < 0.1
    assert metrics["critic_loss"] < 0.02


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_sgqn_runs_on_cuda() -> None:
    torch.manual_seed(0)
    agent = make_agent({"name": "sgqn", **SMALL}, {"preset": "fast"}, OBS, 3, "cuda")
    for step in (1, 2):
        metrics = agent.update(_batch(step), step)
    assert all(np.isfinite(v) for v in metrics.values())
    assert agent.act(_batch(0).obs[0], False).shape == (3,)
