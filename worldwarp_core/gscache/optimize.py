"""Optimising the cache on the history frames (paper §4.2, supp. §7: 500 iterations, lr 1.6e-3).

Photometric loss of 3DGS: ``(1-λ)·L1 + λ·(1 - SSIM)`` with λ = ``ssim_weight`` (0.2), Adam with
one learning rate per parameter group. The position rate is ``lr`` times the scene extent (the
median camera-to-point distance), so the same setting works whatever the depth model's units.
Each iteration renders ``views_per_step`` history views drawn by a seeded generator, so a run
is deterministic for a given seed (on the same device and backend).
"""

from __future__ import annotations

from collections.abc import Callable

import kornia
import torch
from torch import Tensor

from ..cameras import Cameras
from .gaussians import Gaussians, GSConfig
from .rasterize import render_gaussians

ProgressCallback = Callable[[int, int, float], None]  # (iteration, total, loss)


def photometric_loss(pred: Tensor, target: Tensor, ssim_weight: float) -> Tensor:
    """``(1-λ) L1 + λ (1 - SSIM)`` on ``[V, H, W, 3]`` images."""
    l1 = (pred - target).abs().mean()
    if ssim_weight == 0:
        return l1
    p, t = pred.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2)
    ssim = kornia.metrics.ssim(p, t, window_size=11, max_val=1.0).mean()
    return (1 - ssim_weight) * l1 + ssim_weight * (1 - ssim)


def optimize_gaussians(
    g: Gaussians,
    images: Tensor,
    cameras: Cameras,
    config: GSConfig = GSConfig(),
    callback: ProgressCallback | None = None,
) -> Gaussians:
    """Fit Gaussians to history frames ``[F, H, W, 3]`` seen by ``cameras`` (``F`` views); returns a copy.

    Gradients are switched on here whatever the caller's mode: hosts such as ComfyUI run nodes
    under ``torch.inference_mode()``, whose tensors cannot take part in autograd, so every input
    is copied into an ordinary tensor first.
    """
    with torch.inference_mode(False), torch.enable_grad():
        return _optimize(g, images, cameras, config, callback)


def _optimize(g: Gaussians, images: Tensor, cameras: Cameras, config: GSConfig,
              callback: ProgressCallback | None) -> Gaussians:
    images = images.clone()
    cameras = Cameras(cameras.viewmats.clone(), cameras.Ks.clone(), cameras.width, cameras.height)
    if images.ndim != 4 or images.shape[0] != len(cameras) or images.shape[1:3] != (cameras.height, cameras.width):
        raise ValueError(f"images {list(images.shape)} must be [F, H, W, 3] matching {len(cameras)} cameras of "
                         f"{cameras.width}x{cameras.height}")
    if len(g) == 0:
        raise ValueError("cannot optimise an empty set of Gaussians")
    params = {name: getattr(g, name).detach().clone().requires_grad_(True)
              for name in ("means", "quats", "log_scales", "opacity_logits", "sh")}
    centers = cameras.centers.to(g.means)
    extent = float((g.means.detach() - centers.mean(0)).norm(dim=1).median().clamp_min(1e-6))
    opt = torch.optim.Adam([
        {"params": [params["means"]], "lr": config.lr * extent},
        {"params": [params["quats"]], "lr": config.lr_quats},
        {"params": [params["log_scales"]], "lr": config.lr_scales},
        {"params": [params["opacity_logits"]], "lr": config.lr_opacity},
        {"params": [params["sh"]], "lr": config.lr_sh},
    ], eps=1e-15)
    gen = torch.Generator().manual_seed(config.seed)
    target = images.to(g.means)
    F = len(cameras)
    for it in range(config.iterations):
        views = torch.randperm(F, generator=gen)[: min(config.views_per_step, F)]
        cur = Gaussians(**params)
        out = render_gaussians(cur, cameras[views], backend=config.backend, max_radius=config.max_radius)
        loss = photometric_loss(out.rgb, target[views], config.ssim_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if callback is not None:
            callback(it + 1, config.iterations, float(loss.detach()))
    return Gaussians(**{k: v.detach() for k, v in params.items()})
