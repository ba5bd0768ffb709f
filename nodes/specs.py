"""The WorldWarp node list as data: ids, names, categories, inputs with tooltips, outputs.

``nodes/__init__.py`` builds ComfyUI V3 nodes from these specs; tests check them against the
``ops`` functions without ComfyUI. A ``node_id`` never changes once shipped (workflows use it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from worldwarp_core.caption import CAPTION_STYLES, DEFAULT_NEGATIVE, list_captioners
from worldwarp_core.geometry import (
    GEOMETRY_ALIGNMENTS,
    GEOMETRY_DTYPES,
    GEOMETRY_INPUTS,
    HISTORY_INTRINSICS,
    POSE_SOURCES,
    list_estimators,
)
from worldwarp_core.gscache import CACHE_MODES, DEPTH_LOSSES, HINT_COLOURS, INIT_MODES, POSITION_LR_SCALINGS, GSConfig
from worldwarp_core.gscache.world import MEMORY_MODES
from worldwarp_core.loop import CACHE_FRAMES
from worldwarp_core.official_paths import list_official_presets
from worldwarp_core.pipeline import PipelineSettings
from worldwarp_core.plan import VRAM_CHOICES
from worldwarp_core.profiles import DEFAULT_PROFILE, PROFILE_NAMES
from worldwarp_core.sampler import CFG_BATCHES
from worldwarp_core.schedule import MASK_RULES, SCHEDULE_VARIANTS
from worldwarp_core.trajectory import EXTEND_MODES, EXTRAPOLATION_METHODS, MAX_FRAMES, list_presets
from worldwarp_core.video_path import VIDEO_GEOMETRY_INPUTS

from . import director, ops
from .model_kinds import folder_kinds

# custom socket types (values are worldwarp_core dataclasses)
MODEL, GEOMODEL, CAPTIONER = "WORLDWARP_MODEL", "WORLDWARP_GEOMETRY_MODEL", "WORLDWARP_CAPTIONER"
CAMERAS, GEOMETRY, CACHE = "WORLDWARP_CAMERAS", "WORLDWARP_GEOMETRY", "WORLDWARP_CACHE"
LOOP = "WORLDWARP_LOOP"
CUSTOM_TYPES = (MODEL, GEOMODEL, CAPTIONER, CAMERAS, GEOMETRY, CACHE, LOOP)
# the ST-Diff model socket takes the pack's model or a core MODEL (Load Diffusion Model, LoRA, compile...)
ANY_MODEL = MODEL + ",MODEL"
CHECKPOINT_EXTENSIONS = (".safetensors", ".sft", ".ckpt", ".pt", ".pth")


@dataclass(frozen=True)
class In:
    name: str
    kind: str  # INT FLOAT STRING BOOLEAN COMBO IMAGE MASK CONDITIONING or a custom type
    tooltip: str
    default: object = None
    options: tuple | Callable | None = None  # COMBO: values, or env -> values
    min: float | None = None
    max: float | None = None
    step: float | None = None
    optional: bool = False
    multiline: bool = False
    lazy: bool = False  # asked for only when needed (Loop End: not for a chunk already saved)


@dataclass(frozen=True)
class Out:
    kind: str
    name: str


@dataclass(frozen=True)
class NodeSpec:
    node_id: str
    display_name: str
    category: str
    description: str
    fn: Callable
    inputs: tuple[In, ...]
    outputs: tuple[Out, ...]
    output_node: bool = False
    # what the node shows in the UI: "images" (its first output, as core Preview Image), "saved" (the line
    # a save node's ``ops.Saved`` outputs carry), or a function ``(outputs, **inputs) -> ui dict``
    ui: str | Callable | None = None
    # a node of the wired chunk loop: "start", "next" or "end" (its graph work is ``loop_graph``'s)
    loop: str | None = None


MEMORY = In("memory", "COMBO", "Hints from the latest history's cache only (online: the paper), or also from the "
            "persistent world where that cache has holes, so a path that comes back sees what it saw (world; keeps "
            "the world at world_voxel).", "online", options=MEMORY_MODES, optional=True)
WORLD_VOXEL = In("world_voxel", "FLOAT", "Voxel size of the persistent world in scene units (with memory 'world').",
                 0.05, min=0.001, max=10.0, step=0.005, optional=True)
PROFILE = In("profile", "COMBO", "Defaults of many widgets at once: pack (the pack's measured choices), paper (49/5, "
             "τ 0.8 with the official code's pieces) or official-demo (the official demo: 81/1, τ 0.6, seed 32, 30 fps). "
             "Choosing one sets this node's widgets, which stay editable; the run's manifest records the profile and "
             "every value that differs from it.", DEFAULT_PROFILE, options=PROFILE_NAMES, optional=True)
# the widgets a profile sets, by node: widget -> profile key (profiles.py; the frontend asks
# GET /worldwarp/profiles for the values)
PROFILE_WIDGETS = {
    "WorldWarpChunkLoop": {
        "chunk_frames": "chunk_frames", "context_frames": "context_frames", "strength": "strength", "steps": "steps",
        "cfg": "guidance_scale", "seed": "seed", "fps": "fps", "gs_iterations": "gs.iterations",
        "extrapolation": "extrapolation", "mask_rule": "mask_rule", "shift": "shift", "cache_frames": "cache_frames",
        "caption_style": "caption_style", "history_intrinsics": "history_intrinsics",
        "geometry_alignment": "geometry_alignment", "geometry_input": "geometry_input",
        "init_opacity": "gs.init_opacity", "depth_loss": "gs.depth_loss", "depth_loss_weight": "gs.depth_loss_weight",
        "position_lr_scaling": "gs.position_lr_scaling", "init": "gs.init", "hints": "gs.hints"},
    "WorldWarpLoopStart": {"chunk_frames": "chunk_frames", "context_frames": "context_frames", "seed": "seed",
                           "fps": "fps", "extrapolation": "extrapolation"},
}

VRAM = In("vram", "COMBO", "Fit the card: 'auto' picks the geometry batch, CFG mode and VAE tiling from the free GPU "
          "memory and the chunk plan (the line it prints says what and why; the run's manifest keeps it); 'high' / "
          "'medium' / 'low' / 'small' take that profile; 'manual' the settings as they are. The frames are the same "
          "either way.", "auto", options=VRAM_CHOICES, optional=True)


def _files(folder: str, none: bool = False):
    def options(env):
        names = list(env.models_list(folder))
        return ([ops.NONE] if none else []) + names if (names or none) else [ops.NONE]

    return options


def _folders(kind: str, none: bool = False):
    """Folders of models/worldwarp the loader for ``kind`` can load (``nodes/model_kinds.py``)."""
    def options(env):
        names = [n for n in env.models_list("worldwarp") if kind in folder_kinds(env.full_path("worldwarp", n))]
        return ([ops.NONE] if none else []) + names if (names or none) else [ops.NONE]

    return options


def _checkpoints(env):
    names = [n for n in env.models_list("diffusion_models") if n.lower().endswith(CHECKPOINT_EXTENSIONS)]
    return names or [ops.NONE]


def _transformers(env):
    """Wan transformer files (.safetensors); the official WorldWarp .ckpt has its own dropdown."""
    names = [n for n in env.models_list("diffusion_models") if n.lower().endswith((".safetensors", ".sft"))]
    return names + [ops.DIFFUSERS]


SEED = In("seed", "INT", "Random seed; the same seed gives the same result.", 0, min=0, max=2**31 - 1)
STEPS = In("steps", "INT", "Flow-matching Euler steps (paper: 50).", 50, min=1, max=200)
CFG = In("cfg", "FLOAT", "Classifier-free guidance scale (1 disables the negative branch).", 5.0, min=1.0, max=20.0,
         step=0.1)
TAU = In("strength", "FLOAT", "Strength τ: the fraction of the schedule warped tokens go through (paper: 0.8). "
         "0 keeps the hints, 1 regenerates them from noise.", 0.8, min=0.0, max=1.0, step=0.01)
SCHEDULE = In("schedule", "COMBO", "Noise schedule (paper Table 3): spatio-temporal is the method; the others are "
              "the ablations.", "spatio-temporal", options=SCHEDULE_VARIANTS)
TRAINING_FREE = In("training_free", "BOOLEAN", "For base Wan2.1 weights without the WorldWarp fine-tune: uniform "
                   "timesteps with warped and context tokens held on their noising path.", False)
MASK_RULE = In("mask_rule", "COMBO", "Which hint pixels count as warped. official: the rule the WorldWarp checkpoint "
               "was sampled with (every 4th frame, 15 px erosion, per latent pixel; a token's timestep from its "
               "top-left latent pixel); strict: a token is warped only if all its pixels are.", "official",
               options=MASK_RULES)
SHIFT = In("shift", "FLOAT", "Flow shift of the sigma schedule (official WorldWarp sampler: 5; Wan2.1 480p: 3).", 5.0,
           min=0.1, max=20.0, step=0.1)
CAPTION_STYLE = In("caption_style", "COMBO", "How the captioner is asked. pack: a short instruction, the first and "
                   "last frame, the style appended; official: the official demo's '3D Scene Analyst' system prompt, "
                   "the style inside the request, the frames as a 2 fps video, the answer verbatim (Qwen-VL only).",
                   "pack", options=CAPTION_STYLES, optional=True)
FROM_CHUNK = In("from_chunk", "INT", "Roll back: keep the first from_chunk chunks in output_folder and make the rest "
                "again with the settings as they are now (an edited body or other settings included); 0: off.", 0,
                min=0, max=10000, optional=True)
CAPTION_TOKENS = In("caption_max_tokens", "INT", "Most new tokens of a caption; 0: the style's own (pack 120, "
                    "official 512).", 0, min=0, max=4096, optional=True)
# the 3DGS cache's options (defaults from GSConfig / PipelineSettings, measured in docs/CACHE.md)
_GS, _PS = GSConfig(), PipelineSettings()
GS_DEPTH_LOSS = In("depth_loss", "COMBO", "Depth term of the 3DGS loss: L1 of the rendered depth against the geometry's, "
                   "relative to its mean depth (any units), or of their inverses (disparity, the official code's, "
                   "in the depth's units); none: colour only.",
                   _GS.depth_loss, options=DEPTH_LOSSES)
GS_DEPTH_WEIGHT = In("depth_loss_weight", "FLOAT", "Weight of the depth term (official: 0.01).", _GS.depth_loss_weight,
                     min=0.0, max=10.0, step=0.001)
GS_SH_DEGREE = In("sh_degree", "INT", "Spherical-harmonic degree of the Gaussians' colour (0: the same from every "
                  "side; official: 3).", _GS.sh_degree, min=0, max=3)
GS_INIT_OPACITY = In("init_opacity", "FLOAT", "Initial opacity of the Gaussians (official: 0.9999).",
                     _GS.init_opacity, min=0.01, max=0.9999, step=0.0001)
GS_POSITION_LR = In("position_lr_scaling", "COMBO", "Position learning rate times the scene extent (the same setting "
                    "whatever the depth units) or absolute (the official code's).", _GS.position_lr_scaling,
                    options=POSITION_LR_SCALINGS)
GS_INIT = In("init", "COMBO", "Gaussians at the start: one per pixel, sized by the pixel's footprint, or the official "
             "code's (at most init_max_points random pixels per frame past init_min_depth, sized by their 3 nearest "
             "neighbours).", _GS.init, options=INIT_MODES, optional=True)
GS_INIT_MAX_POINTS = In("init_max_points", "INT", "init 'official': at most this many Gaussians per frame (official: "
                        "50000).", _GS.init_max_points, min=1, max=10_000_000, optional=True)
GS_INIT_MIN_DEPTH = In("init_min_depth", "FLOAT", "init 'official': pixels at this depth or nearer are skipped, in the "
                       "geometry's units (official demo: 0.8).", _GS.init_min_depth, min=0.0, max=1e6, step=0.01,
                       optional=True)
GS_HINTS = In("hints", "COMBO", "Hint colour where the render is partly transparent: divided by its opacity, or "
              "premultiplied (darker there; the official code's, which its checkpoint was trained on).", _GS.hints,
              options=HINT_COLOURS, optional=True)
GS_INIT_INPUTS = (GS_INIT, GS_INIT_MAX_POINTS, GS_INIT_MIN_DEPTH, GS_HINTS)
# memory options (PipelineSettings; none changes the frames beyond float rounding, except VAE tiling's seams)
GEOMETRY_BATCH = In("geometry_batch", "INT", "Frames per forward of a per-frame depth model (Depth Pro, Depth "
                    "Anything V2): its memory grows with this, not with the number of frames. Multi-view models "
                    "(TTT3R, DA3) always see all frames.", _PS.geometry_batch, min=1, max=256, optional=True)
CFG_BATCH = In("cfg_batch", "COMBO", "Classifier-free guidance: both branches in one forward (batched, fastest), or "
               "one after the other (sequential: the transformer's activations halve; for small cards).",
               _PS.cfg_batch, options=CFG_BATCHES, optional=True)
VAE_TILING = In("vae_tiling", "BOOLEAN", "VAE encode/decode on overlapping 256-pixel tiles blended at the seams: "
                "far less memory at 480x720, frames differ slightly.", _PS.vae_tiling, optional=True)
HISTORY_K = In("history_intrinsics", "COMBO", "With estimated poses: the history cameras take the path's intrinsics "
                "(as the target cameras, so a wrong focal estimate does not zoom the hints; the official code's) or "
                "the geometry model's own.", _PS.history_intrinsics, options=HISTORY_INTRINSICS, optional=True)
GEOMETRY_ALIGNMENT = In("geometry_alignment", "COMBO", "How the history's geometry enters the path's world: sim3 "
                        "(estimated cameras Sim(3)-fitted to the path, depth fitted to the previous chunk's cache) or "
                        "official (re-anchored rigidly at the last history frame's requested camera, the geometry "
                        "model's raw depth scale: the official code's).", _PS.geometry_alignment,
                        options=GEOMETRY_ALIGNMENTS, optional=True)
GEOMETRY_INPUT = In("geometry_input", "COMBO", "The geometry model's input: its own preprocessing (model), or the "
                    "official zero-padded square (square-pad) where the backend offers it (TTT3R); the outputs are "
                    "at the frames' size either way.", _PS.geometry_input, options=GEOMETRY_INPUTS, optional=True)
CTX = In("context_frames", "INT", "History frames at the start of the chunk kept fixed (4j+1: 1, 5, 9...).", 5,
         min=1, max=81, step=4)

SPECS: tuple[NodeSpec, ...] = (
    NodeSpec("WorldWarpLoadModel", "Load WorldWarp Model", "WorldWarp/loaders",
             "Loads the ST-Diff components: Wan2.1 T2V 1.3B transformer, VAE and UMT5 text encoder from ComfyUI's "
             "model folders (or a diffusers folder), plus the official WorldWarp fine-tune.", ops.load_model,
             (In("transformer", "COMBO", "Wan2.1 T2V 1.3B transformer in models/diffusion_models, or a diffusers "
                 "folder (choose it under 'tokenizer').", options=_transformers),
              In("vae", "COMBO", "Wan2.1 VAE in models/vae (wan_2.1_vae.safetensors).", options=_files("vae")),
              In("text_encoder", "COMBO", "UMT5-XXL encoder in models/text_encoders.", options=_files("text_encoders")),
              In("tokenizer", "COMBO", "UMT5 tokenizer folder (or the diffusers model folder) in models/worldwarp.",
                 options=_folders("tokenizer")),
              In("worldwarp_checkpoint", "COMBO", "The official worldwarp_latest.ckpt in models/diffusion_models; "
                 "(none) = base Wan2.1 weights (use training_free on the sampler).", ops.NONE,
                 options=_files("diffusion_models", none=True)),
              In("dtype", "COMBO", "Weights dtype; fp8 stores weights in 8 bits and computes in bf16.", "bf16",
                 options=("bf16", "fp16", "fp32", "fp8")),
              In("offload", "COMBO", "'model' keeps components on the CPU between uses (low VRAM); "
                 "'text_encoder' only the UMT5 text encoder (about 11 GB in bf16, used once per prompt).", "none",
                 options=("none", "text_encoder", "model"))),
             (Out(MODEL, "model"),)),
    NodeSpec("WorldWarpLoadDiffusionModel", "Load WorldWarp Diffusion Model", "WorldWarp/loaders",
             "Loads the official worldwarp_latest.ckpt (diffusers layout, read with weights_only) or any Wan 2.1 T2V "
             "transformer .safetensors (diffusers, original or ComfyUI layout) as a core MODEL, so core LoRA, "
             "TorchCompileModel and ComfyUI's offloading apply. Feed it to the ST-Diff Sampler's model input.",
             ops.load_worldwarp_diffusion_model,
             (In("checkpoint", "COMBO", "Transformer file in models/diffusion_models (worldwarp_latest.ckpt or a "
                 ".safetensors).", options=_checkpoints),
              In("weight_dtype", "COMBO", "Weights storage dtype as in core Load Diffusion Model; fp8 halves the "
                 "memory of the weights.", "default", options=("default", "fp8_e4m3fn", "fp8_e5m2"))),
             (Out("MODEL", "model"),)),
    NodeSpec("WorldWarpLoadGeometryModel", "Load Geometry Model", "WorldWarp/loaders",
             "Loads a depth/pose estimator from a folder in models/worldwarp.", ops.load_geometry_model,
             (In("backend", "COMBO", "Geometry backend.", "depth-anything-v2", options=tuple(list_estimators())),
              In("folder", "COMBO", "Model folder in models/worldwarp (e.g. depth-pro-hf).", ops.NONE,
                 options=_folders("geometry", none=True)),
              In("fov_degrees", "FLOAT", "Horizontal field of view assumed by models that do not estimate it.", 60.0,
                 min=10.0, max=170.0, step=0.5),
              In("dtype", "COMBO", "Precision the model runs in; auto: bf16 on a CUDA GPU (half the memory of "
                 "fp32; TTT3R stays fp32), fp32 on the CPU.", "auto", options=GEOMETRY_DTYPES, optional=True)),
             (Out(GEOMODEL, "geometry_model"),)),
    NodeSpec("WorldWarpLoadCaptioner", "Load Captioner", "WorldWarp/loaders",
             "A VLM that describes the history frames, or a fixed prompt.", ops.load_captioner_node,
             (In("captioner", "COMBO", "'fixed' never loads a model.", "fixed", options=tuple(list_captioners())),
              In("folder", "COMBO", "VLM folder in models/worldwarp.", ops.NONE,
                 options=_folders("captioner", none=True)),
              In("fixed_prompt", "STRING", "The prompt of the 'fixed' captioner.", "", multiline=True)),
             (Out(CAPTIONER, "captioner"),)),
    NodeSpec("WorldWarpCameraTrajectory", "Camera Trajectory", "WorldWarp/cameras",
             "A camera path from presets (compose with '+' in sequence or '*' blended) or a RealEstate10K/JSON file.",
             ops.camera_trajectory,
             (In("image", "IMAGE", "The start image (sets the image size)."),
              In("preset", "STRING", "Preset or composition, e.g. 'dolly_in + pan_left', 'dolly_in@0.5 * orbit_left'. "
                 "Presets: " + ", ".join(list_presets()) + ". The official demo's presets (per frame, in the "
                 "geometry's units, focal 1.2·W; '+' adds them): " + ", ".join(list_official_presets()), "dolly_in"),
              In("strength", "FLOAT", "Multiplies every preset's strength (translations in median depths).", 1.0,
                 min=0.0, max=10.0, step=0.05),
              In("frames", "INT", "Frames of the path (extend it past its end with Extrapolate Trajectory; "
                 f"at most {MAX_FRAMES}).", 49,
                 min=1, max=MAX_FRAMES),
              In("fov_degrees", "FLOAT", "Horizontal field of view when no geometry is connected.", 60.0, min=10.0,
                 max=170.0, step=0.5),
              In("scene_scale", "FLOAT", "Scene unit (median depth); 0 = from the connected geometry.", 0.0, min=0.0,
                 max=1e4, step=0.01),
              In("easing", "COMBO", "Speed profile of each preset.", "linear", options=("linear", "ease-in-out")),
              In("camera_file", "STRING", "Optional RealEstate10K .txt / JSON / transforms.json / official .npz pose "
                 "cache in ComfyUI's input folder (its name there, e.g. cameras.txt; nothing outside it is read; at "
                 "most 16 MiB and 10,000 cameras); overrides the preset.", ""),
              In("geometry", GEOMETRY, "Depth of the start image: sets the scene scale and intrinsics.",
                 optional=True)),
             (Out(CAMERAS, "cameras"),)),
    NodeSpec("WorldWarpCameraDirector", "Camera Director", "WorldWarp/cameras",
             "Direct the camera in 3D: the start image's point cloud, the path as camera frusta, keyframes to add, "
             "drag and delete, and how much of each frame the geometry already covers. Run it once with geometry "
             "connected to see the scene; the cameras are exactly the drawn path.",
             ops.camera_director,
             (In("image", "IMAGE", "The start image (sets the image size)."),
              In("preset", "STRING", "Starting path when there are no keyframes: a preset or composition as in "
                 "Camera Trajectory. Editing in the 3D view turns it into keyframes.", "dolly_in@0.5"),
              In("strength", "FLOAT", "Multiplies every preset's strength (translations in median depths).", 1.0,
                 min=0.0, max=10.0, step=0.05),
              In("frames", "INT", "Frames of the path (keyframe times stretch with it).", 49, min=1, max=MAX_FRAMES),
              In("fov_degrees", "FLOAT", "Horizontal field of view when no geometry is connected.", 60.0, min=10.0,
                 max=170.0, step=0.5),
              In("scene_scale", "FLOAT", "Scene unit (median depth); 0 = from the connected geometry.", 0.0, min=0.0,
                 max=1e4, step=0.01),
              In("easing", "COMBO", "Speed profile of each preset part.", "linear",
                 options=("linear", "ease-in-out")),
              In("keyframes", "STRING", "The edited path as JSON (written by the 3D editor; empty = the preset). "
                 "Positions in the start camera's axes in median depths, rotations as quaternions.", "",
                 multiline=True),
              In("geometry", GEOMETRY, "Depth of the start image: the scene drawn in the editor, the scene scale, "
                 "the intrinsics and the coverage preview.", optional=True)),
             (Out(CAMERAS, "cameras"),), output_node=True, ui=director.scene_ui),
    NodeSpec("WorldWarpExtrapolateTrajectory", "Extrapolate Trajectory", "WorldWarp/cameras",
             "Extends a path: continues its motion (auto: the best of the paper's velocity + SLERP and the official "
             "body-frame momentum on the path's own last frames), loops, ping-pongs, or slows down as the official "
             "demo's 'slowdown' (never below 10% of the speed).",
             ops.extrapolate_trajectory,
             (In("cameras", CAMERAS, "The given path."),
              In("total_frames", "INT", "Frames of the whole path after extending.", 200, min=1, max=MAX_FRAMES),
              In("mode", "COMBO", "How to go past the end.", "extrapolate", options=EXTEND_MODES),
              In("window", "INT", "Smoothing window in frames; 0 = the method's (paper 20, official 10, auto: "
                 "chosen by backtesting).", 0, min=0, max=1000),
              In("damping", "FLOAT", "0 keeps the speed; >0 eases to a stop.", 0.0, min=0.0, max=0.99, step=0.01),
              In("method", "COMBO", "How 'extrapolate' continues: auto (backtested on the path), paper (world "
                 "velocity + SLERP) or official (body-frame momentum, follows turns).", "auto",
                 options=EXTRAPOLATION_METHODS)),
             (Out(CAMERAS, "cameras"),)),
    NodeSpec("WorldWarpCameraPathFromVideo", "Camera Path From Video", "WorldWarp/cameras",
             "The camera path of a reference video, as the official demo's From Video mode: the geometry model "
             "(TTT3R as there, or Depth Anything 3) on the video's frames, one averaged focal, anchored at the "
             "first camera, in the geometry model's units. Feed it core Load Video's frames.",
             ops.camera_path_from_video_node,
             (In("geometry_model", GEOMODEL, "From Load Geometry Model: a backend that estimates camera poses "
                 "(ttt3r, depth-anything-3)."),
              In("video", "IMAGE", "The reference video's frames; scaled to cover the start image's size and "
                 "centre-cropped."),
              In("image", "IMAGE", "The start image (sets the size of the path's cameras)."),
              In("max_frames", "INT", "Frames of the video used (the official demo: its first 600).", 600, min=1,
                 max=MAX_FRAMES),
              In("speed_multiplier", "FLOAT", "Plays the path this many times faster (fewer frames) or slower, as "
                 "the official demo's speed slider (0.25 to 4).", 1.0, min=0.1, max=10.0, step=0.05),
              In("geometry_input", "COMBO", "square-pad: the official TTT3R input (a zero-padded square) where the "
                 "backend offers it; model: the backend's own preprocessing.", "square-pad",
                 options=VIDEO_GEOMETRY_INPUTS)),
             (Out(CAMERAS, "cameras"),)),
    NodeSpec("WorldWarpLoadPoseCache", "Load Official Pose Cache", "WorldWarp/cameras",
             "A camera path from an official WorldWarp .npz pose cache (examples/pose_cache/*_poses.npz of the "
             "official demo, or `camera-path --out x.npz`): anchored at its first camera, fitted to the start "
             "image's size.",
             ops.load_pose_cache_node,
             (In("image", "IMAGE", "The start image (sets the size of the path's cameras)."),
              In("file", "STRING", "The .npz file, relative to ComfyUI's input folder (e.g. "
                 "pose_cache/000_poses.npz).", ""),
              In("speed_multiplier", "FLOAT", "Plays the path this many times faster (fewer frames) or slower, as "
                 "the official demo's speed slider (0.25 to 4).", 1.0, min=0.1, max=10.0, step=0.05)),
             (Out(CAMERAS, "cameras"),)),
    NodeSpec("WorldWarpCameraInfo", "WorldWarp Camera To Camera Info", "WorldWarp/cameras",
             "One camera of a path as core camera_info, e.g. to render the exported splat with Render Splat.",
             ops.cameras_to_camera_info,
             (In("cameras", CAMERAS, "A camera path."),
              In("frame", "INT", "Which camera of the path.", 0, min=0, max=MAX_FRAMES)),
             (Out("LOAD3D_CAMERA", "camera_info"),)),
    NodeSpec("WorldWarpEstimateGeometry", "Estimate Geometry", "WorldWarp/geometry",
             "Depth (+ intrinsics/poses) of frames; outputs the geometry and a depth preview.", ops.estimate_geometry,
             (In("geometry_model", GEOMODEL, "From Load Geometry Model."),
              In("images", "IMAGE", "Frames to estimate."),
              In("pose_source", "COMBO", "With cameras connected: 'requested' keeps them; 'estimated' uses the "
                 "backend's poses (TTT3R, DA3) Sim(3)-aligned to them, depth rescaled; 'auto': estimated when the "
                 "backend estimates poses, else requested.", "auto", options=POSE_SOURCES),
              In("cameras", CAMERAS, "Known cameras of the frames (intrinsics are then used).", optional=True),
              GEOMETRY_BATCH, replace(HISTORY_K, name="intrinsics"),
              replace(GEOMETRY_ALIGNMENT, name="alignment",
                      tooltip="With estimated poses: sim3 fits them to the cameras (Sim(3), depth rescaled by its "
                              "scale); official re-anchors them rigidly at the last frame's camera, depth as "
                              "estimated (the official code's; use the same on Align Depth To Previous Chunk)."),
              GEOMETRY_INPUT),
             (Out(GEOMETRY, "geometry"), Out("IMAGE", "depth_preview"))),
    NodeSpec("WorldWarpBuildCache", "Build 3DGS Cache", "WorldWarp/cache",
             "The online 3D Gaussian Splatting cache optimised on the history (paper §4.2). Also outputs core SPLAT.",
             ops.build_cache_node,
             (In("images", "IMAGE", "History frames."),
              In("geometry", GEOMETRY, "Their depth and cameras."),
              In("mode", "COMBO", "3dgs (the method), pointcloud or none (Table 3 ablations).", "3dgs",
                 options=CACHE_MODES),
              In("iterations", "INT", "Optimisation iterations (paper: 500).", 500, min=0, max=10000),
              In("learning_rate", "FLOAT", "Position learning rate (paper: 1.6e-3).", 1.6e-3, min=0.0, max=1.0,
                 step=1e-4),
              In("stride", "INT", "One Gaussian every n pixels.", 1, min=1, max=16),
              In("alpha_threshold", "FLOAT", "Hint pixels are valid where alpha exceeds this (official: 0.5).", 0.5,
                 min=0.0, max=0.99, step=0.01),
              SEED, GS_DEPTH_LOSS, GS_DEPTH_WEIGHT, GS_SH_DEGREE, GS_INIT_OPACITY, GS_POSITION_LR,
              In("train_frames", "COMBO", "Optimise on every image (the whole previous chunk) or only the last "
                 "context_frames (the next chunk's context, the official code's).", _PS.cache_frames,
                 options=CACHE_FRAMES),
              In("context_frames", "INT", "With train_frames 'context': how many of the last images.",
                 _PS.context_frames, min=1, max=81), *GS_INIT_INPUTS),
             (Out(CACHE, "cache"), Out("SPLAT", "splat"))),
    NodeSpec("WorldWarpRenderHints", "Render Warp Hints", "WorldWarp/cache",
             "Renders forward-warped hints and validity masks at cameras; edit them with any image node.",
             ops.render_hints,
             (In("cache", CACHE, "From Build 3DGS Cache."), In("cameras", CAMERAS, "Where to render.")),
             (Out("IMAGE", "hints"), Out("MASK", "valid"))),
    NodeSpec("WorldWarpDescribeScene", "Describe Scene", "WorldWarp/prompt",
             "A VLM describes the frames; your style text is appended (pack) or asked for in the official demo's "
             "request (official).", ops.describe_scene,
             (In("captioner", CAPTIONER, "From Load Captioner."), In("images", "IMAGE", "Frames to describe."),
              In("style", "STRING", "Style text, e.g. 'Van Gogh style': appended (pack) or inside the request "
                 "(official).", ""),
              In("clip", "CLIP", "Core Load CLIP (umt5_xxl, type wan): also outputs the prompt as conditioning.",
                 optional=True),
              CAPTION_STYLE, CAPTION_TOKENS,
              In("fps", "INT", "Frame rate of the images (the official style samples them at 2 fps of it).", 16,
                 min=1, max=120, optional=True),
              In("still_frames", "INT", "One image under the official style is captioned as the official first "
                 "chunk: a still video of this many frames (the chunk's) at 10 fps.", 81, min=1, max=161,
                 optional=True)),
             (Out("STRING", "prompt"), Out("CONDITIONING", "conditioning"))),
    NodeSpec("WorldWarpSTDiffSampler", "ST-Diff Sampler", "WorldWarp/sampling",
             "Spatio-temporal diffusion: context fixed, warped tokens from σ(τ), holes from noise (paper eq. 9-10).",
             ops.st_diff_sampler,
             (In("model", ANY_MODEL, "Core Load Diffusion Model (Wan 2.1 T2V, or Load WorldWarp Diffusion Model; "
                 "with 'vae' and CLIP Text Encode conditioning), or Load WorldWarp Model."),
              In("hints", "IMAGE", "Warped hints of the chunk (4k+1 frames, sizes multiples of 16)."),
              In("masks", "MASK", "Hint validity (1 = warped, 0 = hole)."),
              In("prompt", "STRING", "Text prompt (ignored when conditioning is connected).", "", multiline=True),
              In("negative_prompt", "STRING", "Negative prompt.", DEFAULT_NEGATIVE, multiline=True),
              CTX, TAU, STEPS, CFG, SEED, SCHEDULE, TRAINING_FREE,
              In("context", "IMAGE", "History frames that replace the first hint frames (kept exactly).",
                 optional=True),
              In("conditioning", "CONDITIONING", "Core Wan text-encoder conditioning instead of the prompt.",
                 optional=True),
              In("negative_conditioning", "CONDITIONING", "Core conditioning for the negative branch.", optional=True),
              In("vae", "VAE", "Core Load VAE (wan_2.1_vae.safetensors); needed with a core MODEL.", optional=True),
              MASK_RULE, SHIFT, CFG_BATCH, VAE_TILING),
             (Out("IMAGE", "frames"), Out("IMAGE", "noise_schedule"))),
    NodeSpec("WorldWarpChunkLoop", "WorldWarp Chunk Loop", "WorldWarp/sampling",
             "The whole autoregressive generator (paper Fig. 3), resumable in an output folder.", ops.chunk_loop,
             (In("model", ANY_MODEL, "Core Load Diffusion Model (with 'vae' and 'clip'), or Load WorldWarp Model."),
              In("geometry_model", GEOMODEL, "From Load Geometry Model."),
              In("image", "IMAGE", "Start image (sizes multiples of 16)."),
              In("cameras", CAMERAS, "Camera path (extended past its end as needed)."),
              In("frames", "INT", "Total frames: chunk + k·(chunk - context), e.g. 49, 93, 137, 181, 225.", 93,
                 min=1, max=MAX_FRAMES),
              In("prompt", "STRING", "Scene description (or connect a captioner).", "", multiline=True),
              In("style", "STRING", "Appended style, e.g. 'Van Gogh style'.", ""),
              In("chunk_frames", "INT", "Frames per chunk, 4k+1 (paper 49, official code 81).", 49, min=5, max=161,
                 step=4),
              CTX, TAU, STEPS, CFG, SEED, SCHEDULE,
              In("cache_mode", "COMBO", "3dgs (the method), pointcloud or none.", "3dgs", options=CACHE_MODES),
              In("gs_iterations", "INT", "3DGS iterations per chunk (paper: 500).", 500, min=0, max=10000),
              In("extend_mode", "COMBO", "Past the end of the path.", "extrapolate",
                 options=EXTEND_MODES),
              TRAINING_FREE,
              In("output_folder", "STRING", "Run folder under ComfyUI's output folder.", "worldwarp/run"),
              In("resume", "BOOLEAN", "Continue the run in output_folder from its last finished chunk.", False),
              In("pose_source", "COMBO", "History poses: the geometry model's own Sim(3)-aligned to the path (as in "
                 "the paper), or the requested path; 'auto': estimated when the backend estimates poses (TTT3R, "
                 "DA3), requested for monocular depth.", "auto", options=POSE_SOURCES),
              In("extrapolation", "COMBO", "How extend_mode 'extrapolate' continues the path: auto (backtested on "
                 "the path), paper (world velocity + SLERP) or official (body-frame momentum).", "auto",
                 options=EXTRAPOLATION_METHODS),
              In("captioner", CAPTIONER, "Describes each chunk's history (else the prompt is used).", optional=True),
              In("vae", "VAE", "Core Load VAE (wan_2.1_vae.safetensors); needed with a core MODEL.", optional=True),
              In("clip", "CLIP", "Core Load CLIP (umt5_xxl, type wan): encodes each chunk's prompt; needed with a "
                 "core MODEL.", optional=True),
              MASK_RULE, SHIFT, GS_DEPTH_LOSS, GS_DEPTH_WEIGHT, GS_SH_DEGREE, GS_INIT_OPACITY, GS_POSITION_LR,
              In("cache_frames", "COMBO", "Frames the 3DGS cache is optimised on: the whole previous chunk, or only "
                 "its context frames (the official code's). Geometry uses the whole chunk either way.",
                 _PS.cache_frames, options=CACHE_FRAMES),
              CAPTION_STYLE, CAPTION_TOKENS, FROM_CHUNK, GEOMETRY_BATCH, CFG_BATCH, VAE_TILING, VRAM, HISTORY_K,
              In("fps", "INT", "Frame rate of the video output (official demo: 30).", _PS.fps, min=1, max=120,
                 optional=True),
              PROFILE,
              MEMORY, WORLD_VOXEL, GEOMETRY_ALIGNMENT, GEOMETRY_INPUT, *GS_INIT_INPUTS),
             (Out("IMAGE", "frames"), Out(CAMERAS, "cameras"))),
    # the chunk loop as a graph: Loop Start -> the body (stage nodes, any core nodes) -> Loop End
    NodeSpec("WorldWarpLoopStart", "WorldWarp Loop Start", "WorldWarp/loop",
             "Starts the chunk loop (paper Fig. 3): outputs this chunk's history, cameras, context and seeds for the "
             "stage nodes wired to WorldWarp Loop End; Loop End runs that body once per chunk.", ops.loop_start,
             (In("image", "IMAGE", "Start image (sizes multiples of 16)."),
              In("cameras", CAMERAS, "Camera path (extended past its end as needed)."),
              In("frames", "INT", "Total frames: chunk + k·(chunk - context), e.g. 49, 93, 137, 181, 225.", 93,
                 min=1, max=MAX_FRAMES),
              In("chunk_frames", "INT", "Frames per chunk, 4k+1 (paper 49, official code 81).", 49, min=5, max=161,
                 step=4),
              CTX, SEED,
              In("extend_mode", "COMBO", "Past the end of the path.", "extrapolate",
                 options=EXTEND_MODES),
              In("extrapolation", "COMBO", "How extend_mode 'extrapolate' continues the path: auto (backtested on "
                 "the path), paper (world velocity + SLERP) or official (body-frame momentum).", "auto",
                 options=EXTRAPOLATION_METHODS),
              In("output_folder", "STRING", "Run folder under ComfyUI's output folder (chunks are saved there as "
                 "they finish; required).", "worldwarp/run"),
              In("resume", "BOOLEAN", "Continue the run in output_folder from its last finished chunk; off, a folder "
                 "holding a run is refused (nothing is deleted).", False),
              In("fps", "INT", "Frame rate of the video output.", 16, min=1, max=120),
              FROM_CHUNK, VRAM, PROFILE,
              replace(MEMORY, tooltip="Keep the persistent world (world: at world_voxel) so Remembered Hints in "
                      "the body can fill the online cache's holes from what earlier chunks saw; online: the paper's "
                      "loop (Remembered Hints passes the hints through)."), WORLD_VOXEL),
             (Out(LOOP, "loop"), Out("IMAGE", "history"), Out(CAMERAS, "history_cameras"), Out(CAMERAS, "cameras"),
              Out("IMAGE", "context"), Out("INT", "context_frames"), Out("INT", "chunk"), Out("INT", "cache_seed"),
              Out("INT", "sampler_seed")),
             loop="start"),
    NodeSpec("WorldWarpLoopNext", "WorldWarp Loop Next (internal)", "WorldWarp/loop",
             "Loop Start for the next chunk; Loop End puts it in place of Loop Start (never placed by hand).",
             ops.loop_next,
             (In("loop", LOOP, "The loop state Loop End passes on."),),
             (Out(LOOP, "loop"), Out("IMAGE", "history"), Out(CAMERAS, "history_cameras"), Out(CAMERAS, "cameras"),
              Out("IMAGE", "context"), Out("INT", "context_frames"), Out("INT", "chunk"), Out("INT", "cache_seed"),
              Out("INT", "sampler_seed")),
             loop="next"),
    NodeSpec("WorldWarpWorldHints", "Remembered Hints", "WorldWarp/loop",
             "Fills the online cache's holes with what the persistent world saw there (the Gaussians in these "
             "cameras' frusta): a path that comes back gets its old hints. Needs memory 'world' on WorldWarp Loop "
             "Start; with 'online' the hints pass through. Without hints connected: the world's hints alone.",
             ops.world_hints,
             (In("loop", LOOP, "From WorldWarp Loop Start."),
              In("cameras", CAMERAS, "Where to render (Loop Start's cameras)."),
              In("hints", "IMAGE", "The online cache's hints (Render Warp Hints).", optional=True),
              In("valid", "MASK", "Their validity (Render Warp Hints).", optional=True)),
             (Out("IMAGE", "hints"), Out("MASK", "valid"), Out("MASK", "remembered"))),
    NodeSpec("WorldWarpAlignToHistory", "Align Depth To Previous Chunk", "WorldWarp/loop",
             "Brings the history's depth to the scale of the 3DGS cache it was generated from (paper §4.2), so "
             "chunks stay in one scene scale; the first chunk passes through.", ops.align_to_history,
             (In("loop", LOOP, "From WorldWarp Loop Start."),
              In("geometry", GEOMETRY, "Geometry of Loop Start's history frames."),
              replace(GEOMETRY_ALIGNMENT, name="alignment",
                      tooltip="sim3: the depth fitted to the previous chunk's cache; official: passed through at "
                              "the geometry model's raw scale (the official code's; use the same on Estimate "
                              "Geometry).")),
             (Out(GEOMETRY, "geometry"),)),
    NodeSpec("WorldWarpLoopEnd", "WorldWarp Loop End", "WorldWarp/loop",
             "Appends the chunk's frames (dropping the overlap), saves the chunk, and runs every node between "
             "Loop Start and here again for the next chunk; after the last one, outputs the whole video.",
             ops.loop_end,
             (In("loop", LOOP, "From WorldWarp Loop Start."),
              In("frames", "IMAGE", "The chunk's frames (chunk_frames of them, context first).", lazy=True),
              In("cache", CACHE, "The chunk's 3DGS cache (the next chunk aligns its depth to it).", lazy=True)),
             (Out("IMAGE", "frames"), Out(CAMERAS, "cameras"), Out(CACHE, "cache"), Out("SPLAT", "splat"),
              Out("VIDEO", "video")),
             output_node=True, loop="end"),
    NodeSpec("WorldWarpSaveCameras", "Save Cameras", "WorldWarp/cameras",
             "Writes the cameras as RealEstate10K .txt and JSON into the output folder, numbered like ComfyUI's "
             "saves (cameras_00001_.txt, then _00002_, ...). Outputs the .txt's full path; Camera Trajectory's "
             "camera_file reads ComfyUI's input folder only, so copy or upload the file there to use it.",
             ops.save_cameras,
             (In("cameras", CAMERAS, "Cameras to save."),
              In("filename_prefix", "STRING", "Folder and name under ComfyUI's output folder; a counter is "
                 "appended.", "worldwarp/cameras")),
             (Out("STRING", "path"),), output_node=True, ui="saved"),
    NodeSpec("WorldWarpSaveSplat", "Save Splat (.ply)", "WorldWarp/cache",
             "Writes the cache as a standard 3DGS .ply into the output folder, numbered like ComfyUI's saves. "
             "Outputs the path relative to the output folder: connect it to core Preview 3D's model_file to "
             "look at the scene.", ops.save_splat,
             (In("cache", CACHE, "From Build 3DGS Cache."),
              In("filename_prefix", "STRING", "Folder and name under ComfyUI's output folder; a counter is "
                 "appended.", "worldwarp/scene")),
             (Out("STRING", "path"),), output_node=True, ui="saved"),
    NodeSpec("WorldWarpPreviewSchedule", "Preview Noise Schedule", "WorldWarp/sampling",
             "The σ of every token over the denoising steps (paper Fig. 9) for given masks.", ops.preview_schedule,
             (In("masks", "MASK", "Hint validity of a chunk (4k+1 frames)."), CTX, TAU, STEPS, SCHEDULE, MASK_RULE,
              SHIFT),
             (Out("IMAGE", "schedule"),), output_node=True, ui="images"),
)


def spec_by_id() -> dict[str, NodeSpec]:
    return {s.node_id: s for s in SPECS}
