"""SGQN (spec §3): DrQ's SAC plus the saliency consistency loss and attribution prediction.

Cost savings, same math:
- the clean critic forward that enters the TD loss also gives the mask: its graph is
  backpropagated once with guided ReLUs (input gradient only, `autograd.grad`) and then once with
  ordinary ReLUs for the loss (see `saliency.GuidedReLU`);
- step 2 (the mask under the updated critic) is only computed on steps that run step 5, the one
  place it is used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sgqn_robot.agents.augment import random_conv
from sgqn_robot.agents.networks import AttributionPredictor, PredictorModule, orthogonal_init
from sgqn_robot.agents.sac import Metrics, adam
from sgqn_robot.agents.saliency import GuidedReLU, attribution, attribution_mask
from sgqn_robot.agents.variants import DrQAgent


class SGQNAgent(DrQAgent):
    """`sgqn`: Saliency-Guided Q-Networks on the DrQ core."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.predictor = AttributionPredictor(
            self.critic.trunk.preset, self.obs_shape[0], self.cfg.projection_dim + self.action_dim
        )
        self.predictor.apply(orthogonal_init)
        self.predictor.to(self.device)
        # The only path by which strongly augmented images reach the trunk: predictor + encoder.
        self.aux_params = [*self.predictor.parameters(), *self.critic.encoder_parameters()]
        self.aux_opt = adam(self.aux_params, self.cfg.aux_lr, self.cfg.aux_beta)

    def critic_loss(
        self, obs: torch.Tensor, action: torch.Tensor, target_q: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, Metrics]:
        """TD loss + lambda_C * consistency between Q(s, a) and Q(s~, a), where s~ keeps s on the
        mask of the pre-update critic and is one uniform scalar u ~ U(min s, max s) elsewhere."""
        x = obs.detach().to(torch.float32).requires_grad_()
        relu = GuidedReLU(guided=True)
        feat = self.critic.trunk(x, relu)
        q1, q2 = self.critic.heads(feat, action, relu)
        (attr,) = torch.autograd.grad(q1.sum(), x, retain_graph=True)
        relu.guided = False  # the same graph now carries the loss gradient, ordinary ReLUs
        mask = attribution_mask(attr, self.cfg.mask_quantile)
        lo, hi = x.detach().min(), x.detach().max()
        fill = lo + (hi - lo) * torch.rand((), device=x.device)
        mq1, mq2 = self.critic(torch.where(mask, x.detach(), fill), action)
        td = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
        consistency = F.mse_loss(q1, mq1) + F.mse_loss(q2, mq2)
        loss = td + self.cfg.consistency_weight * consistency
        metrics = {
            "q1": q1.mean(),
            "q2": q2.mean(),
            "consistency_loss": consistency,
            "mask_fraction": mask.float().mean(),
        }
        return loss, feat, metrics

    def _aux_update(self, obs: torch.Tensor, action: torch.Tensor, step: int) -> Metrics:
        """Steps 2 and 5: BCE(predictor(encoder(random_conv(s)), a), mask of the updated critic),
        through the predictor and the critic encoder."""
        if step % self.cfg.aux_update_freq != 0:
            return {}
        mask = attribution_mask(attribution(self.critic, obs, action), self.cfg.mask_quantile)
        z = self.critic.proj(self.critic.trunk(random_conv(obs)))
        logits = self.predictor(z, action)
        loss = F.binary_cross_entropy_with_logits(logits, mask.to(logits.dtype))
        self.aux_opt.zero_grad(set_to_none=True)
        loss.backward(inputs=self.aux_params)
        self.aux_opt.step()
        return {"aux_loss": loss, "aux_accuracy": ((logits > 0) == mask).float().mean()}

    def predictor_module(self) -> nn.Module:
        return PredictorModule(self.critic, self.predictor)

    def _checkpointed(self) -> dict[str, nn.Module | torch.optim.Optimizer]:
        return super()._checkpointed() | {"predictor": self.predictor, "aux_opt": self.aux_opt}
