"""Augmentations: shapes, dtypes, seeded determinism, and equality with naive references."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sgqn_robot.agents.augment import random_conv, random_shift


def _obs(b: int = 5, c: int = 6, s: int = 16) -> torch.Tensor:
    return torch.randint(
        0, 256, (b, c, s, s), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )


def test_random_shift_is_a_crop_of_the_replicate_padded_image() -> None:
    obs = _obs()
    out = random_shift(obs, pad=4, generator=torch.Generator().manual_seed(0))
    assert out.shape == obs.shape and out.dtype == torch.uint8
    padded = F.pad(obs.float(), (4, 4, 4, 4), mode="replicate")
    for i in range(obs.shape[0]):
        crops = [padded[i, :, y : y + 16, x : x + 16] for y in range(9) for x in range(9)]
        assert any(torch.equal(out[i].float(), c) for c in crops)
    offsets = {int((out[i].float() - obs[i].float()).abs().sum()) for i in range(obs.shape[0])}
    assert len(offsets) > 1  # samples get their own shifts


def test_random_shift_seeded_and_identity_without_pad() -> None:
    obs = _obs()
    a = random_shift(obs, generator=torch.Generator().manual_seed(3))
    b = random_shift(obs, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(random_shift(obs, pad=0), obs)


def test_random_conv_matches_per_sample_loop() -> None:
    obs = _obs()
    out = random_conv(obs, generator=torch.Generator().manual_seed(0))
    assert out.shape == obs.shape and out.dtype == torch.float32
    assert out.min() > 0 and out.max() < 255
    weights = torch.randn(5, 1, 3, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    for i in range(5):
        frames = F.pad(obs[i].float().view(2, 3, 16, 16) / 255, (1, 1, 1, 1), mode="replicate")
        expected = torch.sigmoid(F.conv2d(frames, weights[i, 0])).view(6, 16, 16) * 255
        torch.testing.assert_close(out[i], expected)


def test_random_conv_same_kernel_for_all_frames_of_a_sample() -> None:
    frame = _obs(4, 3)
    out = random_conv(frame.repeat(1, 3, 1, 1), generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:, :3], out[:, 3:6]) and torch.equal(out[:, :3], out[:, 6:])
    assert not torch.allclose(out[0, :3], out[1, :3])
    again = random_conv(frame.repeat(1, 3, 1, 1), generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
