"""TTT3R, the paper's geometry model, run from the user's own checkout (imported, never copied).

TTT3R (CUT3R with a test-time-training state update) is not on PyPI and its CUT3R part is
non-commercial, so this pack ships none of it: users clone the repository, put its checkpoint
where its README says (``src/cut3r_512_dpt_4_64.pth``) and select that folder. We import its
``src.dust3r`` package from there and use three of its entry points: the ``ARCroco3DStereo``
model (with ``config.model_update_type = "ttt3r"``), its recurrent inference function and
``pose_encoding_to_camera``. Everything around them is ours:

* **Safe checkpoint loading.** The repository's own loader unpickles the checkpoint fully and
  ``eval``s the model string stored in it. We load with ``weights_only=True`` (allowing only
  the plain-data classes its training configs pickle: ``argparse.Namespace`` and OmegaConf
  containers), parse the ``ARCroco3DStereo(ARCroco3DStereoConfig(k=v, ...))`` string with
  ``ast`` into keyword literals, and refuse anything else. A ``.safetensors`` file whose
  metadata holds that string under ``"model"`` works too.
* **Preprocessing** (``input_mode``): ``resize`` (default) -- frames resized (not cropped) so the
  long side is ``size`` and both sides are multiples of 16; ``square-pad`` -- the official input
  (``TTT3RInference._preprocess_batch`` of the official code): the frame resized so its long side
  is ``size`` (aspect kept, the short side rounded down) and centred in a ``size``×``size`` square
  of zeros (black); the outputs are cropped back to the frame (:func:`square_pad_layout`). Either
  way scaled to [-1, 1].
* **Outputs**: depth is the self-view pointmap's z; confidence ``1 - 1/c`` maps CUT3R's
  ``c = 1 + exp(x) >= 1`` to [0, 1); one focal length for the clip, the median of per-frame
  robust (Weiszfeld) fits of ``u - cx = f·X/Z``, ``v - cy = f·Y/Z`` with the principal point at
  the centre (of the square, with ``square-pad``, mapped back to the frame's pixels); poses are
  camera-to-world from its pose encoding (the first frame is the origin).
"""

from __future__ import annotations

import argparse
import ast
import glob
import importlib
import logging
import math
import os
import sys
from typing import Any

import torch
import torch.nn.functional as Fn
from torch import Tensor

from ..cameras import Cameras
from ..loading import move_to_cpu
from .base import GeometryResult, check_frames, register
from .preprocess import resize_map

log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = "src/cut3r_512_dpt_4_64.pth"
_NAMES = {"inf": math.inf, "nan": math.nan, "True": True, "False": False, "None": None}


def import_ttt3r(repo: str | None):
    """The checkout's ``src.dust3r`` modules ``(model, inference, camera)``, or a ValueError that
    says what to give. Both the checkout and its ``src`` folder go on ``sys.path`` (its modules
    import each other as ``dust3r.*``)."""
    if repo is None or not os.path.isdir(repo):
        raise ValueError(f"ttt3r: give the folder of your TTT3R repository checkout (git clone it into "
                         f"models/worldwarp/TTT3R); '{repo}' is not a folder. TTT3R is not installed from PyPI.")
    repo = os.path.abspath(repo)
    for p in (os.path.join(repo, "src"), repo):
        if p not in sys.path:
            sys.path.insert(0, p)
    try:
        return tuple(importlib.import_module(f"src.dust3r.{m}") for m in ("model", "inference", "utils.camera"))
    except ImportError as e:
        other = getattr(sys.modules.get("src"), "__path__", None)
        clash = "" if other is None or os.path.join(repo, "src") in list(other) else (
            f"; another package named 'src' is already loaded from {list(other)}")
        raise ValueError(f"ttt3r: could not import its 'src.dust3r' package from {repo} ({e}); check that the "
                         f"folder is a TTT3R checkout and that its requirements are installed{clash}") from None


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_literal(e) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _literal(node.operand)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return -v if isinstance(node.op, ast.USub) else v
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float"
            and len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).strip().lower() in ("inf", "-inf", "nan")):
        return float(node.args[0].value)
    raise ValueError(f"not a literal: {ast.unparse(node)}")


def parse_model_spec(spec: str) -> dict[str, Any]:
    """``"ARCroco3DStereo(ARCroco3DStereoConfig(k=v, ...))"`` -> ``{k: v}``, without evaluating it.

    Values must be literals (numbers, strings, tuples, lists, dicts, ``inf``). The checkpoint's
    reduced-aspect patch embedding is swapped for the plain one and ``landscape_only`` turned off,
    so portrait frames are processed as they are.
    """
    bad = ValueError(f"ttt3r: the checkpoint's model string is not a plain "
                     f"ARCroco3DStereo(ARCroco3DStereoConfig(...)) call: {spec[:200]!r}")
    try:
        call = ast.parse(spec.strip(), mode="eval").body
    except SyntaxError:
        raise bad from None
    ok = (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "ARCroco3DStereo"
          and len(call.args) == 1 and not call.keywords)
    inner = call.args[0] if ok else None
    if not (ok and isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name)
            and inner.func.id == "ARCroco3DStereoConfig" and not inner.args
            and all(k.arg is not None for k in inner.keywords)):
        raise bad
    try:
        kwargs = {k.arg: _literal(k.value) for k in inner.keywords}
    except ValueError as e:
        raise ValueError(f"ttt3r: the checkpoint's model string has a non-literal argument ({e})") from None
    if kwargs.get("patch_embed_cls") == "ManyAR_PatchEmbed":
        kwargs["patch_embed_cls"] = "PatchEmbedDust3R"
    kwargs["landscape_only"] = False
    return kwargs


def _checkpoint_globals() -> list:
    """Plain-data classes a CUT3R/TTT3R training checkpoint pickles besides tensors."""
    import collections
    import typing

    allowed: list = [argparse.Namespace, dict, list, tuple, set, int, float, str, bool, collections.defaultdict,
                     collections.OrderedDict, typing.Any]
    try:
        from omegaconf import base, dictconfig, listconfig, nodes
    except ImportError:
        return allowed
    allowed += [dictconfig.DictConfig, listconfig.ListConfig, base.ContainerMetadata, base.Metadata, nodes.AnyNode,
                nodes.StringNode, nodes.IntegerNode, nodes.FloatNode, nodes.BooleanNode]
    return allowed


def read_ttt3r_checkpoint(path: str) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """``(config kwargs, state dict)`` from a ``.pth`` training checkpoint or a ``.safetensors``
    file with the model string in its metadata. Never unpickles arbitrary objects."""
    if not os.path.isfile(path):
        raise ValueError(f"ttt3r: checkpoint file not found: {path}; download cut3r_512_dpt_4_64.pth as the TTT3R "
                         f"README says and put it in the checkout's src/ folder")
    if path.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(path, "pt") as f:
            spec = (f.metadata() or {}).get("model")
            state = {k: f.get_tensor(k) for k in f.keys()}
        if not spec:
            raise ValueError(f"ttt3r: {path} has no 'model' entry in its safetensors metadata (the "
                             "ARCroco3DStereo(...) string of its training args)")
        return parse_model_spec(spec), state
    try:
        with torch.serialization.safe_globals(_checkpoint_globals()):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - the unpickler raises several types; all mean the same to the user
        raise ValueError(f"ttt3r: {path} could not be read with weights_only=True ({str(e).splitlines()[-1][:300]}). "
                         "This pack never unpickles arbitrary objects; if its args are OmegaConf objects, install "
                         "omegaconf (TTT3R's requirements have it), or save the state dict as .safetensors with the "
                         "model string under metadata 'model'") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "args" not in ckpt:
        raise ValueError(f"ttt3r: {path} is not a CUT3R/TTT3R training checkpoint (expected keys 'args' and 'model')")
    args = ckpt["args"]
    spec = args.get("model") if isinstance(args, dict) else getattr(args, "model", None)
    if not isinstance(spec, str):
        raise ValueError(f"ttt3r: {path} stores no model string in args.model")
    return parse_model_spec(spec), ckpt["model"]


def find_checkpoint(repo: str) -> str:
    """The checkpoint in a checkout: ``src/cut3r_512_dpt_4_64.pth``, else the one ``.pth`` /
    ``.safetensors`` file in the checkout's top level or ``src/``."""
    default = os.path.join(repo, DEFAULT_CHECKPOINT)
    if os.path.isfile(default):
        return default
    found = sorted(p for d in (repo, os.path.join(repo, "src")) for ext in ("pth", "safetensors")
                   for p in glob.glob(os.path.join(d, f"*.{ext}")))
    if len(found) == 1:
        return found[0]
    if not found:
        raise ValueError(f"ttt3r: no checkpoint in {repo}; put cut3r_512_dpt_4_64.pth in {os.path.join(repo, 'src')} "
                         "(the TTT3R README says where to download it)")
    raise ValueError(f"ttt3r: several checkpoints in {repo} ({', '.join(os.path.basename(p) for p in found)}); "
                     "give the one to use (checkpoint=...)")


def checkout_problem(folder: str) -> str | None:
    """Why ``folder`` is not a usable TTT3R checkout (no ``src/dust3r``, no or several checkpoints), or None."""
    if not os.path.isdir(folder):
        return f"{folder} is not a folder (expected a TTT3R checkout)"
    if not os.path.isdir(os.path.join(folder, "src", "dust3r")):
        return f"{folder} is not a TTT3R checkout (no src/dust3r)"
    try:
        find_checkpoint(folder)
    except ValueError as e:
        return str(e)
    return None


def focal_from_pointmap(points: Tensor, weight: Tensor | None = None, iters: int = 10) -> Tensor:
    """Per-frame focal length (pixels) of camera-space pointmaps ``[F, h, w, 3]``, principal point at
    the image centre and pixel centres at +0.5 (our convention): the Weiszfeld (L1) fit of
    ``(u - cx, v - cy) = f·(X/Z, Y/Z)`` started from least squares."""
    F, h, w, _ = points.shape
    pts = points.double()
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64) + 0.5 - h / 2,
                          torch.arange(w, dtype=torch.float64) + 0.5 - w / 2, indexing="ij")
    z = pts[..., 2]
    valid = torch.isfinite(pts).all(-1) & (z > 1e-8)
    wgt = valid.double() if weight is None else weight.double() * valid
    q = pts[..., :2] / torch.where(valid, z, torch.ones_like(z)).unsqueeze(-1)
    q = torch.where(valid.unsqueeze(-1), q, torch.zeros_like(q))
    p = torch.stack([u, v], -1).expand(F, h, w, 2)
    if bool((wgt.flatten(1).sum(1) == 0).any()):
        raise ValueError("ttt3r: a frame has no valid point in front of the camera; cannot estimate its focal length")
    a = wgt  # least squares first, then reweighted by 1/|residual| (Weiszfeld)
    for _ in range(iters + 1):
        f = (a * (p * q).sum(-1)).flatten(1).sum(1) / (a * (q * q).sum(-1)).flatten(1).sum(1).clamp_min(1e-12)
        a = wgt / (p - f.view(F, 1, 1, 1) * q).norm(dim=-1).clamp_min(1e-6)
    return f


def model_size(height: int, width: int, size: int) -> tuple[int, int]:
    """Long side ``size``, aspect kept, both sides rounded to multiples of 16 (the patch size)."""
    s = size / max(height, width)
    return max(16, int(round(height * s / 16)) * 16), max(16, int(round(width * s / 16)) * 16)


INPUT_MODES = ("resize", "square-pad")


def square_pad_layout(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """``(h, w, top, left)``: where a ``height``×``width`` frame sits in the ``size``×``size`` square input.

    The long side becomes ``size``, the short one ``size·short/long`` rounded down (in integers: the
    official code's ``int(H · size / max(H, W))`` without its float rounding); the frame is centred,
    the extra pad row or column going to the bottom/right (``pad // 2`` on top/left, as there)."""
    if size < 16 or size % 16:
        raise ValueError(f"ttt3r: the square input's side must be a multiple of 16 (official: 512), got {size}")
    long = max(height, width)
    h, w = max(1, height * size // long), max(1, width * size // long)
    return h, w, (size - h) // 2, (size - w) // 2


class TTT3REstimator:
    """TTT3R on a clip: depth, confidence, one intrinsics matrix and camera-to-world poses."""

    name = "ttt3r"
    estimates_poses = True  # pose_source "auto" -> "estimated"
    # not split into mini-batches: each frame updates the recurrent state the next one reads, so a
    # split would restart the state (other depth and poses); the repository's inference runs the
    # frames one at a time through that state already, so its memory does not grow with the batch
    per_frame = False
    input_modes = INPUT_MODES  # "square-pad": the official zero-padded square (PipelineSettings.geometry_input)

    def __init__(self, repo: str, checkpoint: str | None = None, device: str = "cpu",
                 dtype: torch.dtype = torch.float32, size: int = 512, update_type: str = "ttt3r") -> None:
        if update_type not in ("ttt3r", "cut3r"):
            raise ValueError(f"ttt3r: update_type must be 'ttt3r' or 'cut3r', got {update_type!r}")
        self.model_mod, self.inference_mod, self.camera_mod = import_ttt3r(repo)
        checkpoint = checkpoint or find_checkpoint(repo)
        kwargs, state = read_ttt3r_checkpoint(checkpoint)
        model = self.model_mod.ARCroco3DStereo(self.model_mod.ARCroco3DStereoConfig(**kwargs))
        result = model.load_state_dict(state, strict=False)
        missing = list(getattr(result, "missing_keys", []))
        if missing and len(missing) == len(list(model.state_dict())):
            raise ValueError(f"ttt3r: no weight of {checkpoint} matches the model it describes")
        if missing:
            log.warning("ttt3r: %d weights missing from %s (e.g. %s)", len(missing), checkpoint, missing[:3])
        model.config.model_update_type = update_type
        self.model, self.device, self.dtype, self.size = model.eval(), device, dtype, size

    def views(self, frames: Tensor, input_mode: str = "resize") -> list[dict]:
        """The repository's per-frame input dicts: images in [-1, 1], no ray maps, state updated.

        ``input_mode`` ``resize``: the frames resized to :func:`model_size`; ``square-pad``: resized
        into the ``size`` square of zeros (:func:`square_pad_layout`), bilinear with antialiasing as
        the official code's ``torchvision`` resize."""
        _check_input_mode(input_mode)
        F, H, W, _ = frames.shape
        x = frames.permute(0, 3, 1, 2).float()
        if input_mode == "square-pad":
            fh, fw, top, left = square_pad_layout(H, W, self.size)
            inner = Fn.interpolate(x, size=(fh, fw), mode="bilinear", align_corners=False, antialias=True)
            h = w = self.size
            x = torch.zeros(F, 3, h, w)
            x[:, :, top:top + fh, left:left + fw] = inner.clamp(0, 1)
            x = x * 2 - 1
        else:
            h, w = model_size(H, W, self.size)
            x = Fn.interpolate(x, size=(h, w), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1) * 2 - 1
        return [{"img": x[i:i + 1], "ray_map": torch.full((1, 6, h, w), torch.nan),
                 "true_shape": torch.tensor([[h, w]], dtype=torch.int32), "idx": i, "instance": str(i),
                 "camera_pose": torch.eye(4)[None], "img_mask": torch.tensor([True]),
                 "ray_mask": torch.tensor([False]), "update": torch.tensor([True]), "reset": torch.tensor([False])}
                for i in range(F)]

    @torch.no_grad()
    def estimate(self, frames: Tensor, cameras: Cameras | None = None, input_mode: str = "resize") -> GeometryResult:
        """Its own poses and intrinsics are returned whether or not ``cameras`` are given (it does not
        take poses); the pipeline's ``pose_source`` chooses which are used. ``input_mode``: :meth:`views`;
        depth, confidence and intrinsics are for the frames ``[F, H, W]`` either way."""
        check_frames(frames)
        _check_input_mode(input_mode)
        F, H, W, _ = frames.shape
        run = getattr(self.inference_mod, "inference_recurrent_lighter", None) or self.inference_mod.inference_recurrent
        self.model.to(self.device)
        on_gpu = torch.device(self.device).type == "cuda"
        with torch.autocast("cuda", dtype=self.dtype, enabled=on_gpu and self.dtype != torch.float32):
            outputs, _ = run(self.views(frames.cpu(), input_mode), self.model, self.device)
        preds = outputs["pred"]
        if len(preds) != F:
            raise ValueError(f"ttt3r: {len(preds)} predictions for {F} frames")
        pts = torch.cat([p["pts3d_in_self_view"].float().cpu() for p in preds])  # [F, h, w, 3]
        conf = torch.cat([p["conf_self"].float().cpu() for p in preds])  # [F, h, w], >= 1
        c2w = torch.cat([self.camera_mod.pose_encoding_to_camera(p["camera_pose"].clone()).float().cpu()
                         for p in preds]).double()
        h, w = pts.shape[1:3]
        weight = (conf > 1).float()
        if input_mode == "square-pad":
            # the frame's part of the square: the pad carries no scene, so it neither votes for the focal
            # length nor reaches the outputs, and the principal point (the square's centre) moves with it
            fh, fw, top, left = square_pad_layout(H, W, self.size)
            inside = torch.zeros(h, w)
            inside[top:top + fh, left:left + fw] = 1.0
            f = float(focal_from_pointmap(pts, weight * inside).median())
            cx, cy = (w / 2 - left) * W / fw, (h / 2 - top) * H / fh
            pts, conf = pts[:, top:top + fh, left:left + fw], conf[:, top:top + fh, left:left + fw]
            h, w = fh, fw
        else:
            f = float(focal_from_pointmap(pts, weight).median())
            cx, cy = W / 2, H / 2
        K = torch.tensor([[f * W / w, 0.0, cx], [0.0, f * H / h, cy], [0.0, 0.0, 1.0]], dtype=torch.float64)
        depth = resize_map(pts[..., 2], H, W)
        confidence = resize_map((1 - 1 / conf.clamp_min(1)).clamp(0, 1), H, W).clamp(0, 1)
        return GeometryResult(depth, confidence, Cameras.from_c2w(c2w, K.expand(F, 3, 3).clone(), W, H), "metric")

    def unload(self) -> None:
        move_to_cpu(self.model)


def _check_input_mode(input_mode: str) -> None:
    if input_mode not in INPUT_MODES:
        raise ValueError(f"ttt3r: input_mode must be one of {', '.join(INPUT_MODES)}, got {input_mode!r}")


@register("ttt3r", "git clone the TTT3R repository into models/worldwarp/TTT3R and put its checkpoint in src/",
          folder_check=checkout_problem)
def _ttt3r(path=None, device="cpu", dtype=torch.float32, checkpoint=None, size=512, update_type="ttt3r", **kw):
    return TTT3REstimator(path, checkpoint, device, dtype, size, update_type)
