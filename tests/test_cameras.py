"""Cameras: shapes, round trips (c2w/w2c, each file format), bad input."""

import glob
import json
import math
import os
import re

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
    with pytest.raises(ValueError, match=r"bad.txt: frame 0 \(line 2\) has 18 values, expected 19"):
        Cameras.from_re10k(bad, 64, 48)
    with pytest.raises(ValueError, match="give the image width and height"):
        Cameras.load(bad)
    with pytest.raises(ValueError, match="horizontal field of view must be in"):
        intrinsics_from_fov(180.0, 64, 48)
    assert math.isclose(float(intrinsics_from_fov(90.0, 64, 48)[0, 0, 0]), 32.0, rel_tol=1e-6)


# ----------------------------------------------------------------------------- malformed camera files


def _re10k_text(shared_data):
    """A real RealEstate10K file (CameraCtrl assets, Apache-2.0; camera data CC BY 4.0)."""
    return open(os.path.join(shared_data, "re10k", "0bf152ef84195293.txt"), encoding="utf-8").read()


def _expect(path, message, **kw):
    """Loading ``path`` (directly and through ``Cameras.load``) raises ``message``, naming the file."""
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + message):
        Cameras.load(path, **kw)


def test_re10k_malformed_files_are_refused(shared_data, tmp_path):
    text = _re10k_text(shared_data)
    lines = text.splitlines()
    ok = tmp_path / "ok.txt"
    ok.write_text(text)
    assert len(Cameras.load(ok, 640, 360)) == 16
    # first line a corrupt frame (no URL): it was taken as the URL and the frame dropped
    bad = tmp_path / "first.txt"
    bad.write_text("\n".join([lines[1][:-20]] + lines[2:]) + "\n")
    _expect(bad, r"frame 0 \(line 1\) has 18 values, expected 19", width=640, height=360)
    # a line with a word that is no number
    bad = tmp_path / "word.txt"
    bad.write_text("\n".join(lines[:4] + [lines[4].replace("0.500000000", "0.5x", 1)] + lines[5:]) + "\n")
    _expect(bad, r"frame 3 \(line 5\): value 4 of 19, '0.5x', is not a number", width=640, height=360)
    bad.write_text("\n".join(lines[:2] + ["1586.5" + lines[2][9:]] + lines[3:]) + "\n")
    _expect(bad, r"frame 1 \(line 3\): timestamp '1586.5' is not a whole number", width=640, height=360)
    # the file cut in the middle of its last number (19 values, but the last one truncated)
    bad = tmp_path / "cut.txt"
    bad.write_text(text.rstrip("\n")[:-5])
    _expect(bad, r"frame 15 \(line 17\) ends the file in '-3.4567', shorter than that number on every "
                 r"other line.*cut off mid-number", width=640, height=360)
    # cut mid-line: fewer values
    bad.write_text(text.rstrip("\n")[:-40])
    _expect(bad, r"frame 15 \(line 17\) has 1[0-9] values, expected 19", width=640, height=360)
    # the same files complete, but without a final newline, still load
    ok.write_text(text.rstrip("\n"))
    assert len(Cameras.load(ok, 640, 360)) == 16
    # a non-orthonormal rotation names the file and the frame
    bad = tmp_path / "rot.txt"
    bad.write_text("\n".join(lines[:3] + [lines[3].replace("0.7", "0.9", 1)] + lines[4:]) + "\n")
    _expect(bad, r"viewmat of frame 2: rotation is not orthonormal", width=640, height=360)


def test_binary_and_bad_json_files_are_refused(shared_data, tmp_path):
    png = os.path.join(shared_data, "images", "coffee.png")
    for name, what in (("cams.txt", "RealEstate10K pose file"), ("cams.json", "camera JSON"),
                       ("transforms.json", "nerfstudio transforms.json")):
        path = tmp_path / name
        path.write_bytes(open(png, "rb").read())
        msg = r"not a text .*\(byte 0x89 at offset 0 is not UTF-8\)"
        _expect(path, msg, width=64, height=48)
        with pytest.raises(ValueError, match=re.escape(str(path)) + ": " + msg):
            {"cams.txt": lambda p: Cameras.from_re10k(p, 64, 48), "cams.json": Cameras.from_json,
             "transforms.json": Cameras.from_nerfstudio}[name](path)
        del what
    path = tmp_path / "nul.json"
    path.write_bytes(b"{\"width\": 64\x00}")
    _expect(path, r"not a text camera file \(NUL byte at offset 12\)")
    path = tmp_path / "syntax.json"
    path.write_text('{"width": 64, "height": 48,\n "frames": [}')
    _expect(path, r"not a RealEstate10K .txt and not valid JSON \(line 2 column 13: ")
    for reader in (Cameras.from_json, Cameras.from_nerfstudio):
        with pytest.raises(ValueError, match=re.escape(str(path)) + r": not valid JSON \(line 2 column 13: "):
            reader(path)


def _ours(tmp_path, mutate, name="cams.json"):
    data = _random_cams(3).to_dict()
    mutate(data)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_our_json_malformed_fields_are_refused(tmp_path):
    assert len(Cameras.load(_ours(tmp_path, lambda d: None))) == 3
    cases = [
        (lambda d: d.update(width="abc"), r"'width' must be a positive whole number of pixels, got 'abc'"),
        (lambda d: d.update(height=47.5), r"'height' must be a positive whole number of pixels, got 47.5"),
        (lambda d: d.update(width=True), r"'width' must be a positive whole number of pixels, got True"),
        (lambda d: d.pop("width"), r"missing 'width'; expected keys width, height"),
        (lambda d: d.update(frames={"a": 1}), r"'frames' must be a non-empty list of cameras"),
        (lambda d: d.update(frames=[]), r"'frames' must be a non-empty list of cameras"),
        (lambda d: d["frames"][1].pop("K"), r"frame 1 has no 'K'"),
        (lambda d: d["frames"][2].update(viewmat=[[1, 0, 0, 0]] * 3), r"frame 2 'viewmat' must be a 4x4 list"),
        (lambda d: d["frames"][0]["K"][0].__setitem__(0, "500"), r"frame 0 'K'\[0\]\[0\] must be a number, got '500'"),
        (lambda d: d["frames"][1].update(timestamp=1.5), r"frame 1 'timestamp' must be a whole number, got 1.5"),
        (lambda d: d["frames"][1].pop("timestamp"), r"2 of 3 frames have a 'timestamp'; give all or none"),
        (lambda d: d["frames"][2]["viewmat"][0].__setitem__(0, 3.0), r"viewmat of frame 2: rotation is not orthonormal"),
        (lambda d: d.update(convention="opengl_c2w"), r"convention 'opengl_c2w' is not 'opencv_w2c'"),
    ]
    for mutate, message in cases:
        path = _ours(tmp_path, mutate)
        _expect(path, message)
        with pytest.raises(ValueError, match=re.escape(str(path)) + ": " + message):
            Cameras.from_json(path)
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    _expect(path, r"a camera JSON holds an object with width, height and frames, got list")


def _nerfstudio(tmp_path, mutate):
    data = _random_cams(3).to_nerfstudio_dict()
    mutate(data)
    path = tmp_path / "transforms.json"
    path.write_text(json.dumps(data))
    return path


def test_nerfstudio_malformed_fields_are_refused(tmp_path):
    assert len(Cameras.load(_nerfstudio(tmp_path, lambda d: None))) == 3
    cases = [
        (lambda d: d["frames"][0].pop("transform_matrix"), r"frame 0 has no 'transform_matrix'"),
        (lambda d: d["frames"][1].pop("transform_matrix"), r"frame 1 has no 'transform_matrix'"),
        (lambda d: [f.pop("fl_x") for f in d["frames"]], r"frame 0 has no 'fl_x' \(nor does the file header\)"),
        (lambda d: d["frames"][2].update(fl_y="600"), r"frame 2 'fl_y' must be a number, got '600'"),
        (lambda d: d["frames"][1].update(w="abc"), r"frame 1 'w' must be a positive whole number of pixels, got 'abc'"),
        (lambda d: [f.pop("h") for f in d["frames"]] and d.update(h=47.9),
         r"header 'h' must be a positive whole number of pixels, got 47.9"),
        (lambda d: d["frames"][1].update(transform_matrix="eye"), r"frame 1 'transform_matrix' must be a 4x4 list"),
        (lambda d: d["frames"][2]["transform_matrix"][1].__setitem__(3, None),
         r"frame 2 'transform_matrix'\[1\]\[3\] must be a number, got None"),
        (lambda d: d["frames"].__setitem__(1, [1, 2]), r"frame 1 must be an object with a transform_matrix"),
        (lambda d: d.update(frames="none"), r"'frames' must be a non-empty list of cameras, got 'none'"),
        (lambda d: d["frames"][1].update(w=32), r"frame 1 is 32x48, frame 0 is 64x48; one size per file"),
    ]
    for mutate, message in cases:
        path = _nerfstudio(tmp_path, mutate)
        _expect(path, message)
        with pytest.raises(ValueError, match=re.escape(str(path)) + ": " + message):
            Cameras.from_nerfstudio(path)
