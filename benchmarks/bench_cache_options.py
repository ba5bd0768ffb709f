"""3DGS cache options measured by the hints they render at held-out views (docs/CACHE.md).

Two scenes, both with ground truth at views the cache never saw:

* synthetic -- the ray-cast room (``synthetic.default_scene``) along a camera path. The history is
  the path's first ``--history`` frames (the previous chunk), its last ``--context`` frames are
  the context; the held-out views are the next ``--held-out`` frames, as the chunk loop renders
  hints there. The cache gets the exact colours and a depth with smooth per-frame errors of
  ``--depth-noise`` (relative), as a depth model gives.
* middlebury -- Middlebury 2014 "Motorcycle" (Scharstein et al., GCPR 2014; scikit-image's
  4x-downsampled copy in the shared data folder), downsampled ``--mb-downsample`` times more: the
  cache is built on the left view with its ground-truth depth and renders the right view.

Every row changes one option of the baseline; ``--best`` adds a row that combines several. The
baseline is ``GSConfig()`` as it is, so once defaults change, rows name what they change from
them. Middlebury has one training view, so its "context" rows train on that view as well. Per scene: PSNR of the hints over their valid pixels (the pixels
ST-Diff keeps), the fraction of valid pixels, and PSNR over all pixels with holes as black.

    python benchmarks/bench_cache_options.py [--iterations 30] [--size 64] [--mb-downsample 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from worldwarp_core.cameras import Cameras  # noqa: E402
from worldwarp_core.eval.metrics import psnr  # noqa: E402
from worldwarp_core.gscache import GSConfig, build_cache  # noqa: E402
from worldwarp_core.synthetic import default_scene  # noqa: E402
from worldwarp_core.trajectory import make_trajectory, median_depth  # noqa: E402

# the real data folder beside the checkout (../shared/data), or WORLDWARP_SHARED_DATA
DATA = os.environ.get("WORLDWARP_SHARED_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
PATH = "dolly_in@0.6 * pan_left@0.6"

# (label, GSConfig changes, cache frames); the first row is the baseline. The sweep in docs/CACHE.md
# ran with the previous defaults as baseline: depth_loss none, sh_degree 0, init_opacity 0.8,
# position_lr_scaling extent, cache frames chunk.
ROWS: list[tuple[str, dict, str]] = [
    ("baseline", {}, "chunk"),
    ("depth_loss disparity, 0.01 (official)", {"depth_loss": "disparity", "depth_loss_weight": 0.01}, "chunk"),
    ("depth_loss disparity, 0.1", {"depth_loss": "disparity", "depth_loss_weight": 0.1}, "chunk"),
    ("depth_loss depth, 0.01", {"depth_loss": "depth", "depth_loss_weight": 0.01}, "chunk"),
    ("depth_loss depth, 0.1", {"depth_loss": "depth", "depth_loss_weight": 0.1}, "chunk"),
    ("sh_degree 1", {"sh_degree": 1}, "chunk"),
    ("sh_degree 3 (official)", {"sh_degree": 3}, "chunk"),
    ("init_opacity 0.5", {"init_opacity": 0.5}, "chunk"),
    ("init_opacity 0.9999 (official)", {"init_opacity": 0.9999}, "chunk"),
    ("position_lr_scaling absolute (official)", {"position_lr_scaling": "absolute"}, "chunk"),
    ("cache_frames context (official)", {}, "context"),
    # the official init: per frame a random subset past the 0.8 depth cut, 3-NN scales (no pixel stride there)
    ("init official, every pixel past the cut", {"init": "official", "stride": 1}, "chunk"),
    ("init official, at its density (50000 of 720x480 = 14.5 % of the pixels)",
     {"init": "official", "stride": 1, "init_max_points": "density"}, "chunk"),
    ("hints premultiplied (official)", {"hints": "premultiplied"}, "chunk"),
    ("the official cache (init at its density, premultiplied, opacity 0.9999, disparity 0.01, absolute, context)",
     {"init": "official", "stride": 1, "init_max_points": "density", "hints": "premultiplied", "init_opacity": 0.9999,
      "depth_loss": "disparity", "depth_loss_weight": 0.01, "position_lr_scaling": "absolute"}, "context"),
]
OFFICIAL_DENSITY = 50000 / (720 * 480)  # the official init's cap per frame over the official demo's frame


def smooth_noise(frames: int, height: int, width: int, amount: float, seed: int) -> torch.Tensor:
    """``[F, H, W]`` multiplicative depth error ``exp(amount * n)``, n a bilinearly upsampled 4x4 N(0, 1) grid."""
    g = torch.Generator().manual_seed(seed)
    n = torch.randn(frames, 1, 4, 4, generator=g, dtype=torch.float64)
    n = F.interpolate(n, size=(height, width), mode="bilinear", align_corners=True)[:, 0]
    return torch.exp(amount * n)


def synthetic_case(size: int, history: int, context: int, held_out: int, depth_noise: float):
    scene = default_scene()
    width, height = size, size * 3 // 4
    start = scene.default_camera(width, height)
    _, d0 = scene.render(start)
    cams = make_trajectory(PATH, history + held_out, start, scene_scale=median_depth(d0))
    rgb, depth = scene.render(cams)
    depth = depth * smooth_noise(len(cams), height, width, depth_noise, seed=1)
    hist = torch.arange(history)
    return {"images": rgb[hist].float(), "depths": depth[hist].float(), "cameras": cams[hist].to(dtype=torch.float32),
            "context": hist[-context:], "targets": cams[history:].to(dtype=torch.float32),
            "truth": rgb[history:].float()}


def middlebury_case(downsample: int):
    d = os.path.join(DATA, "middlebury-motorcycle")

    def img(name):
        a = np.asarray(Image.open(os.path.join(d, name)).convert("RGB"), dtype=np.float32) / 255
        t = torch.from_numpy(a).permute(2, 0, 1)[None]
        return F.avg_pool2d(t, downsample)[0].permute(1, 2, 0)

    left, right = img("motorcycle_left.png"), img("motorcycle_right.png")
    disp = torch.from_numpy(np.load(os.path.join(d, "motorcycle_disp.npz"))["arr_0"]).double()
    f, cx, cy, doffs, B = 994.978, 311.193, 254.877, 31.086, 0.193001  # data README calibration
    depth = torch.nan_to_num(f * B / (disp + doffs), nan=0.0, posinf=0.0)  # unknown -> 0 (skipped)
    depth = depth[downsample // 2::downsample, downsample // 2::downsample][: left.shape[0], : left.shape[1]]
    H, W = left.shape[:2]
    s = 1.0 / downsample  # pixel i of the pooled image covers original pixels [s^-1 i, s^-1 (i+1))
    K = torch.tensor([[[f * s, 0, cx * s], [0, f * s, cy * s], [0, 0, 1.0]]], dtype=torch.float64)
    K_right = K.clone()
    K_right[0, 0, 2] += doffs * s  # the right camera's principal point is shifted by doffs
    w2c_right = torch.eye(4, dtype=torch.float64)[None].clone()
    w2c_right[0, 0, 3] = -B
    cam_l = Cameras(torch.eye(4, dtype=torch.float64)[None], K, W, H).to(dtype=torch.float32)
    cam_r = Cameras(w2c_right, K_right, W, H).to(dtype=torch.float32)
    return {"images": left[None], "depths": depth[None].float(), "cameras": cam_l, "context": torch.tensor([0]),
            "targets": cam_r, "truth": right[None]}


def measure(case: dict, cfg: GSConfig, cache_frames: str) -> dict:
    sel = case["context"] if cache_frames == "context" else torch.arange(len(case["cameras"]))
    t0 = time.perf_counter()
    cache = build_cache(case["images"][sel], case["depths"][sel], case["cameras"][sel], "3dgs", cfg)
    hints = cache.render_hints(case["targets"])
    seconds = time.perf_counter() - t0
    V, H, W = hints.masks.shape
    flat = (hints.images.reshape(1, V * H, W, 3), case["truth"].reshape(1, V * H, W, 3))
    valid = hints.masks.float().mean().item()
    masked = psnr(*flat, hints.masks.reshape(1, V * H, W)).item() if valid > 0 else float("nan")
    return {"masked": masked, "valid": valid, "full": psnr(*flat).item(), "seconds": seconds,
            "gaussians": len(cache.gaussians)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=30, help="3DGS iterations per run (default 30)")
    p.add_argument("--size", type=int, default=64, help="synthetic image width (height 3/4 of it; default 64)")
    p.add_argument("--history", type=int, default=9, help="synthetic history frames (default 9)")
    p.add_argument("--context", type=int, default=5, help="synthetic context frames, the history's last (default 5)")
    p.add_argument("--held-out", type=int, default=8, help="synthetic held-out frames after the history (default 8)")
    p.add_argument("--depth-noise", type=float, default=0.05, help="synthetic relative depth error (default 0.05)")
    p.add_argument("--stride", type=int, default=2, help="synthetic: one Gaussian every n pixels (default 2)")
    p.add_argument("--mb-downsample", type=int, default=8, help="Middlebury: extra downsampling (default 8)")
    p.add_argument("--scenes", default="synthetic,middlebury", help="comma-separated scenes (default both)")
    p.add_argument("--rows", default="", help="comma-separated row numbers to run (default all; 0 = baseline; "
                   "'none': only the --best rows)")
    p.add_argument("--best", action="append", default=[], help="an extra combined row: GSConfig changes as k=v,k=v "
                   "(cache_frames too); repeat for more rows")
    args = p.parse_args()
    torch.manual_seed(0)
    base = GSConfig(iterations=args.iterations, backend="torch")
    cases = {}
    scenes = args.scenes.split(",")
    if "synthetic" in scenes:
        cases["synthetic"] = (synthetic_case(args.size, args.history, args.context, args.held_out, args.depth_noise),
                              replace(base, stride=args.stride))
    if "middlebury" in scenes:
        cases["middlebury"] = (middlebury_case(args.mb_downsample), base)
    rows = list(ROWS)
    if args.rows:
        rows = [] if args.rows == "none" else [rows[int(i)] for i in args.rows.split(",")]
    for best in args.best:
        changes, frames = {}, "chunk"
        for kv in best.split(","):
            k, v = kv.split("=")
            if k == "cache_frames":
                frames = v
            else:
                changes[k] = type(getattr(base, k))(v)
        rows.append(("combined: " + best, changes, frames))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, torch rasteriser, {args.iterations} "
          f"iterations; synthetic {args.size}x{args.size * 3 // 4}, stride {args.stride}, history {args.history} "
          f"(context {args.context}), {args.held_out} held-out, depth noise {args.depth_noise}; Middlebury "
          f"1/{4 * args.mb_downsample} of full size")
    head = "| option |" + "".join(f" {s} PSNR valid | {s} valid % | {s} PSNR all |" for s in cases)
    print(head)
    print("|" + " --- |" * (1 + 3 * len(cases)))
    for label, changes, frames in rows:
        cells = []
        for name, (case, cfg) in cases.items():
            row = dict(changes)
            if row.get("init_max_points") == "density":  # the same share of the pixels as 50000 of 720x480
                _, h, w, _ = case["images"].shape
                row["init_max_points"] = max(1, round(OFFICIAL_DENSITY * h * w))
            r = measure(case, replace(cfg, **row), frames)
            cells.append(f" {r['masked']:.2f} | {100 * r['valid']:.1f} | {r['full']:.2f} |")
            print(f"  [{name}] {label}: {r['seconds']:.1f} s, {r['gaussians']} Gaussians", file=sys.stderr)
        print(f"| {label} |" + "".join(cells), flush=True)


if __name__ == "__main__":
    main()
