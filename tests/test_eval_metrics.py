"""Metrics: hand-computed PSNR/SSIM, Fréchet distance identities, LPIPS loading, camera errors."""

import math

import pytest
import torch

from worldwarp_core.cameras import look_at
from worldwarp_core.eval.metrics import (
    _LPIPS_CHANNELS,
    LPIPS,
    camera_metrics,
    frechet_distance,
    load_fid_extractor,
    psnr,
    relative_poses,
    rotation_distance,
    ssim,
)


def test_psnr_hand_computed():
    a = torch.zeros(1, 4, 4, 3)
    b = torch.full((1, 4, 4, 3), 0.1)
    assert float(psnr(a, b)) == pytest.approx(20.0)  # mse 0.01 -> 20 dB
    mask = torch.zeros(1, 4, 4)
    mask[0, :2] = 1
    b2 = b.clone()
    b2[0, 2:] = 1.0  # errors outside the mask do not count
    assert float(psnr(a, b2, mask)) == pytest.approx(20.0)
    assert math.isinf(float(psnr(a, a)))
    with pytest.raises(ValueError, match="a mask selects no pixel"):
        psnr(a, b, torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match=r"same shape, got \[1, 4, 4, 3\] and \[1, 4, 5, 3\]"):
        psnr(a, torch.zeros(1, 4, 5, 3))


def test_ssim_identities():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 24, 24, 3, generator=g)
    torch.testing.assert_close(ssim(x, x), torch.ones(2, dtype=torch.float64))
    # constant images with different means: SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1)
    a, b = torch.full((1, 16, 16, 3), 0.2), torch.full((1, 16, 16, 3), 0.6)
    c1 = 0.01**2
    expected = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)
    assert float(ssim(a, b)) == pytest.approx(expected, rel=1e-5)
    assert float(ssim(x, x.flip(1))[0]) < 0.5


def test_frechet_distance_identities():
    g = torch.Generator().manual_seed(1)
    f = torch.randn(500, 4, generator=g, dtype=torch.float64)
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-8)
    # a pure shift by d adds |d|^2
    d = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
    assert frechet_distance(f, f + d) == pytest.approx(float(d.pow(2).sum()), rel=1e-9)
    # scaling isotropic Gaussians by s: tr(S + s^2 S - 2 s S) = (1 - s)^2 tr(S)
    cov = torch.cov(f.T)
    assert frechet_distance(f, 3 * f) == pytest.approx(
        float(f.mean(0).pow(2).sum() * 4 + 4 * torch.trace(cov)), rel=1e-6
    )
    with pytest.raises(ValueError, match="at least 2 feature vectors"):
        frechet_distance(f[:1], f)


def test_lpips_loads_real_file_layouts(tmp_path):
    torch.manual_seed(0)
    ref = LPIPS()
    for p in ref.features.parameters():
        p.data.normal_(0, 0.05)
    for lin in ref.lins:
        lin.weight.data.uniform_(0, 1)
    torch.save({f"features.{k}": v for k, v in ref.features.state_dict().items()}, tmp_path / "vgg16.pth")
    torch.save({f"lin{k}.model.1.weight": l.weight.data for k, l in enumerate(ref.lins)}, tmp_path / "vgg.pth")
    model = LPIPS.from_files(str(tmp_path / "vgg16.pth"), str(tmp_path / "vgg.pth"))
    assert [lin.weight.shape[1] for lin in model.lins] == list(_LPIPS_CHANNELS)
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(2, 32, 32, 3, generator=g), torch.rand(2, 32, 32, 3, generator=g)
    d_xy, d_yx, d_xx = model(x, y), model(y, x), model(x, x)
    torch.testing.assert_close(d_xy, d_yx)
    assert torch.all(d_xx.abs() < 1e-6) and torch.all(d_xy > 0)
    torch.testing.assert_close(d_xy, ref(x, y))
    with pytest.raises(ValueError, match="LPIPS linear layers .* not found at 'missing.pth'"):
        LPIPS.from_files(str(tmp_path / "vgg16.pth"), "missing.pth")
    with pytest.raises(ValueError, match="not a torchvision VGG16 state dict"):
        LPIPS.from_files(str(tmp_path / "vgg.pth"), str(tmp_path / "vgg.pth"))


def test_fid_extractor_from_torchscript(tmp_path):
    class Tiny(torch.nn.Module):
        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            x = x.float() / 255.0
            return torch.stack([x.mean(dim=(1, 2, 3)), x.std(dim=(1, 2, 3))], dim=1)

    torch.jit.script(Tiny()).save(str(tmp_path / "inception.pt"))
    ext = load_fid_extractor(str(tmp_path / "inception.pt"))
    feats = ext(torch.rand(5, 8, 8, 3))
    assert feats.shape == (5, 2)
    with pytest.raises(ValueError, match="inception-2015-12-05.pt"):
        load_fid_extractor(str(tmp_path / "nope.pt"))


def _path(angles_deg, radius=2.0):
    eyes = torch.tensor([[radius * math.sin(math.radians(a)), 0.0, -radius * math.cos(math.radians(a))]
                         for a in angles_deg])
    return torch.linalg.inv(look_at(eyes, torch.zeros_like(eyes)).double())


def test_camera_metrics_known_rotation_and_normalisation():
    R = torch.tensor([[math.cos(0.3), -math.sin(0.3), 0.0], [math.sin(0.3), math.cos(0.3), 0.0], [0.0, 0.0, 1.0]])
    assert float(rotation_distance(R, torch.eye(3))) == pytest.approx(0.3, abs=1e-7)
    gt = _path([0, 10, 20, 30])
    # the same path at 5x the scale: normalised translations agree, t_dist = 0
    scaled = gt.clone()
    scaled[:, :3, 3] *= 5
    m = camera_metrics(scaled, gt)
    assert float(m["t_dist"].max()) < 1e-6 and float(m["R_dist"].max()) < 1e-6
    rel = relative_poses(gt)
    assert float(rel[:, :3, 3].norm(dim=1).max()) == pytest.approx(1.0)
    assert float(rel[0, :3, 3].norm()) == 0.0
    # a path that stops halfway: the furthest frame defines the unit
    other = _path([0, 10, 20, 20])
    m = camera_metrics(other, gt)
    assert float(m["R_dist"][3]) == pytest.approx(math.radians(10), abs=1e-5)
    assert float(m["t_dist"][0]) == 0.0 and float(m["t_dist"][3]) > 0
    with pytest.raises(ValueError, match="every frame sits at frame 0's position"):
        relative_poses(gt[:1].repeat(3, 1, 1))
