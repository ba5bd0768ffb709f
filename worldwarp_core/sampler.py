"""The ST-Diff sampler: flow-matching Euler with one σ per token (paper eq. 9-10, supp. §7).

Flow matching as in Wan: ``x_σ = (1-σ)·x0 + σ·ε``, the model predicts ``v = ε - x0``, Euler step
``x ← x + (σ_next - σ)·v``, model timestep ``t = 1000·σ``.

Start (eq. 10): ``z_start = (1-Σ)⊙z_warp + Σ⊙ε`` with Σ from :func:`schedule.sigma_map`
(warped σ_start, holes 1, context 0). Step ``k`` of the sigmas ``s_0 > … > s_N = 0``: a cell
``i`` is at ``σ_i = min(Σ_i, s_k)`` and moves to ``min(Σ_i, s_{k+1})``; cells whose σ does not
change are not touched (bit for bit), so context (σ = 0) is an exact hard constraint.

Σ may be given on either grid (``schedule.MaskRule``): at token resolution ``[F, h/2, w/2]``
(``strict``: a token's state always matches the timestep the model is given for it), or at latent
resolution ``[F, h, w]`` (``official``: every latent pixel follows its own σ, and the model's
timestep for a token is its top-left latent pixel's, as the official ``sample_sequence`` does).
Defaults (:class:`SamplerConfig`) reproduce the official sampler: flow shift 5, the official
mask rule and τ → start index, CFG 5 (with the official negative prompt, ``caption.DEFAULT_NEGATIVE``).

Training-free mode (beyond the paper) for base Wan2.1 weights that never saw per-token
timesteps: every token gets the same timestep ``s_k``; warped tokens are held on their forward
path ``(1-s_k)·z_warp + s_k·ε`` (fixed ε) while ``s_k ≥ σ_start`` and then evolve freely;
context tokens are re-noised onto their path every step and set to their clean latents at the
end (masked SDEdit / RePaint without resampling).

The sampler knows schedules, not layers: the model is any ``denoise_fn(x [B, C, F, h, w],
timestep [B, L] or [B]) -> v``; :func:`transformer_denoiser` adapts a diffusers
``WanTransformer3DModel`` with classifier-free guidance batched into one forward (``cfg_batch =
"batched"``, the official sampler's) or run as two forwards of batch 1 (``"sequential"``: the
transformer's activations are those of one branch, for small cards; the same latents to float
rounding, at the cost of two weight passes per step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from .models import compute_dtype
from .schedule import (
    MASK_RULES,
    OFFICIAL_SHIFT,
    PATCH,
    MaskRule,
    ScheduleVariant,
    flow_sigmas,
    sigma_map,
    sigma_start,
    start_index,
    token_timestep_sigma,
)

DenoiseFn = Callable[[Tensor, Tensor], Tensor]
CfgBatch = Literal["batched", "sequential"]
CFG_BATCHES: tuple[str, ...] = ("batched", "sequential")
StepCallback = Callable[[int, int, Tensor], None]  # (step, total, x0 estimate [C, F, h, w])


@dataclass(frozen=True)
class SamplerConfig:
    steps: int = 50
    strength: float = 0.8  # τ
    guidance_scale: float = 5.0
    shift: float | None = OFFICIAL_SHIFT  # official sampler: 5; None: the model's scheduler config (Wan 480p: 3)
    variant: ScheduleVariant = "spatio-temporal"
    training_free: bool = False
    coverage: float = 1.0  # strict rule only
    mask_rule: MaskRule = "official"
    seed: int = 0
    cfg_batch: CfgBatch = "batched"  # CFG branches in one forward of batch 2, or two forwards of batch 1

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength τ must be in [0, 1], got {self.strength}")
        if not self.guidance_scale >= 1.0 or self.guidance_scale == float("inf"):  # NaN fails >= too
            raise ValueError(f"guidance scale must be >= 1 (1 disables CFG), got {self.guidance_scale}")
        if self.mask_rule not in MASK_RULES:
            raise ValueError(f"unknown mask rule {self.mask_rule!r}; choose one of {MASK_RULES}")
        if self.shift is not None and not (0 < self.shift < float("inf")):  # NaN fails too
            raise ValueError(f"shift must be a positive finite number (official: 5), got {self.shift}")
        check_cfg_batch(self.cfg_batch)


def check_cfg_batch(cfg_batch: str) -> str:
    if cfg_batch not in CFG_BATCHES:
        raise ValueError(f"cfg_batch must be one of {', '.join(CFG_BATCHES)} (sequential: the two guidance "
                         f"branches one after the other, less memory); got {cfg_batch!r}")
    return cfg_batch


@dataclass
class SampleResult:
    latents: Tensor  # [C, F_lat, h, w] denoised
    sigma_map: Tensor  # Σ at the start: [F_lat, h, w] (official rule) or [F_lat, h/2, w/2] (strict)
    sigmas: Tensor  # [N+1] the schedule
    sigma_start: float


def tokens_to_latent(x: Tensor, patch: int = PATCH) -> Tensor:
    """Token grid ``[..., F, h', w']`` -> latent grid ``[..., F, h'·p, w'·p]``."""
    return x.repeat_interleave(patch, dim=-2).repeat_interleave(patch, dim=-1)


def _latent_sigma(sigma: Tensor, z_shape: torch.Size) -> Tensor:
    """Σ on the token grid ``[F, h/2, w/2]`` or the latent grid ``[F, h, w]`` -> latent grid ``[F, h, w]``."""
    C, F, h, w = z_shape
    if h % PATCH or w % PATCH:
        raise ValueError(f"latents {list(z_shape)}: h and w must be even (the transformer patches 2x2)")
    if tuple(sigma.shape) == (F, h, w):
        return sigma
    if tuple(sigma.shape) == (F, h // PATCH, w // PATCH):
        return tokens_to_latent(sigma)
    raise ValueError(f"Σ must be [F, h/2, w/2] = {[F, h // PATCH, w // PATCH]} (tokens) or [F, h, w] = {[F, h, w]} "
                     f"(latent pixels) for latents {list(z_shape)}, got {list(sigma.shape)}")


def sample_with_denoiser(
    denoise_fn: DenoiseFn,
    z_warp: Tensor,
    sigma_tokens: Tensor,
    sigmas: Tensor,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """Per-cell flow-matching Euler (module docstring); returns the clean latents ``[C, F, h, w]``.

    Args:
        denoise_fn: ``(x [1, C, F, h, w], timestep [1, L]) -> v [1, C, F, h, w]``.
        z_warp: encoded hints ``[C, F, h, w]`` (context frames hold the clean history latents).
        sigma_tokens: Σ ``[F, h/2, w/2]`` (tokens) or ``[F, h, w]`` (latent pixels; a token's
            timestep is its top-left pixel's).
        sigmas: ``[N+1]`` decreasing to 0.
        noise: ε ``[C, F, h, w]``; drawn from ``generator`` when ``None``.
    """
    z = z_warp.float()
    S = _latent_sigma(sigma_tokens.float().to(z.device), z.shape)  # [F, h, w]
    eps = torch.randn(z.shape, generator=generator, dtype=torch.float32).to(z.device) if noise is None else noise.float()
    x = (1 - S) * z + S * eps  # eq. (10)
    x = torch.where(S == 0, z, x)  # context exact, not (1-0)*z + 0*ε rounding
    sig = sigmas.float().to(z.device)
    N = sig.numel() - 1
    for k in range(N):
        cur = torch.minimum(S, sig[k])
        nxt = torch.minimum(S, sig[k + 1])
        moving = nxt < cur  # [F, h, w]
        if not bool(moving.any()):
            continue
        v = denoise_fn(x.unsqueeze(0), (1000.0 * token_timestep_sigma(cur)).reshape(1, -1))[0].float()
        x0 = x - cur * v
        x = torch.where(moving, x + (nxt - cur) * v, x)
        if callback is not None:
            callback(k + 1, N, x0)
    return x


def sample_training_free(
    denoise_fn: DenoiseFn,
    z_warp: Tensor,
    sigma_tokens: Tensor,
    sigmas: Tensor,
    sigma_start_value: float,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """Uniform-timestep sampling with warped/context tokens held on their forward path (module docstring).

    ``sigma_tokens`` (token or latent grid) is read only for its regions: 0 = context, < 1 = warped, 1 = hole.
    """
    z = z_warp.float()
    eps = torch.randn(z.shape, generator=generator, dtype=torch.float32).to(z.device) if noise is None else noise.float()
    S = _latent_sigma(sigma_tokens.float().to(z.device), z.shape)
    context = S == 0
    warped = (S > 0) & (S < 1)
    sig = sigmas.float().to(z.device)
    N = sig.numel() - 1
    x = (1 - sig[0]) * z + sig[0] * eps
    x = torch.where(context | warped, x, eps)
    for k in range(N):
        s, s_next = sig[k], sig[k + 1]
        on_path = (1 - s) * z + s * eps
        hold = context | (warped & (s >= sigma_start_value - 1e-7))
        x = torch.where(hold, on_path, x)
        v = denoise_fn(x.unsqueeze(0), (1000.0 * s).reshape(1))[0].float()
        x0 = x - s * v
        x = x + (s_next - s) * v
        if callback is not None:
            callback(k + 1, N, x0)
    return torch.where(context, z, x)


def transformer_denoiser(
    transformer,
    prompt_embeds: Tensor,
    negative_embeds: Tensor | None = None,
    guidance_scale: float = 1.0,
    cfg_batch: CfgBatch = "batched",
) -> DenoiseFn:
    """Adapt a diffusers ``WanTransformer3DModel`` (per-token timesteps ``[B, L]``) with CFG.

    ``prompt_embeds``/``negative_embeds``: ``[1, S, D]``. With ``guidance_scale > 1`` the negative
    and positive branches run in ONE forward of batch 2 (``cfg_batch="batched"``) or in two forwards
    of batch 1 (``"sequential"``); either way ``v = v_neg + g·(v_pos - v_neg)``.
    """
    check_cfg_batch(cfg_batch)
    cfg = guidance_scale > 1.0
    if cfg and negative_embeds is None:
        raise ValueError("classifier-free guidance needs negative prompt embeddings (or guidance_scale = 1)")
    dtype, device = compute_dtype(transformer), next(transformer.parameters()).device
    positive = prompt_embeds.to(device, dtype)
    negative = negative_embeds.to(device, dtype) if cfg else None
    both = torch.cat([negative, positive]) if cfg and cfg_batch == "batched" else None

    def forward(xb: Tensor, tb: Tensor, embeds: Tensor) -> Tensor:
        with torch.no_grad():
            return transformer(hidden_states=xb, timestep=tb, encoder_hidden_states=embeds, return_dict=False)[0].float()

    def denoise(x: Tensor, timestep: Tensor) -> Tensor:
        xb = x.to(device, dtype)
        tb = timestep.to(device)
        if not cfg:
            v = forward(xb, tb, positive)
        else:
            if both is not None:
                v_neg, v_pos = forward(torch.cat([xb, xb]), torch.cat([tb, tb]), both).chunk(2)
            else:
                v_neg = forward(xb, tb, negative)
                v_pos = forward(xb, tb, positive)
            v = v_neg + guidance_scale * (v_pos - v_neg)
        return v.to(x.device)

    return denoise


def st_diff_sample(
    transformer,
    z_warp: Tensor,
    mask: Tensor,
    context_latents: int,
    prompt_embeds: Tensor,
    negative_embeds: Tensor | None,
    config: SamplerConfig = SamplerConfig(),
    callback: StepCallback | None = None,
    scheduler_config: dict | None = None,
    denoise_fn: DenoiseFn | None = None,
) -> SampleResult:
    """Sample one chunk with ST-Diff.

    Args:
        transformer: a diffusers ``WanTransformer3DModel`` (ignored when ``denoise_fn`` is given).
        z_warp: encoded warped hints ``[C, F_lat, h, w]``; latent frames ``< context_latents`` hold
            the encoded history overlap.
        mask: 1 where the hint is valid, from ``schedule.sampler_mask``: ``[F_lat, h, w]`` for the
            ``official`` rule, ``[F_lat, h/2, w/2]`` for ``strict``.
        context_latents: latent frames fixed at σ = 0.
        scheduler_config: the model's scheduler config, read only when ``config.shift`` is None.
    """
    C, F, h, w = z_warp.shape
    want = (F, h, w) if config.mask_rule == "official" else (F, h // PATCH, w // PATCH)
    if tuple(mask.shape) != want:
        raise ValueError(f"the '{config.mask_rule}' mask rule needs a mask {list(want)} for latents {list(z_warp.shape)}, "
                         f"got {list(mask.shape)}; build it with schedule.sampler_mask(pixel_mask, "
                         f"'{config.mask_rule}')")
    shift = config.shift if config.shift is not None else 3.0
    sigmas = flow_sigmas(config.steps, shift, None if config.shift is not None else scheduler_config)
    s_start = sigma_start(config.strength, sigmas)
    S = sigma_map(mask.to(z_warp.device), context_latents, s_start, config.variant)
    gen = torch.Generator().manual_seed(int(config.seed))
    eps = torch.randn(z_warp.shape, generator=gen, dtype=torch.float32).to(z_warp.device)
    fn = denoise_fn or transformer_denoiser(transformer, prompt_embeds, negative_embeds, config.guidance_scale,
                                            config.cfg_batch)
    if config.training_free:
        x = sample_training_free(fn, z_warp, S, sigmas, s_start, noise=eps, callback=callback)
    else:
        x = sample_with_denoiser(fn, z_warp, S, sigmas, noise=eps, callback=callback)
    return SampleResult(x, S, sigmas, s_start)


__all__ = [
    "CFG_BATCHES",
    "CfgBatch",
    "SamplerConfig",
    "SampleResult",
    "sample_training_free",
    "sample_with_denoiser",
    "st_diff_sample",
    "start_index",
    "transformer_denoiser",
]
