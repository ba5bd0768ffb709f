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
import shutil

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .inputs import read_json


def atomic_write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


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


def write_mp4(path: str, frames: Tensor, fps: int = 16) -> str:
    """Encode ``[F, H, W, 3]`` to MP4 with PyAV (H.264 when available, else MPEG-4 Part 2)."""
    import av

    F, H, W, _ = frames.shape
    tmp = f"{path}.tmp.mp4"
    with av.open(tmp, "w") as container:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = W - W % 2, H - H % 2
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "18"}
        for i in range(F):
            img = to_uint8(frames[i])[: stream.height, : stream.width]
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
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


class RunFolder:
    """One generation run on disk (module docstring)."""

    def __init__(self, out_dir: str) -> None:
        self.root = os.path.abspath(out_dir)

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def chunk_dir(self, k: int) -> str:
        return self.path("chunks", f"chunk_{k:03d}")

    def prepare(self, run_info: dict, resume: bool, overwrite: bool) -> None:
        """Create the folder, or check it holds this run (resume), or clear it (overwrite)."""
        existing = self.path("run.json")
        if os.path.isfile(existing):
            if overwrite:
                for sub in ("frames", "chunks"):
                    shutil.rmtree(self.path(sub), ignore_errors=True)
            elif not resume:
                raise ValueError(f"{self.root} already holds a run; pass resume=True (CLI: --resume) to continue it "
                                 "or overwrite=True (--overwrite) to replace it, or choose another output folder")
            elif read_json(existing, "run record", "pass overwrite=True (CLI: --overwrite) to replace the run, or "
                           "choose another output folder").get("fingerprint") != run_info.get("fingerprint"):
                raise ValueError(f"{self.root} holds a different run (other inputs or settings); resume needs the "
                                 "same image, cameras and settings, or choose another output folder")
        elif os.path.isdir(self.root) and os.listdir(self.root) and not overwrite:
            raise ValueError(f"{self.root} is not empty and holds no WorldWarp run; choose an empty or new folder")
        os.makedirs(self.path("frames"), exist_ok=True)
        os.makedirs(self.path("chunks"), exist_ok=True)
        atomic_write_json(existing, run_info)

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
