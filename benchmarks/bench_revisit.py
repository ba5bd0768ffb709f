"""Loop closure without real weights: does a camera that comes back see what it saw?

Three paths in the synthetic room (``worldwarp_core.synthetic``) that end where they began:

* ``orbit``          a full 360° circle of radius 1 around a point 1 unit ahead, facing it
* ``out_and_back``   a dolly 2.5 units forward and back, facing forward
* ``square``         a 1.5 × 2 unit square walk, turning 90° in place at each corner

Each path is run through the real chunk loop (``WorldWarpPipeline``: geometry, alignment, the 3DGS
cache, hints, the persistent world) twice, with ``memory="online"`` (the paper) and
``memory="world"``. In place of the diffusion model an **inventing filler** makes each chunk's
frames: every valid hint pixel is kept as it is, and every hole gets a texture seeded by the chunk
and the frame (smooth random colours that know nothing of the scene). So a place that is a hole
again is invented anew, and only what the memory carries can match what was there before. The
geometry model is the scene's own depth at the requested cameras (an ideal depth model), so what
differs between the two runs is the memory alone.

Per path and memory mode:

* ``coverage``      hint coverage of the revisited views (the last chunk's new frames, where the
                    path returns to its start): the share of their pixels with a valid hint
* ``revisit_psnr``  PSNR (dB) of the last frame against frame 0, taken at the same camera
* ``drift``         the world scene against the room at the start camera after the run (with
                    ``--depth-noise``, a depth model whose scale wanders per frame): ``scale``
                    = median(world depth / true depth) - 1 where the world is opaque, ``pose`` = 0
                    (the poses are the requested ones: an ideal pose source), ``coverage`` = the
                    share of the start view the world covers. The start view's world is
                    mostly what the last chunks left there (the newest Gaussian wins its voxel)
* ``chunk_scale``   per chunk, the scale error of the online cache its hints came from:
                    median(cache depth / true depth) - 1 at the chunk's new cameras;
                    ``last_scale`` the last chunk's (the revisit), ``mean_abs_scale`` the mean of
                    its size over the chunks: the drift a correction should bring back
* ``world_scale``   per chunk, the depth correction the revisit alignment applied (world memory's
                    drift control, ``world_align``; None where it saw no revisit)
* ``chunk_s``       seconds per chunk (every stage), and ``chunk_s_ratio`` = the last chunk's over
                    chunk 3's: flat when the memory's cost does not grow with the video
* ``world_gaussians`` / ``remembered_gaussians``  per chunk: the world's size before the chunk
                    joins it, and how much of it the chunk's frusta select and render (world mode)
* ``world_views``   per chunk, the past frames (video indices) the online cache also trained on
                    (``--world-views N``: a third mode, world memory with N retrieved views)

``--tiny-model`` also runs the orbit with the tiny random Wan model in place of the filler (the
whole loop, sampler included) and reports its coverage and chunk time.

    python benchmarks/bench_revisit.py [--size 64x48] [--chunks 21] [--paths orbit,out_and_back,square]
                                       [--iterations 60] [--depth-noise 0.05] [--drift-control off|on|both]
                                       [--world-views 2] [--only-world] [--tiny-model] [--json] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from worldwarp_core.cameras import Cameras, intrinsics_from_fov, look_at  # noqa: E402
from worldwarp_core.geometry.base import GeometryResult  # noqa: E402
from worldwarp_core.gscache import GeometryCache, GSConfig  # noqa: E402
from worldwarp_core.gscache.cache import render_hints_in_steps  # noqa: E402
from worldwarp_core.gscache.ply import load_ply  # noqa: E402
from worldwarp_core.models import tiny_model  # noqa: E402
from worldwarp_core.pipeline import PipelineSettings, WorldWarpPipeline  # noqa: E402
from worldwarp_core.synthetic import default_scene  # noqa: E402

CHUNK, CONTEXT = 9, 1  # 8 new frames per chunk
PATHS = ("orbit", "out_and_back", "square")


# ----------------------------------------------------------------------------- paths
def _cameras(eyes: torch.Tensor, targets: torch.Tensor, W: int, H: int) -> Cameras:
    w2c = look_at(eyes.double(), targets.double()).float()
    return Cameras(w2c, intrinsics_from_fov(60.0, W, H).expand(len(w2c), 3, 3).clone(), W, H)


def _yaw_dir(yaw: torch.Tensor) -> torch.Tensor:
    """Viewing direction for a heading ``yaw`` (radians, 0 = +z, positive turns towards +x)."""
    return torch.stack([torch.sin(yaw), torch.zeros_like(yaw), torch.cos(yaw)], -1)


def _walk(keys: list[tuple[tuple[float, float], float]], n: int, W: int, H: int) -> Cameras:
    """Frames moving linearly through keyframes ``((x, z), yaw in degrees)``, each leg's share of the
    frames following how long it is (1 unit of walking = 90 degrees of turning)."""
    pos = torch.tensor([k[0] for k in keys], dtype=torch.float64)
    yaw = torch.tensor([math.radians(k[1]) for k in keys], dtype=torch.float64)
    legs = (pos[1:] - pos[:-1]).norm(dim=1) + (yaw[1:] - yaw[:-1]).abs() / (math.pi / 2)
    t = torch.linspace(0, float(legs.sum()), n, dtype=torch.float64)
    ends = torch.cumsum(legs, 0)
    leg = torch.searchsorted(ends, t, right=False).clamp(max=len(legs) - 1)
    start = ends[leg] - legs[leg]
    a = ((t - start) / legs[leg]).clamp(0, 1)[:, None]
    p = pos[leg] * (1 - a) + pos[leg + 1] * a
    y = yaw[leg] * (1 - a[:, 0]) + yaw[leg + 1] * a[:, 0]
    eyes = torch.stack([p[:, 0], torch.zeros(n, dtype=torch.float64), p[:, 1]], -1)
    return _cameras(eyes, eyes + _yaw_dir(y), W, H)


def make_path(name: str, n: int, W: int, H: int) -> Cameras:
    """``n`` cameras of the path ``name``; the last one is the first (the revisit)."""
    if name == "orbit":
        theta = torch.linspace(0, 2 * math.pi, n, dtype=torch.float64)
        centre = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
        eyes = centre + torch.stack([torch.sin(theta), torch.zeros(n, dtype=torch.float64), -torch.cos(theta)], -1)
        return _cameras(eyes, centre.expand(n, 3), W, H)
    if name == "out_and_back":
        return _walk([((0.0, 0.0), 0.0), ((0.0, 2.5), 0.0), ((0.0, 0.0), 0.0)], n, W, H)
    if name == "square":
        return _walk([((0.0, 0.0), 0.0), ((0.0, 2.0), 0.0), ((0.0, 2.0), 90.0), ((1.5, 2.0), 90.0),
                      ((1.5, 2.0), 180.0), ((1.5, 0.0), 180.0), ((1.5, 0.0), 270.0), ((0.0, 0.0), 270.0),
                      ((0.0, 0.0), 360.0)], n, W, H)
    raise ValueError(f"path {name!r} is not one of {', '.join(PATHS)}")


# ----------------------------------------------------------------------------- stand-ins
class SceneDepth:
    """The room's exact depth at the cameras it is given (poses not estimated): an ideal depth model,
    or with ``noise`` > 0 one whose every frame is off by a random scale ``exp(noise · N(0, 1))``
    (seeded by the call and the frame), as a monocular model's scale wanders from frame to frame."""

    name = "scene depth"
    per_frame = False  # the noise follows the call, so the frames are not split into batches

    def __init__(self, scene, noise: float = 0.0) -> None:
        self.scene, self.noise, self.calls = scene, noise, 0

    def estimate(self, frames: torch.Tensor, cameras: Cameras | None = None) -> GeometryResult:
        _, depth = self.scene.render(cameras)
        if self.noise > 0:
            g = torch.Generator().manual_seed(7919 * self.calls)
            depth = depth * torch.exp(self.noise * torch.randn(len(depth), 1, 1, generator=g, dtype=depth.dtype))
        self.calls += 1
        return GeometryResult(depth.float(), torch.ones_like(depth).float(), cameras, "metric")

    def unload(self) -> None:
        pass


def invented(chunk: int, frames: int, H: int, W: int) -> torch.Tensor:
    """What the filler puts in holes: smooth random colours seeded by the chunk and the frame,
    ``[frames, H, W, 3]`` in 0..1 -- content that knows nothing of the scene."""
    out = []
    for f in range(frames):
        g = torch.Generator().manual_seed(1_000_003 * (chunk + 1) + f)
        coarse = torch.rand(1, 3, max(2, H // 8), max(2, W // 8), generator=g)
        out.append(torch.nn.functional.interpolate(coarse, size=(H, W), mode="bilinear", align_corners=False)[0])
    return torch.stack(out).permute(0, 2, 3, 1)


class InventingFiller(WorldWarpPipeline):
    """The chunk loop with the video model replaced: valid hints kept, holes invented."""

    def _generate(self, plan, text, chunk_video, pixel_mask, embeds, emit, check, timings):
        t = time.perf_counter()
        C, H, W = chunk_video.shape[:3]
        frames = torch.where(pixel_mask[..., None] > 0.5, chunk_video.float(), invented(plan.index, C, H, W))
        timings["filler"] = time.perf_counter() - t
        return frames, None, None


# ----------------------------------------------------------------------------- one run
def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float() - b.float()) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def world_drift(folder: str, scene, start: Cameras) -> dict:
    """The world scene at the start camera against the room: depth scale error and coverage."""
    world = load_ply(os.path.join(folder, "world.ply"))
    hints = render_hints_in_steps(GeometryCache("3dgs", GSConfig(), gaussians=world), start, depth_tolerance=None)
    _, true = scene.render(start)
    valid = hints.masks & (hints.depths > 0)
    ratio = float((hints.depths[valid] / true[valid]).median()) if valid.any() else float("nan")
    return {"scale": ratio - 1.0, "pose": 0.0, "coverage": float(valid.float().mean())}


def chunk_scales(folder: str, scene, path: Cameras, chunks: int) -> list[float]:
    """Per chunk, the scale error of the geometry its hints were made from: median(depth of the
    chunk's online cache at the chunk's new cameras / the room's true depth there) - 1, over the
    valid hint pixels (``hint_depth.npy``). Chunk 0 is built on the start image's exact depth; a
    depth model whose scale wanders makes the later ones drift, and drift control should bring
    them back."""
    import numpy as np

    out = []
    for k in range(chunks):
        rec = json.load(open(os.path.join(folder, "chunks", f"chunk_{k:03d}", "chunk.json")))
        d = torch.from_numpy(np.load(os.path.join(folder, "chunks", f"chunk_{k:03d}", "hint_depth.npy")))
        first, ctx = rec["first_frame"], rec["context_frames"]
        _, true = scene.render(path[first + ctx:first + CHUNK])
        depth, valid = d[0, ctx:], (d[1, ctx:] > 0.5) & (d[0, ctx:] > 0) & (true > 0)
        out.append(float((depth[valid] / true[valid]).median()) - 1.0 if valid.any() else float("nan"))
    return out


def run(path_name: str, memory: str, args, scene, model=None, world_align: bool = True, world_views: int = 0) -> dict:
    W, H = args.width, args.height
    frames = 1 + args.chunks * (CHUNK - CONTEXT)
    path = make_path(path_name, frames, W, H)
    rgb, depth = scene.render(path[:1])
    settings = PipelineSettings(chunk_frames=CHUNK, context_frames=CONTEXT, steps=2, guidance_scale=1.0,
                                world_voxel=args.voxel, memory=memory, world_align=world_align, world_views=world_views,
                                world_keep=args.world_keep, depth_fit=args.depth_fit, offload_helpers=False,
                                gs=GSConfig(iterations=args.iterations))
    pipe = (WorldWarpPipeline if model is not None else InventingFiller)(model or tiny_model(seed=0),
                                                                          SceneDepth(scene, args.depth_noise), None,
                                                                          settings)
    with tempfile.TemporaryDirectory() as out:
        result = pipe(rgb[0], path, frames, prompt="a room", start_depth=depth[0], out_dir=out)
        records = [json.load(open(os.path.join(out, "chunks", f"chunk_{k:03d}", "chunk.json")))
                   for k in range(args.chunks)]
        drift = world_drift(out, scene, path[:1])
        scales = chunk_scales(out, scene, path, args.chunks)
    video = result.frames.float() / 255.0 if result.frames.dtype == torch.uint8 else result.frames.float()
    chunk_s = [round(sum(r["timings_s"].values()), 3) for r in records]
    third = chunk_s[min(3, len(chunk_s) - 1)]
    return {"coverage": records[-1]["valid_hint_fraction"],
            "revisit_psnr": psnr(video[-1], video[0]),
            "drift": drift,
            # the geometry's scale error per chunk, the last chunk's (the revisit) and the mean of its size
            "chunk_scale": scales, "last_scale": scales[-1],
            "mean_abs_scale": sum(abs(v) for v in scales if v == v) / max(1, sum(v == v for v in scales)),
            "chunk_s": chunk_s,
            "chunk_s_ratio": chunk_s[-1] / third if third > 0 else float("nan"),
            "world_gaussians": [r.get("world_gaussians") for r in records],
            "remembered_gaussians": [r.get("remembered_gaussians") for r in records],
            "remembered_fraction": records[-1].get("remembered_fraction", 0.0),
            "world_scale": [r.get("world_scale") for r in records],
            "world_views": [r.get("world_views") for r in records]}


# ----------------------------------------------------------------------------- report
def markdown(report: dict) -> str:
    s = report["settings"]
    lines = [f"Synthetic room, {s['size']}, {s['chunks']} chunks of {CHUNK} frames ({CONTEXT} context), "
             f"3DGS {s['iterations']} iterations, world voxel {s['voxel']}, inventing filler in place of the video "
             f"model, the room's depth as the geometry model ("
             + (f"each frame's scale off by exp({s['depth_noise']:g}·N(0, 1))" if s.get("depth_noise") else "exact")
             + ")"
             + (f", depth fit per {s['depth_fit']}" if s.get("depth_fit", "chunk") != "chunk" else "")
             + (f", world voxels keep the {s['world_keep']}" if s.get("world_keep", "newest") != "newest" else "")
             + f"; {s['machine']}.", "",
             "| path | memory | revisited-view coverage | revisit PSNR (dB) | world scale drift | "
             "last chunk's scale | mean \\|scale\\| | "
             "chunk s (chunk 3 → last) | world Gaussians (last chunk) | rendered from the world (last chunk) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, modes in report["paths"].items():
        for memory, r in modes.items():
            third = r["chunk_s"][min(3, len(r["chunk_s"]) - 1)]
            lines.append(f"| {name} | {memory} | {100 * r['coverage']:.1f} % | {r['revisit_psnr']:.2f} | "
                         f"{100 * r['drift']['scale']:+.2f} % | {100 * r['last_scale']:+.2f} % | "
                         f"{100 * r['mean_abs_scale']:.2f} % | {third:.2f} → {r['chunk_s'][-1]:.2f} "
                         f"(×{r['chunk_s_ratio']:.2f}) | {r['world_gaussians'][-1]} | "
                         f"{r['remembered_gaussians'][-1] if memory != 'online' else '–'} |")
    if "tiny_model" in report:
        t = report["tiny_model"]
        lines += ["", f"With the tiny random Wan model in place of the filler (orbit, world memory): revisited-view "
                      f"coverage {100 * t['coverage']:.1f} %, {t['chunk_s'][-1]:.2f} s for the last chunk."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="64x48", help="WxH of the frames (default 64x48)")
    ap.add_argument("--chunks", type=int, default=21, help="chunks per path (8 new frames each; default 21)")
    ap.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, of {', '.join(PATHS)}")
    ap.add_argument("--iterations", type=int, default=60, help="3DGS iterations per chunk (default 60)")
    ap.add_argument("--voxel", type=float, default=0.05, help="world voxel size in room units (default 0.05)")
    ap.add_argument("--depth-noise", type=float, default=0.0,
                    help="per-frame scale error of the depth model, as a log-normal sigma (default 0: exact depth)")
    ap.add_argument("--drift-control", choices=["on", "off", "both"], default="off",
                    help="world memory's revisit alignment (world_align, off by default); both: also run world with it")
    ap.add_argument("--world-views", type=int, default=0,
                    help="also run world memory with this many past frames retrieved as extra cache views (0: not)")
    ap.add_argument("--depth-fit", choices=["chunk", "frame"], default="chunk",
                    help="the history's depth fitted to the previous cache per chunk (default) or per frame")
    ap.add_argument("--world-keep", choices=["newest", "oldest"], default="newest",
                    help="which Gaussian a world voxel keeps when seen again (default newest)")
    ap.add_argument("--only-world", action="store_true", help="skip the online runs")
    ap.add_argument("--tiny-model", action="store_true", help="also run the orbit with the tiny random Wan model")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--markdown", help="write the table to this file")
    args = ap.parse_args(argv)
    try:
        args.width, args.height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--size must be WxH such as 64x48, got {args.size!r}") from None
    if args.chunks < 4:
        raise SystemExit(f"--chunks must be >= 4 (the time of chunk 3 is the reference), got {args.chunks}")
    names = [p for p in args.paths.split(",") if p]
    for name in names:
        if name not in PATHS:
            raise SystemExit(f"--paths: {name!r} is not one of {', '.join(PATHS)}")
    torch.manual_seed(0)
    scene = default_scene()
    report = {"settings": {"size": args.size, "chunks": args.chunks, "iterations": args.iterations,
                           "depth_noise": args.depth_noise, "world_keep": args.world_keep,
                           "depth_fit": args.depth_fit,
                           "voxel": args.voxel, "machine": f"CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads"},
              "paths": {}}
    for name in names:
        report["paths"][name] = {}
        modes = [("online", "online", False, 0), ("world", "world", args.drift_control == "on", 0)]
        if args.drift_control == "both":
            modes.append(("world + drift control", "world", True, 0))
        if args.world_views:
            modes.append((f"world + {args.world_views} retrieved views", "world", args.drift_control == "on",
                          args.world_views))
        if args.only_world:
            modes = modes[1:]
        for key, memory, align, views in modes:
            report["paths"][name][key] = r = run(name, memory, args, scene, world_align=align, world_views=views)
            print(f"{name:13s} {key:24s} coverage {100 * r['coverage']:5.1f} %  revisit PSNR "
                  f"{r['revisit_psnr']:6.2f} dB  scale drift {100 * r['drift']['scale']:+.2f} %  last chunk's scale "
                  f"{100 * r['last_scale']:+.2f} %  mean |scale| {100 * r['mean_abs_scale']:.2f} %  "
                  f"chunk s {r['chunk_s'][3]:.2f} -> {r['chunk_s'][-1]:.2f}", flush=True,
                  file=sys.stderr if args.json else sys.stdout)
    if args.tiny_model:
        report["tiny_model"] = run("orbit", "world", args, scene, model=tiny_model(seed=0))
    if args.json:
        print(json.dumps(report, indent=1))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
