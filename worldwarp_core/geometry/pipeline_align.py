"""Putting an estimate into the cache's frame: depth scale (and shift) and the pose source."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from ..cameras import Cameras
from .align import Fit, fit_depth_scale, fit_inverse_depth_affine, sim3_from_cameras
from .base import GeometryResult

PoseSource = Literal["requested", "estimated"]
POSE_SOURCES: tuple[str, ...] = ("auto", "estimated", "requested")
# how estimated geometry enters the requested world: "sim3" -- a robust Sim(3) of the estimated cameras onto
# the requested ones, depth fitted to the previous cache (the pack's); "official" -- the estimate re-anchored
# rigidly at the last history frame's requested pose, TTT3R's raw depth scale (the official code's)
GeometryAlignment = Literal["sim3", "official"]
GEOMETRY_ALIGNMENTS: tuple[str, ...] = ("sim3", "official")


def check_alignment(alignment: str) -> None:
    if alignment not in GEOMETRY_ALIGNMENTS:
        raise ValueError(f"geometry_alignment must be one of {', '.join(GEOMETRY_ALIGNMENTS)} (sim3: the pack's "
                         f"Sim(3) fit and depth scale; official: re-anchored at the last history frame, raw "
                         f"scale), got {alignment!r}")


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


def reanchor_at_last(est_c2w: Tensor, requested_c2w: Tensor) -> Tensor:
    """Estimated camera-to-world poses ``[F, 4, 4]`` moved rigidly (scale 1) so the last one lands exactly
    on the last requested pose: ``P_req[-1] · P_est[-1]⁻¹ · P_est[i]``.

    This is the official code's frame change (``GS3DWarper.warp_with_validity_mask`` expresses the
    estimated history poses and the requested ones relative to the last history frame,
    ``get_relative_poses(..., T_video - 1)``, and puts them together); placing that shared frame at the
    last requested pose instead keeps the result in the requested path's world, which changes
    nothing that is rendered (every camera and point moves by the same rigid motion)."""
    if est_c2w.shape != requested_c2w.shape or est_c2w.ndim != 3 or est_c2w.shape[-2:] != (4, 4):
        raise ValueError(f"re-anchoring needs matching [F, 4, 4] poses, got {list(est_c2w.shape)} and "
                         f"{list(requested_c2w.shape)}")
    src, dst = est_c2w.double(), requested_c2w.double()
    last = src[-1]
    inv_last = torch.eye(4, dtype=torch.float64)  # rigid inverse, exact for a rotation
    inv_last[:3, :3] = last[:3, :3].T
    inv_last[:3, 3] = -last[:3, :3].T @ last[:3, 3]
    return dst[-1] @ inv_last @ src


def align_poses(result: GeometryResult, requested: Cameras, pose_source: PoseSource = "requested",
                intrinsics: str = "requested", alignment: GeometryAlignment = "sim3"
                ) -> tuple[Cameras, Tensor, float]:
    """Cameras for the history frames and their depth in the requested frame: ``(cameras, depth, residual)``.

    ``requested``: the cameras we asked the generator for are kept (the estimate supplies depth
    only). ``estimated``: the backend's poses mapped by the robust Sim(3) from their centres to the
    requested frame (rotation from the orientations, scale and translation from the centres;
    ``align.sim3_from_cameras``), depth scaled by the same factor (the paper's use of TTT3R). When
    the requested cameras do not move (one frame, a pan) the scale is undefined and kept (s = 1).

    ``alignment`` ``official`` (with ``estimated``): the estimated cameras re-anchored rigidly at the last
    history frame (:func:`reanchor_at_last`: that frame's camera is exactly its requested one, the others
    keep their estimated poses relative to it, scale 1) and the depth unchanged, as the official code;
    the residual is then the median distance between re-anchored and requested camera centres.

    ``intrinsics``: the history cameras take the requested intrinsics (default: the targets have them,
    so a backend whose focal estimate is off does not zoom the hints against the context frames; the
    official code does the same), or the backend's own (``estimated``).
    """
    if intrinsics not in HISTORY_INTRINSICS:
        raise ValueError(f"intrinsics must be one of {HISTORY_INTRINSICS}, got {intrinsics!r}")
    check_alignment(alignment)
    if pose_source == "requested":
        return requested, result.depth, 0.0
    if pose_source != "estimated":
        raise ValueError(f"pose_source must be 'requested' or 'estimated', got {pose_source!r}")
    est = result.cameras
    if len(est) != len(requested):
        raise ValueError(f"{len(est)} estimated cameras for {len(requested)} requested frames")
    if alignment == "official":
        c2w = reanchor_at_last(est.c2w, requested.c2w)
        res = float((c2w[:, :3, 3] - requested.c2w.double()[:, :3, 3]).norm(dim=1).median())
        return _history_cameras(c2w, est, requested, intrinsics), result.depth, res
    src, dst = est.c2w.double(), requested.c2w.double()
    # one camera, or a path that only rotates, fixes no scale: the estimate's is kept (s = 1; depth is
    # brought to the cache's scale by align_depth_to_cache), only rotation and position are aligned
    still = float((dst[:, :3, 3] - dst[:, :3, 3].mean(0)).norm(dim=1).max()) < 1e-9
    s, R, t, res = sim3_from_cameras(src, dst, scale=1.0 if still else None)
    c2w = est.c2w.double().clone()
    c2w[:, :3, :3] = R @ c2w[:, :3, :3]
    c2w[:, :3, 3] = s * c2w[:, :3, 3] @ R.T + t
    return _history_cameras(c2w, est, requested, intrinsics), (result.depth.double() * s).float(), res


def _history_cameras(c2w: Tensor, est: Cameras, requested: Cameras, intrinsics: str) -> Cameras:
    if intrinsics == "requested":
        return Cameras.from_c2w(c2w, requested.Ks.to(est.Ks), requested.width, requested.height)
    return Cameras.from_c2w(c2w, est.Ks, est.width, est.height)


__all__ = ["GEOMETRY_ALIGNMENTS", "HISTORY_INTRINSICS", "POSE_SOURCES", "GeometryAlignment", "PoseSource",
           "align_depth_to_cache", "align_poses", "check_alignment", "reanchor_at_last", "resolve_pose_source"]
