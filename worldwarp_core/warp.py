"""Unprojection (paper eq. 2-3) and point-cloud forward warping with a z-buffer.

Training builds its hints by "one-to-all" warping: one source frame, unprojected with its depth
into an RGB point cloud, rendered into every frame of the clip with a fixed-radius point
renderer (paper §4.1). The inference cache mode ``pointcloud`` (Table 3) uses the same renderer.

The renderer is vectorised torch (scatter-reduce into a flat z-buffer), identical on CPU and
CUDA: each point lands on the pixel containing its projection, where the nearest point wins (ties:
the lower point index, so results are deterministic). With a splat radius ``r`` a point also
covers the ``(2r+1)^2`` square around that pixel, but only pixels no point hits directly; among
the splats reaching such a hole the nearest wins again.
Camera convention: ``worldwarp_core.cameras`` (OpenCV, pixel centres at +0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .cameras import Cameras


@dataclass
class PointCloud:
    points: Tensor  # [N, 3] world coordinates
    colors: Tensor  # [N, 3] 0..1

    def __post_init__(self) -> None:
        if self.points.ndim != 2 or self.points.shape[1] != 3:
            raise ValueError(f"points must be [N, 3], got {list(self.points.shape)}")
        if self.colors.shape != self.points.shape:
            raise ValueError(f"colors must match points [N, 3]; got {list(self.colors.shape)} for {list(self.points.shape)}")

    def __len__(self) -> int:
        return int(self.points.shape[0])


@dataclass
class WarpResult:
    images: Tensor  # [V, H, W, 3] warped colours (background where invalid)
    masks: Tensor  # [V, H, W] bool, True where some point landed
    depths: Tensor  # [V, H, W] camera-space z of the winning point, 0 where invalid


def pixel_rays(cameras: Cameras) -> Tensor:
    """Camera-space rays through pixel centres with z = 1: ``[F, H, W, 3]``."""
    H, W = cameras.height, cameras.width
    dtype = cameras.Ks.dtype
    v, u = torch.meshgrid(
        torch.arange(H, dtype=dtype, device=cameras.device) + 0.5,
        torch.arange(W, dtype=dtype, device=cameras.device) + 0.5,
        indexing="ij",
    )
    pix = torch.stack([u, v, torch.ones_like(u)], dim=-1)  # [H, W, 3]
    Kinv = torch.linalg.inv(cameras.Ks)  # [F, 3, 3]
    return torch.einsum("fij,hwj->fhwi", Kinv, pix)


def unproject(
    images: Tensor,
    depths: Tensor,
    cameras: Cameras,
    masks: Tensor | None = None,
    stride: int = 1,
) -> PointCloud:
    """Lift pixels to a world-space RGB point cloud (paper eq. 2-3).

    Args:
        images: ``[F, H, W, 3]`` (or ``[H, W, 3]`` for one frame) colours in 0..1.
        depths: ``[F, H, W]`` camera-space z (OpenCV); non-finite or non-positive depth is skipped.
        cameras: ``F`` cameras of size ``W`` x ``H``.
        masks: optional ``[F, H, W]`` pixels to keep.
        stride: keep every ``stride``-th pixel in each direction.
    """
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if depths.ndim == 2:
        depths = depths.unsqueeze(0)
    F, H, W = depths.shape
    if images.shape != (F, H, W, 3):
        raise ValueError(f"images must be [F, H, W, 3] matching depths {list(depths.shape)}, got {list(images.shape)}")
    if len(cameras) != F or (cameras.height, cameras.width) != (H, W):
        raise ValueError(
            f"cameras are {len(cameras)} x {cameras.width}x{cameras.height} but depths are {F} x {W}x{H}; "
            "give one camera per frame at the depth's size (Cameras.resize)"
        )
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    dtype = depths.dtype if depths.is_floating_point() else torch.float32
    cams = cameras.to(depths.device, dtype)
    rays = pixel_rays(cams)  # [F, H, W, 3]
    pts_cam = rays * depths.to(dtype).unsqueeze(-1)  # eq. (2): X_cam = D(u) K^-1 [u, 1]
    c2w = cams.c2w
    pts = torch.einsum("fij,fhwj->fhwi", c2w[:, :3, :3], pts_cam) + c2w[:, None, None, :3, 3]  # eq. (3)
    keep = torch.isfinite(depths) & (depths > 0)
    if masks is not None:
        if masks.shape != depths.shape:
            raise ValueError(f"masks must be [F, H, W] like depths, got {list(masks.shape)}")
        keep = keep & masks.bool()
    if stride > 1:
        sub = torch.zeros_like(keep)
        sub[:, ::stride, ::stride] = True
        keep = keep & sub
    return PointCloud(pts[keep], images.to(dtype)[keep])


def forward_warp(
    cloud: PointCloud,
    cameras: Cameras,
    radius: int = 0,
    near: float = 1e-4,
    background: float = 0.0,
    views_per_batch: int = 8,
) -> WarpResult:
    """Render a point cloud into ``V`` cameras with a z-buffer (nearest point wins).

    Args:
        cloud: ``N`` world points with colours.
        cameras: ``V`` target cameras (one image size).
        radius: fixed splat radius in pixels (0 = one pixel per point; the paper's training-time
            renderer uses a fixed radius). Splats only fill pixels no point hits directly.
        near: points with camera z below this are culled.
        views_per_batch: views rendered together (bounds memory at ``N * (2r+1)^2 * views``).

    Returns:
        ``WarpResult`` with images ``[V, H, W, 3]``, masks ``[V, H, W]`` and depths ``[V, H, W]``.
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0 pixels, got {radius}")
    V, H, W = len(cameras), cameras.height, cameras.width
    device, dtype = cloud.points.device, cloud.points.dtype
    images = torch.full((V, H, W, 3), float(background), dtype=dtype, device=device)
    depths = torch.zeros((V, H, W), dtype=dtype, device=device)
    masks = torch.zeros((V, H, W), dtype=torch.bool, device=device)
    if len(cloud) == 0:
        return WarpResult(images, masks, depths)
    cams = cameras.to(device, dtype)
    empty = torch.iinfo(torch.int64).max
    pid = torch.arange(len(cloud), device=device)
    for v0 in range(0, V, views_per_batch):
        sub = cams[v0:v0 + views_per_batch]
        uv, z = sub.project(cloud.points)  # [Vb, N, 2], [Vb, N]
        Vb = z.shape[0]
        u = torch.floor(uv[..., 0])
        v = torch.floor(uv[..., 1])
        ok = torch.isfinite(z) & (z > near) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
        view = torch.arange(Vb, device=device).unsqueeze(-1)
        # Culled points go to one spare slot past the image instead of being filtered out: boolean
        # indexing (nonzero) was the most expensive step of the whole warp.
        flat = torch.where(ok, (view * H + v.clamp(0, H - 1).long()) * W + u.clamp(0, W - 1).long(), Vb * H * W)
        # One key orders by depth, then by point index: the bit pattern of a positive float32
        # increases with its value, so (depth bits << 32 | index) under amin is "nearest wins,
        # lowest index on ties" in a single scatter.
        zf = z.float().clamp_min(0)
        key = (zf.view(torch.int32).long() << 32) | pid.unsqueeze(0)
        buf = torch.full((Vb * H * W + 1,), empty, dtype=torch.long, device=device)
        buf.scatter_reduce_(0, flat.reshape(-1), key.reshape(-1), reduce="amin")
        buf = buf[:-1]
        buf = buf.view(Vb, H, W)
        if radius > 0:
            # A point also covers the (2r+1)^2 square around its pixel, but only pixels that no
            # point hits directly: a splat fills holes and never replaces a direct hit (replacing
            # them blurs every edge by r pixels). Among the splats reaching a hole the nearest wins;
            # that is the nearest among the per-pixel winners within r: a min filter on the keys.
            padded = torch.nn.functional.pad(buf, (radius, radius, radius, radius), value=empty)
            spread = padded[:, 0:H, 0:W]
            for dy in range(2 * radius + 1):
                for dx in range(2 * radius + 1):
                    if dy or dx:
                        spread = torch.minimum(spread, padded[:, dy:dy + H, dx:dx + W])
            buf = torch.where(buf != empty, buf, spread)
        hit = buf != empty
        winner = torch.where(hit, buf & 0xFFFFFFFF, 0)
        colors = cloud.colors[winner.reshape(-1)].reshape(Vb, H, W, 3)
        images[v0:v0 + Vb] = torch.where(hit.unsqueeze(-1), colors, images[v0:v0 + Vb])
        zbits = (buf >> 32).to(torch.int32).view(torch.float32).to(dtype)
        depths[v0:v0 + Vb] = torch.where(hit, zbits, depths[v0:v0 + Vb])
        masks[v0:v0 + Vb] = hit
    return WarpResult(images, masks, depths)


def one_to_all_warp(
    image: Tensor,
    depth: Tensor,
    source: Cameras,
    targets: Cameras,
    radius: int = 1,
) -> WarpResult:
    """Warp one source frame ``[H, W, 3]`` with depth ``[H, W]`` into every target camera (paper §4.1)."""
    if len(source) != 1:
        raise ValueError(f"one_to_all_warp takes one source camera, got {len(source)}")
    cloud = unproject(image.unsqueeze(0), depth.unsqueeze(0), source)
    return forward_warp(cloud, targets, radius=radius)
