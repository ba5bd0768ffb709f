"""The online 3D geometric cache (paper §4.2, Table 3) and its hint rendering.

Modes (Table 3): ``3dgs`` -- Gaussians initialised from the history and optimised (the method);
``pointcloud`` -- the raw RGB point cloud of the history, forward-warped with the z-buffer
renderer (no optimisation); ``none`` -- no cache: every hint pixel is invalid, so ST-Diff
generates the whole chunk from noise (the context frames still anchor it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..cameras import Cameras
from ..warp import PointCloud, WarpResult, forward_warp, unproject
from .gaussians import Gaussians, GSConfig, init_gaussians
from .optimize import ProgressCallback, optimize_gaussians
from .rasterize import render_gaussians
from .validity import OFFICIAL_DEPTH_TOLERANCE, geometric_validity

CacheMode = Literal["3dgs", "pointcloud", "none"]
CACHE_MODES: tuple[str, ...] = ("3dgs", "pointcloud", "none")


@dataclass
class GeometryCache:
    mode: CacheMode
    config: GSConfig
    gaussians: Gaussians | None = None
    cloud: PointCloud | None = None
    source_depths: Tensor | None = None  # [S, H, W] depth of the frames the cache was built from
    source_cameras: Cameras | None = None  # their cameras

    def render_hints(self, cameras: Cameras, depth_tolerance: float | None = OFFICIAL_DEPTH_TOLERANCE) -> WarpResult:
        """Hint images ``[V,H,W,3]``, validity masks ``[V,H,W]`` and depth ``[V,H,W]``.

        A ``3dgs`` hint's colour is the render composited over black divided by its alpha, or
        (``config.hints`` "premultiplied", the official code's) the composite itself: the two differ
        where alpha < 1, the premultiplied one darker by the factor alpha.

        A hint pixel is valid where alpha > threshold and, with ``depth_tolerance`` (the official
        rule, 0.1), its rendered depth agrees with a source frame's depth within that relative
        error (``validity.geometric_validity``); ``None`` keeps alpha only.
        """
        V, H, W = len(cameras), cameras.height, cameras.width
        if self.mode == "none":
            return WarpResult(torch.zeros(V, H, W, 3), torch.zeros(V, H, W, dtype=torch.bool), torch.zeros(V, H, W))
        if self.mode == "pointcloud":
            hints = forward_warp(self.cloud, cameras, radius=1)
            if depth_tolerance is not None and self.source_depths is not None:
                ok = geometric_validity(hints.depths, cameras, self.source_depths.to(hints.depths.device),
                                        self.source_cameras, depth_tolerance)
                hints = WarpResult(hints.images, hints.masks & ok, torch.where(ok, hints.depths,
                                                                                  torch.zeros_like(hints.depths)))
            return hints
        with torch.no_grad():
            out = render_gaussians(self.gaussians, cameras, backend=self.config.backend,
                                   max_radius=self.config.max_radius)
        masks = out.alpha > self.config.alpha_threshold
        if depth_tolerance is not None and self.source_depths is not None:
            masks = masks & geometric_validity(out.depth, cameras, self.source_depths.to(out.depth.device),
                                               self.source_cameras, depth_tolerance)
        # a valid hint shows the composited colour (over black: the render's background is 0), divided by
        # its alpha unless config.hints is "premultiplied" (the official code's); invalid pixels are zeroed
        # so they read as holes
        rgb = out.rgb if self.config.hints == "premultiplied" else out.rgb / out.alpha.clamp_min(1e-6).unsqueeze(-1)
        rgb = torch.where(masks.unsqueeze(-1), rgb, torch.zeros_like(out.rgb))
        return WarpResult(rgb.clamp(0, 1), masks, torch.where(masks, out.depth, torch.zeros_like(out.depth)))

    def render(self, cameras: Cameras):
        """Raw render (rgb, alpha, depth) of a ``3dgs`` cache, e.g. for depth alignment."""
        if self.gaussians is None:
            raise ValueError(f"a '{self.mode}' cache has no Gaussians to render")
        with torch.no_grad():
            return render_gaussians(self.gaussians, cameras, backend=self.config.backend,
                                    max_radius=self.config.max_radius)


def build_cache(
    images: Tensor,
    depths: Tensor,
    cameras: Cameras,
    mode: CacheMode = "3dgs",
    config: GSConfig = GSConfig(),
    callback: ProgressCallback | None = None,
    masks: Tensor | None = None,
) -> GeometryCache:
    """Build the cache from history frames ``[F,H,W,3]``, depth ``[F,H,W]`` and their cameras."""
    if mode not in CACHE_MODES:
        raise ValueError(f"unknown cache mode {mode!r}; choose one of {CACHE_MODES}")
    if mode == "none":
        return GeometryCache(mode, config)
    if mode == "pointcloud":
        if not bool(torch.isfinite(depths).all()):
            raise ValueError("depth has NaN/inf values; fix the geometry estimate before building the cache")
        cloud = unproject(images, depths, cameras, masks=masks, stride=config.stride)
        if len(cloud) == 0:
            raise ValueError("the history frames give an empty point cloud (all pixels masked or depth <= 0)")
        return GeometryCache(mode, config, cloud=cloud, source_depths=depths.detach().float().cpu(),
                             source_cameras=cameras.to("cpu"))
    device = images.device
    if config.backend == "gsplat" or (config.backend == "auto" and torch.cuda.is_available() and device.type == "cuda"):
        device = torch.device("cuda")
    g = init_gaussians(images.to(device), depths.to(device), cameras.to(device), config, masks)
    # the depth loss targets the input depth where it is known (and not masked out)
    target_depth = depths if masks is None else torch.where(masks.bool(), depths, torch.zeros_like(depths))
    g = optimize_gaussians(g, images.to(device), cameras.to(device), config, callback, depths=target_depth.to(device))
    return GeometryCache(mode, config, gaussians=g, source_depths=depths.detach().float().cpu(),
                         source_cameras=cameras.to("cpu"))


def check_overlap(cache: GeometryCache, cameras: Cameras, min_fraction: float = 0.01) -> Tensor:
    """Fraction of valid hint pixels per view ``[V]``; raise if no view sees the cache at all."""
    hints = cache.render_hints(cameras)
    frac = hints.masks.float().mean(dim=(1, 2))
    if cache.mode != "none" and bool((frac < min_fraction).all()):
        raise ValueError(f"none of the {len(cameras)} cameras sees the cache (valid hint pixels < {min_fraction:.0%} "
                         "in every view): the cameras do not overlap the history; check the trajectory's scale")
    return frac




def render_hints_in_steps(cache: GeometryCache, cameras: Cameras, views_per_step: int = 4,
                          callback: Callable[[int, int], None] | None = None,
                          depth_tolerance: float | None = OFFICIAL_DEPTH_TOLERANCE,
                          keep_depths: bool = True) -> WarpResult:
    """``cache.render_hints(cameras, depth_tolerance)`` a few views at a time; ``callback(views done, views)``
    after each step (it may raise to interrupt). Views render independently, so the result equals one call's.

    Memory is bounded: the outputs are allocated once (views x pixels at most ``inputs.MAX_HINT_PIXELS``,
    refused before any work) and each step's render is written into them and dropped, so the peak is
    the outputs plus one step. ``keep_depths=False`` (callers that use only images and masks) returns
    an empty ``depths [0]``.
    """
    from ..inputs import MAX_HINT_PIXELS

    V, H, W = len(cameras), cameras.height, cameras.width
    if V * H * W > MAX_HINT_PIXELS:
        raise ValueError(f"{V} views at {W}x{H} are {V * H * W:,} hint pixels; one render is at most "
                         f"{MAX_HINT_PIXELS:,} (e.g. {MAX_HINT_PIXELS // (H * W):,} views at this size): render the "
                         "path a chunk at a time")
    images = torch.zeros(V, H, W, 3)
    masks = torch.zeros(V, H, W, dtype=torch.bool)
    depths = torch.zeros(V, H, W) if keep_depths else torch.zeros(0)
    for i in range(0, V, views_per_step):
        part = cache.render_hints(cameras[i:i + views_per_step], depth_tolerance)
        j = i + part.images.shape[0]
        images[i:j] = part.images
        masks[i:j] = part.masks
        if keep_depths:
            depths[i:j] = part.depths
        del part
        if callback is not None:
            callback(min(i + views_per_step, V), V)
    return WarpResult(images, masks, depths)


__all__ = ["CACHE_MODES", "CacheMode", "GeometryCache", "build_cache", "check_overlap", "render_hints_in_steps"]
