"""Forward warping of one 480x720 frame into 49 views (issue 2 quality bar).

Targets: under 2 s on 2 CPU cores, under 20 ms on a GPU. Prints the median of a few runs after
a warm-up, per device and splat radius.

    python benchmarks/bench_warp.py [--repeats 5] [--radius 0 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from worldwarp_core.cameras import Cameras, look_at  # noqa: E402
from worldwarp_core.synthetic import default_scene  # noqa: E402
from worldwarp_core.warp import forward_warp, unproject  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--radius", type=int, nargs="+", default=[0, 1])
    p.add_argument("--views", type=int, default=49)
    args = p.parse_args()
    scene = default_scene()
    cam = scene.default_camera(720, 480)
    rgb, depth = scene.render(cam)
    eyes = torch.stack([torch.linspace(0, 0.6, args.views), torch.zeros(args.views), torch.linspace(0, 1.0, args.views)], 1)
    targets = Cameras(look_at(eyes, torch.tensor([[0.0, 0.0, 4.0]]).expand(args.views, 3)),
                      cam.Ks.expand(args.views, 3, 3), 720, 480)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("| device | radius | views | points | median s | min s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for dev in devices:
        cloud = unproject(rgb.to(dev), depth.to(dev), cam.to(dev))
        tg = targets.to(dev)
        for r in args.radius:
            times = []
            for i in range(args.repeats + 1):
                if dev == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                forward_warp(cloud, tg, radius=r)
                if dev == "cuda":
                    torch.cuda.synchronize()
                if i:  # the first run is a warm-up
                    times.append(time.perf_counter() - t0)
            print(f"| {dev} | {r} | {args.views} | {len(cloud)} | {statistics.median(times):.3f} | {min(times):.3f} |")


if __name__ == "__main__":
    main()
