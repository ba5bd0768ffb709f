"""A pipeline check that runs anywhere: the full loop on CPU with tiny random-weight models.

The start image and its exact depth come from the synthetic scene (``synthetic.py``); the
diffusion model, VAE, text encoder and depth model are tiny and random, so the frames the
diffusion model fills are noise. Everything else -- chunking, geometry alignment, the 3DGS cache,
hints, ST-Diff's per-token schedule, decoding, saving, resume -- is the real code.
"""

from __future__ import annotations

from .gscache import GSConfig
from .pipeline import PipelineSettings, RunResult, WorldWarpPipeline
from .synthetic import default_scene
from .trajectory import make_trajectory, median_depth

DEMO_SETTINGS = PipelineSettings(
    chunk_frames=17, context_frames=5, steps=6, guidance_scale=3.0,
    gs=GSConfig(iterations=20, stride=2, views_per_step=1), history_stride=4, world_voxel=0.05, fps=8,
)


def run_demo(out_dir: str, frames: int = 41, width: int = 96, height: int = 64, trajectory: str = "dolly_in@0.4",
             resume: bool = False, overwrite: bool = False, callback=None,
             settings: PipelineSettings | None = None) -> RunResult:
    """Generate ``frames`` frames of the synthetic room along ``trajectory`` with tiny models."""
    from .geometry.monocular import DepthAnythingV2
    from .geometry.testing import tiny_depth_anything
    from .models import tiny_model

    scene = default_scene()
    start = scene.default_camera(width, height)
    rgb, depth = scene.render(start)
    path = make_trajectory(trajectory, min(frames, 17), start, scene_scale=median_depth(depth))
    settings = settings or DEMO_SETTINGS
    pipe = WorldWarpPipeline(
        tiny_model(seed=0), DepthAnythingV2(model=tiny_depth_anything(), input_size=56), None, settings)
    return pipe(rgb[0], path, frames, prompt="a pipeline check: a small textured room", style="",
                out_dir=out_dir, resume=resume, overwrite=overwrite, start_depth=depth[0], callback=callback)


__all__ = ["DEMO_SETTINGS", "run_demo"]
