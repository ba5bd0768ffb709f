"""Input checks: image files (bit depth, alpha, unreadable, sizes), tensors given to the API, numbers,
run-folder records, PLY headers, model folders. Each case is the input a fuzz run found and the
exact one-line error (or the correct value) it must give now."""

import json
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from worldwarp_core.inputs import (
    MAX_SIDE,
    check_device,
    check_float,
    check_image,
    check_int,
    check_output_folder,
    check_seed,
    load_camera_file,
    load_image,
    nearest_size,
    read_json,
    read_npy,
)


def _png16(path, a):
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit RGB): ``a`` is ``[H, W, C]`` uint16."""
    H, W, C = a.shape
    color = {1: 0, 2: 4, 3: 2, 4: 6}[C]
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(H))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 16, color, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return str(path)


# ----------------------------------------------------------------------------- image files
def test_16bit_grey_png_is_scaled_by_its_bit_depth_not_clipped(tmp_path):
    a = np.linspace(0, 65535, 32 * 48).reshape(32, 48, 1).astype(np.uint16)
    path = _png16(tmp_path / "grey16.png", a)
    assert Image.open(path).mode.startswith("I")  # what Pillow's convert("RGB") used to clip at 255
    img = load_image(path)
    assert img.shape == (32, 48, 3) and img.dtype == torch.float32
    torch.testing.assert_close(img[..., 0], torch.from_numpy(a[..., 0] / 65535.0).float(), atol=1e-6, rtol=0)
    assert float((img == 1.0).float().mean()) < 0.01  # was 98 % white


def test_16bit_rgb_png_keeps_its_values(tmp_path):
    a = np.random.RandomState(0).randint(0, 65536, (32, 48, 3)).astype(np.uint16)
    img = load_image(_png16(tmp_path / "rgb16.png", a))
    assert (img - torch.from_numpy(a / 65535.0).float()).abs().max() < 1 / 255  # 8 significant bits at least


def test_transparent_pixels_are_refused_or_composited_as_asked(tmp_path):
    rgba = np.zeros((32, 48, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    rgba[:16, :, 3] = 0  # top half transparent
    rgba[16:20, :, 3] = 128
    path = str(tmp_path / "rgba.png")
    Image.fromarray(rgba, "RGBA").save(path)
    with pytest.raises(ValueError, match=r"rgba.png has transparent pixels \(62.5 % of the image\).*--alpha white"):
        load_image(path)
    white, black = load_image(path, alpha="white"), load_image(path, alpha="black")
    torch.testing.assert_close(white[0, 0], torch.ones(3))  # fully transparent -> the background
    torch.testing.assert_close(black[0, 0], torch.zeros(3))
    a = 128 / 255
    torch.testing.assert_close(white[17, 0], torch.tensor([200 / 255 * a + 1 - a, 1 - a, 1 - a]))
    torch.testing.assert_close(white[30], black[30])  # opaque pixels are untouched
    rgba[..., 3] = 255  # an all-opaque alpha channel holds nothing: accepted as RGB
    Image.fromarray(rgba, "RGBA").save(path)
    torch.testing.assert_close(load_image(path), torch.from_numpy(rgba[..., :3] / 255.0).float())


def test_unreadable_and_badly_sized_images_name_the_file_and_the_fix(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ValueError, match=r"--image: .*notes.png is not an image this program can read"):
        load_image(str(text))
    good = tmp_path / "good.png"
    Image.new("RGB", (48, 32)).save(good)
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(good.read_bytes()[:60])
    with pytest.raises(ValueError, match=r"trunc.png"):
        load_image(str(trunc))
    with pytest.raises(ValueError, match=r"image not found: .*missing.png"):
        load_image(str(tmp_path / "missing.png"))
    one = tmp_path / "one.png"
    Image.new("RGB", (1, 1)).save(one)
    with pytest.raises(ValueError, match=r"one.png is 1x1: width and height must be multiples of 16 and each side must be "
                                         r"32..2048 pixels; pass --resize 32x32"):
        load_image(str(one))
    odd = tmp_path / "odd.png"
    Image.new("RGB", (50, 40)).save(odd)
    with pytest.raises(ValueError, match=r"50x40: width and height must be multiples of 16; pass --resize 48x32"):
        load_image(str(odd))
    assert load_image(str(odd), "48x32").shape == (32, 48, 3)
    wide = tmp_path / "wide.png"
    Image.new("RGB", (4096, 32)).save(wide)
    with pytest.raises(ValueError, match=rf"4096x32: each side must be 32..{MAX_SIDE} pixels and the longer side may "
                                         r"be at most 4x the shorter; pass --resize 2048x512"):
        load_image(str(wide))
    with pytest.raises(ValueError, match=r"--resize takes WIDTHxHEIGHT"):
        load_image(str(odd), "48by32")
    with pytest.raises(ValueError, match=r"--resize is 8x8: width and height must be multiples of 16 and each side must be "
                                         r"32..2048 pixels; use 32x32"):
        load_image(str(odd), "8x8")


def test_nearest_size_is_valid():
    import random

    from worldwarp_core.inputs import size_problem

    rng = random.Random(0)
    sizes = [(1, 1), (50, 40), (4096, 32), (5000, 5000), (3000, 2000), (832, 480), (469, 78)]
    sizes += [(rng.randint(1, 20000), rng.randint(1, 20000)) for _ in range(2000)]
    for w, h in sizes:
        assert size_problem(*nearest_size(w, h)) is None, (w, h)
    assert nearest_size(832, 480) == (832, 480) and nearest_size(3000, 2000) == (1888, 1248)  # aspect kept


# ----------------------------------------------------------------------------- tensors and numbers
def test_image_tensors_from_the_api():
    ok = torch.rand(32, 48, 3)
    assert check_image(ok) is ok
    with pytest.raises(ValueError, match=r"start image values must be in 0..1, got 0..255; it looks like 0..255: "
                                         r"divide by 255"):
        check_image(torch.linspace(0, 255, 32 * 48 * 3).reshape(32, 48, 3))
    nan = ok.clone()
    nan[3, 4, 1] = float("nan")
    with pytest.raises(ValueError, match=r"start image has 1 NaN/inf values"):
        check_image(nan)
    with pytest.raises(ValueError, match=r"alpha channel"):
        check_image(torch.rand(32, 48, 4))
    with pytest.raises(ValueError, match=r"dtype torch.uint8; give floats in 0..1"):
        check_image((ok * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"start image is 1x1: width and height must be multiples of 16 and each side must be 32..2048 pixels; resize or crop it "
                                         r"to 32x32"):
        check_image(torch.rand(1, 1, 3))


def test_numbers_are_refused_by_name_with_the_nearest_valid_value():
    with pytest.raises(ValueError, match=r"--cfg must be a finite number >= 1, got nan; use e.g. 5"):
        check_float(float("nan"), "--cfg", 1.0, example=5.0)
    with pytest.raises(ValueError, match=r"--world-voxel must be a finite number > 0, got 0.0; use e.g. 0.05"):
        check_float(0.0, "--world-voxel", 0.0, lo_open=True, example=0.05)
    with pytest.raises(ValueError, match=r"frames must be a whole number, got 9.0"):
        check_int(9.0, "frames", 1)
    with pytest.raises(ValueError, match=r"--path-frames must be >= 1, got 0; use 1"):
        check_int(0, "--path-frames", 1)
    with pytest.raises(ValueError, match=rf"--seed must be in 0..{2**31 - 1}, got {2**70}; use {2**31 - 1}"):
        check_seed(2**70, "--seed")
    assert check_int(np.int64(5), "x", 1) == 5 and check_seed(7) == 7
    with pytest.raises(ValueError, match="whole number"):
        check_int(True, "frames")


def test_pipeline_settings_and_frames_refuse_silent_values():
    from worldwarp_core.pipeline import PipelineSettings
    from worldwarp_core.sampler import SamplerConfig

    with pytest.raises(ValueError, match=r"guidance_scale \(cfg\) must be a finite number >= 1, got nan"):
        PipelineSettings(guidance_scale=float("nan"))
    with pytest.raises(ValueError, match=r"guidance scale must be >= 1"):
        SamplerConfig(guidance_scale=float("nan"))
    with pytest.raises(ValueError, match=r"world_voxel must be a finite number > 0, got 0"):
        PipelineSettings(world_voxel=0)
    with pytest.raises(ValueError, match=r"seed must be in 0..2147483647, got 1180591620717411303424"):
        PipelineSettings(seed=2**70)
    with pytest.raises(ValueError, match=r"extend mode must be one of extrapolate, loop, pingpong, slowdown; got 'lop'"):
        PipelineSettings(extend_mode="lop")
    with pytest.raises(ValueError, match=r"frames must be a whole number, got 9.0"):
        PipelineSettings().chunk_starts(9.0)


def test_device_checks():
    assert check_device("cpu") == "cpu"
    with pytest.raises(ValueError, match=r"--device 'bogus' is not a device; use cpu, cuda, cuda:N or mps"):
        check_device("bogus")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"--device cuda: CUDA is not available here"):
            check_device("cuda")


def test_output_folder_checks(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(ValueError, match=r"--out .*afile is a file, not a folder"):
        check_output_folder(str(f))
    with pytest.raises(ValueError, match=r"afile is a file, so the folder cannot be created"):
        check_output_folder(str(f / "sub"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    with pytest.raises(ValueError, match=r"already holds a run; pass --resume to continue it or --overwrite to "
                                         r"replace it"):
        check_output_folder(str(run))
    check_output_folder(str(run), resume=True)
    mine = tmp_path / "mine"  # not a run: refused before any model loads, overwrite or not
    mine.mkdir()
    (mine / "holiday.png").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"holds no WorldWarp run; choose an empty or new folder \(--overwrite only "
                                         r"replaces a WorldWarp run\)"):
        check_output_folder(str(mine), overwrite=True)
    check_output_folder(str(tmp_path / "new" / "deeper"))
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(ValueError, match="is not writable"):
            check_output_folder(str(ro / "out"))


def test_run_folder_records_name_the_file(tmp_path):
    bad = tmp_path / "chunk.json"
    bad.write_text('{"chunk": 0, "fir')
    with pytest.raises(ValueError, match=r"chunk record .*chunk.json is corrupt \(.*\); delete that chunk folder"):
        read_json(str(bad), "chunk record")
    arr = tmp_path / "hint_depth.npy"
    np.save(arr, np.zeros((2, 9, 32, 48), np.float32))
    assert read_npy(str(arr), "cache depth", (2, 9, 32, 48)).shape == (2, 9, 32, 48)
    arr.write_bytes(arr.read_bytes()[:500])
    with pytest.raises(ValueError, match=r"cache depth .*hint_depth.npy is truncated or corrupt"):
        read_npy(str(arr), "cache depth", (2, 9, 32, 48))


def test_camera_file_errors_name_the_file(tmp_path):
    from worldwarp_core.cameras import Cameras, intrinsics_from_fov

    cams = Cameras(torch.eye(4)[None], intrinsics_from_fov(60.0, 48, 32), 48, 32)
    good = tmp_path / "cams.json"
    cams.to_json(good)
    assert len(load_camera_file(str(good), 96, 64)) == 1
    data = json.loads(good.read_text())
    data["width"] = "abc"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"bad.json"):
        load_camera_file(str(bad), 48, 32)
    with pytest.raises(ValueError, match=r"camera file not found: .*nope.txt"):
        load_camera_file(str(tmp_path / "nope.txt"), 48, 32)


# ----------------------------------------------------------------------------- files read by the core
def test_ply_header_claiming_more_vertices_than_the_file_holds(tmp_path):
    from worldwarp_core.gscache import Gaussians, load_ply, save_ply

    g = Gaussians(torch.zeros(4, 3), torch.tensor([[1.0, 0, 0, 0]]).repeat(4, 1), torch.zeros(4, 3), torch.zeros(4),
                  torch.zeros(4, 1, 3))
    path = save_ply(g, str(tmp_path / "s.ply"))
    assert len(load_ply(path)) == 4
    data = open(path, "rb").read().replace(b"element vertex 4\n", b"element vertex 4000000000\n")
    open(path, "wb").write(data)
    with pytest.raises(ValueError, match=r"s.ply: the header claims 4000000000 vertices \(.* bytes\) but the file "
                                         r"holds 272 bytes after it; the file is truncated or corrupt"):
        load_ply(path)


def test_safetensors_truncation_is_found_from_the_header(tmp_path):
    from safetensors.torch import save_file

    from worldwarp_core.model_files import safetensors_problem

    p = str(tmp_path / "w.safetensors")
    save_file({"a": torch.zeros(100), "b": torch.ones(50)}, p)
    assert safetensors_problem(p) is None
    raw = open(p, "rb").read()
    open(p, "wb").write(raw[:-40])
    assert "is truncated" in safetensors_problem(p)
    open(p, "wb").write(b"hello")
    assert "truncated" in safetensors_problem(p)
