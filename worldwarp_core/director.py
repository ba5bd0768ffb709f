"""Keyframe camera paths (the Camera Director): a keyframe path spec -> cameras, keyframes fitted to
any path (presets, camera files), the scene and path in the start camera's frame for drawing, and
the coverage of each frame by the start image's geometry, and a prediction of what a persistent
world memory could recall in each frame that the online cache could not (``revisit_coverage``).

A keyframe path lives in the START camera's frame, in scene units (the first frame's median depth,
like the presets), so it does not depend on the depth model's units nor on where the geometry put
the start camera::

    {"frames": 49, "interpolation": "spline",
     "keyframes": [{"frame": 24, "position": [0.0, 0.0, 0.5], "rotation": [1, 0, 0, 0],
                    "focal": 1.0, "ease": "linear"}, ...]}

* frame 0 is always the start camera (the image's own camera); it is not listed.
* ``position``: the keyframe camera's centre in the start camera's axes (OpenCV: x right, y down,
  z forward) in median depths; ``rotation``: the unit quaternion (w, x, y, z) of its camera-to-
  start-camera rotation; ``focal``: focal length factor over the start camera's.
* ``ease``: the speed profile of the segment that ENDS at this keyframe (``trajectory.EASES``).
* ``frames``: the path length the frame numbers refer to; a node asked for another number of
  frames stretches the key times by ``(frames' - 1) / (frames - 1)``.

Cameras come from ``trajectory.interpolate_at`` (the one interpolation code of the project).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .cameras import Cameras
from .inputs import loads_json
from .schedule import latent_frame_count
from .trajectory import (
    EASES,
    MAX_FRAMES,
    interpolate_at,
    interpolate_poses,
    make_trajectory,
    matrix_to_quat,
    quat_to_matrix,
)
from .warp import one_to_all_warp, pixel_rays, unproject

MAX_SPEC_CHARS = 200_000
MAX_KEYFRAMES = 500
INTERPOLATIONS = ("spline", "linear")


@dataclass(frozen=True)
class Keyframe:
    frame: float
    position: tuple[float, float, float]
    rotation: tuple[float, float, float, float]  # (w, x, y, z), camera-to-start-camera
    focal: float = 1.0
    ease: str = "linear"


@dataclass(frozen=True)
class KeyframePath:
    frames: int
    keys: tuple[Keyframe, ...]  # frame 0 (the start camera) is implicit
    interpolation: str = "spline"

    def to_dict(self) -> dict:
        return {"frames": self.frames, "interpolation": self.interpolation,
                "keyframes": [{"frame": k.frame, "position": list(k.position), "rotation": list(k.rotation),
                               "focal": k.focal, "ease": k.ease} for k in self.keys]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def _number(value, what: str) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    try:
        ok = ok and math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        ok = False
    if not ok:
        shown = f"a {value.bit_length()}-bit integer" if isinstance(value, int) and ok is False and not \
            isinstance(value, bool) and value.bit_length() > 100 else repr(value)[:60]
        raise ValueError(f"keyframes: {what} must be a finite number, got {shown}")
    return float(value)


def _vector(value, n: int, what: str) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != n:
        raise ValueError(f"keyframes: {what} must be a list of {n} numbers, got {value!r}")
    return tuple(_number(v, what) for v in value)


def parse_keyframes(text: str) -> KeyframePath:
    """A keyframe path from its JSON (module docstring); bad input raises a one-line ``ValueError``."""
    if len(text) > MAX_SPEC_CHARS:
        raise ValueError(f"keyframes: {len(text)} characters is over the limit of {MAX_SPEC_CHARS}; "
                         "use fewer keyframes")
    try:
        data = loads_json(text, "keyframes", ": not valid JSON", allow_nan=True)
    except ValueError as e:
        raise ValueError(f"{e}; leave it empty to use the preset") from None
    if not isinstance(data, dict) or not isinstance(data.get("keyframes"), list):
        raise ValueError("keyframes: expected an object with 'frames' and a 'keyframes' list")
    frames = data.get("frames")
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= MAX_FRAMES:
        raise ValueError(f"keyframes: 'frames' must be an integer from 1 to {MAX_FRAMES}, got {frames!r}")
    mode = data.get("interpolation", "spline")
    if mode not in INTERPOLATIONS:
        raise ValueError(f"keyframes: interpolation must be 'spline' or 'linear', got {mode!r}")
    items = data["keyframes"]
    if len(items) > MAX_KEYFRAMES:
        raise ValueError(f"keyframes: {len(items)} keyframes is over the limit of {MAX_KEYFRAMES}")
    keys, last = [], 0.0
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"keyframes: keyframe {n} must be an object, got {item!r}")
        frame = _number(item.get("frame"), f"keyframe {n}'s frame")
        if not last < frame <= frames - 1:
            raise ValueError(f"keyframes: keyframe {n} is at frame {frame:g}; frames must increase after the start "
                             f"camera (frame 0) and stay below {frames}")
        q = _vector(item.get("rotation", [1.0, 0.0, 0.0, 0.0]), 4, f"keyframe {n}'s rotation")
        norm = math.sqrt(sum(v * v for v in q))
        if abs(norm - 1.0) > 1e-3:
            raise ValueError(f"keyframes: keyframe {n}'s rotation {list(q)} is not a unit quaternion (w, x, y, z)")
        focal = _number(item.get("focal", 1.0), f"keyframe {n}'s focal")
        if not 0.05 <= focal <= 20.0:
            raise ValueError(f"keyframes: keyframe {n}'s focal factor {focal:g} is outside 0.05..20")
        ease = item.get("ease", "linear")
        if ease not in EASES:
            raise ValueError(f"keyframes: keyframe {n}'s ease {ease!r} is not one of {', '.join(EASES)}")
        keys.append(Keyframe(frame, _vector(item.get("position"), 3, f"keyframe {n}'s position"),
                             tuple(v / norm for v in q), focal, ease))
        last = frame
    return KeyframePath(frames, tuple(keys), mode)


def _start_frame(start: Cameras) -> tuple[Tensor, Tensor]:
    if len(start) != 1:
        raise ValueError(f"a keyframe path needs one start camera, got {len(start)}")
    return start.c2w[0].double(), start.Ks[0].double()


def _relative_keys(path: KeyframePath) -> tuple[Tensor, Tensor]:
    """Keyframes incl. the start camera as camera-to-start ``[K+1, 4, 4]`` (scene units) and
    intrinsics of a unit focal ``[K+1, 3, 3]`` (only the focal factor is kept)."""
    n = len(path.keys) + 1
    local = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    Ks = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
    if path.keys:
        local[1:, :3, :3] = quat_to_matrix(torch.tensor([k.rotation for k in path.keys], dtype=torch.float64))
        local[1:, :3, 3] = torch.tensor([k.position for k in path.keys], dtype=torch.float64)
        f = torch.tensor([k.focal for k in path.keys], dtype=torch.float64)
        Ks[1:, 0, 0] = f
        Ks[1:, 1, 1] = f
    return local, Ks


def keyframe_cameras(path: KeyframePath, frames: int, start: Cameras, scene_scale: float) -> Cameras:
    """The ``frames`` cameras of a keyframe path from ``start`` (``scene_scale``: the median depth)."""
    if not 1 <= frames <= MAX_FRAMES:
        raise ValueError(f"frames must be from 1 to {MAX_FRAMES}, got {frames}")
    if not (scene_scale > 0 and math.isfinite(scene_scale)):
        raise ValueError(f"scene_scale must be a positive median depth, got {scene_scale}")
    c2w0, K0 = _start_frame(start)
    n = len(path.keys) + 1
    local = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    Ks = K0.repeat(n, 1, 1)
    if path.keys:
        local[1:, :3, :3] = quat_to_matrix(torch.tensor([k.rotation for k in path.keys], dtype=torch.float64))
        local[1:, :3, 3] = torch.tensor([k.position for k in path.keys], dtype=torch.float64) * scene_scale
        f = torch.tensor([k.focal for k in path.keys], dtype=torch.float64)
        Ks[1:, 0, 0] *= f
        Ks[1:, 1, 1] *= f
    keys = Cameras.from_c2w(c2w0 @ local, Ks, start.width, start.height)
    stretch = (frames - 1) / (path.frames - 1) if path.frames > 1 else 1.0
    times = torch.tensor([0.0] + [k.frame * stretch for k in path.keys], dtype=torch.float64)
    if len(times) > 1 and not bool((times[1:] > times[:-1]).all()):
        raise ValueError(f"keyframes: {path.frames} frames squeezed into {frames} put two keyframes on one frame; "
                         "ask for more frames")
    return interpolate_at(keys, times, torch.arange(frames, dtype=torch.float64), path.interpolation,
                          [k.ease for k in path.keys])


def director_cameras(preset: str, strength: float, frames: int, easing: str, keyframes: str, start: Cameras,
                     scene_scale: float) -> Cameras:
    """The Camera Director's path: the keyframe path when ``keyframes`` holds one, else the preset."""
    if keyframes.strip():
        return keyframe_cameras(parse_keyframes(keyframes), frames, start, scene_scale)
    return make_trajectory(preset, frames, start, scene_scale=scene_scale, strength=strength, ease=easing)


# ----------------------------------------------------------------------------- the path in the start frame


def relative_poses(cameras: Cameras, start: Cameras, scene_scale: float) -> tuple[Tensor, Tensor]:
    """Camera-to-start-camera ``[F, 4, 4]`` (translations in scene units) and focal factors ``[F]``."""
    c2w0, K0 = _start_frame(start)
    rel = torch.linalg.solve(c2w0, cameras.c2w.double())
    rel[:, 3, :] = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    rel[:, :3, 3] /= scene_scale
    return rel, cameras.Ks[:, 0, 0].double() / K0[0, 0]


def fit_keyframes(cameras: Cameras, start: Cameras, scene_scale: float, tol_position: float = 2e-3,
                  tol_degrees: float = 0.1, tol_focal: float = 1e-3, max_keys: int = 32,
                  ease: str = "linear", seed_frames: list[int] | None = None) -> tuple[KeyframePath, float]:
    """Few keyframes whose path follows ``cameras`` (frame 0 must be the start camera's place).

    Greedy: start from the last frame and ``seed_frames`` (e.g. the joints of a preset sequence), add the frame with the largest error until every frame is
    within ``tol_position`` (scene units), ``tol_degrees`` and ``tol_focal`` (relative) or
    ``max_keys`` keyframes are used; each segment takes the easing that fits it best; spline and
    linear interpolation are both tried and the one needing fewer keyframes is kept.

    Returns the path and its largest error in units of the tolerances (<= 1: within them).
    """
    F = len(cameras)
    rel, focal = relative_poses(cameras, start, scene_scale)
    if F == 1:
        return KeyframePath(1, (), "spline"), 0.0
    quats = matrix_to_quat(rel[:, :3, :3])
    pos = rel[:, :3, 3]
    easing_order = [ease] + [e for e in EASES if e != ease]

    def path_of(frames_idx: list[int], eases: list[str], mode: str) -> KeyframePath:
        keys = tuple(Keyframe(float(i), tuple(pos[i].tolist()), tuple(quats[i].tolist()), float(focal[i]), e)
                     for i, e in zip(frames_idx, eases))
        return KeyframePath(F, keys, mode)

    def errors(path: KeyframePath) -> Tensor:
        # the path in the start camera's frame: interpolation commutes with the rigid map and the
        # scale to world coordinates, so this is keyframe_cameras' path without building Cameras
        r, Kr = interpolate_poses(*_relative_keys(path), torch.tensor([0.0] + [k.frame for k in path.keys]),
                                  torch.arange(F, dtype=torch.float64), path.interpolation, [k.ease for k in path.keys])
        f = Kr[:, 0, 0]
        dp = (r[:, :3, 3] - pos).norm(dim=1) / tol_position
        cosang = ((r[:, :3, :3].transpose(1, 2) @ rel[:, :3, :3]).diagonal(dim1=1, dim2=2).sum(1) - 1) / 2
        da = torch.rad2deg(torch.acos(cosang.clamp(-1, 1))) / tol_degrees
        df = (f / focal - 1).abs() / tol_focal
        return torch.maximum(torch.maximum(dp, da), df)

    def fit(mode: str) -> tuple[KeyframePath, float]:
        idx = sorted({F - 1} | {int(i) for i in (seed_frames or []) if 0 < int(i) < F})
        while True:
            # per segment, the easing with the smallest worst error over that segment
            bounds = [0] + idx
            per_ease = {e: errors(path_of(idx, [e] * len(idx), mode)) for e in easing_order}
            eases = []
            for a, b in zip(bounds[:-1], bounds[1:]):
                eases.append(min(easing_order, key=lambda e: float(per_ease[e][a:b + 1].max())))
            path = path_of(idx, eases, mode)
            err = errors(path)
            worst = int(err.argmax())
            if float(err[worst]) <= 1.0 or len(idx) >= max_keys or worst in idx or worst == 0:
                return path, float(err.max())
            idx = sorted(idx + [worst])

    best = None
    for mode in INTERPOLATIONS:
        path, err = fit(mode)
        score = (err > 1.0, len(path.keys), err)
        if best is None or score < best[0]:
            best = (score, path, err)
    return best[1], best[2]


# ----------------------------------------------------------------------------- scene and coverage


def scene_points(image: Tensor, depth: Tensor, start: Cameras, scene_scale: float,
                 max_points: int = 40_000) -> tuple[Tensor, Tensor]:
    """The start image as a point cloud in the start camera's frame, in scene units, subsampled on
    a pixel grid to at most ``max_points``: points ``[N, 3]`` float32 and colours ``[N, 3]`` uint8."""
    H, W = depth.shape
    stride = max(1, math.ceil(math.sqrt(H * W / max_points)))
    own = Cameras(torch.eye(4, dtype=torch.float64)[None], start.Ks.double(), start.width, start.height)
    if (start.width, start.height) != (W, H):
        own = own.resize(W, H)
    cloud = unproject(image.double(), depth.double(), own, stride=stride)
    colors = (cloud.colors.clamp(0, 1) * 255).round().to(torch.uint8)
    return (cloud.points / scene_scale).float(), colors


def coverage_inputs(image: Tensor, depth: Tensor, start: Cameras, width: int = 64) -> tuple[Tensor, Tensor, Cameras]:
    """The start image, depth and camera at the coverage size (``width`` pixels wide, the aspect kept;
    nearest-neighbour so no depth is blended across an edge)."""
    H, W = depth.shape
    h = max(1, round(width * H / W))
    img = torch.nn.functional.interpolate(image.permute(2, 0, 1)[None].float(), size=(h, width),
                                          mode="nearest-exact")[0].permute(1, 2, 0)
    d = torch.nn.functional.interpolate(depth[None, None].float(), size=(h, width), mode="nearest-exact")[0, 0]
    return img, d, start.resize(width, h)


def coverage_masks(image: Tensor, depth: Tensor, start: Cameras, cameras: Cameras, radius: int = 1):
    """The core point warp (``warp.one_to_all_warp``, the training-time renderer) of ``image [H, W, 3]``
    with ``depth [H, W]`` from ``start`` into ``cameras`` at the start's size: a ``WarpResult`` with
    masks ``[F, H, W]`` (where the start image's geometry lands) and depths ``[F, H, W]``."""
    targets = cameras.resize(start.width, start.height) if (cameras.width, cameras.height) != (
        start.width, start.height) else cameras
    return one_to_all_warp(image.float(), depth.float(), start.to(dtype=torch.float32),
                           targets.to(dtype=torch.float32), radius=radius)


def path_coverage(image: Tensor, depth: Tensor, start: Cameras, cameras: Cameras, radius: int = 1) -> Tensor:
    """Per frame ``[F]``, the fraction of pixels the start image's geometry covers: the valid
    fraction of ``coverage_masks``."""
    return coverage_masks(image, depth, start, cameras, radius).masks.float().mean(dim=(1, 2))


MAX_MEMORY_VIEWS = 64  # earlier cameras a frame's pixels are tested against (older frames, and the history)
DEPTH_AGREEMENT = 0.1  # a point lies on a frame's surface when its depth there agrees within 10 %


def generating_chunks(frames: int, chunk_frames: int, context_frames: int) -> tuple[Tensor, list[int]]:
    """Which chunk generates each frame ``[F]`` (long) and every chunk's first frame (its context
    included), as ``PipelineSettings.chunk_starts``: chunk 0 makes frames ``[0, C)``, chunk k >= 1
    starts at ``C + (k-1)(C - ctx) - ctx`` and makes the ``C - ctx`` frames after its ``ctx``
    context frames. A total the pipeline would refuse (not ``C + k(C - ctx)``) is read as its
    chunks with the last one cut short, so a path of any length can be planned."""
    C, ctx = chunk_frames, context_frames
    latent_frame_count(C)  # 4k+1, with its message
    if C < 5:
        raise ValueError(f"chunk_frames must be 4k+1 and at least 5, got {C}")
    if ctx < 1 or (ctx - 1) % 4 or ctx >= C:
        raise ValueError(f"context frames must be 4j+1 and fewer than the chunk's {C} frames (e.g. 1 or 5), "
                         f"got {ctx}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    step = C - ctx
    f = torch.arange(frames)
    chunk = torch.where(f < C, 0, 1 + (f - C).clamp_min(0) // step)
    starts = [0] + [C + (k - 1) * step - ctx for k in range(1, int(chunk[-1]) + 1)]
    return chunk, starts


def _on_surface(points: Tensor, views: Cameras, surface: Tensor, tolerance: float, block: int = 16) -> Tensor:
    """``[N]`` bool: the world points ``[N, 3]`` that at least one of ``views`` sees on its surface:
    inside its image, in front of it, at a depth within ``tolerance`` (relative) of the view's
    surface depth ``surface [V, H, W]`` at the pixel the point lands on (the convention's
    ``u = fx x / z + cx``, pixel ``floor(u)``). Each block of views tests only the points no earlier
    block saw, so put the views likeliest to see them first."""
    W, H = views.width, views.height
    P = (views.Ks.double() @ views.viewmats[:, :3, :].double()).float()  # [V, 3, 4]
    hom = torch.cat([points.float(), torch.ones_like(points[:, :1], dtype=torch.float32)], dim=1)  # [N, 4]
    flat = surface.float().reshape(len(views), -1)  # [V, H*W]
    seen = torch.zeros(points.shape[0], dtype=torch.bool)
    todo = torch.arange(points.shape[0])
    for v0 in range(0, len(views), block):
        q = torch.einsum("nj,vij->vni", hom[todo], P[v0:v0 + block])  # [Vb, N', 3] = (z u, z v, z)
        z = q[..., 2]
        u, v = q[..., 0] / z, q[..., 1] / z
        inside = (z > 0) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
        pix = torch.where(inside, v.clamp(0, H - 1).long() * W + u.clamp(0, W - 1).long(), 0)
        there = torch.gather(flat[v0:v0 + block], 1, pix)  # [Vb, N']
        hit = (inside & ((z - there).abs() <= tolerance * there)).any(dim=0)
        seen[todo[hit]] = True
        todo = todo[~hit]
        if not len(todo):
            break
    return seen


def revisit_masks(cameras: Cameras, chunk_frames: int, context_frames: int, proxy_depth: float,
                  depths: Tensor | None = None, tolerance: float = DEPTH_AGREEMENT,
                  max_views: int = MAX_MEMORY_VIEWS) -> Tensor:
    """A planning-time PREDICTION, per frame and pixel ``[F, H, W]`` bool (at the cameras' size), of
    where a persistent world memory (``memory: world``) could recall the scene and the online cache
    (the paper's: built on the previous chunk's frames only) could not.

    Nothing is generated yet, so each frame is assumed to see a proxy surface: at each pixel, the
    depth ``depths[f, v, u]`` where that is positive (e.g. the start image's geometry warped into the
    frame, z-buffered) and elsewhere a sphere of radius ``proxy_depth`` (world units, e.g. the start
    image's median depth) around the camera. A frame "saw" a world point when the point lies on that
    frame's surface (inside its image, depth within ``tolerance``). A pixel of a frame that chunk k
    generates is remembered when its own surface point was seen by an OLDER frame (before chunk
    k-1: what the world keeps from the chunks before) and by no frame of the HISTORY (chunk k-1's
    frames, what the online cache is built on). Frames of the first two chunks have no older
    frames, so they remember nothing. Assumed besides: the surfaces are where the proxy says (where
    the start geometry does not reach, two frames agree only if their spheres meet: the same place,
    or a turn on the spot), every older frame's view is in the world (with ``cache_frames``
    "context" the world is built from fewer views, so read it as an upper bound), and nothing the
    online cache renders is replaced. Bounded cost: the older frames are taken every
    ``ceil(F / max_views)``-th frame (one stride for the whole path, so the sample does not change
    from chunk to chunk), the history every ``ceil(C / max_views)``-th and always its last frame;
    each pixel is tested against the history (newest first) until one frame sees it, and only the
    pixels the history misses against the older frames.

    Args:
        cameras: ``F`` cameras (the path), at the size the masks are wanted (small: the coverage size).
        chunk_frames, context_frames: the chunking (``generating_chunks``; the pipeline's 49 / 5).
        proxy_depth: positive radius of the proxy sphere, in the cameras' world units.
        depths: optional ``[F, H, W]`` camera z of known surface; non-positive = the sphere.
        tolerance: relative depth agreement for a point to lie on a frame's surface.
    """
    if not (isinstance(proxy_depth, (int, float)) and math.isfinite(proxy_depth) and proxy_depth > 0):
        raise ValueError(f"proxy_depth must be a positive finite depth (e.g. the start image's median), "
                         f"got {proxy_depth!r}")
    if not (isinstance(tolerance, (int, float)) and 0 < tolerance < 1):
        raise ValueError(f"tolerance must be a relative depth agreement in (0, 1) (e.g. 0.1), got {tolerance!r}")
    if max_views < 1:
        raise ValueError(f"max_views must be >= 1, got {max_views}")
    F, H, W = len(cameras), cameras.height, cameras.width
    chunk, starts = generating_chunks(F, chunk_frames, context_frames)
    if depths is not None and tuple(depths.shape) != (F, H, W):
        raise ValueError(f"depths must be [F, H, W] = {[F, H, W]} like the cameras, got {list(depths.shape)}")
    out = torch.zeros(F, H, W, dtype=torch.bool)
    if len(starts) < 3:
        return out
    cams = cameras.to("cpu", torch.float64)
    rays = pixel_rays(cams)  # [F, H, W, 3], z = 1
    surface = float(proxy_depth) / rays.norm(dim=-1)  # the sphere's camera z
    if depths is not None:
        d = depths.to("cpu", torch.float64)
        surface = torch.where(torch.isfinite(d) & (d > 0), d, surface)
    c2w = cams.c2w
    old_stride = max(1, math.ceil(F / max_views))
    hist_stride = max(1, math.ceil(chunk_frames / max_views))
    for k in range(2, len(starts)):
        frames = torch.nonzero(chunk == k).flatten()
        h0, h1 = starts[k - 1], min(starts[k - 1] + chunk_frames, F)  # the history: chunk k-1's frames
        hist = list(range(h0, h1, hist_stride))
        if hist[-1] != h1 - 1:
            hist.append(h1 - 1)
        hist = torch.tensor(hist[::-1])  # newest first: they see most of the new chunk
        older = torch.arange(0, h0, old_stride)
        # eq. (2)-(3): each pixel's surface point in world coordinates
        pts = rays[frames] * surface[frames].unsqueeze(-1)
        pts = torch.einsum("fij,fhwj->fhwi", c2w[frames, :3, :3], pts) + c2w[frames, None, None, :3, 3]
        pts = pts.reshape(-1, 3)
        remembered = ~_on_surface(pts, cams[hist], surface[hist], tolerance)
        todo = torch.nonzero(remembered).flatten()
        if len(todo):
            remembered[todo] = _on_surface(pts[todo], cams[older], surface[older], tolerance)
        out[frames] = remembered.reshape(len(frames), H, W)
    return out


def revisit_coverage(cameras: Cameras, chunk_frames: int, context_frames: int, proxy_depth: float,
                     depths: Tensor | None = None, tolerance: float = DEPTH_AGREEMENT,
                     max_views: int = MAX_MEMORY_VIEWS) -> Tensor:
    """Per frame ``[F]``, the predicted fraction of the frame's pixels world memory could recall and
    the online cache could not: the mean of ``revisit_masks`` (its docstring says what it assumes)."""
    return revisit_masks(cameras, chunk_frames, context_frames, proxy_depth, depths, tolerance,
                         max_views).float().mean(dim=(1, 2))


__all__ = ["Keyframe", "KeyframePath", "parse_keyframes", "keyframe_cameras", "director_cameras", "relative_poses",
           "fit_keyframes", "scene_points", "coverage_inputs", "coverage_masks", "path_coverage", "generating_chunks",
           "revisit_masks", "revisit_coverage"]
