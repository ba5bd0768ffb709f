"""Training data: the clip folder format, one-to-all warping (eq. 2-3) and the latent cache.

Clip folder (one per training clip; what a geometry pre-estimation produces)::

    clip_0001/
      frames/00000.png 00001.png ...      RGB frames, all the same size (H, W multiples of 16)
      depth/00000.npy  ...                float32 [H, W] camera-space z (OpenCV), or
      depth/00000.png  ...                16-bit PNG: depth = value * depth_scale (meta.json)
      cameras.txt | cameras.json          RealEstate10K txt or our JSON (worldwarp_core.cameras)
      prompt.txt                          one paragraph describing the clip (optional)
      meta.json                           optional: {"depth_scale": 0.001}

``prepare_clip`` turns a clip into the training samples ST-Diff needs, cached as
``latents.safetensors`` beside it so the VAE runs once per clip, not every step. The paper samples
the source frame of the one-to-all warp per training sample, so the cache holds the warps of ``K``
source frames (``sources``: ``K`` evenly spaced frames, or every frame) and each training step
draws one of them (:func:`pick_source`): ``z_gt [C, F_lat, h, w]``, ``z_warp [K, C, F_lat, h, w]``,
``mask_latent [K, F_lat, h, w]`` (the official inference rule: the mask at latent resolution that
eq. 5-6 use), ``mask_token [K, F_lat, h/2, w/2]`` (the strict rule), ``source_index [K]``,
``prompt_embeds [S, D]``. Caches written before sources were stacked (one source) still load.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..cameras import Cameras

CACHE_NAME = "latents.safetensors"


@dataclass
class Clip:
    frames: Tensor  # [F, H, W, 3] 0..1
    depths: Tensor  # [F, H, W]
    cameras: Cameras
    prompt: str


def _sorted_files(folder: str, exts: tuple[str, ...]) -> list[str]:
    if not os.path.isdir(folder):
        raise ValueError(f"clip folder has no '{os.path.basename(folder)}/' subfolder: {folder}")
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(exts))


def load_clip(folder: str, require_depth: bool = True) -> Clip:
    """Read a clip folder (format in the module docstring); errors name the file and what is wrong.

    ``require_depth=False`` reads clips without depth/ (evaluation clips); their depth is empty.
    """
    frame_files = _sorted_files(os.path.join(folder, "frames"), (".png", ".jpg", ".jpeg"))
    if not frame_files:
        raise ValueError(f"{folder}/frames holds no .png/.jpg frames")
    frames = torch.stack([torch.from_numpy(np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255.0)
                          for f in frame_files])
    F, H, W, _ = frames.shape
    meta = {}
    if os.path.isfile(os.path.join(folder, "meta.json")):
        with open(os.path.join(folder, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
    if not require_depth and not os.path.isdir(os.path.join(folder, "depth")):
        depth_files = []
    else:
        depth_files = _sorted_files(os.path.join(folder, "depth"), (".npy", ".png"))
    if require_depth and len(depth_files) != F:
        raise ValueError(f"{folder}: {F} frames but {len(depth_files)} depth maps in depth/; give one per frame")
    depths = []
    for path in depth_files:
        if path.endswith(".npy"):
            d = np.load(path, allow_pickle=False).astype(np.float32)
        else:
            d = np.asarray(Image.open(path), dtype=np.float32) * float(meta.get("depth_scale", 0.001))
        if d.shape != (H, W):
            raise ValueError(f"{path}: depth is {list(d.shape)}, frames are {H}x{W}; depth must match the frames")
        depths.append(torch.from_numpy(d))
    depth = torch.stack(depths) if depths else torch.empty(0, H, W)
    for name in ("cameras.txt", "cameras.json"):
        if os.path.isfile(os.path.join(folder, name)):
            cameras = Cameras.load(os.path.join(folder, name), W, H)
            break
    else:
        raise ValueError(f"{folder}: no cameras.txt (RealEstate10K) or cameras.json")
    if require_depth and len(cameras) != F:
        raise ValueError(f"{folder}: {F} frames but {len(cameras)} cameras")
    if (cameras.width, cameras.height) != (W, H):
        cameras = cameras.resize(W, H)
    prompt = ""
    if os.path.isfile(os.path.join(folder, "prompt.txt")):
        with open(os.path.join(folder, "prompt.txt"), encoding="utf-8") as f:
            prompt = f.read().strip()
    return Clip(frames, depth, cameras, prompt)


def save_clip(folder: str, clip: Clip) -> None:
    """Write a clip folder (frames PNG, depth .npy, cameras.json, prompt.txt)."""
    os.makedirs(os.path.join(folder, "frames"), exist_ok=True)
    os.makedirs(os.path.join(folder, "depth"), exist_ok=True)
    for i in range(clip.frames.shape[0]):
        img = (clip.frames[i].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        Image.fromarray(img).save(os.path.join(folder, "frames", f"{i:05d}.png"))
        np.save(os.path.join(folder, "depth", f"{i:05d}.npy"), clip.depths[i].float().numpy())
    clip.cameras.to_json(os.path.join(folder, "cameras.json"))
    with open(os.path.join(folder, "prompt.txt"), "w", encoding="utf-8") as f:
        f.write(clip.prompt)


def one_to_all(clip: Clip, source_index: int, radius: int = 1):
    """Eq. (2-3): unproject frame ``source_index`` with its depth and warp it into every frame's view."""
    from ..warp import one_to_all_warp

    F = clip.frames.shape[0]
    if not 0 <= source_index < F:
        raise ValueError(f"source frame {source_index} is outside the clip's {F} frames")
    return one_to_all_warp(
        clip.frames[source_index], clip.depths[source_index], clip.cameras[source_index], clip.cameras, radius=radius
    )


def source_frames(frames: int, sources: int | list[int] = 8) -> list[int]:
    """Source frames cached per clip: ``K`` evenly spaced over the clip (``0``: every frame), or a given list."""
    if isinstance(sources, int):
        if sources < 0:
            raise ValueError(f"sources must be >= 0 (0 = every frame), got {sources}")
        if sources == 0 or sources >= frames:
            return list(range(frames))
        return sorted({round(i * (frames - 1) / (sources - 1)) for i in range(sources)}) if sources > 1 \
            else [frames // 2]
    out = [int(s) for s in sources]
    bad = [s for s in out if not 0 <= s < frames]
    if not out or bad:
        raise ValueError(f"source frames {bad or out} are outside the clip's {frames} frames")
    return out


@torch.no_grad()
def prepare_clip(folder: str, model, sources: int | list[int] = 8, radius: int = 1, coverage: float = 1.0,
                 overwrite: bool = False) -> dict[str, Tensor]:
    """Encode a clip once and cache it as ``latents.safetensors`` in the clip folder.

    ``model`` is a ``WorldWarpModel`` (its VAE and text encoder are used). ``sources``: how many
    evenly spaced source frames to warp from (``0``: every frame, as the paper's per-sample draw),
    or their indices. ``coverage`` applies to the strict token mask only.
    """
    from ..schedule import official_latent_mask, token_mask

    path = os.path.join(folder, CACHE_NAME)
    if os.path.isfile(path) and not overwrite:
        return load_file(path)
    clip = load_clip(folder)
    F = clip.frames.shape[0]
    srcs = source_frames(F, sources)
    z_warp, m_lat, m_tok = [], [], []
    for src in srcs:
        warped = one_to_all(clip, src, radius)
        pixel_mask = warped.masks.float()
        z_warp.append(model.encode_video(warped.images).float().cpu())
        m_lat.append(official_latent_mask(pixel_mask).float().cpu())
        m_tok.append(token_mask(pixel_mask, coverage=coverage).float().cpu())
    sample = {
        "z_gt": model.encode_video(clip.frames).float().cpu().contiguous(),
        "z_warp": torch.stack(z_warp).contiguous(),
        "mask_latent": torch.stack(m_lat).contiguous(),
        "mask_token": torch.stack(m_tok).contiguous(),
        "prompt_embeds": model.encode_prompt([clip.prompt])[0].float().cpu().contiguous(),
        "source_index": torch.tensor(srcs),
    }
    tmp = path + ".tmp"
    save_file(sample, tmp)
    os.replace(tmp, path)
    return sample


def list_clips(data_dir: str) -> list[str]:
    """Clip folders under ``data_dir`` (any subfolder with a frames/ folder), sorted."""
    if not os.path.isdir(data_dir):
        raise ValueError(f"training data folder not found: {data_dir}")
    clips = sorted(os.path.join(data_dir, d) for d in os.listdir(data_dir)
                   if os.path.isdir(os.path.join(data_dir, d, "frames")))
    if not clips:
        raise ValueError(f"{data_dir} holds no clip folders (each needs frames/, depth/, cameras.txt|json)")
    return clips


class LatentDataset(torch.utils.data.Dataset):
    """Cached training samples (``latents.safetensors`` of each clip)."""

    def __init__(self, data_dir: str) -> None:
        self.paths = [os.path.join(c, CACHE_NAME) for c in list_clips(data_dir)]
        missing = [p for p in self.paths if not os.path.isfile(p)]
        if missing:
            raise ValueError(f"{len(missing)} clips have no {CACHE_NAME} (first: {missing[0]}); "
                             "run `python -m worldwarp_core.train prepare` first")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        """All cached sources of clip ``i`` (``z_warp [K, C, F, h, w]``; use :func:`pick_source` per step)."""
        sample = load_file(self.paths[i])
        if sample["z_warp"].ndim == 4:  # a cache from before sources were stacked: one source
            for key in ("z_warp", "mask_latent", "mask_token"):
                sample[key] = sample[key][None]
            sample["source_index"] = sample["source_index"].reshape(1)
        return sample


def pick_source(sample: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """One training sample: a source frame drawn uniformly from the clip's cached sources (paper §4.1)."""
    K = sample["z_warp"].shape[0]
    k = int(torch.randint(K, (), generator=generator))
    out = {key: v for key, v in sample.items() if key not in ("z_warp", "mask_latent", "mask_token", "source_index")}
    for key in ("z_warp", "mask_latent", "mask_token"):
        out[key] = sample[key][k]
    out["source_index"] = sample["source_index"][k].reshape(1)
    return out


def read_video_frames(path: str, frames: int, stride: int = 1, width: int | None = None,
                      height: int | None = None) -> Tensor:
    """Decode ``frames`` frames (every ``stride``-th) of a video with PyAV → ``[F, H, W, 3]`` 0..1.

    With ``width``/``height`` each frame is resized (bicubic, PIL) to exactly that size.
    """
    import av

    if not os.path.isfile(path):
        raise ValueError(f"video not found: {path}")
    out = []
    with av.open(path) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % stride:
                continue
            img = frame.to_image()
            if width and height:
                img = img.resize((width, height), Image.BICUBIC)
            out.append(torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0))
            if len(out) == frames:
                break
    if len(out) < frames:
        raise ValueError(f"{path}: only {len(out)} frames at stride {stride}, {frames} asked")
    return torch.stack(out)


def build_clip_from_video(video: str, out_dir: str, geometry: str, geometry_path: str, frames: int = 49,
                          stride: int = 1, width: int = 720, height: int = 480, prompt: str = "",
                          device: str = "cpu") -> Clip:
    """Make a training clip folder from a video: frames + depth + cameras from a geometry backend."""
    from ..geometry import load_estimator

    if width % 16 or height % 16:
        raise ValueError(f"clip size {width}x{height}: width and height must be multiples of 16")
    if (frames - 1) % 4:
        raise ValueError(f"a clip needs 4k+1 frames for the Wan VAE (e.g. 49), got {frames}")
    images = read_video_frames(video, frames, stride, width, height)
    estimator = load_estimator(geometry, geometry_path, device=device)
    result = estimator.estimate(images)
    clip = Clip(images, result.depth.float().cpu(), result.cameras.to("cpu"), prompt)
    save_clip(out_dir, clip)
    return clip
