"""What each WorldWarp node does, as plain functions over the core library (no ComfyUI import).

Every function takes ``env`` (ComfyUI's services: model folders, output folder, progress bar,
interruption; see ``nodes/comfy_env.py``) and the node's inputs by name, calls one core function
and returns the node's outputs as a tuple. ``nodes/__init__.py`` turns ``specs.SPECS`` plus these
functions into ComfyUI V3 nodes; the tests run them without ComfyUI.
"""

from __future__ import annotations

import functools
import os
from dataclasses import replace

import torch

from worldwarp_core.cameras import Cameras
from worldwarp_core.caption import (
    CaptionRequest,
    FixedCaptioner,
    check_caption_style,
    clean_prompt,
    compose_prompt,
    describe_frames,
    load_captioner,
)
from worldwarp_core.director import director_cameras
from worldwarp_core.geometry import align_poses, load_estimator, resolve_pose_source
from worldwarp_core.geometry.base import estimate_checked
from worldwarp_core.geometry.pipeline_align import check_alignment
from worldwarp_core.gscache import GSConfig, build_cache, load_ply, save_ply, to_comfy_splat
from worldwarp_core.gscache.cache import render_hints_in_steps
from worldwarp_core.gscache.world import composite_hints, remembered_hints
from worldwarp_core.inputs import (
    check_choice,
    check_float,
    check_image,
    check_int,
    check_name,
    check_output_folder,
    check_seed,
    check_video,
    load_camera_file,
    os_error_message,
)
from worldwarp_core.inputs import input_file as read_input_file
from worldwarp_core.interrupt import call_checked
from worldwarp_core.loop import (
    CACHE_FRAMES,
    LoopState,
    align_history_depth,
    align_to_world,
    catch_up,
    check_rollback,
    chunk_record,
    end_chunk,
    finish_run,
    open_run,
    plan_chunk,
    replay_last,
)
from worldwarp_core.models import load_components, load_diffusers_folder, load_worldwarp_checkpoint
from worldwarp_core.outputs import NODE_ADVICE
from worldwarp_core.pipeline import PipelineSettings, WorldWarpPipeline
from worldwarp_core.plan import VRAM_CHOICES, apply_choice, pick_settings, planned_captioner
from worldwarp_core.profiles import DEFAULT_PROFILE
from worldwarp_core.sampler import SamplerConfig, check_cfg_batch, st_diff_sample
from worldwarp_core.schedule import (
    context_latent_count,
    flow_sigmas,
    sampler_mask,
    schedule_picture,
    sigma_map,
    sigma_start,
)
from worldwarp_core.trajectory import MAX_FRAMES, extend_to, make_trajectory
from worldwarp_core.video_path import camera_path_from_video, pose_cache_path
from worldwarp_core.warp import WarpResult

from .director import start_and_scale

NONE = "(none)"
_GS, _PS = GSConfig(), PipelineSettings()  # the cache options' defaults
DIFFUSERS = "(diffusers folder in models/worldwarp)"


def deterministic(fn):
    """Runs a stage with torch's deterministic algorithms, as the pipeline runs its chunk loop
    (PipelineSettings.deterministic): CPU scatter/index passes of the 3DGS cache then sum in one
    order, so a stage node gives the frames the Chunk Loop node and the CLI give."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        was = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.use_deterministic_algorithms(was)

    return run


def writes_files(fn):
    """A node that writes into the output folder: a failed write (disk full, a read-only folder) is
    a one-line error that names the file and says what to do, not a raw OSError."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OSError as e:
            raise ValueError(os_error_message(e, "queue the workflow again with resume on")) from e

    return run


def _progress_callback(env, total: int):
    """Progress + interruption for core callbacks ``(step, total, extra)``; an x0 estimate (ST-Diff)
    becomes the node's live preview."""
    bar = env.progress(total)

    def cb(step, _total, extra=None):
        env.check_interrupt()
        preview = env.latent_preview(extra) if isinstance(extra, torch.Tensor) else None
        bar.update_absolute(step, total, preview)

    return cb


# ----------------------------------------------------------------------------- loaders
def load_model(env, transformer, vae, text_encoder, tokenizer, worldwarp_checkpoint, dtype, offload):
    device = env.device()
    if transformer == DIFFUSERS:
        model = load_diffusers_folder(env.full_path("worldwarp", tokenizer), dtype, device, offload)
        if worldwarp_checkpoint != NONE:
            load_worldwarp_checkpoint(env.full_path("diffusion_models", worldwarp_checkpoint), model.transformer)
        return (model,)
    ckpt = None if worldwarp_checkpoint == NONE else env.full_path("diffusion_models", worldwarp_checkpoint)
    model = load_components(env.full_path("diffusion_models", transformer), env.full_path("vae", vae),
                            env.full_path("text_encoders", text_encoder), env.full_path("worldwarp", tokenizer),
                            ckpt, dtype, device, offload)
    return (model,)


def _start_image(image, what: str = "image"):
    """The one start image of an ``IMAGE`` batch ``[1, H, W, 3]`` (a longer batch is refused, not cut)."""
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        raise ValueError(f"{what} must be an IMAGE batch [1, H, W, 3], got "
                         f"{list(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
    if image.shape[0] != 1:
        raise ValueError(f"{what} holds {image.shape[0]} images; this node starts from one: pick it with "
                         "an ImageFromBatch node")
    return check_image(image[0].float().cpu(), what)


def load_worldwarp_diffusion_model(env, checkpoint, weight_dtype):
    """The official checkpoint (diffusers layout) or any Wan 2.1 T2V transformer file as a core MODEL."""
    from worldwarp_core.convert import read_transformer_file, to_comfy_layout

    from .core_models import load_core_diffusion_model

    path = env.full_path("diffusion_models", checkpoint)
    return (load_core_diffusion_model(to_comfy_layout(read_transformer_file(path), path), weight_dtype, path),)


def load_geometry_model(env, backend, folder, fov_degrees, dtype="auto"):
    check_float(fov_degrees, "fov_degrees", 0.0, 180.0, lo_open=True, hi_open=True, example=60.0)
    kwargs = {"fov_deg": fov_degrees} if backend == "depth-anything-v2" else {}
    path = None if folder == NONE else env.full_path("worldwarp", folder)
    return (load_estimator(backend, path, device=env.device(), dtype=dtype, **kwargs),)


def load_captioner_node(env, captioner, folder, fixed_prompt):
    if captioner == "fixed":
        return (FixedCaptioner(fixed_prompt),)
    return (load_captioner(captioner, None if folder == NONE else env.full_path("worldwarp", folder)),)


# ----------------------------------------------------------------------------- cameras
def camera_trajectory(env, image, preset, strength, frames, fov_degrees, scene_scale, easing, camera_file,
                      geometry=None):
    H, W = int(image.shape[1]), int(image.shape[2])
    check_int(frames, "frames", 1, MAX_FRAMES)
    if camera_file.strip():  # only ComfyUI's input folder is read (the size and camera limits: inputs.py)
        path = input_file(env, camera_file, "camera_file", CAMERA_FILE_EXTENSIONS)
        return (load_camera_file(path, W, H, "camera_file"),)
    start, scale = start_and_scale(W, H, fov_degrees, scene_scale, geometry)
    return (make_trajectory(preset, frames, start, scene_scale=scale, strength=strength, ease=easing),)


def camera_director(env, image, preset, strength, frames, fov_degrees, scene_scale, easing, keyframes,
                    geometry=None):
    """The path drawn in the Camera Director's editor: its keyframes, or the preset when it has none."""
    start, scale = start_and_scale(int(image.shape[2]), int(image.shape[1]), fov_degrees, scene_scale, geometry)
    return (director_cameras(preset, strength, frames, easing, keyframes, start, scale),)


CAMERA_FILE_EXTENSIONS = (".txt", ".json", ".npz")


def input_file(env, name: str, what: str, extensions: tuple[str, ...]) -> str:
    """A file named relative to ComfyUI's input folder (links resolved), refused when it is elsewhere
    or missing, with a line that says nothing about files outside it (``inputs.input_file``)."""
    return read_input_file(env.input_dir(), name, what, extensions)


def camera_path_from_video_node(env, geometry_model, video, image, max_frames, speed_multiplier,
                                geometry_input="square-pad"):
    """The official demo's From Video: the path of a reference video (e.g. core Load Video's frames)."""
    check_int(max_frames, "max_frames", 1)
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"video must be an IMAGE batch [frames, height, width, 3], got {list(video.shape)}")
    # the first max_frames only, fitted a few at a time: a long video is never copied whole
    H, W = int(image.shape[1]), int(image.shape[2])
    return (camera_path_from_video(video[:max_frames].cpu(), geometry_model, speed_multiplier, max_frames, (W, H),
                                   geometry_input),)


def load_pose_cache_node(env, image, file, speed_multiplier):
    """An official .npz pose cache from ComfyUI's input folder as a camera path for the start image."""
    path = input_file(env, file, "file", (".npz",))
    return (pose_cache_path(path, int(image.shape[2]), int(image.shape[1]), speed_multiplier),)


def extrapolate_trajectory(env, cameras, total_frames, mode, window, damping, method="auto"):
    total_frames = check_int(total_frames, "total_frames", 1, MAX_FRAMES)
    if total_frames < len(cameras):  # extending never cuts: a shorter total is a mistake, not a request
        raise ValueError(f"total_frames is {total_frames} but the path already has {len(cameras)} cameras; set "
                         f"total_frames to at least {len(cameras)} (Extrapolate Trajectory only extends a path)")
    return (extend_to(cameras, total_frames, mode, window or None, damping, method),)


def cameras_to_camera_info(env, cameras, frame):
    """One of our cameras as core ``Load3DCamera`` camera_info, so core nodes such as Render Splat can
    render the exported splat from a WorldWarp camera.

    Core's convention (comfy_extras/nodes_gaussian_splat.py): camera_info lives in a three.js world
    (Y up, cameras look down local -Z) and a splat's coordinates are 3DGS / OpenCV-like, the two
    related by ``(x, y, z) -> (x, -y, -z)``. Our splat coordinates are our world's, so the camera is
    mapped by that flip; the vertical/horizontal field of view is over the image's smaller side.
    """
    from worldwarp_core.trajectory import matrix_to_quat

    if not 0 <= frame < len(cameras):
        raise ValueError(f"frame {frame} is outside the path's {len(cameras)} cameras")
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    c2w = cameras.c2w[frame].double()
    R = flip @ c2w[:3, :3] @ flip  # camera axes OpenCV -> three.js, world splat frame -> three.js world
    pos, target = flip @ c2w[:3, 3], flip @ (c2w[:3, 3] + c2w[:3, 2])
    q = matrix_to_quat(R)
    K = cameras.Ks[frame].double()
    side, focal = (cameras.height, K[1, 1]) if cameras.height <= cameras.width else (cameras.width, K[0, 0])
    fov = torch.rad2deg(2 * torch.atan(side / (2 * focal)))

    def xyz(v):
        return {"x": float(v[0]), "y": float(v[1]), "z": float(v[2])}

    return ({"position": xyz(pos), "target": xyz(target),
             "quaternion": {"x": float(q[1]), "y": float(q[2]), "z": float(q[3]), "w": float(q[0])},
             "fov": float(fov), "cameraType": "perspective", "zoom": 1.0},)


# ----------------------------------------------------------------------------- geometry, cache, hints
@deterministic
def estimate_geometry(env, geometry_model, images, pose_source="auto", cameras=None,
                      geometry_batch=_PS.geometry_batch, intrinsics=_PS.history_intrinsics,
                      alignment=_PS.geometry_alignment, geometry_input=_PS.geometry_input):
    check_video(images.float().cpu(), "images")
    check_alignment(alignment)
    # the estimator sees float32 cameras (as the pipeline gives them), geometry_batch frames at a time as
    # the pipeline does; alignment uses the cameras as given
    result = estimate_checked(geometry_model, images.float().cpu(),
                              None if cameras is None else cameras.to(dtype=torch.float32), env.check_interrupt,
                              geometry_batch, geometry_input)
    if cameras is not None:  # into the given cameras' frame (kept, or the estimate aligned to them)
        cams, depth, _ = align_poses(result, cameras, resolve_pose_source(pose_source, geometry_model), intrinsics,
                                     alignment)
        result = replace(result, cameras=cams, depth=depth)
    d = result.depth
    preview = (d / d.flatten(1).quantile(0.98, dim=1).view(-1, 1, 1).clamp_min(1e-6)).clamp(0, 1)
    return result, preview.unsqueeze(-1).expand(*d.shape, 3).contiguous()


@deterministic
def build_cache_node(env, images, geometry, mode, iterations, learning_rate, stride, alpha_threshold, seed,
                     depth_loss=_GS.depth_loss, depth_loss_weight=_GS.depth_loss_weight, sh_degree=_GS.sh_degree,
                     init_opacity=_GS.init_opacity, position_lr_scaling=_GS.position_lr_scaling,
                     train_frames=_PS.cache_frames, context_frames=_PS.context_frames, init=_GS.init,
                     init_max_points=_GS.init_max_points, init_min_depth=_GS.init_min_depth, hints=_GS.hints):
    check_video(images.float().cpu(), "images")
    if tuple(geometry.depth.shape) != tuple(images.shape[:3]):
        raise ValueError(f"images are {list(images.shape[:3])} but the geometry is for {list(geometry.depth.shape)} "
                         "(frames, height, width); estimate the geometry of these images")
    check_choice(train_frames, "train_frames", CACHE_FRAMES)
    check_int(context_frames, "context_frames", 1)
    cfg = GSConfig(iterations=iterations, lr=learning_rate, stride=stride, alpha_threshold=alpha_threshold, seed=seed,
                   depth_loss=depth_loss, depth_loss_weight=depth_loss_weight, sh_degree=sh_degree,
                   init_opacity=init_opacity, position_lr_scaling=position_lr_scaling, init=init,
                   init_max_points=init_max_points, init_min_depth=init_min_depth, hints=hints)
    # 'context': the last context_frames images (the next chunk's context) are the cache's only views
    sel = slice(-context_frames, None) if train_frames == "context" else slice(None)
    cache = build_cache(images.float().cpu()[sel], geometry.depth[sel], geometry.cameras[sel], mode, cfg,
                        callback=_progress_callback(env, max(iterations, 1)))
    splat = to_comfy_splat(cache.gaussians) if cache.gaussians is not None else None
    return cache, env.make_splat(splat)


@deterministic
def render_hints(env, cache, cameras):
    hints = render_hints_checked(env, cache, cameras, keep_depths=False)
    return hints.images, hints.masks.float()


def render_hints_checked(env, cache, cameras, keep_depths: bool = True):
    """The cache rendered at ``cameras`` (float32, as the pipeline renders), a few views at a time so
    an interrupt is answered while a long chunk renders; progress per view. Views x pixels are
    bounded (``inputs.MAX_HINT_PIXELS``) before anything renders."""
    return render_hints_in_steps(cache, cameras.to(dtype=torch.float32), callback=_view_progress(env, len(cameras)),
                                 keep_depths=keep_depths)


def _view_progress(env, views: int):
    """A hint render's ``callback(done, total)``: answers an interrupt and moves the node's progress bar."""
    bar = env.progress(views)

    def on_views(done, total):
        env.check_interrupt()
        bar.update_absolute(done, total)

    return on_views


def describe_scene(env, captioner, images, style, clip=None, caption_style="pack", caption_max_tokens=0, fps=16,
                   still_frames=81):
    check_caption_style(captioner, caption_style)
    request = CaptionRequest(style=caption_style, max_tokens=caption_max_tokens or None, fps=fps, style_text=style,
                             still_frames=still_frames)
    caption = describe_frames(captioner, images.float().cpu(), request)
    # official: the style is inside the request and the answer is the prompt as it is
    prompt = caption if caption_style == "official" and caption.strip() else compose_prompt(caption, style)
    if clip is None:
        return prompt, None
    return prompt, clip.encode_from_tokens_scheduled(clip.tokenize(clean_prompt(prompt)))


# ----------------------------------------------------------------------------- sampling
def _embeds(model, text, conditioning):
    if conditioning is not None:  # core CONDITIONING: [[tensor [1, L, D], {...}], ...]
        from .core_models import conditioning_embeds

        return conditioning_embeds(conditioning)
    return model.encode_prompt([text])


def _st_model(model, vae=None, clip=None):
    """The ST-Diff model: a ``WORLDWARP_MODEL`` as is, or a core ``MODEL`` + ``VAE`` (+ ``CLIP``) adapted."""
    if model is None:
        raise ValueError("connect a model: Load Diffusion Model (Wan 2.1 T2V) with Load VAE, or Load WorldWarp Model")
    from .core_models import CoreWanModel, is_core_model

    return CoreWanModel(model, vae, clip) if is_core_model(model) else model


def _denoiser(model, positive, negative, cfg, cfg_batch="batched"):
    if not hasattr(model, "denoiser"):
        return None
    return model.denoiser(positive, negative, cfg, **({} if cfg_batch == "batched" else {"cfg_batch": cfg_batch}))


def _sampling_inputs(steps, strength, cfg, shift, schedule=None, mask_rule=None) -> None:
    """The sampler's numbers checked by their node input names (NaN included), before any work."""
    check_int(steps, "steps", 1, 200)
    check_float(strength, "strength", 0.0, 1.0)
    if cfg is not None:
        check_float(cfg, "cfg", 1.0, 20.0, example=5.0)
    check_float(shift, "shift", 0.0, 20.0, lo_open=True, example=5.0)


def _hint_frames(F: int, context_frames: int) -> None:
    if (F - 1) % 4:
        raise ValueError(f"hints hold {F} frames; the Wan VAE needs 4k+1 frames: use {F - (F - 1) % 4} or "
                         f"{F - (F - 1) % 4 + 4}")
    check_int(context_frames, "context_frames", 1)
    if (context_frames - 1) % 4:
        raise ValueError(f"context_frames is {context_frames}; it must be 4j+1 (1, 5, 9...)")
    if context_frames >= F:
        raise ValueError(f"hints hold {F} frame(s) and context_frames is {context_frames}: nothing is left to "
                         f"generate; give at least {context_frames + 4} hint frames or fewer context_frames")


@deterministic
def st_diff_sampler(env, model, hints, masks, prompt, negative_prompt, context_frames, strength, steps, cfg, seed,
                    schedule, training_free, context=None, conditioning=None, negative_conditioning=None, vae=None,
                    mask_rule="official", shift=5.0, cfg_batch=_PS.cfg_batch, vae_tiling=_PS.vae_tiling):
    # every cheap check before the VAE encode
    check_video(hints, "hints", masks)
    check_seed(seed)
    _sampling_inputs(steps, strength, cfg, shift)
    check_cfg_batch(cfg_batch)
    tiling = {"tiled": True} if vae_tiling else {}
    F = int(hints.shape[0])
    _hint_frames(F, context_frames)
    config = SamplerConfig(steps=steps, strength=strength, guidance_scale=cfg, variant=schedule,
                           training_free=training_free, seed=seed, mask_rule=mask_rule, shift=shift,
                           cfg_batch=cfg_batch)
    video = hints.float().cpu().clone()
    mask = masks.float().cpu().clone()
    if context is not None:
        n = context.shape[0]
        if n != context_frames:
            raise ValueError(f"context has {n} frames but context_frames is {context_frames}; they must agree")
        if tuple(context.shape[1:]) != tuple(hints.shape[1:]):
            raise ValueError(f"context frames are {list(context.shape[1:])}, the hints {list(hints.shape[1:])}; "
                             "they must be the same size")
        check_video(context.float().cpu(), "context")
        video[:n] = context.float().cpu()
        mask[:n] = 1.0
    model = _st_model(model, vae)
    token_mask = sampler_mask(mask, mask_rule)
    check = env.check_interrupt  # answered inside the VAE's encode and decode too
    z = call_checked(model.encode_video, video, check=check, **tiling)
    positive = _embeds(model, prompt, conditioning)
    negative = _embeds(model, negative_prompt, negative_conditioning) if cfg > 1.0 else None
    res = st_diff_sample(model.transformer, z, token_mask, context_latent_count(context_frames),
                         positive, negative,
                         config, callback=_progress_callback(env, steps),
                         scheduler_config=getattr(model, "scheduler_config", None),
                         denoise_fn=_denoiser(model, positive, negative, cfg, cfg_batch))
    frames = call_checked(model.decode_video, res.latents, check=check, **tiling)
    title = f"{schedule} schedule, tau = {strength:g}, {steps} steps" + (", training-free" if training_free else "")
    return frames, schedule_picture(res.sigma_map, res.sigmas, title=title)[None]


def preview_schedule(env, masks, context_frames, strength, steps, schedule, mask_rule="official", shift=5.0):
    _sampling_inputs(steps, strength, None, shift)
    check_int(context_frames, "context_frames", 1, 81)
    sig = flow_sigmas(steps, shift)
    S = sigma_map(sampler_mask(masks.float().cpu(), mask_rule), context_latent_count(context_frames),
                  sigma_start(strength, sig), schedule)
    return (schedule_picture(S, sig, title=f"{schedule} schedule, tau = {strength:g}, {steps} steps")[None],)


# ----------------------------------------------------------------------------- fitting the card
def _dtype_name(dtype) -> str:
    return {torch.float32: "fp32", torch.float8_e4m3fn: "fp8"}.get(dtype, "bf16")


def fit_card(env, vram, settings, image, model=None, geometry_model=None, captioner=None):
    """``vram``: pick geometry batch / CFG mode / VAE tiling for the free memory ComfyUI reports
    (``plan.pick_settings``), print the one line and return ``(settings with the pick, record)``.
    The offload is the model's own: ComfyUI's for a core MODEL, Load WorldWarp Model's otherwise."""
    from .core_models import is_core_model

    free = env.free_memory() if hasattr(env, "free_memory") else None
    if model is None or is_core_model(model):
        offload, dtype = ("comfyui",), "bf16"
    else:
        offload = (getattr(model, "offload", "none"),)
        weights = {p.dtype for p in model.transformer.parameters()} if hasattr(model, "transformer") else set()
        dtype = "fp8" if torch.float8_e4m3fn in weights else _dtype_name(getattr(model, "compute_dtype", None))
    # the pack's loader keeps the UMT5 encoder in bf16; ComfyUI streams what does not fit (planned as lowvram)
    choice = pick_settings(free, vram, dtype=dtype, text_encoder_dtype="bf16",
                           geometry=getattr(geometry_model, "name", "depth-pro"),
                           geometry_dtype=_dtype_name(getattr(geometry_model, "dtype", torch.bfloat16)),
                           captioner=planned_captioner(getattr(captioner, "name", "fixed")),
                           frames=settings.chunk_frames, height=int(image.shape[-3]), width=int(image.shape[-2]),
                           offload_choices=offload)
    print(f"[WorldWarp] {choice.reason}")
    return apply_choice(settings, choice), choice.record()


# ----------------------------------------------------------------------------- the whole loop
def _run_folder(env, output_folder) -> str:
    """A run folder under ComfyUI's output folder: a name valid on Windows and Linux, links resolved
    before the containment check. Empty is refused: the loop saves every chunk there (its resume point)."""
    check_name(output_folder, "output_folder", "a folder under ComfyUI's output folder (each chunk is saved there)")
    return env.output_path(output_folder.strip())


@writes_files
def chunk_loop(env, model, geometry_model, image, cameras, frames, prompt, style, chunk_frames, context_frames,
               strength, steps, cfg, seed, schedule, cache_mode, gs_iterations, extend_mode, training_free,
               output_folder, resume, pose_source="auto", extrapolation="auto", captioner=None, vae=None,
               clip=None, mask_rule="official", shift=5.0, depth_loss=_GS.depth_loss,
               depth_loss_weight=_GS.depth_loss_weight, sh_degree=_GS.sh_degree, init_opacity=_GS.init_opacity,
               position_lr_scaling=_GS.position_lr_scaling, cache_frames=_PS.cache_frames,
               caption_style=_PS.caption_style, caption_max_tokens=0, from_chunk=0,
               geometry_batch=_PS.geometry_batch, cfg_batch=_PS.cfg_batch, vae_tiling=_PS.vae_tiling, vram="auto",
               history_intrinsics=_PS.history_intrinsics, fps=_PS.fps, profile=DEFAULT_PROFILE, memory=_PS.memory,
               world_voxel=0.05, geometry_alignment=_PS.geometry_alignment, geometry_input=_PS.geometry_input,
               init=_GS.init, init_max_points=_GS.init_max_points, init_min_depth=_GS.init_min_depth,
               hints=_GS.hints):
    # every input is checked before the run folder is touched
    start = _start_image(image)
    gs = GSConfig(iterations=gs_iterations, depth_loss=depth_loss, depth_loss_weight=depth_loss_weight,
                  sh_degree=sh_degree, init_opacity=init_opacity, position_lr_scaling=position_lr_scaling,
                  init=init, init_max_points=init_max_points, init_min_depth=init_min_depth, hints=hints)
    settings = PipelineSettings(chunk_frames=chunk_frames, context_frames=context_frames, strength=strength,
                                steps=steps, guidance_scale=cfg, seed=seed, variant=schedule, cache_mode=cache_mode,
                                gs=gs, cache_frames=cache_frames, extend_mode=extend_mode,
                                training_free=training_free, pose_source=pose_source,
                                extrapolation=extrapolation, mask_rule=mask_rule, shift=shift,
                                caption_style=caption_style, caption_max_tokens=caption_max_tokens or None,
                                geometry_batch=geometry_batch, cfg_batch=cfg_batch, vae_tiling=vae_tiling,
                                history_intrinsics=history_intrinsics, fps=fps, profile=profile, memory=memory,
                                world_voxel=world_voxel if memory == "world" else None,
                                geometry_alignment=geometry_alignment, geometry_input=geometry_input)
    total_chunks = len(settings.chunk_starts(frames))
    out_dir = _run_folder(env, output_folder)
    check_output_folder(out_dir, resume or bool(from_chunk), not (resume or from_chunk), "resume", "overwrite",
                        "output_folder")
    if from_chunk:
        check_rollback(out_dir, from_chunk, total_chunks)
    bar = env.progress(total_chunks * steps)

    def on_event(e):
        env.check_interrupt()
        if e["stage"] == "st-diff":
            bar.update_absolute(e["chunk"] * steps + e["step"], total_chunks * steps, env.latent_preview(e.get("x0")))

    settings, record = fit_card(env, vram, settings, start, model, geometry_model, captioner)
    model = _st_model(model, vae, clip)
    pipe = WorldWarpPipeline(model, geometry_model, captioner, settings, vram=record)
    # resume off with a run in the folder is refused (the core says how to go on): nothing is deleted;
    # from_chunk k rolls the run back to its first k chunks and makes the rest with these settings
    result = pipe(start, cameras, frames, prompt=prompt, style=style, out_dir=out_dir,
                  resume=resume, overwrite=False, callback=on_event, from_chunk=from_chunk, advice=NODE_ADVICE)
    return result.frames, result.cameras


# ----------------------------------------------------------------------------- the wired loop
# Loop Start -> (the user's body of stage nodes) -> Loop End; Loop End appends the chunk and either
# has the body run again (node expansion, nodes/_v3.py) or returns the video. The bookkeeping is
# worldwarp_core.loop, the same functions the pipeline (CLI, Chunk Loop node) calls.
@writes_files
def loop_start(env, image, cameras, frames, chunk_frames, context_frames, seed, extend_mode, extrapolation,
               output_folder, resume, fps, from_chunk=0, vram="auto", profile=DEFAULT_PROFILE, memory="online",
               world_voxel=0.05, *, graph_signature=None):
    settings = PipelineSettings(chunk_frames=chunk_frames, context_frames=context_frames, seed=seed,
                                extend_mode=extend_mode, extrapolation=extrapolation, fps=fps, profile=profile,
                                memory=memory, world_voxel=world_voxel if memory == "world" else None)
    start = _start_image(image)
    check_choice(vram, "vram", VRAM_CHOICES)
    # the loop's state carries the pick (its settings); the body's stage nodes keep their own inputs
    settings, _ = fit_card(env, vram, settings, start)
    settings.chunk_starts(frames)  # checked before the folder is touched (the message names valid totals)
    WorldWarpPipeline(None, None, settings=settings)._check_inputs(start, cameras)
    out_dir = _run_folder(env, output_folder)
    # what the loop computes: these settings and (inside ComfyUI) the graph Loop End depends on
    info = {"loop": {"frames": frames, "chunk_frames": chunk_frames, "context_frames": context_frames, "seed": seed,
                     "extend_mode": extend_mode, "extrapolation": extrapolation}, "graph": graph_signature}
    if from_chunk:  # checked before the folder is touched
        if out_dir is None:
            raise ValueError(f"from_chunk {from_chunk}: a rollback needs output_folder (the folder of the run)")
        check_rollback(out_dir, from_chunk, len(settings.chunk_starts(frames)))
    # from_chunk k: the run rolled back to its first k chunks; the body makes the rest (an edited body too)
    state = open_run(start, cameras, frames, settings, out_dir, resume=resume, overwrite=False, run_info=info,
                     from_chunk=from_chunk, advice=NODE_ADVICE)
    state = replace(state, graph_signature=graph_signature)
    # a finished run resumed: its last chunk is planned again so the body runs once; Loop End finds
    # it in the folder and returns the run as it is
    return loop_next(env, replay_last(state) if state.done else state)


def loop_next(env, loop):
    """The outputs of Loop Start for ``loop``'s next chunk (the copies Loop End makes call this)."""
    plan = plan_chunk(loop)
    env.progress(loop.total_chunks).update_absolute(plan.index, loop.total_chunks)
    return (loop, plan.history_frames, plan.history_cameras, plan.cameras, plan.context_frames, plan.context,
            plan.index, plan.cache_seed, plan.sampler_seed)


def loop_status(loop) -> str:
    """'chunk k of n' for the Loop Start node."""
    k, C = loop.next_chunk, loop.settings.chunk_frames
    text = f"chunk {k + 1} of {loop.total_chunks}: frames {loop.starts[k]}-{loop.starts[k] + C - 1}"
    return text + (f" (resumed: {loop.resumed_from} chunks were in the run folder)" if loop.resumed_from else "")


@deterministic
def align_to_history(env, loop, geometry, alignment=_PS.geometry_alignment):
    """The history's depth brought to the scale of the cache it was generated from (first chunk, and
    ``alignment`` "official": as is)."""
    check_alignment(alignment)
    plan = plan_chunk(loop)
    if len(geometry.depth) != len(plan.history):
        raise ValueError(f"geometry has {len(geometry.depth)} frames but chunk {plan.index + 1}'s history has "
                         f"{len(plan.history)}; estimate the geometry of Loop Start's history frames")
    depth, _ = align_history_depth(loop, plan, geometry, geometry.depth, alignment=alignment)
    if loop.settings.memory == "world" and loop.settings.world_align:  # a revisit: back to the remembered scene
        depth, _ = align_to_world(loop, plan, depth, geometry.cameras)
    return (replace(geometry, depth=depth),)


@deterministic
def world_hints(env, loop, cameras, hints=None, valid=None):
    """The persistent world's hints at ``cameras`` (the Gaussians in their frusta), composited under
    the online cache's ``hints``/``valid`` when connected (valid online pixels kept, holes filled).
    A loop that keeps no world (Loop Start's memory 'online') passes the hints through."""
    if not isinstance(loop, LoopState):
        raise ValueError("loop must come from WorldWarp Loop Start's loop output")
    if not isinstance(cameras, Cameras):
        raise ValueError("cameras must be a WORLDWARP_CAMERAS path (Loop Start's cameras output)")
    V, H, W = len(cameras), cameras.height, cameras.width
    if (hints is None) != (valid is None):
        raise ValueError("connect both hints and valid (Render Warp Hints' outputs), or neither for the world's "
                         "hints alone")
    if hints is not None:
        if tuple(hints.shape) != (V, H, W, 3) or tuple(valid.shape) != (V, H, W):
            raise ValueError(f"hints {list(hints.shape)} and valid {list(valid.shape)} must be [{V}, {H}, {W}, 3] "
                             f"and [{V}, {H}, {W}]: the cameras' views; render them at these cameras")
        online = WarpResult(hints.float().cpu(), valid.cpu() > 0.5, torch.zeros(0))
    else:
        online = WarpResult(torch.zeros(V, H, W, 3), torch.zeros(V, H, W, dtype=torch.bool), torch.zeros(0))
    world = loop.world
    if world is None or world.gaussians is None:  # nothing remembered (memory 'online', or the first chunk)
        return online.images, online.masks.float(), torch.zeros(V, H, W)
    remembered, _ = remembered_hints(world, cameras.to(dtype=torch.float32), loop.settings.gs,
                                     callback=_view_progress(env, V))
    out, filled = composite_hints(online, remembered)
    return out.images, out.masks.float(), filled.float()


def chunk_saved(loop) -> bool:
    """Whether Loop End can go on without the body's outputs: the run folder already holds the chunk
    ``loop`` plans (a finished run resumed, a re-queue after an interrupt), so its body is not run."""
    if not isinstance(loop, LoopState) or loop.folder is None:
        return False
    return loop.done or loop.folder.finished_chunks() > loop.next_chunk


def _saved_cache(state):
    """The run's last 3DGS cache read back from its folder (a finished run's outputs without its body)."""
    from worldwarp_core.gscache import GeometryCache

    last = state.folder.chunk_dir(state.next_chunk - 1)
    for p in (os.path.join(last, "scene.ply"), state.folder.path("scene.ply")):
        if os.path.isfile(p):
            return GeometryCache("3dgs", GSConfig(), gaussians=load_ply(p))
    return GeometryCache("none", GSConfig())


@writes_files
@deterministic
def loop_end(env, loop, frames, cache, *, graph_signature=None):
    """Chunk appended and saved: ``(state, None)`` while chunks remain, else ``(state, outputs)`` with
    the whole video, its cameras, the last cache, its splat and a core VIDEO.

    ``graph_signature`` (inside ComfyUI: the graph this Loop End depends on) must be the one the run
    folder was made by; a chunk the folder already holds (this run went further before) is read
    back, not made again."""
    plan = plan_chunk(loop)
    if (graph_signature is not None and loop.folder is not None and loop.graph_signature is not None
            and any(sig not in loop.graph_signature for sig in graph_signature)):
        raise ValueError(f"{loop.folder.root} holds a run made before the graph was edited; an edit reaches a new "
                         "run: set another output_folder on WorldWarp Loop Start, or set its from_chunk to the "
                         "chunks to keep (a changed from_chunk runs Loop Start again) to make the rest with the edit")
    state = catch_up(loop)
    if state.next_chunk <= plan.index:
        if frames is None or cache is None:
            raise ValueError(f"WorldWarp Loop End got no {'frames' if frames is None else 'cache'} for chunk "
                             f"{plan.index + 1}; connect the body's frames and cache to it")
        hints = render_hints_checked(env, cache, plan.cameras)  # the next chunk aligns its depth to this
        hint_depth = torch.stack([hints.depths.float().cpu(), hints.masks.float().cpu()])
        record = chunk_record(plan, loop.settings.chunk_frames, None, None, hints.masks, None)
        state = end_chunk(loop, plan, frames, hint_depth, record, gaussians=cache.gaussians)
    elif state.done and (cache is None or plan.index < state.total_chunks - 1):
        cache = _saved_cache(state)  # the run's last cache, as the folder holds it
    if not state.done:
        return state, None
    finish_run(state, cache.gaussians)
    splat = env.make_splat(to_comfy_splat(cache.gaussians)) if cache.gaussians is not None else None
    video = state.video
    return state, (video, state.path[:video.shape[0]], cache, splat, env.make_video(video, state.settings.fps))


# ----------------------------------------------------------------------------- saving
class Saved(tuple):
    """A save node's outputs, plus the line the node shows in the UI (which files, which folder)."""

    ui_text: str

    def __new__(cls, outputs: tuple, ui_text: str):
        obj = super().__new__(cls, outputs)
        obj.ui_text = ui_text
        return obj


@writes_files
def save_cameras(env, cameras, filename_prefix):
    """RealEstate10K .txt + JSON named like ComfyUI's saves (``cameras_00001_.txt``: a new counter per
    run, nothing overwritten); outputs the .txt's absolute path (Camera Trajectory's camera_file reads it)."""
    folder, stem = env.save_target(filename_prefix)
    base = os.path.join(folder, stem)
    cameras.to_re10k(base + ".txt")
    cameras.to_json(base + ".json")
    return Saved((base + ".txt",), f"{len(cameras)} cameras: {stem}.txt + .json in {folder}")


@writes_files
def save_splat(env, cache, filename_prefix):
    """The 3DGS cache as a standard .ply named like ComfyUI's saves; outputs its path relative to the
    output folder, which core Preview 3D reads as model_file to show the scene."""
    if cache.gaussians is None:
        raise ValueError(f"a '{cache.mode}' cache has no Gaussians to save; build it with mode '3dgs'")
    folder, stem = env.save_target(filename_prefix)
    path = save_ply(cache.gaussians, os.path.join(folder, stem + ".ply"))
    relative = os.path.relpath(path, env.output_dir()).replace(os.sep, "/")
    return Saved((relative,), f"{len(cache.gaussians):,} Gaussians: {stem}.ply in {folder}")
