"""Camera paths: presets, composition, keyframe interpolation, extrapolation, resampling.

Presets move the start camera along its OWN axes (OpenCV: x right, y down, z forward) and are
expressed in units of the first frame's median scene depth ``scene_scale``: ``dolly_in`` with
strength 1 ends at the middle of the scene whatever the depth model's units. Rotations are in
degrees (strength 1 = the preset's nominal angle, see ``PRESETS``).

Seen from above (x right, z up the page), start camera ``o`` looking up the page::

    dolly_in   o → ↑      truck_right  o → →      pan_left   ↖ (turns in place)
    orbit_left    P            (P: look-at point at the median depth ahead)
                ↗   ↖         the camera circles P to its left, always facing P
               o

Composition: ``"dolly_in + pan_left"`` plays presets one after the other (frames split evenly,
or by weights ``"dolly_in:2 + pan_left:1"``), each starting where the previous ended;
``"dolly_in * orbit_left"`` blends them (both motions at once). Strength per part:
``"dolly_in@0.5 + pan_left@2"``.

Extrapolation past a given path, three methods (``extrapolate``). ``paper`` (supp. §7): linear
velocity for translation and SLERP for rotation, in the world frame, over a smoothing window
(20 frames)::

    given:  c_{F-n} … c_{F-1}           v = (c_{F-1} - c_{F-n}) / (n-1)      (mean step)
                                        ω = (R_{F-1} R_{F-n}^T)^(1/(n-1))   (mean turn, SLERP)
    new:    c_{F-1+k} = c_{F-1} + k·v,  R_{F-1+k} = ω^k R_{F-1}     (camera-to-world rotations)

``official`` (the official code's body-frame momentum, window 10): the mean step and turn in the
camera's own frame, so the velocity turns with the camera::

    v_b = mean_i R_i^T (c_{i+1} - c_i),   ω_b = mean_i log(R_i^T R_{i+1})
    new:    c ← c + R v_b,   R ← R exp(ω_b)

``auto`` (default): the one of both, with a window of 2-10 frames, that best predicts the path's
own last frames (``choose_extrapolation``). A straight line (even while the camera pans) and a
constant-turn arc each continue exactly. Measured on real paths: docs/EXTRAPOLATION.md.

With ``damping`` d in [0, 1) step k moves by ``(1-d)^k`` of the mean step (and turns by the
same fraction of ω), so the camera eases to a stop. A single given frame extrapolates to a
static camera (there is no velocity to continue).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from . import official_paths
from .cameras import Cameras, invert_rigid
from .inputs import MAX_FRAMES as _MAX_FRAMES

# ----------------------------------------------------------------------------- rotations


def matrix_to_quat(R: Tensor) -> Tensor:
    """Rotation matrices ``[..., 3, 3]`` -> unit quaternions ``[..., 4]`` (w, x, y, z), w >= 0.

    The quaternion of the rotation nearest to ``R`` (Frobenius norm): the eigenvector of the
    largest eigenvalue of the symmetric 4x4 matrix ``N`` with ``q^T N q = trace(R(q)^T R)``
    (Bar-Itzhack, "New method for extracting the quaternion from a rotation matrix", J. Guidance
    2000). Every component comes from all nine entries, so nothing is lost at small angles or
    near 180 degrees, and a matrix that is only nearly orthonormal (real camera files: ~1e-7)
    gives the quaternion of its polar rotation. Computed in float64.
    """
    R = R.double()
    m = R.reshape(-1, 3, 3)
    m00, m01, m02 = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    m10, m11, m12 = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    m20, m21, m22 = m[:, 2, 0], m[:, 2, 1], m[:, 2, 2]
    # Expand trace(R(q)^T M) with R(q) written in (w, x, y, z) and collect the quadratic terms.
    N = torch.stack([
        torch.stack([m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, m00 - m11 - m22, m01 + m10, m02 + m20], -1),
        torch.stack([m02 - m20, m01 + m10, m11 - m00 - m22, m12 + m21], -1),
        torch.stack([m10 - m01, m02 + m20, m12 + m21, m22 - m00 - m11], -1),
    ], -2)  # [B, 4, 4]
    _, vecs = torch.linalg.eigh(N)  # eigenvalues ascending
    q = vecs[..., -1]
    q = torch.where(q[:, :1] < 0, -q, q)
    q = q / q.norm(dim=-1, keepdim=True)
    return q.reshape(*R.shape[:-2], 4)


def quat_to_matrix(q: Tensor) -> Tensor:
    """Quaternions ``[..., 4]`` (w, x, y, z) -> rotation matrices ``[..., 3, 3]``."""
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(*q.shape[:-1], 3, 3)


def slerp(q0: Tensor, q1: Tensor, t: Tensor | float) -> Tensor:
    """Spherical linear interpolation ``[..., 4]`` along the shortest arc; ``t`` may exceed [0, 1]."""
    t = torch.as_tensor(t, dtype=q0.dtype)
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    # Half the angle between the unit quaternions from atan2 of chord lengths: exact at small
    # angles, where acos(dot) loses half the digits.
    theta = 2 * torch.atan2((q1 - q0).norm(dim=-1, keepdim=True), (q1 + q0).norm(dim=-1, keepdim=True))
    small = theta < 1e-8
    s = torch.sin(theta)
    t_ = t.unsqueeze(-1) if t.ndim == q0.ndim - 1 else t
    a = torch.where(small, 1 - t_, torch.sin((1 - t_) * theta) / torch.where(small, torch.ones_like(s), s))
    b = torch.where(small, t_, torch.sin(t_ * theta) / torch.where(small, torch.ones_like(s), s))
    q = a * q0 + b * q1
    return q / q.norm(dim=-1, keepdim=True)


def axis_angle(axis: Tensor, angle: float | Tensor) -> Tensor:
    """Rotation matrices about a unit ``axis [3]`` by ``angle`` radians (scalar or ``[F]``):
    ``[3, 3]`` or ``[F, 3, 3]`` (Rodrigues)."""
    axis = axis.double() / axis.double().norm()
    angle = torch.as_tensor(angle, dtype=torch.float64)[..., None, None]
    K = torch.tensor([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]], dtype=torch.float64)
    return torch.eye(3, dtype=torch.float64) + torch.sin(angle) * K + (1 - torch.cos(angle)) * (K @ K)


def rotation_power(R: Tensor, t: float) -> Tensor:
    """``R^t`` for a rotation ``[3, 3]`` (the same axis, ``t`` times the angle)."""
    q = matrix_to_quat(R)
    ident = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    return quat_to_matrix(slerp(ident, q, t))


# ----------------------------------------------------------------------------- presets

Ease = Literal["linear", "ease-in-out", "ease-in", "ease-out"]


@dataclass(frozen=True)
class PresetSpec:
    """A camera motion: ``motion(p [F], strength, scale) -> (local [F, 4, 4], focal factor [F])`` at
    progress ``p`` in [0, 1] (0: the start camera), in the start camera's own frame."""

    description: str
    unit: str
    motion: Callable[[Tensor, float, float], tuple[Tensor, Tensor]]


def _local(p: Tensor, R: Tensor | None = None, t: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``[F, 4, 4]`` poses from rotations ``[F, 3, 3]`` and translations ``[F, 3]``; focal factor 1."""
    M = torch.eye(4, dtype=torch.float64).repeat(p.shape[0], 1, 1)
    if R is not None:
        M[:, :3, :3] = R
    if t is not None:
        M[:, :3, 3] = t
    return M, torch.ones_like(p)


_X, _Y, _Z = (torch.tensor(v, dtype=torch.float64) for v in ((1.0, 0, 0), (0, 1.0, 0), (0, 0, 1.0)))


def _translate(direction: tuple[float, float, float]):
    def motion(p, strength, scale):
        return _local(p, t=(strength * scale * p)[:, None] * torch.tensor(direction, dtype=torch.float64))

    return motion


def _rotate(axis: Tensor, degrees: float):
    def motion(p, strength, scale):
        return _local(p, axis_angle(axis, math.radians(degrees * strength) * p))

    return motion


def _orbit(sign: float):
    def motion(p, strength, scale):
        # rotate the camera about the vertical axis through P = (0, 0, scale) in its own frame
        R = axis_angle(_Y, math.radians(sign * 30.0 * strength) * p)
        P = torch.tensor([0.0, 0.0, scale], dtype=torch.float64)
        return _local(p, R, P - R @ P)

    return motion


def _zoom(sign: float):
    def motion(p, strength, scale):
        f = 1.0 + strength * p
        return _local(p)[0], (f if sign > 0 else 1.0 / f)

    return motion


def _spiral(p, strength, scale):
    r = 0.15 * scale * strength
    a = 2 * math.pi * p
    return _local(p, t=torch.stack([r * torch.sin(a), r * (1 - torch.cos(a)), 0.6 * strength * scale * p], dim=-1))


def _static(p, strength, scale):
    return _local(p)


PRESETS: dict[str, PresetSpec] = {
    "static": PresetSpec("camera does not move", "-", _static),
    "dolly_in": PresetSpec("move forward along the view direction", "median depths", _translate((0, 0, 1))),
    "dolly_out": PresetSpec("move backward along the view direction", "median depths", _translate((0, 0, -1))),
    "truck_left": PresetSpec("move sideways to the left", "median depths", _translate((-1, 0, 0))),
    "truck_right": PresetSpec("move sideways to the right", "median depths", _translate((1, 0, 0))),
    "pedestal_up": PresetSpec("move straight up", "median depths", _translate((0, -1, 0))),
    "pedestal_down": PresetSpec("move straight down", "median depths", _translate((0, 1, 0))),
    "pan_left": PresetSpec("turn left in place", "x 30 degrees", _rotate(_Y, -30.0)),
    "pan_right": PresetSpec("turn right in place", "x 30 degrees", _rotate(_Y, 30.0)),
    "tilt_up": PresetSpec("tilt the view up in place", "x 20 degrees", _rotate(_X, 20.0)),
    "tilt_down": PresetSpec("tilt the view down in place", "x 20 degrees", _rotate(_X, -20.0)),
    "roll_left": PresetSpec("roll counter-clockwise about the view axis", "x 15 degrees", _rotate(_Z, -15.0)),
    "roll_right": PresetSpec("roll clockwise about the view axis", "x 15 degrees", _rotate(_Z, 15.0)),
    "orbit_left": PresetSpec("circle left around the point at the median depth, facing it", "x 30 degrees", _orbit(1.0)),
    "orbit_right": PresetSpec("circle right around the point at the median depth, facing it", "x 30 degrees", _orbit(-1.0)),
    "zoom_in": PresetSpec("increase the focal length (no motion)", "focal x (1 + strength)", _zoom(1.0)),
    "zoom_out": PresetSpec("decrease the focal length (no motion)", "focal / (1 + strength)", _zoom(-1.0)),
    "spiral": PresetSpec("move forward while circling the view axis once", "median depths", _spiral),
}

# Limits of a preset path, enforced before any work: a video of MAX_FRAMES frames is 200+ chunks of
# 49 frames (days of sampling); a spec longer than MAX_SPEC_CHARS or with more than MAX_PARTS parts
# is not a camera move anyone writes by hand, and the parser and path maths stay linear in both.
MAX_FRAMES = _MAX_FRAMES  # inputs.MAX_FRAMES: the one frames limit
MAX_SPEC_CHARS = 1_000
MAX_PARTS = 16
MAX_STRENGTH = 1_000.0


def list_presets() -> list[str]:
    return sorted(PRESETS)


def check_frames(frames, what: str = "frames") -> int:
    """``frames`` as an int in ``[1, MAX_FRAMES]``, or a ``ValueError`` naming ``what``."""
    if isinstance(frames, bool) or not isinstance(frames, int):
        if isinstance(frames, float) and math.isfinite(frames) and frames == int(frames):
            frames = int(frames)
        else:
            raise ValueError(f"{what} must be a whole number, got {frames!r}")
    if frames < 1:
        raise ValueError(f"{what} must be >= 1, got {frames}")
    if frames > MAX_FRAMES:
        raise ValueError(f"{what} is {frames}; the limit is {MAX_FRAMES} frames")
    return frames


EASES = ("linear", "ease-in-out", "ease-in", "ease-out")


def _ease(p: float | Tensor, ease: Ease) -> float | Tensor:
    """Progress ``p`` in [0, 1] (a number or a tensor) through a speed profile (sine easings:
    ``ease-in`` and ``ease-out`` are the two halves of ``ease-in-out``)."""
    cos, sin = (torch.cos, torch.sin) if isinstance(p, Tensor) else (math.cos, math.sin)
    if ease == "linear":
        return p
    if ease == "ease-in-out":
        return 0.5 - 0.5 * cos(math.pi * p)
    if ease == "ease-in":
        return 1.0 - cos(0.5 * math.pi * p)
    if ease == "ease-out":
        return sin(0.5 * math.pi * p)
    raise ValueError(f"unknown easing {ease!r}; use one of {', '.join(EASES)}")


_NUMBER_CHARS = frozenset("0123456789.eE+-")
_PART_HINT = "write e.g. 'dolly_in', 'pan_left@2' or 'dolly_in@0.5:2'"


def _show(text: str) -> str:
    """``text`` for an error message: runs of whitespace as one space, at most 80 characters."""
    return " ".join(text.split())[:80]


def _number(text: str, part: str, what: str) -> float:
    text = text.strip()
    if not text or len(text) > 32 or not _NUMBER_CHARS.issuperset(text):
        raise ValueError(f"cannot read the {what} {text[:32]!r} of trajectory part {_show(part)!r}; {_PART_HINT}")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"cannot read the {what} {text!r} of trajectory part {_show(part)!r}; {_PART_HINT}") from None
    if not math.isfinite(value) or abs(value) > MAX_STRENGTH:
        raise ValueError(f"the {what} {text!r} of trajectory part {_show(part)!r} must be a finite number "
                         f"within +-{MAX_STRENGTH:g}")
    return value


def _parse_part(text: str) -> tuple[str, float | None, float]:
    """``name[@strength][:weight]`` (spaces allowed around each token). Plain string operations,
    no regular expression: linear in the length of ``text``."""
    head, colon, weight = text.partition(":")
    name, at, strength = head.partition("@")
    name = name.strip()
    if not name or "@" in strength or ":" in weight or any(c.isspace() for c in name):
        raise ValueError(f"cannot read trajectory part {_show(text)!r}; {_PART_HINT}")
    if name not in PRESETS:
        raise ValueError(f"unknown camera preset {name[:40]!r}; choose from {', '.join(list_presets())}")
    s = _number(strength, text, "strength") if at else None
    w = _number(weight, text, "weight") if colon else 1.0
    if w <= 0:
        raise ValueError(f"trajectory weights must be positive: {_show(text)!r}")
    return name, s, w


def parse_trajectory(spec: str) -> tuple[Literal["+", "*", "official"], list[tuple[str, float | None, float]]]:
    """A preset spec (module docstring) -> its composition (``'+'`` sequence or ``'*'`` blend) and
    its parts ``(name, strength or None, weight)``. Limits: ``MAX_SPEC_CHARS`` characters,
    ``MAX_PARTS`` parts; every failure is a ``ValueError`` saying what to write.

    A spec in the official namespace (``official:dolly_in + official:pan_right``, see
    ``official_paths``) gives ``"official"`` and its parts ``("official:<name>", strength, 1.0)`` in
    order (``official_paths.parse_official`` keeps its segments)."""
    if official_paths.is_official_spec(spec):
        return "official", [(official_paths.PREFIX + n, s, 1.0) for seg in official_paths.parse_official(spec)
                            for n, s in seg]
    if not isinstance(spec, str):
        raise ValueError(f"trajectory must be text such as 'dolly_in', got {type(spec).__name__}")
    if len(spec) > MAX_SPEC_CHARS:
        raise ValueError(f"trajectory text is {len(spec)} characters; the limit is {MAX_SPEC_CHARS} "
                         f"(at most {MAX_PARTS} parts such as 'dolly_in@0.5 + pan_left')")
    if not spec.strip():
        raise ValueError("empty trajectory; give a preset name such as 'dolly_in'")
    if "+" in spec and "*" in spec:
        raise ValueError(f"trajectory {_show(spec)!r} mixes '+' and '*'; use one kind of composition")
    op: Literal["+", "*"] = "*" if "*" in spec else "+"
    texts = spec.split(op)
    if len(texts) > MAX_PARTS:
        raise ValueError(f"trajectory has {len(texts)} parts; the limit is {MAX_PARTS}")
    return op, [_parse_part(t) for t in texts]


def _apply(c2w0: Tensor, K0: Tensor, local: Tensor, focal: Tensor) -> tuple[Tensor, Tensor]:
    """Poses ``c2w0 [4, 4] @ local [F, 4, 4]`` and intrinsics ``K0 [3, 3]`` with focal x ``focal [F]``."""
    K = K0.expand(focal.shape[0], 3, 3).clone()
    K[:, 0, 0] *= focal
    K[:, 1, 1] *= focal
    return c2w0 @ local, K


def _part_ends(parts: list[tuple[str, float | None, float]], frames: int, spec: str) -> list[int]:
    """The last frame of each part of a '+' sequence: the frames after the start frame split by weight."""
    weights = [w for _, _, w in parts]
    if any(w <= 0 for w in weights):
        raise ValueError(f"trajectory weights must be positive in {_show(spec)!r}")
    moving = frames - 1
    return [round(moving * sum(weights[: i + 1]) / sum(weights)) for i in range(len(parts))]


def part_end_frames(spec: str, frames: int) -> list[int]:
    """Frames where the parts of a composition end (a '+' sequence's joints and its last frame;
    only the last frame for a single preset or a '*' blend), increasing, without repeats."""
    frames = check_frames(frames)
    if official_paths.is_official_spec(spec):
        return official_paths.official_segment_ends(spec, frames)
    op, parts = parse_trajectory(spec)
    if op == "*" or len(parts) == 1:
        return [frames - 1]
    ends = _part_ends(parts, frames, spec)
    return sorted({e for e in ends if e > 0} | {frames - 1})


def make_trajectory(
    spec: str,
    frames: int,
    start: Cameras,
    scene_scale: float = 1.0,
    strength: float = 1.0,
    ease: Ease = "linear",
) -> Cameras:
    """Cameras ``[frames]`` following ``spec`` from ``start`` (frame 0 is the start camera).

    Args:
        spec: a preset name or a composition (module docstring; limits ``MAX_SPEC_CHARS``, ``MAX_PARTS``).
        frames: total frame count, 1 to ``MAX_FRAMES``.
        start: one camera (its intrinsics are the start intrinsics).
        scene_scale: the first frame's median depth, the unit of translations.
        strength: multiplies every part's strength.

    An official spec (``official:...``, ``official_paths``) follows the official demo instead:
    its amounts are per frame in the geometry model's units (``scene_scale`` and ``ease`` play no
    part), ``+`` adds the movements, and the intrinsics are the official ``1.2·W`` focal.
    """
    frames = check_frames(frames)
    if len(start) != 1:
        raise ValueError(f"make_trajectory needs one start camera, got {len(start)}")
    if not (isinstance(scene_scale, (int, float)) and scene_scale > 0 and math.isfinite(scene_scale)):
        raise ValueError(f"scene_scale must be a positive median depth, got {scene_scale}")
    if not (isinstance(strength, (int, float)) and math.isfinite(strength) and abs(strength) <= MAX_STRENGTH):
        raise ValueError(f"strength must be a finite number within +-{MAX_STRENGTH:g}, got {strength}")
    if ease not in EASES:
        raise ValueError(f"unknown easing {ease!r}; use one of {', '.join(EASES)}")
    if official_paths.is_official_spec(spec):
        return official_paths.official_trajectory(spec, frames, start, float(strength))
    op, parts = parse_trajectory(spec)
    scene_scale, strength = float(scene_scale), float(strength)
    c2w0, K0 = start.c2w[0].double(), start.Ks[0].double()
    if op == "*":
        # every part at once: the local motions compose at the same progress p
        p = _ease(torch.arange(frames, dtype=torch.float64) / max(frames - 1, 1), ease)
        local, focal = _local(p)
        for name, s, _ in parts:
            m, f = PRESETS[name].motion(p, strength * (1.0 if s is None else s), scene_scale)
            local, focal = local @ m, focal * f
        c2w, K = _apply(c2w0, K0, local, focal)
        return Cameras.from_c2w(c2w, K, start.width, start.height)
    # frames after the start frame, split by weight; each part starts where the previous ended
    bounds = _part_ends(parts, frames, spec)
    counts = [b - a for a, b in zip([0] + bounds[:-1], bounds)]
    c2ws, Ks = [c2w0[None]], [K0[None]]
    for (name, s, _), n in zip(parts, counts):
        if n == 0:
            continue
        p = _ease(torch.arange(1, n + 1, dtype=torch.float64) / n, ease)
        m, f = PRESETS[name].motion(p, strength * (1.0 if s is None else s), scene_scale)
        c2w, K = _apply(c2w0, K0, m, f)
        c2ws.append(c2w)
        Ks.append(K)
        c2w0, K0 = c2w[-1], K[-1]
    return Cameras.from_c2w(torch.cat(c2ws), torch.cat(Ks), start.width, start.height)


# ----------------------------------------------------------------------------- interpolation


def _lerp_cameras(cams: Cameras, s: Tensor, positions: Tensor | None = None) -> Cameras:
    """Cameras at fractional indices ``s [M]``: rotations SLERP, focal linear, positions linear
    (or given)."""
    c2w = cams.c2w.double()
    F = len(cams)
    s = _snap_to_keyframes(s)
    i0 = s.floor().long().clamp(0, F - 1)
    i1 = (i0 + 1).clamp(max=F - 1)
    t = (s - i0.double()).clamp(0, 1)
    q = matrix_to_quat(c2w[:, :3, :3])
    R = quat_to_matrix(slerp(q[i0], q[i1], t))
    if positions is None:
        positions = c2w[i0, :3, 3] * (1 - t[:, None]) + c2w[i1, :3, 3] * t[:, None]
    K = cams.Ks.double()
    Ks = K[i0] * (1 - t[:, None, None]) + K[i1] * t[:, None, None]
    out = torch.eye(4, dtype=torch.float64).repeat(len(s), 1, 1)
    out[:, :3, :3] = R
    out[:, :3, 3] = positions
    vm = invert_rigid(out)
    # A keyframe keeps its own camera bit for bit: the quaternion is that of the nearest rotation,
    # which differs from a nearly orthonormal file matrix by ~1e-7. (Given positions pass through
    # the keyframe centres at t = 0.)
    key = (t == 0) & (positions - c2w[i0, :3, 3]).abs().amax(dim=1).eq(0)
    vm = torch.where(key[:, None, None], cams.viewmats.double()[i0], vm)
    return Cameras(vm, Ks, cams.width, cams.height)


def _snap_to_keyframes(s: Tensor) -> Tensor:
    """Fractional indices within 1e-9 of a whole number become it (linspace gives 2.0000000000000004)."""
    return torch.where((s - s.round()).abs() < 1e-9, s.round(), s)


def interpolate(keyframes: Cameras, frames: int, mode: Literal["linear", "spline"] = "spline") -> Cameras:
    """``frames`` cameras through the keyframes (first and last kept): positions linear or
    Catmull-Rom, rotations SLERP, intrinsics linear; keyframes evenly spaced in time."""
    K = len(keyframes)
    frames = check_frames(frames)
    return interpolate_at(keyframes, torch.arange(K, dtype=torch.float64),
                          _snap_to_keyframes(torch.linspace(0, K - 1, frames, dtype=torch.float64)), mode)


def interpolate_at(keyframes: Cameras, key_times: Tensor, times: Tensor,
                   mode: Literal["linear", "spline"] = "spline", eases: list[str] | None = None) -> Cameras:
    """Cameras at ``times [M]`` of a path through ``keyframes`` placed at ``key_times [K]`` (strictly
    increasing; times outside them hold the first / last keyframe).

    Between keyframes k and k+1 the progress ``u = (t - t_k) / (t_{k+1} - t_k)`` goes through the
    segment's easing ``eases[k]`` (default linear); then rotations SLERP, intrinsics are linear
    and positions linear or a cubic Hermite spline with Catmull-Rom tangents for uneven times,
    ``m_k = (p_{k+1} - p_{k-1}) / (t_{k+1} - t_{k-1})``, end points reflected
    (``p_{-1} = 2 p_0 - p_1``, ``t_{-1} = 2 t_0 - t_1``). With evenly spaced keyframes this is the
    uniform Catmull-Rom spline; it passes through every keyframe.
    """
    c2w, Ks = interpolate_poses(keyframes.c2w.double(), keyframes.Ks.double(), key_times, times, mode, eases)
    vm = invert_rigid(c2w)
    # A time on a keyframe gives that keyframe's camera bit for bit (inverting its c2w back would
    # move a nearly orthonormal file matrix by ~1e-7).
    kt = torch.as_tensor(key_times, dtype=torch.float64).reshape(-1)
    t = torch.as_tensor(times, dtype=torch.float64).reshape(-1).clamp(float(kt[0]), float(kt[-1]))
    hit = t[:, None] == kt[None, :]  # [M, K]
    k = hit.to(torch.uint8).argmax(dim=1)
    vm = torch.where(hit.any(dim=1)[:, None, None], keyframes.viewmats.double()[k], vm)
    return Cameras(vm, Ks, keyframes.width, keyframes.height)


def interpolate_poses(c2w: Tensor, Ks: Tensor, key_times: Tensor, times: Tensor,
                      mode: Literal["linear", "spline"] = "spline",
                      eases: list[str] | None = None) -> tuple[Tensor, Tensor]:
    """``interpolate_at`` on plain tensors: keyframe camera-to-world ``c2w [K, 4, 4]`` and
    intrinsics ``Ks [K, 3, 3]`` -> ``[M, 4, 4]``, ``[M, 3, 3]`` at ``times [M]`` (float64)."""
    K = c2w.shape[0]
    if mode not in ("linear", "spline"):
        raise ValueError(f"interpolation mode must be 'linear' or 'spline', got {mode!r}")
    kt = torch.as_tensor(key_times, dtype=torch.float64).reshape(-1)
    t = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
    if kt.shape[0] != K:
        raise ValueError(f"{kt.shape[0]} keyframe times for {K} keyframes; give one time per keyframe")
    if not bool(torch.isfinite(kt).all()) or not bool(torch.isfinite(t).all()):
        raise ValueError("keyframe times and sample times must be finite")
    if K > 1 and not bool((kt[1:] > kt[:-1]).all()):
        raise ValueError(f"keyframe times must increase strictly, got {kt.tolist()}")
    if eases is not None and len(eases) != max(K - 1, 0):
        raise ValueError(f"{len(eases)} easings for {K - 1} segments; give one per segment between keyframes")
    if t.numel() == 0:
        raise ValueError("no sample times; ask for at least one frame")
    if t.numel() > MAX_FRAMES:
        raise ValueError(f"{t.numel()} sample times; the limit is {MAX_FRAMES} frames")
    if K == 1:
        return c2w.expand(t.shape[0], 4, 4).clone(), Ks.expand(t.shape[0], 3, 3).clone()
    t = t.clamp(float(kt[0]), float(kt[-1]))
    i = torch.searchsorted(kt, t, right=True).clamp(1, K - 1) - 1  # segment of each sample
    dt = kt[i + 1] - kt[i]
    u = ((t - kt[i]) / dt).clamp(0, 1)
    at_start, at_end = u == 0, u == 1  # on keyframe i or i + 1 (every easing keeps 0 and 1)
    if eases is not None:
        eased = u.clone()
        for name in set(eases):
            seg = torch.tensor([e == name for e in eases])[i]
            eased = torch.where(seg, _ease(u, name), eased)
        u = eased
    q = matrix_to_quat(c2w[:, :3, :3])
    R = quat_to_matrix(slerp(q[i], q[i + 1], u))
    # A keyframe keeps its own rotation matrix (the quaternion is that of the nearest rotation).
    R = torch.where(at_start[:, None, None], c2w[i, :3, :3], torch.where(at_end[:, None, None], c2w[i + 1, :3, :3], R))
    c = c2w[:, :3, 3]
    w = u[:, None]
    if mode == "linear":
        positions = c[i] * (1 - w) + c[i + 1] * w
    else:
        ct = torch.cat([2 * kt[:1] - kt[1:2], kt, 2 * kt[-1:] - kt[-2:-1]])
        cp = torch.cat([2 * c[:1] - c[1:2], c, 2 * c[-1:] - c[-2:-1]])
        m = (cp[2:] - cp[:-2]) / (ct[2:] - ct[:-2])[:, None]  # [K, 3] tangents per unit time
        h00, h10 = 2 * w**3 - 3 * w**2 + 1, w**3 - 2 * w**2 + w
        h01, h11 = -2 * w**3 + 3 * w**2, w**3 - w**2
        positions = h00 * c[i] + h10 * dt[:, None] * m[i] + h01 * c[i + 1] + h11 * dt[:, None] * m[i + 1]
    positions = torch.where(at_start[:, None], c[i], torch.where(at_end[:, None], c[i + 1], positions))
    Ks_out = Ks[i] * (1 - w[:, :, None]) + Ks[i + 1] * w[:, :, None]
    out = torch.eye(4, dtype=torch.float64).repeat(t.shape[0], 1, 1)
    out[:, :3, :3] = R
    out[:, :3, 3] = positions
    return out, Ks_out


# ----------------------------------------------------------------------------- extrapolation


ExtrapolationMethod = Literal["auto", "paper", "official"]
EXTRAPOLATION_METHODS: tuple[str, ...] = ("auto", "paper", "official")

# The models "auto" chooses from by backtesting: (model, window in frames). Window 2 is "repeat
# the last step" (in the world frame for "paper", as a relative pose for "official").
# The first candidate is the fallback for paths too short to test and wins ties.
_AUTO_CANDIDATES: tuple[tuple[str, int], ...] = (
    ("official", 2), ("official", 3), ("official", 5), ("official", 10),
    ("paper", 2), ("paper", 3), ("paper", 5), ("paper", 10),
)
_BACKTEST_CUTS = 8  # how many of the path's own last frames auto predicts to score a model
_BACKTEST_HORIZON = 6  # frames ahead auto predicts from each cut (at most the frames asked for)


def rotation_log(R: Tensor) -> Tensor:
    """Rotation vectors ``[..., 3]`` (axis times angle in radians, angle in [0, pi]) of ``R [..., 3, 3]``."""
    q = matrix_to_quat(R)
    v = q[..., 1:]
    n = v.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(n, q[..., :1])
    # angle / n -> 2 / w as n -> 0 (w = cos(angle / 2) > 0 there)
    scale = torch.where(n > 1e-12, angle / n.clamp_min(1e-300), 2 / q[..., :1])
    return v * scale


def rotation_exp(rotvec: Tensor) -> Tensor:
    """Rotation matrices ``[..., 3, 3]`` of rotation vectors ``[..., 3]`` (inverse of ``rotation_log``)."""
    rotvec = rotvec.double()
    angle = rotvec.norm(dim=-1, keepdim=True)
    # sin(angle / 2) / angle -> 1/2 - angle^2 / 48 as angle -> 0
    s = torch.where(angle > 1e-6, torch.sin(angle / 2) / angle.clamp_min(1e-300), 0.5 - angle**2 / 48)
    q = torch.cat([torch.cos(angle / 2), rotvec * s], dim=-1)
    return quat_to_matrix(q)


def _progress(extra: int, damping: float) -> Tensor:
    """``S [extra + 1]``: how many mean steps the path has advanced after k new frames (S_0 = 0);
    step k is ``(1-d)^(k-1)`` of a mean step."""
    frac = torch.full((extra,), 1.0 - damping, dtype=torch.float64).pow(torch.arange(extra, dtype=torch.float64))
    return torch.cat([torch.zeros(1, dtype=torch.float64), frac.cumsum(0)])


def _motion_paper(c2w: Tensor, given: Tensor, window: int) -> tuple[Tensor, Tensor]:
    """Paper supp. §7 (module docstring): the world-frame mean step ``v [C, 3]`` and mean turn
    ``omega [C, 3]`` (rotation vector; SLERP by its fraction) of the last ``window`` of the first
    ``given[c]`` frames of ``c2w [F, 4, 4]``, for each of ``C`` prefixes at once."""
    n = given.clamp(max=window)
    last, first = c2w[given - 1], c2w[given - n]
    steps = (n - 1).clamp(min=1).to(torch.float64)[:, None]
    v = (last[:, :3, 3] - first[:, :3, 3]) / steps
    omega = rotation_log(last[:, :3, :3] @ first[:, :3, :3].transpose(1, 2)) / steps
    return v, omega  # a 1-frame prefix gives zeros: last == first


def _motion_official(c2w: Tensor, given: Tensor, window: int) -> tuple[Tensor, Tensor]:
    """The official WorldWarp code's "local momentum" (``extrapolate_camera_path`` in its
    ``pose_control.py``, re-derived here): over the last ``window`` frames, the mean step in the
    camera's own frame ``mean_i R_i^T (t_{i+1} - t_i)`` and the mean body-frame turn
    ``mean_i log(R_i^T R_{i+1})``. As there, the window is ``max(2, min(F - 1, window))`` frames
    of an F-frame prefix. Shapes as ``_motion_paper``."""
    R, t = c2w[:, :3, :3], c2w[:, :3, 3]
    zero = torch.zeros(1, 3, dtype=torch.float64)
    body = (R[:-1].transpose(1, 2) @ (t[1:] - t[:-1]).unsqueeze(-1)).squeeze(-1)  # [F-1, 3]
    turn = rotation_log(R[:-1].transpose(1, 2) @ R[1:]) if c2w.shape[0] > 1 else zero[:0]
    cum_body = torch.cat([zero, body.cumsum(0)])  # prefix sums: window means in O(1)
    cum_turn = torch.cat([zero, turn.cumsum(0)])
    n = (given - 1).clamp(max=window).clamp(min=2)  # frames in the window
    hi = given - 1  # steps i in [given - n, given - 2]
    lo = (given - n).clamp(min=0)
    count = (hi - lo).clamp(min=1).to(torch.float64)[:, None]
    v = (cum_body[hi] - cum_body[lo]) / count
    omega = (cum_turn[hi] - cum_turn[lo]) / count
    return v, omega  # a 1-frame prefix gives zeros: hi == lo


def _rollout_paper(last: Tensor, v: Tensor, omega: Tensor, S: Tensor) -> Tensor:
    """New camera-to-world poses ``[C, K, 4, 4]`` after ``S [K]`` mean steps of world-frame velocity
    ``v [C, 3]`` and turn ``omega [C, 3]`` from ``last [C, 4, 4]``: all turns share omega's axis, so
    ``S_k`` steps of it are one turn by ``S_k omega``."""
    R = rotation_exp(S[None, :, None] * omega[:, None]) @ last[:, None, :3, :3]
    t = last[:, None, :3, 3] + S[None, :, None] * v[:, None]
    return _poses(R, t)


def _rollout_official(last: Tensor, v: Tensor, omega: Tensor, S: Tensor) -> Tensor:
    """As ``_rollout_paper`` for the body-frame momentum: each step moves by ``v`` in the current
    camera's frame, then turns by ``omega`` on the right (``R <- R exp(omega)``); ``S [K]`` starts
    at 0 (the last given pose), the output leaves it out (``[C, K - 1, 4, 4]``)."""
    rots = last[:, None, :3, :3] @ rotation_exp(S[None, :, None] * omega[:, None])  # [C, K, 3, 3]
    frac = (S[1:] - S[:-1])[None, :, None]  # length of step k
    steps = frac * (rots[:, :-1] @ v[:, None, :, None]).squeeze(-1)  # step k in the frame before turn k
    return _poses(rots[:, 1:], last[:, None, :3, 3] + steps.cumsum(1))


def _poses(R: Tensor, t: Tensor) -> Tensor:
    out = torch.zeros(*R.shape[:-2], 4, 4, dtype=torch.float64)
    out[..., :3, :3], out[..., :3, 3] = R, t
    out[..., 3, 3] = 1.0
    return out


def _extrapolate_batch(model: str, c2w: Tensor, given: Tensor, window: int, S: Tensor) -> Tensor:
    """``[C, K, 4, 4]``: ``model`` continues each prefix ``c2w[:given[c]]`` by the steps ``S`` (with S_0 = 0)."""
    last = c2w[given - 1]
    if model == "paper":
        v, omega = _motion_paper(c2w, given, window)
        return _rollout_paper(last, v, omega, S[1:])
    v, omega = _motion_official(c2w, given, window)
    return _rollout_official(last, v, omega, S)


def pose_errors(pred_c2w: Tensor, true_c2w: Tensor) -> tuple[Tensor, Tensor]:
    """Centre distances and rotation angles (radians) between camera-to-world poses ``[..., 4, 4]``."""
    centre = (pred_c2w[..., :3, 3] - true_c2w[..., :3, 3]).norm(dim=-1)
    d = pred_c2w[..., :3, :3] - true_c2w[..., :3, :3]
    # ||A - B||_F = 2 sqrt(2) sin(angle / 2): well conditioned at small angles
    angle = 2 * torch.asin((d.flatten(-2).norm(dim=-1) / (2 * math.sqrt(2))).clamp(max=1.0))
    return centre, angle


def choose_extrapolation(c2w: Tensor, horizon: int, window: int | None = None) -> tuple[str, int]:
    """The ``(model, window)`` that ``auto`` uses: the candidate that best predicts the path's own
    last frames. From each of the last ``_BACKTEST_CUTS`` cut points, every candidate extrapolates
    up to ``min(horizon, 6)`` frames from the frames before the cut; its score is the sum over
    those predictions of (centre error / mean step length + rotation error / mean turn per step)
    / j for the j-th frame ahead (errors in units of the path's own motion; the 1/j weight keeps
    the near frames, whose errors are smaller, from being drowned by the far ones). Ties go to
    the earlier candidate. Paths too short to test (< 3 frames) repeat the last relative pose
    (``official`` with window 2)."""
    c2w = c2w.double()
    F = c2w.shape[0]
    candidates = [(m, w) for m, w in _AUTO_CANDIDATES if window is None or w == window]
    if window is not None and not candidates:
        candidates = [("official", window), ("paper", window)]
    if F < 3:
        return candidates[0]
    steps, turns = pose_errors(c2w[1:], c2w[:-1])
    step_unit = float(steps.mean()) if float(steps.mean()) > 0 else 1.0
    turn_unit = max(float(turns.mean()), 1e-9)
    H = max(1, min(horizon, _BACKTEST_HORIZON))
    given = torch.arange(max(2, F - _BACKTEST_CUTS), F)  # [C] frames before each cut
    target = given[:, None] + torch.arange(H)[None, :]  # [C, H] frames predicted
    weight = (target < F) / torch.arange(1, H + 1, dtype=torch.float64)  # frames past the path count 0
    truth = c2w[target.clamp(max=F - 1)]
    S = _progress(H, 0.0)
    best, best_score = candidates[0], math.inf
    for model, w in candidates:
        centre, angle = pose_errors(_extrapolate_batch(model, c2w, given, w, S), truth)
        score = float((weight * (centre / step_unit + angle / turn_unit)).sum())
        if score < best_score * (1 - 1e-9):
            best, best_score = (model, w), score
    return best


def extrapolate(cameras: Cameras, extra: int, window: int | None = None, damping: float = 0.0,
                method: ExtrapolationMethod = "auto") -> Cameras:
    """``extra`` new cameras continuing the path (module docstring).

    Args:
        method: ``"paper"`` (world-frame mean velocity + SLERP, paper supp. §7; window 20),
            ``"official"`` (body-frame momentum of the official code; window 10) or ``"auto"``
            (the default: whichever of both, with a window of 2-10 frames, best predicts the
            path's own last frames; ``choose_extrapolation``). Constant-velocity lines and
            constant-turn arcs continue exactly.
        window: frames of the smoothing window; ``None`` takes the method's default (for
            ``auto``: restricts the windows tried to this one).
        damping: ``d`` in [0, 1): step k moves and turns by ``(1-d)^(k-1)`` of the mean step.
    """
    extra = check_frames(extra, "extra frames")
    if method not in EXTRAPOLATION_METHODS:
        raise ValueError(f"unknown extrapolation method {method!r}; use one of {', '.join(EXTRAPOLATION_METHODS)}")
    if window is not None and window < 1:
        raise ValueError(f"smoothing window must be >= 1 frame, got {window}")
    if not 0.0 <= damping < 1.0:
        raise ValueError(f"damping must be in [0, 1), got {damping}")
    c2w = cameras.c2w.double()
    if method == "auto":
        model, w = choose_extrapolation(c2w, extra, window)
    else:
        model, w = method, window if window is not None else (20 if method == "paper" else 10)
    out = _extrapolate_batch(model, c2w, torch.tensor([c2w.shape[0]]), w, _progress(extra, damping))[0]
    Ks = cameras.Ks[-1:].double().expand(extra, 3, 3).clone()
    return Cameras.from_c2w(out, Ks, cameras.width, cameras.height)


EXTEND_MODES: tuple[str, ...] = ("extrapolate", "loop", "pingpong", "slowdown")


def extend_to(cameras: Cameras, total: int,
              mode: Literal["extrapolate", "loop", "pingpong", "slowdown"] = "extrapolate",
              window: int | None = None, damping: float = 0.0, method: ExtrapolationMethod = "auto") -> Cameras:
    """The whole path with ``total`` frames: the given cameras, then ``mode`` past the end.

    ``extrapolate``: continue the motion (``extrapolate`` with ``method``, ``window``, ``damping``); ``loop``: travel back to the start camera
    (SLERP + linear over a quarter of the path's length) and play the path again;
    ``pingpong``: play the path backwards, then forwards, and so on; ``slowdown``: the official
    demo's ``extend_poses_slowdown``, the body-frame momentum of the last 10 frames (``window``)
    with step k at ``max(0.95^k, 0.1)`` of the mean step, so the camera slows but never stops
    (``damping`` and ``method`` play no part).
    """
    F = len(cameras)
    total = check_frames(total, "total frames")
    if total <= F:
        return cameras[:total]
    if mode == "extrapolate":
        return Cameras.cat([cameras, extrapolate(cameras, total - F, window, damping, method)])
    if mode == "slowdown":
        if window is not None and window < 1:
            raise ValueError(f"smoothing window must be >= 1 frame, got {window}")
        extra = total - F
        c2w = cameras.c2w.double()
        w = official_paths.SLOWDOWN_WINDOW if window is None else window
        new = _extrapolate_batch("official", c2w, torch.tensor([F]), w, official_paths.slowdown_progress(extra))[0]
        Ks = cameras.Ks[-1:].double().expand(extra, 3, 3).clone()
        return Cameras.cat([cameras, Cameras.from_c2w(new, Ks, cameras.width, cameras.height)])
    if mode == "pingpong":
        if F == 1:
            return Cameras.cat([cameras] * total)
        period = list(range(F)) + list(range(F - 2, 0, -1))
        idx = [period[i % len(period)] for i in range(total)]
        return cameras[torch.tensor(idx)]
    if mode == "loop":
        back = max(2, F // 4)
        ret = _lerp_cameras(Cameras.cat([cameras[-1], cameras[0]]), torch.linspace(0, 1, back + 2, dtype=torch.float64)[1:-1])
        period = Cameras.cat([cameras, ret])
        reps = -(-total // len(period))
        return Cameras.cat([period] * reps)[:total]
    raise ValueError(f"unknown extend mode {mode!r}; use one of {', '.join(EXTEND_MODES)}")


# ----------------------------------------------------------------------------- speed


def resample(cameras: Cameras, frames: int) -> Cameras:
    """``frames`` cameras evenly spaced by arc length along the centres (endpoints kept).

    A path that does not move (pure rotation / zoom) is resampled evenly in time instead.
    """
    frames = check_frames(frames)
    F = len(cameras)
    if F == 1:
        return Cameras.cat([cameras] * frames)
    c = cameras.centers.double()
    seg = (c[1:] - c[:-1]).norm(dim=1)
    total = float(seg.sum())
    if total < 1e-12:
        return _lerp_cameras(cameras, torch.linspace(0, F - 1, frames, dtype=torch.float64))
    cum = torch.cat([torch.zeros(1, dtype=torch.float64), seg.cumsum(0)])
    target = torch.linspace(0, total, frames, dtype=torch.float64)
    i = torch.searchsorted(cum, target, right=True).clamp(1, F - 1) - 1
    t = ((target - cum[i]) / seg[i].clamp_min(1e-12)).clamp(0, 1)
    return _lerp_cameras(cameras, i.double() + t)


def rescale_speed(cameras: Cameras, speed: float) -> Cameras:
    """Play the path ``speed`` times faster (fewer frames, constant speed along the path)."""
    if not (speed > 0 and math.isfinite(speed)):
        raise ValueError(f"speed must be a positive number, got {speed}")
    frames = (len(cameras) - 1) / speed + 1
    if frames > MAX_FRAMES:
        raise ValueError(f"speed {speed} makes {frames:.0f} frames of {len(cameras)}; the limit is {MAX_FRAMES} frames")
    frames = max(1, round(frames))
    return resample(cameras, frames)


def median_depth(depth: Tensor) -> float:
    """Median of the finite, positive depth values ``[..., H, W]``: the presets' unit."""
    d = depth[torch.isfinite(depth) & (depth > 0)]
    if d.numel() == 0:
        raise ValueError("depth map has no finite positive value; cannot set the scene scale")
    return float(d.float().median())
