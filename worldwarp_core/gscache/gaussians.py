"""Gaussians, their hyper-parameters and their initialisation from history frames (paper §4.2).

Two initialisations (``GSConfig.init``), both unprojecting pixels with their depth (eq. 2-3,
``warp.unproject``), with colour from the pixel (the SH DC term; higher bands start at zero and
learn view-dependent colour when ``sh_degree`` > 0), opacity ``init_opacity`` and identity rotation:

* ``per-pixel`` -- one Gaussian per (strided) valid pixel, with an isotropic scale equal to the
  pixel's footprint at its depth (``depth / focal``, times ``scale_factor``).
* ``official`` -- the official code's (``GS3DWarper._initialize_splats_from_depth`` of
  ``qbhan/WorldWarp``): per frame, at most ``init_max_points`` pixels drawn at random (seeded by
  ``seed``) among those with depth > ``init_min_depth``, and an isotropic scale
  ``sqrt(mean squared distance to the 3 nearest other points)`` (simple-knn's ``distCUDA2``, the
  squared distance clamped at 1e-7), times ``scale_factor``; colours are the frames quantised to
  8 bits (truncated, as the official ``astype(uint8)``). A cloud of over ``init_max_total`` points
  (official: a million) is first voxel-merged as Open3D's ``voxel_down_sample`` does it in the
  official ``downsample_with_open3d``: points and colours averaged per voxel, the voxel edge starting
  at the cloud's smallest extent / 100 and growing by 10 % until it fits (at most 20 tries).

Optional voxel de-duplication keeps one Gaussian per voxel so that overlapping history frames do
not multiply points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..cameras import Cameras
from ..warp import unproject

SH_C0 = 0.28209479177387814  # band-0 spherical-harmonic constant: rgb = SH_C0 * dc + 0.5

Backend = Literal["auto", "torch", "gsplat"]
DepthLoss = Literal["none", "depth", "disparity"]
PositionLrScaling = Literal["extent", "absolute"]
InitMode = Literal["per-pixel", "official"]
HintColour = Literal["unpremultiplied", "premultiplied"]
DEPTH_LOSSES: tuple[str, ...] = ("none", "depth", "disparity")
POSITION_LR_SCALINGS: tuple[str, ...] = ("extent", "absolute")
INIT_MODES: tuple[str, ...] = ("per-pixel", "official")
HINT_COLOURS: tuple[str, ...] = ("unpremultiplied", "premultiplied")
KNN_NEIGHBOURS = 3  # simple-knn's distCUDA2: the mean over the 3 nearest neighbours
KNN_MIN_SQ_DIST = 1e-7  # the official code's clamp on that mean squared distance


@dataclass(frozen=True)
class GSConfig:
    iterations: int = 500  # paper supp. §7
    lr: float = 1.6e-3  # paper supp. §7: position learning rate (see position_lr_scaling)
    views_per_step: int = 1
    ssim_weight: float = 0.2  # L = (1-λ) L1 + λ (1 - SSIM), as 3DGS
    sh_degree: int = 3  # the official code's; 0-3 measured alike (docs/CACHE.md)
    init_opacity: float = 0.8  # measured better than the official 0.9999 (docs/CACHE.md)
    scale_factor: float = 1.0  # initial std = scale_factor * depth / focal
    stride: int = 1
    voxel_size: float | None = None  # in scene units; None = no de-duplication
    alpha_threshold: float = 0.5  # hint validity: alpha > threshold (official code: 0.5)
    backend: Backend = "auto"
    seed: int = 0
    max_radius: int = 16  # torch rasteriser: footprint cap in pixels (see rasterize.py)
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacity: float = 5e-2
    lr_sh: float = 2.5e-3  # the DC term
    lr_sh_rest: float = 2.5e-3 / 20  # higher SH bands (official code and 3DGS: the DC rate / 20)
    # L1 between the rendered expected depth and the input depth where that is > 0, weighted and
    # added to the photometric loss; "disparity" compares 1/depth (the official code: weight 1e-2)
    # (the relative depth term at 0.3 measured best; disparity at the official 0.01 changed nothing: docs/CACHE.md)
    depth_loss: DepthLoss = "depth"
    depth_loss_weight: float = 0.3
    # "extent": the position rate is lr x the scene extent (median camera-to-point distance), the
    # same setting whatever the depth units; "absolute": lr as it is (the official code; measured
    # within noise of "extent" on scenes a few units deep, docs/CACHE.md)
    position_lr_scaling: PositionLrScaling = "extent"
    # "per-pixel": one Gaussian per pixel, std depth / focal; "official": the official code's random
    # subset past a depth cut with nearest-neighbour scales (module docstring; docs/CACHE.md compares them)
    init: InitMode = "per-pixel"
    init_max_points: int = 50000  # official init: at most this many points per frame (the official value)
    init_min_depth: float = 0.8  # official init: pixels with depth <= this are skipped (the official demo's cut)
    init_max_total: int = 1_000_000  # official init: larger clouds are voxel-merged below this (the official value)
    # hint colour where valid: the render divided by its alpha ("unpremultiplied"), or composited over
    # black as the rasteriser accumulates it ("premultiplied", the official code's)
    hints: HintColour = "unpremultiplied"

    def __post_init__(self) -> None:
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        if self.views_per_step < 1:
            raise ValueError(f"views_per_step must be >= 1, got {self.views_per_step}")
        if not 0.0 < self.init_opacity < 1.0:
            raise ValueError(f"init_opacity must be in (0, 1), got {self.init_opacity}")
        if not 0.0 <= self.alpha_threshold < 1.0:
            raise ValueError(f"alpha_threshold must be in [0, 1), got {self.alpha_threshold}")
        if self.backend not in ("auto", "torch", "gsplat"):
            raise ValueError(f"backend must be 'auto', 'torch' or 'gsplat', got {self.backend!r}")
        if self.sh_degree not in (0, 1, 2, 3):
            raise ValueError(f"sh_degree must be 0-3, got {self.sh_degree}")
        if self.depth_loss not in DEPTH_LOSSES:
            raise ValueError(f"depth_loss must be one of {DEPTH_LOSSES}, got {self.depth_loss!r}")
        if not (self.depth_loss_weight >= 0 and math.isfinite(self.depth_loss_weight)):
            raise ValueError(f"depth_loss_weight must be a finite number >= 0 (official: 0.01), "
                             f"got {self.depth_loss_weight}")
        if self.position_lr_scaling not in POSITION_LR_SCALINGS:
            raise ValueError(f"position_lr_scaling must be one of {POSITION_LR_SCALINGS}, "
                             f"got {self.position_lr_scaling!r}")
        if self.init not in INIT_MODES:
            raise ValueError(f"init must be one of {INIT_MODES} (the official code's: 'official'), got {self.init!r}")
        if isinstance(self.init_max_points, bool) or not isinstance(self.init_max_points, int) \
                or self.init_max_points < 1:
            raise ValueError(f"init_max_points must be an integer >= 1 (points per frame; official: 50000), "
                             f"got {self.init_max_points!r}")
        if isinstance(self.init_max_total, bool) or not isinstance(self.init_max_total, int) \
                or self.init_max_total < 2:
            raise ValueError(f"init_max_total must be an integer >= 2 (points in all; official: 1000000), "
                             f"got {self.init_max_total!r}")
        if not (self.init_min_depth >= 0 and math.isfinite(self.init_min_depth)):
            raise ValueError(f"init_min_depth must be a finite number >= 0 (official demo: 0.8; 0 keeps every "
                             f"pixel with depth > 0), got {self.init_min_depth}")
        if self.hints not in HINT_COLOURS:
            raise ValueError(f"hints must be one of {HINT_COLOURS} (the official code's: 'premultiplied'), "
                             f"got {self.hints!r}")
        for name in ("lr", "lr_scales", "lr_quats", "lr_opacity", "lr_sh", "lr_sh_rest"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")


@dataclass
class Gaussians:
    means: Tensor  # [N, 3] world positions
    quats: Tensor  # [N, 4] rotations, wxyz (not necessarily normalised)
    log_scales: Tensor  # [N, 3] log of per-axis std
    opacity_logits: Tensor  # [N]
    sh: Tensor  # [N, K, 3] SH coefficients, K = (degree + 1)^2; sh[:, 0] is the DC term

    def __post_init__(self) -> None:
        N = self.means.shape[0]
        shapes = {"means": (N, 3), "quats": (N, 4), "log_scales": (N, 3), "opacity_logits": (N,)}
        for name, shape in shapes.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f"Gaussians.{name} must be {list(shape)}, got {list(getattr(self, name).shape)}")
        if self.sh.ndim != 3 or self.sh.shape[0] != N or self.sh.shape[2] != 3:
            raise ValueError(f"Gaussians.sh must be [N, K, 3], got {list(self.sh.shape)}")

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def scales(self) -> Tensor:
        return self.log_scales.exp()

    @property
    def opacities(self) -> Tensor:
        return torch.sigmoid(self.opacity_logits)

    @property
    def colors(self) -> Tensor:  # [N, 3] view-independent colour (DC term)
        return (self.sh[:, 0] * SH_C0 + 0.5).clamp_min(0.0)

    @property
    def sh_degree(self) -> int:
        return int(round(self.sh.shape[1] ** 0.5)) - 1

    def colors_from(self, center: Tensor) -> Tensor:
        """``[N, 3]`` colour seen from the camera centre ``[3]``: all SH bands (``sh_colors``)."""
        if self.sh.shape[1] == 1:
            return self.colors
        return sh_colors(self.sh, self.means - center)

    def detach(self) -> "Gaussians":
        return Gaussians(*(t.detach().clone() for t in (self.means, self.quats, self.log_scales,
                                                          self.opacity_logits, self.sh)))

    def to(self, device=None, dtype=None) -> "Gaussians":
        return Gaussians(*(t.to(device=device, dtype=dtype) for t in (self.means, self.quats, self.log_scales,
                                                                        self.opacity_logits, self.sh)))

    def select(self, index: Tensor) -> "Gaussians":
        return Gaussians(self.means[index], self.quats[index], self.log_scales[index],
                         self.opacity_logits[index], self.sh[index])

    @staticmethod
    def cat(parts: list["Gaussians"]) -> "Gaussians":
        return Gaussians(*(torch.cat([getattr(p, f) for p in parts]) for f in
                           ("means", "quats", "log_scales", "opacity_logits", "sh")))


# real spherical-harmonic basis up to degree 3, as 3DGS (Kerbl et al. 2023) evaluates it
# (constants of the standard real SH; the sign convention is the one 3DGS viewers expect)
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
         1.445305721320277, -0.5900435899266435)


def sh_colors(sh: Tensor, dirs: Tensor) -> Tensor:
    """Colour ``[N, 3]`` of SH coefficients ``[N, K, 3]`` (K = (d+1)^2, d <= 3) seen along ``dirs`` ``[N, 3]``
    (from the camera to the Gaussian; normalised here): ``max(0, Σ_k c_k Y_k(dir) + 0.5)``."""
    K = sh.shape[1]
    if K not in (1, 4, 9, 16) or sh.ndim != 3 or sh.shape[2] != 3 or dirs.shape != (sh.shape[0], 3):
        raise ValueError(f"sh must be [N, K, 3] with K in 1, 4, 9, 16 and dirs [N, 3]; got {list(sh.shape)} "
                         f"and {list(dirs.shape)}")
    d = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    x, y, z = (t.unsqueeze(-1) for t in d.unbind(-1))
    out = SH_C0 * sh[:, 0]
    if K > 1:
        out = out - SH_C1 * y * sh[:, 1] + SH_C1 * z * sh[:, 2] - SH_C1 * x * sh[:, 3]
    if K > 4:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out = (out + SH_C2[0] * xy * sh[:, 4] + SH_C2[1] * yz * sh[:, 5] + SH_C2[2] * (2 * zz - xx - yy) * sh[:, 6]
               + SH_C2[3] * xz * sh[:, 7] + SH_C2[4] * (xx - yy) * sh[:, 8])
    if K > 9:
        out = (out + SH_C3[0] * y * (3 * xx - yy) * sh[:, 9] + SH_C3[1] * xy * z * sh[:, 10]
               + SH_C3[2] * y * (4 * zz - xx - yy) * sh[:, 11] + SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * sh[:, 12]
               + SH_C3[4] * x * (4 * zz - xx - yy) * sh[:, 13] + SH_C3[5] * z * (xx - yy) * sh[:, 14]
               + SH_C3[6] * x * (xx - 3 * yy) * sh[:, 15])
    return (out + 0.5).clamp_min(0.0)


def voxel_dedup(points: Tensor, voxel_size: float, priority: Tensor | None = None) -> Tensor:
    """Indices keeping one point per voxel of edge ``voxel_size`` (the highest ``priority``, else the first)."""
    if voxel_size <= 0:
        raise ValueError(f"voxel_size must be positive, got {voxel_size}")
    cells = torch.floor(points / voxel_size).long()
    _, inverse = torch.unique(cells, dim=0, return_inverse=True)
    N = points.shape[0]
    order = torch.arange(N, device=points.device)
    if priority is not None:
        order = torch.argsort(priority, descending=True, stable=True)
    # the first point (in priority order) of each voxel wins
    first = torch.full((int(inverse.max()) + 1,), N, dtype=torch.long, device=points.device)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(N, device=points.device)
    first.scatter_reduce_(0, inverse, rank, reduce="amin")
    return torch.sort(order[first])[0]


def knn_mean_sq_dist(points: Tensor, k: int = KNN_NEIGHBOURS, block: int = 1024, chunk: int = 8192) -> Tensor:
    """``[N]`` mean squared distance of each point of ``points`` ``[N, 3]`` to its ``k`` nearest other
    points (fewer when the cloud has fewer), exactly, in memory bounded by ``block`` x ``chunk``.

    1. An upper bound ``r`` on each point's ``k``-th neighbour distance: the ``k``-th nearest among
       its neighbours along a Morton (Z-order) curve, on which points near in the order are near in
       space.
    2. Every nearer point lies within ``r`` along each axis. The points are cut into stripes along
       the widest axis and ordered along the second widest inside each stripe, so that a block of
       ``block`` consecutive points is compact in both; a block is compared only with the points in
       its box (its lowest ``x - r`` to highest ``x + r`` on both axes), ``chunk`` at a time. Exact
       whatever the cloud: a loose bound only makes a box larger.
    """
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be [N, 3], got {list(points.shape)}")
    N = points.shape[0]
    if N < 2:
        raise ValueError(f"nearest-neighbour scales need at least 2 points, got {N}")
    k_eff = min(k, N - 1)
    # a little slack so that rounding never puts the k-th neighbour outside its box
    r = _morton_bound(points, k_eff).sqrt() * (1 + 1e-5) + 1e-12
    a, b = torch.argsort(points.amax(0) - points.amin(0), descending=True)[:2].tolist()
    order = torch.argsort(points[:, a])  # positions below are in this order
    pts, r = points[order], r[order]
    xs = pts[:, a].contiguous()
    stripes = max(1, math.isqrt(N // block))
    stripe = torch.arange(N, device=points.device) * stripes // N
    # blocks inside each stripe, along the second axis
    key = torch.argsort(pts[:, b])
    key = key[torch.argsort(stripe[key], stable=True)]
    ends = torch.bincount(stripe, minlength=stripes).cumsum(0).tolist()
    starts = [s for begin, end in zip([0] + ends[:-1], ends) for s in range(begin, end, block)]
    out = torch.empty(N, dtype=points.dtype, device=points.device)
    for s in starts:
        rows_idx = key[s:min(s + block, next(e for e in ends if e > s))]
        rows, rr = pts[rows_idx], r[rows_idx]
        lo = int(torch.searchsorted(xs, (rows[:, a] - rr).min().reshape(1)))
        hi = int(torch.searchsorted(xs, (rows[:, a] + rr).max().reshape(1), right=True))
        yb = pts[lo:hi, b]
        cand = lo + torch.nonzero((yb >= (rows[:, b] - rr).min()) & (yb <= (rows[:, b] + rr).max())).squeeze(1)
        best = torch.full((rows_idx.numel(), k_eff), float("inf"), dtype=points.dtype, device=points.device)
        for c in range(0, cand.numel(), chunk):
            part = _k_smallest(rows, rows_idx, pts[cand[c:c + chunk]], cand[c:c + chunk], k_eff)
            best = torch.cat([best, part], dim=1).topk(k_eff, dim=1, largest=False).values
        out[rows_idx] = best.mean(dim=1)
    result = torch.empty_like(out)
    result[order] = out
    return result


def _morton_bound(points: Tensor, k: int, window: int = 8, bits: int = 16,
                  shifts: tuple[float, ...] = (0.0, 1 / 3, 2 / 3)) -> Tensor:
    """``[N]`` an upper bound on each point's squared ``k``-th neighbour distance: the ``k``-th
    smallest over its ``window`` neighbours on each side along a Morton curve, the least over curves
    with the grid shifted by ``shifts`` of the cloud's extent (a curve's big jumps fall elsewhere on
    each; ``inf`` if fewer neighbours)."""
    N = points.shape[0]
    lo = points.amin(0)
    unit = (points - lo) / (points.amax(0) - lo).clamp_min(1e-30)  # [N, 3] in 0..1
    window = max(window, k)
    bound = torch.full((N,), float("inf"), dtype=points.dtype, device=points.device)
    for shift in shifts:
        q = ((unit + shift) / (1 + shift) * (2**bits - 1)).long()  # [N, 3] cells
        code = torch.zeros(N, dtype=torch.long, device=points.device)
        for bit in range(bits):  # interleave the cells' bits: x0 y0 z0 x1 y1 z1 ...
            for a in range(3):
                code |= ((q[:, a] >> bit) & 1) << (3 * bit + a)
        order = torch.argsort(code)
        p = points[order]
        near = torch.full((N, 2 * window), float("inf"), dtype=points.dtype, device=points.device)
        for j in range(1, min(window, N - 1) + 1):
            d2 = (p[j:] - p[:-j]).square().sum(dim=1)
            near[:-j, j - 1] = d2  # the j-th point after
            near[j:, window + j - 1] = d2  # the j-th point before
        on_curve = torch.empty(N, dtype=points.dtype, device=points.device)
        on_curve[order] = near.topk(k, dim=1, largest=False).values[:, -1]
        bound = torch.minimum(bound, on_curve)
    return bound


def _k_smallest(rows: Tensor, rows_idx: Tensor, cols: Tensor, cols_idx: Tensor, k: int) -> Tensor:
    """``[B, k]`` the ``k`` smallest squared distances from ``rows`` ``[B, 3]`` (at positions ``rows_idx``
    ``[B]``) to ``cols`` ``[C, 3]`` (at positions ``cols_idx`` ``[C]``), a row's own point excluded;
    ``inf`` where there are fewer."""
    d2 = torch.cdist(rows, cols, compute_mode="donot_use_mm_for_euclid_dist").square()  # exact, not |a|²+|b|²-2ab
    own = rows_idx.unsqueeze(1) == cols_idx.unsqueeze(0)
    d2 = d2.masked_fill(own, float("inf"))
    if d2.shape[1] < k:
        d2 = torch.cat([d2, d2.new_full((d2.shape[0], k - d2.shape[1]), float("inf"))], dim=1)
    return d2.topk(k, dim=1, largest=False).values


def official_init_mask(depths: Tensor, config: GSConfig, keep: Tensor) -> Tensor:
    """``[F, H, W]`` the pixels the official init takes: of ``keep`` (valid, masked, strided), those with
    depth > ``init_min_depth``, at most ``init_max_points`` per frame drawn without replacement by a
    generator seeded with ``config.seed`` (frame after frame, so the draw is deterministic)."""
    cand = keep & (depths > config.init_min_depth)
    gen = torch.Generator().manual_seed(config.seed)
    out = torch.zeros_like(cand)
    for f in range(depths.shape[0]):
        idx = torch.nonzero(cand[f].reshape(-1)).squeeze(1)
        if idx.numel() > config.init_max_points:
            pick = torch.randperm(idx.numel(), generator=gen)[: config.init_max_points]
            idx = idx[pick.to(idx.device)]
        out[f].view(-1)[idx] = True
    return out


def voxel_merge(points: Tensor, colors: Tensor, target: int, tries: int = 20) -> tuple[Tensor, Tensor]:
    """``points`` ``[N, 3]`` and ``colors`` ``[N, 3]`` averaged per voxel until at most ``target`` remain:
    the official init's reduction of a large cloud (Open3D ``voxel_down_sample``: voxels anchored half
    an edge below the cloud's minimum, the edge starting at its smallest extent / 100, times 1.1 per
    try, at most ``tries`` tries; more than ``target`` may remain after the last, as there).
    Unchanged when already at most ``target``. The merged points come in voxel order."""
    if points.shape[0] <= target:
        return points, colors
    lo, hi = points.amin(0), points.amax(0)
    edge = float((hi - lo).min()) / 100.0
    if not edge > 0:
        raise ValueError(f"the cloud of {points.shape[0]} points is flat along an axis (extent {(hi - lo).tolist()}), "
                         f"so its voxel merge has no size; raise init_max_total above {points.shape[0]} or use "
                         "init 'per-pixel'")
    out = (points, colors)
    for _ in range(tries):
        if out[0].shape[0] <= target:
            break
        cells = torch.floor((points - (lo - edge / 2)) / edge).long()
        _, inverse, counts = torch.unique(cells, dim=0, return_inverse=True, return_counts=True)
        out = tuple(torch.zeros(counts.numel(), 3, dtype=x.dtype, device=x.device).index_add_(0, inverse, x)
                    / counts.unsqueeze(1).to(x.dtype) for x in (points, colors))
        if out[0].shape[0] > target:
            edge *= 1.1
    return out


def init_gaussians(images: Tensor, depths: Tensor, cameras: Cameras, config: GSConfig = GSConfig(),
                   masks: Tensor | None = None) -> Gaussians:
    """Gaussians from history frames ``[F, H, W, 3]`` with depth ``[F, H, W]`` (module docstring)."""
    if depths.ndim != 3:
        raise ValueError(f"depths must be [F, H, W], got {list(depths.shape)}")
    finite = torch.isfinite(depths) & (depths > 0)
    if not bool(finite.any()):
        raise ValueError("every depth value is NaN, infinite or <= 0: there is no point to build a cache from; "
                         "check the geometry model's output")
    if not bool(torch.isfinite(depths).all()):
        raise ValueError(f"depth has {int((~torch.isfinite(depths)).sum())} NaN/inf values; mask them out "
                         "(pass masks) or fix the geometry estimate before building the cache")
    # the pixels kept, in unproject's order (frame, row, column)
    keep = finite.clone()
    if masks is not None:
        keep &= masks.bool()
    if config.stride > 1:
        sub = torch.zeros_like(keep)
        sub[:, :: config.stride, :: config.stride] = True
        keep &= sub
    if config.init == "official":
        keep = official_init_mask(depths, config, keep)
        if int(keep.sum()) < 2:
            raise ValueError(f"the official init keeps {int(keep.sum())} pixel(s) with depth > init_min_depth "
                             f"{config.init_min_depth} (depth ranges {float(depths[finite].min()):.4g} to "
                             f"{float(depths[finite].max()):.4g}); lower init_min_depth or use init 'per-pixel'")
    cloud = unproject(images, depths, cameras, masks=keep)
    if len(cloud) == 0:
        raise ValueError("the history frames give an empty point cloud (all pixels masked or depth <= 0)")
    dtype, device = cloud.points.dtype, cloud.points.device
    points, colors = cloud.points, cloud.colors
    if config.init == "official":
        colors = torch.floor(colors.clamp(0, 1) * 255) / 255  # the frames as 8-bit images (astype truncates)
        points, colors = voxel_merge(points, colors, config.init_max_total)
        std = knn_mean_sq_dist(points).clamp_min(KNN_MIN_SQ_DIST).sqrt() * config.scale_factor
    else:
        # pixel footprint at each point: depth / focal (per frame, same selection order as unproject)
        focal = cameras.to(depths.device, dtype).Ks[:, 0, 0].view(-1, 1, 1).expand_as(depths)[keep]
        std = depths.to(dtype)[keep] / focal * config.scale_factor * config.stride
    N = points.shape[0]
    quats = torch.zeros(N, 4, dtype=dtype, device=device)
    quats[:, 0] = 1.0
    K = (config.sh_degree + 1) ** 2
    sh = torch.zeros(N, K, 3, dtype=dtype, device=device)
    sh[:, 0] = (colors - 0.5) / SH_C0
    logit = torch.logit(torch.tensor(config.init_opacity, dtype=dtype))
    g = Gaussians(points, quats, std.log().unsqueeze(1).expand(N, 3).clone(),
                  logit.expand(N).clone().to(device), sh)
    if config.voxel_size is not None:
        g = g.select(voxel_dedup(g.means, config.voxel_size))
    return g


__all__ = ["DEPTH_LOSSES", "HINT_COLOURS", "INIT_MODES", "POSITION_LR_SCALINGS", "DepthLoss", "GSConfig", "Gaussians",
           "HintColour", "InitMode", "PositionLrScaling", "SH_C0", "init_gaussians", "knn_mean_sq_dist",
           "official_init_mask", "sh_colors", "voxel_dedup", "voxel_merge"]
