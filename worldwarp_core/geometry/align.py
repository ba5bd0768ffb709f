"""Alignment: make estimated geometry consistent with the cache and the requested cameras.

* Metric depth: one scale ``s`` with ``s·pred ≈ ref`` (the cache's rendered depth where its
  alpha is high).
* Relative depth (affine-invariant inverse depth, e.g. Depth Anything): ``a·pred + b ≈ 1/ref``.
* Poses: Umeyama's Sim(3) (Umeyama, TPAMI 1991) ``dst ≈ s·R·src + t`` on camera centres; depth
  is rescaled by the same ``s``.

Every fit is robust, in two stages: a least-trimmed-squares start (refit on the half of the
samples with the smallest residuals until it settles), then iteratively re-weighted least
squares with Tukey's biweight (``c = 4.685·σ``, σ from the median absolute deviation), which
gives gross outliers (wrong depth at silhouettes, moving things, hallucinated regions) zero
weight. Each fit returns the robust residual so callers can report how well the geometry agreed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Fit:
    scale: float
    shift: float
    residual: float  # robust (median absolute) residual of the fit, in the fitted quantity's units
    inliers: float  # fraction of weight-carrying samples with full Huber weight


def _samples(pred: Tensor, ref: Tensor, weight: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {list(pred.shape)} and reference {list(ref.shape)} must have the same shape")
    w = torch.ones_like(pred, dtype=torch.float64) if weight is None else weight.double()
    ok = torch.isfinite(pred) & torch.isfinite(ref) & (ref > 0) & (w > 0)
    if int(ok.sum()) < 3:
        raise ValueError("depth alignment has fewer than 3 valid overlapping pixels: the new frames do not "
                         "overlap the cache (no high-alpha pixels with finite depth)")
    return pred.double()[ok], ref.double()[ok], w[ok]


def _robust_weights(r: Tensor) -> tuple[Tensor, Tensor]:
    """Tukey biweight of residuals ``r`` and the inlier mask (|r| within ``c``)."""
    sigma = 1.4826 * r.abs().median()
    c = 4.685 * sigma.clamp_min(1e-12)
    u = (r / c).clamp(-1, 1)
    inl = r.abs() < c
    return torch.where(inl, (1 - u * u) ** 2, torch.zeros_like(r)), inl


def _weighted_solve(A: Tensor, y: Tensor, w: Tensor) -> Tensor:
    AtW = A.T * w
    return torch.linalg.solve(AtW @ A + 1e-300 * torch.eye(A.shape[1], dtype=A.dtype), AtW @ y)


def _robust_linear(A: Tensor, y: Tensor, w0: Tensor, iterations: int) -> tuple[Tensor, Tensor]:
    """``x`` minimising a robust loss of ``A x - y`` (LTS start, then Tukey IRLS); returns (x, inliers)."""
    x = _weighted_solve(A, y, w0)
    for _ in range(10):  # least-trimmed-squares concentration steps
        r = (A @ x - y).abs()
        keep = r <= r.median()
        x_new = _weighted_solve(A, y, w0 * keep)
        if torch.allclose(x_new, x, rtol=1e-12, atol=0):
            break
        x = x_new
    inl = torch.ones_like(y, dtype=torch.bool)
    for _ in range(iterations):
        hw, inl = _robust_weights(A @ x - y)
        x = _weighted_solve(A, y, w0 * hw)
    return x, inl


def fit_depth_scale(pred: Tensor, ref: Tensor, weight: Tensor | None = None, iterations: int = 20) -> Fit:
    """Robust ``s`` with ``s·pred ≈ ref`` (metric depth against the cache)."""
    p, r, w0 = _samples(pred, ref, weight)
    if float(p.abs().max()) < 1e-12:
        raise ValueError("predicted depth is zero everywhere; cannot fit a scale")
    x, inl = _robust_linear(p[:, None], r, w0, iterations)
    s = float(x[0])
    return Fit(s, 0.0, float((s * p - r)[inl].abs().median()), float(inl.double().mean()))


def fit_inverse_depth_affine(pred_inv: Tensor, ref_depth: Tensor, weight: Tensor | None = None,
                             iterations: int = 20) -> Fit:
    """Robust ``(a, b)`` with ``a·pred + b ≈ 1/ref`` (relative inverse depth against the cache)."""
    p, r, w0 = _samples(pred_inv, ref_depth, weight)
    target = 1.0 / r
    if float(p.max() - p.min()) < 1e-9 * max(1.0, float(p.abs().max())):
        raise ValueError("predicted inverse depth is constant: scale and shift cannot be told apart")
    A = torch.stack([p, torch.ones_like(p)], dim=1)
    x, inl = _robust_linear(A, target, w0, iterations)
    a, b = float(x[0]), float(x[1])
    return Fit(a, b, float((a * p + b - target)[inl].abs().median()), float(inl.double().mean()))


def umeyama_sim3(src: Tensor, dst: Tensor, weight: Tensor | None = None, with_scale: bool = True
                 ) -> tuple[float, Tensor, Tensor]:
    """``(s, R [3,3], t [3])`` minimising ``Σ w ||dst - (s R src + t)||²`` (Umeyama 1991), float64."""
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3:
        raise ValueError(f"Sim(3) needs matching [N, 3] point sets, got {list(src.shape)} and {list(dst.shape)}")
    if src.shape[0] < 3:
        raise ValueError(f"Sim(3) alignment needs at least 3 cameras, got {src.shape[0]}")
    x, y = src.double(), dst.double()
    w = torch.ones(x.shape[0], dtype=torch.float64) if weight is None else weight.double()
    w = w / w.sum()
    mx, my = (w[:, None] * x).sum(0), (w[:, None] * y).sum(0)
    xc, yc = x - mx, y - my
    var_x = float((w * (xc * xc).sum(1)).sum())
    if var_x < 1e-12:
        raise ValueError("Sim(3) alignment: the source cameras all sit at one point; scale and rotation are undefined")
    cov = (yc * w[:, None]).T @ xc
    U, S, Vt = torch.linalg.svd(cov)
    D = torch.eye(3, dtype=torch.float64)
    if float(torch.linalg.det(U) * torch.linalg.det(Vt)) < 0:
        D[2, 2] = -1.0
    R = U @ D @ Vt
    s = float((S * D.diagonal()).sum() / var_x) if with_scale else 1.0
    t = my - s * R @ mx
    return s, R, t


def robust_sim3(src: Tensor, dst: Tensor, iterations: int = 10) -> tuple[float, Tensor, Tensor, float]:
    """Umeyama with the robust re-weighting of the point residuals; returns ``(s, R, t, residual)``."""
    s, R, t = umeyama_sim3(src, dst)
    for _ in range(iterations):
        r = (dst.double() - (s * src.double() @ R.T + t)).norm(dim=1)
        hw, _ = _robust_weights(r)
        if float(hw.sum()) < 3:
            break
        s, R, t = umeyama_sim3(src, dst, hw)
    res = float((dst.double() - (s * src.double() @ R.T + t)).norm(dim=1).median())
    return s, R, t, res


def rotation_mean(Rs: Tensor) -> Tensor:
    """Chordal L2 mean of rotations ``[N, 3, 3]``: the rotation nearest to their sum (SVD projection)."""
    U, _, Vt = torch.linalg.svd(Rs.double().sum(0))
    D = torch.eye(3, dtype=torch.float64)
    D[2, 2] = float(torch.sign(torch.linalg.det(U @ Vt)))
    return U @ D @ Vt


def _scale_translation(x: Tensor, y: Tensor, w: Tensor) -> tuple[float, Tensor] | None:
    """Weighted least squares ``y ≈ s·x + t`` over points ``[N, 3]``; None when the weighted ``x`` do
    not spread (the scale is then undefined)."""
    xm = (w[:, None] * x).sum(0) / w.sum()
    ym = (w[:, None] * y).sum(0) / w.sum()
    xc, yc = x - xm, y - ym
    den = float((w * (xc * xc).sum(1)).sum())
    if den <= 1e-18 * max(1.0, float((x * x).sum())):
        return None
    s = float((w * (xc * yc).sum(1)).sum()) / den
    return s, ym - s * xm


def sim3_from_cameras(src_c2w: Tensor, dst_c2w: Tensor, scale: float | None = None,
                      iterations: int = 10) -> tuple[float, Tensor, Tensor, float]:
    """Sim(3) mapping camera poses ``src`` onto ``dst`` (both ``[N, 4, 4]`` camera-to-world).

    The rotation comes from the cameras' orientations (chordal mean of ``R_dst R_srcᵀ``), so a
    straight path (collinear centres, where centres alone leave a rotation free) still aligns;
    scale and translation then come from the centres, robustly per camera (LTS start on the
    better half, then Tukey IRLS on the distances). Needs two cameras at distinct positions for
    the scale; with ``scale`` given, one camera is enough.
    """
    if src_c2w.shape != dst_c2w.shape or src_c2w.shape[0] < (1 if scale is not None else 2):
        raise ValueError(f"pose alignment needs at least 2 matching cameras, got {list(src_c2w.shape)}")
    R = rotation_mean(dst_c2w[:, :3, :3].double() @ src_c2w[:, :3, :3].double().transpose(1, 2))
    x = src_c2w[:, :3, 3].double() @ R.T
    y = dst_c2w[:, :3, 3].double()
    if scale is not None:
        s = float(scale)
        t = (y - s * x).median(dim=0).values  # per coordinate, robust to outlying cameras
    else:
        fit = _scale_translation(x, y, torch.ones(x.shape[0], dtype=torch.float64))
        if fit is None:
            raise ValueError("pose alignment: the estimated cameras all sit at one point; the scale is undefined")
        s, t = fit
        for _ in range(10):  # least-trimmed squares on the cameras closest to the fit
            r = (y - (s * x + t)).norm(dim=1)
            keep = (r <= r.median()).double()
            new = _scale_translation(x, y, keep) if keep.sum() >= 2 else None
            if new is None or (abs(new[0] - s) <= 1e-12 * abs(s) and torch.allclose(new[1], t, rtol=0, atol=1e-12)):
                break
            s, t = new
        for _ in range(iterations):
            hw, _ = _robust_weights((y - (s * x + t)).norm(dim=1))
            new = _scale_translation(x, y, hw) if float(hw.sum()) > 0 else None
            if new is None:
                break
            s, t = new
    res = float((y - (s * x + t)).norm(dim=1).median())
    return s, R, t, res
