"""Geometric validity of rendered hints: is a rendered pixel seen, at its depth, by a source frame?

The official WorldWarp inference marks a hint pixel valid only where the 3DGS render is opaque
AND its rendered depth agrees with what a source (history) frame observed (the official
``GS3DWarper._compute_geometric_validity_mask``, depth threshold 0.1, one source suffices):

    for every target pixel (x, y), rendered expected depth d:
        X = c2w_target · (d · K_target⁻¹ (x, y, 1))           (the pixel's 3D point)
        for every source frame s:  (u, v, z) = projection of X in s
            seen_s = 0 ≤ u < W, 0 ≤ v < H, z > 0, D_s > 0 and |z - D_s| / (D_s + 1e-8) < tolerance,
            with D_s = depth_s[floor(v), floor(u)]
        valid = seen by at least one source

As in the official code, the pixel is unprojected at its integer coordinates ``(x, y)`` with the
same intrinsics the renderer uses (a half-pixel from the centre in our convention; far inside
the 10 % depth tolerance) and the source depth is read at ``floor``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..cameras import Cameras

OFFICIAL_DEPTH_TOLERANCE = 0.1


def geometric_validity(
    depth: Tensor,
    cameras: Cameras,
    source_depths: Tensor,
    source_cameras: Cameras,
    tolerance: float = OFFICIAL_DEPTH_TOLERANCE,
) -> Tensor:
    """Bool ``[V, H, W]``: rendered depth ``[V, H, W]`` at ``cameras`` consistent with a source depth ``[S, H, W]``.

    ``source_cameras`` must have the same image size as ``cameras`` (the sources are the frames
    the cache was built from).
    """
    V, H, W = depth.shape
    if (cameras.width, cameras.height) != (W, H) or len(cameras) != V:
        raise ValueError(f"rendered depth {list(depth.shape)} does not match {len(cameras)} cameras of "
                         f"{cameras.width}x{cameras.height}")
    if source_depths.ndim != 3 or tuple(source_depths.shape[1:]) != (source_cameras.height, source_cameras.width) \
            or source_depths.shape[0] != len(source_cameras):
        raise ValueError(f"source depths {list(source_depths.shape)} do not match {len(source_cameras)} source "
                         f"cameras of {source_cameras.width}x{source_cameras.height}")
    if not tolerance > 0:
        raise ValueError(f"depth tolerance must be positive, got {tolerance}")
    Hs, Ws = source_depths.shape[1:]
    dev = depth.device
    cams = cameras.to(dev, torch.float32)
    src = source_cameras.to(dev, torch.float32)
    sd = source_depths.to(dev, torch.float32)
    yy, xx = torch.meshgrid(torch.arange(H, device=dev, dtype=torch.float32),
                            torch.arange(W, device=dev, dtype=torch.float32), indexing="ij")
    pix = torch.stack([xx, yy, torch.ones_like(xx)], dim=-1).reshape(-1, 3)  # [HW, 3], integer coordinates
    out = torch.zeros(V, H * W, dtype=torch.bool, device=dev)
    for v in range(V):
        rays = pix @ torch.linalg.inv(cams.Ks[v]).T  # [HW, 3]
        pts_cam = rays * depth[v].reshape(-1, 1).float()
        c2w = cams.c2w[v]
        pts = pts_cam @ c2w[:3, :3].T + c2w[:3, 3]  # world
        for s in range(len(src)):
            R, t = src.viewmats[s, :3, :3], src.viewmats[s, :3, 3]
            p = pts @ R.T + t  # source camera
            z = p[:, 2]
            uvw = p @ src.Ks[s].T
            u = uvw[:, 0] / (uvw[:, 2] + 1e-8)
            w = uvw[:, 1] / (uvw[:, 2] + 1e-8)
            inside = (u >= 0) & (u < Ws) & (w >= 0) & (w < Hs) & (z > 0)
            d = sd[s][w.long().clamp(0, Hs - 1), u.long().clamp(0, Ws - 1)]
            consistent = (z - d).abs() / (d + 1e-8) < tolerance
            out[v] |= inside & consistent & (d > 0)
    return out.reshape(V, H, W)


__all__ = ["OFFICIAL_DEPTH_TOLERANCE", "geometric_validity"]
