"""Image preprocessing with torch only (transformers' image processors import torchvision)."""

from __future__ import annotations

import torch
import torch.nn.functional as Fn
from torch import Tensor


def to_model_input(frames: Tensor, height: int, width: int, mean, std, mode: str = "bicubic") -> Tensor:
    """``[F, H, W, 3]`` 0..1 -> ``[F, 3, height, width]`` normalised with ``mean``/``std``."""
    x = frames.permute(0, 3, 1, 2).float()
    x = Fn.interpolate(x, size=(height, width), mode=mode, align_corners=False, antialias=mode != "nearest")
    x = x.clamp(0, 1)
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


def fit_multiple(height: int, width: int, target: int, multiple: int) -> tuple[int, int]:
    """Keep aspect ratio, shorter side ~``target``, both sides multiples of ``multiple``."""
    scale = target / min(height, width)
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    return h, w


def resize_map(x: Tensor, height: int, width: int) -> Tensor:
    """``[F, h, w]`` -> ``[F, height, width]`` bilinear."""
    return Fn.interpolate(x.unsqueeze(1).float(), size=(height, width), mode="bilinear", align_corners=False).squeeze(1)
