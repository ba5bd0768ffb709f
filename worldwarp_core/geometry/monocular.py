"""Monocular depth backends on transformers: Depth Pro (metric + focal) and Depth Anything V2.

Both run per frame (``per_frame = True``: the pipeline feeds them ``geometry_batch`` frames at a
time) and estimate no poses: the cameras of the result are the given ones, or
(when none are given) identity poses with the estimated (Depth Pro) or assumed-FoV (Depth
Anything) intrinsics. Preprocessing is our own (resize + normalise in torch).

Depth Pro (Bochkovskii et al. 2024): the network predicts a canonical inverse depth ``c`` and a
horizontal field of view; with ``f = 0.5·W / tan(0.5·fov)`` the metric depth is
``1 / (c·W / f)`` (the formula of transformers' post-processing, written here from it).

Depth Anything V2 relative models predict affine-invariant inverse depth ``d``; we return
``depth = median(d) / d`` (median depth 1, the unit presets use) and keep ``d`` in
``GeometryResult.inverse`` so the pipeline can fit scale AND shift against the cache.
Metric variants (``depth_estimation_type = "metric"``) return depth directly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..cameras import Cameras, intrinsics_from_fov
from ..loading import move_to_cpu
from .base import GeometryResult, check_frames, register
from .preprocess import fit_multiple, resize_map, to_model_input

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


def _identity_cameras(Ks: Tensor, width: int, height: int) -> Cameras:
    F = Ks.shape[0]
    return Cameras(torch.eye(4).expand(F, 4, 4).clone(), Ks.float(), width, height)


def focal_from_fov(fov_deg: Tensor, width: int) -> Tensor:
    """Pinhole focal length in pixels from a horizontal field of view in degrees."""
    return 0.5 * width / torch.tan(0.5 * torch.deg2rad(fov_deg))


class _Transformers:
    name = ""
    estimates_poses = False  # per-frame depth only: pose_source "auto" -> "requested"
    per_frame = True  # each frame's depth depends on that frame alone (the median of DA-V2 is per frame too)

    def __init__(self, model, device: str, dtype: torch.dtype, path: str | None = None) -> None:
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device, self.dtype = device, dtype
        self.where = f"the geometry model in {path}" if path else "this geometry model"

    def _ready(self):
        """The model on its compute device (it may have been offloaded to the CPU between uses)."""
        return self.model.to(self.device)

    def unload(self) -> None:
        """Free accelerator memory until the next use (the weights move to the CPU)."""
        move_to_cpu(self.model)


def _from_pretrained(cls, path: str | None, what: str):
    from ..loading import from_pretrained_local

    if path is None or not str(path).strip():
        raise ValueError(f"{what}: give the local model folder (e.g. models/worldwarp/{what})")
    return from_pretrained_local(cls, path, what)


FOV_RANGE = (1.0, 179.0)  # degrees: a predicted horizontal FoV outside it is no usable focal length


class DepthPro(_Transformers):
    name = "depth-pro"

    def __init__(self, path: str | None = None, device: str = "cpu", dtype: torch.dtype = torch.float32,
                 model=None) -> None:
        from transformers import DepthProForDepthEstimation

        super().__init__(model or _from_pretrained(DepthProForDepthEstimation, path, "depth-pro-hf"), device, dtype,
                         path)
        cfg = self.model.config
        self.size = int(cfg.image_model_config.image_size / min(cfg.scaled_images_ratios))
        # the config says whether the FoV head exists (apple/DepthPro-hf has it; the default config does not)
        self.has_fov = bool(getattr(cfg, "use_fov_model", False)) and getattr(self.model, "fov_model", None) is not None

    def _check_fov_head(self, cameras: Cameras | None) -> None:
        """Without cameras the focal length comes from the FoV head: refused before any forward when it is missing."""
        if cameras is None and not self.has_fov:
            raise ValueError(f"depth-pro: {self.where} has no field-of-view head (use_fov_model is false in its "
                             "config.json), so it cannot estimate the focal length: give the frames' cameras "
                             "(known intrinsics, e.g. a field of view), or use the apple/DepthPro-hf folder, "
                             "whose model has the head")

    def _focal_from_fov(self, fov: Tensor, width: int) -> Tensor:
        """Focal lengths ``[F]`` from the predicted horizontal FoV ``[F]`` (degrees), range-checked."""
        lo, hi = FOV_RANGE
        bad = ~(torch.isfinite(fov) & (fov >= lo) & (fov <= hi))
        if bool(bad.any()):
            values = ", ".join(f"{float(v):.4g}" for v in fov[bad][:3])
            raise ValueError(f"depth-pro: {self.where} predicted a horizontal field of view of {values} degrees "
                             f"for {int(bad.sum())} of {len(fov)} frames (a usable one is {lo:g}-{hi:g}); its "
                             "weights are not a working Depth Pro (an incomplete or foreign folder?): download "
                             "apple/DepthPro-hf again, or give the frames' cameras (known intrinsics)")
        return focal_from_fov(fov, width)

    @torch.no_grad()
    def estimate(self, frames: Tensor, cameras: Cameras | None = None) -> GeometryResult:
        check_frames(frames)
        self._check_fov_head(cameras)
        F, H, W, _ = frames.shape
        x = to_model_input(frames, self.size, self.size, HALF, HALF).to(self.device, self.dtype)
        out = self._ready()(pixel_values=x)
        inv = resize_map(out.predicted_depth.float().cpu(), H, W)  # canonical inverse depth
        if cameras is not None:
            focal = cameras.Ks[:, 0, 0].float().cpu()
        elif out.field_of_view is not None:
            focal = self._focal_from_fov(out.field_of_view.float().cpu().reshape(F), W)
        else:  # a model whose config claims the head but returns no FoV
            raise ValueError(f"depth-pro: {self.where} returned no field of view; give the frames' cameras")
        depth = 1.0 / (inv * W / focal.view(F, 1, 1)).clamp(1e-4, 1e4)
        if cameras is None:
            Ks = torch.zeros(F, 3, 3)
            Ks[:, 0, 0] = Ks[:, 1, 1] = focal
            Ks[:, 0, 2], Ks[:, 1, 2], Ks[:, 2, 2] = W / 2, H / 2, 1.0
            cameras = _identity_cameras(Ks, W, H)
        return GeometryResult(depth, torch.ones_like(depth), cameras, "metric")


class DepthAnythingV2(_Transformers):
    name = "depth-anything-v2"

    def __init__(self, path: str | None = None, device: str = "cpu", dtype: torch.dtype = torch.float32,
                 fov_deg: float = 60.0, input_size: int = 518, model=None) -> None:
        from transformers import DepthAnythingForDepthEstimation

        super().__init__(model or _from_pretrained(DepthAnythingForDepthEstimation, path, "depth-anything-v2-small-hf"),
                         device, dtype, path)
        self.fov_deg, self.input_size = fov_deg, input_size
        cfg = self.model.config
        self.metric = getattr(cfg, "depth_estimation_type", "relative") == "metric"
        self.patch = getattr(cfg.backbone_config, "patch_size", 14) if cfg.backbone_config is not None else 14

    @torch.no_grad()
    def estimate(self, frames: Tensor, cameras: Cameras | None = None) -> GeometryResult:
        check_frames(frames)
        F, H, W, _ = frames.shape
        h, w = fit_multiple(H, W, self.input_size, self.patch)
        x = to_model_input(frames, h, w, IMAGENET_MEAN, IMAGENET_STD).to(self.device, self.dtype)
        pred = resize_map(self._ready()(pixel_values=x).predicted_depth.float().cpu(), H, W)
        if cameras is None:
            cameras = _identity_cameras(intrinsics_from_fov(self.fov_deg, W, H, F), W, H)
        if self.metric:
            depth = pred.clamp_min(1e-4)
            return GeometryResult(depth, torch.ones_like(depth), cameras, "metric")
        inv = pred.clamp_min(1e-6)
        depth = inv.flatten(1).median(dim=1).values.view(F, 1, 1) / inv
        conf = (pred > 1e-6).float()
        return GeometryResult(depth, conf, cameras, "relative", inverse=pred)


@register("depth-pro", "put the Depth Pro transformers folder (apple/DepthPro-hf) in models/worldwarp/depth-pro-hf")
def _depth_pro(path=None, device="cpu", dtype=torch.float32, **kw):
    return DepthPro(path, device, dtype, **kw)


@register("depth-anything-v2", "put a Depth Anything V2 transformers folder (e.g. depth-anything/"
          "Depth-Anything-V2-Small-hf) in models/worldwarp/depth-anything-v2-small-hf")
def _depth_anything(path=None, device="cpu", dtype=torch.float32, **kw):
    return DepthAnythingV2(path, device, dtype, **kw)


__all__ = ["FOV_RANGE", "DepthAnythingV2", "DepthPro", "focal_from_fov"]
