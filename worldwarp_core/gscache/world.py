"""A persistent world (beyond the paper): every chunk's optimised Gaussians merged into one scene.

The per-chunk cache that renders hints stays as in the paper (built from the latest history
only). Alongside, each chunk's Gaussians are merged into a world model: a voxel hash of size
``voxel_size`` keeps one Gaussian per cell, by default the newer chunk winning (it saw the region
most recently and the paper trusts the latest history most), so revisiting a place does not pile
up duplicates; ``keep="oldest"`` lets the first chunk that saw a cell keep it instead, so the
remembered scene stays the one the run started in (what drift control aligns a revisit to).
The whole explored scene exports as one ``.ply``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from .gaussians import Gaussians, voxel_dedup

WorldKeep = Literal["newest", "oldest"]
WORLD_KEEPS: tuple[str, ...] = ("newest", "oldest")


@dataclass
class WorldModel:
    voxel_size: float
    gaussians: Gaussians | None = None
    chunks: int = 0
    sizes: list[int] = field(default_factory=list)
    born: torch.Tensor | None = None  # [N] the chunk that added each Gaussian (world.ply's "chunk" property)
    keep: WorldKeep = "newest"  # which chunk's Gaussian a voxel keeps when a later chunk sees it again

    def __post_init__(self) -> None:
        if self.keep not in WORLD_KEEPS:
            raise ValueError(f"world_keep must be one of {', '.join(WORLD_KEEPS)}, got {self.keep!r}")

    def add(self, g: Gaussians, chunk: int | None = None) -> "WorldModel":
        """Merge chunk ``chunk``'s Gaussians (default: the next after those added); in each voxel the
        newest Gaussian is kept (``keep="oldest"``: the one there first)."""
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
            if self.keep == "oldest":
                stamp = 1 - stamp
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


# --------------------------------------------------------------------------- memory: past frames as training views
RETRIEVAL_POINTS = 4096  # target points the past cameras are scored on (the cost per past camera)
RETRIEVAL_MIN_GAIN = 0.01  # a view that sees less of what is still unseen than this share adds nothing


def target_points(hints, cameras, max_points: int = RETRIEVAL_POINTS) -> tuple[torch.Tensor, torch.Tensor]:
    """What the chunk's cameras will see, as points: the valid pixels of ``hints`` (``[V, H, W]``
    depths and masks, e.g. the world rendered at the chunk's ``cameras``) lifted to the world, at
    most ``max_points`` of them (evenly spaced). Returns ``(points [P, 3], distance [P])``, the
    distance of each point from the camera that saw it."""
    from ..warp import pixel_rays

    cams = cameras.to("cpu", dtype=torch.float32)
    depths = hints.depths.float().cpu()
    keep = hints.masks.cpu().bool() & torch.isfinite(depths) & (depths > 0)  # [V, H, W]
    if not bool(keep.any()):
        return torch.zeros(0, 3), torch.zeros(0)
    pts_cam = pixel_rays(cams) * depths.unsqueeze(-1)  # [V, H, W, 3] eq. (2)
    c2w = cams.c2w
    pts = torch.einsum("vij,vhwj->vhwi", c2w[:, :3, :3], pts_cam) + c2w[:, None, None, :3, 3]  # eq. (3)
    dist = pts_cam.norm(dim=-1)
    points, dist = pts[keep], dist[keep]
    if len(points) > max_points:
        pick = torch.linspace(0, len(points) - 1, max_points).round().long()
        points, dist = points[pick], dist[pick]
    return points, dist


def view_weights(points: torch.Tensor, distance: torch.Tensor, cameras, near: float = 1e-3) -> torch.Tensor:
    """How well each of ``cameras`` sees each of ``points [P, 3]``: ``[M, P]`` in 0..1. A camera sees
    a point that projects into its image in front of it, the better the closer its distance to the
    point is to ``distance [P]`` (the target camera's: from as far away, the same resolution);
    weight min/max of the two distances. No occlusion test."""
    if points.ndim != 2 or points.shape[-1] != 3 or distance.shape != points.shape[:1]:
        raise ValueError(f"points must be [P, 3] with distance [P], got {list(points.shape)} and "
                         f"{list(distance.shape)}")
    cams = cameras.to("cpu", dtype=torch.float32)
    uv, z = cams.project(points.float())  # [M, P, 2], [M, P]
    W, H = cams.width, cams.height
    inside = (z > near) & (uv[..., 0] >= 0) & (uv[..., 0] <= W) & (uv[..., 1] >= 0) & (uv[..., 1] <= H)
    d = (points.float()[None] - cams.centers.float()[:, None]).norm(dim=-1)  # [M, P]
    t = distance.float()[None].clamp_min(near)
    return inside.float() * torch.minimum(d, t) / torch.maximum(d, t).clamp_min(near)


def retrieve_views(points: torch.Tensor, distance: torch.Tensor, cameras, n: int, given=None,
                   min_gain: float = RETRIEVAL_MIN_GAIN) -> torch.Tensor:
    """Indices ``[R]`` (R <= n, best first) of the ``cameras`` that best see ``points [P, 3]``
    (``view_weights``), beyond what the ``given`` cameras (the views the cache trains on anyway)
    see. Views are picked greedily, each for what it adds to the points seen poorly so far (a
    second view of the same pixels adds nothing), and picking stops when the best adds less than
    ``min_gain`` of the points. The cost is ``cameras x points``."""
    if n < 1 or not len(points) or not len(cameras):
        return torch.zeros(0, dtype=torch.long)
    sees = view_weights(points, distance, cameras)
    unseen = torch.ones(len(points))
    if given is not None and len(given):
        unseen = (1 - view_weights(points, distance, given)).prod(dim=0)
    picked: list[int] = []
    for _ in range(min(n, len(cameras))):
        gain = (sees * unseen).mean(dim=1)  # [M]
        if picked:
            gain[picked] = -1.0
        best = int(gain.argmax())
        if float(gain[best]) < min_gain:
            break
        picked.append(best)
        unseen = unseen * (1 - sees[best])
    return torch.tensor(picked, dtype=torch.long)
