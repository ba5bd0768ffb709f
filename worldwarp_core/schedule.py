"""Spatio-temporal noise schedules for ST-Diff (paper eq. 6, 9-10, Fig. 9, Table 3).

Grids. The Wan VAE compresses time 4x with frame 0 alone (``F_lat = 1 + (F-1)/4``) and space
8x; the transformer patches 1x2x2, so one token = one latent frame x 16x16 pixels. A 49-frame
chunk is 13 latent frames; its 5 context frames are exactly latent frames 0-1.

Masks. A pixel validity mask ``[F, H, W]`` becomes a latent mask ``[F_lat, H/8, W/8]`` and a
token mask ``[F_lat, H/16, W/16]`` by pooling over each cell's footprint (frame 0 alone, then
groups of 4 frames, times the 8x8 or 16x16 pixel square). By default a cell is valid only if
all its pixels are (min-pooling, ``coverage=1``); ``coverage=c`` needs a fraction ``c``.

Strength τ (as diffusers' img2img ``strength``): τ is the fraction of the denoising schedule
warped tokens go through. With ``N`` steps and sigmas ``s_0 > … > s_N = 0`` warped tokens start
at ``s_i`` with ``i = N - int(N·τ)``; τ = 1 starts them at pure noise (like holes), τ = 0 keeps
the hint untouched. Paper default τ = 0.8.

σ maps Σ (eq. 9) at token resolution: warped tokens ``σ_start``, holes 1.0, context tokens 0.
Variants (Table 3):
  * ``spatio-temporal``: per token, as above (the method);
  * ``spatial``: one σ per spatial position for all generated frames, frame-agnostic: a position
    is warped if it is warped in the majority of the generated (non-context) frames;
  * ``temporal``: one σ per latent frame: ``σ_start`` if at least half of the frame's tokens are
    warped, else 1.0;
  * ``full``: one σ for every generated token, 1.0 (standard video diffusion from pure noise, the
    paper's "Full sequence noise" row); context frames stay at 0 in every variant.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as Fn
from torch import Tensor

ScheduleVariant = Literal["spatio-temporal", "spatial", "temporal", "full"]
SCHEDULE_VARIANTS: tuple[str, ...] = ("spatio-temporal", "spatial", "temporal", "full")

VAE_TIME = 4  # Wan VAE temporal compression (frame 0 alone)
VAE_SPACE = 8  # Wan VAE spatial compression
PATCH = 2  # transformer spatial patch (1x2x2)
TOKEN_PIXELS = VAE_SPACE * PATCH  # 16


def latent_frame_count(frames: int) -> int:
    """``1 + (F-1)/4``; ``F`` must be ``4k+1``."""
    if frames < 1 or (frames - 1) % VAE_TIME:
        raise ValueError(f"frame count must be 4k+1 (1, 5, 9, ..., 49, 81) for the Wan VAE, got {frames}")
    return 1 + (frames - 1) // VAE_TIME


def context_latent_count(context_frames: int) -> int:
    """Latent frames that hold ``context_frames`` pixel frames (``4j+1`` -> ``j+1``; 0 -> 0)."""
    return 0 if context_frames == 0 else latent_frame_count(context_frames)


def _pool(mask: Tensor, cell: int, coverage: float) -> Tensor:
    F, H, W = mask.shape
    if H % cell or W % cell:
        raise ValueError(f"mask is {H}x{W}; height and width must be multiples of {cell} (resize to a multiple of 16)")
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    lat = latent_frame_count(F)
    m = mask.float()
    # temporal groups: frame 0 alone, then 4 frames per latent frame
    groups = torch.cat([m[:1], m[1:].reshape(lat - 1, VAE_TIME, H, W).mean(dim=1) if lat > 1 else m[:0]], dim=0)
    frac = torch.cat([m[:1], m[1:].reshape(lat - 1, VAE_TIME, H, W).amin(dim=1) if lat > 1 else m[:0]], dim=0)
    if coverage >= 1.0:
        # every pixel of the footprint (all frames of the group, all pixels of the cell) valid
        return -Fn.max_pool2d(-frac.unsqueeze(1), cell).squeeze(1)
    cover = Fn.avg_pool2d(groups.unsqueeze(1), cell).squeeze(1)
    return (cover >= coverage - 1e-6).float()


def latent_mask(pixel_mask: Tensor, coverage: float = 1.0) -> Tensor:
    """Pixel mask ``[F, H, W]`` -> latent mask ``[F_lat, H/8, W/8]`` (float 0/1)."""
    _check_mask(pixel_mask)
    return _pool(pixel_mask, VAE_SPACE, coverage)


def token_mask(pixel_mask: Tensor, coverage: float = 1.0) -> Tensor:
    """Pixel mask ``[F, H, W]`` -> token mask ``[F_lat, H/16, W/16]`` (float 0/1)."""
    _check_mask(pixel_mask)
    return _pool(pixel_mask, TOKEN_PIXELS, coverage)


def _check_mask(mask: Tensor) -> None:
    if mask.ndim != 3:
        raise ValueError(f"pixel mask must be [F, H, W], got {list(mask.shape)}")


def flow_sigmas(steps: int, shift: float = 3.0, scheduler_config: dict | None = None) -> Tensor:
    """Flow-matching sigmas ``[steps + 1]`` from 1 down to the terminal 0.

    Exactly those of diffusers' ``FlowMatchEulerDiscreteScheduler`` (the paper's scheduler) after
    ``set_timesteps(steps)``, with the shift of ``scheduler_config`` (a checkpoint's scheduler
    config: ``shift`` or Wan's ``flow_shift``) or ``shift`` (Wan 480p uses 3.0).
    """
    from diffusers import FlowMatchEulerDiscreteScheduler

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    config = scheduler_config or {}
    # a Wan diffusers folder ships a UniPC config with "flow_shift"; a flow-match one has "shift"
    shift = float(config.get("shift", config.get("flow_shift", shift)))
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}")
    scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(steps)
    return scheduler.sigmas.float().cpu()


def start_index(strength: float, steps: int) -> int:
    """Index into the sigmas where warped tokens start (diffusers img2img convention)."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength τ must be in [0, 1], got {strength}")
    return steps - int(steps * strength)


def sigma_start(strength: float, sigmas: Tensor) -> float:
    """σ_start for strength τ given the sigmas ``[N+1]`` (module docstring)."""
    return float(sigmas[start_index(strength, sigmas.numel() - 1)])


def sigma_map(
    token_mask: Tensor,
    context_latents: int,
    sigma_start: float,
    variant: ScheduleVariant = "spatio-temporal",
) -> Tensor:
    """Σ ``[F_lat, h, w]`` at token resolution (eq. 9): warped σ_start, holes 1, context 0."""
    if variant not in SCHEDULE_VARIANTS:
        raise ValueError(f"unknown schedule variant {variant!r}; choose one of {SCHEDULE_VARIANTS}")
    if token_mask.ndim != 3:
        raise ValueError(f"token mask must be [F_lat, h, w], got {list(token_mask.shape)}")
    F = token_mask.shape[0]
    if not 0 <= context_latents < F:
        raise ValueError(f"context latents must be in [0, {F - 1}] for {F} latent frames, got {context_latents}")
    if not 0.0 <= sigma_start <= 1.0:
        raise ValueError(f"sigma_start must be in [0, 1], got {sigma_start}")
    m = token_mask.float().clone()
    gen = m[context_latents:]
    if variant == "spatial":
        gen[:] = (gen.mean(dim=0, keepdim=True) > 0.5).float()
    elif variant == "temporal":
        gen[:] = (gen.mean(dim=(1, 2), keepdim=True) >= 0.5).float().expand_as(gen)
    elif variant == "full":
        gen[:] = 0.0
    S = gen * sigma_start + (1 - gen) * 1.0
    return torch.cat([torch.zeros_like(m[:context_latents]), S], dim=0)


def _colormap(x: Tensor) -> Tensor:
    """A viridis-like colour ramp (dark purple -> teal -> yellow) for values in [0, 1]: ``[..., 3]``."""
    stops = torch.tensor([
        [0.267, 0.005, 0.329], [0.230, 0.322, 0.546], [0.128, 0.567, 0.551],
        [0.369, 0.789, 0.383], [0.993, 0.906, 0.144],
    ])
    pos = x.clamp(0, 1) * (len(stops) - 1)
    i = pos.floor().long().clamp(max=len(stops) - 2)
    f = (pos - i).unsqueeze(-1)
    return stops[i] * (1 - f) + stops[i + 1] * f


def sigma_trace(sigma_map: Tensor, sigmas: Tensor) -> Tensor:
    """σ of every token at every step: ``min(Σ_i, s_k)`` -> ``[N+1, F_lat, h, w]``."""
    return torch.minimum(sigma_map.unsqueeze(0), sigmas.view(-1, 1, 1, 1).to(sigma_map))


def schedule_picture(sigma_map: Tensor, sigmas: Tensor, rows: Literal["frames", "tokens"] = "tokens",
                     cell: int = 6) -> Tensor:
    """The Σ matrix over the denoising steps as an image ``[H, W, 3]`` in 0..1 (paper Fig. 9).

    Columns are steps (left: first step), colour is σ (viridis-like: 0 dark purple, 1 yellow).
    ``rows="tokens"``: one row per token, grouped by latent frame (a thin white line between
    frames); ``rows="frames"``: one row per latent frame showing its mean σ.
    """
    trace = sigma_trace(sigma_map, sigmas)  # [K, F, h, w]
    K, F = trace.shape[:2]
    if rows == "frames":
        grid = trace.mean(dim=(2, 3)).T  # [F, K]
        img = _colormap(grid).repeat_interleave(cell, 0).repeat_interleave(cell, 1)
        return img
    per_frame = trace.flatten(2).permute(1, 2, 0)  # [F, h*w, K]
    parts = []
    for f in range(F):
        parts.append(_colormap(per_frame[f]).repeat_interleave(cell, 1))
        parts.append(torch.ones(1, K * cell, 3))
    return torch.cat(parts[:-1], dim=0)
