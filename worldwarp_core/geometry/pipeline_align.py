"""Putting an estimate into the cache's frame: depth scale (and shift) and the pose source."""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from ..cameras import Cameras
from .align import Fit, fit_depth_scale, fit_inverse_depth_affine, sim3_from_cameras
from .base import GeometryResult

PoseSource = Literal["requested", "estimated"]
POSE_SOURCES: tuple[str, ...] = ("auto", "estimated", "requested")


def resolve_pose_source(pose_source: str, estimator) -> PoseSource:
    """``auto`` -> ``estimated`` when the backend estimates poses (TTT3R, Depth Anything 3: the paper's
    use), else ``requested`` (monocular depth models, or no backend); other values pass through."""
    if pose_source not in POSE_SOURCES:
        raise ValueError(f"pose_source must be one of {POSE_SOURCES}, got {pose_source!r}")
    if pose_source != "auto":
        return pose_source  # type: ignore[return-value]
    return "estimated" if bool(getattr(estimator, "estimates_poses", False)) else "requested"


def align_depth_to_cache(result: GeometryResult, ref_depth: Tensor, ref_alpha: Tensor,
                         alpha_threshold: float = 0.5) -> tuple[Tensor, Fit]:
    """Depth ``[F, H, W]`` of ``result`` brought to the scale of the cache's rendered depth.

    Pixels where the cache is opaque (``alpha > threshold``) drive the fit: metric depth gets one
    scale, relative depth a scale and shift in inverse depth (module ``align``).
    """
    weight = (ref_alpha > alpha_threshold).double()
    if result.kind == "relative" and result.inverse is not None:
        fit = fit_inverse_depth_affine(result.inverse, ref_depth, weight)
        inv = fit.scale * result.inverse.double() + fit.shift
        floor = 1.0 / (float(ref_depth[ref_alpha > alpha_threshold].max()) * 10.0)
        depth = 1.0 / inv.clamp_min(floor)
        return depth.float(), fit
    fit = fit_depth_scale(result.depth, ref_depth, weight)
    return (result.depth.double() * fit.scale).float(), fit


HISTORY_INTRINSICS = ("requested", "estimated")


def align_poses(result: GeometryResult, requested: Cameras, pose_source: PoseSource = "requested",
                intrinsics: str = "requested") -> tuple[Cameras, Tensor, float]:
    """Cameras for the history frames and their depth in the requested frame: ``(cameras, depth, residual)``.

    ``requested``: the cameras we asked the generator for are kept (the estimate supplies depth
    only). ``estimated``: the backend's poses mapped by the robust Sim(3) from their centres to the
    requested frame (rotation from the orientations, scale and translation from the centres;
    ``align.sim3_from_cameras``), depth scaled by the same factor (the paper's use of TTT3R). When
    the requested cameras do not move (one frame, a pan) the scale is undefined and kept (s = 1).

    ``intrinsics``: the history cameras take the requested intrinsics (default: the targets have them,
    so a backend whose focal estimate is off does not zoom the hints against the context frames; the
    official code does the same), or the backend's own (``estimated``).
    """
    if intrinsics not in HISTORY_INTRINSICS:
        raise ValueError(f"intrinsics must be one of {HISTORY_INTRINSICS}, got {intrinsics!r}")
    if pose_source == "requested":
        return requested, result.depth, 0.0
    if pose_source != "estimated":
        raise ValueError(f"pose_source must be 'requested' or 'estimated', got {pose_source!r}")
    est = result.cameras
    if len(est) != len(requested):
        raise ValueError(f"{len(est)} estimated cameras for {len(requested)} requested frames")
    src, dst = est.c2w.double(), requested.c2w.double()
    # one camera, or a path that only rotates, fixes no scale: the estimate's is kept (s = 1; depth is
    # brought to the cache's scale by align_depth_to_cache), only rotation and position are aligned
    still = float((dst[:, :3, 3] - dst[:, :3, 3].mean(0)).norm(dim=1).max()) < 1e-9
    s, R, t, res = sim3_from_cameras(src, dst, scale=1.0 if still else None)
    c2w = est.c2w.double().clone()
    c2w[:, :3, :3] = R @ c2w[:, :3, :3]
    c2w[:, :3, 3] = s * c2w[:, :3, 3] @ R.T + t
    if intrinsics == "requested":
        cams = Cameras.from_c2w(c2w, requested.Ks.to(est.Ks), requested.width, requested.height)
    else:
        cams = Cameras.from_c2w(c2w, est.Ks, est.width, est.height)
    return cams, (result.depth.double() * s).float(), res


__all__ = ["HISTORY_INTRINSICS", "POSE_SOURCES", "PoseSource", "align_depth_to_cache", "align_poses", "resolve_pose_source"]
