"""Optimising the cache on the history frames (paper §4.2, supp. §7: 500 iterations, lr 1.6e-3).

Loss: the photometric loss of 3DGS, ``(1-λ)·L1 + λ·(1 - SSIM)`` with λ = ``ssim_weight`` (0.2),
plus, with ``depth_loss``, ``depth_loss_weight`` times the L1 between the rendered expected depth
and the input depth relative to the input's mean depth (``"depth"``: the same for any depth units,
metres or relative) or the L1 between their inverses (``"disparity"``, the official code's, weight
1e-2, in the depth model's units) over the pixels whose input depth is > 0; a pixel the render
leaves empty counts as depth (or disparity) 0 there. Adam with one learning rate per parameter group; the higher SH bands
have their own (the DC rate / 20, as 3DGS). The position rate is ``lr`` times the scene extent
(the median distance of the Gaussians from the mean camera centre) with ``position_lr_scaling``
"extent", so the same setting works whatever the depth model's units, or ``lr`` itself with
"absolute" (the official code). Each iteration renders ``views_per_step`` history views drawn by
a seeded generator, so a run is deterministic for a given seed (on the same device and backend).
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


def depth_loss(pred: Tensor, target: Tensor, kind: str) -> Tensor:
    """L1 of rendered depth ``[V, H, W]`` against ``target`` ``[V, H, W]`` where the target is > 0 (finite).

    ``kind`` "disparity" compares ``1/depth`` (0 where the render is empty), "depth" the depths
    divided by the target's mean depth (so the term does not depend on the depth's units).
    """
    valid = torch.isfinite(target) & (target > 0)
    if not bool(valid.any()):
        return pred.sum() * 0.0
    p, t = pred[valid], target[valid]
    if kind == "disparity":
        p = torch.where(p > 0, 1.0 / p.clamp_min(1e-12), torch.zeros_like(p))
        t = 1.0 / t
    elif kind == "depth":
        return (p - t).abs().mean() / t.mean()
    else:
        raise ValueError(f"depth loss kind must be 'depth' or 'disparity', got {kind!r}")
    return (p - t).abs().mean()


def scene_extent(means: Tensor, cameras: Cameras) -> float:
    """Median distance of the Gaussians ``[N, 3]`` from the mean camera centre (the position-lr scale)."""
    centers = cameras.centers.to(means)
    return float((means.detach() - centers.mean(0)).norm(dim=1).median().clamp_min(1e-6))


def optimize_gaussians(
    g: Gaussians,
    images: Tensor,
    cameras: Cameras,
    config: GSConfig = GSConfig(),
    callback: ProgressCallback | None = None,
    depths: Tensor | None = None,
) -> Gaussians:
    """Fit Gaussians to history frames ``[F, H, W, 3]`` seen by ``cameras`` (``F`` views); returns a copy.

    ``depths`` ``[F, H, W]`` (the frames' input depth, <= 0 where unknown) is needed when
    ``config.depth_loss`` is not "none".

    Gradients are switched on here whatever the caller's mode: hosts such as ComfyUI run nodes
    under ``torch.inference_mode()``, whose tensors cannot take part in autograd, so every input
    is copied into an ordinary tensor first.
    """
    with torch.inference_mode(False), torch.enable_grad():
        return _optimize(g, images, cameras, config, callback, depths)


def _optimize(g: Gaussians, images: Tensor, cameras: Cameras, config: GSConfig,
              callback: ProgressCallback | None, depths: Tensor | None) -> Gaussians:
    images = images.clone()
    cameras = Cameras(cameras.viewmats.clone(), cameras.Ks.clone(), cameras.width, cameras.height)
    if images.ndim != 4 or images.shape[0] != len(cameras) or images.shape[1:3] != (cameras.height, cameras.width):
        raise ValueError(f"images {list(images.shape)} must be [F, H, W, 3] matching {len(cameras)} cameras of "
                         f"{cameras.width}x{cameras.height}")
    if len(g) == 0:
        raise ValueError("cannot optimise an empty set of Gaussians")
    use_depth = config.depth_loss != "none" and config.depth_loss_weight > 0
    if use_depth and (depths is None or tuple(depths.shape) != tuple(images.shape[:3])):
        raise ValueError(f"depth_loss {config.depth_loss!r} needs the frames' depth [F, H, W] = "
                         f"{list(images.shape[:3])}, got {None if depths is None else list(depths.shape)}; "
                         "pass depths or set depth_loss='none'")
    params = {name: getattr(g, name).detach().clone().requires_grad_(True)
              for name in ("means", "quats", "log_scales", "opacity_logits")}
    # the DC term and the higher SH bands learn at different rates (3DGS), so they are two tensors
    params["sh0"] = g.sh[:, :1].detach().clone().requires_grad_(True)
    params["shN"] = g.sh[:, 1:].detach().clone().requires_grad_(True)
    lr_means = config.lr * (scene_extent(g.means, cameras) if config.position_lr_scaling == "extent" else 1.0)
    groups = [
        {"params": [params["means"]], "lr": lr_means},
        {"params": [params["quats"]], "lr": config.lr_quats},
        {"params": [params["log_scales"]], "lr": config.lr_scales},
        {"params": [params["opacity_logits"]], "lr": config.lr_opacity},
        {"params": [params["sh0"]], "lr": config.lr_sh},
    ]
    if params["shN"].shape[1] > 0:
        groups.append({"params": [params["shN"]], "lr": config.lr_sh_rest})
    opt = torch.optim.Adam(groups, eps=1e-15)
    gen = torch.Generator().manual_seed(config.seed)
    target = images.to(g.means)
    target_depth = depths.detach().clone().to(g.means) if use_depth else None
    F = len(cameras)
    for it in range(config.iterations):
        views = torch.randperm(F, generator=gen)[: min(config.views_per_step, F)]
        cur = _gaussians(params)
        out = render_gaussians(cur, cameras[views], backend=config.backend, max_radius=config.max_radius)
        loss = photometric_loss(out.rgb, target[views], config.ssim_weight)
        if use_depth:
            loss = loss + config.depth_loss_weight * depth_loss(out.depth, target_depth[views], config.depth_loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if callback is not None:
            callback(it + 1, config.iterations, float(loss.detach()))
    return _gaussians({k: v.detach() for k, v in params.items()})


def _gaussians(params: dict[str, Tensor]) -> Gaussians:
    return Gaussians(params["means"], params["quats"], params["log_scales"], params["opacity_logits"],
                     torch.cat([params["sh0"], params["shN"]], dim=1))
