"""The paper's metrics (§5, Tables 1-3): PSNR, SSIM, LPIPS, FID and the camera errors.

Images are float ``[..., H, W, 3]`` in 0..1 (ComfyUI ``IMAGE`` layout). Camera metrics follow
the paper: poses are expressed relative to the first frame, translations are normalised by the
distance of the furthest frame, ``R_dist = arccos((tr(R_gen R_gt^T) - 1) / 2)`` (radians) and
``t_dist = ||t_gt - t_gen||_2``.

No backbone weights are ever downloaded: LPIPS and FID read files the user gives and say which
file is needed when it is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import kornia
import torch
from torch import Tensor, nn

from ..cameras import invert_rigid


def _check_pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {list(a.shape)} and {list(b.shape)}")
    if a.ndim < 3 or a.shape[-1] != 3:
        raise ValueError(f"images must be [..., H, W, 3] in 0..1, got {list(a.shape)}")
    return a.reshape(-1, *a.shape[-3:]).double(), b.reshape(-1, *b.shape[-3:]).double()


def psnr(pred: Tensor, target: Tensor, mask: Tensor | None = None, max_val: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per image ``[B]`` of ``[..., H, W, 3]`` images.

    ``mask`` ``[..., H, W]`` restricts the mean squared error to valid pixels (warp evaluation).
    Identical images give ``inf``.
    """
    p, t = _check_pair(pred, target)
    se = (p - t).pow(2).mean(dim=-1)  # [B, H, W]
    if mask is None:
        mse = se.mean(dim=(1, 2))
    else:
        m = mask.reshape(se.shape).double()
        count = m.sum(dim=(1, 2))
        if bool((count == 0).any()):
            raise ValueError("psnr: a mask selects no pixel; there is nothing to compare")
        mse = (se * m).sum(dim=(1, 2)) / count
    return 10.0 * torch.log10(max_val**2 / mse)


def ssim(pred: Tensor, target: Tensor, window: int = 11) -> Tensor:
    """Structural similarity per image ``[B]`` (Gaussian 11x11 window, sigma 1.5, as Wang et al. 2004)."""
    p, t = _check_pair(pred, target)
    p, t = p.permute(0, 3, 1, 2), t.permute(0, 3, 1, 2)
    return kornia.metrics.ssim(p, t, window_size=window, max_val=1.0, padding="valid").mean(dim=(1, 2, 3))


# ----------------------------------------------------------------------------- LPIPS
# Zhang et al., CVPR 2018, "vgg" variant: VGG16 conv features at relu1_2, relu2_2, relu3_3,
# relu4_3, relu5_3, each unit-normalised over channels, squared difference weighted by a learnt
# 1x1 layer, averaged over space, summed over layers. Written from the paper's description.
_VGG16_CONVS = [(3, 64), (64, 64), "M", (64, 128), (128, 128), "M", (128, 256), (256, 256), (256, 256), "M",
                (256, 512), (512, 512), (512, 512), "M", (512, 512), (512, 512), (512, 512)]
_LPIPS_TAPS = (3, 8, 15, 22, 29)  # indices (in torchvision's vgg16.features) of the tapped ReLUs
_LPIPS_CHANNELS = (64, 128, 256, 512, 512)
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)


def _vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    for spec in _VGG16_CONVS:
        if spec == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(spec[0], spec[1], 3, padding=1), nn.ReLU(inplace=False)]
    return nn.Sequential(*layers)


class LPIPS(nn.Module):
    """LPIPS (vgg) distance. Load with :meth:`from_files`; never downloads.

    Files: ``vgg16_path`` is torchvision's VGG16 ImageNet state dict (``vgg16-397923af.pth``,
    keys ``features.N.weight``); ``lin_path`` the LPIPS linear layers (``vgg.pth`` of the LPIPS
    release, keys ``lin{k}.model.1.weight``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = _vgg16_features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _LPIPS_CHANNELS)
        self.register_buffer("shift", torch.tensor(_LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_LPIPS_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)

    @classmethod
    def from_files(cls, vgg16_path: str, lin_path: str) -> "LPIPS":
        model = cls()
        vgg = _load_state(vgg16_path, "torchvision VGG16 weights (vgg16-397923af.pth)")
        feats = {k[len("features."):]: v for k, v in vgg.items() if k.startswith("features.")}
        missing, unexpected = model.features.load_state_dict(feats, strict=False)
        if missing:
            raise ValueError(f"{vgg16_path}: not a torchvision VGG16 state dict; missing {missing[:4]}")
        lin = _load_state(lin_path, "LPIPS linear layers (vgg.pth of the LPIPS release)")
        for k, layer in enumerate(model.lins):
            key = f"lin{k}.model.1.weight"
            if key not in lin:
                raise ValueError(f"{lin_path}: no '{key}'; give the LPIPS 'vgg.pth' linear-layer file")
            layer.weight.copy_(lin[key])
        return model.eval()

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:  # [..., H, W, 3] x2 -> [B]
        p, t = _check_pair(pred, target)
        dtype = self.shift.dtype
        x = torch.cat([p, t]).permute(0, 3, 1, 2).to(dtype) * 2 - 1  # LPIPS takes [-1, 1]
        x = (x - self.shift) / self.scale
        total = 0.0
        tap = 0
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == _LPIPS_TAPS[tap]:
                f = x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
                fa, fb = f.chunk(2)
                total = total + self.lins[tap]((fa - fb).pow(2)).mean(dim=(1, 2, 3))
                tap += 1
                if tap == len(_LPIPS_TAPS):
                    break
        return total


def _load_state(path: str, what: str) -> dict:
    if not path or not os.path.isfile(path):
        raise ValueError(f"{what} not found at '{path}'. Download it yourself and give its path; nothing is fetched.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - report any unreadable file the same way
        raise ValueError(f"{path}: cannot read {what} as a weights-only torch file ({e})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict for {what}, got {type(state).__name__}")
    return state


# ----------------------------------------------------------------------------- FID
def frechet_distance(feats_a: Tensor, feats_b: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to features ``[N, D]`` and ``[M, D]`` (Heusel et al. 2017).

    ``||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^{1/2})``; the trace of the matrix square root
    is taken as ``tr((S_a^{1/2} S_b S_a^{1/2})^{1/2})``, symmetric and stable, in float64.
    """
    if feats_a.ndim != 2 or feats_b.ndim != 2 or feats_a.shape[1] != feats_b.shape[1]:
        raise ValueError(f"features must be [N, D] and [M, D], got {list(feats_a.shape)} and {list(feats_b.shape)}")
    if feats_a.shape[0] < 2 or feats_b.shape[0] < 2:
        raise ValueError("FID needs at least 2 feature vectors per set to estimate a covariance")
    a, b = feats_a.double(), feats_b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    ea, va = torch.linalg.eigh(cov_a)
    sqrt_a = (va * ea.clamp_min(0).sqrt()) @ va.T
    mid = sqrt_a @ cov_b @ sqrt_a
    tr_sqrt = torch.linalg.eigvalsh((mid + mid.T) / 2).clamp_min(0).sqrt().sum()
    return float((mu_a - mu_b).pow(2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * tr_sqrt)


@dataclass
class FIDExtractor:
    """Inception features for FID from a TorchScript file the user provides.

    The file is the TorchScript Inception-v3 used by clean-fid / StyleGAN
    (``inception-2015-12-05.pt``): called as ``module(images_uint8 [B, 3, H, W], return_features=True)``
    it returns ``[B, 2048]`` pool features; it resizes internally.
    """

    module: torch.jit.ScriptModule
    batch_size: int = 16

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:  # [N, H, W, 3] 0..1 -> [N, D]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"FID images must be [N, H, W, 3], got {list(images.shape)}")
        out = []
        for i in range(0, images.shape[0], self.batch_size):
            x = (images[i:i + self.batch_size].clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 3, 1, 2)
            out.append(self.module(x, return_features=True).double())
        return torch.cat(out)


def load_fid_extractor(path: str) -> FIDExtractor:
    if not path or not os.path.isfile(path):
        raise ValueError(
            f"FID Inception file not found at '{path}'. Give the TorchScript 'inception-2015-12-05.pt' "
            "(as used by clean-fid / StyleGAN); nothing is downloaded."
        )
    try:
        module = torch.jit.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path}: not a TorchScript Inception module ({e})") from None
    return FIDExtractor(module.eval())


# ----------------------------------------------------------------------------- cameras
def relative_poses(c2w: Tensor, normalise: bool = True) -> Tensor:
    """Camera-to-world ``[F, 4, 4]`` expressed relative to frame 0 (``c2w_0^-1 c2w_i``).

    With ``normalise`` the translations are divided by the distance of the furthest frame from
    frame 0, as the paper does so that trajectories of any scale compare.
    """
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
        raise ValueError(f"poses must be [F, 4, 4], got {list(c2w.shape)}")
    rel = invert_rigid(c2w[:1].double()) @ c2w.double()
    if normalise:
        far = rel[:, :3, 3].norm(dim=1).max()
        if float(far) < 1e-12:
            raise ValueError("camera metrics: every frame sits at frame 0's position; translation cannot be normalised")
        rel = rel.clone()
        rel[:, :3, 3] /= far
    return rel


def rotation_distance(R_gen: Tensor, R_gt: Tensor) -> Tensor:
    """``arccos((tr(R_gen R_gt^T) - 1) / 2)`` in radians, per frame ``[F]``."""
    cos = ((R_gen.double() @ R_gt.double().transpose(-1, -2)).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.arccos(cos.clamp(-1.0, 1.0))


def camera_metrics(c2w_gen: Tensor, c2w_gt: Tensor) -> dict[str, Tensor]:
    """Per-frame ``R_dist`` (radians) and ``t_dist`` between two camera paths ``[F, 4, 4]`` (OpenCV c2w)."""
    if c2w_gen.shape != c2w_gt.shape:
        raise ValueError(f"camera paths differ in shape: {list(c2w_gen.shape)} vs {list(c2w_gt.shape)}")
    gen, gt = relative_poses(c2w_gen), relative_poses(c2w_gt)
    return {
        "R_dist": rotation_distance(gen[:, :3, :3], gt[:, :3, :3]),
        "t_dist": (gt[:, :3, 3] - gen[:, :3, 3]).norm(dim=1),
    }


__all__ = [
    "LPIPS",
    "FIDExtractor",
    "camera_metrics",
    "frechet_distance",
    "load_fid_extractor",
    "psnr",
    "relative_poses",
    "rotation_distance",
    "ssim",
]
