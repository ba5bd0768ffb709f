"""ST-Diff sampling speed: 50 steps with batched CFG for one 49-frame 480x720 chunk (issue 4 quality bar).

Builds the FULL-size Wan2.1-T2V-1.3B transformer from the shipped config with random weights
(compute does not depend on weight values; nothing is downloaded) and times ``st_diff_sample``
(latents [16, 13, 60, 90], per-token timesteps, CFG batch 2). Paper: 42.5 s; target on one H100
≤ 20 s in bf16, and ≤ 16 GB peak with --low-vram (fp8 weight storage, bf16 compute).

    python benchmarks/bench_stdiff.py [--steps 50] [--compile] [--low-vram] [--tiny]

``--tiny`` runs the same code path with the tiny test model on CPU (a check of the script only).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from worldwarp_core import models  # noqa: E402
from worldwarp_core.sampler import SamplerConfig, st_diff_sample  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--compile", action="store_true", help="torch.compile the transformer blocks")
    p.add_argument("--low-vram", action="store_true", help="fp8 weight storage with bf16 compute")
    p.add_argument("--tiny", action="store_true", help="tiny model on CPU: checks the script")
    args = p.parse_args()
    from diffusers import WanTransformer3DModel

    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if not args.tiny and device == "cpu":
        print("no CUDA: the full-size benchmark needs a GPU (use --tiny to check the script on CPU)")
        return
    if args.tiny:
        cfg, shape, text = models.TINY_TRANSFORMER_CONFIG, (16, 13, 8, 12), models.TINY_TEXT_DIM
        dtype = torch.float32
    else:
        cfg = models._config("transformer")
        shape, text, dtype = (16, 13, 60, 90), cfg["text_dim"], torch.bfloat16
    with torch.device(device):
        transformer = WanTransformer3DModel.from_config(cfg).to(dtype).eval()
    if args.low_vram and device == "cuda":
        transformer = models._apply_dtype(transformer, torch.float8_e4m3fn)
    if args.compile:
        for block in transformer.blocks:
            block.compile()
    n_params = sum(p.numel() for p in transformer.parameters()) / 1e9
    g = torch.Generator().manual_seed(0)
    z = torch.randn(shape, generator=g).to(device)
    mask = (torch.rand(shape[1], shape[2] // 2, shape[3] // 2, generator=g) > 0.3).float()
    pos = torch.randn(1, 512, text, generator=g).to(device, dtype)
    neg = torch.randn(1, 512, text, generator=g).to(device, dtype)
    config = SamplerConfig(steps=args.steps, guidance_scale=5.0)
    st_diff_sample(transformer, z, mask, 2, pos, neg, SamplerConfig(steps=2, guidance_scale=5.0))  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    st_diff_sample(transformer, z, mask, 2, pos, neg, config)
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device == "cuda" else "-"
    print(f"| {name} | {'tiny' if args.tiny else 'Wan2.1-1.3B'} ({n_params:.2f} B params) | {dtype} | "
          f"{'fp8 storage' if args.low_vram else ''} {'compiled' if args.compile else ''} | latents {list(shape)} | "
          f"{args.steps} steps, CFG batch 2 | {dt:.2f} s | peak {peak} |")


if __name__ == "__main__":
    main()
