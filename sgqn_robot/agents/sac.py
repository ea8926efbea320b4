"""The image-SAC core all four agents share (spec §1, §3 minus the SGQN terms).

One update: augment -> critic step -> every `actor_update_freq` steps actor + temperature step ->
every `target_update_freq` steps soft target update -> `_aux_update` (SGQN's extra loss).
Variants override only `augment` and `critic_loss` (and `_aux_update`).

The actor step reuses the trunk features the critic step computed (detached), as DrQ-v2 does,
instead of a second trunk forward on the same images with the just-updated trunk: the actor loss
never trains the trunk, and this saves one trunk pass per actor step for every agent alike.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sgqn_robot.agents.networks import (
    Actor,
    Critic,
    EncoderPreset,
    PolicyModule,
    Trunk,
    orthogonal_init,
)
from sgqn_robot.agents.saliency import attribution, attribution_mask

if TYPE_CHECKING:  # the replay module pulls in zarr; agents only need the field order
    from sgqn_robot.replay import Batch

Metrics = dict[str, torch.Tensor]


@dataclass(frozen=True)
class AgentConfig:
    """Hyper-parameters (defaults = the spec's manipulation settings); see `make_agent`."""

    discount: float = 0.99
    hidden_dim: int = 1024
    projection_dim: int = 100
    critic_lr: float = 1e-3
    critic_beta: float = 0.9
    actor_lr: float = 1e-3
    actor_beta: float = 0.9
    alpha_lr: float = 1e-4
    alpha_beta: float = 0.5
    init_temperature: float = 0.1
    target_entropy: float | None = None  # None: -action_dim
    log_std_min: float = -10.0
    log_std_max: float = 2.0
    critic_tau: float = 0.01
    encoder_tau: float = 0.05
    actor_update_freq: int = 2
    target_update_freq: int = 2
    shift_pad: int = 4
    mask_quantile: float = 0.95
    svea_alpha: float = 0.5
    svea_beta: float = 0.5
    consistency_weight: float = 1.0
    aux_lr: float = 3e-4
    aux_beta: float = 0.9
    aux_update_freq: int = 2

    def __post_init__(self) -> None:
        """Refuse values that would crash or silently mislearn (rho 1.5 fails at the first
        update after warm-up, tau 2 or discount 1.5 diverge) before any work starts."""
        for names, ok, need in _RULES:
            for name in names.split():
                value = getattr(self, name)
                if not (_is_number(value) and ok(value)):
                    raise ValueError(f"agent.{name}={value!r}: must be {need}")
        if not (self.target_entropy is None or _is_number(self.target_entropy)):
            raise ValueError(
                f"agent.target_entropy={self.target_entropy!r}: must be a number or null"
            )
        if self.log_std_min >= self.log_std_max:
            raise ValueError(
                f"agent.log_std_min={self.log_std_min} must be below "
                f"agent.log_std_max={self.log_std_max}"
            )


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: float, low: int) -> bool:
    return isinstance(v, int) and v >= low


# (fields, test, what the value must be): checked by AgentConfig.__post_init__
_RULES: list[tuple[str, Callable[[float], bool], str]] = [
    (
        "hidden_dim projection_dim actor_update_freq target_update_freq aux_update_freq",
        lambda v: _is_int(v, 1),
        "an integer >= 1",
    ),
    ("shift_pad", lambda v: _is_int(v, 0), "an integer >= 0"),
    ("critic_lr actor_lr alpha_lr aux_lr init_temperature", lambda v: v > 0, "a number > 0"),
    ("critic_beta actor_beta alpha_beta aux_beta", lambda v: 0 <= v < 1, "in [0, 1) (Adam beta1)"),
    ("discount", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("critic_tau encoder_tau", lambda v: 0 < v <= 1, "in (0, 1] (soft target update rate)"),
    (
        "mask_quantile",
        lambda v: 0 < v < 1,
        "in (0, 1): the mask keeps the top 1 - rho of each frame (the spec uses 0.95)",
    ),
    ("svea_alpha svea_beta consistency_weight", lambda v: v >= 0, "a number >= 0 (a loss weight)"),
    ("log_std_min log_std_max", lambda v: math.isfinite(v), "a finite number"),
]


def adam(params: list[nn.Parameter], lr: float, beta1: float) -> torch.optim.Adam:
    """Adam (beta2 0.999) with the fused kernel: one pass over all tensors, same update."""
    return torch.optim.Adam(params, lr=lr, betas=(beta1, 0.999), fused=True)


class SACAgent:
    """SAC from pixels without augmentation (`sac`); the base of `drq`, `svea` and `sgqn`."""

    def __init__(
        self,
        cfg: AgentConfig,
        preset: EncoderPreset,
        obs_shape: tuple[int, int, int],
        action_dim: int,
        device: torch.device,
        channels_last: bool = True,
    ):
        self.cfg = cfg
        self.obs_shape = obs_shape
        self.action_dim = action_dim
        self.device = device
        trunk = Trunk(obs_shape[0], preset, channels_last)
        self.critic = Critic(trunk, action_dim, cfg.projection_dim, cfg.hidden_dim)
        self.actor = Actor(
            trunk.out_dim,
            action_dim,
            cfg.projection_dim,
            cfg.hidden_dim,
            cfg.log_std_min,
            cfg.log_std_max,
        )
        for net in (self.critic, self.actor):
            net.apply(orthogonal_init)
            net.to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(
            math.log(cfg.init_temperature), device=device, requires_grad=True
        )
        self.target_entropy = (
            -float(action_dim) if cfg.target_entropy is None else cfg.target_entropy
        )
        self.critic_params = list(self.critic.parameters())
        self.actor_params = list(self.actor.parameters())
        self.critic_opt = adam(self.critic_params, cfg.critic_lr, cfg.critic_beta)
        self.actor_opt = adam(self.actor_params, cfg.actor_lr, cfg.actor_beta)
        self.alpha_opt = adam([self.log_alpha], cfg.alpha_lr, cfg.alpha_beta)

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    # ---- hooks the variants override -------------------------------------------------------
    def augment(self, obs: torch.Tensor) -> torch.Tensor:
        """Augmentation applied to obs and next_obs of every batch (none for plain SAC)."""
        return obs

    def critic_loss(
        self, obs: torch.Tensor, action: torch.Tensor, target_q: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, Metrics]:
        """(loss, trunk features of `obs` for the actor step, metrics)."""
        feat = self.critic.trunk(obs)
        q1, q2 = self.critic.heads(feat, action)
        loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
        return loss, feat, {"q1": q1.mean(), "q2": q2.mean()}

    def _aux_update(self, obs: torch.Tensor, action: torch.Tensor, step: int) -> Metrics:
        """Extra per-step losses after the SAC steps (SGQN's attribution prediction)."""
        return {}

    # ---- the update ------------------------------------------------------------------------
    def update(self, batch: Batch, step: int) -> dict[str, float]:
        """One gradient update. Always returns `critic_loss, q1, q2, target_q, feature_std`; on
        actor steps (`step % actor_update_freq == 0`) also `actor_loss, alpha_loss, alpha,
        entropy`; variants add their own keys (see `make_agent`)."""
        obs, action, reward, next_obs, not_done = (
            torch.as_tensor(x, device=self.device) for x in batch
        )
        obs, next_obs = self.augment(obs), self.augment(next_obs)
        target_q = self._target_q(next_obs, reward, not_done)
        loss, feat, metrics = self.critic_loss(obs, action, target_q)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward(inputs=self.critic_params)
        self.critic_opt.step()
        metrics |= {
            "critic_loss": loss,
            "target_q": target_q.mean(),
            # 0 exactly when the trunk's output no longer depends on the image (a whole layer of
            # its ReLUs dead); sgqn-train then warns (train.DEAD_TRUNK).
            "feature_std": feat.detach().std(0).mean(),
        }
        if step % self.cfg.actor_update_freq == 0:
            metrics |= self._update_actor_and_alpha(feat.detach())
        if step % self.cfg.target_update_freq == 0:
            self._soft_update_target()
        metrics |= self._aux_update(obs, action, step)
        # One stacked copy to the host: a float() per metric would be one device sync each.
        values = torch.stack([v.detach() for v in metrics.values()]).tolist()
        return dict(zip(metrics, values, strict=True))

    @torch.no_grad()
    def _target_q(
        self, next_obs: torch.Tensor, reward: torch.Tensor, not_done: torch.Tensor
    ) -> torch.Tensor:
        next_action, log_prob = self.actor.sample(self.critic.trunk(next_obs))
        tq1, tq2 = self.critic_target(next_obs, next_action)
        soft_value = torch.min(tq1, tq2) - self.alpha * log_prob
        return reward + not_done * self.cfg.discount * soft_value

    def _update_actor_and_alpha(self, feat: torch.Tensor) -> Metrics:
        action, log_prob = self.actor.sample(feat)
        q1, q2 = self.critic.heads(feat, action)
        actor_loss = (self.alpha.detach() * log_prob - torch.min(q1, q2)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward(inputs=self.actor_params)
        self.actor_opt.step()

        alpha_loss = (self.alpha * (-log_prob - self.target_entropy).detach()).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        return {
            "actor_loss": actor_loss,
            "alpha_loss": alpha_loss,
            "alpha": self.alpha,
            "entropy": -log_prob.mean(),
        }

    @torch.no_grad()
    def _soft_update_target(self) -> None:
        """Polyak averaging: Q heads with `critic_tau`, trunk + projection with `encoder_tau`."""
        pairs = (
            (
                self.critic.head_parameters(),
                self.critic_target.head_parameters(),
                self.cfg.critic_tau,
            ),
            (
                self.critic.encoder_parameters(),
                self.critic_target.encoder_parameters(),
                self.cfg.encoder_tau,
            ),
        )
        for online, target, tau in pairs:
            for o, t in zip(online, target, strict=True):
                t.lerp_(o, tau)

    # ---- acting, inspection, export, checkpoints -------------------------------------------
    def _obs_tensor(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(obs, device=self.device)

    @torch.no_grad()
    def act(self, obs: np.ndarray, eval_mode: bool) -> np.ndarray:
        """Action in [-1, 1] for one uint8 observation [C, H, W]: tanh(mean) if `eval_mode`,
        else a sample from the policy."""
        feat = self.critic.trunk(self._obs_tensor(obs)[None])
        if eval_mode:
            action = torch.tanh(self.actor(feat)[0])
        else:
            action, _ = self.actor.sample(feat)
        return action[0].cpu().numpy().astype(np.float32)

    def actor_module(self) -> nn.Module:
        """uint8 obs [B, C, H, W] -> deterministic action [B, A]; shares the agent's weights."""
        return PolicyModule(self.critic.trunk, self.actor)

    def predictor_module(self) -> nn.Module | None:
        """(uint8 obs, action) -> attribution-mask logits; only SGQN has one."""
        return None

    def saliency(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """Guided-backprop attribution of Q1 (uint8-scale input), its quantile mask and, for
        SGQN, the predicted mask probability, at the deterministic policy's actions."""
        x = self._obs_tensor(obs)
        with torch.no_grad():
            action = self.actor_module()(x)
        attr = attribution(self.critic, x, action)
        out = {
            "attribution": attr.cpu().numpy(),
            "mask": attribution_mask(attr, self.cfg.mask_quantile).cpu().numpy(),
        }
        predictor = self.predictor_module()
        if predictor is not None:
            with torch.no_grad():
                out["predicted"] = torch.sigmoid(predictor(x, action)).cpu().numpy()
        return out

    def _checkpointed(self) -> dict[str, nn.Module | torch.optim.Optimizer]:
        return {
            "critic": self.critic,
            "critic_target": self.critic_target,
            "actor": self.actor,
            "critic_opt": self.critic_opt,
            "actor_opt": self.actor_opt,
            "alpha_opt": self.alpha_opt,
        }

    def state_dict(self) -> dict:
        """Networks, target, optimizers, log_alpha and the config: tensors and plain containers
        only, so `torch.load(weights_only=True)` reads it."""
        state = {name: m.state_dict() for name, m in self._checkpointed().items()}
        return state | {"log_alpha": self.log_alpha.detach().clone(), "config": asdict(self.cfg)}

    def load_state_dict(self, state: dict) -> None:
        for name, m in self._checkpointed().items():
            m.load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
