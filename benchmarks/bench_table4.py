"""Per-chunk latency breakdown like the paper's Table 4 (VLM, geometry, 3DGS, warp, ST-Diff, total).

Runs the real pipeline for two chunks (49 frames, 5 context, 480x720) with FULL-size random-init
models built from the shipped configs (Wan2.1 1.3B transformer, Wan VAE, UMT5-XXL encoder, Depth
Pro) and reports the second chunk -- the first has no history to estimate. Paper: 54.5 s per chunk
(TTT3R 5.8 s, 3DGS 2.5 s, warp 0.2 s, ST-Diff 42.5 s). The VLM row stays 0: no VLM adapter ships
yet, and the run uses a fixed prompt.

    python benchmarks/bench_table4.py [--tiny] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from worldwarp_core import models  # noqa: E402
from worldwarp_core.gscache import GSConfig  # noqa: E402
from worldwarp_core.pipeline import PipelineSettings, WorldWarpPipeline  # noqa: E402
from worldwarp_core.synthetic import default_scene  # noqa: E402
from worldwarp_core.trajectory import make_trajectory, median_depth  # noqa: E402


def full_size_model(device: str) -> models.WorldWarpModel:
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    with torch.device(device):
        tr = WanTransformer3DModel.from_config(models._config("transformer")).to(torch.bfloat16).eval()
        vae = AutoencoderKLWan.from_config(models._config("vae")).eval()
        te = UMT5EncoderModel(UMT5Config(**models._config("text_encoder"))).to(torch.bfloat16).eval()
    return models.WorldWarpModel(tr, vae, te, models.tiny_tokenizer(), device=device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny models at 32x48 on CPU: checks the script")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    from worldwarp_core.geometry.monocular import DepthAnythingV2, DepthPro
    from worldwarp_core.geometry.testing import tiny_depth_anything

    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if not args.tiny and device == "cpu":
        print("no CUDA: the full-size benchmark needs a GPU (use --tiny to check the script on CPU)")
        return
    if args.tiny:
        W, H, chunk, ctx, steps, iters = 48, 32, 9, 1, 4, 10
        model = models.tiny_model()
        geometry = DepthAnythingV2(model=tiny_depth_anything(), input_size=56)
    else:
        W, H, chunk, ctx, steps, iters = 720, 480, 49, 5, 50, 500
        model = full_size_model(device)
        from transformers import DepthProConfig, DepthProForDepthEstimation

        geometry = DepthPro(model=DepthProForDepthEstimation(DepthProConfig()), device=device, dtype=torch.float16)
    scene = default_scene()
    start = scene.default_camera(W, H)
    rgb, depth = scene.render(start)
    path = make_trajectory("dolly_in@0.5", 2 * chunk - ctx, start, scene_scale=median_depth(depth))
    settings = PipelineSettings(chunk_frames=chunk, context_frames=ctx, steps=steps, gs=GSConfig(iterations=iters),
                                history_stride=4, offload_helpers=False)
    out = args.out or tempfile.mkdtemp(prefix="worldwarp_table4_")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    result = WorldWarpPipeline(model, geometry, None, settings)(
        rgb[0], path, 2 * chunk - ctx, prompt="a room", out_dir=out, overwrite=True, start_depth=depth[0])
    total = time.perf_counter() - t0
    t = result.chunks[-1]["timings_s"]
    rows = [("VLM (caption)", t.get("vlm", 0.0)), ("geometry (depth of the history)", t.get("geometry", 0.0)),
            ("alignment", t.get("align", 0.0)), ("3DGS cache", t.get("3dgs", 0.0)), ("warp (render hints)",
            t.get("warp", 0.0)), ("encode (text + VAE)", t.get("encode", 0.0)), ("ST-Diff", t.get("st-diff", 0.0)),
            ("decode (VAE)", t.get("decode", 0.0)), ("save", t.get("save", 0.0))]
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU (tiny models)"
    print(f"Table 4 breakdown, chunk 2 of {chunk} frames at {W}x{H}, {steps} steps, {iters} 3DGS iterations, {name}")
    print("| stage | seconds |\n| --- | --- |")
    for label, v in rows:
        print(f"| {label} | {v:.2f} |")
    print(f"| **total (chunk 2)** | {sum(v for _, v in rows):.2f} |")
    if device == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB; whole run {total:.1f} s")
    with open(os.path.join(out, "table4.json"), "w", encoding="utf-8") as f:
        json.dump({"device": name, "chunk_2": dict(rows), "run_s": total}, f, indent=1)


if __name__ == "__main__":
    main()
