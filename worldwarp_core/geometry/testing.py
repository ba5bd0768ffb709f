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


def tiny_depth_pro(fov_deg: float = 55.0, seed: int = 0):
    from transformers import DepthProConfig, DepthProForDepthEstimation

    torch.manual_seed(seed)
    sub = {"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
           "intermediate_size": 64, "patch_size": 8, "image_size": 32}
    cfg = DepthProConfig(patch_size=32, fusion_hidden_size=16, image_model_config=sub, patch_model_config=sub,
                         fov_model_config=sub, use_fov_model=True, scaled_images_ratios=[0.5, 1.0],
                         scaled_images_overlap_ratios=[0.0, 0.25], scaled_images_feature_dims=[32, 32],
                         intermediate_hook_ids=[1], intermediate_feature_dims=[32])
    m = DepthProForDepthEstimation(cfg).eval()
    head = m.fov_model.head.layers[-1]
    with torch.no_grad():  # a known FoV (random heads give any value), so focal maths can be checked
        head.weight.zero_()
        head.bias.fill_(fov_deg)
    return m
