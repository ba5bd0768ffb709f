"""The chunk loop's bookkeeping, written once: the CLI pipeline, the compact Chunk Loop node and the
wired Loop Start / Loop End nodes all call these functions, so they give the same frames.

What belongs here is everything *between* the stages (the stages themselves -- geometry, cache,
hints, caption, ST-Diff -- are the library's other modules and the user's graph):

* ``open_run``       the run folder (fingerprint check, cameras of the whole path) and the
                     resume point: finished chunks, the video so far, the previous cache's depth
* ``plan_chunk``     chunk ``k``: its first frame, context count, history frames and cameras,
                     target cameras, the seeds of its cache and sampler
* ``align_history_depth``  the history's depth brought to the previous cache's rendered depth
* ``end_chunk``      the decoded chunk appended (overlap dropped), the chunk saved atomically
* ``finish_run``     video.mp4, scene.ply, world.ply (also when a resume finds every chunk made)

Chunking: the first chunk has ``chunk_frames`` frames starting with the start image (its
context); each later chunk re-uses the last ``context_frames`` frames as context and adds
``chunk_frames - context_frames`` new ones.

State is a frozen dataclass (``LoopState``); every step returns a new one, so a node that is run
again on the same input state gives the same result.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from .cameras import Cameras
from .geometry import GeometryResult, align_depth_to_cache
from .geometry.pipeline_align import check_alignment
from .gscache import WorldModel, save_ply
from .inputs import read_json, read_npy
from .outputs import (
    Advice,
    RunFolder,
    atomic_copy,
    atomic_write_json,
    component_inputs,
    flatten_settings,
    inputs_fingerprint,
    quantize,
    save_png,
    tensor_digest,
    write_mp4,
)
from .trajectory import extend_to


@dataclass(frozen=True)
class LoopState:
    """Where the loop is: the next chunk to make and everything the chunks after it need."""

    settings: object  # PipelineSettings (chunk/context sizes, history stride, seeds, extension)
    path: Cameras  # [N] the whole camera path, extended past the given one (float64, cpu)
    starts: tuple[int, ...]  # first frame of every chunk
    video: Tensor  # [F, H, W, 3] frames so far (uint8 levels); F = 1 before the first chunk
    next_chunk: int = 0
    chunks: tuple[dict, ...] = ()  # the finished chunks' records (chunk.json)
    prev_depth: Tensor | None = None  # [C, H, W] previous cache's depth at the previous chunk's cameras
    prev_alpha: Tensor | None = None  # [C, H, W] its validity
    folder: RunFolder | None = None
    world: WorldModel | None = field(default=None, compare=False)
    resumed_from: int = 0  # chunks found finished in the run folder
    fingerprint: str | None = None  # of the run in the folder (inputs, settings)
    graph_signature: list | None = None  # the wired loop: the node graph the run is made by
    record: dict | None = field(default=None, compare=False, repr=False)  # run.json as written (to remake it)

    @property
    def total_chunks(self) -> int:
        return len(self.starts)

    @property
    def done(self) -> bool:
        return self.next_chunk >= len(self.starts)

    @property
    def frames(self) -> int:
        """Frames of the whole video when every chunk is made."""
        return self.starts[-1] + self.settings.chunk_frames


@dataclass(frozen=True)
class ChunkPlan:
    """Chunk ``index``: the frames ``[start, start + chunk_frames)`` of the video."""

    index: int
    start: int
    context: int  # context frames: 1 (the start image) for the first chunk, settings.context_frames after
    history: Tensor  # [V] video indices of the history frames (geometry, cache, caption)
    history_frames: Tensor  # [V, H, W, 3]
    history_cameras: Cameras  # [V]
    cameras: Cameras  # [C] the chunk's cameras (target of the hints)
    context_frames: Tensor  # [context, H, W, 3] the last frames of the video, kept exactly
    cache_seed: int
    sampler_seed: int


def run_path(cameras: Cameras, frames: int, settings) -> Cameras:
    """The whole path of a ``frames``-frame video: ``cameras`` extended past their end (float64, cpu)."""
    return extend_to(cameras.to("cpu", torch.float64), frames, settings.extend_mode, settings.extrapolation_window,
                     method=settings.extrapolation)


def history_indices(settings, k: int, start: int) -> Tensor:
    """Video indices of chunk ``k``'s history: the start image for the first chunk, else the previous
    chunk's frames every ``history_stride`` frames (always including the newest)."""
    if k == 0:
        return torch.tensor([0])
    ctx = settings.context_frames
    prev_start = start + ctx - settings.chunk_frames  # the previous chunk covered [prev_start, start + ctx)
    idx = torch.arange(prev_start, start + ctx, settings.history_stride)
    if int(idx[-1]) != start + ctx - 1:
        idx = torch.cat([idx, torch.tensor([start + ctx - 1])])
    return idx


CacheFrames = Literal["chunk", "context"]
CACHE_FRAMES: tuple[str, ...] = ("chunk", "context")


def cache_views(plan: ChunkPlan, cache_frames: CacheFrames) -> Tensor:
    """Which history frames ``[S]`` (indices into ``plan.history``) the 3DGS cache is built and optimised on.

    "chunk": every history frame (the previous chunk, paper §4.2); "context": only those that are
    the new chunk's context frames (the previous chunk's last ``context_frames``, the official
    code's source frames). The geometry is estimated on the whole history either way. The first
    chunk's history is the start image alone.
    """
    if cache_frames not in CACHE_FRAMES:
        raise ValueError(f"cache_frames must be one of {CACHE_FRAMES}, got {cache_frames!r}")
    every = torch.arange(len(plan.history))
    if cache_frames == "chunk" or plan.index == 0:
        return every
    return every[plan.history >= plan.start]


def caption_frames(state: "LoopState", plan: "ChunkPlan", caption_style: str = "pack") -> Tensor:
    """The frames ``[V, H, W, 3]`` the captioner describes: the history (pack) or, for the official
    style, the whole previous chunk at every frame (the official demo captions the chunk's input
    video: the previous chunk's file); the first chunk's is the start image either way."""
    if caption_style != "official" or plan.index == 0:
        return plan.history_frames
    end = plan.start + plan.context
    return state.video[end - state.settings.chunk_frames:end]


def chunk_seeds(settings, k: int) -> tuple[int, int]:
    """``(cache seed, sampler seed)`` of chunk ``k``: different per chunk, fixed by the run's seed."""
    return settings.gs.seed + 1000 * k + settings.seed, settings.seed * 100_003 + k


# settings that change no frame: a resume may change them
# how a chunk is fitted to the card (the vram choice) changes memory, not frames: a run resumes on another card
NOT_FINGERPRINTED = ("settings.fps", "settings.offload_helpers", "settings.geometry_batch", "settings.cfg_batch",
                     "settings.vae_tiling")


def run_inputs(image: Tensor, path: Cameras, settings, run_info: dict | None = None,
               components: dict | None = None) -> dict:
    """Everything a run's frames depend on, one entry per input (what resume compares, by name):
    the start image and the cameras (digests of their exact bytes), every setting that changes
    frames (``settings.gs.iterations``, ...), ``run_info`` (prompt, style, frames, start depth...)
    and each component's name, model file identities, weight digests, dtype and device
    (``outputs.component_inputs``; e.g. ``components={"model": model, "geometry": estimator}``)."""
    from dataclasses import asdict, is_dataclass

    inputs: dict = {"image": tensor_digest(image), "cameras": tensor_digest(path.viewmats.double()),
                    "intrinsics": tensor_digest(path.Ks.double()), "size": f"{path.width}x{path.height}"}
    if is_dataclass(settings):
        # the official captions sample the video at 2 fps of its frame rate: there the fps changes frames
        free = [k for k in NOT_FINGERPRINTED
                if not (k == "settings.fps" and getattr(settings, "caption_style", "pack") == "official")]
        inputs.update({k: v for k, v in flatten_settings(asdict(settings)).items() if k not in free})
    for key, value in (run_info or {}).items():
        if key == "settings":
            continue
        if isinstance(value, Tensor):
            value = tensor_digest(value)
        elif isinstance(value, dict):
            inputs.update(flatten_settings(value, key))
            continue
        inputs[key] = value if isinstance(value, (int, float, str, bool, type(None))) else str(value)
    for name, component in (components or {}).items():
        inputs.update(component_inputs(name, component))
    return inputs


# what a rollback keeps: the start image and the chunking (the kept chunks' frames sit where they are)
ROLLBACK_FIXED = ("image", "size", "settings.chunk_frames", "settings.context_frames")
# how far the camera path of the kept frames may move in a rollback (float noise only)
ROLLBACK_PATH_TOLERANCE = 1e-6


def check_rollback(out_dir: str, from_chunk: int, total_chunks: int) -> int:
    """``from_chunk`` (the chunks to keep, 0 = no rollback) can roll back the run in ``out_dir`` made
    of ``total_chunks`` chunks: at least one chunk kept and one made again. Returns the folder's
    finished chunks. Cheap (the CLI calls it before loading models)."""
    from .inputs import check_int

    check_int(from_chunk, "from_chunk", 0)
    folder = RunFolder(out_dir)
    if not os.path.isfile(folder.path("run.json")):
        raise ValueError(f"from_chunk {from_chunk}: {folder.root} holds no run to roll back (no run.json); make the "
                         "run first (from_chunk 0), or give the folder of the run")
    finished = folder.finished_chunks()
    hi = min(finished, total_chunks - 1)
    if hi < 1 and from_chunk:
        raise ValueError(f"from_chunk {from_chunk} is out of range: {folder.root} holds {finished} finished chunks "
                         f"and this run has {total_chunks}; a rollback keeps at least one chunk and makes at least "
                         "one again, so there is nothing to roll back (use from_chunk 0)")
    if not 0 <= from_chunk <= hi:
        raise ValueError(f"from_chunk {from_chunk} is out of range: {folder.root} holds {finished} finished chunks "
                         f"and this run has {total_chunks}; choose 1 to {hi} (the chunks kept), or 0 for no rollback")
    return finished


def _roll_back(folder: RunFolder, keep: int, starts: list[int], settings, inputs: dict, path: Cameras,
               record: dict) -> dict:
    """Checks that the run in ``folder`` can keep its first ``keep`` chunks under the new ``inputs``,
    then rolls it back (``RunFolder.roll_back``). Returns the new run.json record: the new run, each
    kept chunk's run fingerprint (``chunk_runs``) and the runs replaced (``rolled_back``)."""
    from .outputs import changed_inputs

    check_rollback(folder.root, keep, len(starts))
    old = read_json(folder.path("run.json"), "run record", "choose another output folder")
    old_inputs = old.get("inputs") if isinstance(old.get("inputs"), dict) else {}
    moved = [key for key in ROLLBACK_FIXED if old_inputs.get(key) != inputs.get(key)]
    if moved:
        diff = changed_inputs({k: old_inputs.get(k) for k in moved}, {k: inputs.get(k) for k in moved})
        raise ValueError(f"from_chunk {keep}: the kept chunks were made with another start image or chunking "
                         f"(changed: {'; '.join(diff)}); a rollback keeps those: change only what the later chunks "
                         "are made with, or choose another output folder")
    kept_frames = starts[keep - 1] + settings.chunk_frames
    old_path = Cameras.from_json(folder.path("cameras.json"))
    if len(old_path) < kept_frames:
        raise ValueError(f"from_chunk {keep}: {folder.path('cameras.json')} has {len(old_path)} cameras but the kept "
                         f"chunks cover {kept_frames} frames; the run folder is damaged")
    err = max(float((old_path.viewmats[:kept_frames] - path.viewmats[:kept_frames]).abs().max()),
              float(((old_path.Ks[:kept_frames] - path.Ks[:kept_frames]).abs() /
                     path.Ks[:kept_frames].abs().amax(dim=(-1, -2), keepdim=True)).max()))
    if err > ROLLBACK_PATH_TOLERANCE:
        raise ValueError(f"from_chunk {keep}: the camera path differs from the run's on the kept frames 0-"
                         f"{kept_frames - 1} (by up to {err:.3g}); a rollback keeps those frames, so the path may "
                         f"change only after frame {kept_frames - 1}, or choose another output folder")
    world = os.path.join(folder.chunk_dir(keep - 1), "world.ply")
    if settings.world_voxel is not None and not os.path.isfile(world):
        raise ValueError(f"from_chunk {keep}: the persistent world after the first {keep} chunks is not in the run "
                         "folder (only the newest chunk keeps its world.ply); roll back without world_voxel, or "
                         "choose another output folder")
    earlier = list(old.get("chunk_runs") or [])
    runs = []
    for k in range(keep):
        rec = read_json(os.path.join(folder.chunk_dir(k), "chunk.json"), "rollback: chunk record")
        runs.append(rec.get("run_fingerprint") or (earlier[k] if k < len(earlier) else old.get("fingerprint")))
    replaced = list(old.get("rolled_back") or []) + [{
        "from_chunk": keep, "fingerprint": old.get("fingerprint"), "inputs": old_inputs,
        "changed": changed_inputs(old_inputs, inputs)}]
    record = {**record, "chunk_runs": runs, "rolled_back": replaced}
    folder.roll_back(keep, kept_frames, record)
    return record


def run_provenance(folder: RunFolder, chunks: list[dict] | tuple[dict, ...]) -> dict:
    """Which chunks came from which settings: ``chunk_runs`` (each chunk's run fingerprint) and
    ``runs`` (per fingerprint: its chunks, its settings and prompt, what differs from the run now in
    the folder). A run never rolled back is one run that made every chunk."""
    from .outputs import changed_inputs

    run = read_json(folder.path("run.json"), "run record")
    now, inputs = run.get("fingerprint"), run.get("inputs") or {}
    kept = list(run.get("chunk_runs") or [])
    per_chunk = [c.get("run_fingerprint") or (kept[i] if i < len(kept) else now) for i, c in enumerate(chunks)]
    known = {e.get("fingerprint"): e.get("inputs") or {} for e in run.get("rolled_back") or []}
    known[now] = inputs
    runs = []
    for fp in dict.fromkeys(per_chunk):
        rec = known.get(fp, {})
        runs.append({"fingerprint": fp, "chunks": [i for i, f in enumerate(per_chunk) if f == fp],
                     "settings": {k: v for k, v in rec.items() if k.startswith("settings.") or k in ("prompt", "style")},
                     "changed_from_now": changed_inputs(rec, inputs) if fp != now else []})
    return {"chunk_runs": per_chunk, "runs": runs}


def open_run(image: Tensor, cameras: Cameras, frames: int, settings, out_dir: str | None = None,
             resume: bool = False, overwrite: bool = False, run_info: dict | None = None,
             components: dict | None = None, from_chunk: int = 0, advice: Advice | None = None) -> LoopState:
    """The loop's first state: the path, the chunking, the run folder (created, or checked and read
    back to its last finished chunk when ``resume``).

    ``from_chunk`` k > 0 rolls the run in the folder back (the official demo's rollback): its first k
    chunks are kept byte for byte, the later ones are deleted and made again with these inputs
    (other settings, prompt, style, the path after the kept frames); the start image and the
    chunking must stay. run.json then records each kept chunk's run and the runs replaced.

    ``image [H, W, 3]`` in 0..1 (stored as uint8 levels). The run's inputs (``run_inputs``: the
    image, the path, every setting, ``run_info`` such as the prompt, and the ``components``' model
    files, weights and dtype) are recorded in run.json, so resume only continues the same run and
    says which input changed. Validate every input before calling this: ``overwrite`` deletes the
    old run's outputs here. ``advice`` words the folder's refusals (``outputs.NODE_ADVICE`` for nodes).
    """
    starts = settings.chunk_starts(frames)
    if from_chunk and not out_dir:
        raise ValueError(f"from_chunk {from_chunk}: a rollback needs the output folder of the run to roll back")
    if from_chunk and overwrite:
        raise ValueError("from_chunk and overwrite exclude each other: a rollback keeps the first chunks; pass one")
    path = run_path(cameras, frames, settings)
    image = quantize(image.float().cpu())
    folder = RunFolder(out_dir) if out_dir else None
    fp = record = None
    if folder is not None:
        info = dict(run_info or {})
        inputs = run_inputs(image, path, settings, info, components)
        fp = inputs_fingerprint(inputs)
        record = {"fingerprint": fp, "inputs": inputs, **{k: v for k, v in info.items() if not isinstance(v, Tensor)}}
        if from_chunk:
            record = _roll_back(folder, from_chunk, starts, settings, inputs, path, record)
        else:
            folder.prepare(record, resume, overwrite, advice)
        path.to_re10k(folder.path("cameras.txt"))
        path.to_json(folder.path("cameras.json"))
    state = LoopState(settings, path, tuple(starts), image[None], folder=folder,
                      world=WorldModel(settings.world_voxel, keep=getattr(settings, "world_keep", "newest"))
                      if settings.world_voxel else None, fingerprint=fp,
                      record=record)
    if folder is not None and (resume or from_chunk):
        state = _read_back(state)
    return state


def _read_back(state: LoopState, limit: int | None = None) -> LoopState:
    """The state after the run folder's finished chunks (at most ``limit``)."""
    folder, s = state.folder, state.settings
    first = min(folder.finished_chunks(), len(state.starts) if limit is None else limit)
    if not first:
        return state
    chunks = []
    for k in range(first):  # damaged records are named, with what to do
        chunks.append(read_json(os.path.join(folder.chunk_dir(k), "chunk.json"), "resume: chunk record"))
    video = folder.read_frames(state.starts[first - 1] + s.chunk_frames)
    d = read_npy(os.path.join(folder.chunk_dir(first - 1), "hint_depth.npy"), "resume: cache depth",
                 (2, s.chunk_frames, *video.shape[1:3]))
    world_file = os.path.join(folder.chunk_dir(first - 1), "world.ply")  # the world as it was after that chunk
    if state.world is not None and os.path.isfile(world_file):
        from .gscache.ply import load_ply, ply_property

        state.world.gaussians = load_ply(world_file)
        born = ply_property(world_file, "chunk")  # which chunk added each Gaussian (revisit alignment)
        state.world.born = born.long() if born is not None else torch.zeros(len(state.world.gaussians),
                                                                             dtype=torch.long)
        state.world.chunks = first
    return replace(state, video=video, next_chunk=first, chunks=tuple(chunks), prev_depth=torch.from_numpy(d[0]),
                   prev_alpha=torch.from_numpy(d[1]), resumed_from=first)


def replay_last(state: LoopState) -> LoopState:
    """A finished run one chunk before its end (read back from its folder): a graph that must run its
    body once more -- the wired loop resumed after its last chunk -- plans that chunk again;
    ``catch_up`` then finds it in the folder and returns the finished run without writing it again."""
    if not state.done or state.folder is None or not state.starts:
        return state
    start = replace(state, video=state.video[:1], next_chunk=0, chunks=(), prev_depth=None, prev_alpha=None)
    return replace(_read_back(start, limit=len(state.starts) - 1), resumed_from=state.resumed_from)


def catch_up(state: LoopState) -> LoopState:
    """The state after the chunks the run folder holds beyond ``state`` (this same run went further
    before, e.g. a re-queued graph whose loop was interrupted): read back, not made again."""
    folder = state.folder
    if folder is None or folder.finished_chunks() <= state.next_chunk:
        return state
    with open(folder.path("run.json"), encoding="utf-8") as f:
        if json.load(f).get("fingerprint") != state.fingerprint:
            raise ValueError(f"{folder.root} now holds another run (other inputs or settings); choose another "
                             "output folder")
    start = replace(state, video=state.video[:1], next_chunk=0, chunks=(), prev_depth=None, prev_alpha=None)
    return replace(_read_back(start), resumed_from=state.resumed_from)


def plan_chunk(state: LoopState) -> ChunkPlan:
    """What the next chunk's stages take (history, cameras, context, seeds)."""
    s, k = state.settings, state.next_chunk
    if state.done:
        raise ValueError(f"all {state.total_chunks} chunks are made; there is no next chunk")
    start = state.starts[k]
    ctx = 1 if k == 0 else s.context_frames
    hist = history_indices(s, k, start)
    cache_seed, sampler_seed = chunk_seeds(s, k)
    return ChunkPlan(k, start, ctx, hist, state.video[hist], state.path[hist], state.path[start:start + s.chunk_frames],
                     state.video[-ctx:], cache_seed, sampler_seed)


def align_history_depth(state: LoopState, plan: ChunkPlan, geometry: GeometryResult, depth: Tensor,
                        alpha_threshold: float | None = None, alignment: str | None = None
                        ) -> tuple[Tensor, float | None]:
    """The history's depth ``[V, H, W]`` brought to the scale of the cache it was generated from.

    The previous cache's depth at the previous chunk's cameras is known where it was opaque
    (alpha > ``alpha_threshold``, the cache's); depth is fitted there, with one fit for the whole
    history or, with the settings' ``depth_fit`` "frame", one per frame where the frame overlaps
    the cache enough (``fit_each_frame``; the others keep the history's fit). The first chunk, a
    previous cache with nothing opaque at the history frames and ``alignment`` "official" (the
    official code keeps the geometry model's raw scale; default: the settings') keep ``depth``.
    Returns ``(depth, residual of the fit or None)``.
    """
    alignment = state.settings.geometry_alignment if alignment is None else alignment
    check_alignment(alignment)
    if plan.index == 0 or state.prev_depth is None or alignment == "official":
        return depth, None
    thr = state.settings.gs.alpha_threshold if alpha_threshold is None else alpha_threshold
    sel = plan.history - (plan.start + plan.context - state.settings.chunk_frames)
    ref_d, ref_a = state.prev_depth[sel], state.prev_alpha[sel]
    if not bool((ref_a > thr).any()):
        return depth, None
    aligned, fit = align_depth_to_cache(replace(geometry, depth=depth), ref_d, ref_a, thr)
    if getattr(state.settings, "depth_fit", "chunk") == "frame":
        aligned = fit_each_frame(replace(geometry, depth=depth), aligned, ref_d, ref_a, thr)
    return aligned, fit.residual


DEPTH_FITS: tuple[str, ...] = ("chunk", "frame")
FRAME_FIT_MIN_OVERLAP = 0.05  # of a frame's pixels: less opaque cache than this keeps the history's fit


def fit_each_frame(geometry: GeometryResult, aligned: Tensor, ref_depth: Tensor, ref_alpha: Tensor,
                   alpha_threshold: float) -> Tensor:
    """Each history frame's depth ``[V, H, W]`` fitted to the cache on its own pixels.

    One fit for the whole history leaves each frame's own scale error in it (a monocular model's
    scale wanders from frame to frame); the cache is then built on the last frames, and the chunk
    after it inherits their error: chunk by chunk the scene's scale takes a random walk. Fitting
    each frame to the previous cache (where it is opaque on at least ``FRAME_FIT_MIN_OVERLAP`` of
    the frame and half the pixels are inliers of the robust fit) keeps every frame at the cache's
    scale. Frames without that keep ``aligned`` (the history's one fit)."""
    out = aligned.clone()
    for i in range(len(aligned)):
        opaque = ref_alpha[i] > alpha_threshold
        if float(opaque.float().mean()) < FRAME_FIT_MIN_OVERLAP:
            continue
        one = GeometryResult(geometry.depth[i:i + 1], geometry.confidence[i:i + 1], geometry.cameras[i:i + 1],
                             geometry.kind, None if geometry.inverse is None else geometry.inverse[i:i + 1])
        depth, fit = align_depth_to_cache(one, ref_depth[i:i + 1], ref_alpha[i:i + 1], alpha_threshold)
        if fit.inliers >= 0.5:
            out[i] = depth[0].to(out.dtype)
    return out


REVISIT_GAP = 3  # chunks: the world's Gaussians older than this are "remembered" (a revisit, not the last few)
REVISIT_MIN_OVERLAP = 0.05  # of the history's pixels: less remembered overlap than this is no revisit


def align_to_world(state: LoopState, plan: ChunkPlan, depth: Tensor, cameras,
                   gap: int = REVISIT_GAP) -> tuple[Tensor, float | None]:
    """Drift control on a revisit: the history's depth ``[V, H, W]`` (already fitted to the previous
    cache) scaled to the persistent world where the history sees what chunks at least ``gap``
    chunks older left there. Chunk to chunk, each depth fit adds a little scale error; where the
    path comes back, the remembered scene says how much has piled up, and this chunk (and through
    the cache, every later one) is brought back to it. Without enough remembered overlap
    (``REVISIT_MIN_OVERLAP`` of the pixels, half of them inliers of the robust fit) ``depth`` is
    kept. Returns ``(depth, scale applied or None)``."""
    world = state.world
    if world is None or plan.index <= gap:
        return depth, None
    old = world.remembered(plan.index - gap)
    if old is None:
        return depth, None
    from .geometry.align import fit_depth_scale
    from .gscache.world import render_in_frusta

    ref, seen = render_in_frusta(old, cameras.to("cpu", dtype=torch.float32), state.settings.gs)
    if not seen:
        return depth, None
    # where the remembered Gaussians are opaque (the cache's alpha rule) and both depths are known
    weight = ref.masks & (ref.depths > 0) & (depth > 0)
    if float(weight.float().mean()) < REVISIT_MIN_OVERLAP:
        return depth, None
    fit = fit_depth_scale(depth, ref.depths, weight.double())
    if fit.inliers < 0.5:
        return depth, None
    return (depth.double() * fit.scale).float(), fit.scale


@dataclass(frozen=True)
class RetrievedViews:
    """Past frames added to the online cache's training views (``retrieve_world_views``)."""

    index: Tensor  # [R] video indices
    frames: Tensor  # [R, H, W, 3]
    depth: Tensor  # [R, H, W] the world's depth at their cameras (0 where the world has nothing)
    cameras: Cameras  # [R] their cameras (the path's)


def retrieve_world_views(state: LoopState, plan: ChunkPlan, world_hints, n: int, trained: Cameras | None = None,
                         config=None) -> RetrievedViews | None:
    """The ``n`` past frames, older than the history, whose cameras best see what the chunk's cameras
    will see (``world_hints``: the world rendered at ``plan.cameras``), beyond what the ``trained``
    views (the history frames the cache trains on) see (``gscache.world.retrieve_views``); None when
    none adds anything.

    Their depth is the persistent world's rendered at their cameras, not each chunk's depth as it
    was aligned then: the world is the one frame all later chunks were fitted to (a frame's own
    depth carries the scale drift of its chunk), and nothing more needs keeping per frame (a
    resumed run has the world in the run folder). The scoring costs one projection of
    ``RETRIEVAL_POINTS`` points per past camera; the render, the ``n`` views' frusta of the world."""
    from .gscache.world import render_in_frusta, retrieve_views, target_points

    world = state.world
    older = int(plan.history.min())
    if n < 1 or world is None or world.gaussians is None or older == 0:
        return None
    points, distance = target_points(world_hints, plan.cameras)
    pick = retrieve_views(points, distance, state.path[:older], n, given=trained)
    if not len(pick):
        return None
    cameras = state.path[pick].to(dtype=torch.float32)
    ref, _ = render_in_frusta(world.gaussians, cameras, config if config is not None else state.settings.gs)
    depth = torch.where(ref.masks & (ref.depths > 0), ref.depths, torch.zeros_like(ref.depths))
    known = (depth > 0).flatten(1).any(dim=1)
    if not bool(known.any()):
        return None
    return RetrievedViews(pick[known], state.video[pick[known]], depth[known], cameras[torch.nonzero(known).flatten()])


def chunk_record(plan: ChunkPlan, chunk_frames: int, prompt: str, residual: float | None, valid: Tensor | None,
                 sigma_start: float | None, timings: dict | None = None, **extra) -> dict:
    """The chunk's ``chunk.json``: cameras used, prompt, history, alignment residual, hint coverage, timings."""
    C, ctx = chunk_frames, plan.context
    return {"chunk": plan.index, "first_frame": plan.start, "frames": C, "context_frames": ctx,
            "new_frames": C - ctx, "prompt": prompt, "history_frames": plan.history.tolist(),
            "depth_fit_residual": residual,
            "valid_hint_fraction": float(valid[ctx:].float().mean()) if valid is not None and C > ctx else 1.0,
            "sigma_start": sigma_start, "cameras": plan.cameras.to_dict(), "timings_s": timings if timings is not None else {}, **extra}


def end_chunk(state: LoopState, plan: ChunkPlan, decoded: Tensor, hint_depth: Tensor, record: dict,
              hints: Tensor | None = None, masks: Tensor | None = None, schedule: Tensor | None = None,
              gaussians=None) -> LoopState:
    """The chunk's frames appended to the video and saved; the next state.

    ``decoded [C, H, W, 3]``: the chunk's frames (the first ``plan.context`` are the overlap,
    dropped); ``hint_depth [2, C, H, W]``: the cache's depth and validity at the chunk's cameras
    (the next chunk aligns its depth to it). ``hints``/``masks``/``schedule`` (what the sampler was
    given) and ``gaussians`` (merged into the persistent world) are recorded when given.
    The chunk folder is written under a temporary name and renamed when whole (the resume point).
    """
    C, ctx = state.settings.chunk_frames, plan.context
    if plan.index != state.next_chunk:
        raise ValueError(f"chunk {plan.index} ended but the loop is at chunk {state.next_chunk}")
    H, W = state.video.shape[1:3]
    if tuple(decoded.shape) != (C, H, W, 3):
        raise ValueError(f"chunk {plan.index + 1} has frames {list(decoded.shape)}; the loop needs "
                         f"[{C}, {H}, {W}, 3] (chunk_frames x the start image's size)")
    decoded = quantize(decoded.float().cpu())
    if state.fingerprint is not None:  # which run (inputs, settings) made the chunk: a rollback mixes runs
        record = {**record, "run_fingerprint": state.fingerprint}
    new = decoded[ctx:]
    video = torch.cat([state.video, new])
    hint_depth = hint_depth.float().cpu()
    if state.world is not None and gaussians is not None:
        state.world.add(gaussians, plan.index)
    folder = state.folder
    if folder is not None:
        k, start = plan.index, plan.start
        _check_folder(state, k)
        tmp = folder.begin_chunk(k)
        if hints is not None and masks is not None:
            for i in range(C):
                save_png(os.path.join(tmp, "hints", f"{start + i:05d}.png"), hints[i])
                save_png(os.path.join(tmp, "masks", f"{start + i:05d}.png"), masks[i])
        if schedule is not None:
            save_png(os.path.join(tmp, "schedule.png"), schedule)
        np.save(os.path.join(tmp, "hint_depth.npy"), hint_depth.numpy())
        # the chunk's cache and the world after it are part of the chunk (written with it, renamed
        # with it): a run resumed at any point, even with every chunk made, has the scene to export
        if gaussians is not None and len(gaussians):
            save_ply(gaussians, os.path.join(tmp, "scene.ply"))
        if state.world is not None and state.world.gaussians is not None:
            save_ply(state.world.gaussians, os.path.join(tmp, "world.ply"), extra={"chunk": state.world.born.float()})
        atomic_write_json(os.path.join(tmp, "chunk.json"), record)
        # chunk 1 writes the start image (kept exactly) with its new frames
        folder.commit_chunk(k, tmp, new if k > 0 else torch.cat([state.video[:1], new]), start + ctx if k > 0 else 0)
        if k > 0:  # only the newest chunk's scene and world are needed
            for name in ("scene.ply", "world.ply"):
                old = os.path.join(folder.chunk_dir(k - 1), name)
                if os.path.isfile(old):
                    os.remove(old)
    return replace(state, video=video, next_chunk=plan.index + 1, chunks=state.chunks + (record,),
                   prev_depth=hint_depth[0], prev_alpha=hint_depth[1])


def _check_folder(state: LoopState, k: int) -> None:
    """Before chunk ``k`` is written: the run folder still holds this run. A folder deleted before
    the first chunk is written (e.g. between an interrupt and a re-queue) is made again, empty; one
    deleted or replaced later is refused before anything is written (nothing is left behind)."""
    folder = state.folder
    if folder.holds_run(state.fingerprint):
        return
    if k == 0 and state.record is not None and not os.path.isfile(folder.path("run.json")):
        folder.prepare(state.record, resume=False, overwrite=False)
        state.path.to_re10k(folder.path("cameras.txt"))
        state.path.to_json(folder.path("cameras.json"))
        return
    raise ValueError(f"{folder.root} no longer holds this run (it was deleted or replaced after chunk {k} began); "
                     "start the run again (queue it again with resume off, or choose another folder)")


def finish_run(state: LoopState, gaussians=None) -> list[str]:
    """The run's final outputs in its folder: video.mp4 (every frame), scene.ply (the last chunk's
    cache) and world.ply (the persistent world), copied from the last chunk's folder, so a resume
    that finds every chunk made writes them all the same. ``gaussians`` (the last cache) is saved as
    scene.ply when the chunk folder has none. Returns the names written (nothing without a folder)."""
    folder = state.folder
    if folder is None:
        return []
    written = ["video.mp4"]
    write_mp4(folder.path("video.mp4"), state.video, state.settings.fps)
    last = folder.chunk_dir(state.next_chunk - 1) if state.next_chunk else None
    for name in ("scene.ply", "world.ply"):
        src = os.path.join(last, name) if last else None
        if src and os.path.isfile(src):
            atomic_copy(src, folder.path(name))
            written.append(name)
        elif name == "scene.ply" and gaussians is not None and len(gaussians):
            save_ply(gaussians, folder.path(name))
            written.append(name)
    folder.remove_temporaries()
    return written
