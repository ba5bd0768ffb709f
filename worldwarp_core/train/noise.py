"""ST-Diff training noise (paper §4.1, Fig. 2, eq. 5-8).

Latents are ``[C, F, h, w]`` (one clip; a leading batch dim ``B`` is accepted everywhere).
Masks: ``M_latent`` ``[F, h, w]`` at latent resolution (1 = valid warped content) for the
composite of eq. (5). The noise map Σ of eq. (6) follows the sampler's mask rule
(``NoiseConfig.mask_rule``): ``official`` (default, the paper's eq. 6) builds Σ from ``M_latent``
at latent resolution and gives the transformer each token's top-left latent pixel's σ as its
timestep, exactly as inference does; ``strict`` builds Σ at token resolution from the token mask
(a token is "warped" only if all its pixels are) and broadcasts it to latent pixels for eq. (7).

The σ pairs (eq. 6). The paper says only "per-frame independent": each latent frame ``t`` draws
its own ``(σ_warped,t, σ_filled,t)``. We draw each σ independently from the same distribution as
the inference schedule visits: ``u ~ U(0, 1)`` mapped through Wan's flow shift
``σ = shift·u / (1 + (shift - 1)·u)`` (shift 1 = uniform). ``ordered=True`` additionally sorts each
pair so ``σ_warped ≤ σ_filled`` (inference always has warped tokens at σ_start ≤ 1 = holes); it is
off by default, following the paper. Ablation variants (Table 3):
  * ``spatio-temporal``: per-frame pairs (the method);
  * ``spatial``: one pair for the whole clip (regions differ, frames do not);
  * ``temporal``: one σ per frame shared by warped and filled regions;
  * ``full``: one σ for everything (standard video diffusion).
Context frames (beyond the paper's text, matching its inference): with probability
``context_prob`` the first ``context_latents`` latent frames get σ = 0 and take the ground truth,
as the overlap frames are hard constraints at inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

NoiseVariant = Literal["spatio-temporal", "spatial", "temporal", "full"]
NOISE_VARIANTS: tuple[str, ...] = ("spatio-temporal", "spatial", "temporal", "full")


@dataclass(frozen=True)
class NoiseConfig:
    variant: NoiseVariant = "spatio-temporal"
    shift: float = 3.0  # Wan2.1 480p flow shift: the σ density the sampler visits
    ordered: bool = False  # sort each pair so σ_warped <= σ_filled
    context_latents: int = 2  # 5 context frames = latent frames 0-1
    context_prob: float = 0.5
    mask_rule: str = "official"  # Σ from the latent mask (as inference); "strict": from the token mask

    def __post_init__(self) -> None:
        if self.variant not in NOISE_VARIANTS:
            raise ValueError(f"unknown noise variant {self.variant!r}; choose one of {NOISE_VARIANTS}")
        if self.shift <= 0:
            raise ValueError(f"shift must be positive, got {self.shift}")
        if not 0.0 <= self.context_prob <= 1.0:
            raise ValueError(f"context_prob must be in [0, 1], got {self.context_prob}")
        if self.mask_rule not in ("official", "strict"):
            raise ValueError(f"unknown mask rule {self.mask_rule!r}; choose 'official' or 'strict'")


def shifted_uniform(shape: tuple[int, ...], shift: float, generator: torch.Generator | None = None) -> Tensor:
    """σ = shift·u / (1 + (shift-1)·u) with u ~ U(0, 1): Wan's time shift applied to uniform draws."""
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    return (shift * u / (1 + (shift - 1) * u)).float()


def sample_sigma_pairs(
    frames: int, config: NoiseConfig = NoiseConfig(), generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, int]:
    """Draw ``(σ_warped [F], σ_filled [F], n_context)`` for one clip of ``frames`` latent frames (eq. 6)."""
    if frames < 1:
        raise ValueError(f"need at least one latent frame, got {frames}")
    v = config.variant
    if v == "spatio-temporal":
        s = shifted_uniform((2, frames), config.shift, generator)
        sw, sf = s[0], s[1]
    elif v == "spatial":
        s = shifted_uniform((2,), config.shift, generator)
        sw, sf = s[0].expand(frames).clone(), s[1].expand(frames).clone()
    elif v == "temporal":
        sw = shifted_uniform((frames,), config.shift, generator)
        sf = sw.clone()
    else:  # full
        sw = shifted_uniform((1,), config.shift, generator).expand(frames).clone()
        sf = sw.clone()
    if config.ordered:
        sw, sf = torch.minimum(sw, sf), torch.maximum(sw, sf)
    n_ctx = 0
    if config.context_latents > 0 and frames > config.context_latents:
        if float(torch.rand((), generator=generator)) < config.context_prob:
            n_ctx = config.context_latents
            sw[:n_ctx] = 0.0
            sf[:n_ctx] = 0.0
    return sw, sf, n_ctx


def composite_latents(z_warp: Tensor, z_gt: Tensor, mask_latent: Tensor) -> Tensor:
    """Eq. (5): ``z_c = M ⊙ z_warp + (1 - M) ⊙ z_gt``; ``z_* [..., C, F, h, w]``, ``M [..., F, h, w]``."""
    if z_warp.shape != z_gt.shape:
        raise ValueError(f"warped and ground-truth latents differ in shape: {list(z_warp.shape)} vs {list(z_gt.shape)}")
    if tuple(mask_latent.shape[-3:]) != tuple(z_gt.shape[-3:]):
        raise ValueError(f"latent mask {list(mask_latent.shape)} does not match latents [F, h, w] = {list(z_gt.shape[-3:])}")
    m = mask_latent.to(z_gt.dtype).unsqueeze(-4)
    return m * z_warp + (1 - m) * z_gt


def sigma_map(token_mask: Tensor, sigma_warped: Tensor, sigma_filled: Tensor) -> Tensor:
    """Eq. (6): Σ_t = M_t·σ_warped,t + (1 - M_t)·σ_filled,t on the mask's grid ``[F, h', w']`` (latent or token)."""
    if token_mask.ndim != 3 or sigma_warped.shape != (token_mask.shape[0],) or sigma_filled.shape != sigma_warped.shape:
        raise ValueError(
            f"token mask must be [F, h', w'] and σ pairs [F]; got {list(token_mask.shape)}, "
            f"{list(sigma_warped.shape)}, {list(sigma_filled.shape)}"
        )
    m = token_mask.float()
    return m * sigma_warped[:, None, None] + (1 - m) * sigma_filled[:, None, None]


def tokens_to_latent(sigma_tokens: Tensor, patch: int = 2) -> Tensor:
    """Broadcast a token-resolution map ``[..., F, h', w']`` to latent pixels ``[..., F, h'·p, w'·p]``."""
    return sigma_tokens.repeat_interleave(patch, dim=-2).repeat_interleave(patch, dim=-1)


def noisy_latents(z_c: Tensor, sigma_latent: Tensor, noise: Tensor) -> Tensor:
    """Eq. (7): ``z_noisy = (1 - Σ) ⊙ z_c + Σ ⊙ ε``; Σ ``[..., F, h, w]`` broadcast over channels."""
    s = sigma_latent.to(z_c.dtype).unsqueeze(-4)
    return (1 - s) * z_c + s * noise


def velocity_target(noise: Tensor, z_gt: Tensor) -> Tensor:
    """Eq. (8): the target velocity is ``ε - z_gt`` -- towards the ground truth, NOT the composite."""
    return noise - z_gt
