"""Geometry estimation (depth, intrinsics, poses of the history frames) and alignment (paper supp. §7)."""

from . import external, monocular, ttt3r  # noqa: F401 - registers the backends
from .align import Fit, fit_depth_scale, fit_inverse_depth_affine, robust_sim3, sim3_from_cameras, umeyama_sim3
from .base import (
    DEFAULT_GEOMETRY_BATCH,
    ESTIMATORS,
    GEOMETRY_DTYPES,
    GEOMETRY_INPUTS,
    GeometryDtype,
    GeometryEstimator,
    GeometryResult,
    estimate_in_batches,
    geometry_dtype,
    list_estimators,
    load_estimator,
    resolve_geometry_input,
)
from .pipeline_align import (
    GEOMETRY_ALIGNMENTS,
    HISTORY_INTRINSICS,
    POSE_SOURCES,
    GeometryAlignment,
    PoseSource,
    align_depth_to_cache,
    align_poses,
    reanchor_at_last,
    resolve_pose_source,
)

__all__ = [
    "DEFAULT_GEOMETRY_BATCH", "ESTIMATORS", "Fit", "GEOMETRY_ALIGNMENTS", "GEOMETRY_DTYPES", "GEOMETRY_INPUTS",
    "GeometryAlignment", "GeometryDtype", "GeometryEstimator", "GeometryResult", "HISTORY_INTRINSICS", "POSE_SOURCES",
    "PoseSource", "align_depth_to_cache", "align_poses", "reanchor_at_last", "resolve_geometry_input",
    "resolve_pose_source",
    "estimate_in_batches", "fit_depth_scale", "fit_inverse_depth_affine", "geometry_dtype", "list_estimators", "load_estimator", "robust_sim3",
    "sim3_from_cameras", "umeyama_sim3",
]
