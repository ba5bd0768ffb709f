"""The autoregressive WorldWarp generator (paper Fig. 3, §4.2, supp. §7), one chunk at a time.

Each chunk, in the order of the paper's figure:

    1. geometry   -- depth of the history frames (chunk 1: the start image(s))
    2. align      -- depth to the previous cache's depth, poses to the requested path
    3. cache      -- build and optimise the online 3DGS cache on the history
    4. hints      -- render warped hints + validity masks at the chunk's cameras
    5. caption    -- describe the history (optional), append the user's style
    6. encode     -- prompt embeddings; hints (with the history overlap as context) to latents
    7. ST-Diff    -- spatio-temporal sampling: context fixed, warped tokens from σ(τ), holes from 1
    8. decode     -- latents to frames
    9. append     -- the new frames (not the overlap) join the video
   10. record     -- cameras used, timings; the chunk is saved atomically (resume point)

Chunking: the first chunk has ``chunk_frames`` frames starting with the start image (its
context); each later chunk re-uses the last ``context_frames`` frames as context and adds
``chunk_frames - context_frames`` new ones. Both counts must be ``4k+1`` (the Wan VAE).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Literal, get_args

import torch
from torch import Tensor

from .cameras import Cameras
from .caption import (
    CAPTION_STYLES,
    DEFAULT_NEGATIVE,
    Captioner,
    CaptionRequest,
    CaptionStyle,
    FixedCaptioner,
    check_caption_style,
    compose_prompt,
    describe_frames,
)
from .geometry import (
    DEFAULT_GEOMETRY_BATCH,
    GEOMETRY_ALIGNMENTS,
    GEOMETRY_INPUTS,
    HISTORY_INTRINSICS,
    POSE_SOURCES,
    GeometryAlignment,
    GeometryEstimator,
    GeometryResult,
    PoseSource,
    align_poses,
    resolve_geometry_input,
    resolve_pose_source,
)
from .geometry.base import estimate_checked
from .gscache import CacheMode, GSConfig, build_cache
from .gscache.cache import render_hints_in_steps
from .gscache.validity import OFFICIAL_DEPTH_TOLERANCE
from .gscache.world import MEMORY_MODES, WORLD_KEEPS, composite_hints, remembered_hints
from .inputs import check_choice, check_float, check_image, check_int, check_seed
from .interrupt import call_checked
from .loop import (
    CACHE_FRAMES,
    DEPTH_FITS,
    CacheFrames,
    LoopState,
    align_history_depth,
    align_to_world,
    cache_views,
    caption_frames,
    chunk_record,
    end_chunk,
    finish_run,
    open_run,
    plan_chunk,
    retrieve_world_views,
    run_provenance,
)
from .outputs import RunFolder, atomic_write_json
from .profiles import (
    DEFAULT_PROFILE,
    PROFILE_NAMES,
    get_profile,
    plain,
    profile_keys,
    profile_record,
    setting_value,
    split_settings,
)
from .sampler import CFG_BATCHES, CfgBatch, SamplerConfig, st_diff_sample
from .schedule import (
    MASK_RULES,
    OFFICIAL_SHIFT,
    MaskRule,
    ScheduleVariant,
    context_latent_count,
    latent_frame_count,
    sampler_mask,
    schedule_picture,
)
from .trajectory import EXTRAPOLATION_METHODS, MAX_FRAMES, ExtrapolationMethod
from .warp import WarpResult

ExtendMode = Literal["extrapolate", "loop", "pingpong", "slowdown"]
Event = dict
EventCallback = Callable[[Event], None]


@dataclass(frozen=True)
class PipelineSettings:
    chunk_frames: int = 49  # paper: 49 (official code: 81)
    context_frames: int = 5  # paper: 5 (official code: 1)
    strength: float = 0.8  # τ
    steps: int = 50
    guidance_scale: float = 5.0
    negative_prompt: str = DEFAULT_NEGATIVE
    variant: ScheduleVariant = "spatio-temporal"
    training_free: bool = False
    mask_rule: MaskRule = "official"  # the official checkpoint's rule; "strict": min-pool per token
    shift: float | None = OFFICIAL_SHIFT  # flow shift (official: 5); None: the model's scheduler config
    coverage: float = 1.0  # strict rule only
    cache_mode: CacheMode = "3dgs"
    # captions: "pack" (short instruction, first/last frame, style appended) or "official" (the official
    # demo's request with the previous chunk as a 2 fps video, used verbatim); tokens None: the style's own
    caption_style: CaptionStyle = "pack"
    caption_max_tokens: int | None = None
    gs: GSConfig = field(default_factory=GSConfig)
    history_stride: int = 1  # use every n-th history frame for geometry and the cache
    # the cache trains only on the history's context frames (the official code's; measured better than
    # the whole previous chunk, docs/CACHE.md) or on every history frame
    cache_frames: CacheFrames = "context"
    pose_source: PoseSource | Literal["auto"] = "auto"  # auto: estimated when the backend estimates poses
    history_intrinsics: str = "requested"  # estimated history cameras: the path's intrinsics, or the backend's
    # how the history's geometry enters the path's world: "sim3" (estimated cameras Sim(3)-fitted to the path,
    # depth fitted to the previous cache) or "official" (re-anchored rigidly at the last history frame's
    # requested pose, the geometry model's raw depth scale: the official code's)
    geometry_alignment: GeometryAlignment = "sim3"
    # the geometry model's input: "model" (its own preprocessing) or "square-pad" (the official TTT3R input,
    # a zero-padded square, where the backend offers it)
    geometry_input: str = "model"
    # the history's depth fitted to the previous cache with one scale for the whole history ("chunk") or one
    # per frame ("frame": a monocular model's per-frame scale error does not pile up chunk after chunk)
    depth_fit: str = "chunk"
    extend_mode: ExtendMode = "extrapolate"
    extrapolation: ExtrapolationMethod = "auto"  # how extend_mode "extrapolate" continues the path
    extrapolation_window: int | None = None  # frames; None = the method's own (auto: chosen)
    world_voxel: float | None = None  # persistent world merge (None: off)
    # hints from "online" (the latest history's cache: the paper) or also from the persistent "world"
    # (what earlier chunks saw, where the online cache has a hole; needs world_voxel)
    memory: str = "online"
    # with memory "world": on a revisit, the history's depth is scaled to the remembered scene (drift control;
    # off by default: measured neutral to mixed, docs/BENCHMARKS.md)
    world_align: bool = False
    # with memory "world": this many past frames (older than the history) whose cameras best see the chunk's
    # join the online cache's training views, with the world's depth at their cameras (0: off)
    world_views: int = 0
    # which Gaussian a world voxel keeps when a later chunk sees it again: "newest" (the latest view) or
    # "oldest" (the first: the remembered scene stays the run's first, which drift control aligns to)
    world_keep: str = "newest"
    seed: int = 0
    fps: int = 16
    offload_helpers: bool = True  # unload the geometry model / VLM after each use
    deterministic: bool = True  # torch deterministic algorithms: a resumed run equals an uninterrupted one
    # memory (none of them changes what is computed beyond float rounding, except vae_tiling's seams):
    geometry_batch: int = DEFAULT_GEOMETRY_BATCH  # history frames per geometry forward (per-frame models)
    cfg_batch: CfgBatch = "batched"  # CFG branches in one forward of batch 2, or "sequential": two of batch 1
    vae_tiling: bool = False  # VAE encode/decode on overlapping spatial tiles (less memory, blended seams)
    # the named profile these settings started from (profiles.py; a label for the manifest, which
    # records what differs from it: building settings from a profile is profiles.settings_for)
    profile: str = "pack"

    def __post_init__(self) -> None:
        check_settings(self)
        latent_frame_count(self.chunk_frames)  # 4k+1 check with its message
        if self.extrapolation not in EXTRAPOLATION_METHODS:
            raise ValueError(f"unknown extrapolation method {self.extrapolation!r}; "
                             f"use one of {', '.join(EXTRAPOLATION_METHODS)}")
        if self.context_frames < 1 or (self.context_frames - 1) % 4 or self.context_frames >= self.chunk_frames:
            raise ValueError(f"context frames must be 4j+1 and fewer than the chunk's {self.chunk_frames} frames "
                             f"(e.g. 1 or 5), got {self.context_frames}")
        if self.history_stride < 1:
            raise ValueError(f"history_stride must be >= 1, got {self.history_stride}")
        if self.mask_rule not in MASK_RULES:
            raise ValueError(f"unknown mask rule {self.mask_rule!r}; choose one of {MASK_RULES}")
        if self.shift is not None and not self.shift > 0:
            raise ValueError(f"shift must be positive (official: 5), got {self.shift}")
        if self.pose_source not in POSE_SOURCES:
            raise ValueError(f"pose_source must be one of {POSE_SOURCES}, got {self.pose_source!r}")

    def chunk_starts(self, total: int, start_frames: int = 1) -> list[int]:
        """First frame index of every chunk for a ``total``-frame video (errors say the nearest valid totals)."""
        C, ctx = self.chunk_frames, self.context_frames
        total = check_int(total, "frames", 1, MAX_FRAMES)
        if start_frames != 1:
            raise ValueError(f"{start_frames} start frames: this version starts from one image")
        step = C - ctx
        if total < C or (total - C) % step:
            lo = C + max(0, (total - C) // step) * step
            near = f"{lo} or {lo + step}" if lo + step <= MAX_FRAMES and total > C else f"{lo}"
            if total < C:
                near = f"{C}" + (f" or {C + step}" if C + step <= MAX_FRAMES else "")
            raise ValueError(f"{total} frames cannot be chunked into {C}-frame chunks with {ctx} context frames: "
                             f"totals are {C} + k*{step}; use {near}")
        return [0] + [C + i * step - ctx for i in range((total - C) // step)]


MAX_WORLD_VIEWS = 16  # past frames retrieved per chunk (each is one more view the cache trains on)


def settings_for(profile: str, **given) -> PipelineSettings:
    """The settings of a named profile (``profiles.py``) with the ``given`` fields on top (a given
    ``gs`` replaces the profile's ``GSConfig`` whole)."""
    top, gs_values = split_settings(get_profile(profile).settings)
    gs = given.pop("gs", None) or replace(GSConfig(), **gs_values)
    return PipelineSettings(**{**top, **given, "gs": gs, "profile": profile})


def profile_widget_values(profile: str, widgets: dict[str, str]) -> dict:
    """The values a profile gives a node's widgets (``widgets``: widget name -> settings key, e.g.
    ``"cfg": "guidance_scale"``, ``"gs_iterations": "gs.iterations"``). Only keys some profile sets
    are returned, so switching profiles always sets the same widgets."""
    p, base, keys = get_profile(profile), settings_for(DEFAULT_PROFILE), profile_keys()
    return {w: plain(p.settings.get(k, setting_value(base, k))) for w, k in widgets.items() if k in keys}


def check_settings(s: PipelineSettings) -> None:
    """Every setting a finite number in its range or one of its choices (one line naming it)."""
    check_int(s.chunk_frames, "chunk_frames", 5)
    check_int(s.context_frames, "context_frames", 1)
    check_float(s.strength, "strength (tau)", 0.0, 1.0)
    check_int(s.steps, "steps", 1)
    check_float(s.guidance_scale, "guidance_scale (cfg)", 1.0, example=5.0)
    check_choice(s.variant, "schedule variant", get_args(ScheduleVariant))
    check_float(s.coverage, "coverage", 0.0, 1.0, lo_open=True)
    check_choice(s.cache_mode, "cache mode", get_args(CacheMode))
    check_choice(s.caption_style, "caption_style", CAPTION_STYLES)
    if s.caption_max_tokens is not None:
        check_int(s.caption_max_tokens, "caption_max_tokens", 1)
    check_int(s.history_stride, "history_stride", 1)
    check_choice(s.cache_frames, "cache_frames", CACHE_FRAMES)
    check_choice(s.pose_source, "pose_source", POSE_SOURCES)
    check_choice(s.history_intrinsics, "history_intrinsics", HISTORY_INTRINSICS)
    check_choice(s.geometry_alignment, "geometry_alignment", GEOMETRY_ALIGNMENTS)
    check_choice(s.geometry_input, "geometry_input", GEOMETRY_INPUTS)
    check_choice(s.depth_fit, "depth_fit", DEPTH_FITS)
    check_choice(s.extend_mode, "extend mode", get_args(ExtendMode))
    if s.extrapolation_window is not None:
        check_int(s.extrapolation_window, "extrapolation_window", 1)
    check_choice(s.memory, "memory", MEMORY_MODES)
    if not isinstance(s.world_align, bool):
        raise ValueError(f"world_align must be True or False, got {s.world_align!r}")
    check_int(s.world_views, "world_views", 0, MAX_WORLD_VIEWS)
    check_choice(s.world_keep, "world_keep", WORLD_KEEPS)
    if s.world_views and s.memory != "world":
        raise ValueError(f"world_views {s.world_views} retrieves past frames from the persistent world: set memory "
                         "'world' (and world_voxel) too, or world_views 0")
    if s.memory == "world" and s.world_voxel is None:
        raise ValueError("memory 'world' renders hints from the persistent world: set world_voxel too (e.g. 0.05, "
                         "in scene units; CLI --world-voxel), or use memory 'online'")
    if s.world_voxel is not None:  # 0 would silently switch the world merge off
        check_float(s.world_voxel, "world_voxel", 0.0, lo_open=True, example=0.05)
    check_seed(s.seed, "seed")
    check_int(s.fps, "fps", 1)
    check_int(s.geometry_batch, "geometry_batch", 1)
    check_choice(s.cfg_batch, "cfg_batch", CFG_BATCHES)
    check_choice(s.profile, "profile", PROFILE_NAMES)
    if not isinstance(s.vae_tiling, bool):
        raise ValueError(f"vae_tiling must be true or false, got {s.vae_tiling!r}")


@dataclass
class RunResult:
    frames: Tensor  # [N, H, W, 3]
    cameras: Cameras  # the N cameras used
    out_dir: str | None
    chunks: list[dict]


def _stage(timings: dict, name: str, t0: float) -> float:
    now = time.perf_counter()
    timings[name] = timings.get(name, 0.0) + (now - t0)
    return now


class WorldWarpPipeline:
    """The chunk loop; components are passed in (nothing global)."""

    def __init__(self, model, geometry: GeometryEstimator | None, captioner: Captioner | None = None,
                 settings: PipelineSettings = PipelineSettings(), vram: dict | None = None) -> None:
        self.model = model
        self.geometry = geometry
        self.captioner = captioner or FixedCaptioner()
        self.settings = settings
        self.vram = vram  # what the vram choice picked and why (plan.VramChoice.record()), for the manifest

    # ------------------------------------------------------------------ validation
    def _check_inputs(self, image: Tensor, cameras: Cameras) -> None:
        check_image(image, "start image")  # shape, 0..1, finite, size limits
        H, W = image.shape[:2]
        if not isinstance(cameras, Cameras):
            raise ValueError(f"cameras must be a Cameras path, got {type(cameras).__name__}")
        if (cameras.width, cameras.height) != (W, H):
            raise ValueError(f"cameras are for {cameras.width}x{cameras.height} images but the start image is "
                             f"{W}x{H}; use Cameras.resize")

    # ------------------------------------------------------------------ the loop
    def __call__(
        self,
        image: Tensor,
        cameras: Cameras,
        frames: int,
        prompt: str = "",
        style: str = "",
        out_dir: str | None = None,
        resume: bool = False,
        overwrite: bool = False,
        start_depth: Tensor | None = None,
        callback: EventCallback | None = None,
        from_chunk: int = 0,
        advice=None,
    ) -> RunResult:
        """Generate ``frames`` frames from ``image [H, W, 3]`` along ``cameras`` (extended past its end).

        ``from_chunk`` k > 0: roll the run in ``out_dir`` back to its first k chunks (kept byte for
        byte) and make the rest with these settings (``loop.open_run``); the manifest then says
        which chunks came from which settings.

        ``start_depth [H, W]`` replaces the geometry estimate of the start image when known.
        ``callback(event)`` receives progress events; raising from it interrupts (no finished
        chunk is lost). ``advice`` words the run folder's refusals (``outputs.NODE_ADVICE`` for nodes).
        """
        s = self.settings
        self._check_inputs(image, cameras)
        # everything that would stop the run later is checked before open_run (overwrite deletes there)
        check_caption_style(self.captioner, s.caption_style)
        if isinstance(self.captioner, FixedCaptioner):
            compose_prompt(prompt, style)
        if self.geometry is None and (start_depth is None or s.chunk_starts(frames)[1:]):
            raise ValueError("a geometry estimator is needed (the start image's depth only serves the first chunk)")
        emit = callback or (lambda e: None)
        run_info = {"settings": asdict(s), "prompt": prompt, "style": style, "frames": frames}
        if start_depth is not None:
            run_info["start_depth"] = start_depth.float()
        state = open_run(image, cameras, frames, s, out_dir, resume, overwrite, run_info=run_info,
                         components={"model": self.model, "geometry": self.geometry, "captioner": self.captioner},
                         from_chunk=from_chunk, advice=advice)
        if state.resumed_from:
            emit({"stage": "rollback" if from_chunk else "resume", "chunk": state.resumed_from,
                  "frames": int(state.video.shape[0])})
        embeds: dict[str, Tensor] = {}
        was_deterministic = torch.are_deterministic_algorithms_enabled()
        # CPU scatter/index backward passes accumulate in thread order unless asked not to; resume
        # promises identical frames, so the whole loop runs with deterministic algorithms.
        torch.use_deterministic_algorithms(s.deterministic or was_deterministic, warn_only=True)
        try:
            cache = None
            while not state.done:
                cache, state = self._chunk(state, prompt, style, start_depth, embeds, emit)
            if state.folder is not None:
                written = finish_run(state, cache.gaussians if cache is not None else None)
                self._manifest(state.folder, list(state.chunks), frames, written)
        finally:
            torch.use_deterministic_algorithms(was_deterministic)
            if s.offload_helpers:
                for helper in (self.geometry, self.captioner):
                    if helper is not None:
                        helper.unload()
        folder = state.folder
        return RunResult(state.video, state.path[:state.video.shape[0]], folder.root if folder else None,
                         list(state.chunks))

    def _chunk(self, state: LoopState, prompt, style, start_depth, embeds, emit):
        s = self.settings
        plan = plan_chunk(state)
        k, C, ctx = plan.index, s.chunk_frames, plan.context
        cams = plan.cameras
        timings: dict[str, float] = {}
        emit({"stage": "chunk", "chunk": k, "first_frame": plan.start})
        t = time.perf_counter()

        def starting(name: str) -> None:  # a line for the stages without their own step events
            emit({"stage": "stage", "chunk": k, "name": name})

        def check() -> None:  # inside the geometry model's and the VAE's forward: the callback may interrupt
            emit({"stage": "check", "chunk": k})

        # 1. geometry on the history: chunk 1 = the start image; later = the previous chunk's frames
        hist_frames, hist_cams = plan.history_frames, plan.history_cameras
        residual, world_scale = None, None
        if k == 0 and start_depth is not None:
            depth = start_depth.float()[None]
            geo_cams = hist_cams
        else:
            if self.geometry is None:
                raise ValueError("a geometry estimator is needed (or give the start image's depth)")
            starting("geometry")
            # per-frame models see geometry_batch frames at a time (memory follows the batch, not the history)
            geo: GeometryResult = estimate_checked(self.geometry, hist_frames, hist_cams.to(dtype=torch.float32),
                                                   check, s.geometry_batch, s.geometry_input)
            t = _stage(timings, "geometry", t)
            # 2. align: poses to the requested path, depth to the cache the history was generated from
            # (geometry_alignment "official": re-anchored at the last history frame, depth as estimated)
            geo_cams, depth, _ = align_poses(geo, hist_cams, resolve_pose_source(s.pose_source, self.geometry),
                                             s.history_intrinsics, s.geometry_alignment)
            depth, residual = align_history_depth(state, plan, geo, depth)
            if s.memory == "world" and s.world_align:  # drift control: back to the remembered scene on a revisit
                depth, world_scale = align_to_world(state, plan, depth, geo_cams)
        if s.offload_helpers and self.geometry is not None:
            self.geometry.unload()
        t = _stage(timings, "align", t)

        # 3. the online 3DGS cache, optimised on the history (or only its context frames); with world_views,
        # also on the past frames that best see the chunk's cameras (their depth: the world's there)
        gs = replace(s.gs, seed=plan.cache_seed)
        sel = cache_views(plan, s.cache_frames)
        views, view_depth, view_cams = hist_frames[sel], depth[sel], geo_cams[sel]
        world_hints, recalled, retrieved = None, 0, None
        if s.memory == "world" and state.world is not None and state.world.gaussians is not None:
            # what earlier chunks saw at the chunk's cameras (fills the online cache's holes in step 4)
            world_hints, recalled = remembered_hints(state.world, cams.to(dtype=torch.float32), gs)
            retrieved = retrieve_world_views(state, plan, world_hints, s.world_views, plan.history_cameras[sel], gs)
            if retrieved is not None:
                views = torch.cat([views, retrieved.frames.to(views)])
                view_depth = torch.cat([view_depth, retrieved.depth.to(view_depth)])
                view_cams = Cameras.cat([view_cams, retrieved.cameras.to(view_cams.device, view_cams.Ks.dtype)])
            t = _stage(timings, "warp", t)
        cache = build_cache(views, view_depth, view_cams, s.cache_mode, gs,
                            callback=lambda i, n, loss: emit({"stage": "3dgs", "chunk": k, "step": i, "total": n,
                                                              "loss": loss}))
        t = _stage(timings, "3dgs", t)

        # 4. hints and validity masks at the chunk's cameras; the context frames are the history
        # the official rule also needs the rendered depth to agree with a history frame's (10 %)
        hints = render_hints_in_steps(cache, cams.to(dtype=torch.float32),
                                      depth_tolerance=OFFICIAL_DEPTH_TOLERANCE if s.mask_rule == "official" else None,
                                      callback=lambda i, n: emit({"stage": "warp", "chunk": k, "step": i, "total": n}))
        # the hints and the Gaussians wait on the CPU: the accelerator is the transformer's and the VAE's now
        hints = WarpResult(hints.images.cpu(), hints.masks.cpu(), hints.depths.cpu())
        online, remembered = hints, None
        if world_hints is not None:  # the holes of the online cache, filled from what earlier chunks saw there
            hints, remembered = composite_hints(hints, world_hints)
        if cache.gaussians is not None:
            cache = replace(cache, gaussians=cache.gaussians.to("cpu"))
        context = plan.context_frames
        chunk_video = torch.cat([context, hints.images[ctx:].float()])
        pixel_mask = torch.cat([torch.ones(ctx, *context.shape[1:3]), hints.masks[ctx:].float()])
        t = _stage(timings, "warp", t)

        # 5. caption the history (optional): pack -- the style appended; official -- the style inside the
        # request (the official demo's one text box: the prompt when no style is given), the answer verbatim
        caption = ""
        if not isinstance(self.captioner, FixedCaptioner):
            starting("caption")
            request = CaptionRequest(style=s.caption_style, max_tokens=s.caption_max_tokens, fps=s.fps,
                                     style_text=style if style.strip() else prompt, still_frames=C)
            caption = describe_frames(self.captioner, caption_frames(state, plan, s.caption_style), request)
        if s.offload_helpers:
            self.captioner.unload()
        text = caption if s.caption_style == "official" and caption.strip() else compose_prompt(caption or prompt,
                                                                                                  style)
        t = _stage(timings, "vlm", t)

        # 6-8. the chunk's frames from the hints: encode, ST-Diff sampling, decode
        decoded, sigma_start, schedule = self._generate(plan, text, chunk_video, pixel_mask, embeds, emit, check,
                                                        timings)
        t = time.perf_counter()

        # 9-10. append the new frames (the overlap is already in the video); record and save the chunk
        info = chunk_record(plan, C, text, residual, hints.masks, sigma_start, timings)
        if s.memory == "world":  # the share of the generated frames' pixels only the world had
            info["remembered_fraction"] = 0.0 if remembered is None else float(remembered[ctx:].float().mean())
            info["remembered_gaussians"] = recalled  # the part of the world in the chunk's frusta (rendered)
            info["world_scale"] = world_scale  # the revisit's depth correction (None: no revisit seen)
            if s.world_views:  # the past frames the cache also trained on (video indices)
                info["world_views"] = [] if retrieved is None else retrieved.index.tolist()
        if state.world is not None:  # the world's size before this chunk joins it
            info["world_gaussians"] = len(state.world.gaussians) if state.world.gaussians is not None else 0
        # [2, C, H, W]: depth, validity of the online cache (the next chunk aligns its depth to it; the wired
        # loop's Loop End renders the same, so both loops make the same frames with world memory too)
        hint_depth = torch.stack([online.depths.float().cpu(), online.masks.float().cpu()])
        state = end_chunk(state, plan, decoded, hint_depth, info, chunk_video, pixel_mask, schedule, cache.gaussians)
        _stage(timings, "save", t)
        emit({"stage": "chunk_done", "chunk": k, "frames": int(state.video.shape[0])})
        return cache, state

    def _generate(self, plan, text: str, chunk_video: Tensor, pixel_mask: Tensor, embeds: dict, emit, check,
                  timings: dict) -> tuple[Tensor, float | None, Tensor | None]:
        """Steps 6-8 of a chunk: the frames ``[C, H, W, 3]`` made from the hints ``chunk_video`` (the
        context frames first) and their validity ``pixel_mask``; returns ``(frames, sigma_start,
        schedule picture)``. The one place the video model is called (``benchmarks/bench_revisit.py``
        puts a model-free filler here)."""
        s, k = self.settings, plan.index
        ctx = plan.context
        t = time.perf_counter()
        # 6. encode prompt and hints
        emit({"stage": "stage", "chunk": k, "name": "encode"})
        for p in (text, s.negative_prompt):
            if p not in embeds:
                embeds[p] = self.model.encode_prompt([p])
        tiling = {"tiled": True} if s.vae_tiling else {}  # models without a tiled mode are called as before
        z_warp = call_checked(self.model.encode_video, chunk_video, check=check, **tiling)
        t = _stage(timings, "encode", t)

        # 7. ST-Diff sampling with per-token noise levels
        cfg = SamplerConfig(steps=s.steps, strength=s.strength, guidance_scale=s.guidance_scale, shift=s.shift,
                            variant=s.variant, training_free=s.training_free, coverage=s.coverage,
                            mask_rule=s.mask_rule, seed=plan.sampler_seed, cfg_batch=s.cfg_batch)
        mask = sampler_mask(pixel_mask, s.mask_rule, s.coverage)
        result = st_diff_sample(self.model.transformer, z_warp, mask, context_latent_count(ctx), embeds[text],
                                embeds[s.negative_prompt], cfg,
                                callback=lambda i, n, x0: emit({"stage": "st-diff", "chunk": k, "step": i,
                                                                 "total": n, "x0": x0}),
                                scheduler_config=getattr(self.model, "scheduler_config", None),
                                denoise_fn=self._denoiser(embeds[text], embeds[s.negative_prompt]))
        t = _stage(timings, "st-diff", t)

        # 8. decode
        emit({"stage": "stage", "chunk": k, "name": "decode"})
        decoded = call_checked(self.model.decode_video, result.latents, check=check, **tiling)
        _stage(timings, "decode", t)
        return decoded, result.sigma_start, schedule_picture(
            result.sigma_map, result.sigmas, title=f"chunk {k}: {s.variant} schedule, tau = {s.strength:g}")

    def _denoiser(self, positive: Tensor, negative: Tensor):
        """The model's own transformer call when it has one (core ComfyUI models); else the sampler's default."""
        make = getattr(self.model, "denoiser", None)
        if make is None:
            return None
        extra = {} if self.settings.cfg_batch == "batched" else {"cfg_batch": self.settings.cfg_batch}
        return make(positive, negative, self.settings.guidance_scale, **extra)

    def _profile(self) -> dict:
        """What the settings resolved to: the mask rule, the flow shift used and the history poses."""
        s = self.settings
        shift = s.shift
        if shift is None:
            config = getattr(self.model, "scheduler_config", None) or {}
            shift = float(config.get("shift", config.get("flow_shift", 3.0)))
        return {"mask_rule": s.mask_rule, "shift": shift, "pose_source": s.pose_source,
                "pose_source_used": resolve_pose_source(s.pose_source, self.geometry),
                "history_intrinsics": s.history_intrinsics, "geometry_alignment": s.geometry_alignment,
                "geometry_input": s.geometry_input,
                "geometry_input_used": resolve_geometry_input(s.geometry_input, self.geometry),
                **profile_record(s)}

    def _memory(self) -> dict:
        """The memory settings and what they meant for these models (the manifest's ``memory``)."""
        s = self.settings
        dtype = getattr(self.geometry, "dtype", None)
        return {"geometry_batch": s.geometry_batch,
                # False: a multi-view/recurrent estimator saw the whole history in one call
                "geometry_batched": bool(getattr(self.geometry, "per_frame", False)),
                "geometry_dtype": str(dtype).replace("torch.", "") if isinstance(dtype, torch.dtype) else None,
                "cfg_batch": s.cfg_batch, "vae_tiling": s.vae_tiling,
                "offload": getattr(self.model, "offload", None)}

    def _manifest(self, folder: RunFolder, chunks: list[dict], frames: int, written: list[str]) -> None:
        with open(folder.path("run.json"), encoding="utf-8") as f:
            inputs = json.load(f).get("inputs", {})
        files = {}
        for name, p in (getattr(self.model, "files", {}) or {}).items():
            entry = {"path": p}
            if isinstance(p, str) and os.path.exists(p):
                entry["identity"] = inputs.get(f"model.file.{name}")
            files[name] = entry
        stages = ["vlm", "geometry", "align", "3dgs", "warp", "encode", "st-diff", "decode", "save"]
        totals = {st: sum(c["timings_s"].get(st, 0.0) for c in chunks) for st in stages}
        outputs = {"frames": "frames/", "cameras": ["cameras.txt", "cameras.json"], "chunks": "chunks/",
                   "video": "video.mp4", "scene": "scene.ply" if "scene.ply" in written else None,
                   "world": "world.ply" if "world.ply" in written else None}
        atomic_write_json(folder.path("manifest.json"), {
            "settings": asdict(self.settings), "frames": frames, "seed": self.settings.seed,
            "model_files": files, "model_file_identity": IDENTITY_NOTE, "inputs": inputs,
            "geometry": getattr(self.geometry, "name", None),
            "captioner": getattr(self.captioner, "name", None), "chunks": len(chunks),
            "inference": self._profile(), "memory": self._memory(), "vram": self.vram,
            # which chunks came from which settings (a rollback, from_chunk, mixes runs)
            "chunk_settings": run_provenance(folder, chunks),
            "timings_per_chunk_s": [c["timings_s"] for c in chunks], "timings_total_s": totals,
            "outputs": outputs, "byte_stable": BYTE_STABLE, "same_frames": SAME_FRAMES,
            "not_byte_stable": NOT_BYTE_STABLE,
        })


IDENTITY_NOTE = ("size + sha256 of the first and last MiB and 16 evenly spaced 64 KiB blocks of each file "
                 "(a folder: of each file in it); weights: sha256 of 256 evenly spaced values of every tensor")
# Given the same inputs (run.json's) on the same software, these are the same bytes whether the run
# was uninterrupted or resumed any number of times (the fault-injection tests hold to this).
# video.mp4 is encoded again from the same frames, so it shows the same pictures; its bytes are
# x264's, which on some machines differ between two encodes of the same frames in one process.
BYTE_STABLE = ["frames/", "scene.ply", "world.ply", "cameras.txt", "cameras.json",
               "chunks/*/hints/", "chunks/*/masks/", "chunks/*/schedule.png", "chunks/*/hint_depth.npy"]
SAME_FRAMES = ["video.mp4 (encoded again from frames/)"]
NOT_BYTE_STABLE = ["manifest.json (timings)", "chunks/*/chunk.json (timings)", "run.json (written per call)"]
