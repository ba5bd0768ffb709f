"""The official code's geometry handling: re-anchoring at the last history frame (rigid, raw scale),
TTT3R on the zero-padded square with its outputs cropped back to the frame, and the switches that
select them (settings, profiles, CLI, nodes). The default (``sim3`` / ``model``) is the pack's."""

import json
import os
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_pipeline import SETTINGS, _Sim3Geometry
from test_ttt3r import _quat_wxyz, _requested_and_estimated_poses, _write_checkpoint, checkout  # noqa: F401

from worldwarp_core.cameras import Cameras, intrinsics_from_fov
from worldwarp_core.cli import apply_profile, build_parser, given_options
from worldwarp_core.geometry import (
    GeometryResult,
    align_poses,
    load_estimator,
    reanchor_at_last,
    resolve_geometry_input,
)
from worldwarp_core.geometry.base import estimate_checked
from worldwarp_core.geometry.preprocess import resize_map
from worldwarp_core.geometry.ttt3r import square_pad_layout
from worldwarp_core.models import tiny_model
from worldwarp_core.pipeline import PipelineSettings, WorldWarpPipeline, settings_for
from worldwarp_core.synthetic import default_scene
from worldwarp_core.trajectory import axis_angle, make_trajectory, median_depth


def _path_and_estimate(scale: float = 0.5):
    """Requested cameras on a curve, and an estimate that is a rigid motion of them at another scale."""
    F = 5
    R = torch.stack([axis_angle(torch.tensor([0.1, 1.0, 0.2]), 0.1 * i) for i in range(F)]).double()
    req = torch.eye(4, dtype=torch.float64).repeat(F, 1, 1)
    req[:, :3, :3] = R
    req[:, :3, 3] = torch.tensor([[0.3 * i, 0.05 * i * i, 0.2 * i + 1.0] for i in range(F)], dtype=torch.float64)
    G = torch.eye(4, dtype=torch.float64)
    G[:3, :3], G[:3, 3] = axis_angle(torch.tensor([1.0, 0.3, -0.2]), 0.9).double(), torch.tensor([2.0, -1.0, 0.5])
    est = G @ req
    est[:, :3, 3] *= scale
    K = intrinsics_from_fov(60.0, 32, 24).expand(F, 3, 3)
    K_est = K.clone()
    K_est[:, :2, :2] *= 1.1  # another focal estimate
    return Cameras.from_c2w(req, K, 32, 24), Cameras.from_c2w(est, K_est, 32, 24)


def test_reanchoring_puts_the_last_camera_on_its_request_and_keeps_the_estimate_rigid():
    requested, est = _path_and_estimate(0.5)
    depth = torch.rand(5, 24, 32) + 1.0
    result = GeometryResult(depth, torch.ones_like(depth), est, "metric")
    cams, out_depth, residual = align_poses(result, requested, "estimated", "requested", "official")
    c2w = cams.c2w.double()
    torch.testing.assert_close(c2w[-1], requested.c2w.double()[-1], atol=1e-12, rtol=0)
    # rigid, scale 1: the estimate's distances between camera centres and its relative rotations are kept
    centres, est_centres = c2w[:, :3, 3], est.c2w.double()[:, :3, 3]
    torch.testing.assert_close(torch.cdist(centres, centres), torch.cdist(est_centres, est_centres), atol=1e-12,
                               rtol=0)
    rel = c2w[-1, :3, :3].T @ c2w[:, :3, :3]
    est_rel = est.c2w.double()[-1, :3, :3].T @ est.c2w.double()[:, :3, :3]
    torch.testing.assert_close(rel, est_rel, atol=1e-12, rtol=0)
    assert out_depth is depth  # the raw scale: depth untouched
    torch.testing.assert_close(cams.Ks, requested.Ks.to(cams.Ks))  # the requested intrinsics
    # the estimate is at half the path's scale, so the other cameras do not sit on their requests
    assert residual > 0.1
    # the pack's Sim(3) does recover the scale (and rescales the depth)
    sim_cams, sim_depth, _ = align_poses(result, requested, "estimated")
    torch.testing.assert_close(sim_cams.c2w.double(), requested.c2w.double(), atol=1e-9, rtol=0)
    torch.testing.assert_close(sim_depth, depth * 2, rtol=1e-6, atol=1e-6)
    # one history frame (the first chunk): exactly the requested camera
    one = reanchor_at_last(est.c2w[2:3], requested.c2w[2:3])
    torch.testing.assert_close(one, requested.c2w.double()[2:3], atol=1e-12, rtol=0)


def test_square_pad_layout_centres_the_frame():
    assert square_pad_layout(480, 720, 512) == (341, 512, 85, 0)
    assert square_pad_layout(720, 480, 512) == (512, 341, 0, 85)
    assert square_pad_layout(59, 90, 64) == (41, 64, 11, 0)  # 23 pad rows: 11 on top, 12 below
    with pytest.raises(ValueError, match="the square input's side must be a multiple of 16"):
        square_pad_layout(59, 90, 60)


def test_square_pad_round_trip_through_a_stand_in_ttt3r(checkout):  # noqa: F811
    _, est_c2w = _requested_and_estimated_poses()
    _write_checkpoint(checkout, [c[:3, 3].tolist() + _quat_wxyz(c[:3, :3].tolist()) for c in est_c2w])
    est = load_estimator("ttt3r", str(checkout), size=64)
    assert resolve_geometry_input("square-pad", est) == "square-pad"
    H, W = 59, 90
    frames = torch.rand(3, H, W, 3, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    h, w, top, left = square_pad_layout(H, W, 64)

    # what the model sees: a 64 x 64 square, zeros (black: -1 after scaling) in the pad, the frame inside
    img = est.views(frames, "square-pad")[0]["img"]
    assert img.shape == (1, 3, 64, 64)
    assert bool((img[..., :top, :] == -1).all()) and bool((img[..., top + h:, :] == -1).all())
    assert float(img[..., top:top + h, left:left + w].min()) > -1

    r = estimate_checked(est, frames, None, None, 4, "square-pad")
    assert r.depth.shape == (3, H, W) and (r.cameras.width, r.cameras.height) == (W, H)
    # depth: the stand-in's square pointmap z (gain 2 applied), its frame part resized to the frame
    v, u = torch.meshgrid(torch.arange(64) + 0.5 - 32, torch.arange(64) + 0.5 - 32, indexing="ij")
    z = 2.0 * (2.0 + 0.5 * u / 64)
    torch.testing.assert_close(r.depth, resize_map(z[top:top + h, left:left + w].expand(3, h, w), H, W))
    # intrinsics for the un-padded frame: a known point projects where the model saw it
    f_model = 0.8 * 64
    K = r.cameras.Ks[0].double()
    for um, vm in ((20.5, 30.5), (50.5, 15.5), (3.5, 45.5)):  # model pixels inside the frame's part
        zz = 2.0 * (2.0 + 0.5 * (um - 32) / 64)
        X = torch.tensor([(um - 32) / f_model * zz, (vm - 32) / f_model * zz, zz], dtype=torch.float64)
        p = K @ X
        expected = ((um - left) * W / w, (vm - top) * H / h)
        assert (float(p[0] / p[2]), float(p[1] / p[2])) == pytest.approx(expected, abs=1e-4)
    assert float(K[1, 2]) != pytest.approx(H / 2)  # the odd pad moved the principal point off the centre
    # the default input is unchanged: the resize path (test_ttt3r checks its numbers)
    assert est.views(frames)[0]["img"].shape == (1, 3, 48, 64)
    with pytest.raises(ValueError, match="ttt3r: input_mode must be one of resize, square-pad, got 'pad'"):
        est.views(frames, "pad")
    est.unload()


def test_backends_without_the_square_input_keep_their_own():
    class Plain:  # a backend with no input_modes: called exactly as before
        def estimate(self, frames, cameras=None):
            d = torch.ones(frames.shape[:3])
            return GeometryResult(d, d, Cameras.from_c2w(torch.eye(4)[None].repeat(len(d), 1, 1),
                                                         intrinsics_from_fov(60.0, 8, 8).expand(len(d), 3, 3), 8, 8))

    assert resolve_geometry_input("square-pad", Plain()) == "model"
    assert estimate_checked(Plain(), torch.rand(2, 8, 8, 3), None, None, 4, "square-pad").depth.shape == (2, 8, 8)


def test_bad_values_say_what_to_choose():
    requested, est = _path_and_estimate()
    result = GeometryResult(torch.ones(5, 24, 32), torch.ones(5, 24, 32), est)
    with pytest.raises(ValueError, match=r"geometry_alignment must be one of sim3, official; got 'rigid'"):
        PipelineSettings(geometry_alignment="rigid")
    with pytest.raises(ValueError, match=r"geometry_input must be one of model, square-pad; got 'pad'"):
        PipelineSettings(geometry_input="pad")
    with pytest.raises(ValueError, match=r"geometry_alignment must be one of sim3, official \(sim3: the pack's"):
        align_poses(result, requested, "estimated", "requested", "rigid")
    with pytest.raises(ValueError, match=r"geometry_input must be one of model, square-pad \(model: the backend's"):
        resolve_geometry_input("pad", object())
    with pytest.raises(ValueError, match=r"re-anchoring needs matching \[F, 4, 4\] poses"):
        reanchor_at_last(est.c2w, requested.c2w[:3])


def _args(*extra):
    argv = ["generate", "--image", "a.png", "--trajectory", "dolly_in", "--frames", "81", "--models", "m",
            "--out", "o", *extra]
    args = build_parser().parse_args(argv)
    args.given = given_options(argv)
    apply_profile(args)
    return args


def test_profiles_select_the_official_geometry():
    for name in ("official-demo", "paper"):
        s = settings_for(name)
        assert (s.geometry_alignment, s.geometry_input) == ("official", "square-pad")
    assert (PipelineSettings().geometry_alignment, PipelineSettings().geometry_input) == ("sim3", "model")
    assert (settings_for("pack").geometry_alignment, settings_for("pack").geometry_input) == ("sim3", "model")
    a = _args("--profile", "official-demo")
    assert (a.geometry_alignment, a.geometry_input) == ("official", "square-pad")
    a = _args("--profile", "official-demo", "--geometry-alignment", "sim3")  # given values win
    assert (a.geometry_alignment, a.geometry_input) == ("sim3", "square-pad")
    assert (_args().geometry_alignment, _args().geometry_input) == ("sim3", "model")


def test_nodes_expose_the_options():
    from nodes.specs import PROFILE_WIDGETS, spec_by_id
    from worldwarp_core.pipeline import profile_widget_values

    specs = spec_by_id()
    loop = {i.name: i for i in specs["WorldWarpChunkLoop"].inputs}
    assert loop["geometry_alignment"].default == "sim3" and loop["geometry_input"].default == "model"
    assert {"alignment", "geometry_input"} <= {i.name for i in specs["WorldWarpEstimateGeometry"].inputs}
    assert "alignment" in {i.name for i in specs["WorldWarpAlignToHistory"].inputs}
    values = profile_widget_values("official-demo", PROFILE_WIDGETS["WorldWarpChunkLoop"])
    assert (values["geometry_alignment"], values["geometry_input"]) == ("official", "square-pad")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two chunks with a geometry stand-in whose poses and depth are the truth at half the scale, in
    another frame: the default (sim3) and the official alignment."""
    scene = default_scene()
    start = scene.default_camera(48, 32)
    rgb, depth = scene.render(start)
    path = make_trajectory("dolly_in@0.3", 9, start, scene_scale=median_depth(depth))
    out = {}
    for name, settings in (("default", SETTINGS), ("official", replace(SETTINGS, geometry_alignment="official"))):
        folder = str(tmp_path_factory.mktemp(name) / "run")
        pipe = WorldWarpPipeline(tiny_model(seed=0), _Sim3Geometry(scene, 0.5), None,
                                 replace(settings, pose_source="estimated", world_voxel=None))
        result = pipe(rgb[0], path, 17, prompt="a room", out_dir=folder, start_depth=depth[0])
        out[name] = result, folder
    return out


def test_the_official_alignment_keeps_the_raw_scale_and_the_default_fits_it(runs):
    def chunk(name, k):
        with open(os.path.join(runs[name][1], "chunks", f"chunk_{k:03d}", "chunk.json"), encoding="utf-8") as f:
            return json.load(f)

    def manifest(name):
        with open(os.path.join(runs[name][1], "manifest.json"), encoding="utf-8") as f:
            return json.load(f)

    assert chunk("default", 1)["depth_fit_residual"] is not None  # depth fitted to the previous cache
    assert chunk("official", 1)["depth_fit_residual"] is None  # the geometry model's own scale
    for name, used in (("default", "sim3"), ("official", "official")):
        inference = manifest(name)["inference"]
        assert inference["geometry_alignment"] == used and inference["geometry_input_used"] == "model"
    assert manifest("official")["settings"]["geometry_alignment"] == "official"
    # at the stand-in's half scale the official cache is half the scene around the last history camera, so the
    # next chunk's hints see other depths (the default fits the scale back); the path's cameras are the same
    hints = {n: np.load(os.path.join(runs[n][1], "chunks", "chunk_001", "hint_depth.npy")) for n in runs}
    valid = (hints["default"][1] > 0.5) & (hints["official"][1] > 0.5)
    assert valid.mean() > 0.2
    ratio = np.median(hints["official"][0][valid] / hints["default"][0][valid])
    assert 0.3 < ratio < 0.8
    torch.testing.assert_close(runs["default"][0].cameras.c2w, runs["official"][0].cameras.c2w)
