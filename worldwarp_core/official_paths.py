"""The official WorldWarp demo's camera paths: its presets, their sum, smoothing and speed.

Re-derived from the official inference code (``pose_control.py`` and ``gradio_demo.py`` of the
``qbhan/WorldWarp`` repository, last commit 0396b80): ``CAMERA_MOVEMENTS``,
``CameraPoseController.generate_poses_from_config`` / ``_generate_segment_poses`` /
``smooth_poses_savgol``, ``combine_movements`` and the demo's ``extend_poses_slowdown`` /
``extend_poses_interpolate_stretch``. Nothing is imported from there; scipy is not needed (the
tests compare with a transcription that uses scipy, as the official code does).

Units (unlike the pack's presets, nothing is scaled to the scene): translations are per frame
in the geometry model's units, rotations in degrees, focal ``1.2·W`` (``OFFICIAL_FOCAL``,
about 45° horizontal). A movement has nine amounts, named as the official code names them
(its "roll" is a tilt and its "pitch" a pan, see ``OfficialMove``).

Path of one segment of ``n`` frames from the start pose ``(c_0, angles_0)`` (``i = 0..n-1``,
``s(t) = t²(3 - 2t)`` the smoothstep of ``t = i / max(n-1, 1)``)::

    angles_i = angles_0 + delta · s(t) + angular_velocity · i          (degrees)
    R_i      = Rx(roll_i) · Ry(pitch_i) · Rz(yaw_i)                     (camera-to-world)
    c_i      = c_0 + R_i · (move_right·i, move_up·i, move_forward·i)

Segments follow each other (each starts at the last pose and angles of the previous one; the
frames are split evenly, the first ``frames % k`` segments one longer), then positions and
quaternions are smoothed with a Savitzky-Golay filter (window 7, cubic; quaternions
renormalised). Frame 0 is then the start camera again (``make_trajectory`` anchors the path at
its first pose, as the official loop does with ``get_relative_poses(poses, 0)``).

Spec grammar (``official:`` in front of every name, case-insensitive)::

    official:dolly_in                       one movement
    official:dolly_in + official:pan_right  ADDED: both at once (the official "A + B")
    official:dolly_in@0.5                   every amount of that movement times 0.5
    official:dolly_in ; official:pan_left   segments one after another (the official chunk list)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor

from .cameras import Cameras

PREFIX = "official:"
OFFICIAL_FOCAL = 1.2  # focal length in units of the image width (CameraPoseController's default)
SMOOTHING_WINDOW = 7  # CONFIG.camera_pose_control.smoothing_window
SMOOTHING_POLYORDER = 3  # smooth_poses_savgol's savgol_filter(..., window, 3)
SLOWDOWN_DECAY = 0.95  # extend_poses_slowdown: step k is max(0.95^k, 0.1) of the mean step
SLOWDOWN_FLOOR = 0.1
SLOWDOWN_WINDOW = 10


@dataclass(frozen=True)
class OfficialMove:
    """The nine amounts of an official movement (``CameraPoseConfig``), the official names kept.

    ``roll`` / ``pitch`` / ``yaw`` (degrees, reached over the segment with a smoothstep) are
    rotations about the start camera's x axis (a tilt: + looks up), y axis (a pan: + turns right)
    and z axis (a roll about the view axis; the official ``ROLL_LEFT`` is +), composed as in
    ``euler_matrix``; ``move_*`` are per frame along the current camera's x (right), y (down:
    ``move_up`` < 0 rises) and z (forward) axes; ``angular_velocity_*`` are degrees per frame
    added on top."""

    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0
    move_forward: float = 0.0
    move_right: float = 0.0
    move_up: float = 0.0
    angular_velocity_roll: float = 0.0
    angular_velocity_pitch: float = 0.0
    angular_velocity_yaw: float = 0.0

    def __add__(self, other: "OfficialMove") -> "OfficialMove":
        return OfficialMove(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def scaled(self, s: float) -> "OfficialMove":
        return OfficialMove(*(getattr(self, f.name) * s for f in fields(self)))


def _m(**kw) -> OfficialMove:
    return OfficialMove(**kw)


# name -> (movement, what it does); the official CAMERA_MOVEMENTS (lower case; its "ORBIT_DONW" is
# "orbit_down", the official spelling is accepted too)
OFFICIAL_PRESETS: dict[str, tuple[OfficialMove, str]] = {
    "dolly_in": (_m(move_forward=0.008), "forward 0.008 per frame"),
    "dolly_out": (_m(move_forward=-0.005), "backward 0.005 per frame"),
    "truck_right": (_m(move_right=0.004), "right 0.004 per frame"),
    "truck_left": (_m(move_right=-0.004), "left 0.004 per frame"),
    "pedestal_up": (_m(move_up=-0.005), "up 0.005 per frame"),
    "pedestal_down": (_m(move_up=0.005), "down 0.005 per frame"),
    "pan_right": (_m(pitch=5.0), "pan right 5 degrees over the segment"),
    "pan_left": (_m(pitch=-5.0), "pan left 5 degrees over the segment"),
    "tilt_up": (_m(roll=5.0), "tilt up 5 degrees over the segment"),
    "tilt_down": (_m(roll=-5.0), "tilt down 5 degrees over the segment"),
    "roll_left": (_m(yaw=5.0), "roll 5 degrees over the segment (+z)"),
    "roll_right": (_m(yaw=-5.0), "roll -5 degrees over the segment (-z)"),
    "orbit_right": (_m(angular_velocity_pitch=0.1), "keep panning right 0.1 degrees per frame"),
    "orbit_left": (_m(angular_velocity_pitch=-0.1), "keep panning left 0.1 degrees per frame"),
    "orbit_up": (_m(angular_velocity_roll=0.1), "keep tilting up 0.1 degrees per frame"),
    "orbit_down": (_m(angular_velocity_roll=-0.1), "keep tilting down 0.1 degrees per frame"),
    "crane_up": (_m(roll=-3.0, move_forward=0.002, move_up=-0.003), "rise, tilt down 3 degrees, creep forward"),
    "crane_down": (_m(roll=3.0, move_forward=0.002, move_up=0.003), "sink, tilt up 3 degrees, creep forward"),
    "tracking_shot": (_m(pitch=-4.0, move_forward=0.002, move_right=0.004), "move right, pan left 4 degrees"),
    "reveal_shot": (_m(roll=-3.0, move_up=-0.008, angular_velocity_yaw=-0.05), "rise fast, tilt down, slow roll"),
    "establishing_shot": (_m(move_forward=0.012), "forward 0.012 per frame"),
    "static": (_m(), "camera does not move"),
    "dolly_in_slow": (_m(move_forward=0.005), "forward 0.005 per frame"),
    "dolly_in_fast": (_m(move_forward=0.015), "forward 0.015 per frame"),
    "pan_right_slow": (_m(pitch=3.0), "pan right 3 degrees over the segment"),
    "pan_left_slow": (_m(pitch=-3.0), "pan left 3 degrees over the segment"),
    "tilt_up_slow": (_m(roll=3.0), "tilt up 3 degrees over the segment"),
    "tilt_down_slow": (_m(roll=-3.0), "tilt down 3 degrees over the segment"),
    "zoom_in": (_m(roll=1.0, move_forward=0.006), "forward 0.006 per frame, tilt up 1 degree (no zoom)"),
    "hero_shot": (_m(roll=2.0, pitch=2.0, move_forward=0.005), "forward, tilt up and pan right 2 degrees"),
    "float_up": (_m(roll=-2.0, move_up=-0.002), "rise 0.002 per frame, tilt down 2 degrees"),
    "float_down": (_m(roll=2.0, move_up=0.002), "sink 0.002 per frame, tilt up 2 degrees"),
    "circle_right": (_m(move_forward=0.002, move_right=0.002, angular_velocity_pitch=0.1),
                     "forward and right while panning right 0.1 degrees per frame"),
    "circle_left": (_m(move_forward=0.002, move_right=-0.002, angular_velocity_pitch=-0.1),
                    "forward and left while panning left 0.1 degrees per frame"),
}
_ALIASES = {"orbit_donw": "orbit_down"}

MAX_SPEC_CHARS = 1_000  # the limits of trajectory.py (its module imports this one; a test holds them equal)
MAX_PARTS = 16
MAX_STRENGTH = 1_000.0
MAX_FRAMES = 10_000


def list_official_presets() -> list[str]:
    """``official:<name>`` for every official movement, sorted."""
    return [PREFIX + n for n in sorted(OFFICIAL_PRESETS)]


def is_official_spec(spec) -> bool:
    """Whether a trajectory spec uses the official namespace (any part named ``official:...``)."""
    return isinstance(spec, str) and PREFIX in spec.lower()


_HINT = "write e.g. 'official:dolly_in', 'official:dolly_in + official:pan_right' or 'official:pan_left@0.5'"


def _show(text: str) -> str:
    return " ".join(text.split())[:80]


def _parse_part(text: str) -> tuple[str, float]:
    name, at, strength = text.partition("@")
    name = name.strip().lower()
    if not name.startswith(PREFIX):
        if name.replace("_", "").isalnum():
            raise ValueError(f"trajectory part {_show(text)!r}: official paths take official presets only; write "
                             f"'{PREFIX}{name}' (the pack's own presets cannot be mixed with official ones)")
        raise ValueError(f"cannot read trajectory part {_show(text)!r}; {_HINT}")
    key = name[len(PREFIX):].strip()
    key = _ALIASES.get(key, key)
    if key not in OFFICIAL_PRESETS:
        raise ValueError(f"unknown official camera preset {name[:48]!r}; choose from "
                         f"{', '.join(list_official_presets())}")
    s = 1.0
    if at:
        t = strength.strip()
        try:
            s = float(t) if t and len(t) <= 32 and "@" not in t else math.nan
        except ValueError:
            s = math.nan
        if not math.isfinite(s) or abs(s) > MAX_STRENGTH:
            raise ValueError(f"the strength {t[:32]!r} of trajectory part {_show(text)!r} must be a finite number "
                             f"within +-{MAX_STRENGTH:g}; {_HINT}")
    return key, s


def parse_official(spec: str) -> list[list[tuple[str, float]]]:
    """An official spec (module docstring) -> segments, each a list of ``(name, strength)`` to add."""
    if not isinstance(spec, str):
        raise ValueError(f"trajectory must be text such as 'official:dolly_in', got {type(spec).__name__}")
    if len(spec) > MAX_SPEC_CHARS:
        raise ValueError(f"trajectory text is {len(spec)} characters; the limit is {MAX_SPEC_CHARS}")
    if "*" in spec or ":" in spec.lower().replace(PREFIX, ""):
        raise ValueError(f"trajectory {_show(spec)!r}: official presets add with '+' and follow each other with "
                         "';' (no '*' blend, no ':' weights)")
    segments = [[_parse_part(p) for p in seg.split("+")] for seg in spec.split(";")]
    if sum(len(s) for s in segments) > MAX_PARTS:
        raise ValueError(f"trajectory has more than {MAX_PARTS} parts; the limit is {MAX_PARTS}")
    return segments


def official_moves(spec: str, strength: float = 1.0) -> list[OfficialMove]:
    """One summed ``OfficialMove`` per segment of ``spec`` (the official ``combine_movements``),
    every amount times ``strength``."""
    moves = []
    for seg in parse_official(spec):
        total = OfficialMove()
        for name, s in seg:
            total = total + OFFICIAL_PRESETS[name][0].scaled(s * strength)
        moves.append(total)
    return moves


# ----------------------------------------------------------------------------- rotations (scipy's conventions)


def euler_matrix(roll: Tensor, pitch: Tensor, yaw: Tensor) -> Tensor:
    """``Rx(roll) @ Ry(pitch) @ Rz(yaw)`` for angles in degrees ``[F]`` -> ``[F, 3, 3]``: scipy's
    ``Rotation.from_euler('zyx', [yaw, pitch, roll], degrees=True)`` (extrinsic z, then y, then x)
    that the official ``euler_to_rotation_matrix`` calls."""
    a, b, c = (torch.deg2rad(torch.as_tensor(v, dtype=torch.float64)) for v in (roll, pitch, yaw))
    one, zero = torch.ones_like(a), torch.zeros_like(a)
    rx = torch.stack([one, zero, zero, zero, a.cos(), -a.sin(), zero, a.sin(), a.cos()], -1).view(-1, 3, 3)
    ry = torch.stack([b.cos(), zero, b.sin(), zero, one, zero, -b.sin(), zero, b.cos()], -1).view(-1, 3, 3)
    rz = torch.stack([c.cos(), -c.sin(), zero, c.sin(), c.cos(), zero, zero, zero, one], -1).view(-1, 3, 3)
    return rx @ ry @ rz


def quat_xyzw(R: Tensor) -> Tensor:
    """Rotation matrices ``[F, 3, 3]`` -> quaternions ``[F, 4]`` (x, y, z, w) with scipy's sign choice.

    The official smoothing and speed change average quaternions component-wise, so their sign
    matters: this is scipy's ``Rotation.from_matrix(R).as_quat()`` (Shepperd's method, the branch of
    the largest of ``R00, R11, R22, trace``; matrices not orthonormal to 1e-12 are first replaced by
    their nearest rotation ``U Vᵀ``, as scipy does)."""
    m = R.double().reshape(-1, 3, 3)
    gram_err = (m @ m.transpose(1, 2) - torch.eye(3, dtype=torch.float64)).abs().amax(dim=(1, 2))
    bad = gram_err > 1e-12
    if bool(bad.any()):
        U, _, Vh = torch.linalg.svd(m[bad])
        m = m.clone()
        m[bad] = U @ Vh
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    choice = torch.stack([m[:, 0, 0], m[:, 1, 1], m[:, 2, 2], tr], -1).argmax(-1)
    q = torch.stack([
        torch.stack([1 - tr + 2 * m[:, 0, 0], m[:, 1, 0] + m[:, 0, 1], m[:, 2, 0] + m[:, 0, 2], m[:, 2, 1] - m[:, 1, 2]], -1),
        torch.stack([m[:, 1, 0] + m[:, 0, 1], 1 - tr + 2 * m[:, 1, 1], m[:, 2, 1] + m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0]], -1),
        torch.stack([m[:, 2, 0] + m[:, 0, 2], m[:, 2, 1] + m[:, 1, 2], 1 - tr + 2 * m[:, 2, 2], m[:, 1, 0] - m[:, 0, 1]], -1),
        torch.stack([m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1], 1 + tr], -1),
    ], 1)  # [F, 4 cases, 4]
    q = q[torch.arange(m.shape[0]), choice]
    return q / q.norm(dim=-1, keepdim=True)


def matrix_from_xyzw(q: Tensor) -> Tensor:
    """Quaternions ``[F, 4]`` (x, y, z, w; any norm) -> rotation matrices ``[F, 3, 3]``."""
    q = q.double() / q.double().norm(dim=-1, keepdim=True)
    x, y, z, w = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], -1).view(-1, 3, 3)


# ----------------------------------------------------------------------------- Savitzky-Golay


def _fit_weights(offsets: np.ndarray, at: np.ndarray, polyorder: int) -> np.ndarray:
    """``[len(at), len(offsets)]``: values at ``at`` of the least-squares polynomial of degree
    ``polyorder`` through samples at ``offsets`` (a linear map of the samples)."""
    V = np.vander(offsets, polyorder + 1, increasing=True)
    return np.vander(at, polyorder + 1, increasing=True) @ np.linalg.pinv(V)


def savgol(x: Tensor, window: int, polyorder: int) -> Tensor:
    """Savitzky-Golay smoothing of ``x [N, C]`` along N, as ``scipy.signal.savgol_filter(x, window,
    polyorder, axis=0)`` with its default ``mode='interp'``: each inner sample is the value at the
    centre of the least-squares polynomial over the window around it; the first and last
    ``window // 2`` samples take the polynomial fitted to the first / last ``window`` samples."""
    if window % 2 != 1 or window < 1:
        raise ValueError(f"Savitzky-Golay window must be an odd number of frames, got {window}")
    if polyorder >= window:
        raise ValueError(f"Savitzky-Golay polyorder {polyorder} must be less than the window {window}")
    n = x.shape[0]
    if window > n:
        raise ValueError(f"Savitzky-Golay window {window} is longer than the {n} samples")
    xs = x.double().cpu().numpy()
    half = window // 2
    offsets = np.arange(window, dtype=np.float64) - half
    centre = _fit_weights(offsets, np.zeros(1), polyorder)[0]  # [window]
    out = np.empty_like(xs)
    # inner samples: a correlation with the centre weights
    out[half:n - half] = sum(centre[j] * xs[j:n - window + 1 + j] for j in range(window))
    edge = _fit_weights(offsets, offsets[:half], polyorder)  # [half, window]
    out[:half] = edge @ xs[:window]
    out[n - half:] = _fit_weights(offsets, offsets[window - half:], polyorder) @ xs[n - window:]
    return torch.from_numpy(out)


def official_window(frames: int, window: int = SMOOTHING_WINDOW) -> int:
    """The window ``smooth_poses_savgol`` uses on ``frames`` poses: made odd, at most the poses
    (odd); 0 when it would not exceed the polynomial order (the official code fails there: such
    short paths are left unsmoothed)."""
    if window % 2 == 0:
        window += 1
    if window > frames:
        window = frames if frames % 2 == 1 else frames - 1
    return window if window > SMOOTHING_POLYORDER else 0


def smooth_poses(c2w: Tensor, window: int = SMOOTHING_WINDOW, polyorder: int = SMOOTHING_POLYORDER) -> Tensor:
    """``smooth_poses_savgol``: Savitzky-Golay on the centres and on the quaternions (scipy's signs,
    renormalised) of camera-to-world poses ``[F, 4, 4]``; paths too short for the window are
    returned as they are (``official_window``)."""
    w = official_window(c2w.shape[0], window)
    if w == 0:
        return c2w.double().clone()
    pos = savgol(c2w[:, :3, 3], w, polyorder)
    q = savgol(quat_xyzw(c2w[:, :3, :3]), w, polyorder)
    out = torch.zeros(c2w.shape[0], 4, 4, dtype=torch.float64)
    out[:, :3, :3] = matrix_from_xyzw(q)
    out[:, :3, 3] = pos
    out[:, 3, 3] = 1.0
    return out


# ----------------------------------------------------------------------------- paths


def segment_lengths(frames: int, segments: int) -> list[int]:
    """The official split of ``frames`` over ``segments``: ``frames // k`` each, the first
    ``frames % k`` one more."""
    if segments > frames:
        raise ValueError(f"{segments} official path segments need at least {segments} frames, got {frames}")
    per, extra = divmod(frames, segments)
    return [per + (1 if i < extra else 0) for i in range(segments)]


def official_poses(moves: list[OfficialMove], frames: int, smoothing_window: int = SMOOTHING_WINDOW,
                   rotation_ease: str = "smoothstep") -> Tensor:
    """Camera-to-world poses ``[frames, 4, 4]`` (float64) of the official
    ``generate_poses_from_config`` from the identity (module docstring), smoothed (window 0: not)."""
    if rotation_ease not in ("smoothstep", "linear"):
        raise ValueError(f"rotation_ease must be 'smoothstep' (the official 'cubic') or 'linear', got {rotation_ease!r}")
    if not moves:
        raise ValueError("an official path needs at least one movement")
    pos = torch.zeros(3, dtype=torch.float64)
    angles = torch.zeros(3, dtype=torch.float64)  # roll, pitch, yaw (degrees), tracked across segments
    out = []
    for mv, n in zip(moves, segment_lengths(frames, len(moves))):
        i = torch.arange(n, dtype=torch.float64)
        t = i / max(n - 1, 1)
        s = t * t * (3.0 - 2.0 * t) if rotation_ease == "smoothstep" else t
        delta = torch.tensor([mv.roll, mv.pitch, mv.yaw], dtype=torch.float64)
        vel = torch.tensor([mv.angular_velocity_roll, mv.angular_velocity_pitch, mv.angular_velocity_yaw],
                           dtype=torch.float64)
        ang = angles + delta * s[:, None] + vel * i[:, None]  # [n, 3]
        R = euler_matrix(ang[:, 0], ang[:, 1], ang[:, 2])
        disp = torch.tensor([mv.move_right, mv.move_up, mv.move_forward], dtype=torch.float64) * i[:, None]
        P = torch.zeros(n, 4, 4, dtype=torch.float64)
        P[:, :3, :3] = R
        P[:, :3, 3] = pos + (R @ disp[:, :, None])[..., 0]
        P[:, 3, 3] = 1.0
        out.append(P)
        pos, angles = P[-1, :3, 3].clone(), ang[-1].clone()
    c2w = torch.cat(out)
    return smooth_poses(c2w, smoothing_window) if smoothing_window else c2w


def official_intrinsics(width: int, height: int, frames: int = 1) -> Tensor:
    """``[frames, 3, 3]``: focal ``1.2·W`` on both axes, principal point at the image centre."""
    f = OFFICIAL_FOCAL * width
    K = torch.tensor([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    return K.expand(frames, 3, 3).clone()


def official_trajectory(spec: str, frames: int, start: Cameras, strength: float = 1.0,
                        smoothing_window: int = SMOOTHING_WINDOW) -> Cameras:
    """Cameras ``[frames]`` of an official spec from the ``start`` camera: the official path,
    re-anchored at its first pose (frame 0 is ``start``), with the official intrinsics."""
    c2w = official_poses(official_moves(spec, strength), frames, smoothing_window)
    local = torch.linalg.inv(c2w[0]) @ c2w
    local[0] = torch.eye(4, dtype=torch.float64)
    return Cameras.from_c2w(start.c2w[0].double() @ local, official_intrinsics(start.width, start.height, frames),
                            start.width, start.height)


def official_segment_ends(spec: str, frames: int) -> list[int]:
    """Last frame of each segment of an official spec (increasing, without repeats)."""
    ends, total = [], 0
    for n in segment_lengths(frames, len(parse_official(spec))):
        total += n
        ends.append(total - 1)
    return sorted(set(e for e in ends if e > 0) | {frames - 1})


# ----------------------------------------------------------------------------- speed and slowdown


def slowdown_progress(extra: int, decay: float = SLOWDOWN_DECAY, floor: float = SLOWDOWN_FLOOR) -> Tensor:
    """``S [extra + 1]``: mean steps travelled after k new frames of ``extend_poses_slowdown``
    (S_0 = 0; step k is ``max(decay^k, floor)`` of the mean step, k from 0)."""
    k = torch.arange(extra, dtype=torch.float64)
    step = torch.clamp(torch.full_like(k, decay).pow(k), min=floor)
    return torch.cat([torch.zeros(1, dtype=torch.float64), step.cumsum(0)])


def _not_a_knot_second_derivatives(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Second derivatives ``[N, C]`` of the not-a-knot cubic spline through ``(x [N], y [N, C])``, N >= 4
    (scipy's ``interp1d(kind='cubic')``): the third derivative is continuous at x_1 and x_{N-2}."""
    n = x.shape[0]
    h = np.diff(x)
    d = np.diff(y, axis=0) / h[:, None]
    rhs = 6.0 * (d[1:] - d[:-1])  # [N-2, C] rows i = 1..N-2
    m = n - 2
    lower, diag, upper = np.zeros(m), np.zeros(m), np.zeros(m)
    for r in range(m):
        i = r + 1
        lower[r], diag[r], upper[r] = h[i - 1], 2.0 * (h[i - 1] + h[i]), h[i]
    # not-a-knot: M_0 = (1 + h0/h1) M_1 - (h0/h1) M_2, and the mirror at the end, substituted
    diag[0] += h[0] * (1.0 + h[0] / h[1])
    upper[0] -= h[0] * h[0] / h[1]
    diag[-1] += h[-1] * (1.0 + h[-1] / h[-2])
    lower[-1] -= h[-1] * h[-1] / h[-2]
    if m == 2:  # both rows hold both unknowns
        A = np.array([[diag[0], upper[0]], [lower[1], diag[1]]])
        inner = np.linalg.solve(A, rhs)
    else:  # Thomas algorithm
        c, r_ = np.zeros(m), np.zeros_like(rhs)
        c[0], r_[0] = upper[0] / diag[0], rhs[0] / diag[0]
        for i in range(1, m):
            den = diag[i] - lower[i] * c[i - 1]
            c[i] = upper[i] / den if i < m - 1 else 0.0
            r_[i] = (rhs[i] - lower[i] * r_[i - 1]) / den
        inner = np.zeros_like(rhs)
        inner[-1] = r_[-1]
        for i in range(m - 2, -1, -1):
            inner[i] = r_[i] - c[i] * inner[i + 1]
    M = np.zeros_like(y)
    M[1:-1] = inner
    M[0] = (1.0 + h[0] / h[1]) * M[1] - (h[0] / h[1]) * M[2]
    M[-1] = (1.0 + h[-1] / h[-2]) * M[-2] - (h[-1] / h[-2]) * M[-3]
    return M


def cubic_spline(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The not-a-knot cubic spline through ``(x [N], y [N, C])`` at ``at [M]`` (inside [x_0, x_{N-1}])."""
    M = _not_a_knot_second_derivatives(x, y)
    i = np.clip(np.searchsorted(x, at, side="right") - 1, 0, x.shape[0] - 2)
    h = (x[i + 1] - x[i])[:, None]
    a, b = (x[i + 1] - at)[:, None], (at - x[i])[:, None]
    return (M[i] * a**3 + M[i + 1] * b**3) / (6 * h) + (y[i] / h - M[i] * h / 6) * a + (y[i + 1] / h - M[i + 1] * h / 6) * b


def change_speed(cameras: Cameras, speed: float) -> Cameras:
    """The demo's speed multiplier (``extend_poses_interpolate_stretch``): the path resampled to
    ``int(F / speed)`` frames evenly in time, centres by a not-a-knot cubic spline, quaternions
    (scipy's signs) linearly then renormalised, intrinsics linearly. ``speed`` 1 returns the path."""
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not (math.isfinite(speed) and speed > 0):
        raise ValueError(f"speed multiplier must be a positive number (the official demo: 0.25 to 4), got {speed!r}")
    F = len(cameras)
    target = int(F / speed)
    if target == F:
        return cameras
    if target < 1:
        raise ValueError(f"speed multiplier {speed} leaves no frame of the {F}-camera path; use at most {F}")
    if target > MAX_FRAMES:
        raise ValueError(f"speed multiplier {speed} makes {target} frames of {F}; the limit is {MAX_FRAMES} frames")
    if F < 4:
        raise ValueError(f"the speed multiplier needs a path of at least 4 cameras (a cubic spline), got {F}")
    c2w = cameras.c2w.double().cpu()
    t = np.linspace(0.0, 1.0, F)
    t_new = np.linspace(0.0, 1.0, target)
    centres = cubic_spline(t, c2w[:, :3, 3].numpy(), t_new)
    q = quat_xyzw(c2w[:, :3, :3]).numpy()
    Ks = cameras.Ks.double().cpu().reshape(F, 9).numpy()
    i = np.clip(np.searchsorted(t, t_new, side="right") - 1, 0, F - 2)
    u = ((t_new - t[i]) / (t[i + 1] - t[i]))[:, None]
    q_new = q[i] * (1 - u) + q[i + 1] * u
    K_new = (Ks[i] * (1 - u) + Ks[i + 1] * u).reshape(target, 3, 3)
    out = torch.zeros(target, 4, 4, dtype=torch.float64)
    out[:, :3, :3] = matrix_from_xyzw(torch.from_numpy(q_new))
    out[:, :3, 3] = torch.from_numpy(centres)
    out[:, 3, 3] = 1.0
    return Cameras.from_c2w(out, torch.from_numpy(K_new), cameras.width, cameras.height)


__all__ = [
    "OFFICIAL_FOCAL", "OFFICIAL_PRESETS", "OfficialMove", "PREFIX", "SMOOTHING_POLYORDER", "SMOOTHING_WINDOW",
    "change_speed", "cubic_spline", "euler_matrix", "is_official_spec", "list_official_presets",
    "official_intrinsics", "official_moves", "official_poses", "official_segment_ends", "official_trajectory",
    "parse_official", "quat_xyzw", "savgol", "slowdown_progress", "smooth_poses",
]
