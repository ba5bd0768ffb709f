"""Evaluation: the paper's image and camera metrics, the Tables 1-3 protocol and plots."""

from .metrics import (
    LPIPS,
    camera_metrics,
    frechet_distance,
    load_fid_extractor,
    psnr,
    relative_poses,
    rotation_distance,
    ssim,
)

__all__ = [
    "LPIPS",
    "camera_metrics",
    "frechet_distance",
    "load_fid_extractor",
    "psnr",
    "relative_poses",
    "rotation_distance",
    "ssim",
]
