"""The geometry-estimator protocol, its result, and the registry node dropdowns list."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor

from ..cameras import Cameras
from ..model_files import register_kind

DepthKind = Literal["metric", "relative"]


@dataclass
class GeometryResult:
    depth: Tensor  # [F, H, W] camera z (metric) or relative depth (median 1 per clip)
    confidence: Tensor  # [F, H, W] in 0..1
    cameras: Cameras  # intrinsics and poses (requested, given, or estimated)
    kind: DepthKind = "metric"
    inverse: Tensor | None = None  # [F, H, W] raw affine inverse depth of relative models (for alignment)


class GeometryEstimator(Protocol):
    name: str

    def estimate(self, frames: Tensor, cameras: Cameras | None = None) -> GeometryResult:
        """Frames ``[F, H, W, 3]`` in 0..1 (+ known cameras) -> depth, confidence, cameras."""
        ...

    def unload(self) -> None:
        """Free accelerator memory until the next use (the pipeline calls it between stages)."""
        ...


ESTIMATORS: dict[str, Callable[..., GeometryEstimator]] = {}
FOLDER_HINTS: dict[str, str] = {}


def register(name: str, hint: str, folder_check: Callable[[str], str | None] | None = None):
    """Register a backend: its factory, the hint for a missing folder, and ``folder_check(folder)``
    saying why a folder found for it is unusable (None: the usual transformers folder check), which
    ``model_files.run_needs`` uses before anything loads."""
    def deco(factory):
        ESTIMATORS[name] = factory
        FOLDER_HINTS[name] = hint
        register_kind("geometry", name, folder_check)
        return factory

    return deco


def list_estimators() -> list[str]:
    return sorted(ESTIMATORS)


def load_estimator(name: str, path: str | None = None, device: str = "cpu", dtype: torch.dtype = torch.float32,
                   **kwargs) -> GeometryEstimator:
    """Instantiate a registered backend from a LOCAL folder (nothing is downloaded)."""
    if name not in ESTIMATORS:
        raise ValueError(f"unknown geometry backend {name!r}; choose one of {list_estimators()}")
    if path is not None and not os.path.exists(path):
        raise ValueError(f"{name}: model folder not found: {path}; {FOLDER_HINTS[name]}")
    return ESTIMATORS[name](path=path, device=device, dtype=dtype, **kwargs)


def estimate_checked(estimator: GeometryEstimator, frames: Tensor, cameras: Cameras | None = None,
                     check: Callable[[], None] | None = None) -> GeometryResult:
    """``estimator.estimate(frames, cameras)`` with ``check()`` (may raise to interrupt) run before every
    submodule forward of its network (``estimator.model``), so a long batch stops within one layer."""
    from ..interrupt import checked

    with checked(getattr(estimator, "model", None), check):
        return estimator.estimate(frames, cameras)


def check_frames(frames: Tensor) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [F, H, W, 3] in 0..1, got {list(frames.shape)}")
    if not bool(torch.isfinite(frames).all()):
        raise ValueError("frames contain NaN/inf values")
