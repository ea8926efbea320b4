"""DrQ and SVEA: the SAC core plus augmentation, overriding only what differs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sgqn_robot.agents.augment import random_conv, random_shift
from sgqn_robot.agents.sac import Metrics, SACAgent


class DrQAgent(SACAgent):
    """`drq`: random shift (replicate pad + crop) of obs and next_obs."""

    def augment(self, obs: torch.Tensor) -> torch.Tensor:
        return random_shift(obs, self.cfg.shift_pad)


class SVEAAgent(DrQAgent):
    """`svea`: critic loss on the shifted view (weight `svea_alpha`) and on its random-conv view
    (weight `svea_beta`), both against the same target; one trunk pass over the 2B batch."""

    def critic_loss(
        self, obs: torch.Tensor, action: torch.Tensor, target_q: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, Metrics]:
        n = obs.shape[0]
        feat = self.critic.trunk(torch.cat([obs.to(torch.float32), random_conv(obs)]))
        q1, q2 = self.critic.heads(feat, action.repeat(2, 1))
        clean = F.mse_loss(q1[:n], target_q) + F.mse_loss(q2[:n], target_q)
        strong = F.mse_loss(q1[n:], target_q) + F.mse_loss(q2[n:], target_q)
        loss = self.cfg.svea_alpha * clean + self.cfg.svea_beta * strong
        metrics = {"q1": q1[:n].mean(), "q2": q2[:n].mean(), "critic_loss_aug": strong}
        return loss, feat[:n], metrics
