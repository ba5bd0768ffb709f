"""3D Gaussian rasterisation: gsplat on CUDA, and a pure-torch reference that runs anywhere.

Both follow 3DGS (Kerbl et al. 2023): means projected with the pinhole of ``Ks``, 3D covariance
``R S S^T R^T`` mapped to 2D with the EWA Jacobian ``J W`` (+0.3 px on the diagonal, the
anti-aliasing low-pass), footprint radius ``3 sqrt(λ_max)``, per pixel front-to-back
compositing ``C = Σ_i c_i α_i Π_{j<i} (1 - α_j)`` with ``α = min(0.99, o·exp(-½ dᵀ Σ⁻¹ d))`` and
contributions below 1/255 skipped, Gaussians ordered by the depth of their means. Depth output
is the alpha-normalised expected depth (gsplat's ``"ED"``). Colour is evaluated from all SH bands
along the camera-to-Gaussian direction (``gaussians.sh_colors``), per view.

The torch reference is written for clarity and CPU tractability, not speed. It differs from
gsplat in two documented ways: a footprint is cut at ``max_radius`` pixels (Gaussians larger
than that lose their tails), and there is no early stop when transmittance falls below 1e-4
(the omitted terms are below that weight). Gradients flow to means, quats, scales, opacities
and colours through ordinary autograd.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..cameras import Cameras
from .gaussians import Backend, Gaussians

log = logging.getLogger(__name__)

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99
EPS2D = 0.3
_RADIUS_BUCKETS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 32, 48, 64)


@dataclass
class RenderResult:
    rgb: Tensor  # [V, H, W, 3]
    alpha: Tensor  # [V, H, W]
    depth: Tensor  # [V, H, W] expected depth (0 where alpha = 0)


def quat_to_rotmat(q: Tensor) -> Tensor:
    """``[N, 4]`` wxyz (normalised here) -> ``[N, 3, 3]``."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(-1, 3, 3)


def _render_view_torch(means, quats, scales, opacities, colors, viewmat, K, width, height, near, max_radius,
                       background):
    dtype, device = means.dtype, means.device
    H, W = height, width
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    pc = means @ R.T + t  # [N, 3] camera coordinates
    z = pc[:, 2]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    front = z > near
    idx = torch.nonzero(front).squeeze(1)
    pc, z = pc[idx], z[idx]
    x, y = pc[:, 0], pc[:, 1]
    u = fx * x / z + cx  # continuous pixel coordinates (pixel i covers [i, i+1))
    v = fy * y / z + cy
    Rg = quat_to_rotmat(quats[idx])
    M = Rg * scales[idx].unsqueeze(1)  # R S
    cov3 = M @ M.transpose(1, 2)
    J = torch.zeros(len(idx), 2, 3, dtype=dtype, device=device)
    J[:, 0, 0] = fx / z
    J[:, 0, 2] = -fx * x / z**2
    J[:, 1, 1] = fy / z
    J[:, 1, 2] = -fy * y / z**2
    T = J @ R  # EWA: world -> image Jacobian
    cov2 = T @ cov3 @ T.transpose(1, 2)
    a = cov2[:, 0, 0] + EPS2D
    b = cov2[:, 0, 1]
    c = cov2[:, 1, 1] + EPS2D
    det = a * c - b * b
    lam = 0.5 * (a + c) + torch.sqrt((0.25 * (a - c) ** 2 + b * b).clamp_min(0))
    radius = torch.ceil(3.0 * torch.sqrt(lam.clamp_min(0)))
    ok = (det > 0) & (u + radius >= 0) & (u - radius < W) & (v + radius >= 0) & (v - radius < H)
    keep = torch.nonzero(ok).squeeze(1)
    rgb_out = torch.zeros(H * W, 3, dtype=dtype, device=device)
    acc = torch.zeros(H * W, dtype=dtype, device=device)
    dep = torch.zeros(H * W, dtype=dtype, device=device)
    if keep.numel() > 0:
        gi = idx[keep]
        u, v, z, a, b, c, det = u[keep], v[keep], z[keep], a[keep], b[keep], c[keep], det[keep]
        radius = radius[keep].clamp(max=max_radius)
        # Footprints are enumerated on a square grid; Gaussians are bucketed by radius so one large
        # Gaussian does not make every small one walk a large grid (the buckets are fine-grained:
        # a 6-pixel footprint walks 13x13 cells, not the 17x17 of the next power of two).
        edges = torch.tensor([r for r in _RADIUS_BUCKETS if r < max_radius] + [max_radius], device=device)
        bucket = torch.bucketize(radius.clamp_min(1), edges.to(radius.dtype))
        pix_l, al_l, z_l, g_l = [], [], [], []
        for bkt in torch.unique(bucket).tolist():
            sel = torch.nonzero(bucket == bkt).squeeze(1)
            r = int(edges[bkt])
            off = torch.arange(-r, r + 1, device=device)
            dy, dx = torch.meshgrid(off, off, indexing="ij")
            dx, dy = dx.reshape(-1), dy.reshape(-1)  # [S]
            us, vs, rs = u[sel], v[sel], radius[sel]
            px = torch.floor(us).long().unsqueeze(1) + dx  # [n, S]
            py = torch.floor(vs).long().unsqueeze(1) + dy
            inside = (px >= 0) & (px < W) & (py >= 0) & (py < H)
            inside &= (dx.abs().unsqueeze(0) <= rs.unsqueeze(1)) & (dy.abs().unsqueeze(0) <= rs.unsqueeze(1))
            ddx = px.to(dtype) + 0.5 - us.unsqueeze(1)
            ddy = py.to(dtype) + 0.5 - vs.unsqueeze(1)
            ds = det[sel]
            inv_a, inv_b, inv_c = (c[sel] / ds).unsqueeze(1), (-b[sel] / ds).unsqueeze(1), (a[sel] / ds).unsqueeze(1)
            power = -0.5 * (inv_a * ddx * ddx + inv_c * ddy * ddy) - inv_b * ddx * ddy
            alpha = (opacities[gi[sel]].unsqueeze(1) * torch.exp(power)).clamp(max=ALPHA_MAX)
            inside &= (power <= 0) & (alpha >= ALPHA_MIN)
            n_i, s_i = torch.nonzero(inside, as_tuple=True)
            pix_l.append(py[n_i, s_i] * W + px[n_i, s_i])
            al_l.append(alpha[n_i, s_i])
            z_l.append(z[sel][n_i])
            g_l.append(gi[sel][n_i])
        pix, al, zz, gg = torch.cat(pix_l), torch.cat(al_l), torch.cat(z_l), torch.cat(g_l)
        # sort by pixel, then by the Gaussian's depth (front to back)
        order = torch.argsort(zz, stable=True)
        order = order[torch.argsort(pix[order], stable=True)]
        pix, al, zz, g_sorted = pix[order], al[order], zz[order], gg[order]
        log1m = torch.log1p(-al)
        cum = torch.cumsum(log1m, 0)
        # exclusive prefix sum restarted at every pixel: subtract the running total before the segment
        new_seg = torch.ones_like(pix, dtype=torch.bool)
        new_seg[1:] = pix[1:] != pix[:-1]
        seg_id = torch.cumsum(new_seg.long(), 0) - 1
        seg_first = torch.nonzero(new_seg).squeeze(1)
        before = torch.where(seg_first > 0, cum[(seg_first - 1).clamp_min(0)], torch.zeros_like(cum[seg_first]))
        T = torch.exp(cum - log1m - before[seg_id])
        w = T * al
        rgb_out = rgb_out.index_add(0, pix, w.unsqueeze(1) * colors[g_sorted])
        acc = acc.index_add(0, pix, w)
        dep = dep.index_add(0, pix, w * zz)
    rgb = rgb_out + (1 - acc).unsqueeze(1) * background
    depth = torch.where(acc > 0, dep / acc.clamp_min(1e-12), torch.zeros_like(dep))
    return rgb.reshape(H, W, 3), acc.reshape(H, W), depth.reshape(H, W)


def rasterize_torch(g: Gaussians, cameras: Cameras, near: float = 0.01, max_radius: int = 16,
                    background: float = 0.0) -> RenderResult:
    """Reference rasteriser (module docstring): ``V`` views, one at a time."""
    cams = cameras.to(g.means.device, g.means.dtype)
    scales, opac, centers = g.scales, g.opacities, cams.centers
    # SH degree > 0: each view sees the colour along its own camera-to-Gaussian direction (as gsplat)
    out = [_render_view_torch(g.means, g.quats, scales, opac, g.colors_from(centers[i]), cams.viewmats[i], cams.Ks[i],
                              cams.width, cams.height, near, max_radius, background) for i in range(len(cams))]
    rgb, alpha, depth = (torch.stack(x) for x in zip(*out))
    return RenderResult(rgb, alpha, depth)


def rasterize_gsplat(g: Gaussians, cameras: Cameras, near: float = 0.01, background: float = 0.0) -> RenderResult:
    """gsplat's CUDA rasteriser with the same inputs and outputs."""
    from gsplat import rasterization

    cams = cameras.to(g.means.device, torch.float32)
    degree = g.sh_degree  # gsplat evaluates the SH bands along the camera-to-Gaussian direction itself
    render, alpha, _ = rasterization(
        g.means.float(), g.quats.float(), g.scales.float(), g.opacities.float(), g.sh.float(),
        cams.viewmats, cams.Ks, cams.width, cams.height, near_plane=near, sh_degree=degree,
        render_mode="RGB+ED", backgrounds=torch.full((len(cams), 3), background, device=g.means.device),
    )
    return RenderResult(render[..., :3], alpha[..., 0], render[..., 3])


def _load_gsplat_extension():
    """gsplat's compiled CUDA rasteriser: a prebuilt one, or one gsplat builds just in time with the
    CUDA toolkit on first use (``gsplat.cuda._backend._C`` is None when it found no toolkit)."""
    from gsplat.cuda._backend import _C

    if _C is None:
        raise ImportError("no prebuilt gsplat CUDA extension, and no CUDA toolkit to build one")
    return _C


def gsplat_fallback_message(error: BaseException) -> str:
    """The one line a failed gsplat load gives: what failed, how to install a prebuilt wheel for this
    torch/CUDA, and that the torch rasteriser is used meanwhile."""
    first = (str(error).strip().splitlines() or [""])[0] or type(error).__name__
    major, minor = (torch.__version__.split("+")[0].split(".") + ["0"])[:2]
    cuda = torch.version.cuda or "unknown"
    cu = cuda.replace(".", "") if torch.version.cuda else "XYZ (XYZ: your CUDA version without the dot, e.g. 124)"
    index = f"https://docs.gsplat.studio/whl/pt{major}{minor}cu{cu}"
    return (f"gsplat's CUDA rasteriser could not be loaded ({type(error).__name__}: {first}); the 3DGS cache "
            f"renders with the pack's torch rasteriser on the GPU meanwhile (slower). To use gsplat, install a "
            f"prebuilt wheel for torch {torch.__version__} / CUDA {cuda}: pip install gsplat --index-url {index} "
            "(the torch/CUDA pairs with wheels: https://docs.gsplat.studio/whl/gsplat), or install the CUDA "
            "toolkit so gsplat can build it")


_GSPLAT: list[str | None] = []  # the load's outcome, once per process: [None] loaded, [message] failed


def gsplat_problem() -> str | None:
    """None when gsplat's CUDA rasteriser loads; else the one-line reason, logged the first time only."""
    if not _GSPLAT:
        try:
            _load_gsplat_extension()
            _GSPLAT.append(None)
        except Exception as e:  # noqa: BLE001 - a missing wheel, a failed JIT build, a missing libcudart...
            _GSPLAT.append(gsplat_fallback_message(e))
            log.warning(_GSPLAT[0])
    return _GSPLAT[0]


def resolve_backend(backend: Backend, device: torch.device) -> str:
    """``auto``: gsplat on CUDA when its rasteriser loads, else the torch one (on the same device)."""
    if backend == "auto":
        return "gsplat" if device.type == "cuda" and gsplat_problem() is None else "torch"
    if backend == "gsplat" and device.type != "cuda":
        raise ValueError("the gsplat backend needs CUDA tensors; use backend='torch' (or 'auto') on CPU")
    if backend == "gsplat" and gsplat_problem() is not None:
        raise ValueError(f"{gsplat_problem()}; or choose the cache backend 'auto' or 'torch'")
    return backend


def rasteriser(backend: Backend, device: torch.device) -> Callable[..., RenderResult]:
    """The rasterising function ``backend`` resolves to on ``device``."""
    return rasterize_gsplat if resolve_backend(backend, device) == "gsplat" else rasterize_torch


def render_gaussians(g: Gaussians, cameras: Cameras, backend: Backend = "auto", max_radius: int = 16,
                     background: float = 0.0) -> RenderResult:
    """Render RGB ``[V,H,W,3]``, alpha ``[V,H,W]`` and expected depth ``[V,H,W]`` at ``cameras``."""
    if len(g) == 0:
        raise ValueError("cannot render an empty set of Gaussians")
    fn = rasteriser(backend, g.means.device)
    if fn is rasterize_gsplat:
        return rasterize_gsplat(g, cameras, background=background)
    return rasterize_torch(g, cameras, max_radius=max_radius, background=background)
