"""A camera path from a reference video, and the official demo's ``.npz`` pose cache.

The official demo's "From Video" mode (``gradio_demo.py``, ``extract_camera_from_video``, of the
``qbhan/WorldWarp`` repository at commit 0396b80), re-derived:

1. the video's first 600 frames, each scaled to cover the generation size and centre-cropped
   (its ``preprocess_video_from_path``; Lanczos there, antialiased bicubic here);
2. the geometry model on all of them at once (TTT3R in the official code, on a zero-padded
   512x512 square; any backend here that estimates poses: ``ttt3r`` or ``depth-anything-3``, with
   that square input where the backend offers it), its camera-to-world poses kept in its own
   units (no rescaling);
3. the intrinsics: principal point at the image centre, then the mean over the frames (one
   focal for the whole path);
4. cached as ``examples/pose_cache/<video name>_poses.npz`` (below);
5. when used, optionally re-timed by the speed multiplier (``official_paths.change_speed``) and
   anchored at the first camera (the official loop's ``get_relative_poses(poses, 0)``), so frame 0
   is the start camera.

The pose cache (``np.savez``; read with ``allow_pickle=False``):

    poses        float32 [1, N, 4, 4]  camera-to-world, OpenCV axes (x right, y down, z forward),
                                       the geometry model's units, not anchored
    intrinsics   float32 [1, N, 3, 3]  pixels of the generation size (the official 720x480),
                                       principal point at the centre, the same for every frame

The file does not record the image size; it is read from the principal point (``W = 2·cx``,
``H = 2·cy``) unless given. In the pack's convention (``cameras.py``) ``viewmats`` are the
inverses of ``poses``; intrinsics carry over unchanged (the principal point ``W/2, H/2`` is the
image centre in both).
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as Fn
from torch import Tensor

from .cameras import Cameras, cover_geometry
from .model_files import POSE_ESTIMATORS
from .official_paths import change_speed

OFFICIAL_MAX_FRAMES = 600  # preprocess_video_from_path(..., 600) in the official demo
OFFICIAL_SIZE = (720, 480)  # the official demo's generation size (width, height)
POSE_CACHE_KEYS = ("poses", "intrinsics")
POSE_ESTIMATING = POSE_ESTIMATORS  # geometry backends that estimate camera poses
MAX_VIDEO_FRAMES = 10_000


def pose_cache_name(video_path: str) -> str:
    """The official cache file name of a video: ``<name without extension>_poses.npz``."""
    return os.path.splitext(os.path.basename(video_path))[0] + "_poses.npz"


# ----------------------------------------------------------------------------- frames


def _check_size(width: int, height: int) -> None:
    for v, what in ((width, "width"), (height, "height")):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"the video frames' target {what} must be a positive whole number, got {v!r}")


def fit_frames(frames: Tensor, width: int, height: int) -> Tensor:
    """Frames ``[F, h, w, 3]`` (0..1 or uint8) -> ``[F, height, width, 3]`` float 0..1: scaled to cover
    the size (factor ``max(W/w, H/h)``, sides ``int(side·factor)``) and centre-cropped, as the
    official ``preprocess_video_from_path``."""
    _check_size(width, height)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"video frames must be [F, H, W, 3], got {list(frames.shape)}")
    F, h, w, _ = frames.shape
    hr, wr, y, x = cover_geometry(w, h, width, height)
    out = torch.empty(F, height, width, 3, dtype=torch.float32)
    for a in range(0, F, 16):  # a few frames at a time: a long video stays in uint8 until here
        chunk = frames[a:a + 16].float()
        if frames.dtype == torch.uint8:
            chunk = chunk / 255.0
        if (hr, wr) != (h, w):
            chunk = Fn.interpolate(chunk.permute(0, 3, 1, 2), size=(hr, wr), mode="bicubic", align_corners=False,
                                   antialias=True).permute(0, 2, 3, 1)
        out[a:a + 16] = chunk[:, y:y + height, x:x + width].clamp(0, 1)
    return out


def fit_cameras(cameras: Cameras, width: int, height: int) -> Cameras:
    """The cameras of ``fit_frames``'s output (``Cameras.cover``)."""
    return cameras.cover(width, height)


def read_video(path: str, width: int, height: int, max_frames: int = OFFICIAL_MAX_FRAMES) -> Tensor:
    """The first ``max_frames`` frames of a video file (PyAV) fitted to ``width x height``:
    ``[F, height, width, 3]`` float 0..1 (``fit_frames``)."""
    import av

    _check_size(width, height)
    if isinstance(max_frames, bool) or not isinstance(max_frames, int) or not 1 <= max_frames <= MAX_VIDEO_FRAMES:
        raise ValueError(f"max_frames must be a whole number in 1..{MAX_VIDEO_FRAMES}, got {max_frames!r}")
    if not os.path.isfile(path):
        raise ValueError(f"reference video not found: {path}")
    frames = []
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise ValueError(f"{path} has no video stream; give a video file (mp4, mov, webm, ...)")
            for frame in container.decode(container.streams.video[0]):
                frames.append(torch.from_numpy(frame.to_ndarray(format="rgb24")))
                if len(frames) >= max_frames:
                    break
    except av.error.FFmpegError as e:
        raise ValueError(f"cannot decode the video {path} ({e}); give a video file ffmpeg reads") from None
    if not frames:
        raise ValueError(f"{path}: no frame could be read")
    return fit_frames(torch.stack(frames), width, height)


# ----------------------------------------------------------------------------- the path


def official_intrinsics_average(Ks: Tensor, width: int, height: int) -> Tensor:
    """``[F, 3, 3]``: the official treatment of estimated intrinsics: principal point set to
    ``(W/2, H/2)``, then the mean over the frames repeated for every frame."""
    K = Ks.double().clone()
    K[:, 0, 2] = width / 2.0
    K[:, 1, 2] = height / 2.0
    return K.mean(dim=0, keepdim=True).expand_as(K).clone()


VIDEO_GEOMETRY_INPUTS = ("square-pad", "model")


def estimate_video_cameras(frames: Tensor, estimator, geometry_input: str = "square-pad") -> Cameras:
    """Steps 2-3 of the module docstring: the geometry model's poses of ``frames [F, H, W, 3]`` (raw,
    its units, not anchored) with the averaged intrinsics: what the official demo caches.

    ``geometry_input``: "square-pad" (the official TTT3R input, a zero-padded square) for backends
    that list it in their ``input_modes``, others take their own; "model": the backend's own."""
    from .geometry.base import check_frames

    check_frames(frames)
    name = getattr(estimator, "name", type(estimator).__name__)
    if not bool(getattr(estimator, "estimates_poses", False)):
        raise ValueError(f"the {name} geometry model estimates no camera poses; a camera path from a video needs "
                         f"one that does ({', '.join(POSE_ESTIMATING)}; the official demo uses ttt3r)")
    if geometry_input not in VIDEO_GEOMETRY_INPUTS:
        raise ValueError(f"geometry_input must be one of {', '.join(VIDEO_GEOMETRY_INPUTS)}, got {geometry_input!r}")
    F, H, W, _ = frames.shape
    if geometry_input != "model" and geometry_input in tuple(getattr(estimator, "input_modes", ())):
        result = estimator.estimate(frames.float().cpu(), None, input_mode=geometry_input)
    else:
        result = estimator.estimate(frames.float().cpu())
    cams = result.cameras
    if len(cams) != F or (cams.width, cams.height) != (W, H):
        raise ValueError(f"the {name} geometry model returned {len(cams)} cameras at {cams.width}x{cams.height} "
                         f"for {F} frames at {W}x{H}")
    return Cameras.from_c2w(cams.c2w.double().cpu(), official_intrinsics_average(cams.Ks.cpu(), W, H), W, H)


def anchor_at_first(cameras: Cameras) -> Cameras:
    """The path relative to its first camera (``Cameras.anchored``)."""
    return cameras.anchored()


def use_video_cameras(cameras: Cameras, speed: float = 1.0) -> Cameras:
    """Step 5: the speed multiplier on the raw path, then anchored at its first camera."""
    return anchor_at_first(change_speed(cameras, speed))


def camera_path_from_video(frames: Tensor, estimator, speed: float = 1.0, max_frames: int = OFFICIAL_MAX_FRAMES,
                           size: tuple[int, int] | None = None, geometry_input: str = "square-pad") -> Cameras:
    """The camera path of a reference video (module docstring): the first ``max_frames`` of
    ``frames [F, h, w, 3]``, fitted to ``size = (width, height)`` when given (``fit_frames``; else
    they are at the generation size already), estimated by ``estimator`` (``geometry_input`` as in
    ``estimate_video_cameras``), re-timed by ``speed`` and anchored at the first camera. Translations are in the geometry model's units, as in the
    official demo."""
    if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1:
        raise ValueError(f"max_frames must be a positive whole number, got {max_frames!r}")
    check_speed(speed, "speed multiplier")
    frames = frames[:max_frames]
    if size is not None and ((int(frames.shape[2]), int(frames.shape[1])) != tuple(size) or frames.dtype != torch.float32):
        frames = fit_frames(frames, *size)
    return use_video_cameras(estimate_video_cameras(frames, estimator, geometry_input), speed)


# ----------------------------------------------------------------------------- the .npz pose cache


def pose_cache_arrays(cameras: Cameras) -> dict[str, np.ndarray]:
    """The official cache's arrays of a path (``Cameras.pose_cache_arrays``)."""
    return cameras.pose_cache_arrays()


def save_pose_cache(path: str, cameras: Cameras, overwrite: bool = False) -> str:
    """Write ``cameras`` as the official demo writes its cache (``np.savez`` of ``pose_cache_arrays``).
    Refuses an existing file unless ``overwrite``. Returns the path written."""
    path = str(path)
    if os.path.exists(path) and not overwrite:
        raise ValueError(f"{path} exists; choose another file or allow overwriting it")
    cameras.to_pose_cache(path)
    return path


def load_pose_cache(path: str, width: int | None = None, height: int | None = None) -> Cameras:
    """The cameras of an official ``.npz`` pose cache, as stored (not anchored, not re-timed;
    ``Cameras.from_pose_cache``): the image size from the principal point unless given."""
    return Cameras.from_pose_cache(path, width, height)


def pose_cache_path(path: str, width: int, height: int, speed: float = 1.0) -> Cameras:
    """A pose cache as a camera path for a ``width x height`` video: re-timed by ``speed``, anchored at
    its first camera, intrinsics brought from the cache's size as ``fit_frames`` brings a video
    (scaled to cover, centre-cropped: ``fit_cameras``)."""
    _check_size(width, height)
    cams = use_video_cameras(load_pose_cache(path), speed)
    return cams if (cams.width, cams.height) == (width, height) else fit_cameras(cams, width, height)


def is_pose_cache(path: str) -> bool:
    return isinstance(path, str) and path.lower().endswith(".npz")


def check_speed(speed, option: str = "speed") -> float:
    """A speed multiplier: a finite number > 0 (the official demo offers 0.25 to 4)."""
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not (math.isfinite(speed) and speed > 0):
        raise ValueError(f"{option} must be a positive number (the official demo offers 0.25 to 4), got {speed!r}")
    return float(speed)


__all__ = [
    "OFFICIAL_MAX_FRAMES", "OFFICIAL_SIZE", "POSE_CACHE_KEYS", "POSE_ESTIMATING", "VIDEO_GEOMETRY_INPUTS", "anchor_at_first",
    "camera_path_from_video", "check_speed", "estimate_video_cameras", "fit_cameras", "fit_frames", "is_pose_cache",
    "load_pose_cache", "official_intrinsics_average", "pose_cache_arrays", "pose_cache_name", "pose_cache_path",
    "read_video", "save_pose_cache", "use_video_cameras",
]
