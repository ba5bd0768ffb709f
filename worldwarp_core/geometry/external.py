"""Optional backends users install themselves: TTT3R and Depth Anything 3.

TTT3R (the paper's geometry model) is not on PyPI and its CUT3R part is non-commercial: users
who have its repository and checkpoint give both paths; we import it from there and copy none of
its code. This version only checks and refuses (no inference adapter yet). Depth Anything 3 comes
from the ``depth-anything-3`` package when it is installed (adapter below). Both refuse clearly
when absent.
"""

from __future__ import annotations

import importlib
import os
import sys

import torch

from .base import register


def _import_from_repo(repo: str | None, module: str, what: str):
    if repo is None or not os.path.isdir(repo):
        raise ValueError(f"{what}: give the path of your local {what} repository checkout (repo_path); "
                         f"'{repo}' is not a folder. It is not installed from PyPI.")
    if repo not in sys.path:
        sys.path.insert(0, repo)
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"{what}: could not import '{module}' from {repo} ({e}); check the checkout and its "
                         "requirements") from None


@register("ttt3r", "give the TTT3R repository checkout (repo_path) and its checkpoint file (path)")
def _ttt3r(path=None, device="cpu", dtype=torch.float32, repo_path=None, **kw):
    if path is None or not os.path.isfile(path):
        raise ValueError(f"ttt3r: checkpoint file not found: {path}; download it from the TTT3R project yourself")
    _import_from_repo(repo_path, "src.dust3r.model", "TTT3R")
    raise ValueError("ttt3r: the repository imported, but this pack has no adapter for its inference API in this "
                     "version; use 'depth-pro' or 'depth-anything-v2' with pose_source='requested'")


class DepthAnything3Estimator:
    """Depth Anything 3 (``depth-anything-3`` package): multi-view depth, intrinsics and poses.

    Known cameras are passed to the model (it accepts poses); otherwise its own poses are
    returned (OpenCV world-to-camera, like ours). Outputs come at the model's processing
    resolution and are resized to the frames' size here, intrinsics scaled accordingly.
    """

    name = "depth-anything-3"

    def __init__(self, path: str, device: str = "cpu", dtype: torch.dtype = torch.float32, process_res: int = 504,
                 model=None) -> None:
        if model is None:
            api = importlib.import_module("depth_anything_3.api")
            model = api.DepthAnything3.from_pretrained(path)
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
        self.model.to("cpu")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


@register("depth-anything-3", "install the depth-anything-3 package and put a DA3 model folder in models/worldwarp")
def _da3(path=None, device="cpu", dtype=torch.float32, **kw):
    try:
        importlib.import_module("depth_anything_3.api")
    except ImportError:
        raise ValueError("depth-anything-3: the 'depth-anything-3' package is not installed; "
                         "pip install it yourself, or choose another geometry backend") from None
    if path is None:
        raise ValueError("depth-anything-3: give the local model folder (e.g. models/worldwarp/DA3-BASE)")
    return DepthAnything3Estimator(path, device, dtype, **kw)
