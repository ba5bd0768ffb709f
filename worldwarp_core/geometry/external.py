"""Depth Anything 3, an optional backend from the ``depth-anything-3`` package (users install it).

That package needs torchvision, xformers and open3d, so it is not in this pack's requirements;
when it is missing the backend refuses clearly. The adapter follows its ``DepthAnything3.inference``
API (0.1.x): images as uint8 arrays, optional known ``extrinsics`` (world-to-camera) and
``intrinsics`` at the input resolution; outputs at its processing resolution. TTT3R lives in
``ttt3r.py``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

import torch

from ..loading import move_to_cpu, weights_problem
from .base import register


class DepthAnything3Estimator:
    """Depth Anything 3 (``depth-anything-3`` package): multi-view depth, intrinsics and poses.

    Known cameras are passed to the model (it accepts poses); otherwise its own poses are
    returned (OpenCV world-to-camera, like ours). Outputs come at the model's processing
    resolution and are resized to the frames' size here, intrinsics scaled accordingly.
    """

    name = "depth-anything-3"
    estimates_poses = True  # pose_source "auto" -> "estimated"
    per_frame = False  # multi-view: every frame's depth and pose depend on the others (never split)

    def __init__(self, path: str, device: str = "cpu", dtype: torch.dtype = torch.float32, process_res: int = 504,
                 model=None) -> None:
        if model is None:
            api = importlib.import_module("depth_anything_3.api")
            if not os.path.isdir(path):
                raise ValueError(f"depth-anything-3: model folder not found: {path}; put a DA3 model folder "
                                 "(e.g. depth-anything/DA3-BASE) there")
            try:  # a local folder only: never a hub download
                model = api.DepthAnything3.from_pretrained(path, local_files_only=True)
            except (OSError, ValueError, RuntimeError) as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ValueError(f"depth-anything-3: {path} could not be loaded ({first}); the folder may be "
                                 "incomplete") from None
        self.model, self.device, self.process_res = model, device, process_res

    @torch.no_grad()
    def estimate(self, frames, cameras=None):
        import numpy as np

        from ..cameras import Cameras
        from .base import GeometryResult, check_frames
        from .preprocess import resize_map

        check_frames(frames)
        F, H, W, _ = frames.shape
        images = [(f.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy() for f in frames]
        kwargs = {}
        if cameras is not None:
            kwargs = {"extrinsics": cameras.viewmats.float().cpu().numpy(), "intrinsics": cameras.Ks.float().cpu().numpy()}
        pred = self.model.to(self.device).inference(images, process_res=self.process_res, **kwargs)
        depth = torch.from_numpy(np.asarray(pred.depth, dtype=np.float32))
        h, w = depth.shape[1:]
        conf = torch.from_numpy(np.asarray(pred.conf, dtype=np.float32)) if pred.conf is not None else torch.ones_like(depth)
        depth = resize_map(depth, H, W)
        conf = resize_map(conf / conf.amax(dim=(1, 2), keepdim=True).clamp_min(1e-6), H, W).clamp(0, 1)
        if cameras is None:
            K = torch.from_numpy(np.asarray(pred.intrinsics, dtype=np.float64)).clone()
            K[:, 0, :] *= W / w
            K[:, 1, :] *= H / h
            ext = torch.from_numpy(np.asarray(pred.extrinsics, dtype=np.float64))
            vm = torch.eye(4, dtype=torch.float64).repeat(F, 1, 1)
            vm[:, :3, :] = ext[:, :3, :]
            cameras = Cameras(vm, K, W, H)
        return GeometryResult(depth, conf, cameras, "metric")

    def unload(self) -> None:
        move_to_cpu(self.model)


def da3_folder_problem(folder: str) -> str | None:
    """Why Depth Anything 3 cannot run from ``folder``: not a model folder, or its package is missing."""
    problem = weights_problem(folder, "depth-anything-3")
    if problem is None and importlib.util.find_spec("depth_anything_3") is None:
        problem = "the depth-anything-3 package is not installed (pip install depth-anything-3 yourself)"
    return problem


@register("depth-anything-3", "install the depth-anything-3 package and put a DA3 model folder in models/worldwarp",
          folder_check=da3_folder_problem)
def _da3(path=None, device="cpu", dtype=torch.float32, **kw):
    try:
        importlib.import_module("depth_anything_3.api")
    except ImportError:
        raise ValueError("depth-anything-3: the 'depth-anything-3' package is not installed; "
                         "pip install it yourself, or choose another geometry backend") from None
    if path is None:
        raise ValueError("depth-anything-3: give the local model folder (e.g. models/worldwarp/DA3-BASE)")
    return DepthAnything3Estimator(path, device, dtype, **kw)
