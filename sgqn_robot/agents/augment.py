"""Image augmentations, vectorised over the batch (no per-sample Python loops).

- `random_shift`: DrQ's shift (replicate-pad `pad` px, random crop back to size), done as one
  gather with clamped indices, which *is* replicate padding; works on uint8 and returns a
  channels_last tensor, the layout the trunk wants anyway.
- `random_conv`: SVEA/SGQN's strong augmentation: a random 3x3 conv (3 -> 3 channels, N(0, 1)
  weights, replicate padding, sigmoid) per sample, the same kernel for all stacked frames of a
  sample, as one grouped convolution.

Both take an optional `torch.Generator` so tests can pin the draw; agents use the global RNG.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(
    obs: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shift every image of [B, C, H, W] by its own integer offset in [-pad, pad]^2 (edge
    pixels repeated); same dtype, channels_last memory."""
    b, _, h, w = obs.shape
    shifts = torch.randint(0, 2 * pad + 1, (2, b, 1), device=obs.device, generator=generator) - pad
    rows = (torch.arange(h, device=obs.device) + shifts[0]).clamp(0, h - 1)  # [B, H]
    cols = (torch.arange(w, device=obs.device) + shifts[1]).clamp(0, w - 1)  # [B, W]
    batch = torch.arange(b, device=obs.device)[:, None, None]
    # Advanced indices around a slice put the indexed dims first: result is [B, H, W, C].
    return obs[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def random_conv(
    obs: torch.Tensor, frame_channels: int = 3, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random-convolution augmentation of uint8-scale images [B, C, H, W] -> float32 in
    (0, 255), same shape."""
    b, c, h, w = obs.shape
    frames = c // frame_channels
    weight = torch.randn(
        b, 1, frame_channels, frame_channels, 3, 3, device=obs.device, generator=generator
    )
    weight = weight.expand(b, frames, frame_channels, frame_channels, 3, 3)
    x = obs.to(torch.float32).reshape(1, b * c, h, w) / 255.0
    x = F.pad(x, (1, 1, 1, 1), mode="replicate")
    out = F.conv2d(x, weight.reshape(b * c, frame_channels, 3, 3), groups=b * frames)
    return torch.sigmoid(out).reshape(b, c, h, w) * 255.0
