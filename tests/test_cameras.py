"""Cameras: shapes, round trips (c2w/w2c, each file format), bad input."""

import glob
import json
import math
import os

import pytest
import torch

from worldwarp_core.cameras import Cameras, intrinsics_from_fov, invert_rigid, look_at


def _random_cams(F=5, seed=0, w=64, h=48):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(F, 4, generator=g, dtype=torch.float64)
    q = q / q.norm(dim=1, keepdim=True)
    w_, x, y, z = q.unbind(1)
    R = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w_), 2 * (x * z + y * w_),
        2 * (x * y + z * w_), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w_),
        2 * (x * z - y * w_), 2 * (y * z + x * w_), 1 - 2 * (x * x + y * y),
    ], 1).reshape(F, 3, 3)
    vm = torch.eye(4, dtype=torch.float64).repeat(F, 1, 1)
    vm[:, :3, :3] = R
    vm[:, :3, 3] = torch.randn(F, 3, generator=g, dtype=torch.float64)
    Ks = intrinsics_from_fov(60.0, w, h, F).double()
    Ks[:, 0, 2] += torch.rand(F, generator=g, dtype=torch.float64)
    return Cameras(vm, Ks, w, h, list(range(0, 1000 * F, 1000)))


def test_shapes_and_c2w_round_trip():
    cams = _random_cams()
    assert cams.viewmats.shape == (5, 4, 4) and cams.Ks.shape == (5, 3, 3) and len(cams) == 5
    eye = torch.eye(4, dtype=torch.float64).expand(5, 4, 4)
    torch.testing.assert_close(cams.c2w @ cams.viewmats, eye, atol=1e-12, rtol=0)
    back = Cameras.from_c2w(cams.c2w, cams.Ks, cams.width, cams.height)
    torch.testing.assert_close(back.viewmats, cams.viewmats, atol=1e-12, rtol=0)
    torch.testing.assert_close(invert_rigid(invert_rigid(cams.viewmats)), cams.viewmats)


def test_project_centre_pixel_and_look_at():
    w2c = look_at(torch.tensor([[0.0, 0.0, -2.0]]), torch.tensor([[0.0, 0.0, 0.0]]))
    K = intrinsics_from_fov(90.0, 64, 48)
    cams = Cameras(w2c, K, 64, 48)
    uv, z = cams.project(torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    torch.testing.assert_close(uv[0, 0], torch.tensor([32.0, 24.0]))
    assert float(z[0, 0]) == pytest.approx(2.0)
    assert float(uv[0, 1, 0]) > 32.0  # +x world is image right
    assert float(uv[0, 2, 1]) > 24.0  # +y world is image down (OpenCV)
    torch.testing.assert_close(cams.centers[0], torch.tensor([0.0, 0.0, -2.0]), atol=1e-6, rtol=0)


def test_slice_cat_resize_crop():
    cams = _random_cams(6)
    parts = [cams[0:2], cams[2:5], cams[5]]
    assert [len(p) for p in parts] == [2, 3, 1]
    joined = Cameras.cat(parts)
    torch.testing.assert_close(joined.viewmats, cams.viewmats)
    assert joined.timestamps == cams.timestamps
    r = cams.resize(128, 96)
    torch.testing.assert_close(r.Ks[:, :2, :], cams.Ks[:, :2, :] * 2)
    c = cams.crop(4, 2, 32, 32)
    torch.testing.assert_close(c.Ks[:, 0, 2], cams.Ks[:, 0, 2] - 4)
    # a point keeps its pixel after resize (scaled) and crop (shifted)
    p = torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64)
    uv, _ = cams.project(p)
    uv_r, _ = r.project(p)
    uv_c, _ = c.project(p)
    torch.testing.assert_close(uv_r, uv * 2)
    torch.testing.assert_close(uv_c, uv - torch.tensor([4.0, 2.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="does not fit"):
        cams.crop(40, 0, 32, 32)


def test_json_and_nerfstudio_round_trip(tmp_path):
    cams = _random_cams()
    cams.to_json(tmp_path / "c.json")
    back = Cameras.from_json(tmp_path / "c.json")
    assert torch.equal(back.viewmats, cams.viewmats) and torch.equal(back.Ks, cams.Ks)
    assert back.timestamps == cams.timestamps
    cams.to_nerfstudio(tmp_path / "transforms.json")
    data = json.loads((tmp_path / "transforms.json").read_text())
    # OpenGL axes in the file: the camera's forward (+z OpenCV) is -z of transform_matrix
    c2w_gl = torch.tensor(data["frames"][0]["transform_matrix"], dtype=torch.float64)
    torch.testing.assert_close(-c2w_gl[:3, 2], cams.c2w[0, :3, 2])
    ns = Cameras.load(tmp_path / "transforms.json")
    torch.testing.assert_close(ns.viewmats, cams.viewmats, atol=1e-12, rtol=0)
    torch.testing.assert_close(ns.Ks, cams.Ks)


def test_re10k_synthetic_round_trip_is_lossless(tmp_path):
    cams = _random_cams()
    cams.to_re10k(tmp_path / "c.txt", url="https://example.invalid/video")
    back = Cameras.from_re10k(tmp_path / "c.txt", cams.width, cams.height)
    assert back.source_url == "https://example.invalid/video"
    torch.testing.assert_close(back.viewmats, cams.viewmats, atol=1e-15, rtol=0)
    torch.testing.assert_close(back.Ks, cams.Ks, atol=1e-13, rtol=0)


def test_real_re10k_files_round_trip(shared_data, tmp_path):
    """RealEstate10K pose files from CameraCtrl (assets/pose_files, Apache-2.0; data CC BY 4.0)."""
    files = sorted(glob.glob(os.path.join(shared_data, "re10k", "*.txt")))
    assert len(files) >= 5
    for path in files:
        cams = Cameras.from_re10k(path, 640, 360)
        assert len(cams) == 16 and cams.source_url.startswith("http")
        out = tmp_path / os.path.basename(path)
        cams.to_re10k(out)
        again = Cameras.from_re10k(out, 640, 360)
        assert torch.equal(again.viewmats, cams.viewmats) and torch.equal(again.Ks, cams.Ks)
        assert again.timestamps == cams.timestamps
        # every number in the original file is reproduced exactly
        orig = [ln.split() for ln in open(path).read().split("\n")[1:] if ln.strip()]
        new = [ln.split() for ln in out.read_text().split("\n")[1:] if ln.strip()]
        for a, b in zip(orig, new):
            assert [float(x) for x in a] == [float(x) for x in b]


def test_bad_input_messages(tmp_path):
    cams = _random_cams(3)
    vm = cams.viewmats.clone()
    vm[1, 0, 3] = float("nan")
    with pytest.raises(ValueError, match=r"viewmat of frame 1 has a non-finite value"):
        Cameras(vm, cams.Ks, 64, 48)
    vm = cams.viewmats.clone()
    vm[2, :3, :3] *= 1.5
    with pytest.raises(ValueError, match=r"viewmat of frame 2: rotation is not orthonormal"):
        Cameras(vm, cams.Ks, 64, 48)
    with pytest.raises(ValueError, match=r"viewmats must have shape \[F, 4, 4\], got \[3, 3, 4\]"):
        Cameras(cams.viewmats[:, :3], cams.Ks, 64, 48)
    with pytest.raises(ValueError, match="viewmats has 3 frames but Ks has 2"):
        Cameras(cams.viewmats, cams.Ks[:2], 64, 48)
    K = cams.Ks.clone()
    K[0, 0, 0] = -1
    with pytest.raises(ValueError, match="K of frame 0: focal lengths must be positive"):
        Cameras(cams.viewmats, K, 64, 48)
    bad = tmp_path / "bad.txt"
    bad.write_text("https://x\n0 0.5 0.5 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1\n")
    with pytest.raises(ValueError, match="frame 0 has 18 values, expected 19"):
        Cameras.from_re10k(bad, 64, 48)
    with pytest.raises(ValueError, match="give the image width and height"):
        Cameras.load(bad)
    with pytest.raises(ValueError, match="horizontal field of view must be in"):
        intrinsics_from_fov(180.0, 64, 48)
    assert math.isclose(float(intrinsics_from_fov(90.0, 64, 48)[0, 0, 0]), 32.0, rel_tol=1e-6)
