"""Agents: networks, saliency, augmentations, the SAC core and its variants (see docs/INTERFACES.md).

`make_agent` is the one entry point; `resolve_device` turns `auto|cpu|cuda` into a torch.device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch

from sgqn_robot.agents.networks import PRESETS
from sgqn_robot.agents.sac import AgentConfig, SACAgent
from sgqn_robot.agents.sgqn import SGQNAgent
from sgqn_robot.agents.variants import DrQAgent, SVEAAgent

AGENTS: dict[str, type[SACAgent]] = {
    "sac": SACAgent,
    "drq": DrQAgent,
    "svea": SVEAAgent,
    "sgqn": SGQNAgent,
}

__all__ = ["AGENTS", "PRESETS", "AgentConfig", "SACAgent", "make_agent", "resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`auto` -> cuda when available, else cpu; `cpu`, `cuda`, `cuda:1`... as given. A device
    this machine cannot run is a ValueError naming the fix, not torch's assertion mid-build."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"device={device!r} is not a torch device: use auto, cpu, cuda or cuda:<index>"
        ) from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is a CPU build" if torch.version.cuda is None else "no GPU is visible"
            raise ValueError(f"device={device} but {why}: use device=cpu (or device=auto)")
        if (resolved.index or 0) >= torch.cuda.device_count():
            raise ValueError(
                f"device={device} but only {torch.cuda.device_count()} GPU(s) are visible"
            )
    return resolved


def make_agent(
    agent_cfg: Mapping,
    encoder_cfg: Mapping,
    obs_shape: tuple[int, int, int],
    action_dim: int,
    device: str | torch.device,
) -> SACAgent:
    """Build agent `agent_cfg["name"]` (sac | drq | svea | sgqn) on encoder preset
    `encoder_cfg["preset"]` (paper | fast).

    Torch's global RNG drives initialisation, exploration and augmentation: call
    `torch.manual_seed` first for a reproducible run (bit-identical on CPU).

    encoder_cfg keys:
        preset: "paper"         paper = 11 convs at 84 px; fast = 4 convs (2 strided) at 64 px.
                                The preset fixes the image size: obs_shape must be (3k, S, S).
        channels_last: True     NHWC activations (same math, ~2x faster CPU convs).
        decoder_channels: None  [c1, c2] widths of SGQN's attribution decoder; None = the
                                preset's (paper 128, 64; fast 32, 32).

    agent_cfg keys (defaults = the spec's manipulation settings; unknown keys and out-of-range
    values raise ValueError naming the key and its valid range):
        name: required          sac | drq | svea | sgqn
        discount: 0.99
        hidden_dim: 1024        actor / Q-head MLP width
        projection_dim: 100     Linear + LayerNorm + Tanh projection of the trunk
        critic_lr: 1e-3         critic_beta: 0.9 (Adam beta1; beta2 is 0.999 everywhere)
        actor_lr: 1e-3          actor_beta: 0.9
        alpha_lr: 1e-4          alpha_beta: 0.5
        init_temperature: 0.1   initial alpha
        target_entropy: None    None -> -action_dim
        log_std_min: -10.0      log_std_max: 2.0
        critic_tau: 0.01        soft target update of the Q heads
        encoder_tau: 0.05       soft target update of trunk + critic projection
        actor_update_freq: 2    actor + alpha step every n update steps
        target_update_freq: 2   soft target update every n update steps
        shift_pad: 4            random-shift padding (drq, svea, sgqn)
        mask_quantile: 0.95     rho: the mask keeps the top 1 - rho per frame (sgqn; saliency())
        svea_alpha: 0.5         svea: weight of the clean-view critic loss
        svea_beta: 0.5          svea: weight of the random-conv-view critic loss
        consistency_weight: 1.0 sgqn: lambda_C
        aux_lr: 3e-4            aux_beta: 0.9   sgqn: Adam of predictor + critic encoder
        aux_update_freq: 2      sgqn: attribution-prediction step every n update steps

    `update(batch, step)` metric keys: every step `critic_loss, q1, q2, target_q` (batch means)
    and `feature_std` (std over the batch of the critic trunk's features, averaged over them);
    when `step % actor_update_freq == 0` also `actor_loss, alpha_loss, alpha, entropy`;
    svea adds `critic_loss_aug`; sgqn adds `consistency_loss, mask_fraction` every step and
    `aux_loss, aux_accuracy` (BCE and per-pixel accuracy of the predicted mask) when
    `step % aux_update_freq == 0`.
    """
    cfg = dict(agent_cfg)
    name = cfg.pop("name", None)
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; choose from {sorted(AGENTS)}")
    fields = {f.name for f in dataclasses.fields(AgentConfig)}
    if unknown := sorted(set(cfg) - fields):
        raise ValueError(f"unknown agent config keys {unknown}; valid keys: {sorted(fields)}")
    enc = dict(encoder_cfg)
    preset_name = enc.pop("preset", "paper")
    if preset_name not in PRESETS:
        raise ValueError(f"unknown encoder preset {preset_name!r}; choose from {sorted(PRESETS)}")
    channels_last = bool(enc.pop("channels_last", True))
    decoder = enc.pop("decoder_channels", None)
    if enc:
        raise ValueError(
            f"unknown encoder config keys {sorted(enc)}; valid: preset, channels_last, "
            "decoder_channels"
        )
    preset = PRESETS[preset_name]
    if decoder is not None:
        decoder = tuple(decoder)
        if len(decoder) != 2 or not all(isinstance(n, int) and n > 0 for n in decoder):
            raise ValueError(
                f"encoder.decoder_channels must be two positive integers [c1, c2] (or null for "
                f"the preset's {list(preset.decoder_channels)}), got {list(decoder)}"
            )
        preset = dataclasses.replace(preset, decoder_channels=decoder)
    c, h, w = obs_shape
    if c % 3 or (h, w) != (preset.image_size, preset.image_size):
        raise ValueError(
            f"preset {preset_name!r} needs obs (3k, {preset.image_size}, {preset.image_size}), "
            f"got {tuple(obs_shape)}"
        )
    return AGENTS[name](
        AgentConfig(**cfg),
        preset,
        tuple(obs_shape),
        action_dim,
        resolve_device(device),
        channels_last=channels_last,
    )
