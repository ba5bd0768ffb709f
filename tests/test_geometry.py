"""geometry: robust alignment maths on synthetic ground truth, tiny transformers backends, registry."""

import math

import pytest
import torch

from worldwarp_core.cameras import Cameras, look_at
from worldwarp_core.geometry import (
    GeometryResult,
    align_depth_to_cache,
    align_poses,
    fit_depth_scale,
    fit_inverse_depth_affine,
    list_estimators,
    load_estimator,
    umeyama_sim3,
)
from worldwarp_core.geometry.monocular import DepthAnythingV2, DepthPro, focal_from_fov
from worldwarp_core.geometry.testing import tiny_depth_anything, tiny_depth_pro
from worldwarp_core.synthetic import default_scene
from worldwarp_core.trajectory import axis_angle


@pytest.fixture(scope="module")
def scene_depth():
    scene = default_scene()
    cam = scene.default_camera(64, 48)
    rgb, depth = scene.render(cam)
    return rgb, depth.double(), cam


def _outliers(x, frac=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    bad = torch.rand(x.shape, generator=g) < frac
    return torch.where(bad, x * (0.2 + 3 * torch.rand(x.shape, generator=g, dtype=x.dtype)), x), bad


def test_metric_scale_recovered_with_outliers(scene_depth):
    _, depth, _ = scene_depth
    pred, _ = _outliers(depth / 2.37)
    fit = fit_depth_scale(pred, depth)
    assert fit.scale == pytest.approx(2.37, rel=1e-4)
    assert fit.residual < 1e-6  # the inliers agree exactly


def test_relative_scale_shift_in_inverse_depth_recovered(scene_depth):
    _, depth, _ = scene_depth
    a, b = 0.8, 0.05  # 1/depth = a * pred + b
    pred = (1 / depth - b) / a
    noisy, _ = _outliers(pred, seed=1)
    fit = fit_inverse_depth_affine(noisy, depth)
    assert fit.scale == pytest.approx(a, rel=1e-4) and fit.shift == pytest.approx(b, abs=1e-4)


def test_umeyama_recovers_sim3_with_outliers():
    g = torch.Generator().manual_seed(2)
    src = torch.randn(30, 3, generator=g, dtype=torch.float64)
    R = axis_angle(torch.tensor([0.3, 1.0, -0.2]), 0.7)
    s, t = 1.7, torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    dst = s * src @ R.T + t
    s2, R2, t2 = umeyama_sim3(src, dst)
    assert s2 == pytest.approx(s, rel=1e-9)
    torch.testing.assert_close(R2, R, atol=1e-9, rtol=0)
    torch.testing.assert_close(t2, t, atol=1e-9, rtol=0)
    from worldwarp_core.geometry import robust_sim3

    dst_bad = dst.clone()
    dst_bad[:6] += 5.0 * torch.randn(6, 3, generator=g, dtype=torch.float64)  # 20 % outliers
    s3, R3, t3, _ = robust_sim3(src, dst_bad)
    assert s3 == pytest.approx(s, rel=1e-4)
    torch.testing.assert_close(R3, R, atol=1e-4, rtol=0)


def test_pose_alignment_to_requested_frame(scene_depth):
    _, depth, cam = scene_depth
    eyes = torch.tensor([[0.1 * i, 0.02 * i, 0.15 * i] for i in range(5)], dtype=torch.float64)
    req = Cameras(look_at(eyes, eyes + torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)),
                  cam.Ks.double().expand(5, 3, 3), 64, 48)
    # the "estimate": the same cameras in another Sim(3) frame, depth in that frame's units
    R = axis_angle(torch.tensor([0.0, 1.0, 0.0]), 0.4)
    s = 0.5
    c2w = req.c2w.clone()
    c2w[:, :3, :3] = R @ c2w[:, :3, :3]
    c2w[:, :3, 3] = s * c2w[:, :3, 3] @ R.T + torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    est = Cameras.from_c2w(c2w, req.Ks, 64, 48)
    result = GeometryResult(depth.expand(5, 48, 64) * s, torch.ones(5, 48, 64), est)
    cams, d, res = align_poses(result, req, "estimated")
    torch.testing.assert_close(cams.viewmats, req.viewmats, atol=1e-6, rtol=0)
    torch.testing.assert_close(d.double(), depth.expand(5, 48, 64), atol=1e-4, rtol=1e-5)
    same, d2, _ = align_poses(result, req, "requested")
    assert same is req and d2 is result.depth


def test_pose_alignment_when_the_requested_cameras_do_not_move(scene_depth):
    """A pan (or one frame) fixes no scale: rotation and centre are aligned, the estimate's scale kept."""
    _, depth, cam = scene_depth
    eye = torch.zeros(4, 3, dtype=torch.float64)
    yaw = torch.linspace(0, 0.6, 4, dtype=torch.float64)
    targets = torch.stack([torch.sin(yaw), torch.zeros(4, dtype=torch.float64), torch.cos(yaw)], 1)
    req = Cameras(look_at(eye, targets), cam.Ks.double().expand(4, 3, 3), 64, 48)
    R = axis_angle(torch.tensor([1.0, 0.0, 0.0]), 0.3)
    c2w = req.c2w.clone()
    c2w[:, :3, :3] = R @ c2w[:, :3, :3]
    c2w[:, :3, 3] = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    result = GeometryResult(depth.expand(4, 48, 64).float(), torch.ones(4, 48, 64),
                            Cameras.from_c2w(c2w, req.Ks, 64, 48))
    cams, d, res = align_poses(result, req, "estimated")
    torch.testing.assert_close(cams.c2w, req.c2w, atol=1e-6, rtol=0)
    assert torch.equal(d, result.depth.float()) and res < 1e-9
    one, d1, _ = align_poses(GeometryResult(result.depth[:1], result.confidence[:1], result.cameras[0:1]),
                             req[0:1], "estimated")
    torch.testing.assert_close(one.c2w, req.c2w[:1], atol=1e-6, rtol=0)


def test_depth_alignment_against_cache_render(scene_depth):
    _, depth, cam = scene_depth
    alpha = torch.ones_like(depth)
    alpha[:, :, :20] = 0.0  # no cache there: those pixels must not vote
    pred = depth.clone() / 3.0
    pred[:, :, :20] = 100.0
    result = GeometryResult(pred.float(), torch.ones_like(pred), cam, "metric")
    aligned, fit = align_depth_to_cache(result, depth.float(), alpha.float())
    assert fit.scale == pytest.approx(3.0, rel=1e-4)
    torch.testing.assert_close(aligned[:, :, 20:].double(), depth[:, :, 20:], atol=1e-3, rtol=1e-4)


def test_degenerate_inputs_raise_instead_of_nan(scene_depth):
    _, depth, _ = scene_depth
    with pytest.raises(ValueError, match="fewer than 3 valid overlapping pixels"):
        fit_depth_scale(depth, depth, torch.zeros_like(depth))
    with pytest.raises(ValueError, match="predicted inverse depth is constant"):
        fit_inverse_depth_affine(torch.ones_like(depth), depth)
    with pytest.raises(ValueError, match="needs at least 3 cameras, got 2"):
        umeyama_sim3(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="the source cameras all sit at one point"):
        umeyama_sim3(torch.zeros(4, 3), torch.randn(4, 3))


def test_depth_anything_folder_round_trip(tmp_path):
    model = tiny_depth_anything()
    model.save_pretrained(str(tmp_path / "da"))
    est = load_estimator("depth-anything-v2", str(tmp_path / "da"), input_size=56)
    frames = torch.rand(2, 32, 48, 3, generator=torch.Generator().manual_seed(0))
    r = est.estimate(frames)
    assert r.depth.shape == (2, 32, 48) and r.kind == "relative" and r.inverse is not None
    torch.testing.assert_close(r.depth.flatten(1).median(1).values, torch.ones(2))
    assert bool((r.depth > 0).all())
    # the default FoV sets the focal length: f = 0.5 W / tan(fov / 2)
    assert float(r.cameras.Ks[0, 0, 0]) == pytest.approx(0.5 * 48 / math.tan(math.radians(30)), rel=1e-6)
    same = DepthAnythingV2(model=model, input_size=56).estimate(frames)
    torch.testing.assert_close(r.inverse, same.inverse)


def test_depth_pro_focal_and_metric_depth_follow_the_formula(tmp_path):
    model = tiny_depth_pro(55.0)
    model.save_pretrained(str(tmp_path / "dp"))
    est = load_estimator("depth-pro", str(tmp_path / "dp"))
    frames = torch.rand(1, 32, 48, 3, generator=torch.Generator().manual_seed(1))
    r = est.estimate(frames)
    f = float(focal_from_fov(torch.tensor(55.0), 48))
    assert float(r.cameras.Ks[0, 0, 0]) == pytest.approx(f, rel=1e-4)
    with torch.no_grad():
        x = __import__("worldwarp_core.geometry.preprocess", fromlist=["x"]).to_model_input(
            frames, est.size, est.size, (0.5,) * 3, (0.5,) * 3)
        canon = model(pixel_values=x).predicted_depth
    from worldwarp_core.geometry.preprocess import resize_map

    expected = 1.0 / (resize_map(canon, 32, 48) * 48 / f).clamp(1e-4, 1e4)
    torch.testing.assert_close(r.depth, expected, rtol=1e-4, atol=1e-5)
    assert isinstance(DepthPro(model=model), DepthPro)


def test_registry_and_missing_folders(tmp_path):
    assert {"depth-pro", "depth-anything-v2", "ttt3r", "depth-anything-3"} <= set(list_estimators())
    with pytest.raises(ValueError, match="unknown geometry backend 'vggt'"):
        load_estimator("vggt")
    with pytest.raises(ValueError, match="model folder not found: .*nope; put the Depth Pro"):
        load_estimator("depth-pro", str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="ttt3r: give the folder of your TTT3R repository checkout"):
        load_estimator("ttt3r", None)


def test_depth_anything_3_adapter_against_a_stand_in_package(tmp_path, monkeypatch):
    """The DA3 adapter's conversions (resize, intrinsics scaling, 3x4 extrinsics) against a stand-in with
    the package's documented API (``DepthAnything3.from_pretrained``, ``inference`` -> depth [N,h,w], conf,
    extrinsics [N,3,4] OpenCV w2c, intrinsics [N,3,3] at the processing size)."""
    import numpy as np

    pkg = tmp_path / "depth_anything_3"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "api.py").write_text(
        "import numpy as np\n"
        "class _P: pass\n"
        "class DepthAnything3:\n"
        "    @classmethod\n"
        "    def from_pretrained(cls, path, local_files_only=False):\n"
        "        m = cls(); m.path = path; m.local_only = local_files_only; return m\n"
        "    def to(self, device): return self\n"
        "    def inference(self, images, process_res=504, extrinsics=None, intrinsics=None):\n"
        "        n = len(images); p = _P()\n"
        "        p.depth = np.full((n, 16, 24), 2.0, np.float32); p.conf = np.ones((n, 16, 24), np.float32)\n"
        "        e = np.zeros((n, 3, 4), np.float32); e[:, :, :3] = np.eye(3); e[:, 0, 3] = np.arange(n)\n"
        "        p.extrinsics = e if extrinsics is None else extrinsics[:, :3]\n"
        "        k = np.array([[20., 0, 12], [0, 20., 8], [0, 0, 1]], np.float32)\n"
        "        p.intrinsics = np.stack([k] * n); p.seen_poses = extrinsics is not None\n"
        "        return p\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "model").mkdir()
    est = load_estimator("depth-anything-3", str(tmp_path / "model"))
    assert est.model.local_only  # never a hub download
    r = est.estimate(torch.rand(3, 32, 48, 3))
    assert r.depth.shape == (3, 32, 48) and torch.allclose(r.depth, torch.full((3, 32, 48), 2.0))
    assert float(r.cameras.Ks[0, 0, 0]) == pytest.approx(40.0) and float(r.cameras.Ks[0, 1, 2]) == pytest.approx(16.0)
    assert np.allclose(r.cameras.viewmats[:, 0, 3].numpy(), [0, 1, 2])


def test_sim3_from_cameras_on_a_straight_dolly_with_an_outlier_camera():
    """Collinear centres (a dolly): two coordinates are constant, so only a per-camera fit recovers the
    scale (a per-coordinate robust fit trims the moving coordinate away and returns s = 0)."""
    from worldwarp_core.geometry import sim3_from_cameras

    eyes = torch.zeros(9, 3, dtype=torch.float64)
    eyes[:, 2] = torch.linspace(0, 1.2, 9, dtype=torch.float64)
    dst = torch.linalg.inv(look_at(eyes, eyes + torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)))
    R = axis_angle(torch.tensor([0.3, 1.0, -0.2]), 0.9)
    s, t = 0.5, torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    src = dst.clone()
    src[:, :3, :3] = R @ dst[:, :3, :3]
    src[:, :3, 3] = s * dst[:, :3, 3] @ R.T + t
    src[4, :3, 3] += torch.tensor([0.4, -0.3, 0.2], dtype=torch.float64)  # one badly estimated centre
    s2, R2, t2, res = sim3_from_cameras(src, dst)
    assert s2 == pytest.approx(1 / s, rel=1e-6)
    torch.testing.assert_close(R2, R.T, atol=1e-9, rtol=0)
    mapped = s2 * src[:, :3, 3] @ R2.T + t2
    keep = torch.arange(9) != 4
    torch.testing.assert_close(mapped[keep], dst[keep, :3, 3], atol=1e-6, rtol=0)
    assert res < 1e-6


def test_pose_alignment_on_real_re10k_paths(shared_data):
    """Real hand-held RealEstate10K paths (mostly forward, nearly straight): each seen in another Sim(3)
    frame, with centre noise and one gross outlier camera, as TTT3R's poses would be; aligning back
    recovers the scale to 0.5 % and the clean centres to 1 % of the path length."""
    import glob
    import os

    g = torch.Generator().manual_seed(0)
    files = sorted(glob.glob(os.path.join(shared_data, "re10k", "*.txt")))
    assert files
    for i, path in enumerate(files):
        req = Cameras.from_re10k(path, 640, 360).to(dtype=torch.float64)
        dst = req.c2w
        length = float((dst[1:, :3, 3] - dst[:-1, :3, 3]).norm(dim=1).sum())
        R = axis_angle(torch.randn(3, generator=g), 0.3 + 0.4 * i)
        s = 0.3 + 0.5 * i
        src = dst.clone()
        src[:, :3, :3] = R @ dst[:, :3, :3]
        src[:, :3, 3] = s * dst[:, :3, 3] @ R.T + torch.randn(3, generator=g, dtype=torch.float64)
        src[:, :3, 3] += 1e-3 * s * length * torch.randn(len(req), 3, generator=g, dtype=torch.float64)
        src[len(req) // 2, :3, 3] += 0.5 * s * length  # one gross outlier
        est = GeometryResult(torch.ones(len(req), 4, 4), torch.ones(len(req), 4, 4),
                             Cameras.from_c2w(src, req.Ks, 640, 360))
        cams, depth, _ = align_poses(est, req, "estimated")
        assert float(depth[0, 0, 0]) == pytest.approx(1 / s, rel=5e-3), path
        err = (cams.c2w[:, :3, 3] - dst[:, :3, 3]).norm(dim=1)
        err[len(req) // 2] = 0
        assert float(err.max()) < 0.01 * length, (path, float(err.max()) / length)
