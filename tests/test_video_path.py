"""Camera path from a video (the official demo's From Video mode) and its .npz pose cache.

The pose cache is written here exactly as the official demo writes it (``save_poses_to_cache``:
``np.savez(path, poses=poses.cpu().numpy(), intrinsics=intrinsics.cpu().numpy())`` of float32
tensors ``[1, N, 4, 4]`` / ``[1, N, 3, 3]``); a shipped cache of the official repository is read
too when its git mirror is on this machine (skipped elsewhere). The video -> path test renders the
synthetic room along known cameras, encodes it as MP4, and estimates the path with geometry
stand-ins (one that reports the true cameras in its own frame and scale with a per-frame focal
error, and the TTT3R adapter on the stand-in checkout of ``tests/test_ttt3r.py``).
"""

import math
import os
import subprocess

import numpy as np
import pytest
import torch
from test_nodes import FakeEnv
from test_ttt3r import _quat_wxyz, _write_checkpoint, checkout  # noqa: F401 - the stand-in checkout fixture

from nodes import ops
from worldwarp_core.cameras import Cameras, intrinsics_from_fov
from worldwarp_core.cli import main
from worldwarp_core.geometry import GeometryResult, load_estimator
from worldwarp_core.inputs import load_camera_file
from worldwarp_core.outputs import write_mp4
from worldwarp_core.synthetic import default_scene
from worldwarp_core.trajectory import make_trajectory, pose_errors
from worldwarp_core.video_path import (
    anchor_at_first,
    camera_path_from_video,
    estimate_video_cameras,
    fit_frames,
    load_pose_cache,
    pose_cache_name,
    pose_cache_path,
    read_video,
    save_pose_cache,
)

# the fetch tool's git mirror of qbhan/WorldWarp beside the checkout, or WORLDWARP_OFFICIAL_MIRROR
MIRROR = os.environ.get("WORLDWARP_OFFICIAL_MIRROR", os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".mirror", "qbhan+WorldWarp", "repo"))


def _official_write(path, poses_c2w, Ks):
    """gradio_demo.save_poses_to_cache, verbatim in effect: float32 torch tensors [1, N, ...] -> np.savez."""
    poses = torch.as_tensor(poses_c2w, dtype=torch.float32)[None]
    intrinsics = torch.as_tensor(Ks, dtype=torch.float32)[None]
    np.savez(path, poses=poses.cpu().numpy(), intrinsics=intrinsics.cpu().numpy())


def _some_path(n=12, W=720, H=480):
    start = Cameras(torch.eye(4)[None], intrinsics_from_fov(60.0, W, H), W, H)
    cams = make_trajectory("dolly_in@0.4 * pan_left@0.7 * pedestal_up@0.2", n, start, scene_scale=3.0)
    offset = torch.eye(4, dtype=torch.float64)  # TTT3R's first pose is near, not at, the identity
    offset[:3, :3] = torch.linalg.matrix_exp(torch.tensor([[0, -0.01, 0.02], [0.01, 0, -0.015],
                                                           [-0.02, 0.015, 0]], dtype=torch.float64))
    offset[:3, 3] = torch.tensor([0.1, -0.05, 0.2])
    return offset @ cams.c2w.double()


# ----------------------------------------------------------------------------- the .npz cache


def test_cache_written_the_official_way_reads_back(tmp_path):
    c2w = _some_path()
    K = torch.tensor([[577.1828, 0, 360.0], [0, 577.1828, 240.0], [0, 0, 1]]).expand(12, 3, 3)
    path = tmp_path / "000_poses.npz"
    _official_write(path, c2w, K)
    cams = load_pose_cache(str(path))
    assert (cams.width, cams.height, len(cams)) == (720, 480, 12)  # the size from the principal point
    # c2w to float32 precision (the pack stores world-to-camera: the rigid inverse of a float32 rotation)
    np.testing.assert_allclose(cams.c2w.double().numpy(), c2w.float().double().numpy(), atol=2e-7, rtol=0)
    np.testing.assert_array_equal(cams.Ks.double().numpy(), K.float().double().numpy())
    # as a camera path: anchored at the first camera (the official get_relative_poses(poses, 0))
    p = pose_cache_path(str(path), 720, 480)
    rel = torch.linalg.inv(c2w.float().double()[0]) @ c2w.float().double()
    torch.testing.assert_close(p.c2w.double(), rel, atol=1e-6, rtol=0)  # float32 data (the official: float32 maths)
    assert torch.equal(p.c2w[0].double(), torch.eye(4, dtype=torch.float64))
    # a camera file like any other (--trajectory x.npz, Camera Trajectory's camera_file); another size:
    # scaled to cover and centre-cropped, as the video itself would be
    q = load_camera_file(str(path), 832, 480)
    assert (q.width, q.height) == (832, 480)
    sx, sy = 832 / 720, 554 / 480  # the frames are resized to 832x554 (cover), then 37 rows cropped top
    torch.testing.assert_close(q.Ks[0].double(), torch.tensor(
        [[577.1828 * sx, 0, 360 * sx], [0, 577.1828 * sy, 240 * sy - 37], [0, 0, 1]], dtype=torch.float64),
        atol=1e-3, rtol=0)
    torch.testing.assert_close(q.viewmats.double(), p.viewmats.double())
    assert pose_cache_name("examples/videos/000.mp4") == "000_poses.npz"


def test_cache_round_trip_write_read(tmp_path):
    c2w = _some_path(9, 96, 64)
    cams = Cameras.from_c2w(c2w, intrinsics_from_fov(50.0, 96, 64, 9).double(), 96, 64)
    a = save_pose_cache(str(tmp_path / "a.npz"), cams)
    with np.load(a, allow_pickle=False) as d:  # the official layout
        assert sorted(d.files) == ["intrinsics", "poses"]
        assert d["poses"].shape == (1, 9, 4, 4) and d["intrinsics"].shape == (1, 9, 3, 3)
        assert d["poses"].dtype == np.float32 and d["intrinsics"].dtype == np.float32
        first = {k: d[k].copy() for k in d.files}
    back = load_pose_cache(a)
    assert (back.width, back.height) == (96, 64)
    torch.testing.assert_close(back.c2w.double(), cams.c2w.double(), atol=2e-7, rtol=0)  # float32 storage
    torch.testing.assert_close(back.Ks.double(), cams.Ks.double(), atol=1e-5, rtol=1e-7)
    b = save_pose_cache(str(tmp_path / "b.npz"), back)  # write∘read∘write: the same arrays to float32 precision
    with np.load(b, allow_pickle=False) as d:
        np.testing.assert_array_equal(d["intrinsics"], first["intrinsics"])
        np.testing.assert_allclose(d["poses"], first["poses"], atol=2e-7, rtol=0)
    with pytest.raises(ValueError, match="exists; choose another file"):
        save_pose_cache(a, cams)


@pytest.mark.skipif(not os.path.isdir(MIRROR), reason="the official repository's git mirror is not on this machine")
def test_a_shipped_official_cache_reads(tmp_path):
    path = tmp_path / "000_poses.npz"
    blob = subprocess.run(["git", "-C", MIRROR, "show", "0396b80:examples/pose_cache/000_poses.npz"],
                          capture_output=True, check=True).stdout
    path.write_bytes(blob)
    cams = load_pose_cache(str(path))
    assert (cams.width, cams.height, len(cams)) == (720, 480, 400)
    assert float(cams.Ks[0, 0, 0]) == pytest.approx(577.1828, abs=1e-3)
    p = pose_cache_path(str(path), 720, 480, speed=2.0)
    assert len(p) == 200 and torch.equal(p.c2w[0].double(), torch.eye(4, dtype=torch.float64))


def test_cache_refuses_bad_files(tmp_path):
    good = dict(poses=np.tile(np.eye(4, dtype=np.float32), (1, 3, 1, 1)),
                intrinsics=np.tile(np.array([[50, 0, 48], [0, 50, 32], [0, 0, 1]], np.float32), (1, 3, 1, 1)))
    cases = {
        "keys": (dict(poses=good["poses"]), "not an official pose cache \\(no intrinsics"),
        "shape": (dict(good, poses=good["poses"][..., :3, :]), "'poses' must be float \\[1, N, 4, 4\\]"),
        "count": (dict(good, intrinsics=good["intrinsics"][:, :2]), "3 poses and 2 intrinsics"),
        "nan": (dict(good, poses=np.where(np.eye(4, dtype=bool), np.nan, good["poses"]).astype(np.float32)),
                "NaN or infinite"),
        "centre": (dict(good, intrinsics=good["intrinsics"] + np.array([[0, 0, 0.3], [0, 0, 0], [0, 0, 0]],
                                                                        np.float32)), "is not an image centre"),
        "rotation": (dict(good, poses=good["poses"] * np.float32(2)), "not orthonormal|last row"),
    }
    for name, (arrays, msg) in cases.items():
        p = tmp_path / f"{name}.npz"
        np.savez(p, **arrays)
        with pytest.raises(ValueError, match=msg):
            load_pose_cache(str(p))
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="not a NumPy .npz pose cache"):
        load_pose_cache(str(tmp_path / "text.npz"))
    np.savez(tmp_path / "obj.npz", poses=np.array([object()], dtype=object), intrinsics=good["intrinsics"])
    with pytest.raises(ValueError, match="not a NumPy .npz pose cache"):  # pickled objects are never loaded
        load_pose_cache(str(tmp_path / "obj.npz"))
    with pytest.raises(ValueError, match="pose cache not found"):
        load_pose_cache(str(tmp_path / "missing.npz"))


# ----------------------------------------------------------------------------- video -> path


class _StandIn:
    """A pose-estimating geometry model: the true cameras in its own world (a rigid offset), at half
    the scale, with a per-frame focal error of up to 4 % and an off-centre principal point, float32."""

    name, estimates_poses = "stand-in", True

    def __init__(self, truth: Cameras):
        self.truth, self.calls = truth, []

    def estimate(self, frames, cameras=None):
        F, H, W, _ = frames.shape
        self.calls.append(tuple(frames.shape))
        world = torch.eye(4, dtype=torch.float64)
        world[:3, :3] = torch.linalg.matrix_exp(torch.tensor([[0, -0.3, 0.2], [0.3, 0, -0.1], [-0.2, 0.1, 0]],
                                                             dtype=torch.float64))
        world[:3, 3] = torch.tensor([2.0, -1.0, 0.5])
        c2w = world @ self.truth.c2w.double()[:F]
        c2w[:, :3, 3] = c2w[:, :3, 3] * 0.5
        K = self.truth.Ks.double()[:F].clone()
        K[:, 0, 0] *= 1 + 0.04 * torch.sin(torch.arange(F, dtype=torch.float64))
        K[:, 1, 1] = K[:, 0, 0]
        K[:, :2, 2] += 1.5
        cams = Cameras.from_c2w(c2w.float(), K.float(), W, H)
        return GeometryResult(torch.ones(F, H, W), torch.ones(F, H, W), cams)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """The synthetic room rendered along a known path (9 frames, 96x64) and encoded as MP4, once."""
    scene = default_scene()
    truth = make_trajectory("dolly_in@0.3 * pan_right@0.5", 9, scene.default_camera(96, 64), scene_scale=4.5)
    rgb, _ = scene.render(truth)
    return write_mp4(str(tmp_path_factory.mktemp("video") / "ref.mp4"), rgb), truth, rgb


def test_video_to_path_recovers_the_cameras(synthetic):
    video, truth, rgb = synthetic
    frames = read_video(video, 96, 64)
    assert frames.shape == (9, 64, 96, 3) and float((frames - rgb).abs().mean()) < 0.03  # H.264 at crf 18
    est = _StandIn(truth)
    cams = camera_path_from_video(frames, est)
    # the path: the truth relative to its first camera, at the model's own scale (0.5), no rescaling
    want = anchor_at_first(truth).c2w.double().clone()
    want[:, :3, 3] *= 0.5
    centre, angle = pose_errors(cams.c2w.double(), want)
    step = float((want[1:, :3, 3] - want[:-1, :3, 3]).norm(dim=1).mean())
    assert float(centre.max()) / step < 1e-5 and float(angle.max()) < 1e-6  # float32 of the estimate
    # one focal: the mean of the per-frame estimates, principal point at the centre
    f = truth.Ks[0, 0, 0].double() * (1 + 0.04 * torch.sin(torch.arange(9, dtype=torch.float64)))
    torch.testing.assert_close(cams.Ks[:, 0, 0].double(), f.float().double().mean().expand(9), rtol=1e-6, atol=0)
    assert torch.equal(cams.Ks[:, 0, 2].double(), torch.full((9,), 48.0, dtype=torch.float64))
    # the cached estimate (before anchoring) and the speed multiplier
    raw = estimate_video_cameras(frames, est)
    assert not torch.allclose(raw.c2w[0].double(), torch.eye(4, dtype=torch.float64))
    assert len(camera_path_from_video(frames, est, speed=2.0)) == 4
    # another generation size: the frames are fitted (cover + centre crop) before estimation
    camera_path_from_video(frames, est, size=(48, 48))
    assert est.calls[-1] == (9, 48, 48, 3)


def test_video_to_path_through_the_ttt3r_adapter(synthetic, checkout):  # noqa: F811
    video, truth, _ = synthetic
    c2w = truth.c2w.double().clone()
    c2w[:, :3, 3] *= 0.5  # TTT3R's own scale
    _write_checkpoint(checkout, [c[:3, 3].tolist() + _quat_wxyz(c[:3, :3].tolist()) for c in c2w])
    est = load_estimator("ttt3r", str(checkout), size=64)
    cams = camera_path_from_video(read_video(video, 96, 64), est)
    want = anchor_at_first(truth).c2w.double().clone()
    want[:, :3, 3] *= 0.5
    centre, angle = pose_errors(cams.c2w.double(), want)
    assert float(centre.max()) < 1e-6 and float(angle.max()) < 1e-6
    # the stand-in model's focal: 0.8 of its 64-pixel input width, in pixels of the 96-pixel frames
    assert float(cams.Ks[0, 0, 0]) == pytest.approx(0.8 * 96, rel=1e-5)


def test_the_official_square_input_is_asked_for_where_the_backend_has_it(synthetic):
    _, truth, rgb = synthetic

    class Padded(_StandIn):
        input_modes = ("resize", "square-pad")

        def estimate(self, frames, cameras=None, input_mode=None):
            self.modes = getattr(self, "modes", []) + [input_mode]
            return super().estimate(frames, cameras)

    est = Padded(truth)
    camera_path_from_video(rgb, est)
    camera_path_from_video(rgb, est, geometry_input="model")
    assert est.modes == ["square-pad", None]
    camera_path_from_video(rgb, _StandIn(truth))  # a backend without that input takes its own
    with pytest.raises(ValueError, match="geometry_input must be one of square-pad, model"):
        camera_path_from_video(rgb, est, geometry_input="pad")


def test_video_path_refuses_bad_input(tmp_path, synthetic):
    video, truth, _ = synthetic
    frames = read_video(video, 96, 64, max_frames=5)

    class Mono:
        name, estimates_poses = "depth-pro", False

    with pytest.raises(ValueError, match="depth-pro geometry model estimates no camera poses; .*ttt3r"):
        camera_path_from_video(frames, Mono())
    with pytest.raises(ValueError, match="reference video not found"):
        read_video(str(tmp_path / "none.mp4"), 96, 64)
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="cannot decode the video"):
        read_video(str(tmp_path / "bad.mp4"), 96, 64)
    with pytest.raises(ValueError, match="speed multiplier must be a positive number"):
        camera_path_from_video(frames, _StandIn(truth), speed=-1.0)
    assert read_video(video, 96, 64, max_frames=3).shape[0] == 3
    assert fit_frames((frames * 255).round().to(torch.uint8), 48, 64).shape == (5, 64, 48, 3)


# ----------------------------------------------------------------------------- nodes and CLI


def test_nodes_take_a_video_and_a_cache_from_the_input_folder(tmp_path, synthetic):
    env = FakeEnv(str(tmp_path))
    video, truth, rgb = synthetic
    image = rgb[:1]
    (cams,) = ops.camera_path_from_video_node(env, _StandIn(truth), rgb, image, 600, 1.0)
    assert len(cams) == 9 and (cams.width, cams.height) == (96, 64)
    os.makedirs(os.path.join(env.input, "pose_cache"))
    cache = save_pose_cache(os.path.join(env.input, "pose_cache", "ref_poses.npz"), truth)
    (loaded,) = ops.load_pose_cache_node(env, image, "pose_cache/ref_poses.npz", 1.0)
    torch.testing.assert_close(loaded.c2w.double(), anchor_at_first(load_pose_cache(cache)).c2w.double())
    for name, msg in ((cache, "is an absolute path; put the file in ComfyUI's input folder"),
                      ("../outside.npz", "leaves ComfyUI's input folder"), ("missing.npz", "not found in ComfyUI's"),
                      ("", "give the name of a .npz file"), ("cams.txt", "is not a .npz file")):
        with pytest.raises(ValueError, match=msg):
            ops.load_pose_cache_node(env, image, name, 1.0)


def test_camera_path_command_writes_files_the_pack_reads(tmp_path, synthetic, capsys):
    c2w = _some_path(10, 96, 64)
    _official_write(tmp_path / "ref_poses.npz", c2w, intrinsics_from_fov(50.0, 96, 64, 10))
    for out in ("cams.txt", "cams.json"):
        assert main(["camera-path", str(tmp_path / "ref_poses.npz"), "--out", str(tmp_path / out),
                     "--size", "96x64"]) == 0
        back = load_camera_file(str(tmp_path / out), 96, 64)
        torch.testing.assert_close(back.c2w.double(), pose_cache_path(str(tmp_path / "ref_poses.npz"), 96, 64).c2w.double(),
                                   atol=1e-6, rtol=0)
    cases = [
        (["--out", str(tmp_path / "cams.txt")], "exists; pass --overwrite"),
        (["--out", str(tmp_path / "x.ply")], "write a RealEstate10K .txt"),
        (["--out", str(tmp_path / "x.npz"), "--speed", "2"], "a .npz pose cache holds the estimate"),
        (["--out", str(tmp_path / "y.txt"), "--speed", "0"], "--speed must be a positive number"),
    ]
    for extra, msg in cases:
        assert main(["camera-path", str(tmp_path / "ref_poses.npz"), "--size", "96x64"] + extra) == 2
        assert msg in capsys.readouterr().err
    video, _, _ = synthetic
    assert main(["camera-path", video, "--out", str(tmp_path / "v.txt"), "--geometry", "depth-pro",
                 "--geometry-path", str(tmp_path)]) == 2
    assert "--geometry depth-pro estimates no camera poses" in capsys.readouterr().err
    assert math.isfinite(float(back.c2w.sum()))


def test_generate_takes_a_camera_video_or_its_cache(tmp_path, synthetic, monkeypatch, capsys):
    from test_cli import _Loaded, _with, fake_models

    import worldwarp_core.cli as cli
    import worldwarp_core.geometry as geometry
    import worldwarp_core.video_path as vp

    video, truth, rgb = synthetic
    img = tmp_path / "start.png"
    from PIL import Image

    Image.fromarray((rgb[0].numpy() * 255).round().astype(np.uint8)).save(img)
    base = ["generate", "--image", str(img), "--frames", "49", "--models", fake_models(tmp_path / "models"),
            "--out", str(tmp_path / "out"), "--prompt", "a room", "--device", "cpu", "--geometry", "ttt3r"]
    cache = save_pose_cache(str(tmp_path / "ref_poses.npz"), truth)
    seen = {}

    def loaded(*a, **k):
        raise _Loaded

    monkeypatch.setattr(geometry, "load_estimator", lambda *a, **k: _StandIn(truth))
    monkeypatch.setattr(cli, "_load_model", loaded)
    real = vp.camera_path_from_video
    monkeypatch.setattr(vp, "camera_path_from_video", lambda *a, **k: seen.setdefault("path", real(*a, **k)))
    with pytest.raises(_Loaded):  # the video's path is estimated with the run's geometry model, then models load
        main(base + ["--camera-video", video, "--camera-speed", "1.0"])
    assert len(seen["path"]) == 9 and (seen["path"].width, seen["path"].height) == (96, 64)
    with pytest.raises(_Loaded):  # a pose cache is read during the checks
        main(base + ["--camera-video", cache])
    for args, msg in (
        (base, "give the camera path with --trajectory"),
        (base + ["--camera-video", cache, "--trajectory", "dolly_in"], "give the camera path with --trajectory"),
        (_with(base, geometry="depth-anything-v2") + ["--camera-video", video], "estimates no camera poses; use "
                                                                                 "--geometry ttt3r"),
        (base + ["--camera-video", str(tmp_path / "none.mp4")], "--camera-video: file not found"),
        (base + ["--camera-video", cache, "--camera-speed", "0"], "--camera-speed must be a positive number"),
    ):
        assert main(args) == 2
        assert msg in capsys.readouterr().err
