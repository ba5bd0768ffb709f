"""The chunk loop end to end on CPU with tiny models: chunking, context, cameras, manifest, resume."""

import io
import json
import os
from dataclasses import replace

import pytest
import torch

from worldwarp_core.cli import Progress
from worldwarp_core.geometry.monocular import DepthAnythingV2
from worldwarp_core.geometry.testing import tiny_depth_anything
from worldwarp_core.gscache import GSConfig
from worldwarp_core.models import tiny_model
from worldwarp_core.outputs import load_png
from worldwarp_core.pipeline import PipelineSettings, WorldWarpPipeline
from worldwarp_core.synthetic import default_scene
from worldwarp_core.trajectory import make_trajectory, median_depth

SETTINGS = PipelineSettings(chunk_frames=9, context_frames=1, steps=3, guidance_scale=2.0,
                            gs=GSConfig(iterations=4, stride=4), world_voxel=0.1, fps=4)


@pytest.fixture(scope="module")
def inputs():
    scene = default_scene()
    start = scene.default_camera(48, 32)
    rgb, depth = scene.render(start)
    path = make_trajectory("dolly_in@0.3", 9, start, scene_scale=median_depth(depth))
    return rgb[0], depth[0], path


def _pipe(settings=SETTINGS):
    return WorldWarpPipeline(tiny_model(seed=0), DepthAnythingV2(model=tiny_depth_anything(), input_size=56), None,
                             settings)


@pytest.fixture(scope="module")
def full_run(inputs, tmp_path_factory):
    rgb, depth, path = inputs
    out = str(tmp_path_factory.mktemp("run") / "full")
    text = io.StringIO()  # what the CLI prints while it runs
    result = _pipe()(rgb, path, 17, prompt="a room", out_dir=out, start_depth=depth, callback=Progress(2, text))
    return result, out, text.getvalue()


def test_two_chunks_frames_context_cameras_manifest(full_run, inputs):
    result, out, _ = full_run
    rgb, _, path = inputs
    assert result.frames.shape == (17, 32, 48, 3) and len(result.cameras) == 17
    assert len(result.chunks) == 2 and [c["first_frame"] for c in result.chunks] == [0, 8]
    # frame 0 is the start image, kept exactly (as stored: uint8 levels)
    torch.testing.assert_close(result.frames[0], (rgb * 255).round() / 255)
    # chunk 2's context frame is chunk 1's last frame, bit for bit (as fed to the encoder)
    ctx_in = load_png(os.path.join(out, "chunks", "chunk_001", "hints", "00008.png"))
    assert torch.equal(ctx_in, result.frames[8])
    assert torch.equal(load_png(os.path.join(out, "frames", "00008.png")), result.frames[8])
    # cameras saved are the cameras asked for (the 9-frame path extrapolated to 17)
    from worldwarp_core.cameras import Cameras
    from worldwarp_core.trajectory import extend_to

    saved = Cameras.from_json(os.path.join(out, "cameras.json"))
    torch.testing.assert_close(saved.viewmats, extend_to(path.to(dtype=torch.float64), 17).viewmats)
    used = Cameras.from_dict(result.chunks[1]["cameras"])
    torch.testing.assert_close(used.viewmats, saved.viewmats[8:17])
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["chunks"] == 2 and manifest["seed"] == 0 and manifest["frames"] == 17
    # the inference profile: the official sampler's rule and shift; a monocular backend estimates no poses
    inference = manifest["inference"]
    assert {k: v for k, v in inference.items() if k != "differs"} == {
        "mask_rule": "official", "shift": 5.0, "pose_source": "auto", "pose_source_used": "requested",
        "history_intrinsics": "requested", "geometry_alignment": "sim3", "geometry_input": "model",
        "geometry_input_used": "model", "profile": "pack"}
    # what these settings change from the pack profile, each with both values
    assert inference["differs"] == {
        "chunk_frames": {"profile": 49, "used": 9}, "context_frames": {"profile": 5, "used": 1},
        "steps": {"profile": 50, "used": 3}, "guidance_scale": {"profile": 5.0, "used": 2.0},
        "world_voxel": {"profile": None, "used": 0.1}, "fps": {"profile": 16, "used": 4},
        "gs.iterations": {"profile": 500, "used": 4}, "gs.stride": {"profile": 1, "used": 4}}
    for stage in ("geometry", "3dgs", "warp", "st-diff", "vlm"):
        assert stage in manifest["timings_total_s"]
    for name in ("video.mp4", "scene.ply", "world.ply", "cameras.txt", "frames/00016.png",
                 "chunks/chunk_000/schedule.png", "chunks/chunk_001/masks/00012.png"):
        assert os.path.isfile(os.path.join(out, name)), name
    assert result.chunks[1]["depth_fit_residual"] is not None  # chunk 2 aligned its depth to the cache


def test_progress_names_chunk_k_of_n_and_every_stage(full_run):
    lines = [line.strip() for line in full_run[2].replace("\r", "\n").splitlines() if line.strip()]
    # chunk 1's start depth is given (no geometry line); chunk 2 has an ETA from chunk 1's time
    chunk2 = next(i for i, line in enumerate(lines) if line.startswith("chunk 2/2 (from frame 8), ETA "))
    assert lines[0] == "chunk 1/2 (from frame 0)"
    seen = [line.split()[0] for line in lines[chunk2 + 1:]]
    order = ["geometry", "3dgs", "warp", "encode", "st-diff", "decode", "done:"]
    assert [s for s in dict.fromkeys(seen) if s in order] == order
    assert "3dgs     [####################] 4/4" in lines and lines[-1].startswith("done: chunk 2/2, 17 frames")


def test_resume_after_interrupt_is_identical(full_run, inputs, tmp_path):
    full, _, _ = full_run
    rgb, depth, path = inputs
    out = str(tmp_path / "resumed")

    def kill_after_first_chunk(event):
        if event["stage"] == "chunk" and event["chunk"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _pipe()(rgb, path, 17, prompt="a room", out_dir=out, start_depth=depth, callback=kill_after_first_chunk)
    assert os.path.isfile(os.path.join(out, "chunks", "chunk_000", "chunk.json"))  # the finished chunk survived
    assert not os.path.isdir(os.path.join(out, "chunks", "chunk_001"))
    with pytest.raises(ValueError, match="already holds a run; pass resume"):
        _pipe()(rgb, path, 17, prompt="a room", out_dir=out, start_depth=depth)
    events = []
    resumed = _pipe()(rgb, path, 17, prompt="a room", out_dir=out, start_depth=depth, resume=True,
                      callback=events.append)
    assert events[0]["stage"] == "resume" and events[0]["chunk"] == 1
    assert torch.equal(resumed.frames, full.frames)
    with pytest.raises(ValueError, match="holds a different run"):
        _pipe()(rgb, path, 17, prompt="another prompt", out_dir=out, start_depth=depth, resume=True)


def test_resume_names_a_damaged_chunk_record(full_run, inputs, tmp_path):
    """A corrupt chunk.json or a truncated hint_depth.npy is named, with what to do, not a decoder traceback."""
    import shutil

    rgb, depth, path = inputs
    _, out, _ = full_run
    for name, damage in [("chunk.json", lambda p: open(p, "w").write('{"chunk": 0, "fir')),
                         ("hint_depth.npy", lambda p: open(p, "r+b").truncate(300))]:
        copy = str(tmp_path / name)
        shutil.copytree(out, copy)
        shutil.rmtree(os.path.join(copy, "chunks", "chunk_001"))  # resume will continue after chunk 1
        damage(os.path.join(copy, "chunks", "chunk_000", name))
        with pytest.raises(ValueError, match=rf"resume: .*chunk_000/{name} is (corrupt|truncated or corrupt) "
                                             r"\(.*\); delete that chunk folder to redo it, or run with --overwrite"):
            _pipe()(rgb, path, 17, prompt="a room", out_dir=copy, start_depth=depth, resume=True)


def test_bad_input(inputs, tmp_path):
    rgb, depth, path = inputs
    with pytest.raises(ValueError, match=r"20 frames cannot be chunked into 9-frame chunks .* use 17 or 25"):
        _pipe()(rgb, path, 20, out_dir=None, start_depth=depth, prompt="x")
    with pytest.raises(ValueError, match=r"start image is 40x32: width and height must be multiples of 16"):
        _pipe()(rgb[:, :40], path, 17, start_depth=depth, prompt="x")
    with pytest.raises(ValueError, match=r"context frames must be 4j\+1"):
        PipelineSettings(chunk_frames=9, context_frames=2)
    with pytest.raises(ValueError, match=r"frame count must be 4k\+1"):
        PipelineSettings(chunk_frames=10)
    with pytest.raises(ValueError, match=r"frames must be a whole number, got 17.0"):
        _pipe()(rgb, path, 17.0, out_dir=None, start_depth=depth, prompt="x")
    with pytest.raises(ValueError, match=r"start image values must be in 0..1, got .*; it looks like 0..255"):
        _pipe()(rgb * 255, path, 17, out_dir=str(tmp_path / "never"), start_depth=depth, prompt="x")
    nan = rgb.clone()
    nan[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"start image has 1 NaN/inf values"):
        _pipe()(nan, path, 17, out_dir=str(tmp_path / "never"), start_depth=depth, prompt="x")
    assert not (tmp_path / "never").exists()  # refused before the run folder was made
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not empty and holds no WorldWarp run"):
        _pipe()(rgb, path, 17, out_dir=str(tmp_path / "other"), start_depth=depth, prompt="x")
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"  # nothing of the user's was touched


def test_cli_check_models_and_missing_files(tmp_path, capsys):
    from worldwarp_core.cli import main

    assert main(["check-models", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "MISSING  transformer" in out and "diffusion_models" in out
    img = tmp_path / "img.png"
    from PIL import Image

    Image.new("RGB", (48, 32)).save(img)
    code = main(["generate", "--image", str(img), "--trajectory", "dolly_in", "--frames", "49", "--models",
                 str(tmp_path), "--out", str(tmp_path / "o"), "--geometry", "depth-anything-v2", "--prompt", "x",
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "missing model files" in err and "depth-anything-v2-small-hf not found in" in err
    assert main(["presets"]) == 0 and "orbit_left" in capsys.readouterr().out


def test_cli_generate_end_to_end_with_tiny_model_files(tmp_path, tiny_florence, capsys):
    """The README's main job, `generate`, through the real loaders: a Wan2.1 diffusers folder, a
    transformers Depth Anything V2 folder and a Florence-2 captioner (all tiny random weights)."""
    import json
    import math

    import numpy as np
    from PIL import Image

    from worldwarp_core.cli import main
    from worldwarp_core.geometry.testing import save_tiny_depth_anything
    from worldwarp_core.models import save_tiny_diffusers_folder

    wan = save_tiny_diffusers_folder(str(tmp_path / "Wan2.1-T2V-1.3B-Diffusers"))
    depth = save_tiny_depth_anything(str(tmp_path / "depth-anything-v2-small-hf"))
    img = tmp_path / "start.png"
    Image.fromarray(np.random.RandomState(0).randint(0, 256, (64, 96, 3)).astype(np.uint8)).save(img)
    out = tmp_path / "run"
    code = main(["generate", "--image", str(img), "--trajectory", "dolly_in + pan_left", "--frames", "25",
                 "--chunk", "17", "--context", "9", "--steps", "2", "--cache", "pointcloud", "--models", wan,
                 "--out", str(out), "--geometry", "depth-anything-v2", "--geometry-path", depth, "--fov", "60",
                 "--dtype", "fp32", "--training-free", "--style", "Van Gogh style", "--captioner", "florence-2",
                 "--captioner-path", tiny_florence, "--geometry-batch", "3", "--geometry-dtype", "fp32",
                 "--cfg-batch", "sequential", "--vae-tiling"])
    assert code == 0, capsys.readouterr().err
    assert len(list((out / "frames").glob("*.png"))) == 25 and (out / "video.mp4").stat().st_size > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["captioner"] == "florence-2" and manifest["frames"] == 25
    assert manifest["memory"] == {"geometry_batch": 3, "geometry_batched": True, "geometry_dtype": "float32",
                                  "cfg_batch": "sequential", "vae_tiling": True, "offload": "none"}
    assert manifest["settings"]["geometry_batch"] == 3 and manifest["settings"]["cfg_batch"] == "sequential"
    chunk = json.loads((out / "chunks" / "chunk_001" / "chunk.json").read_text())
    assert chunk["prompt"].endswith(", Van Gogh style") and len(chunk["prompt"]) > len(", Van Gogh style")
    cams = json.loads((out / "cameras.json").read_text())
    assert len(cams["frames"]) == 25
    assert cams["frames"][0]["K"][0][0] == pytest.approx(0.5 * 96 / math.tan(math.radians(30)), rel=1e-5)  # --fov


class _Sim3Geometry:
    """An estimator that reports the truth in another frame: the synthetic scene's depth at the
    requested cameras, poses mapped by a known Sim(3) (what TTT3R's own frame looks like)."""

    name = "sim3-stub"

    def __init__(self, scene, s: float):
        from worldwarp_core.trajectory import axis_angle

        self.scene, self.s = scene, s
        self.R = axis_angle(torch.tensor([0.2, 1.0, 0.1]), 0.7)
        self.t = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)

    def estimate(self, frames, cameras):
        from worldwarp_core.cameras import Cameras
        from worldwarp_core.geometry import GeometryResult

        _, depth = self.scene.render(cameras)
        c2w = cameras.c2w.double().clone()
        c2w[:, :3, :3] = self.R @ c2w[:, :3, :3]
        c2w[:, :3, 3] = self.s * c2w[:, :3, 3] @ self.R.T + self.t
        est = Cameras.from_c2w(c2w, cameras.Ks, cameras.width, cameras.height)
        return GeometryResult((depth * self.s).float(), torch.ones_like(depth).float(), est, "metric")

    def unload(self):
        return None


def test_estimated_pose_source_aligns_back_to_the_requested_path(inputs, tmp_path):
    """With pose_source='estimated', poses from another Sim(3) frame (scale 0.5) are aligned onto the
    path: chunk 2's hints equal those of a run that uses the requested poses."""
    from dataclasses import replace

    import numpy as np

    rgb, depth, path = inputs
    scene = default_scene()
    runs = {}
    for source in ("requested", "estimated"):
        pipe = WorldWarpPipeline(tiny_model(seed=0), _Sim3Geometry(scene, 0.5), None,
                                 replace(SETTINGS, pose_source=source, world_voxel=None, mask_rule="strict"))
        out = str(tmp_path / source)
        pipe(rgb, path, 17, prompt="a room", out_dir=out, start_depth=depth)
        runs[source] = np.load(os.path.join(out, "chunks", "chunk_001", "hint_depth.npy"))
    req, est = runs["requested"], runs["estimated"]
    valid = np.isfinite(req) & (req > 0)
    assert valid.mean() > 0.3 and np.array_equal(valid, np.isfinite(est) & (est > 0))
    # float32 pose round-off through the 3DGS optimisation moves a few silhouette pixels; the rest agree
    rel = np.abs(est[valid] / req[valid] - 1)
    assert np.median(rel) < 1e-5 and (rel < 1e-3).mean() > 0.97


# ----------------------------------------------------------------------------- rollback (from_chunk)
PLAIN = PipelineSettings(chunk_frames=9, context_frames=1, steps=3, guidance_scale=2.0,
                         gs=GSConfig(iterations=4, stride=4), fps=4)


@pytest.fixture(scope="module")
def plain_run(inputs, tmp_path_factory):
    rgb, depth, path = inputs
    out = str(tmp_path_factory.mktemp("plain") / "run")
    return _pipe(PLAIN)(rgb, path, 17, prompt="a room", out_dir=out, start_depth=depth), out


def _bytes(root, names):
    return {n: open(os.path.join(root, n), "rb").read() for n in names}


def _kept_files(root, frames=9):
    """Every file of chunk 1's folder and the frames it made (0..8): what a rollback to 1 chunk keeps."""
    chunk = sorted(os.path.join("chunks", "chunk_000", d, f) if d else os.path.join("chunks", "chunk_000", f)
                   for d in ("", "hints", "masks") for f in os.listdir(os.path.join(root, "chunks", "chunk_000", d))
                   if os.path.isfile(os.path.join(root, "chunks", "chunk_000", d, f)))
    return chunk + [os.path.join("frames", f"{i:05d}.png") for i in range(frames)]


def test_rollback_with_the_same_settings_makes_the_same_frames(plain_run, inputs, tmp_path):
    import shutil

    full, out = plain_run
    rgb, depth, path = inputs
    copy = str(tmp_path / "again")
    shutil.copytree(out, copy)
    kept = _kept_files(copy)
    before = _bytes(copy, kept)
    events = []
    again = _pipe(PLAIN)(rgb, path, 17, prompt="a room", out_dir=copy, start_depth=depth, from_chunk=1,
                         callback=events.append)
    assert events[0] == {"stage": "rollback", "chunk": 1, "frames": 9}
    assert [e["chunk"] for e in events if e["stage"] == "chunk"] == [1]  # only chunk 2 is made again
    assert torch.equal(again.frames, full.frames)
    assert _bytes(copy, kept) == before
    made = [os.path.join("frames", f"{i:05d}.png") for i in range(9, 17)]
    assert _bytes(copy, made) == _bytes(out, made)


def test_rollback_keeps_the_first_chunks_and_records_both_settings(plain_run, inputs, tmp_path):
    import shutil

    full, out = plain_run
    rgb, depth, path = inputs
    copy = str(tmp_path / "rolled")
    shutil.copytree(out, copy)
    kept = _kept_files(copy)
    before = _bytes(copy, kept)
    old_fp = json.load(open(os.path.join(copy, "run.json")))["fingerprint"]
    changed = replace(PLAIN, strength=0.5, seed=7)
    rolled = _pipe(changed)(rgb, path, 17, prompt="a quiet room", out_dir=copy, start_depth=depth, from_chunk=1)
    assert _bytes(copy, kept) == before  # chunk 1's folder and frames 0-8, byte for byte
    assert torch.equal(rolled.frames[:9], full.frames[:9]) and not torch.equal(rolled.frames[9:], full.frames[9:])
    assert torch.equal(load_png(os.path.join(copy, "frames", "00016.png")), rolled.frames[16])
    chunk2 = json.load(open(os.path.join(copy, "chunks", "chunk_001", "chunk.json")))
    assert chunk2["prompt"] == "a quiet room" and chunk2["sigma_start"] != full.chunks[1]["sigma_start"]
    run = json.load(open(os.path.join(copy, "run.json")))
    new_fp = run["fingerprint"]
    assert new_fp != old_fp and run["chunk_runs"] == [old_fp]
    assert run["rolled_back"][0]["from_chunk"] == 1 and run["rolled_back"][0]["fingerprint"] == old_fp
    assert "settings.strength 0.8 -> 0.5" in run["rolled_back"][0]["changed"]
    # the manifest says which chunk came from which settings
    prov = json.load(open(os.path.join(copy, "manifest.json")))["chunk_settings"]
    assert prov["chunk_runs"] == [old_fp, new_fp]
    first, second = prov["runs"]
    assert first["chunks"] == [0] and first["settings"]["settings.strength"] == 0.8
    assert first["settings"]["prompt"] == "a room" and "settings.seed 0 -> 7" in first["changed_from_now"]
    assert second == {"fingerprint": new_fp, "chunks": [1], "changed_from_now": [],
                      "settings": {**second["settings"], "settings.strength": 0.5, "prompt": "a quiet room"}}
    # resumed with the new settings: every chunk is there, the record of both runs stays
    resumed = _pipe(changed)(rgb, path, 17, prompt="a quiet room", out_dir=copy, start_depth=depth, resume=True)
    assert torch.equal(resumed.frames, rolled.frames)
    assert json.load(open(os.path.join(copy, "run.json")))["chunk_runs"] == [old_fp]
    assert json.load(open(os.path.join(copy, "manifest.json")))["chunk_settings"] == prov


def test_rollback_refusals_say_what_to_do(plain_run, inputs, tmp_path):
    import shutil

    rgb, depth, path = inputs
    copy = str(tmp_path / "run")
    shutil.copytree(plain_run[1], copy)
    listing = sorted(os.listdir(os.path.join(copy, "frames"))) + sorted(os.listdir(os.path.join(copy, "chunks")))
    root = os.path.abspath(copy)

    def roll(k, settings=PLAIN, cams=path, frames=17, folder=copy):
        _pipe(settings)(rgb, cams, frames, prompt="a room", out_dir=folder, start_depth=depth, from_chunk=k)

    for k, frames, total, hi in ((2, 17, 2, 1), (5, 17, 2, 1), (3, 25, 3, 2)):  # two chunks are finished
        with pytest.raises(ValueError) as e:
            roll(k, frames=frames)
        assert str(e.value) == (f"from_chunk {k} is out of range: {root} holds 2 finished chunks and this run has "
                                f"{total}; choose 1 to {hi} (the chunks kept), or 0 for no rollback")
    with pytest.raises(ValueError) as e:
        roll(1, frames=9)  # a 1-chunk run: nothing to keep and make again
    assert str(e.value) == (f"from_chunk 1 is out of range: {root} holds 2 finished chunks and this run has 1; a "
                            "rollback keeps at least one chunk and makes at least one again, so there is nothing to "
                            "roll back (use from_chunk 0)")
    with pytest.raises(ValueError, match=r"from_chunk must be .*0, got -1"):
        roll(-1)
    with pytest.raises(ValueError, match=r"from_chunk 1: the kept chunks were made with another start image or "
                                         r"chunking \(changed: settings.context_frames 1 -> 5\); a rollback keeps"):
        roll(1, replace(PLAIN, context_frames=5), frames=13)
    bent = make_trajectory("dolly_in@0.3 * pan_left@0.2", 9, path[:1], scene_scale=median_depth(depth[None]))
    with pytest.raises(ValueError, match=r"from_chunk 1: the camera path differs from the run's on the kept frames "
                                         r"0-8 \(by up to .*\); a rollback keeps those frames, so the path may change "
                                         r"only after frame 8"):
        roll(1, cams=bent)
    with pytest.raises(ValueError, match=r"from_chunk 1: .* holds no run to roll back \(no run.json\)"):
        roll(1, folder=str(tmp_path / "empty"))
    assert sorted(os.listdir(os.path.join(copy, "frames"))) + sorted(os.listdir(os.path.join(copy, "chunks"))) == listing
    # a persistent world is only kept after the newest chunk (and this run had none)
    with pytest.raises(ValueError, match=r"from_chunk 1: the persistent world after the first 1 chunks is not in the "
                                         r"run folder \(only the newest chunk keeps its world.ply\); roll back without "
                                         r"world_voxel, or choose another output folder"):
        roll(1, replace(PLAIN, world_voxel=0.1))
