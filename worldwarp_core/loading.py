"""The generic loading toolbox every model of the pack uses (ST-Diff components, geometry models,
captioners): checks that a local file or folder is whole, ``from_pretrained`` from a local folder
only, dtype casts, and moving weights off the accelerator between uses.

The bottom of the import graph: it imports nothing from the package, so the modules that
describe model files (``model_files``) and the modules that load models (``models``, ``geometry``,
``caption``) can all use it without importing each other.
"""

from __future__ import annotations

import itertools
import json
import os
import struct

import torch

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".safetensors.index.json", ".bin.index.json")


def safetensors_problem(path: str) -> str | None:
    """Why a ``.safetensors`` file cannot be whole (bad header, shorter than its tensors), or None."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"{path} is truncated ({size} bytes)"
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, 100 << 20):
                return f"{path} is truncated or not a .safetensors file (header of {n} bytes in a {size}-byte file)"
            header = json.loads(f.read(n))
    except (OSError, ValueError) as e:
        return f"{path} is not a readable .safetensors file ({e})"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)
            and "data_offsets" in v]
    need = 8 + n + max(ends, default=0)
    if size < need:
        return f"{path} is truncated: {size} of {need} bytes; download it again"
    return None


def weights_problem(folder: str, what: str) -> str | None:
    """Why a transformers/diffusers model folder is unusable (no config, no weights, a truncated
    file), or None (also None when the folder does not exist: the caller says where to get it)."""
    if not os.path.isdir(folder):
        return f"{folder} is not a folder" if os.path.exists(folder) else None
    names = os.listdir(folder)
    if "config.json" not in names:
        return f"{folder} has no config.json (expected a {what} model folder)"
    weights = [n for n in names if n.endswith(WEIGHT_SUFFIXES)]
    if not weights:
        return f"{folder} has config.json but no weights (*.safetensors / *.bin)"
    for n in sorted(weights):
        if n.endswith(".safetensors"):
            bad = safetensors_problem(os.path.join(folder, n))
            if bad:
                return bad
    return None


def from_pretrained_local(cls, path: str, what: str, **kwargs):
    """``cls.from_pretrained(path, local_files_only=True)`` with a one-line error naming the folder
    (a missing config or weights file, a truncated download)."""
    problem = weights_problem(path, what)
    if problem:
        raise ValueError(f"{what}: {problem}")
    try:
        model, info = cls.from_pretrained(path, local_files_only=True, output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{what}: {path} could not be loaded ({first}); the folder may be incomplete: "
                         "download it again") from None
    # transformers/diffusers fill weights missing from the files with random values and only warn
    bad = [(k, list(info.get(k) or [])) for k in ("missing_keys", "mismatched_keys")]
    bad = [(k, v) for k, v in bad if v]
    if bad:
        detail = "; ".join(f"{len(v)} {k.replace('_', ' ')} (e.g. {v[0]})" for k, v in bad)
        raise ValueError(f"{what}: {path} could not be loaded ({detail}); the weights do not match the config: "
                         "download the folder again")
    return model


def move_to_cpu(module) -> None:
    """Free accelerator memory held by ``module`` until its next use (weights move to the CPU)."""
    module.to("cpu")
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def cast_floats(module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Cast floating parameters and buffers to ``dtype`` in place, keeping the model's
    ``_keep_in_fp32_modules`` (Wan: rope, time_embedder, scale_shift_table, norms) in float32: the
    dtypes diffusers' ``from_pretrained(torch_dtype=dtype)`` gives, for models built from a config
    (``ModelMixin.to(dtype)`` would cast those modules too, and warns that it does)."""
    keep = set(getattr(module, "_keep_in_fp32_modules", None) or ())
    for name, t in itertools.chain(module.named_parameters(), module.named_buffers()):
        if t.is_floating_point():
            target = torch.float32 if keep & set(name.split(".")) else dtype
            if t.dtype != target:
                t.data = t.data.to(target)
    return module


def compute_dtype(module: torch.nn.Module) -> torch.dtype:
    """The dtype a module computes in: diffusers' ``ModelMixin.dtype`` (skips the float32-kept modules,
    reads fp8 layerwise casting's compute dtype), else the first floating parameter's."""
    dtype = getattr(module, "dtype", None)
    if isinstance(dtype, torch.dtype):
        return torch.bfloat16 if dtype == torch.float8_e4m3fn else dtype
    first = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
    return torch.bfloat16 if first == torch.float8_e4m3fn else first


__all__ = ["WEIGHT_SUFFIXES", "cast_floats", "compute_dtype", "from_pretrained_local", "move_to_cpu",
           "safetensors_problem", "weights_problem"]
