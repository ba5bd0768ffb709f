"""The run folder: atomic writes, the per-chunk record, resume state, PNG/MP4 writers, the manifest.

Layout of ``out_dir``::

    run.json                 what this run is (settings + input fingerprint); a folder holding
                             another run is refused unless resume/overwrite is asked
    frames/00000.png …       the video so far (uint8 PNG)
    chunks/chunk_000/        one finished chunk, written to chunk_000.tmp then renamed:
        chunk.json           cameras used, prompt, timings, alignment residual
        hints/, masks/       hint images and validity masks (PNG) of the chunk's frames
        hint_depth.npy       the cache's depth at the chunk cameras (the next chunk aligns to it)
        schedule.png         the noise schedule (paper Fig. 9)
    cameras.txt/.json        the cameras of the whole video (RealEstate10K txt + our JSON)
    video.mp4                the video (PyAV)
    scene.ply, world.ply     the last chunk's cache and the persistent world (3DGS .ply)
    manifest.json            settings, model files with sha256, seed, per-stage timings
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .inputs import read_json


def atomic_write_text(path: str, text: str) -> None:
    """Write to ``path.tmp``, then rename: ``path`` is the old or the new text, never half of one; a
    failed write (disk full) leaves no ``.tmp`` behind."""
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_copy(src: str, dst: str) -> None:
    """Copy ``src`` to ``dst`` through ``dst.tmp`` (``dst`` is never half a file)."""
    tmp = f"{dst}.tmp"
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_json(path: str, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, default=str))


def quantize(frames: Tensor) -> Tensor:
    """Frames as stored (uint8 levels), so history read back from PNG equals history kept in memory."""
    return (frames.clamp(0, 1) * 255).round() / 255


def to_uint8(image: Tensor) -> np.ndarray:
    return (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def save_png(path: str, image: Tensor) -> None:
    """``[H, W, 3]`` or ``[H, W]`` in 0..1."""
    Image.fromarray(to_uint8(image)).save(path)


def load_png(path: str) -> Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0)


def rgb_to_yuv420p(img: np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB (H, W even) -> I420 planes ``[H * 3 / 2, W]`` uint8 (Y, then U, then V).

    ITU-R BT.601 limited range in the usual 8-bit integer form (``Y = ((66 R + 129 G + 25 B + 128)
    >> 8) + 16``, ...), chroma from each 2x2 block's mean colour: plain integer maths, so the
    encoder's input is the same bytes on every machine (swscale's SIMD paths may round differently).
    """
    H, W, _ = img.shape
    x = img.astype(np.int32)
    R, G, B = x[..., 0], x[..., 1], x[..., 2]
    Y = ((66 * R + 129 * G + 25 * B + 128) >> 8) + 16
    blocks = x.reshape(H // 2, 2, W // 2, 2, 3).sum(axis=(1, 3))
    r, g, b = [(blocks[..., i] + 2) >> 2 for i in range(3)]
    U = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    V = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128
    return np.concatenate([Y.reshape(H, W), U.reshape(H // 4, W), V.reshape(H // 4, W)]).astype(np.uint8)


def write_mp4(path: str, frames: Tensor, fps: int = 16) -> str:
    """Encode ``[F, H, W, 3]`` to MP4 with PyAV (H.264 when available, else MPEG-4 Part 2).

    Made to give the same bytes from run to run: the colour conversion is our own integer maths
    (``rgb_to_yuv420p``), the encoder runs on one thread (x264's threaded rate control depends on
    which frame finishes first) and the muxer writes no version strings or times. Not promised on
    every machine (two encodes of the same frames in one process have differed), so a run's
    manifest lists video.mp4 as the same frames, not the same bytes.
    Odd widths/heights lose their last column/row (4:2:0 needs even sizes).
    """
    import av

    F, H, W, _ = frames.shape
    h, w = H - H % 2, W - W % 2
    tmp = f"{path}.tmp.mp4"
    try:
        with av.open(tmp, "w", container_options={"fflags": "+bitexact"}) as container:
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height = w, h
            stream.pix_fmt = "yuv420p"
            stream.codec_context.thread_count = 1
            stream.options = {"crf": "18", "threads": "1"} if codec == "libx264" else {"threads": "1"}
            stream.codec_context.flags |= av.codec.context.Flags.bitexact
            for i in range(F):
                planes = rgb_to_yuv420p(to_uint8(frames[i])[:h, :w])
                for packet in stream.encode(av.VideoFrame.from_ndarray(planes, format="yuv420p")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):  # a failed encode leaves nothing beside the outputs
            os.remove(tmp)
    return path


def sha256_file(path: str, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fingerprint(*tensors: Tensor, extra: dict | None = None) -> str:
    """sha256 of the tensors' exact bytes and of ``extra`` (JSON): what identifies a run's inputs."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(json.dumps(extra or {}, sort_keys=True, default=str).encode())
    return h.hexdigest()


def tensor_digest(t: Tensor) -> str:
    """sha256 of a tensor's dtype, shape and exact bytes."""
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype} {list(t.shape)}".encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


IDENTITY_BLOCK = 1 << 16  # 64 KiB
IDENTITY_SAMPLES = 16


def file_identity(path: str) -> str:
    """What identifies a model file without reading all of it: its size and the sha256 of its first
    and last MiB and of ``IDENTITY_SAMPLES`` evenly spaced 64 KiB blocks (the header with every
    tensor's name, dtype and offset, and weights from the whole file); a file under 2 MiB is hashed
    whole. Not the modification time: a copied or re-downloaded file is the same model. A folder
    (diffusers layout, a tokenizer) is the identity of each file under it, by relative path."""
    if os.path.isdir(path):
        h = hashlib.sha256(b"folder")
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                p = os.path.join(root, name)
                h.update(f"{os.path.relpath(p, path)}={file_identity(p)};".encode())
        return h.hexdigest()
    size = os.path.getsize(path)
    h = hashlib.sha256(f"{size};".encode())
    with open(path, "rb") as f:
        if size <= 2 << 20:
            h.update(f.read())
        else:
            h.update(f.read(1 << 20))
            for i in range(IDENTITY_SAMPLES):
                f.seek((1 << 20) + (size - (3 << 20)) * i // IDENTITY_SAMPLES)
                h.update(f.read(IDENTITY_BLOCK))
            f.seek(size - (1 << 20))
            h.update(f.read())
    return h.hexdigest()


def weights_digest(module, per_tensor: int = 256) -> str | None:
    """sha256 over every parameter and buffer of ``module`` (its names, dtypes, shapes and
    ``per_tensor`` evenly spaced values of each): other weights or another dtype give another
    digest, in a fraction of a second for billions of weights. ``None`` for an object without
    ``state_dict``."""
    state = getattr(module, "state_dict", None)
    if not callable(state):
        return None
    h = hashlib.sha256()
    for name, t in sorted(state().items()):
        if not isinstance(t, Tensor):
            continue
        flat = t.detach().reshape(-1)
        if flat.numel() > per_tensor:
            flat = flat[torch.linspace(0, flat.numel() - 1, per_tensor, device=flat.device).long()]
        h.update(f"{name} {t.dtype} {list(t.shape)};".encode())
        h.update(flat.cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def component_inputs(prefix: str, component) -> dict[str, str]:
    """The inputs a component adds to a run's fingerprint: its name, the identity of every file it
    says it was loaded from (``files``), its weights and its dtype (e.g. ``model.transformer``,
    ``model.weights.vae``, ``geometry.weights``)."""
    if component is None:
        return {prefix: "none"}
    out: dict[str, str] = {}
    name = getattr(component, "name", None)
    out[prefix] = name if isinstance(name, str) and name else type(component).__name__
    for key, p in sorted((getattr(component, "files", None) or {}).items()):
        out[f"{prefix}.file.{key}"] = file_identity(p) if isinstance(p, str) and os.path.exists(p) else str(p)
    parts = {k: getattr(component, k, None) for k in ("transformer", "vae", "text_encoder", "model")}
    for key, part in parts.items():
        digest = weights_digest(part)
        if digest is not None:
            out[f"{prefix}.weights.{key}"] = digest
    digest = weights_digest(component)
    if digest is not None:
        out[f"{prefix}.weights"] = digest
    for key in ("compute_dtype", "dtype", "device"):
        v = getattr(component, key, None)
        if isinstance(v, (str, torch.dtype, torch.device)):
            out[f"{prefix}.{key}"] = str(v)
    return out


def flatten_settings(settings: dict, prefix: str = "settings") -> dict[str, object]:
    """``{"gs": {"iterations": 500}}`` -> ``{"settings.gs.iterations": 500}``."""
    out: dict[str, object] = {}
    for k, v in settings.items():
        if isinstance(v, dict):
            out.update(flatten_settings(v, f"{prefix}.{k}"))
        else:
            out[f"{prefix}.{k}"] = v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
    return out


def inputs_fingerprint(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def _show(v, missing=None) -> str:
    text = "(not given)" if v is missing else json.dumps(v, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def changed_inputs(old: dict, new: dict, old_graph=None, new_graph=None) -> list[str]:
    """One phrase per input that differs: ``settings.steps 50 -> 20``, ``model.file.transformer
    (other contents)``; digests are not printed, long texts are shortened. The wired loop's
    ``graph`` (``old_graph``/``new_graph``: the node lists run.json keeps) is told node by node
    (``graph: node 7 (WorldWarpSTDiffSampler) steps 20 -> 30``)."""
    missing = object()
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, missing), new.get(key, missing)
        if a != b:
            if key == "graph" and isinstance(old_graph, list) and isinstance(new_graph, list):
                out += graph_changes(old_graph, new_graph) or ["graph (other links)"]
                continue
            digest = any(isinstance(v, str) and _is_digest(v) for v in (a, b))
            out.append(f"{key} (other contents)" if digest else f"{key} {_show(a, missing)} -> {_show(b, missing)}")
    return out


def graph_changes(old: list, new: list) -> list[str]:
    """What differs between two wired-loop graphs (``[[node id, type, {input: value or ["link", id,
    slot]}], ...]`` per Loop End), one phrase per node."""
    if len(old) != len(new):
        return [f"graph: {len(new)} Loop End(s) instead of {len(old)}"]
    out: list[str] = []
    missing = object()
    for old_end, new_end in zip(old, new):
        a = {str(n[0]): n for n in old_end if isinstance(n, list) and len(n) == 3}
        b = {str(n[0]): n for n in new_end if isinstance(n, list) and len(n) == 3}
        for nid in sorted(set(a) | set(b), key=lambda i: [int(p) if p.isdigit() else 0 for p in i.split(".")]):
            if nid not in a:
                out.append(f"graph: node {nid} ({b[nid][1]}) added")
            elif nid not in b:
                out.append(f"graph: node {nid} ({a[nid][1]}) removed")
            elif a[nid][1] != b[nid][1]:
                out.append(f"graph: node {nid} is a {b[nid][1]}, was a {a[nid][1]}")
            elif a[nid][2] != b[nid][2]:
                ia, ib = a[nid][2], b[nid][2]
                for k in sorted(set(ia) | set(ib)):
                    va, vb = ia.get(k, missing), ib.get(k, missing)
                    if va != vb:
                        out.append(f"graph: node {nid} ({b[nid][1]}) {k} {_show(va, missing)} -> {_show(vb, missing)}")
    return out


def _is_digest(v: str) -> bool:
    return len(v) == 64 and all(c in "0123456789abcdef" for c in v)


# what run.json says about a rolled-back run: each kept chunk's run fingerprint and the runs replaced
ROLLBACK_RECORD = ("chunk_runs", "rolled_back")
@dataclass(frozen=True)
class Advice:
    """How the refusals of a run folder tell the caller to go on (the CLI's flags, the nodes' inputs)."""

    resume: str
    overwrite: str | None  # None: the caller cannot replace a run
    folder: str


CLI_ADVICE = Advice("pass resume=True (CLI: --resume)", "overwrite=True (CLI: --overwrite)",
                    "choose another output folder")
NODE_ADVICE = Advice("turn 'resume' on", None, "set another output_folder")


# what a run writes at the top of its folder (overwrite removes exactly these, nothing else)
RUN_OUTPUTS = ("frames", "chunks", "video.mp4", "scene.ply", "world.ply", "cameras.txt", "cameras.json",
               "manifest.json")


class RunFolder:
    """One generation run on disk (module docstring)."""

    def __init__(self, out_dir: str) -> None:
        self.root = os.path.abspath(out_dir)

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def chunk_dir(self, k: int) -> str:
        return self.path("chunks", f"chunk_{k:03d}")

    def prepare(self, run_info: dict, resume: bool, overwrite: bool, advice: "Advice | None" = None) -> None:
        """Create the folder, or check it holds this run (resume), or replace the run in it (overwrite).

        ``run_info["inputs"]`` (``{name: value or digest}``: image, cameras, every setting, model
        files, weights, dtype, ...) is what resume compares; a different run is refused with the
        inputs that changed. Call it when every input is validated: overwrite deletes the old run's
        outputs (``RUN_OUTPUTS``) here, and only a folder holding a WorldWarp run is ever cleared.
        ``advice`` words the refusals for the caller (``CLI_ADVICE``, ``NODE_ADVICE``).
        A folder holding only what a killed writer left (``chunks/chunk_000.tmp``, ...) counts as empty;
        a folder inside another run's folder is refused.
        """
        a = advice or CLI_ADVICE
        self.check_not_nested()
        existing = self.path("run.json")
        if os.path.isfile(existing):
            old = read_json(existing, "run record", f"{a.overwrite}, or {a.folder}" if a.overwrite else a.folder)
            if overwrite:
                self.remove_outputs()
            elif not resume:
                todo = f"{a.resume} to continue it, {a.overwrite} to replace it, or {a.folder}" if a.overwrite \
                    else f"{a.resume} to continue it, or {a.folder}"
                raise ValueError(f"{self.root} already holds a run; {todo}")
            elif old.get("fingerprint") == run_info.get("fingerprint"):
                # a rolled-back run resumed: which chunks came from which settings stays recorded
                run_info = {**{k: old[k] for k in ROLLBACK_RECORD if k in old}, **run_info}
            else:
                if isinstance(old.get("inputs"), dict) and isinstance(run_info.get("inputs"), dict):
                    diff = changed_inputs(old["inputs"], run_info["inputs"], old.get("graph"), run_info.get("graph"))
                    what = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
                else:
                    what = "its record names no inputs to compare (made by an older version)"
                rollback = "roll back to make the later chunks with these (from_chunk; CLI: --from-chunk)"
                todo = (f"resume with the same inputs, {rollback}, {a.overwrite} to replace it, or {a.folder}"
                        if a.overwrite else f"resume with the same inputs, {rollback}, or {a.folder}")
                raise ValueError(f"cannot resume: {self.root} holds a different run (changed: {what}); {todo}")
        else:
            self.remove_temporaries()  # debris of a folder deleted mid-run is not "another run's files"
            if os.path.isdir(self.root) and os.listdir(self.root):
                raise ValueError(f"{self.root} is not empty and holds no WorldWarp run (no run.json); {a.folder} "
                                 "that is empty or new" + (" (overwrite only replaces a WorldWarp run)" if a.overwrite
                                                           else ""))
        self.remove_temporaries()
        os.makedirs(self.path("frames"), exist_ok=True)
        os.makedirs(self.path("chunks"), exist_ok=True)
        atomic_write_json(existing, run_info)

    def chunk_indices(self) -> list[int]:
        """Indices of every chunk folder present (finished or not part of the run any more)."""
        folder = self.path("chunks")
        names = os.listdir(folder) if os.path.isdir(folder) else []
        return sorted(int(m.group(1)) for n in names if (m := re.fullmatch(r"chunk_(\d+)", n)))

    def roll_back(self, keep: int, kept_frames: int, run_info: dict) -> None:
        """Keep chunks ``0..keep-1`` and frames ``[0, kept_frames)`` as they are; delete every later
        chunk (the newest first, so at every moment the folder holds a shorter run of the old
        settings: an interrupted rollback can be run again or resumed), their frames and the run's
        final outputs; then record ``run_info`` (the new run and what it replaced) in run.json."""
        for name in ("video.mp4", "scene.ply", "world.ply", "manifest.json"):
            if os.path.lexists(self.path(name)):
                os.remove(self.path(name))
        for k in reversed([k for k in self.chunk_indices() if k >= keep]):
            shutil.rmtree(self.chunk_dir(k))
        frames = self.path("frames")
        for name in sorted(os.listdir(frames)) if os.path.isdir(frames) else []:
            m = re.fullmatch(r"(\d+)\.png", name)
            if m and int(m.group(1)) >= kept_frames:
                os.remove(os.path.join(frames, name))
        self.remove_temporaries()
        atomic_write_json(self.path("run.json"), run_info)

    def check_not_nested(self) -> None:
        """Refuse a folder inside another run's folder (its frames/, chunks/ ...): the two runs' files
        would mix and an overwrite of the outer run would delete this one."""
        parent = os.path.dirname(self.root)
        while parent and parent != os.path.dirname(parent):
            if os.path.isfile(os.path.join(parent, "run.json")):
                raise ValueError(f"{self.root} is inside the run folder {parent}; choose a folder outside it")
            parent = os.path.dirname(parent)

    def holds_run(self, fingerprint: str | None) -> bool:
        """Whether the folder still holds the run with ``fingerprint`` (not deleted since)."""
        try:
            return read_json(self.path("run.json"), "run record").get("fingerprint") == fingerprint
        except ValueError:
            return False

    def remove_outputs(self) -> None:
        """Delete the run's outputs (``RUN_OUTPUTS`` and temporaries); anything else stays."""
        for name in RUN_OUTPUTS:
            p = self.path(name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            elif os.path.lexists(p):
                os.remove(p)
        self.remove_temporaries()

    def remove_temporaries(self) -> None:
        """Delete what a killed writer left (``scene.ply.tmp``, ``video.mp4.tmp.mp4``, ``chunk_001.tmp/``)."""
        ours = set(RUN_OUTPUTS) | {"run.json"}
        for folder in (self.root, self.path("chunks")):
            if not os.path.isdir(folder) or os.path.islink(folder):
                continue
            for name in os.listdir(folder):
                base, tmp, _ = name.partition(".tmp")
                if tmp and (base in ours or (folder != self.root and base.startswith("chunk_"))):
                    p = os.path.join(folder, name)
                    shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p)
        chunks = self.path("chunks")  # an emptied chunks/ of a folder that holds no run is debris too
        if (not os.path.isfile(self.path("run.json")) and os.path.isdir(chunks) and not os.path.islink(chunks)
                and not os.listdir(chunks)):
            os.rmdir(chunks)

    def finished_chunks(self) -> int:
        k = 0
        while os.path.isfile(os.path.join(self.chunk_dir(k), "chunk.json")):
            k += 1
        return k

    def begin_chunk(self, k: int) -> str:
        tmp = self.chunk_dir(k) + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(os.path.join(tmp, "hints"))
        os.makedirs(os.path.join(tmp, "masks"))
        return tmp

    def commit_chunk(self, k: int, tmp: str, new_frames: Tensor, first_index: int) -> None:
        """Write the chunk's new frames, then rename the chunk folder: the chunk exists only when whole."""
        for i in range(new_frames.shape[0]):
            save_png(self.path("frames", f"{first_index + i:05d}.png"), new_frames[i])
        final = self.chunk_dir(k)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)

    def read_frames(self, count: int) -> Tensor:
        frames = []
        for i in range(count):
            p = self.path("frames", f"{i:05d}.png")
            if not os.path.isfile(p):
                raise ValueError(f"resume: frame {p} of a finished chunk is missing; the run folder is damaged")
            frames.append(load_png(p))
        return torch.stack(frames)
