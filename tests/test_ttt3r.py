"""The TTT3R adapter: safe checkpoint reading, focal estimation, and the whole adapter against a stand-in
checkout that has the repository's layout and entry points (``src/dust3r/model.py``'s
``ARCroco3DStereo``/``ARCroco3DStereoConfig``, ``inference.inference_recurrent``,
``utils.camera.pose_encoding_to_camera``) and predicts a known scene. The real TTT3R code and weights
are not available here; this checks our side of the contract: what we feed it and how we read its outputs."""

import argparse
import math
import sys
import textwrap

import pytest
import torch

from worldwarp_core.cameras import Cameras, look_at
from worldwarp_core.geometry import align_poses, load_estimator
from worldwarp_core.geometry.preprocess import resize_map
from worldwarp_core.geometry.ttt3r import (
    find_checkpoint,
    focal_from_pointmap,
    model_size,
    parse_model_spec,
    read_ttt3r_checkpoint,
)

MODEL_PY = '''
import torch


class ARCroco3DStereoConfig:
    def __init__(self, focal_frac=0.8, plane=(2.0, 0.5), poses=(), **kw):
        self.focal_frac, self.plane, self.poses, self.kw = focal_frac, plane, poses, kw
        self.model_update_type = "cut3r"


class ARCroco3DStereo(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.gain = torch.nn.Parameter(torch.ones(()))

    def predict(self, view):
        img, (h, w) = view["img"], view["true_shape"][0].tolist()
        assert img.shape == (1, 3, h, w) and h % 16 == 0 and w % 16 == 0, img.shape
        assert float(img.min()) >= -1 and float(img.max()) <= 1 and float(img.min()) < -0.5
        assert bool(torch.isnan(view["ray_map"]).all()) and bool(view["img_mask"]) and not bool(view["ray_mask"])
        f = self.config.focal_frac * w
        v, u = torch.meshgrid(torch.arange(h) + 0.5 - h / 2, torch.arange(w) + 0.5 - w / 2, indexing="ij")
        z = self.gain * (self.config.plane[0] + self.config.plane[1] * u / w)
        pts = torch.stack([u / f * z, v / f * z, z], -1)[None]
        conf = torch.full((1, h, w), 3.0)
        conf[:, :, :2] = 1.0  # an unconfident border
        return {"pts3d_in_self_view": pts, "conf_self": conf,
                "camera_pose": torch.tensor(self.config.poses[view["idx"]], dtype=torch.float32)[None]}
'''

INFERENCE_PY = '''
def inference_recurrent(groups, model, device, verbose=True):
    assert model.config.model_update_type == "ttt3r"
    return {"views": groups, "pred": [model.predict(v) for v in groups]}, None
'''

CAMERA_PY = '''
import torch


def pose_encoding_to_camera(enc):
    t, q = enc[:, :3], torch.nn.functional.normalize(enc[:, 3:], dim=-1)
    w, x, y, z = q.unbind(-1)
    R = torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                     2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                     2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1).view(-1, 3, 3)
    c2w = torch.eye(4).repeat(enc.shape[0], 1, 1)
    c2w[:, :3, :3], c2w[:, :3, 3] = R, t
    return c2w
'''


def _quat_wxyz(R):
    w = math.sqrt(max(0.0, 1 + R[0][0] + R[1][1] + R[2][2])) / 2
    return [w, (R[2][1] - R[1][2]) / (4 * w), (R[0][2] - R[2][0]) / (4 * w), (R[1][0] - R[0][1]) / (4 * w)]


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A stand-in TTT3R checkout; its modules are forgotten afterwards so each test imports its own."""
    repo = tmp_path / "TTT3R"
    for rel, text in (("src/dust3r/__init__.py", ""), ("src/dust3r/model.py", MODEL_PY),
                      ("src/dust3r/inference.py", INFERENCE_PY), ("src/dust3r/utils/__init__.py", ""),
                      ("src/dust3r/utils/camera.py", CAMERA_PY)):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(textwrap.dedent(text))
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield repo
    for name in [m for m in sys.modules if m == "src" or m.startswith(("src.", "dust3r"))]:
        del sys.modules[name]


def _requested_and_estimated_poses():
    """Requested cameras on a path, and the same cameras as TTT3R would report them: in a frame
    where the first camera is the origin, at another scale (a Sim(3) away)."""
    eyes = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.05, 0.2], [0.6, 0.1, 0.5]], dtype=torch.float64)
    targets = eyes + torch.tensor([0.2, 0.0, 3.0], dtype=torch.float64)
    req = look_at(eyes + torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64),
                  targets + torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64),
                  torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64))
    c2w_req = torch.linalg.inv(req)
    base = torch.linalg.inv(c2w_req[0])
    est = base @ c2w_req
    est[:, :3, 3] *= 0.5  # TTT3R's own scale: half the requested one
    return c2w_req, est


def _write_checkpoint(repo, poses, gain=2.0, spec_extra=""):
    spec = ("ARCroco3DStereo(ARCroco3DStereoConfig(focal_frac=0.8, plane=(2.0, 0.5), "
            f"depth_mode=('exp', -inf, inf), patch_embed_cls='ManyAR_PatchEmbed', poses={poses}{spec_extra}))")
    path = repo / "src" / "cut3r_512_dpt_4_64.pth"
    torch.save({"args": argparse.Namespace(model=spec, lr=1e-4), "model": {"gain": torch.tensor(gain)},
                "epoch": 7}, path)
    return path


def test_ttt3r_adapter_end_to_end_against_a_stand_in_checkout(checkout):
    c2w_req, est_c2w = _requested_and_estimated_poses()
    poses = [c[:3, 3].tolist() + _quat_wxyz(c[:3, :3].tolist()) for c in est_c2w]  # t + quaternion (wxyz)
    _write_checkpoint(checkout, poses)

    est = load_estimator("ttt3r", str(checkout), size=64)
    assert est.model.config.model_update_type == "ttt3r" and float(est.model.gain.detach()) == 2.0  # weights were loaded
    frames = torch.rand(3, 60, 90, 3, generator=torch.Generator().manual_seed(0))
    r = est.estimate(frames)
    assert model_size(60, 90, 64) == (48, 64)

    # depth: the self-view z at the model's size, resized to the frames'; the stand-in's loaded gain applies
    v, u = torch.meshgrid(torch.arange(48) + 0.5 - 24, torch.arange(64) + 0.5 - 32, indexing="ij")
    z = 2.0 * (2.0 + 0.5 * u / 64)
    torch.testing.assert_close(r.depth, resize_map(z.expand(3, 48, 64), 60, 90))
    assert r.kind == "metric" and r.depth.shape == (3, 60, 90)
    # intrinsics: f = 0.8 * 64 model pixels, scaled per axis to the frames (the resize was not isotropic)
    K = r.cameras.Ks[0]
    assert float(K[0, 0]) == pytest.approx(0.8 * 64 * 90 / 64, rel=1e-6)
    assert float(K[1, 1]) == pytest.approx(0.8 * 64 * 60 / 48, rel=1e-6)
    assert (float(K[0, 2]), float(K[1, 2])) == (45.0, 30.0) and (r.cameras.width, r.cameras.height) == (90, 60)
    # confidence: 1 - 1/c, c = 3 inside and 1 on the border
    assert float(r.confidence[0, 30, 45]) == pytest.approx(2 / 3, abs=1e-5) and float(r.confidence[0, 30, 0]) < 0.5
    # poses: camera-to-world from the encoding
    torch.testing.assert_close(r.cameras.c2w, est_c2w, atol=1e-5, rtol=0)

    # the paper's use: estimated poses Sim(3)-aligned to the requested path, depth rescaled (x2 here)
    requested = Cameras.from_c2w(c2w_req, r.cameras.Ks, 90, 60)
    cams, depth, residual = align_poses(r, requested, "estimated")
    torch.testing.assert_close(cams.c2w, c2w_req, atol=1e-5, rtol=0)
    torch.testing.assert_close(depth, r.depth * 2, rtol=1e-5, atol=1e-5)
    assert residual < 1e-6
    est.unload()


def test_ttt3r_refuses_missing_checkouts_and_checkpoints(checkout, tmp_path):
    with pytest.raises(ValueError, match="ttt3r: give the folder of your TTT3R repository checkout"):
        load_estimator("ttt3r", None)
    with pytest.raises(ValueError, match="could not import its 'src.dust3r' package"):
        load_estimator("ttt3r", str(tmp_path))  # a folder that is not a checkout
    with pytest.raises(ValueError, match="no checkpoint in .*put cut3r_512_dpt_4_64.pth in"):
        find_checkpoint(str(checkout))
    (checkout / "a.pth").write_bytes(b"")
    (checkout / "src" / "b.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match=r"several checkpoints .*a.pth, b.safetensors"):
        find_checkpoint(str(checkout))
    with pytest.raises(ValueError, match="update_type must be 'ttt3r' or 'cut3r'"):
        load_estimator("ttt3r", str(checkout), update_type="fast")


def test_ttt3r_names_a_clashing_src_package(checkout, tmp_path, monkeypatch):
    """TTT3R's code lives in a top-level package called 'src'; another one already imported (some other
    custom node's) hides it, and the error says where that one comes from."""
    import types

    other = types.ModuleType("src")
    other.__path__ = [str(tmp_path / "elsewhere" / "src")]
    monkeypatch.setitem(sys.modules, "src", other)
    with pytest.raises(ValueError, match=r"another package named 'src' is already loaded from .*elsewhere"):
        load_estimator("ttt3r", str(checkout))


def test_model_spec_is_parsed_never_evaluated(tmp_path):
    spec = ("ARCroco3DStereo(ARCroco3DStereoConfig(freeze='encoder', state_size=768, img_size=(512, 512), "
            "depth_mode=('exp', -inf, inf), conf_mode=('exp', 1, float('inf')), patch_embed_cls='ManyAR_PatchEmbed', "
            "enc_embed_dim=1024, pose_head=True, landscape_only=True, extra={'a': [1, -2.5]}))")
    kw = parse_model_spec(spec)
    assert kw["depth_mode"] == ("exp", -math.inf, math.inf) and kw["conf_mode"] == ("exp", 1, math.inf)
    assert kw["patch_embed_cls"] == "PatchEmbedDust3R" and kw["landscape_only"] is False
    assert kw["img_size"] == (512, 512) and kw["extra"] == {"a": [1, -2.5]} and kw["pose_head"] is True
    marker = tmp_path / "pwned"
    for evil in (f"__import__('os').system('touch {marker}')",
                 f"ARCroco3DStereo(ARCroco3DStereoConfig(a=open('{marker}', 'w')))",
                 "ARCroco3DStereo(Other(a=1))", "ARCroco3DStereo(ARCroco3DStereoConfig(**{'a': 1}))", "((("):
        with pytest.raises(ValueError, match="ttt3r: the checkpoint's model string"):
            parse_model_spec(evil)
    assert not marker.exists()


def test_checkpoints_are_read_with_weights_only(tmp_path):
    from omegaconf import OmegaConf
    from safetensors.torch import save_file

    spec = "ARCroco3DStereo(ARCroco3DStereoConfig(state_size=4))"
    omega = tmp_path / "omega.pth"  # CUT3R's training saves its hydra config as args
    torch.save({"args": OmegaConf.create({"model": spec, "lr": 1e-4, "dims": [1, 2], "sub": {"x": None}}),
                "model": {"w": torch.ones(2)}, "epoch": 3}, omega)
    kw, state = read_ttt3r_checkpoint(str(omega))
    assert kw == {"state_size": 4, "landscape_only": False} and torch.equal(state["w"], torch.ones(2))

    st = tmp_path / "ttt3r.safetensors"
    save_file({"w": torch.zeros(3)}, str(st), metadata={"model": spec})
    kw, state = read_ttt3r_checkpoint(str(st))
    assert kw["state_size"] == 4 and state["w"].shape == (3,)
    save_file({"w": torch.zeros(3)}, str(st))
    with pytest.raises(ValueError, match="no 'model' entry in its safetensors metadata"):
        read_ttt3r_checkpoint(str(st))

    evil = tmp_path / "evil.pth"
    torch.save({"args": argparse.Namespace(model=spec), "model": {}, "hook": torch.nn.Linear(1, 1)}, evil)
    with pytest.raises(ValueError, match="could not be read with weights_only=True"):
        read_ttt3r_checkpoint(str(evil))
    plain = tmp_path / "plain.pth"
    torch.save({"state_dict": {}}, plain)
    with pytest.raises(ValueError, match="not a CUT3R/TTT3R training checkpoint"):
        read_ttt3r_checkpoint(str(plain))
    with pytest.raises(ValueError, match="checkpoint file not found"):
        read_ttt3r_checkpoint(str(tmp_path / "none.pth"))


def test_focal_from_pointmap_is_exact_on_clean_points_and_robust_to_outliers():
    g = torch.Generator().manual_seed(0)
    h, w, f = 40, 60, 47.5
    v, u = torch.meshgrid(torch.arange(h) + 0.5 - h / 2, torch.arange(w) + 0.5 - w / 2, indexing="ij")
    z = 1 + 3 * torch.rand(2, h, w, generator=g)
    pts = torch.stack([u / f * z, v / f * z, z], -1)
    torch.testing.assert_close(focal_from_pointmap(pts), torch.full((2,), f, dtype=torch.float64))
    noisy = pts.clone()
    bad = torch.rand(2, h, w, generator=g) < 0.15  # 15% gross outliers
    noisy[..., :2][bad] *= 3.0
    robust = focal_from_pointmap(noisy, iters=30)
    ls = focal_from_pointmap(noisy, iters=0)  # the least-squares start
    assert (robust - f).abs().max() < 0.02 * f < (ls - f).abs().min()
    with pytest.raises(ValueError, match="no valid point in front of the camera"):
        focal_from_pointmap(-pts)
