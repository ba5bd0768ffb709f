"""Fault injection: a run killed or out of disk at any point resumes to the same bytes, with every output.

One run folder goes through a chain of faults -- killed mid-PNG, mid-.npy, between chunks, during the
MP4 and the PLY writes, and disk-full from failing writers -- each followed by a resume; the result
must equal an uninterrupted run frame for frame, and every output the manifest calls byte-stable must
be the same bytes. Also here: the run fingerprint (a changed model, dtype or setting is named),
overwrite (validates before it deletes) and the byte-reproducible MP4. Tiny sizes (32x32, 2 chunks
of 5 frames, 2 sampler steps) keep the module to a few uninterrupted-run times.
"""

import dataclasses
import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import worldwarp_core.loop as loop_mod
import worldwarp_core.outputs as outputs_mod
import worldwarp_core.pipeline as pipeline_mod
from worldwarp_core.geometry.monocular import DepthAnythingV2
from worldwarp_core.geometry.testing import tiny_depth_anything
from worldwarp_core.gscache import GSConfig
from worldwarp_core.models import tiny_model
from worldwarp_core.outputs import changed_inputs, file_identity, write_mp4
from worldwarp_core.pipeline import BYTE_STABLE, SAME_FRAMES, PipelineSettings, WorldWarpPipeline
from worldwarp_core.synthetic import default_scene
from worldwarp_core.trajectory import make_trajectory, median_depth

SETTINGS = PipelineSettings(chunk_frames=5, context_frames=1, steps=2, guidance_scale=2.0,
                            gs=GSConfig(iterations=2, stride=4), world_voxel=0.1, fps=4)
FRAMES = 9  # two chunks


@pytest.fixture(scope="module")
def parts():
    scene = default_scene()
    start = scene.default_camera(32, 32)
    rgb, depth = scene.render(start)
    path = make_trajectory("dolly_in@0.3", FRAMES, start, scene_scale=median_depth(depth))
    geo = DepthAnythingV2(model=tiny_depth_anything(), input_size=56)
    return rgb[0], depth[0], path, tiny_model(seed=0), geo


def _run(parts, out, settings=SETTINGS, model=None, **kw):
    rgb, depth, path, tiny, geo = parts
    kw.setdefault("prompt", "a room")
    return WorldWarpPipeline(model or tiny, geo, None, settings)(rgb, path, FRAMES, out_dir=out, start_depth=depth,
                                                                 **kw)


@pytest.fixture(scope="module")
def reference(parts, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("reference") / "run")
    return _run(parts, out), out


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def _digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _decoded(path):
    import av

    with av.open(path) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(np.float32)


def _same_pictures(video, ref_video, frames_dir):
    """video.mp4 shows the frames it was made from (as the reference does): same count, same pictures
    to within x264's loss, not the bytes (x264 may encode the same frames differently)."""
    got, ref = _decoded(video), _decoded(ref_video)
    pngs = np.stack([np.asarray(outputs_mod.Image.open(os.path.join(frames_dir, n)).convert("RGB"), np.float32)
                     for n in sorted(os.listdir(frames_dir))])
    assert got.shape == ref.shape == pngs.shape, (got.shape, ref.shape, pngs.shape)
    # 4:2:0 chroma on 32x32 noise costs ~6 levels against the PNGs; two encodes differ by far less
    assert np.abs(got - pngs).mean() < 10.0 and np.abs(got - ref).mean() < 3.0
    # each decoded frame is nearest its own PNG (a dropped or shifted frame fails)
    errors = np.abs(got[:, None] - pngs[None]).mean(axis=(2, 3, 4))
    assert (errors.argmin(axis=1) == np.arange(len(pngs))).all(), errors


def _byte_stable_files(root):
    """The files the manifest's byte_stable patterns name."""
    out = []
    for rel in _files(root):
        for pat in BYTE_STABLE:
            rx = "^" + re.escape(pat).replace(r"\*", "[^/]+") + ("" if not pat.endswith("/") else ".*") + "$"
            if re.match(rx, rel):
                out.append(rel)
                break
    return out


class Fault(BaseException):
    """Stands for SIGKILL / SIGINT: not an Exception, so nothing on the way catches it."""


def _once(monkeypatch, module, name, fault, after=0):
    """``module.name`` fails on its call number ``after`` (0-based), leaving what ``fault(args)``
    leaves on disk, then raises what ``fault`` returns."""
    real = getattr(module, name)
    calls = [0]

    def wrapper(*args, **kwargs):
        n = calls[0]
        calls[0] += 1
        if n == after:
            raise fault(*args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def _half_png(path, image):  # killed mid-PNG: the first half of the real file
    outputs_mod.Image.fromarray(outputs_mod.to_uint8(image)).save(path)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    return Fault(f"killed writing {path}")


def _half_npy(path, array):  # killed mid-.npy
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, ")
    return Fault(f"killed writing {path}")


def _half_ply(g, path):  # killed mid-PLY: the temporary is half written, the rename never happens
    open(f"{path}.tmp", "wb").write(b"ply\nformat binary_little_endian 1.0\nelement vertex 9")
    return Fault(f"killed writing {path}")


def _half_copy(src, dst):
    open(f"{dst}.tmp", "wb").write(open(src, "rb").read()[:100])
    return Fault(f"killed copying to {dst}")


def _half_mp4(path, frames, fps=16):
    open(f"{path}.tmp.mp4", "wb").write(b"\x00\x00\x00\x1cftypisom")
    return Fault(f"killed encoding {path}")


def _disk_full(*args):
    return OSError(errno.ENOSPC, "No space left on device")


def test_resume_after_every_fault_gives_the_same_bytes_and_every_output(parts, reference, tmp_path, monkeypatch):
    ref, ref_out = reference
    out = str(tmp_path / "run")
    import numpy

    def kill_before_chunk(k):
        def cb(e):
            if e["stage"] == "chunk" and e["chunk"] == k:
                raise Fault(f"killed before chunk {k}")
        return cb

    # (where, what it leaves) in the order a real run meets them; each is followed by a resume
    chain = [
        ("mid-PNG of chunk 1's frames", lambda m: _once(m, outputs_mod, "save_png", _half_png, after=2), Fault),
        ("mid-.npy of chunk 1", lambda m: _once(m, numpy, "save", _half_npy), Fault),
        ("disk full writing chunk 1's scene.ply", lambda m: _once(m, loop_mod, "save_ply", _disk_full), OSError),
        ("mid-PLY of chunk 1's world.ply", lambda m: _once(m, loop_mod, "save_ply", _half_ply, after=1), Fault),
        ("between chunks", None, Fault),
        ("disk full writing a hint PNG of chunk 2", lambda m: _once(m, loop_mod, "save_png", _disk_full, after=3),
         OSError),
        ("during the MP4 write", lambda m: _once(m, loop_mod, "write_mp4", _half_mp4), Fault),
        ("during the final scene.ply copy", lambda m: _once(m, loop_mod, "atomic_copy", _half_copy), Fault),
        ("disk full writing manifest.json", lambda m: _once(m, pipeline_mod, "atomic_write_json", _disk_full),
         OSError),
    ]
    for i, (where, inject, raised) in enumerate(chain):
        with monkeypatch.context() as m:
            callback = None
            if inject is None:
                callback = kill_before_chunk(1)
            else:
                calls = inject(m)
            with pytest.raises(raised):
                _run(parts, out, resume=i > 0, callback=callback)
            assert inject is None or calls[0] > 0, f"the fault {where!r} was never reached"
        finished = [os.path.isfile(os.path.join(out, "chunks", f"chunk_{k:03d}", "chunk.json")) for k in range(2)]
        if where == "between chunks":
            assert finished == [True, False]  # the finished chunk survived
    events = []
    result = _run(parts, out, resume=True, callback=events.append)
    assert events[0] == {"stage": "resume", "chunk": 2, "frames": FRAMES}  # nothing left to sample
    assert torch.equal(result.frames, ref.frames)
    # every output, the same bytes as the uninterrupted run where the manifest says so
    assert _files(out) == _files(ref_out)
    stable = _byte_stable_files(ref_out)
    assert {"scene.ply", "world.ply", "frames/00008.png"} <= set(stable)
    assert [f for f in stable if _digest(os.path.join(out, f)) != _digest(os.path.join(ref_out, f))] == []
    _same_pictures(os.path.join(out, "video.mp4"), os.path.join(ref_out, "video.mp4"), os.path.join(out, "frames"))
    assert not [f for f in _files(out) if ".tmp" in f]
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["outputs"]["scene"] == "scene.ply" and manifest["outputs"]["world"] == "world.ply"
    assert manifest["byte_stable"] == BYTE_STABLE and "video.mp4" not in BYTE_STABLE
    assert manifest["same_frames"] == SAME_FRAMES


def test_a_resume_with_every_chunk_done_writes_every_final_output(parts, reference, tmp_path):
    """scene.ply was missing after such a resume (the cache was never rebuilt) although the manifest
    listed it; a killed save_ply left scene.ply.tmp."""
    _, ref_out = reference
    out = str(tmp_path / "run")
    shutil.copytree(ref_out, out)
    for name in ("video.mp4", "scene.ply", "world.ply", "manifest.json"):
        os.remove(os.path.join(out, name))
    open(os.path.join(out, "scene.ply.tmp"), "wb").write(b"ply\n")  # a killed writer's leftovers
    open(os.path.join(out, "video.mp4.tmp.mp4"), "wb").write(b"\x00")
    events = []
    _run(parts, out, resume=True, callback=events.append)
    assert [e["stage"] for e in events] == ["resume"]  # no chunk was made again
    for name in ("video.mp4", "scene.ply", "world.ply", "manifest.json"):
        assert os.path.isfile(os.path.join(out, name)), name
    for name in ("scene.ply", "world.ply"):
        assert _digest(os.path.join(out, name)) == _digest(os.path.join(ref_out, name)), name
    _same_pictures(os.path.join(out, "video.mp4"), os.path.join(ref_out, "video.mp4"), os.path.join(out, "frames"))
    assert not [f for f in _files(out) if ".tmp" in f]
    # only the newest chunk keeps a scene and a world (the resume point), the older ones are dropped
    assert sorted(f for f in _files(out) if f.endswith(".ply")) == [
        "chunks/chunk_001/scene.ply", "chunks/chunk_001/world.ply", "scene.ply", "world.ply"]


def test_resume_refuses_other_inputs_and_names_them(parts, reference, tmp_path):
    """Resume mixed models: other weights resumed after chunk 1 and the manifest named only the new one."""
    _, ref_out = reference
    out = str(tmp_path / "run")
    shutil.copytree(ref_out, out)
    before = {f: _digest(os.path.join(out, f)) for f in _files(out)}
    with pytest.raises(ValueError, match=r"holds a different run \(changed: .*model.weights.transformer \(other "
                                         r"contents\)"):
        _run(parts, out, resume=True, model=tiny_model(seed=1))
    other = tiny_model(seed=0)
    other.transformer.to(torch.bfloat16)
    with pytest.raises(ValueError, match=r'model.compute_dtype "torch.float32" -> "torch.bfloat16"'):
        _run(parts, out, resume=True, model=other)
    with pytest.raises(ValueError, match=r"changed: settings.steps 2 -> 3\)"):
        _run(parts, out, resume=True, settings=dataclasses.replace(SETTINGS, steps=3))
    with pytest.raises(ValueError, match=r'changed: prompt "a room" -> "a hall"\)'):
        _run(parts, out, resume=True, prompt="a hall")
    # a setting that changes no frame (the video's frame rate) may change on resume
    _run(parts, out, resume=True, settings=dataclasses.replace(SETTINGS, fps=8))
    assert {f: _digest(os.path.join(out, f)) for f in _files(out) if f.startswith(("frames/", "chunks/"))} == {
        f: d for f, d in before.items() if f.startswith(("frames/", "chunks/"))}
    record = json.load(open(os.path.join(out, "run.json")))
    del record["inputs"]
    record["fingerprint"] = "0" * 64
    json.dump(record, open(os.path.join(out, "run.json"), "w"))
    with pytest.raises(ValueError, match="its record names no inputs to compare"):
        _run(parts, out, resume=True)


def test_model_file_identity(tmp_path):
    """Model files are identified by size + the sha256 of their first and last MiB and 16 sampled
    64 KiB blocks: a fine-tune (every weight moves) is another file, a copy is the same."""
    rng = np.random.default_rng(0)
    a = tmp_path / "a.safetensors"
    data = rng.integers(0, 256, 5 << 20, dtype=np.uint8)
    a.write_bytes(data.tobytes())
    b = tmp_path / "b.safetensors"
    shutil.copyfile(a, b)
    os.utime(b, (1, 1))  # another modification time: still the same model
    assert file_identity(str(a)) == file_identity(str(b))
    tuned = data.copy()
    tuned[(1 << 20) + 7] ^= 1  # one weight in the first sampled block after the head
    b.write_bytes(tuned.tobytes())
    assert file_identity(str(a)) != file_identity(str(b))
    b.write_bytes(data[:-1].tobytes())  # truncated
    assert file_identity(str(a)) != file_identity(str(b))
    folder = tmp_path / "diffusers"
    (folder / "transformer").mkdir(parents=True)
    shutil.copyfile(a, folder / "transformer" / "w.safetensors")
    first = file_identity(str(folder))
    (folder / "transformer" / "config.json").write_text("{}")
    assert file_identity(str(folder)) != first
    assert changed_inputs({"model.file.transformer": file_identity(str(a)), "settings.steps": 50},
                          {"model.file.transformer": file_identity(str(b)), "settings.steps": 50}) == [
        "model.file.transformer (other contents)"]


def test_overwrite_validates_before_it_deletes(parts, reference, tmp_path):
    """--overwrite deleted the old frames and chunks, then the empty-prompt check failed after chunk
    1's 3DGS, leaving the old manifest, video and scene beside nothing."""
    _, ref_out = reference
    out = str(tmp_path / "run")
    shutil.copytree(ref_out, out)
    before = {f: _digest(os.path.join(out, f)) for f in _files(out)}
    with pytest.raises(ValueError, match="empty prompt"):
        _run(parts, out, overwrite=True, prompt="  ")
    assert {f: _digest(os.path.join(out, f)) for f in _files(out)} == before  # nothing deleted
    # a folder that holds no WorldWarp run is never cleared, overwrite or not
    mine = tmp_path / "mine"
    (mine / "frames").mkdir(parents=True)
    (mine / "frames" / "holiday.png").write_bytes(b"mine")
    with pytest.raises(ValueError, match="holds no WorldWarp run .*overwrite only replaces a WorldWarp run"):
        _run(parts, str(mine), overwrite=True)
    assert (mine / "frames" / "holiday.png").read_bytes() == b"mine"
    # a valid overwrite replaces the whole old run: no stale video, scene or manifest stays beside it
    (tmp_path / "run" / "notes.txt").write_text("kept")

    def stop(e):
        if e["stage"] == "chunk":
            raise Fault("stopped")

    with pytest.raises(Fault):
        _run(parts, out, overwrite=True, prompt="another room", callback=stop)
    assert sorted(os.listdir(out)) == ["cameras.json", "cameras.txt", "chunks", "frames", "notes.txt", "run.json"]
    assert os.listdir(os.path.join(out, "frames")) == [] and os.listdir(os.path.join(out, "chunks")) == []


ENCODE = """
import sys, torch
sys.path.insert(0, {root!r})
from worldwarp_core.outputs import write_mp4
g = torch.Generator().manual_seed(0)
write_mp4(sys.argv[1], torch.rand(3, 320, 480, 3, generator=g), 8)
"""


def test_mp4_is_byte_reproducible(tmp_path):
    """12 encodes of identical frames gave 2 different files: x264 picked its thread count (and
    sliced threads) from the CPUs it saw. One thread, our own colour conversion, bitexact muxing."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ENCODE.format(root=root)
    files = []
    for i, cpus in enumerate([None, {0}]):  # all CPUs, then one CPU (x264's auto threads would differ)
        p = str(tmp_path / f"v{i}.mp4")
        pre = (lambda c=cpus: os.sched_setaffinity(0, c)) if cpus and hasattr(os, "sched_setaffinity") else None
        subprocess.run([sys.executable, "-c", code, p], check=True, preexec_fn=pre, timeout=300)
        files.append(open(p, "rb").read())
    assert files[0] == files[1]
    options = re.search(rb"options: ([^\x00]*)", files[0]).group(1)
    assert b" threads=1 " in options and b"sliced_threads=0" in options
    assert b"Lavf" not in files[0]  # no muxer version string
    # the frames come back within the quality of the encode (the colour conversion is BT.601)
    import av

    smooth = torch.linspace(0, 1, 64)[None, :, None].expand(32, 64, 3)
    frames = torch.stack([smooth * 0.8 + 0.1 * i for i in range(2)])
    write_mp4(str(tmp_path / "s.mp4"), frames, 8)
    with av.open(str(tmp_path / "s.mp4")) as c:
        dec = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(np.float32)
    assert np.abs(dec - (frames.numpy() * 255).round()).mean() < 2.0
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]
