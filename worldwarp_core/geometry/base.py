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
GeometryDtype = Literal["auto", "fp32", "bf16", "fp16"]
GEOMETRY_DTYPES: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DEFAULT_GEOMETRY_BATCH = 4  # frames per forward of a per-frame estimator (PipelineSettings.geometry_batch)
# the geometry model's input: "model" -- the backend's own preprocessing; "square-pad" -- the official TTT3R
# input (the frame resized into a zero-padded square, the outputs cropped back) for backends that list it in
# their ``input_modes``; the others keep their own (``resolve_geometry_input`` says which was used)
GEOMETRY_INPUTS: tuple[str, ...] = ("model", "square-pad")


@dataclass
class GeometryResult:
    depth: Tensor  # [F, H, W] camera z (metric) or relative depth (median 1 per clip)
    confidence: Tensor  # [F, H, W] in 0..1
    cameras: Cameras  # intrinsics and poses (requested, given, or estimated)
    kind: DepthKind = "metric"
    inverse: Tensor | None = None  # [F, H, W] raw affine inverse depth of relative models (for alignment)


class GeometryEstimator(Protocol):
    """``per_frame`` (optional, default False): every frame's result depends on that frame alone, so
    :func:`estimate_in_batches` may split a clip into mini-batches (monocular depth models). Multi-view
    and recurrent models (TTT3R, Depth Anything 3) leave it False and always see the whole clip.

    ``input_modes`` (optional): other preprocessings ``estimate`` takes as ``input_mode=`` (TTT3R:
    ``"square-pad"``); its result is at the frames' size either way."""

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


def geometry_dtype(choice: str | torch.dtype, device: str | torch.device = "cpu") -> torch.dtype:
    """The dtype a geometry model runs in: ``auto`` is bf16 on CUDA (half of fp32's weights and
    activations; Depth Pro is a 0.95 B-parameter ViT run on 1536x1536 inputs) and fp32 elsewhere
    (CPUs without bf16 units run it slower than fp32)."""
    if isinstance(choice, torch.dtype):
        if choice not in _DTYPES.values():
            raise ValueError(f"geometry dtype must be one of {GEOMETRY_DTYPES}, got {choice}")
        return choice
    if choice not in GEOMETRY_DTYPES:
        raise ValueError(f"geometry dtype must be one of {', '.join(GEOMETRY_DTYPES)}; got {choice!r}")
    if choice == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    return _DTYPES[choice]


# backends ``auto`` keeps in fp32: TTT3R is recurrent (each frame's state update reads the last one, so
# rounding accumulates over a clip), the official code runs it in fp32, and one frame at a time at
# 512x512 it gains little memory from half precision
AUTO_FP32 = frozenset({"ttt3r"})


def load_estimator(name: str, path: str | None = None, device: str = "cpu", dtype: str | torch.dtype = "auto",
                   **kwargs) -> GeometryEstimator:
    """Instantiate a registered backend from a LOCAL folder (nothing is downloaded).

    ``dtype``: a torch dtype or one of :data:`GEOMETRY_DTYPES` (``auto``: bf16 on CUDA, fp32 elsewhere;
    fp32 always for the backends in :data:`AUTO_FP32`)."""
    if name not in ESTIMATORS:
        raise ValueError(f"unknown geometry backend {name!r}; choose one of {list_estimators()}")
    if path is not None and not os.path.exists(path):
        raise ValueError(f"{name}: model folder not found: {path}; {FOLDER_HINTS[name]}")
    chosen = torch.float32 if dtype == "auto" and name in AUTO_FP32 else geometry_dtype(dtype, device)
    return ESTIMATORS[name](path=path, device=device, dtype=chosen, **kwargs)


def concat_results(parts: list[GeometryResult]) -> GeometryResult:
    """Results of consecutive frame ranges -> one result (the frames in order)."""
    kinds = {p.kind for p in parts}
    if len(kinds) != 1:
        raise ValueError(f"cannot join geometry results of different kinds {sorted(kinds)}")
    inverse = None
    if all(p.inverse is not None for p in parts):
        inverse = torch.cat([p.inverse for p in parts])
    return GeometryResult(torch.cat([p.depth for p in parts]), torch.cat([p.confidence for p in parts]),
                          Cameras.cat([p.cameras for p in parts]), parts[0].kind, inverse)


def resolve_geometry_input(geometry_input: str, estimator) -> str:
    """The input mode ``estimator`` is run with for the choice ``geometry_input`` (:data:`GEOMETRY_INPUTS`):
    ``square-pad`` where the backend lists it in its ``input_modes``, else ``model`` (its own)."""
    if geometry_input not in GEOMETRY_INPUTS:
        raise ValueError(f"geometry_input must be one of {', '.join(GEOMETRY_INPUTS)} (model: the backend's own "
                         f"preprocessing; square-pad: the official zero-padded square, TTT3R), got {geometry_input!r}")
    if geometry_input != "model" and geometry_input in tuple(getattr(estimator, "input_modes", ())):
        return geometry_input
    return "model"


def _estimate(estimator: GeometryEstimator, frames: Tensor, cameras: Cameras | None, mode: str) -> GeometryResult:
    if mode == "model":
        return estimator.estimate(frames, cameras)  # backends without input modes are called as before
    return estimator.estimate(frames, cameras, input_mode=mode)


def estimate_in_batches(estimator: GeometryEstimator, frames: Tensor, cameras: Cameras | None = None,
                        batch: int = DEFAULT_GEOMETRY_BATCH, geometry_input: str = "model") -> GeometryResult:
    """``estimator.estimate(frames [F, H, W, 3], cameras)`` run ``batch`` frames at a time.

    Only a ``per_frame`` estimator is split (its frames are independent, so each frame's depth is the
    one a single batch gives, to float rounding); its accelerator memory then follows ``batch``, not
    ``F`` (a 49-frame history through Depth Pro in one batch needs tens of GB). A multi-view or
    recurrent estimator gets the whole clip in one call, whatever ``batch``: splitting would change
    its result (TTT3R runs the frames one at a time through its recurrent state already).
    ``geometry_input``: :func:`resolve_geometry_input`.
    """
    from ..inputs import check_int

    mode = resolve_geometry_input(geometry_input, estimator)
    check_int(batch, "geometry_batch", 1)
    check_frames(frames)
    F = int(frames.shape[0])
    if cameras is not None and len(cameras) != F:
        raise ValueError(f"{F} frames but {len(cameras)} cameras; give one camera per frame")
    if not getattr(estimator, "per_frame", False) or F <= batch:
        return _estimate(estimator, frames, cameras, mode)
    parts = [_estimate(estimator, frames[i:i + batch], None if cameras is None else cameras[i:i + batch], mode)
             for i in range(0, F, batch)]
    return concat_results(parts)


def estimate_checked(estimator: GeometryEstimator, frames: Tensor, cameras: Cameras | None = None,
                     check: Callable[[], None] | None = None, batch: int | None = None,
                     geometry_input: str = "model") -> GeometryResult:
    """``estimator.estimate(frames, cameras)`` with ``check()`` (may raise to interrupt) run before every
    submodule forward of its network (``estimator.model``), so a long batch stops within one layer;
    ``batch``: frames per forward (:func:`estimate_in_batches`; None: one call); ``geometry_input``:
    :func:`resolve_geometry_input`."""
    from ..interrupt import checked

    with checked(getattr(estimator, "model", None), check):
        if batch is None:
            return _estimate(estimator, frames, cameras, resolve_geometry_input(geometry_input, estimator))
        return estimate_in_batches(estimator, frames, cameras, batch, geometry_input)


def check_frames(frames: Tensor) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [F, H, W, 3] in 0..1, got {list(frames.shape)}")
    if not bool(torch.isfinite(frames).all()):
        raise ValueError("frames contain NaN/inf values")
