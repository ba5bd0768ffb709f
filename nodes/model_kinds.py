"""Which loader can load a folder of ``models/worldwarp``, judged from its files alone (no weights are
read), so each loader's dropdown lists only the folders it can load: the tokenizer list tokenizer
and diffusers folders, Load Geometry Model depth/pose models, Load Captioner VLMs. A folder that
fits none of the known kinds is offered wherever a folder of unknown kind could belong, so nothing
a user put there becomes unreachable."""

from __future__ import annotations

import json
import os

KINDS = ("tokenizer", "geometry", "captioner")
# transformers ``model_type`` of the geometry backends (depth-pro, depth-anything-v2 and the DPT family)
GEOMETRY_TYPES = frozenset({"depth_pro", "depth_anything", "dpt", "zoedepth", "glpn", "prompt_depth_anything"})
# and of the captioners (qwen2.5-vl, qwen3-vl, florence-2)
CAPTIONER_TYPES = frozenset({"qwen2_5_vl", "qwen2_vl", "qwen3_vl", "qwen3_vl_moe", "florence2"})
TOKENIZER_FILES = frozenset({"tokenizer.json", "spiece.model", "tokenizer_config.json"})
DIFFUSERS_PARTS = frozenset({"transformer", "vae", "text_encoder", "tokenizer"})


def _config(path: str) -> dict | None:
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def folder_kinds(path: str) -> frozenset[str]:
    """The loaders (``KINDS``) that can take the folder ``path``."""
    if not os.path.isdir(path):
        return frozenset()
    names = set(os.listdir(path))
    if "model_index.json" in names or DIFFUSERS_PARTS <= names:  # a diffusers Wan folder: its tokenizer/ is used
        return frozenset({"tokenizer"})
    if os.path.isdir(os.path.join(path, "src", "dust3r")):  # a TTT3R checkout
        return frozenset({"geometry"})
    config = _config(path)
    if config is None:
        return frozenset({"tokenizer"}) if names & TOKENIZER_FILES else frozenset(KINDS)
    model_type = str(config.get("model_type", ""))
    archs = [str(a) for a in config.get("architectures") or []]
    if model_type in GEOMETRY_TYPES or any("DepthEstimation" in a for a in archs):
        return frozenset({"geometry"})
    if model_type in CAPTIONER_TYPES or any(a.startswith(("Qwen2_5_VL", "Qwen2VL", "Qwen3VL", "Florence2"))
                                            for a in archs):
        return frozenset({"captioner"})
    return frozenset({"geometry", "captioner"})  # model weights of a kind not known here (e.g. Depth Anything 3)
