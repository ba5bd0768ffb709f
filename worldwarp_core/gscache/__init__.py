"""The online 3D Gaussian Splatting cache (paper §4.2): build, optimise, render hints, export."""

from .cache import CACHE_MODES, CacheMode, GeometryCache, build_cache, check_overlap
from .gaussians import (
    DEPTH_LOSSES,
    HINT_COLOURS,
    INIT_MODES,
    POSITION_LR_SCALINGS,
    SH_C0,
    Gaussians,
    GSConfig,
    init_gaussians,
    knn_mean_sq_dist,
    sh_colors,
    voxel_dedup,
)
from .optimize import depth_loss, optimize_gaussians, photometric_loss, scene_extent
from .ply import from_comfy_splat, load_ply, save_ply, to_comfy_splat
from .rasterize import RenderResult, rasterize_gsplat, rasterize_torch, render_gaussians
from .world import WorldModel

__all__ = [
    "CACHE_MODES", "DEPTH_LOSSES", "HINT_COLOURS", "INIT_MODES", "POSITION_LR_SCALINGS", "CacheMode", "GSConfig", "Gaussians", "GeometryCache",
    "RenderResult", "SH_C0", "WorldModel", "build_cache", "check_overlap", "depth_loss", "from_comfy_splat",
    "init_gaussians", "knn_mean_sq_dist", "load_ply", "optimize_gaussians",
    "photometric_loss", "rasterize_gsplat", "rasterize_torch", "render_gaussians", "save_ply", "scene_extent",
    "sh_colors", "to_comfy_splat", "voxel_dedup",
]
