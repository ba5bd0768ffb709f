"""Tiny random-weight geometry models built from configs in code (tests, the demo, node tests).

Their depth is meaningless; they exercise the real loading and inference code paths.
"""

from __future__ import annotations

import torch


def tiny_depth_anything(seed: int = 0):
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    torch.manual_seed(seed)
    bb = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, patch_size=14,
                      image_size=56, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
    cfg = DepthAnythingConfig(backbone_config=bb, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                              fusion_hidden_size=16, head_hidden_size=8, reassemble_factors=[4, 2, 1, 0.5])
    return DepthAnythingForDepthEstimation(cfg).eval()


def save_tiny_depth_anything(path: str, seed: int = 0) -> str:
    tiny_depth_anything(seed).save_pretrained(path)
    return path
