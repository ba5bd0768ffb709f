"""``python -m worldwarp_core``: generate, demo, presets, check-models.

    python -m worldwarp_core demo --out output/demo
    python -m worldwarp_core generate --image photo.png --trajectory "dolly_in + pan_left" --frames 93 \\
        --models ComfyUI/models --out output/run1 [--style "Van Gogh style"] [--resume]
    python -m worldwarp_core presets
    python -m worldwarp_core check-models ComfyUI/models
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch


class Progress:
    """A one-line progress printer per chunk and per step (no tqdm needed)."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self.chunks = 0

    def __call__(self, e: dict) -> None:
        stage = e["stage"]
        if stage == "chunk":
            self.stream.write(f"\nchunk {e['chunk'] + 1}/{self.chunks or '?'} (from frame {e['first_frame']})\n")
        elif stage in ("3dgs", "st-diff"):
            n, i = e["total"], e["step"]
            bar = "#" * int(20 * i / max(n, 1))
            self.stream.write(f"\r  {stage:8s} [{bar:20s}] {i}/{n}")
            if i == n:
                self.stream.write("\n")
        elif stage == "chunk_done":
            self.stream.write(f"  done: {e['frames']} frames ({time.perf_counter() - self.t0:.1f} s)\n")
        elif stage == "resume":
            self.stream.write(f"resuming after chunk {e['chunk']} ({e['frames']} frames on disk)\n")
        self.stream.flush()


def _load_image(path: str, resize: str | None) -> torch.Tensor:
    import numpy as np
    from PIL import Image

    if not os.path.isfile(path):
        raise ValueError(f"image not found: {path}")
    img = Image.open(path).convert("RGB")
    if resize:
        try:
            w, h = (int(v) for v in resize.lower().split("x"))
        except ValueError:
            raise ValueError(f"--resize takes WIDTHxHEIGHT (e.g. 720x480), got {resize!r}") from None
        img = img.resize((w, h), Image.BICUBIC)
    W, H = img.size
    if W % 16 or H % 16:
        raise ValueError(f"{path} is {W}x{H}: width and height must be multiples of 16; pass --resize "
                         f"{W - W % 16}x{H - H % 16} (or another size) to resize it")
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)


def _load_model(models: str, args):
    from . import models as M

    dtype = args.dtype
    device = args.device
    if os.path.isdir(os.path.join(models, "transformer")):
        model = M.load_diffusers_folder(models, dtype, device, args.offload)
        if args.worldwarp_ckpt:
            M.load_worldwarp_checkpoint(args.worldwarp_ckpt, model.transformer)
        return model
    found = M.find_components(models)
    missing = [c for c in ("transformer", "vae", "text_encoder", "tokenizer") if found[c] is None]
    if missing:
        report = "\n".join(f"  {r['component']}: {r['hint']}" for r in M.check_models(models) if r["component"] in missing)
        raise ValueError(f"model files missing under {models}:\n{report}")
    ckpt = args.worldwarp_ckpt or found["worldwarp"]
    return M.load_components(found["transformer"], found["vae"], found["text_encoder"], found["tokenizer"],
                             ckpt, dtype, device, args.offload)


# folder names under models/worldwarp/ when --geometry-path / --captioner-path are not given (README table)
DEFAULT_FOLDERS = {"depth-pro": "depth-pro-hf", "depth-anything-v2": "depth-anything-v2-small-hf", "ttt3r": "TTT3R",
                   "florence-2": "Florence-2-large", "qwen2.5-vl": "Qwen2.5-VL-3B-Instruct"}


def cmd_generate(args) -> int:
    from .cameras import Cameras, intrinsics_from_fov
    from .caption import load_captioner
    from .geometry import load_estimator
    from .gscache import GSConfig
    from .pipeline import PipelineSettings, WorldWarpPipeline
    from .trajectory import PRESETS, make_trajectory, median_depth

    image = _load_image(args.image, args.resize)
    H, W = image.shape[:2]
    geo_path = args.geometry_path or os.path.join(args.models, "worldwarp", DEFAULT_FOLDERS.get(args.geometry,
                                                                                                args.geometry))
    geometry = load_estimator(args.geometry, geo_path, device=args.device)
    given_K = None if args.fov is None else intrinsics_from_fov(args.fov, W, H)
    first = geometry.estimate(image[None], None if given_K is None else Cameras(torch.eye(4)[None], given_K, W, H))
    # a given FoV wins over a backend that estimates its own intrinsics (TTT3R)
    start = Cameras(torch.eye(4)[None], (first.cameras.Ks[:1] if given_K is None else given_K).float(), W, H)
    spec = args.trajectory
    if os.path.isfile(spec):
        path = Cameras.load(spec, W, H)
        if (path.width, path.height) != (W, H):
            path = path.resize(W, H)
    else:
        names = [p.split("@")[0].split(":")[0].strip() for p in spec.replace("*", "+").split("+")]
        if not all(n in PRESETS for n in names):
            raise ValueError(f"--trajectory {spec!r} is neither a camera file nor presets; "
                             f"run `python -m worldwarp_core presets`")
        path = make_trajectory(spec, args.path_frames or args.frames, start, median_depth(first.depth[0]),
                               strength=args.strength_scale)
    settings = PipelineSettings(
        chunk_frames=args.chunk, context_frames=args.context, strength=args.tau, steps=args.steps,
        guidance_scale=args.cfg, variant=args.schedule, training_free=args.training_free, cache_mode=args.cache,
        gs=GSConfig(iterations=args.gs_iterations), extend_mode=args.extend, seed=args.seed,
        extrapolation=args.extrapolation, extrapolation_window=args.extrapolation_window,
        world_voxel=args.world_voxel, pose_source=args.pose_source)
    model = _load_model(args.models, args)
    captioner = None
    if args.captioner != "fixed":
        captioner = load_captioner(args.captioner, args.captioner_path or os.path.join(
            args.models, "worldwarp", DEFAULT_FOLDERS.get(args.captioner, args.captioner)), device=args.device)
    pipe = WorldWarpPipeline(model, geometry, captioner, settings)
    progress = Progress()
    progress.chunks = len(settings.chunk_starts(args.frames))
    try:
        result = pipe(image, path, args.frames, prompt=args.prompt, style=args.style, out_dir=args.out,
                      resume=args.resume, overwrite=args.overwrite, start_depth=first.depth[0], callback=progress)
    finally:
        model.release()
    print(f"\nwrote {result.frames.shape[0]} frames to {result.out_dir}")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    progress = Progress()
    progress.chunks = 3
    print("WorldWarp demo: a PIPELINE CHECK with tiny random-weight models on a synthetic room.\n"
          "The frames the diffusion model fills are noise; everything else is the real loop.")
    result = run_demo(args.out, frames=args.frames, resume=args.resume, overwrite=args.overwrite, callback=progress)
    print(f"\nwrote {result.frames.shape[0]} frames and every output to {result.out_dir}")
    return 0


def cmd_presets(args) -> int:
    from .trajectory import PRESETS, list_presets

    for name in list_presets():
        print(f"{name:14s} {PRESETS[name].description}  [{PRESETS[name].unit}]")
    print('\ncompose: "dolly_in + pan_left" (one after the other), "dolly_in * orbit_left" (together), '
          '"dolly_in@0.5:2" (strength 0.5, weight 2)')
    return 0


def cmd_check_models(args) -> int:
    from .models import check_models

    ok = True
    for r in check_models(args.models):
        if r["found"]:
            print(f"found    {r['component']:13s} {r['found']}")
        else:
            ok = ok and r["component"] != "worldwarp"
            print(f"MISSING  {r['component']:13s} in {r['folder']} (one of {', '.join(r['expected'])}): {r['hint']}")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m worldwarp_core", description="WorldWarp: 3D-consistent long video")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="generate a video from an image and a camera path")
    g.add_argument("--image", required=True)
    g.add_argument("--trajectory", required=True, help="preset spec (see `presets`) or a RealEstate10K/JSON camera file")
    g.add_argument("--frames", type=int, required=True, help="total frames: chunk + k*(chunk - context), e.g. 49, 93")
    g.add_argument("--models", required=True, help="ComfyUI models/ folder or a Wan2.1 diffusers folder")
    g.add_argument("--out", required=True, help="output folder (refused if it holds another run)")
    g.add_argument("--prompt", default="")
    g.add_argument("--style", default="", help='style text appended to the prompt, e.g. "Van Gogh style"')
    g.add_argument("--resume", action="store_true")
    g.add_argument("--overwrite", action="store_true")
    g.add_argument("--resize", help="resize the image to WIDTHxHEIGHT (multiples of 16)")
    g.add_argument("--fov", type=float, help="horizontal field of view in degrees (else the geometry model's)")
    g.add_argument("--path-frames", type=int, help="frames of the preset path (extrapolated past its end)")
    g.add_argument("--strength-scale", type=float, default=1.0, help="multiplies the preset strengths")
    g.add_argument("--chunk", type=int, default=49)
    g.add_argument("--context", type=int, default=5)
    g.add_argument("--tau", type=float, default=0.8, help="strength τ of the warped tokens")
    g.add_argument("--steps", type=int, default=50)
    g.add_argument("--cfg", type=float, default=5.0)
    g.add_argument("--schedule", default="spatio-temporal", choices=["spatio-temporal", "spatial", "temporal", "full"])
    g.add_argument("--cache", default="3dgs", choices=["3dgs", "pointcloud", "none"])
    g.add_argument("--gs-iterations", type=int, default=500)
    g.add_argument("--extend", default="extrapolate", choices=["extrapolate", "loop", "pingpong"])
    g.add_argument("--extrapolation", default="auto", choices=["auto", "paper", "official"],
                   help="how --extend extrapolate continues the path: auto (backtested), paper (world velocity "
                        "+ SLERP) or official (body-frame momentum); docs/EXTRAPOLATION.md")
    g.add_argument("--extrapolation-window", type=int, help="smoothing window in frames (default: the method's)")
    g.add_argument("--pose-source", default="requested", choices=["requested", "estimated"])
    g.add_argument("--world-voxel", type=float, help="keep a persistent world merged at this voxel size")
    g.add_argument("--training-free", action="store_true", help="base Wan2.1 weights without the WorldWarp fine-tune")
    g.add_argument("--geometry", default="depth-pro")
    g.add_argument("--geometry-path")
    g.add_argument("--captioner", default="fixed")
    g.add_argument("--captioner-path")
    g.add_argument("--worldwarp-ckpt", help="the official worldwarp_latest.ckpt (default: found in diffusion_models/)")
    g.add_argument("--dtype", default="bf16", choices=["fp32", "bf16", "fp16", "fp8"])
    g.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    g.add_argument("--offload", default="none", choices=["none", "model"])
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=cmd_generate)
    d = sub.add_parser("demo", help="pipeline check with tiny random models (no weights needed)")
    d.add_argument("--out", required=True)
    d.add_argument("--frames", type=int, default=41)
    d.add_argument("--resume", action="store_true")
    d.add_argument("--overwrite", action="store_true")
    d.set_defaults(func=cmd_demo)
    pr = sub.add_parser("presets", help="list the camera presets")
    pr.set_defaults(func=cmd_presets)
    c = sub.add_parser("check-models", help="which model files are found / missing")
    c.add_argument("models")
    c.set_defaults(func=cmd_check_models)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished chunks are saved; run again with --resume to continue", file=sys.stderr)
        return 130
