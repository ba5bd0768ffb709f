"""3DGS cache optimisation speed (issue 3 quality bar; paper Table 4: 2.5 s for 500 iterations).

GPU (gsplat): 500 iterations at 480x720 over 49 history views. CPU (torch reference): iterations
per second at 120x180 (the reference is for correctness and CPU fallback, not speed).

    python benchmarks/bench_gscache.py [--cpu-iterations 20] [--gpu-iterations 500]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from worldwarp_core.gscache import GSConfig, build_cache  # noqa: E402
from worldwarp_core.synthetic import default_scene  # noqa: E402
from worldwarp_core.trajectory import make_trajectory, median_depth  # noqa: E402


def history(width, height, views):
    scene = default_scene()
    start = scene.default_camera(width, height)
    _, d0 = scene.render(start)
    cams = make_trajectory("dolly_in@0.4 * pan_left@0.5", views, start, scene_scale=median_depth(d0))
    rgb, depth = scene.render(cams)
    return rgb, depth, cams


def run(device, width, height, views, iterations, stride, backend):
    rgb, depth, cams = history(width, height, views)
    cfg = GSConfig(iterations=iterations, stride=stride, backend=backend)
    build_cache(rgb[:2].to(device), depth[:2].to(device), cams[:2].to(device), "3dgs", GSConfig(iterations=2,
                stride=stride, backend=backend))  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    cache = build_cache(rgb.to(device), depth.to(device), cams.to(device), "3dgs", cfg)
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return dt, len(cache.gaussians), peak


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu-iterations", type=int, default=20)
    p.add_argument("--gpu-iterations", type=int, default=500)
    p.add_argument("--cpu-views", type=int, default=8)
    args = p.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("| backend | device | size | views | Gaussians | iterations | seconds | it/s | peak GiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    dt, n, peak = run("cpu", 180, 120, args.cpu_views, args.cpu_iterations, 2, "torch")
    print(f"| torch | cpu | 180x120 | {args.cpu_views} | {n} | {args.cpu_iterations} | {dt:.2f} | "
          f"{args.cpu_iterations / dt:.2f} | - |")
    if torch.cuda.is_available():
        dt, n, peak = run("cuda", 720, 480, 49, args.gpu_iterations, 4, "gsplat")
        print(f"| gsplat | {torch.cuda.get_device_name()} | 720x480 | 49 | {n} | {args.gpu_iterations} | {dt:.2f} | "
              f"{args.gpu_iterations / dt:.1f} | {peak:.2f} |")
    else:
        print("(no CUDA: the gsplat row needs a GPU)")


if __name__ == "__main__":
    main()
