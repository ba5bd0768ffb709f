"""``python -m worldwarp_core``: generate, demo, presets, camera-path, check-models.

    python -m worldwarp_core demo --out output/demo
    python -m worldwarp_core generate --image photo.png --trajectory "dolly_in + pan_left" --frames 93 \\
        --models ComfyUI/models --out output/run1 [--style "Van Gogh style"] [--resume]
    python -m worldwarp_core presets
    python -m worldwarp_core camera-path reference.mp4 --out cams.txt --geometry ttt3r --models ComfyUI/models
    python -m worldwarp_core check-models ComfyUI/models [--geometry ttt3r --captioner florence-2 ...]
    python -m worldwarp_core convert-checkpoint worldwarp_latest.ckpt models/diffusion_models/worldwarp_comfy.safetensors

``generate`` checks every argument and every model file it will need first (milliseconds), and
only then loads models: a typo surfaces at once, not after minutes of loading.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from .model_files import DEFAULT_FOLDERS  # noqa: F401 - re-exported (older imports)

RESUME_FLAGS = ("--resume", "--overwrite")


class Progress:
    """One line per chunk (``chunk k/n``, with an ETA) and per stage, bars for the 3DGS and ST-Diff steps."""

    def __init__(self, chunks: int = 0, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.chunks = chunks
        self.t0 = time.perf_counter()
        self.done_here = 0  # chunks finished by this process (the ETA's basis; resumed ones cost nothing)
        self.t_first = None
        self.open_bar = False

    def eta(self, finished: int) -> str:
        if not self.done_here or not self.chunks or self.t_first is None:
            return ""
        per = (time.perf_counter() - self.t_first) / self.done_here
        left = max(self.chunks - finished, 0) * per
        return f", ETA {_duration(left)}" if left > 0 else ""

    def _end_bar(self) -> None:
        if self.open_bar:
            self.stream.write("\n")
            self.open_bar = False

    def __call__(self, e: dict) -> None:
        stage = e["stage"]
        if stage == "check":  # a chance to interrupt inside a long forward; nothing to print
            return
        if stage == "chunk":
            self._end_bar()
            if self.t_first is None:
                self.t_first = time.perf_counter()
            self.stream.write(f"\nchunk {e['chunk'] + 1}/{self.chunks or '?'} (from frame {e['first_frame']})"
                              f"{self.eta(e['chunk'])}\n")
        elif stage in ("3dgs", "warp", "st-diff"):
            n, i = e["total"], e["step"]
            bar = "#" * int(20 * i / max(n, 1))
            self.stream.write(f"\r  {stage:8s} [{bar:20s}] {i}/{n}")
            self.open_bar = i < n
            if i == n:
                self.stream.write("\n")
        elif stage == "stage":
            self._end_bar()
            self.stream.write(f"  {e['name']}\n")
        elif stage == "chunk_done":
            self._end_bar()
            self.done_here += 1
            k = e["chunk"] + 1
            self.stream.write(f"  done: chunk {k}/{self.chunks or '?'}, {e['frames']} frames "
                              f"({_duration(time.perf_counter() - self.t0)} so far{self.eta(k)})\n")
        elif stage == "resume":
            self.stream.write(f"resuming after chunk {e['chunk']}/{self.chunks or '?'} "
                              f"({e['frames']} frames on disk)\n")
        elif stage == "rollback":
            self.stream.write(f"rolled back to chunk {e['chunk']}/{self.chunks or '?'} ({e['frames']} frames kept); "
                              "the later chunks are made again\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


# ----------------------------------------------------------------------------- argument checks
def _camera_file(spec: str) -> bool:
    return os.path.isfile(spec) or spec.lower().endswith((".txt", ".json", ".npz"))


def check_trajectory_spec(spec: str, strength: float = 1.0, frames: int = 2) -> None:
    """A preset composition parses (on a unit camera, two frames: no model, no scene needed; an
    official path at its own frame count, which must hold each of its segments)."""
    from .cameras import Cameras, intrinsics_from_fov
    from .official_paths import is_official_spec
    from .trajectory import make_trajectory

    unit = Cameras(torch.eye(4)[None], intrinsics_from_fov(60.0, 32, 32), 32, 32)
    try:
        make_trajectory(spec, frames if is_official_spec(spec) else 2, unit, 1.0, strength=strength)
    except ValueError as e:
        raise ValueError(f"--trajectory {spec!r}: {e} (presets: `python -m worldwarp_core presets`; or give a "
                         "camera file)") from None


def check_camera_video(path: str, speed: float, geometry: str, width: int, height: int, option: str = "--camera-video"):
    """``--camera-video``: a pose cache is read now (its path, ``video_path.pose_cache_path``); a video
    is checked (it exists, the geometry backend estimates poses) and estimated once the geometry
    model is loaded (``None`` is returned for it)."""
    from .video_path import POSE_ESTIMATING, check_speed, is_pose_cache, pose_cache_path

    check_speed(speed, "--camera-speed")
    if not os.path.isfile(path):
        raise ValueError(f"{option}: file not found: {path}")
    if is_pose_cache(path):
        try:
            return pose_cache_path(path, width, height, speed)
        except ValueError as e:
            raise ValueError(f"{option}: {e}") from None
    if geometry not in POSE_ESTIMATING:
        raise ValueError(f"{option}: the camera path of a video is estimated by the geometry model, and --geometry "
                         f"{geometry} estimates no camera poses; use --geometry ttt3r (the official demo's) or "
                         "depth-anything-3")
    return None


# generate's options a profile sets, by profile key (a PipelineSettings field, gs.<GSConfig field>,
# or an input): (the argparse dest, the option)
PROFILE_OPTIONS = {
    "chunk_frames": ("chunk", "--chunk"), "context_frames": ("context", "--context"), "strength": ("tau", "--tau"),
    "seed": ("seed", "--seed"), "fps": ("fps", "--fps"), "steps": ("steps", "--steps"),
    "guidance_scale": ("cfg", "--cfg"), "gs.iterations": ("gs_iterations", "--gs-iterations"),
    "gs.init_opacity": ("gs_init_opacity", "--gs-init-opacity"), "gs.depth_loss": ("gs_depth_loss", "--gs-depth-loss"),
    "gs.depth_loss_weight": ("gs_depth_loss_weight", "--gs-depth-loss-weight"),
    "gs.position_lr_scaling": ("gs_position_lr", "--gs-position-lr"), "gs.init": ("gs_init", "--gs-init"),
    "gs.hints": ("gs_hints", "--gs-hints"),
    "caption_style": ("caption_style", "--caption-style"), "extrapolation": ("extrapolation", "--extrapolation"),
    "history_intrinsics": ("history_intrinsics", "--history-intrinsics"),
    "geometry_alignment": ("geometry_alignment", "--geometry-alignment"),
    "geometry_input": ("geometry_input", "--geometry-input"),
    "cache_frames": ("cache_frames", "--cache-frames"), "mask_rule": ("mask_rule", "--mask-rule"),
    "shift": ("shift", "--shift"), "resize": ("resize", "--resize"), "fov": ("fov", "--fov"),
}


def apply_profile(args) -> None:
    """``--profile``: its values for every option in ``PROFILE_OPTIONS`` not given on the command
    line; a bare preset spec read as the profile reads it (``profiles.read_preset_names``)."""
    from .profiles import get_profile, profile_value

    profile = get_profile(args.profile, "--profile")
    given = getattr(args, "given", set())
    for key, (dest, option) in PROFILE_OPTIONS.items():
        if option not in given:
            setattr(args, dest, profile_value(profile, key, getattr(args, dest)))
    if args.trajectory is not None and not _camera_file(args.trajectory):
        from .profiles import read_preset_names

        args.trajectory = read_preset_names(profile.name, args.trajectory)


def check_generate_args(args) -> dict:
    """Every cheap check of ``generate`` (numbers, device, output folder, image, trajectory, model
    files), before anything loads. Returns the loaded image, the settings, the chunk starts and
    the model paths. ``--profile`` is applied first."""
    from .gscache import GSConfig
    from .inputs import (
        check_device,
        check_float,
        check_int,
        check_output_folder,
        check_seed,
        load_camera_file,
        load_image,
    )
    from .model_files import require, run_needs
    from .pipeline import MAX_WORLD_VIEWS, PipelineSettings
    from .profiles import DEFAULT_PROFILE
    from .trajectory import MAX_FRAMES

    apply_profile(args)
    check_device(args.device)
    check_int(args.frames, "--frames", 1, MAX_FRAMES)
    check_int(args.fps, "--fps", 1, 240)
    if args.path_frames is not None:
        check_int(args.path_frames, "--path-frames", 1, MAX_FRAMES)
    check_float(args.strength_scale, "--strength-scale", 0.0, lo_open=True, example=1.0)
    if args.fov is not None:
        check_float(args.fov, "--fov", 0.0, 180.0, lo_open=True, hi_open=True, example=60.0)
    check_float(args.tau, "--tau", 0.0, 1.0)
    check_int(args.steps, "--steps", 1)
    check_float(args.cfg, "--cfg", 1.0, example=5.0)
    check_int(args.gs_iterations, "--gs-iterations", 0)
    check_float(args.gs_depth_loss_weight, "--gs-depth-loss-weight", 0.0, example=0.01)
    check_float(args.gs_init_opacity, "--gs-init-opacity", 0.0, 1.0, lo_open=True, hi_open=True, example=0.8)
    check_int(args.gs_init_max_points, "--gs-init-max-points", 1)
    check_float(args.gs_init_min_depth, "--gs-init-min-depth", 0.0, example=0.8)
    if args.world_voxel is not None:
        check_float(args.world_voxel, "--world-voxel", 0.0, lo_open=True, example=0.05)
    check_seed(args.seed, "--seed")
    if args.caption_max_tokens is not None:
        check_int(args.caption_max_tokens, "--caption-max-tokens", 1)
    check_int(args.geometry_batch, "--geometry-batch", 1)
    check_int(args.world_views, "--world-views", 0, MAX_WORLD_VIEWS)
    try:
        settings = PipelineSettings(
            chunk_frames=args.chunk, context_frames=args.context, strength=args.tau, steps=args.steps,
            guidance_scale=args.cfg, variant=args.schedule, training_free=args.training_free, cache_mode=args.cache,
            gs=GSConfig(iterations=args.gs_iterations, depth_loss=args.gs_depth_loss,
                        depth_loss_weight=args.gs_depth_loss_weight, sh_degree=args.gs_sh_degree,
                        init_opacity=args.gs_init_opacity, position_lr_scaling=args.gs_position_lr,
                        init=args.gs_init, init_max_points=args.gs_init_max_points,
                        init_min_depth=args.gs_init_min_depth, hints=args.gs_hints),
            cache_frames=args.cache_frames, extend_mode=args.extend, seed=args.seed,
            extrapolation=args.extrapolation, extrapolation_window=args.extrapolation_window,
            world_voxel=args.world_voxel, memory=args.memory, world_align=args.world_align,
            world_views=args.world_views, world_keep=args.world_keep, depth_fit=args.depth_fit, pose_source=args.pose_source,
            history_intrinsics=args.history_intrinsics, geometry_alignment=args.geometry_alignment,
            geometry_input=args.geometry_input, mask_rule=args.mask_rule, shift=args.shift,
            caption_style=args.caption_style, caption_max_tokens=args.caption_max_tokens,
            geometry_batch=args.geometry_batch, cfg_batch=args.cfg_batch, vae_tiling=args.vae_tiling,
            fps=args.fps, profile=args.profile)
        starts = settings.chunk_starts(args.frames)
    except ValueError as e:
        by = "" if {"--chunk", "--context"} <= getattr(args, "given", set()) or args.profile == DEFAULT_PROFILE \
            else f" (from --profile {args.profile})"
        raise ValueError(f"--chunk {args.chunk} / --context {args.context}{by} / --frames {args.frames}: {e}") from None
    if args.caption_style == "official" and args.captioner == "florence-2":
        by = "" if "--caption-style" in getattr(args, "given", set()) else f" (set by --profile {args.profile})"
        raise ValueError(f"--caption-style official{by} asks a Qwen-VL chat model (the official demo's request); "
                         "use --captioner qwen2.5-vl or qwen3-vl, or --caption-style pack with florence-2")
    if args.captioner == "fixed" and not args.prompt.strip() and not args.style.strip():
        raise ValueError("--prompt is empty: give --prompt (and/or --style), or a --captioner that describes the frames")
    check_int(args.from_chunk, "--from-chunk", 0)
    if args.from_chunk and args.overwrite:
        raise ValueError("--from-chunk and --overwrite exclude each other: a rollback keeps the first chunks; pass one")
    check_output_folder(args.out, args.resume or bool(args.from_chunk), args.overwrite, *RESUME_FLAGS)
    if args.from_chunk:
        from .loop import check_rollback

        try:
            check_rollback(args.out, args.from_chunk, len(starts))
        except ValueError as e:
            raise ValueError(str(e).replace("from_chunk", "--from-chunk")) from None
    image = load_image(args.image, args.resize, args.alpha)
    H, W = image.shape[:2]
    cameras = None
    if (args.trajectory is None) == (args.camera_video is None):
        raise ValueError("give the camera path with --trajectory (a preset or a camera file) or --camera-video "
                         "(a reference video or its .npz pose cache), one of them")
    if args.camera_video is not None:
        cameras = check_camera_video(args.camera_video, args.camera_speed, args.geometry, W, H)
    elif _camera_file(args.trajectory):
        cameras = load_camera_file(args.trajectory, W, H)
    else:
        check_trajectory_spec(args.trajectory, args.strength_scale,
                              args.frames if args.path_frames is None else args.path_frames)
    needs = run_needs(args.models, args.geometry, args.captioner, args.pose_source, args.training_free,
                      args.geometry_path, args.captioner_path, args.worldwarp_ckpt)
    return {"image": image, "cameras": cameras, "settings": settings, "starts": starts, "paths": require(needs)}


# the settings ``--vram`` picks, by PipelineSettings field, and the option that sets each explicitly
VRAM_OPTIONS = {"geometry_batch": "--geometry-batch", "cfg_batch": "--cfg-batch", "vae_tiling": "--vae-tiling",
                "offload": "--offload"}


def given_options(argv: list[str] | None) -> set[str]:
    """The ``--options`` on the command line (``--x value`` and ``--x=value``)."""
    return {tok.split("=", 1)[0] for tok in (sys.argv[1:] if argv is None else argv) if tok.startswith("--")}


def fit_card(args, settings, width: int, height: int):
    """``--vram``: the pick for the device's free memory, applied to the settings and ``args.offload``
    except where the option was given explicitly. Returns ``(VramChoice, settings)``."""
    from dataclasses import replace

    from .plan import apply_choice, cuda_free_bytes, pick_settings, planned_captioner

    given = getattr(args, "given", set())
    # the pack's loader keeps the UMT5 encoder in bf16 whatever --dtype is
    choice = pick_settings(cuda_free_bytes(args.device), args.vram, dtype=args.dtype, text_encoder_dtype="bf16",
                           geometry=args.geometry,
                           geometry_dtype=_geometry_dtype(args), captioner=planned_captioner(args.captioner),
                           frames=settings.chunk_frames, height=height, width=width)
    kept = sorted(opt for name, opt in VRAM_OPTIONS.items() if opt in given and name in choice.settings)
    picked = {k: v for k, v in choice.settings.items() if VRAM_OPTIONS.get(k) not in given}
    if choice.settings and "offload" in picked:
        args.offload = picked["offload"]
    if kept:
        choice = replace(choice, settings=picked, reason=f"{choice.reason}; kept as given: {', '.join(kept)}")
    return choice, apply_choice(settings, choice)


def _geometry_dtype(args) -> str:
    dt = getattr(args, "geometry_dtype", "auto")
    if dt in (None, "auto"):
        return "bf16" if str(args.device).startswith("cuda") else "fp32"
    return "bf16" if dt == "fp16" else dt



def _load_model(paths: dict, args):
    from . import models as M

    ckpt = paths.get("worldwarp") if (args.worldwarp_ckpt or not args.training_free) else None
    if "diffusers" in paths or os.path.isdir(paths["transformer"]):
        model = M.load_diffusers_folder(args.models, args.dtype, args.device, args.offload)
        if ckpt:
            M.load_worldwarp_checkpoint(ckpt, model.transformer)
            model.files["worldwarp"] = ckpt
        return model
    return M.load_components(paths["transformer"], paths["vae"], paths["text_encoder"], paths["tokenizer"],
                             ckpt, args.dtype, args.device, args.offload)


# ----------------------------------------------------------------------------- commands
def cmd_generate(args) -> int:
    from .cameras import Cameras, intrinsics_from_fov
    from .caption import load_captioner
    from .geometry import load_estimator
    from .pipeline import WorldWarpPipeline
    from .trajectory import make_trajectory, median_depth

    checked = check_generate_args(args)  # nothing is loaded before every cheap check passed
    image, paths, settings = checked["image"], checked["paths"], checked["settings"]
    H, W = image.shape[:2]
    vram, settings = fit_card(args, settings, W, H)
    print(vram.reason, file=sys.stderr)
    print(f"loading the {args.geometry} geometry model from {paths['geometry']}", file=sys.stderr)
    geometry = load_estimator(args.geometry, paths["geometry"], device=args.device, dtype=args.geometry_dtype)
    given_K = None if args.fov is None else intrinsics_from_fov(args.fov, W, H)
    first = geometry.estimate(image[None], None if given_K is None else Cameras(torch.eye(4)[None], given_K, W, H))
    # a given FoV wins over a backend that estimates its own intrinsics (TTT3R). The first chunk
    # estimates the start image's depth again at these cameras, as the ComfyUI nodes do (same frames)
    start = Cameras(torch.eye(4)[None], (first.cameras.Ks[:1] if given_K is None else given_K).float(), W, H)
    path = checked["cameras"]
    if path is None and args.camera_video is not None:
        from .video_path import OFFICIAL_MAX_FRAMES, camera_path_from_video, read_video

        print(f"estimating the camera path of {args.camera_video} with {args.geometry}", file=sys.stderr)
        frames = read_video(args.camera_video, W, H, OFFICIAL_MAX_FRAMES)
        path = camera_path_from_video(frames, geometry, args.camera_speed)
    if path is None:
        path = make_trajectory(args.trajectory, args.frames if args.path_frames is None else args.path_frames, start,
                               median_depth(first.depth[0]), strength=args.strength_scale)
    print("loading the ST-Diff models (transformer, VAE, text encoder)", file=sys.stderr)
    model = _load_model(paths, args)
    captioner = None
    if args.captioner != "fixed":
        captioner = load_captioner(args.captioner, paths["captioner"], device=args.device)
    pipe = WorldWarpPipeline(model, geometry, captioner, settings, vram=vram.record())
    progress = Progress(len(checked["starts"]))
    try:
        result = pipe(image, path, args.frames, prompt=args.prompt, style=args.style, out_dir=args.out,
                      resume=args.resume, overwrite=args.overwrite, callback=progress, from_chunk=args.from_chunk)
    finally:
        model.release()
    print(f"\nwrote {result.frames.shape[0]} frames to {result.out_dir}")
    return 0


def cmd_demo(args) -> int:
    from .demo import DEMO_SETTINGS, run_demo
    from .inputs import check_int, check_output_folder

    check_int(args.frames, "--frames", 1)
    try:
        chunks = len(DEMO_SETTINGS.chunk_starts(args.frames))
    except ValueError as e:
        raise ValueError(f"--frames: {e}") from None
    check_output_folder(args.out, args.resume, args.overwrite, *RESUME_FLAGS)
    print("WorldWarp demo: a PIPELINE CHECK with tiny random-weight models on a synthetic room.\n"
          "The frames the diffusion model fills are noise; everything else is the real loop.")
    result = run_demo(args.out, frames=args.frames, resume=args.resume, overwrite=args.overwrite,
                      callback=Progress(chunks))
    print(f"\nwrote {result.frames.shape[0]} frames and every output to {result.out_dir}")
    return 0


def cmd_presets(args) -> int:
    from .official_paths import OFFICIAL_PRESETS, PREFIX
    from .trajectory import PRESETS, list_presets

    print("the pack's presets (translations in median depths of the first frame):")
    for name in list_presets():
        print(f"  {name:14s} {PRESETS[name].description}  [{PRESETS[name].unit}]")
    print('compose: "dolly_in + pan_left" (one after the other), "dolly_in * orbit_left" (together), '
          '"dolly_in@0.5:2" (strength 0.5, weight 2)')
    print("\nthe official WorldWarp demo's presets (per frame, in the geometry model's units; focal 1.2 x width):")
    for name in sorted(OFFICIAL_PRESETS):
        print(f"  {PREFIX + name:28s} {OFFICIAL_PRESETS[name][1]}")
    print('compose: "official:dolly_in + official:pan_right" (ADDED: both at once, as the official demo), '
          '"official:dolly_in ; official:pan_left" (one after the other), "official:dolly_in@0.5" (amounts x 0.5)')
    return 0


def cmd_camera_path(args) -> int:
    """The camera path of a reference video (or of an official .npz pose cache) as a camera file."""
    from .geometry import load_estimator
    from .inputs import check_device, check_int, parse_size
    from .video_path import (
        POSE_ESTIMATING,
        camera_path_from_video,
        check_speed,
        estimate_video_cameras,
        is_pose_cache,
        pose_cache_path,
        read_video,
        save_pose_cache,
    )

    W, H = parse_size(args.size, "--size")
    check_speed(args.speed, "--speed")
    check_int(args.max_frames, "--max-frames", 1, 10_000)
    out = args.out
    kind = os.path.splitext(out)[1].lower()
    if kind not in (".txt", ".json", ".npz"):
        raise ValueError(f"--out {out!r}: write a RealEstate10K .txt, a camera .json or an official .npz pose cache")
    if os.path.exists(out) and not args.overwrite:
        raise ValueError(f"--out {out} exists; pass --overwrite to replace it")
    if kind == ".npz" and args.speed != 1.0:
        raise ValueError("--speed: a .npz pose cache holds the estimate as the official demo caches it (speed 1); "
                         "give the speed when you use the cache (generate --camera-speed), or write a .txt / .json")
    if not os.path.isfile(args.video):
        raise ValueError(f"reference video not found: {args.video}")
    if is_pose_cache(args.video):
        if kind == ".npz":
            raise ValueError("the input is already a .npz pose cache; write a .txt or .json camera file from it")
        cams = pose_cache_path(args.video, W, H, args.speed)
    else:
        if args.geometry not in POSE_ESTIMATING:
            raise ValueError(f"--geometry {args.geometry} estimates no camera poses; use ttt3r (the official demo's) "
                             "or depth-anything-3")
        check_device(args.device)
        folder = args.geometry_path or (os.path.join(args.models, "worldwarp", DEFAULT_FOLDERS.get(args.geometry,
                                                                                                   args.geometry))
                                        if args.models else None)
        if folder is None:
            raise ValueError("give the geometry model's folder with --geometry-path, or your ComfyUI models/ folder "
                             "with --models")
        frames = read_video(args.video, W, H, args.max_frames)
        print(f"{frames.shape[0]} frames of {args.video} at {W}x{H}; loading {args.geometry} from {folder}",
              file=sys.stderr)
        geometry = load_estimator(args.geometry, folder, device=args.device)
        if kind == ".npz":
            save_pose_cache(out, estimate_video_cameras(frames, geometry, args.geometry_input), overwrite=args.overwrite)
            print(f"wrote the pose cache of {frames.shape[0]} frames to {out}")
            return 0
        cams = camera_path_from_video(frames, geometry, args.speed, args.max_frames, geometry_input=args.geometry_input)
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    if kind == ".txt":
        cams.to_re10k(out)
    else:
        cams.to_json(out)
    print(f"wrote {len(cams)} cameras ({W}x{H}) to {out}")
    return 0


def cmd_check_models(args) -> int:
    """The same decision as ``generate``'s (``model_files.run_needs``) for the same options."""
    from .model_files import run_needs

    ok = True
    for n in run_needs(args.models, args.geometry, args.captioner, args.pose_source, args.training_free,
                       args.geometry_path, args.captioner_path, args.worldwarp_ckpt):
        if n.ok:
            print(f"found    {n.component:13s} {n.found}")
            continue
        ok = ok and not n.required
        label = "MISSING " if n.required else "optional"
        if n.problem:
            print(f"{'PROBLEM ' if n.required else 'optional'} {n.component:13s} {n.problem}; get it from {n.source}")
        else:
            print(f"{label} {n.component:13s} in {n.looked_in} (one of {', '.join(n.expected)}): get it from {n.source}")
    print("\nall files this run needs are present" if ok else "\nsome files this run needs are missing (above)")
    return 0 if ok else 1


def cmd_convert_checkpoint(args) -> int:
    from .convert import convert_checkpoint

    info = convert_checkpoint(args.src, args.dst, args.dtype, args.overwrite)
    print(f"wrote {info['path']}: {info['keys']} tensors, {info['parameters'] / 1e9:.2f} B parameters, "
          f"{info['blocks']} blocks (ComfyUI / original Wan layout; load it with Load Diffusion Model)")
    return 0


# ----------------------------------------------------------------------------- the parser
def _add_cache_options(g) -> None:
    """The 3DGS cache's options (``GSConfig``; docs/CACHE.md measures them) and how the history's
    geometry reaches the cache."""
    from .geometry import GEOMETRY_ALIGNMENTS, GEOMETRY_INPUTS
    from .gscache import DEPTH_LOSSES, HINT_COLOURS, INIT_MODES, POSITION_LR_SCALINGS, GSConfig
    from .loop import CACHE_FRAMES
    from .pipeline import PipelineSettings

    gs, s = GSConfig(), PipelineSettings()
    g.add_argument("--gs-depth-loss", default=gs.depth_loss, choices=list(DEPTH_LOSSES),
                   help="3DGS depth term: L1 of the rendered depth against the geometry's, relative to its mean "
                        "depth (any units), or of their inverses (disparity, the official code's); none: colour only")
    g.add_argument("--gs-depth-loss-weight", type=float, default=gs.depth_loss_weight,
                   help="weight of the depth term, >= 0 (official: 0.01)")
    g.add_argument("--gs-sh-degree", type=int, default=gs.sh_degree, choices=[0, 1, 2, 3],
                   help="spherical-harmonic degree of the Gaussians' colour (0: view-independent; official: 3)")
    g.add_argument("--gs-init-opacity", type=float, default=gs.init_opacity,
                   help="initial opacity of the Gaussians, 0..1 exclusive (official: 0.9999)")
    g.add_argument("--gs-position-lr", default=gs.position_lr_scaling, choices=list(POSITION_LR_SCALINGS),
                   help="position learning rate: times the scene extent, or absolute (the official code's)")
    g.add_argument("--gs-init", default=gs.init, choices=list(INIT_MODES),
                   help="Gaussians at the start: one per pixel with the pixel's footprint as size, or the official "
                        "code's (a random subset per frame past a depth cut, sized by their 3 nearest neighbours)")
    g.add_argument("--gs-init-max-points", type=int, default=gs.init_max_points,
                   help=f"--gs-init official: at most this many Gaussians per frame (official: {gs.init_max_points})")
    g.add_argument("--gs-init-min-depth", type=float, default=gs.init_min_depth,
                   help=f"--gs-init official: pixels at this depth or nearer are skipped, in the geometry's units "
                        f"(official demo: {gs.init_min_depth})")
    g.add_argument("--gs-hints", default=gs.hints, choices=list(HINT_COLOURS),
                   help="hint colour where the render is partly transparent: divided by its opacity, or "
                        "premultiplied (darker there: the official code's, which its checkpoint was trained on)")
    g.add_argument("--cache-frames", default=s.cache_frames, choices=list(CACHE_FRAMES),
                   help="frames the cache is optimised on: the whole previous chunk, or only its context frames "
                        "(the official code's)")
    g.add_argument("--geometry-alignment", default=s.geometry_alignment, choices=list(GEOMETRY_ALIGNMENTS),
                   help="how the history's geometry enters the path's world: sim3 (estimated cameras Sim(3)-fitted "
                        "to the path, depth fitted to the previous cache) or official (re-anchored rigidly at the "
                        "last history frame's requested pose, the geometry model's raw depth scale)")
    g.add_argument("--geometry-input", default=s.geometry_input, choices=list(GEOMETRY_INPUTS),
                   help="the geometry model's input: its own preprocessing (model), or the official zero-padded "
                        "square (square-pad; where the backend offers it: ttt3r)")


def _add_memory_options(g) -> None:
    """Options that trade speed for accelerator memory (frames equal to float rounding, except tiling)."""
    from .geometry import GEOMETRY_DTYPES
    from .pipeline import PipelineSettings
    from .sampler import CFG_BATCHES

    s = PipelineSettings()
    g.add_argument("--geometry-batch", type=int, default=s.geometry_batch,
                   help="history frames per geometry forward, >= 1 (per-frame depth models; memory grows with it)")
    g.add_argument("--geometry-dtype", default="auto", choices=list(GEOMETRY_DTYPES),
                   help="dtype the geometry model runs in; auto: bf16 on CUDA (TTT3R: fp32), fp32 on the CPU")
    g.add_argument("--cfg-batch", default=s.cfg_batch, choices=list(CFG_BATCHES),
                   help="classifier-free guidance: both branches in one forward, or one after the other "
                        "(sequential: less memory, slower)")
    g.add_argument("--vae-tiling", action="store_true",
                   help="VAE encode/decode on overlapping 256-pixel tiles (less memory; seams blended)")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its choices and its default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.help is argparse.SUPPRESS or action.option_strings == ["-h", "--help"]:
            return text
        if action.choices and "%(choices)" not in text:
            text += " (choices: %(choices)s)"
        if action.required:
            text += " [required]"
        elif isinstance(action, argparse._StoreTrueAction):
            text += " [default: off]"
        elif action.default == "":
            text += ' [default: ""]'
        elif action.default is not None and "%(default)" not in text:
            text += " [default: %(default)s]"
        elif action.default is None and action.option_strings:
            text += " [default: none]"
        return text


def _add_model_options(p: argparse.ArgumentParser) -> None:
    """The options that decide which model files a run needs (``generate`` and ``check-models``)."""
    from .caption import list_captioners
    from .geometry import list_estimators

    p.add_argument("--geometry", default="depth-pro", choices=list_estimators(),
                   help="geometry (depth/pose) model; its folder is models/worldwarp/<default folder> unless "
                        "--geometry-path is given")
    p.add_argument("--geometry-path", help="the geometry model's folder (a transformers folder, or a TTT3R checkout)")
    p.add_argument("--captioner", default="fixed", choices=list_captioners(),
                   help="VLM that writes each chunk's prompt; 'fixed' uses --prompt and loads nothing")
    p.add_argument("--captioner-path", help="the captioner's model folder")
    p.add_argument("--pose-source", default="auto", choices=["auto", "estimated", "requested"],
                   help="cameras of the history: the geometry model's estimate Sim(3)-aligned to the path (as the "
                        "paper; needs ttt3r or depth-anything-3), or the requested path; default auto = estimated "
                        "where the backend estimates poses, else requested")
    p.add_argument("--history-intrinsics", default="requested", choices=["requested", "estimated"],
                   help="with estimated poses, the history cameras' intrinsics: the path's (default; the targets "
                        "have them, so a wrong focal estimate does not zoom the hints) or the geometry model's")
    p.add_argument("--training-free", action="store_true",
                   help="base Wan2.1 weights without the WorldWarp fine-tune (worldwarp_latest.ckpt not needed)")
    p.add_argument("--worldwarp-ckpt", help="the official worldwarp_latest.ckpt (else found in diffusion_models/)")


def build_parser() -> argparse.ArgumentParser:
    from .geometry import list_estimators
    from .inputs import ALPHA_CHOICES, MAX_ASPECT, MAX_PIXELS, MAX_SIDE, MIN_SIDE, SEED_MAX
    from .plan import VRAM_CHOICES
    from .profiles import DEFAULT_PROFILE, PROFILE_NAMES
    from .trajectory import EXTEND_MODES

    p = argparse.ArgumentParser(prog="python -m worldwarp_core", description="WorldWarp: 3D-consistent long video",
                                formatter_class=_Formatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    g = sub.add_parser("generate", help="generate a video from an image and a camera path", formatter_class=_Formatter,
                       description="Generate a video from one image along a camera path. Every argument and "
                                   "model file is checked before any model loads.")
    g.add_argument("--image", required=True,
                   help=f"start image (PNG/JPEG/WebP, 8 or 16 bit); sides multiples of 16, {MIN_SIDE}..{MAX_SIDE} "
                        f"pixels, at most {MAX_PIXELS} pixels, aspect ratio at most {MAX_ASPECT}:1 (else use --resize)")
    g.add_argument("--trajectory",
                   help="preset spec (see `presets`), e.g. \"dolly_in + pan_left\" or \"official:dolly_in\", or a "
                        "RealEstate10K .txt / JSON camera file / official .npz pose cache (this or --camera-video)")
    g.add_argument("--camera-video",
                   help="take the camera path of this reference video, estimated with --geometry (ttt3r or "
                        "depth-anything-3; the official demo's From Video), or read it from its .npz pose cache")
    g.add_argument("--camera-speed", type=float, default=1.0,
                   help="speed multiplier of the --camera-video path (the official demo's: 0.25..4; 2 = twice as "
                        "fast)")
    g.add_argument("--frames", type=int, required=True,
                   help="total frames: chunk + k*(chunk - context), e.g. 49, 93, 137 with the default chunking")
    g.add_argument("--models", required=True, help="ComfyUI models/ folder or a Wan2.1 diffusers folder")
    g.add_argument("--out", required=True, help="output folder (refused if it holds another run)")
    g.add_argument("--prompt", default="", help="the scene description (with --captioner fixed)")
    g.add_argument("--style", default="", help='style text appended to the prompt, e.g. "Van Gogh style"')
    g.add_argument("--resume", action="store_true", help="continue the run in --out after its last finished chunk")
    g.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    g.add_argument("--from-chunk", type=int, default=0, metavar="K",
                   help="roll back the run in --out: keep its first K chunks byte for byte and make the rest again "
                        "with these options (another prompt, style, tau, seed, the path after the kept frames...); "
                        "the start image and --chunk/--context stay; 0: off")
    g.add_argument("--resize", help="resize the image to WIDTHxHEIGHT first (multiples of 16), e.g. 832x480")
    g.add_argument("--alpha", default="refuse", choices=list(ALPHA_CHOICES),
                   help="images with transparent pixels: refuse them, or composite over white or black")
    g.add_argument("--fov", type=float,
                   help="horizontal field of view in degrees, 0..180 (else the geometry model's estimate)")
    g.add_argument("--path-frames", type=int,
                   help="frames of the preset path, extrapolated past its end (else --frames)")
    g.add_argument("--strength-scale", type=float, default=1.0, help="multiplies the preset strengths (> 0)")
    g.add_argument("--chunk", type=int, default=49, help="frames per chunk, 4k+1 (paper: 49)")
    g.add_argument("--context", type=int, default=5,
                   help="context frames re-used from the previous chunk, 4j+1 and < --chunk (paper: 5)")
    g.add_argument("--tau", type=float, default=0.8, help="strength τ of the warped tokens, 0..1 (paper: 0.8)")
    g.add_argument("--steps", type=int, default=50, help="flow-matching Euler steps (paper: 50)")
    g.add_argument("--cfg", type=float, default=5.0, help="classifier-free guidance scale, >= 1 (1: off)")
    g.add_argument("--schedule", default="spatio-temporal", choices=["spatio-temporal", "spatial", "temporal", "full"],
                   help="noise schedule variant (paper Table 3 ablations)")
    g.add_argument("--cache", default="3dgs", choices=["3dgs", "pointcloud", "none"],
                   help="geometry cache the hints are rendered from")
    g.add_argument("--gs-iterations", type=int, default=500, help="3DGS optimisation iterations per chunk (paper: 500)")
    _add_cache_options(g)
    g.add_argument("--extend", default="extrapolate", choices=list(EXTEND_MODES),
                   help="how the path continues past its last camera (slowdown: the official demo's, the motion "
                        "slowing to 10%% of its speed)")
    g.add_argument("--extrapolation", default="auto", choices=["auto", "paper", "official"],
                   help="how --extend extrapolate continues the path: auto (backtested), paper (world velocity "
                        "+ SLERP) or official (body-frame momentum); docs/EXTRAPOLATION.md")
    g.add_argument("--extrapolation-window", type=int, help="smoothing window in frames (none: the method's own)")
    g.add_argument("--mask-rule", default="official", choices=["official", "strict"],
                   help="validity mask rule: the official WorldWarp sampler's (default) or strict per-token min-pool")
    g.add_argument("--shift", type=float, default=5.0,
                   help="flow shift, > 0 (default 5: the official WorldWarp sampler's; Wan 480p uses 3)")
    g.add_argument("--world-voxel", type=float,
                   help="keep a persistent world.ply merged at this voxel size (> 0, e.g. 0.05; off when not given)")
    g.add_argument("--memory", default="online", choices=["online", "world"],
                   help="hints from the latest history's cache only (online: the paper), or also from the persistent "
                        "world where that cache has holes, so a path that comes back sees what it saw (world; needs "
                        "--world-voxel)")
    g.add_argument("--world-align", action="store_true",
                   help="with --memory world: scale the history's depth to the remembered scene on a revisit "
                        "(drift control; off by default)")
    g.add_argument("--depth-fit", default="chunk", choices=["chunk", "frame"],
                   help="the history's depth fitted to the previous cache with one scale (chunk, default) or one per "
                        "frame (frame: a depth model whose scale wanders per frame does not drift chunk after chunk)")
    g.add_argument("--world-keep", default="newest", choices=["newest", "oldest"],
                   help="with --world-voxel: which Gaussian a world voxel keeps when a later chunk sees it again: "
                        "newest (default) or oldest (the remembered scene stays the first one: a steadier reference "
                        "for --world-align)")
    g.add_argument("--world-views", type=int, default=0,
                   help="with --memory world: the online cache also trains on this many past frames (older than the "
                        "history) whose cameras best see the chunk's, with the world's depth there (0-16; default 0: "
                        "off)")
    _add_model_options(g)
    g.add_argument("--caption-style", default="pack", choices=["pack", "official"],
                   help="how the captioner is asked: pack (short instruction, first and last history frame, "
                        "--style appended) or official (the official demo's system prompt with --style inside the "
                        "request, the previous chunk as a 2 fps video, the answer verbatim; Qwen-VL only)")
    g.add_argument("--caption-max-tokens", type=int,
                   help="most new tokens of a caption (none: the style's own, pack 120, official 512)")
    g.add_argument("--dtype", default="bf16", choices=["fp32", "bf16", "fp16", "fp8"],
                   help="weights' dtype of the transformer (fp8: stored in fp8, computed in bf16)")
    g.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device: cpu, cuda, cuda:N or mps")
    g.add_argument("--offload", default="none", choices=["none", "text_encoder", "model"],
                   help="'model' keeps each model on the CPU until it is used (less GPU memory, slower); "
                        "'text_encoder' only the text encoder (about 11 GB of UMT5-XXL in bf16), used once per prompt")
    g.add_argument("--vram", default="auto", choices=list(VRAM_CHOICES),
                   help="fit the card: 'auto' picks geometry batch, CFG mode, offload and VAE tiling from the free "
                        "GPU memory and the chunk plan (options given explicitly win); 'high'/'medium'/'low'/'small' "
                        "take that profile; 'manual' the options as given. Frames are the same either way")
    g.add_argument("--seed", type=int, default=0, help=f"random seed, 0..{SEED_MAX}")
    g.add_argument("--fps", type=int, default=16, help="frame rate of video.mp4 (official demo: 30)")
    g.add_argument("--profile", default=DEFAULT_PROFILE, choices=list(PROFILE_NAMES),
                   help="defaults of many options at once: pack (the pack's measured choices), paper (49/5, tau "
                        "0.8, with the official code's pieces) or official-demo (the official demo: 81/1, tau 0.6, "
                        "seed 32, 30 fps, 720x480, focal 1.2 W, bare preset names are the official presets); options "
                        "given explicitly win, and the manifest records what differs (docs/GUIDE.md)")
    _add_memory_options(g)
    g.set_defaults(func=cmd_generate)
    d = sub.add_parser("demo", help="pipeline check with tiny random models (no weights needed)",
                       formatter_class=_Formatter)
    d.add_argument("--out", required=True, help="output folder")
    d.add_argument("--frames", type=int, default=41, help="total frames: 17 + k*12 (17, 29, 41, 53, ...)")
    d.add_argument("--resume", action="store_true", help="continue the demo run in --out")
    d.add_argument("--overwrite", action="store_true", help="replace the demo run in --out")
    d.set_defaults(func=cmd_demo)
    pr = sub.add_parser("presets", help="list the camera presets (the pack's and the official demo's)",
                        formatter_class=_Formatter)
    pr.set_defaults(func=cmd_presets)
    cp = sub.add_parser("camera-path", formatter_class=_Formatter,
                        help="the camera path of a reference video, written as a camera file",
                        description="Estimate the camera path of a reference video as the official demo's From "
                                    "Video mode does (first 600 frames, geometry model on all of them, one averaged "
                                    "focal, anchored at the first camera) and write it as a RealEstate10K .txt or "
                                    "JSON camera file (for --trajectory or the Camera Trajectory node), or as an "
                                    "official .npz pose cache (the raw estimate). An .npz input is converted.")
    cp.add_argument("video", help="the reference video (mp4, mov, webm, ...) or an official .npz pose cache")
    cp.add_argument("--out", required=True, help="camera file to write: .txt, .json or .npz")
    cp.add_argument("--size", default="720x480", help="WIDTHxHEIGHT of the video to generate (the official: 720x480)")
    cp.add_argument("--geometry", default="ttt3r", choices=list_estimators(),
                    help="geometry model that estimates the poses (ttt3r: the official demo's; or depth-anything-3)")
    cp.add_argument("--geometry-path", help="the geometry model's folder (else models/worldwarp/<its folder>)")
    cp.add_argument("--models", help="ComfyUI models/ folder holding worldwarp/<geometry folder>")
    cp.add_argument("--max-frames", type=int, default=600, help="frames of the video used (the official demo: 600)")
    cp.add_argument("--speed", type=float, default=1.0, help="speed multiplier (the official demo's: 0.25..4)")
    cp.add_argument("--geometry-input", default="square-pad", choices=["square-pad", "model"],
                    help="the geometry model's input: the official zero-padded square (where the backend offers it: "
                         "ttt3r), or the backend's own preprocessing")
    cp.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="torch device: cpu, cuda, cuda:N or mps")
    cp.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    cp.set_defaults(func=cmd_camera_path)
    c = sub.add_parser("check-models", formatter_class=_Formatter,
                       help="which model files a run with these options needs, found or missing",
                       description="Which model files `generate` with the same options needs, and where to get "
                                   "the missing ones (exit status 1 when a needed file is missing).")
    c.add_argument("models", help="ComfyUI models/ folder or a Wan2.1 diffusers folder (as generate's --models)")
    _add_model_options(c)
    c.set_defaults(func=cmd_check_models)
    cv = sub.add_parser("convert-checkpoint", formatter_class=_Formatter, help="write a transformer checkpoint (e.g. worldwarp_latest.ckpt) as a "
                        "ComfyUI-layout .safetensors for core Load Diffusion Model")
    cv.add_argument("src", help="worldwarp_latest.ckpt (read with weights_only) or a .safetensors in any layout")
    cv.add_argument("dst", help="output .safetensors, e.g. ComfyUI/models/diffusion_models/worldwarp_comfy.safetensors")
    cv.add_argument("--dtype", default="keep", choices=["keep", "fp16", "bf16", "fp32"],
                    help="weights dtype of the output ('keep': the checkpoint's own)")
    cv.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    cv.set_defaults(func=cmd_convert_checkpoint)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.given = given_options(argv)
    try:
        return args.func(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, read-only folder: one line, finished chunks are kept
        from .inputs import os_error_message

        print(f"error: {os_error_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished chunks are saved; run again with --resume to continue", file=sys.stderr)
        return 130
