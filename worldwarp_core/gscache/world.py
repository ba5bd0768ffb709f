"""A persistent world (beyond the paper): every chunk's optimised Gaussians merged into one scene.

The per-chunk cache that renders hints stays as in the paper (built from the latest history
only). Alongside, each chunk's Gaussians are merged into a world model: a voxel hash of size
``voxel_size`` keeps one Gaussian per cell, the newer chunk winning (it saw the region most
recently and the paper trusts the latest history most), so revisiting a place does not pile up
duplicates. The whole explored scene exports as one ``.ply``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .gaussians import Gaussians, voxel_dedup


@dataclass
class WorldModel:
    voxel_size: float
    gaussians: Gaussians | None = None
    chunks: int = 0
    sizes: list[int] = field(default_factory=list)
    born: torch.Tensor | None = None  # [N] the chunk that added each Gaussian (world.ply's "chunk" property)

    def add(self, g: Gaussians, chunk: int | None = None) -> "WorldModel":
        """Merge chunk ``chunk``'s Gaussians (default: the next after those added); in each voxel the
        newest Gaussian is kept."""
        g = g.detach().to("cpu")
        chunk = self.chunks if chunk is None else chunk
        new_born = torch.full((len(g),), chunk, dtype=torch.long)
        if self.gaussians is None:
            merged, born = g, new_born
            stamp = torch.zeros(len(g))
        else:
            old_born = self.born if self.born is not None else torch.zeros(len(self.gaussians), dtype=torch.long)
            merged, born = Gaussians.cat([self.gaussians, g]), torch.cat([old_born, new_born])
            stamp = torch.cat([torch.zeros(len(self.gaussians)), torch.ones(len(g))])
        keep = voxel_dedup(merged.means, self.voxel_size, priority=stamp)
        self.gaussians, self.born = merged.select(keep), born[keep]
        self.chunks = max(self.chunks, chunk + 1)
        self.sizes.append(len(self.gaussians))
        return self

    def remembered(self, before: int) -> Gaussians | None:
        """The Gaussians added by chunks before ``before`` that are still in the world (None: none)."""
        if self.gaussians is None or self.born is None:
            return None
        keep = torch.nonzero(self.born < before).flatten()
        return self.gaussians.select(keep) if len(keep) else None


# --------------------------------------------------------------------------- memory: hints from the world
MEMORY_MODES = ("online", "world")


def frustum_select(g: Gaussians, cameras, margin: float = 0.1, near: float = 1e-3,
                   block: int = 1 << 18) -> torch.Tensor:
    """Indices of the Gaussians whose centres project into at least one of ``cameras`` (in front of
    it, within the image widened by ``margin`` of its size on each side, for footprints that reach
    in from outside). Checked in blocks of ``block`` Gaussians, so memory stays
    ``block x views`` whatever the world's size."""
    if g is None or not len(g):
        return torch.zeros(0, dtype=torch.long)
    cams = cameras.to("cpu", dtype=torch.float32)
    W, H = cams.width, cams.height
    keep = []
    for i in range(0, len(g), block):
        uv, z = cams.project(g.means[i:i + block].float())
        inside = ((z > near) & (uv[..., 0] >= -margin * W) & (uv[..., 0] <= (1 + margin) * W)
                  & (uv[..., 1] >= -margin * H) & (uv[..., 1] <= (1 + margin) * H))
        keep.append(torch.nonzero(inside.any(dim=0)).flatten() + i)
    return torch.cat(keep)


def render_in_frusta(g: Gaussians | None, cameras, config, callback=None):
    """``g`` rendered at ``cameras`` with only its Gaussians in their frusta (``frustum_select``), so
    the cost follows what the views see, not the size of ``g``. Validity is the alpha rule alone
    (no single source depth to compare with). Returns ``(WarpResult, selected)``: the hints (empty
    masks when nothing projects there) and how many Gaussians were rendered. ``callback(done,
    total)`` after each few views."""
    from ..warp import WarpResult
    from .cache import GeometryCache, render_hints_in_steps

    V, H, W = len(cameras), cameras.height, cameras.width
    index = frustum_select(g, cameras)
    if not len(index):
        return WarpResult(torch.zeros(V, H, W, 3), torch.zeros(V, H, W, dtype=torch.bool), torch.zeros(V, H, W)), 0
    cache = GeometryCache("3dgs", config, gaussians=g.select(index))
    return render_hints_in_steps(cache, cameras, depth_tolerance=None, callback=callback), len(index)


def remembered_hints(world: WorldModel | None, cameras, config, callback=None):
    """Hints of the persistent world at ``cameras`` (``render_in_frusta`` of its Gaussians):
    ``(WarpResult, selected)``."""
    return render_in_frusta(world.gaussians if world else None, cameras, config, callback)


def composite_hints(online, remembered):
    """The online cache's hints where they are valid (the latest history, as the paper trusts it),
    the world's where only the world has something: ``(WarpResult, remembered [V, H, W] bool)``,
    ``remembered`` marking the pixels the memory filled."""
    from ..warp import WarpResult

    filled = remembered.masks.cpu() & ~online.masks.cpu()
    images = torch.where(filled[..., None], remembered.images.cpu(), online.images.cpu())
    depths = online.depths.cpu()
    if depths.numel():
        depths = torch.where(filled, remembered.depths.cpu(), depths)
    return WarpResult(images, online.masks.cpu() | filled, depths), filled
