"""Networks of the image SAC family (SGQN spec §1): shared conv trunk, projections, actor, critic,
attribution predictor.

Every module whose path from pixels to Q1 contains ReLUs takes a `relu` callable, so guided
backpropagation (`saliency.py`) runs through the ordinary forward code instead of hooks.
Pixels enter as uint8 (or float on the uint8 scale, for attributions) and are divided by 255 here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ReLU = Callable[[torch.Tensor], torch.Tensor]


def relu_(x: torch.Tensor) -> torch.Tensor:
    """In-place ReLU, the default here: each ReLU follows a conv or linear layer whose backward
    does not need its output, so this saves one activation-sized allocation per layer."""
    return torch.relu_(x)


@dataclass(frozen=True)
class EncoderPreset:
    """Conv trunk shape (3x3 convs, `num_filters` each, no padding, one stride per layer) and
    the widths of SGQN's attribution decoder for that image size."""

    image_size: int
    strides: tuple[int, ...]
    num_filters: int = 32
    decoder_channels: tuple[int, int] = (128, 64)  # SGQN attribution predictor's conv widths


PRESETS: dict[str, EncoderPreset] = {
    # The paper's trunk: 11 convs at 84 px -> 32x21x21 (~180 MFLOP per 84x84x3 image).
    "paper": EncoderPreset(image_size=84, strides=(2,) + (1,) * 10),
    # CPU preset (chosen by bench/update_throughput.py, see docs/RESULTS.md): 64 px, two strided
    # convs then two plain ones -> 32x11x11, ~16x fewer conv FLOPs than `paper`.
    # Its attribution decoder is narrowed too: the spec's widths at 64 px would cost ~8x the
    # fast trunk's forward pass.
    "fast": EncoderPreset(image_size=64, strides=(2, 2, 1, 1), decoder_channels=(32, 32)),
}


def orthogonal_init(module: nn.Module) -> None:
    """The reference image-SAC init: orthogonal Linear weights, delta-orthogonal convs (only the
    kernel centre is non-zero, ReLU gain), zero biases. Use with `Module.apply`."""
    if isinstance(module, nn.Linear):
        nn.init.orthogonal_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        centre = module.weight.shape[-1] // 2
        centre_weight = nn.init.orthogonal_(
            torch.empty(module.weight.shape[:2]), gain=nn.init.calculate_gain("relu")
        )
        with torch.no_grad():
            module.weight.zero_()
            module.weight[:, :, centre, centre] = centre_weight
        nn.init.zeros_(module.bias)


def _conv_out(size: int, stride: int) -> int:
    return (size - 3) // stride + 1


class Trunk(nn.Module):
    """Shared conv trunk: uint8-scale pixels -> /255 -> convs with ReLU between -> flat features.

    `channels_last` keeps activations NHWC (oneDNN's native layout); same math, a few percent
    faster on our CPU (docs/RESULTS.md).
    """

    def __init__(self, in_channels: int, preset: EncoderPreset, channels_last: bool = True):
        super().__init__()
        self.preset = preset
        self.channels_last = channels_last
        chans = [in_channels] + [preset.num_filters] * len(preset.strides)
        self.convs = nn.ModuleList(
            nn.Conv2d(cin, cout, 3, stride=s)
            for cin, cout, s in zip(chans[:-1], chans[1:], preset.strides, strict=True)
        )
        size = preset.image_size
        for s in preset.strides:
            size = _conv_out(size, s)
        self.out_shape = (preset.num_filters, size, size)
        self.out_dim = math.prod(self.out_shape)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, obs: torch.Tensor, relu: ReLU = relu_) -> torch.Tensor:
        """Flat features of the last conv (no ReLU after it, as in the reference), in
        (h, w, channel) order: a free view of channels_last memory."""
        x = obs.to(torch.float32) / 255.0
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.convs[0](x)
        for conv in self.convs[1:]:
            x = conv(relu(x))
        return x.permute(0, 2, 3, 1).flatten(1)


class Projection(nn.Sequential):
    """Linear -> LayerNorm -> Tanh; the actor and the critic each own one on the shared trunk."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__(nn.Linear(in_dim, out_dim), nn.LayerNorm(out_dim), nn.Tanh())


class MLP(nn.Module):
    """in -> hidden -> hidden -> out with ReLUs (which guided backprop must be able to swap)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.l1 = nn.Linear(in_dim, hidden_dim)
        self.l2 = nn.Linear(hidden_dim, hidden_dim)
        self.l3 = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: torch.Tensor, relu: ReLU = relu_) -> torch.Tensor:
        return self.l3(relu(self.l2(relu(self.l1(x)))))


class Critic(nn.Module):
    """Owns the shared trunk, its projection and two Q heads MLP([z, a]) -> 1."""

    def __init__(self, trunk: Trunk, action_dim: int, projection_dim: int, hidden_dim: int):
        super().__init__()
        self.trunk = trunk
        self.proj = Projection(trunk.out_dim, projection_dim)
        self.q1 = MLP(projection_dim + action_dim, hidden_dim, 1)
        self.q2 = MLP(projection_dim + action_dim, hidden_dim, 1)

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Trunk + projection: what the encoder tau and the SGQN auxiliary loss act on."""
        return [*self.trunk.parameters(), *self.proj.parameters()]

    def head_parameters(self) -> list[nn.Parameter]:
        return [*self.q1.parameters(), *self.q2.parameters()]

    def heads(
        self, feat: torch.Tensor, action: torch.Tensor, relu: ReLU = relu_
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Q1, Q2 [B] from trunk features; `relu` applies to Q1's head only (Q2 is never
        attributed)."""
        za = torch.cat([self.proj(feat), action], dim=1)
        return self.q1(za, relu).squeeze(1), self.q2(za).squeeze(1)

    def forward(
        self, obs: torch.Tensor, action: torch.Tensor, relu: ReLU = relu_
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(self.trunk(obs, relu), action, relu)


class Actor(nn.Module):
    """Tanh-squashed Gaussian policy on (detached) trunk features."""

    def __init__(
        self,
        feat_dim: int,
        action_dim: int,
        projection_dim: int,
        hidden_dim: int,
        log_std_min: float,
        log_std_max: float,
    ):
        super().__init__()
        self.proj = Projection(feat_dim, projection_dim)
        self.mlp = MLP(projection_dim, hidden_dim, 2 * action_dim)
        self.log_std_min = log_std_min
        self.log_std_max = log_std_max

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-tanh mean and log_std, the latter softly bounded to [log_std_min, log_std_max]."""
        mu, log_std = self.mlp(self.proj(feat)).chunk(2, dim=-1)
        log_std = torch.tanh(log_std)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (log_std + 1)
        return mu, log_std

    def sample(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised action in [-1, 1] and its log-probability (tanh-corrected), [B]."""
        mu, log_std = self(feat)
        noise = torch.randn_like(mu)
        pre_tanh = mu + noise * log_std.exp()
        action = torch.tanh(pre_tanh)
        gaussian = -0.5 * (noise.pow(2) + math.log(2 * math.pi)) - log_std
        squash = torch.log(F.relu(1 - action.pow(2)) + 1e-6)
        return action, (gaussian - squash).sum(-1)


def _upsampled_taps(weight: torch.Tensor, dim: int) -> torch.Tensor:
    w0, w1, w2 = weight.unbind(dim)
    return torch.stack([w2, w1 + w2, w0 + w1, w0], dim)


def upsample_conv3x3(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """`conv(nearest_upsample_x2(x))` for a 3x3, padding-1 conv, without the upsampled map.

    Output pixel 2p + d sees input rows {p - 1, p} (d = 0) or {p, p + 1} (d = 1) with summed
    kernel taps, which is a stride-2 transposed conv with a 4x4 kernel (rows, then columns:
    w2, w1 + w2, w0 + w1, w0): 16 instead of 36 multiply-adds per channel pair and input pixel,
    same function.
    """
    kernel = _upsampled_taps(_upsampled_taps(conv.weight, 2), 3).transpose(0, 1)
    return F.conv_transpose2d(x, kernel, conv.bias, stride=2, padding=1)


class AttributionPredictor(nn.Module):
    """Decoder [z, a] -> one mask logit per input pixel channel (SGQN's self-supervised head):
    Linear -> F x S/4 x S/4 -> conv3x3 (c1) -> up x2 -> ReLU -> conv3x3 (c2) -> up x2 -> ReLU
    -> conv3x3 -> C x S x S.

    At 84 px that is the spec's decoder (Linear -> 32x21x21 -> 128 -> 64 -> C); any input size
    divisible by 4 works. Computed as ReLU before the upsampling (they commute) and
    `upsample_conv3x3` after it, channels_last: the same function, ~3x faster on CPU.
    """

    def __init__(self, preset: EncoderPreset, out_channels: int, in_dim: int):
        super().__init__()
        if preset.image_size % 4:
            raise ValueError(f"image size {preset.image_size} is not divisible by 4")
        side = preset.image_size // 4
        c1, c2 = preset.decoder_channels
        self.map_shape = (preset.num_filters, side, side)
        self.fc = nn.Linear(in_dim, math.prod(self.map_shape))
        self.conv1 = nn.Conv2d(preset.num_filters, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.conv3 = nn.Conv2d(c2, out_channels, 3, padding=1)
        self.to(memory_format=torch.channels_last)

    def forward(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = self.fc(torch.cat([z, action], dim=1)).view(-1, *self.map_shape)
        x = relu_(self.conv1(x.contiguous(memory_format=torch.channels_last)))
        x = relu_(upsample_conv3x3(x, self.conv2))
        return upsample_conv3x3(x, self.conv3)


class PolicyModule(nn.Module):
    """Deployable actor: uint8 obs -> /255 -> trunk -> actor -> tanh(mean). Traceable for ONNX."""

    def __init__(self, trunk: Trunk, actor: Actor):
        super().__init__()
        self.trunk = trunk
        self.actor = actor

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        mu, _ = self.actor(self.trunk(obs))
        return torch.tanh(mu)


class PredictorModule(nn.Module):
    """Deployable attribution predictor: (uint8 obs, action) -> mask logits [B, C, H, W]."""

    def __init__(self, critic: Critic, predictor: AttributionPredictor):
        super().__init__()
        self.critic = critic
        self.predictor = predictor

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.critic.proj(self.critic.trunk(obs)), action)
