"""Geometry estimation (depth, intrinsics, poses of the history frames) and alignment (paper supp. §7)."""

from . import external, monocular, ttt3r  # noqa: F401 - registers the backends
from .align import Fit, fit_depth_scale, fit_inverse_depth_affine, robust_sim3, sim3_from_cameras, umeyama_sim3
from .base import ESTIMATORS, GeometryEstimator, GeometryResult, list_estimators, load_estimator
from .pipeline_align import POSE_SOURCES, PoseSource, align_depth_to_cache, align_poses, resolve_pose_source

__all__ = [
    "ESTIMATORS", "Fit", "GeometryEstimator", "GeometryResult", "POSE_SOURCES", "PoseSource", "align_depth_to_cache",
    "align_poses", "resolve_pose_source",
    "fit_depth_scale", "fit_inverse_depth_affine", "list_estimators", "load_estimator", "robust_sim3",
    "sim3_from_cameras", "umeyama_sim3",
]
