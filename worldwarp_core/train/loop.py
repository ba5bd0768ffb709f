"""The ST-Diff training loop on accelerate (paper §4.1, supp. §7).

Paper setting: full fine-tune of Wan2.1-T2V-1.3B, AdamW lr 5e-5 with a 1,000-step linear warm-up,
10k steps, global batch 64 (8 per GPU on 8 GPUs), 480x720. ``configs/train_paper.json`` holds it.

Each step (per clip of the batch): draw the source frame of the one-to-all warp among the clip's
cached sources (``data.pick_source``) → draw per-frame σ pairs (eq. 6) → Σ from the latent mask
(``official`` rule; token mask for ``strict``) → ``z_noisy = (1-Σ)⊙z_c + Σ⊙ε`` (eq. 7) with the
composite of eq. (5) → the transformer gets one timestep per token, ``1000·Σ`` of its top-left
latent pixel (as the sampler) → L2 to the target ``ε - z_gt`` (eq. 8) over the whole sequence.
Context frames (σ = 0) are excluded from the loss: they are given, not predicted.

Determinism and resume: every random draw of step ``k`` comes from a generator seeded with
``(seed, k)``, so a run resumed from a checkpoint continues the same loss curve exactly.
Checkpoints (``output_dir/checkpoint-{step}/``): ``transformer.safetensors`` in the diffusers key
layout (the ST-Diff loader reads it), plus accelerate's own state for the optimiser and scheduler.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from .noise import (
    NoiseConfig,
    composite_latents,
    noisy_latents,
    sample_sigma_pairs,
    sigma_map,
    tokens_to_latent,
    velocity_target,
)


@dataclass(frozen=True)
class TrainConfig:
    data_dir: str
    output_dir: str
    model: str = "tiny"  # a diffusers Wan folder, a transformer .safetensors, or "tiny" (tests)
    init_checkpoint: str | None = None  # optional fine-tune to start from (e.g. worldwarp_latest.ckpt)
    lr: float = 5e-5
    warmup_steps: int = 1000
    max_steps: int = 10_000
    batch_size: int = 8  # per device
    grad_accum: int = 1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    mixed_precision: str = "bf16"  # "no" | "fp16" | "bf16"
    gradient_checkpointing: bool = True
    seed: int = 0
    save_every: int = 1000
    log_every: int = 10
    noise: NoiseConfig = field(default_factory=NoiseConfig)

    def __post_init__(self) -> None:
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be 'no', 'fp16' or 'bf16', got {self.mixed_precision!r}")
        for name in ("max_steps", "batch_size", "grad_accum", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")

    @classmethod
    def from_json(cls, path: str, **overrides) -> "TrainConfig":
        if not os.path.isfile(path):
            raise ValueError(f"training config not found: {path}")
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        data.update({k: v for k, v in overrides.items() if v is not None})
        noise = NoiseConfig(**data.pop("noise", {}))
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown training settings {sorted(unknown)}")
        return cls(noise=noise, **data)


def warmup_lambda(warmup_steps: int):
    """Linear warm-up from 0 to the full learning rate over ``warmup_steps``, then constant."""
    return lambda step: min(1.0, (step + 1) / max(1, warmup_steps))


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def st_diff_loss(transformer, batch: dict[str, Tensor], noise_cfg: NoiseConfig, generator: torch.Generator) -> Tensor:
    """One ST-Diff training loss (eq. 5-8) on a batch of cached samples ``z_* [B, C, F, h, w]``."""
    z_gt, z_warp = batch["z_gt"], batch["z_warp"]
    m_lat, m_tok, emb = batch["mask_latent"], batch["mask_token"], batch["prompt_embeds"]
    B, C, F, h, w = z_gt.shape
    official = noise_cfg.mask_rule == "official"
    m_sigma = m_lat if official else m_tok
    sigmas, weights = [], []
    for b in range(B):
        sw, sf, n_ctx = sample_sigma_pairs(F, noise_cfg, generator)
        S = sigma_map(m_sigma[b], sw, sf)  # eq. (6): [F, h, w] (official) or [F, h/2, w/2] (strict)
        sigmas.append(S)
        wgt = torch.ones(F)
        wgt[:n_ctx] = 0.0  # context frames are given, not learnt
        weights.append(wgt)
    S = torch.stack(sigmas).to(z_gt.device)
    S_lat = S if official else tokens_to_latent(S)  # [B, F, h, w]
    eps = torch.randn(z_gt.shape, generator=generator).to(z_gt.device, z_gt.dtype)
    z_c = composite_latents(z_warp, z_gt, m_lat)  # eq. (5)
    ctx_mask = (S_lat == 0).all(dim=(2, 3))  # [B, F]: context frames take the ground truth
    z_c = torch.where(ctx_mask[:, None, :, None, None], z_gt, z_c)
    z_noisy = noisy_latents(z_c, S_lat, eps)  # eq. (7)
    timestep = (1000.0 * S_lat[..., ::2, ::2]).reshape(B, -1)  # [B, L]: a token's top-left latent pixel
    from ..models import compute_dtype

    dtype = compute_dtype(transformer)
    v = transformer(hidden_states=z_noisy.to(dtype), timestep=timestep.to(dtype),
                    encoder_hidden_states=emb.to(dtype), return_dict=False)[0]
    target = velocity_target(eps, z_gt)  # eq. (8): towards the ground truth
    per_frame = (v.float() - target.float()).pow(2).mean(dim=(1, 3, 4))  # [B, F]
    wgt = torch.stack(weights).to(per_frame.device)
    return (per_frame * wgt).sum() / wgt.sum().clamp_min(1.0)


def _load_transformer(config: TrainConfig):
    from .. import models

    if config.model == "tiny":
        transformer = models.tiny_model(seed=config.seed).transformer
    else:
        transformer = models.load_transformer(config.model, dtype=torch.float32)
    if config.init_checkpoint:
        models.load_worldwarp_checkpoint(config.init_checkpoint, transformer)
    return transformer.float().train()


def train(config: TrainConfig, callback=None) -> list[float]:
    """Run (or resume) training; returns the loss of every optimiser step run in this call.

    ``callback(step, loss)`` is called after each optimiser step; raising from it stops cleanly
    after the last saved checkpoint.
    """
    from accelerate import Accelerator

    from .data import LatentDataset

    dataset = LatentDataset(config.data_dir)
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision if torch.cuda.is_available() else "no",
        gradient_accumulation_steps=config.grad_accum,
        project_dir=config.output_dir,
    )
    transformer = _load_transformer(config)
    if config.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    optim = torch.optim.AdamW(transformer.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, warmup_lambda(config.warmup_steps))
    transformer, optim, sched = accelerator.prepare(transformer, optim, sched)

    os.makedirs(config.output_dir, exist_ok=True)
    start = latest_checkpoint_step(config.output_dir)
    if start > 0:
        accelerator.load_state(os.path.join(config.output_dir, f"checkpoint-{start}", "accelerate"))
    with open(os.path.join(config.output_dir, "train_config.json"), "w", encoding="utf-8") as f:
        json.dump(asdict(config), f, indent=1)

    losses: list[float] = []
    log_path = os.path.join(config.output_dir, "loss.csv")
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    # thread-order accumulation in CPU backward passes would make a resumed curve drift from the
    # uninterrupted one; deterministic algorithms keep them equal
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        _run_steps(config, accelerator, transformer, optim, sched, dataset, start, losses, log_path, callback)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
    return losses


def _run_steps(config, accelerator, transformer, optim, sched, dataset, start, losses, log_path, callback) -> None:
    from .data import pick_source

    for step in range(start, config.max_steps):
        gen = step_generator(config.seed, step)
        total = 0.0
        for _micro in range(config.grad_accum):
            idx = torch.randint(len(dataset), (config.batch_size,), generator=gen).tolist()
            items = [pick_source(dataset[i], gen) for i in idx]  # the warp's source frame, drawn per step
            batch = {k: torch.stack([it[k] for it in items]).to(accelerator.device) for k in items[0]}
            with accelerator.accumulate(transformer), accelerator.autocast():
                loss = st_diff_loss(transformer, batch, config.noise, gen)
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(transformer.parameters(), config.max_grad_norm)
                optim.step()
                sched.step()
                optim.zero_grad(set_to_none=True)
            total += float(loss.detach()) / config.grad_accum
        losses.append(total)
        if not math.isfinite(total):
            raise ValueError(f"training loss became {total} at step {step + 1}; lower the learning rate")
        if accelerator.is_main_process and ((step + 1) % config.log_every == 0 or step + 1 == config.max_steps):
            with open(log_path, "a", encoding="utf-8") as f:
                f.write(f"{step + 1},{total:.8g},{sched.get_last_lr()[0]:.6g}\n")
        if (step + 1) % config.save_every == 0 or step + 1 == config.max_steps:
            save_checkpoint(accelerator, transformer, config.output_dir, step + 1)
        if callback is not None:
            callback(step + 1, total)


def save_checkpoint(accelerator, transformer, output_dir: str, step: int) -> str:
    """``checkpoint-{step}/``: accelerate state (optimiser, scheduler, RNG) and ``transformer.safetensors``
    (diffusers keys, config in the metadata) that ``models.load_transformer`` reads as it is."""
    from ..models import save_transformer_file

    folder = os.path.join(output_dir, f"checkpoint-{step}")
    tmp = folder + ".tmp"
    accelerator.wait_for_everyone()
    accelerator.save_state(os.path.join(tmp, "accelerate"))
    if accelerator.is_main_process:
        save_transformer_file(accelerator.unwrap_model(transformer), os.path.join(tmp, "transformer.safetensors"),
                              layout="diffusers", embed_config=True)
        if os.path.isdir(folder):
            import shutil

            shutil.rmtree(folder)
        os.replace(tmp, folder)
    return folder


def latest_checkpoint_step(output_dir: str) -> int:
    if not os.path.isdir(output_dir):
        return 0
    steps = [int(d.split("-")[1]) for d in os.listdir(output_dir)
             if d.startswith("checkpoint-") and d.split("-")[1].isdigit()]
    return max(steps, default=0)


__all__ = ["TrainConfig", "train", "st_diff_loss", "warmup_lambda", "latest_checkpoint_step"]
