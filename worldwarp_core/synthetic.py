"""A procedural textured room rendered by exact ray casting: ground truth for geometric tests.

The scene (world units, OpenCV-style world: x right, y down, z forward from the default camera):
a room spanning ``x ∈ [-2, 2]``, ``y ∈ [-1.5, 1.5]`` (floor at ``y = +1.5``), ``z ∈ [-2, 6]``,
each wall with its own smooth procedural texture (sums of sinusoids and soft checkers in a
distinct colour), plus two boxes and a sphere standing in front of the back wall. From the
default camera at the origin looking down +z the median depth is about 4.5 units, so trajectory
presets (in units of the median depth) stay inside the room for strengths up to about 1.

``render(cameras)`` returns the exact colour and camera-space depth of the first surface hit
through every pixel centre; textures are smooth (band-limited) so that a warped image can be
compared with a render of the target view pixel by pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .cameras import Cameras, intrinsics_from_fov, look_at
from .warp import pixel_rays


@dataclass(frozen=True)
class Box:
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    color: tuple[float, float, float]


@dataclass(frozen=True)
class Sphere:
    center: tuple[float, float, float]
    radius: float
    color: tuple[float, float, float]


@dataclass(frozen=True)
class SyntheticScene:
    room_lo: tuple[float, float, float] = (-2.0, -1.5, -2.0)
    room_hi: tuple[float, float, float] = (2.0, 1.5, 6.0)
    boxes: tuple[Box, ...] = field(default_factory=lambda: (
        Box((0.3, 0.6, 2.2), (1.1, 1.5, 3.0), (0.85, 0.35, 0.25)),
        Box((-1.6, 0.2, 4.0), (-0.6, 1.5, 4.8), (0.25, 0.55, 0.85)),
    ))
    spheres: tuple[Sphere, ...] = field(default_factory=lambda: (Sphere((-0.5, 0.9, 2.6), 0.55, (0.9, 0.8, 0.2)),))

    # ---------------------------------------------------------------- cameras
    def default_camera(self, width: int, height: int, fov_x_deg: float = 60.0) -> Cameras:
        """A start view at the origin looking down +z (the back wall is 6 units ahead)."""
        w2c = look_at(torch.tensor([[0.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 1.0]]))
        return Cameras(w2c, intrinsics_from_fov(fov_x_deg, width, height), width, height)

    # ---------------------------------------------------------------- rendering
    @torch.no_grad()
    def render(self, cameras: Cameras) -> tuple[Tensor, Tensor]:
        """Exact ray casting: colours ``[V, H, W, 3]`` in 0..1 and camera z depth ``[V, H, W]``."""
        cams = cameras.to(dtype=torch.float64)
        rays_cam = pixel_rays(cams)  # [V, H, W, 3], z = 1
        c2w = cams.c2w
        d = torch.einsum("vij,vhwj->vhwi", c2w[:, :3, :3], rays_cam)  # world directions, camera z = 1
        o = c2w[:, None, None, :3, 3].expand_as(d)
        V, H, W, _ = d.shape
        t_best = torch.full((V, H, W), math.inf, dtype=torch.float64)
        obj = torch.full((V, H, W), -1, dtype=torch.long)
        # room: inside an axis-aligned box, each ray leaves through the nearest wall ahead
        lo = torch.tensor(self.room_lo, dtype=torch.float64)
        hi = torch.tensor(self.room_hi, dtype=torch.float64)
        for axis in range(3):
            da = d[..., axis]
            with torch.no_grad():
                t_hi = torch.where(da > 0, (hi[axis] - o[..., axis]) / da, torch.full_like(da, math.inf))
                t_lo = torch.where(da < 0, (lo[axis] - o[..., axis]) / da, torch.full_like(da, math.inf))
            for wall, t in ((2 * axis + 1, t_hi), (2 * axis, t_lo)):
                better = (t > 1e-9) & (t < t_best)
                t_best = torch.where(better, t, t_best)
                obj = torch.where(better, torch.full_like(obj, wall), obj)
        for k, box in enumerate(self.boxes):
            t = _ray_box(o, d, torch.tensor(box.lo, dtype=torch.float64), torch.tensor(box.hi, dtype=torch.float64))
            better = t < t_best
            t_best = torch.where(better, t, t_best)
            obj = torch.where(better, torch.full_like(obj, 6 + k), obj)
        for k, sp in enumerate(self.spheres):
            t = _ray_sphere(o, d, torch.tensor(sp.center, dtype=torch.float64), sp.radius)
            better = t < t_best
            t_best = torch.where(better, t, t_best)
            obj = torch.where(better, torch.full_like(obj, 6 + len(self.boxes) + k), obj)
        p = o + t_best.unsqueeze(-1) * d  # hit points
        rgb = self._shade(p, obj)
        # rays have camera z = 1, so the ray parameter is the camera-space depth
        return rgb.float(), t_best.float()

    def _shade(self, p: Tensor, obj: Tensor) -> Tensor:
        rgb = torch.zeros(*p.shape[:-1], 3, dtype=torch.float64)
        wall_colors = [(0.55, 0.75, 0.55), (0.75, 0.55, 0.75), (0.85, 0.85, 0.6),
                       (0.6, 0.5, 0.4), (0.5, 0.65, 0.85), (0.9, 0.7, 0.5)]
        for wall in range(6):
            axis = wall // 2
            a, b = [i for i in range(3) if i != axis]
            sel = obj == wall
            rgb[sel] = _texture(p[sel][:, a], p[sel][:, b], wall_colors[wall], 2.0 + wall)
        for k, box in enumerate(self.boxes):
            sel = obj == 6 + k
            q = p[sel]
            rgb[sel] = _texture(q[:, 0] + q[:, 1], q[:, 2] - q[:, 1], box.color, 5.0 + k)
        for k, sp in enumerate(self.spheres):
            sel = obj == 6 + len(self.boxes) + k
            q = p[sel] - torch.tensor(sp.center, dtype=torch.float64)
            rgb[sel] = _texture(torch.atan2(q[:, 0], q[:, 2]), q[:, 1] * 3, sp.color, 4.0)
        return rgb.clamp(0, 1)


def _texture(s: Tensor, t: Tensor, color: tuple[float, float, float], freq: float) -> Tensor:
    """Smooth band-limited pattern: a soft checker plus two sinusoids, tinted by ``color``."""
    soft_checker = torch.tanh(2.0 * torch.sin(freq * s) * torch.sin(freq * t))
    waves = 0.5 * torch.sin(1.7 * freq * s + 0.6 * t) + 0.5 * torch.cos(1.3 * freq * t - 0.4 * s)
    lum = 0.55 + 0.25 * soft_checker + 0.15 * waves  # [N]
    base = torch.tensor(color, dtype=torch.float64)
    return lum.unsqueeze(-1) * base + 0.08 * torch.stack(
        [torch.sin(freq * s), torch.cos(freq * t), torch.sin(freq * (s + t))], dim=-1
    )


def _ray_box(o: Tensor, d: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """Nearest positive hit of rays with an axis-aligned box (slab method); inf where missed."""
    with torch.no_grad():
        inv = 1.0 / torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
        t0 = (lo - o) * inv
        t1 = (hi - o) * inv
        tmin = torch.minimum(t0, t1).amax(dim=-1)
        tmax = torch.maximum(t0, t1).amin(dim=-1)
    hit = (tmax >= tmin) & (tmin > 1e-9)
    return torch.where(hit, tmin, torch.full_like(tmin, math.inf))


def _ray_sphere(o: Tensor, d: Tensor, c: Tensor, r: float) -> Tensor:
    oc = o - c
    a = (d * d).sum(-1)
    b = 2 * (oc * d).sum(-1)
    cc = (oc * oc).sum(-1) - r * r
    disc = b * b - 4 * a * cc
    sq = disc.clamp_min(0).sqrt()
    t = (-b - sq) / (2 * a)
    return torch.where((disc >= 0) & (t > 1e-9), t, torch.full_like(t, math.inf))


def default_scene() -> SyntheticScene:
    return SyntheticScene()
