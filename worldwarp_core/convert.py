"""Transformer checkpoints to ComfyUI's layout (the original Wan key names), core-free.

ComfyUI's Load Diffusion Model detects Wan 2.1 from the original key names
(``blocks.0.self_attn.q.weight``, ``head.modulation`` ...). The official WorldWarp fine-tune
``worldwarp_latest.ckpt`` is a state dict of the diffusers ``WanTransformer3DModel``; this module
renames it (the mapping lives in :mod:`worldwarp_core.models`) so every core tool that takes a
``MODEL`` (LoRA, fp8 weight dtype, TorchCompileModel, offloading) applies to it.

    python -m worldwarp_core convert-checkpoint worldwarp_latest.ckpt \\
        ComfyUI/models/diffusion_models/worldwarp_latest_comfy.safetensors
"""

from __future__ import annotations

import os
import re

import torch
from torch import Tensor

from .models import _COMFY_PREFIX, _read_safetensors, diffusers_to_wan_key, read_checkpoint, transformer_layout

# every parameter name of an original-layout Wan 2.1 T2V transformer (wan/modules/model.py)
_WAN_KEYS = re.compile(
    r"^(patch_embedding\.(weight|bias)"
    r"|text_embedding\.[02]\.(weight|bias)|time_embedding\.[02]\.(weight|bias)|time_projection\.1\.(weight|bias)"
    r"|head\.head\.(weight|bias)|head\.modulation"
    r"|blocks\.\d+\.(modulation|norm3\.(weight|bias)|ffn\.[02]\.(weight|bias)"
    r"|(self_attn|cross_attn)\.([qkvo]\.(weight|bias)|norm_[qk]\.weight)))$"
)
_REQUIRED = ("patch_embedding.weight", "head.modulation", "head.head.weight", "blocks.0.ffn.0.weight",
             "text_embedding.0.weight", "time_embedding.0.weight")
SAVE_DTYPES = {"keep": None, "fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def read_transformer_file(path: str) -> dict[str, Tensor]:
    """A transformer state dict from ``.ckpt/.pt/.pth/.bin`` (``weights_only=True``) or ``.safetensors``."""
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint not found: {path}; put worldwarp_latest.ckpt in models/diffusion_models")
    if path.endswith((".ckpt", ".pt", ".pth", ".bin")):
        return read_checkpoint(path)
    if path.endswith((".safetensors", ".sft")):
        return _read_safetensors(path)
    raise ValueError(f"{path}: unknown checkpoint type; expected .ckpt/.pt/.pth (a torch state dict) or .safetensors")


def to_comfy_layout(state: dict[str, Tensor], source: str = "checkpoint") -> dict[str, Tensor]:
    """Any supported transformer layout (diffusers, original Wan, ComfyUI-prefixed) -> original Wan keys.

    Raises ``ValueError`` naming the keys that are not part of a Wan 2.1 T2V transformer (an image-to-video
    or VACE file, a LoRA, another model) instead of letting a loader drop them silently.
    """
    layout = transformer_layout(state)
    if layout == "comfyui":
        state = {k[len(_COMFY_PREFIX):]: v for k, v in state.items() if k.startswith(_COMFY_PREFIX)}
        layout = transformer_layout(state)
    out = dict(state) if layout == "wan" else {diffusers_to_wan_key(k): v for k, v in state.items()}
    unknown = sorted(k for k in out if not _WAN_KEYS.match(k))
    missing = [k for k in _REQUIRED if k not in out]
    if unknown or missing:
        what = []
        if missing:
            what.append(f"missing {missing}")
        if unknown:
            what.append(f"{len(unknown)} keys that are not a Wan 2.1 T2V transformer's (e.g. {unknown[:3]})")
        raise ValueError(f"{source} is not a Wan 2.1 text-to-video transformer in a known layout (diffusers, original "
                         f"Wan or ComfyUI): {'; '.join(what)}. Nothing was converted.")
    return out


def convert_checkpoint(src: str, dst: str, dtype: str = "keep", overwrite: bool = False) -> dict:
    """Write ``src`` (any layout) as a ComfyUI-layout ``.safetensors``; returns a summary.

    ``dtype``: ``keep`` (the file's own), ``fp16``, ``bf16`` or ``fp32``.
    """
    from safetensors.torch import save_file

    if dtype not in SAVE_DTYPES:
        raise ValueError(f"dtype must be one of {list(SAVE_DTYPES)}, got {dtype!r}")
    if not dst.endswith(".safetensors"):
        raise ValueError(f"output must be a .safetensors file, got {dst}")
    if os.path.exists(dst) and not overwrite:
        raise ValueError(f"{dst} exists; pass --overwrite to replace it")
    if os.path.abspath(src) == os.path.abspath(dst):
        raise ValueError("output and input are the same file; write the converted checkpoint elsewhere")
    state = to_comfy_layout(read_transformer_file(src), src)
    target = SAVE_DTYPES[dtype]
    state = {k: (v.to(target) if target is not None and v.is_floating_point() else v).contiguous()
             for k, v in state.items()}
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    tmp = dst + ".tmp"
    save_file(state, tmp, metadata={"format": "pt", "worldwarp_source": os.path.basename(src)})
    os.replace(tmp, dst)
    return {"keys": len(state), "parameters": sum(v.numel() for v in state.values()),
            "blocks": 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks.")), "path": dst}


__all__ = ["convert_checkpoint", "read_transformer_file", "to_comfy_layout"]
