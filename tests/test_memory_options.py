"""Options that save accelerator memory compute what their one-batch forms compute.

geometry_batch (mini-batches of a per-frame depth model), the geometry dtype, the Depth Pro FoV
checks, cfg_batch = sequential, VAE tiling, and the gsplat fallback to the torch rasteriser.
"""

import logging
import math

import pytest
import torch

from worldwarp_core.cameras import Cameras, intrinsics_from_fov
from worldwarp_core.geometry import GeometryResult, estimate_in_batches, geometry_dtype, load_estimator
from worldwarp_core.geometry.monocular import DepthAnythingV2, DepthPro
from worldwarp_core.geometry.testing import tiny_depth_anything, tiny_depth_pro
from worldwarp_core.models import tiny_components, tiny_model
from worldwarp_core.sampler import SamplerConfig, st_diff_sample, transformer_denoiser

FRAMES = torch.rand(5, 32, 48, 3, generator=torch.Generator().manual_seed(0))


def _cameras(F=5, W=48, H=32):
    return Cameras(torch.eye(4).expand(F, 4, 4).clone(), intrinsics_from_fov(55.0, W, H, F), W, H)


# ----------------------------------------------------------------------------- geometry mini-batches
class _Forwards:
    """Counts the frames of each forward of a transformers model."""

    def __init__(self, model):
        self.sizes = []
        model.register_forward_pre_hook(lambda m, args, kwargs: self.sizes.append(kwargs["pixel_values"].shape[0]),
                                        with_kwargs=True)


def test_depth_pro_in_mini_batches_equals_one_batch(batch=2):
    est = DepthPro(model=tiny_depth_pro(55.0))
    seen = _Forwards(est.model)
    one = est.estimate(FRAMES)  # no cameras: the FoV head gives each frame's focal length
    parts = estimate_in_batches(est, FRAMES, None, batch)
    assert seen.sizes == [5, 2, 2, 1]  # one batch, then mini-batches of 2 (the last one shorter)
    # the same depth and intrinsics to float rounding (batched matmuls may sum in another order)
    torch.testing.assert_close(parts.depth, one.depth, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(parts.cameras.Ks, one.cameras.Ks, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(parts.cameras.viewmats, one.cameras.viewmats)
    # with known cameras each mini-batch gets its own frames' cameras
    cams = _cameras()
    cams.Ks[3, 0, 0] *= 2  # one frame with another focal length: its metric depth doubles
    known = estimate_in_batches(est, FRAMES, cams, batch)
    torch.testing.assert_close(known.depth, est.estimate(FRAMES, cams).depth, rtol=1e-5, atol=1e-6)
    assert torch.equal(known.cameras.Ks, cams.Ks)


def test_depth_anything_relative_depth_is_per_frame_so_batches_agree():
    est = DepthAnythingV2(model=tiny_depth_anything(), input_size=56)
    one = est.estimate(FRAMES)
    parts = estimate_in_batches(est, FRAMES, None, 2)
    assert parts.kind == one.kind == "relative"
    torch.testing.assert_close(parts.inverse, one.inverse, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(parts.depth, one.depth, rtol=1e-5, atol=1e-6)  # median 1 per frame, not per batch
    torch.testing.assert_close(parts.confidence, one.confidence)


class _MultiView:
    """A stand-in multi-view estimator (TTT3R, DA3): frames depend on each other, so never split."""

    name, per_frame = "multi-view", False

    def __init__(self):
        self.calls = []

    def estimate(self, frames, cameras=None):
        self.calls.append(frames.shape[0])
        depth = torch.ones(frames.shape[:3]) * frames.mean()  # every frame's depth depends on all frames
        return GeometryResult(depth, torch.ones_like(depth), cameras, "metric")


def test_multi_view_estimators_see_the_whole_clip_and_bad_batch_sizes_are_refused():
    mv = _MultiView()
    estimate_in_batches(mv, FRAMES, _cameras(), 2)
    assert mv.calls == [5]
    with pytest.raises(ValueError, match="geometry_batch must be >= 1, got 0; use 1"):
        estimate_in_batches(mv, FRAMES, None, 0)
    with pytest.raises(ValueError, match="5 frames but 4 cameras"):
        estimate_in_batches(mv, FRAMES, _cameras(4), 2)


def test_geometry_dtype_choice(tmp_path):
    assert geometry_dtype("auto", "cpu") == torch.float32
    assert geometry_dtype("auto", "cuda:0") == torch.bfloat16  # resolved from the device name only
    assert geometry_dtype("fp16", "cpu") == torch.float16
    with pytest.raises(ValueError, match="geometry dtype must be one of auto, fp32, bf16, fp16; got 'fp8'"):
        geometry_dtype("fp8", "cpu")
    tiny_depth_anything().save_pretrained(str(tmp_path / "da"))
    est = load_estimator("depth-anything-v2", str(tmp_path / "da"), dtype="bf16", input_size=56)
    assert est.dtype == torch.bfloat16 and next(est.model.parameters()).dtype == torch.bfloat16
    r = est.estimate(FRAMES[:2])
    assert r.depth.dtype == torch.float32 and bool(torch.isfinite(r.depth).all())
    assert load_estimator("depth-anything-v2", str(tmp_path / "da"), input_size=56).dtype == torch.float32  # auto


def test_auto_keeps_the_recurrent_ttt3r_in_fp32(monkeypatch):
    """auto is bf16 on CUDA for the per-frame models, but fp32 for TTT3R (as the official code runs it)."""
    from worldwarp_core.geometry import base

    seen = {}
    monkeypatch.setitem(base.ESTIMATORS, "ttt3r", lambda path=None, device="cpu", dtype=None, **kw: seen.setdefault(
        "ttt3r", dtype))
    monkeypatch.setitem(base.ESTIMATORS, "depth-pro", lambda path=None, device="cpu", dtype=None, **kw: seen.setdefault(
        "depth-pro", dtype))
    load_estimator("ttt3r", None, device="cuda", dtype="auto")
    load_estimator("depth-pro", None, device="cuda", dtype="auto")
    assert seen == {"ttt3r": torch.float32, "depth-pro": torch.bfloat16}
    seen.clear()
    load_estimator("ttt3r", None, device="cuda", dtype="bf16")  # asked for explicitly: given
    assert seen == {"ttt3r": torch.bfloat16}


def test_memory_settings_are_checked_with_their_option_names(capsys):
    from worldwarp_core.cli import main
    from worldwarp_core.pipeline import PipelineSettings

    with pytest.raises(ValueError, match="geometry_batch must be >= 1, got 0; use 1"):
        PipelineSettings(geometry_batch=0)
    with pytest.raises(ValueError, match="cfg_batch must be one of batched, sequential; got 'both'"):
        PipelineSettings(cfg_batch="both")
    with pytest.raises(ValueError, match="vae_tiling must be true or false, got 1"):
        PipelineSettings(vae_tiling=1)
    # the CLI refuses before anything loads (the image and model folders are not even looked at)
    assert main(["generate", "--image", "nope.png", "--trajectory", "dolly_in", "--frames", "49", "--models", "nope",
                 "--out", "nope", "--geometry-batch", "0"]) == 2
    assert "error: --geometry-batch must be >= 1, got 0; use 1" in capsys.readouterr().err


# ----------------------------------------------------------------------------- Depth Pro's FoV head
def test_depth_pro_without_fov_head_is_refused_before_any_forward(tmp_path):
    from transformers import DepthProConfig, DepthProForDepthEstimation

    cfg = tiny_depth_pro().config
    cfg = DepthProConfig(**{**cfg.to_dict(), "use_fov_model": False})
    DepthProForDepthEstimation(cfg).save_pretrained(str(tmp_path / "dp-nofov"))
    est = load_estimator("depth-pro", str(tmp_path / "dp-nofov"))
    seen = _Forwards(est.model)
    with pytest.raises(ValueError, match=r"depth-pro: the geometry model in .*dp-nofov has no field-of-view head "
                                         r"\(use_fov_model is false in its config.json\).*give the frames' cameras"):
        est.estimate(FRAMES)
    assert seen.sizes == []  # refused before the forward
    r = estimate_in_batches(est, FRAMES, _cameras(), 2)  # with known intrinsics it needs no head
    assert r.depth.shape == (5, 32, 48) and seen.sizes == [2, 2, 1]


@pytest.mark.parametrize("fov", [-20.0, 0.0, 200.0])
def test_depth_pro_predicted_fov_out_of_range_names_the_geometry_model(tmp_path, fov):
    tiny_depth_pro(fov).save_pretrained(str(tmp_path / "dp"))
    est = load_estimator("depth-pro", str(tmp_path / "dp"))
    with pytest.raises(ValueError, match=rf"depth-pro: the geometry model in .*dp predicted a horizontal field of "
                                         rf"view of {fov:.4g} degrees for 1 of 1 frames \(a usable one is 1-179\)"):
        est.estimate(FRAMES[:1])
    # the cameras' intrinsics need no prediction
    assert est.estimate(FRAMES[:1], _cameras(1)).depth.shape == (1, 32, 48)


# ----------------------------------------------------------------------------- sequential CFG
def test_sequential_cfg_gives_the_batched_latents():
    tr, _, _ = tiny_components(0)
    g = torch.Generator().manual_seed(3)
    pos, neg = torch.randn(1, 7, 32, generator=g), torch.randn(1, 7, 32, generator=g)
    z = torch.randn(16, 3, 4, 6, generator=g)
    mask = (torch.rand(3, 4, 6, generator=g) > 0.4).float()
    calls = []
    tr.register_forward_pre_hook(lambda m, a, kw: calls.append(kw["hidden_states"].shape[0]), with_kwargs=True)
    out = {}
    for mode in ("batched", "sequential"):
        calls.clear()
        cfg = SamplerConfig(steps=4, guidance_scale=4.0, seed=1, cfg_batch=mode)
        out[mode] = st_diff_sample(tr, z, mask, 1, pos, neg, cfg).latents
        assert calls == ([2] * 4 if mode == "batched" else [1] * 8)  # one forward of 2, or two of 1, per step
    torch.testing.assert_close(out["sequential"], out["batched"], rtol=0, atol=1e-5)
    # one step's velocity: v_neg + g (v_pos - v_neg) either way
    x, t = torch.randn(1, 16, 3, 4, 6, generator=g), torch.full((1, 3 * 2 * 3), 700.0)
    torch.testing.assert_close(transformer_denoiser(tr, pos, neg, 4.0, "sequential")(x, t),
                               transformer_denoiser(tr, pos, neg, 4.0)(x, t), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="cfg_batch must be one of batched, sequential"):
        SamplerConfig(cfg_batch="parallel")


def test_text_encoder_offload_moves_only_the_text_encoder():
    from worldwarp_core.models import _place

    m = tiny_model(0)
    m.offload = "text_encoder"
    assert m._offloaded(m.text_encoder) and not m._offloaded(m.transformer) and not m._offloaded(m.vae)
    m.offload = "model"
    assert all(m._offloaded(x) for x in (m.text_encoder, m.transformer, m.vae))
    m.offload = "text_encoder"
    moved = []
    m.text_encoder.to = lambda device: moved.append(str(device)) or m.text_encoder  # where it is sent
    e = m.encode_prompt(["a room"])
    assert e.shape == (1, 512, 32) and moved == ["cpu", "cpu"]  # to the device (cpu here) and back
    m.offload = "all"
    with pytest.raises(ValueError, match="offload must be one of none, text_encoder, model; got 'all'"):
        _place(m)


# ----------------------------------------------------------------------------- VAE tiling
def test_vae_tiling_within_one_tile_is_the_untiled_vae_exactly():
    m = tiny_model(0)
    frames = torch.rand(5, 32, 48, 3, generator=torch.Generator().manual_seed(2))
    z = m.encode_video(frames)
    assert torch.equal(m.encode_video(frames, tiled=True), z)  # 48x32 < one 256-pixel tile
    assert torch.equal(m.decode_video(z, tiled=True), m.decode_video(z))
    assert m.vae.use_tiling is False  # the VAE's own setting is back


def test_vae_tiling_is_exact_away_from_the_seams_and_blends_across_them():
    """Tiling is not exact near a seam: each tile's convolutions see zero padding at the tile's cut edge
    and the overlap is blended linearly. A pixel farther from every cut edge than the decoder's
    receptive field (about 110 pixels for the Wan VAE's layout) sees the same inputs in its tile as in
    the whole frame, so it must come out the same, when the decoder is local. The Wan VAE is local
    except for its mid-block attention (over a whole tile), zeroed here; with it, every pixel differs
    slightly. Tiles of 128 pixels every 96 (the default 256 every 192, halved) over a 160x160 frame:
    2 x 2 tiles, the first cut at 128, so pixels [0, 16) are exact."""
    m = tiny_model(0)
    vae = m.vae
    vae.tile_sample_min_height = vae.tile_sample_min_width = 128
    vae.tile_sample_stride_height = vae.tile_sample_stride_width = 96
    for a in vae.decoder.mid_block.attentions:  # the decoder becomes purely convolutional (local)
        torch.nn.init.zeros_(a.proj.weight)
        torch.nn.init.zeros_(a.proj.bias)
    z = torch.randn(16, 1, 20, 20, generator=torch.Generator().manual_seed(2))  # one latent frame, 160x160 px
    tiles = []
    hook = vae.decoder.register_forward_hook(lambda mod, a, o: tiles.append(tuple(o.shape[-2:])))
    plain, tiled = m.decode_video(z), m.decode_video(z, tiled=True)
    hook.remove()
    assert tiles == [(160, 160), (128, 128), (128, 64), (64, 128), (64, 64)]  # the frame, then 2 x 2 tiles
    d = (tiled - plain).abs().amax(dim=(0, 3))  # [H, W]
    assert float(d[:16, :16].max()) < 1e-6  # beyond the receptive field of any cut: the VAE itself
    assert float(d[96:128, :].max()) > 1e-3  # the blended overlap differs (the tiles really ran)
    # the seam is blended, not cut: across the overlap the tiled frame moves as smoothly as the untiled
    # one (a hard seam would jump by about the size of the difference itself)
    step_tiled = (tiled[0, 95:129, :, :] - tiled[0, 94:128, :, :]).abs().max()
    step_plain = (plain[0, 95:129, :, :] - plain[0, 94:128, :, :]).abs().max()
    assert float(step_tiled) < 1.5 * float(step_plain)
    assert vae.use_tiling is False


# ----------------------------------------------------------------------------- gsplat that cannot load
def test_gsplat_that_cannot_load_gives_one_line_and_a_torch_render(monkeypatch, caplog):
    from worldwarp_core.gscache import rasterize as R
    from worldwarp_core.gscache.gaussians import Gaussians

    def broken():
        raise ImportError("libcudart.so.12: cannot open shared object file: No such file or directory")

    monkeypatch.setattr(R, "_load_gsplat_extension", broken)
    monkeypatch.setattr(R, "_GSPLAT", [])
    cuda = torch.device("cuda")
    with caplog.at_level(logging.WARNING, logger=R.__name__):
        assert R.resolve_backend("auto", cuda) == "torch"
        assert R.rasteriser("auto", cuda) is R.rasterize_torch
        R.resolve_backend("auto", cuda)
    lines = [r.getMessage() for r in caplog.records if r.name == R.__name__]
    assert len(lines) == 1 and "\n" not in lines[0]  # once per process, one line
    major, minor = torch.__version__.split(".")[:2]
    assert lines[0].startswith("gsplat's CUDA rasteriser could not be loaded (ImportError: libcudart.so.12: cannot "
                               "open shared object file")
    assert "torch rasteriser on the GPU meanwhile" in lines[0]
    assert f"pip install gsplat --index-url https://docs.gsplat.studio/whl/pt{major}{minor.split('+')[0]}cu" in lines[0]
    with pytest.raises(ValueError, match="could not be loaded .*; or choose the cache backend 'auto' or 'torch'"):
        R.resolve_backend("gsplat", cuda)
    # what it falls back to renders: one Gaussian in front of the camera covers the centre pixel
    g = Gaussians(torch.tensor([[0.0, 0.0, 2.0]]), torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
                  torch.full((1, 3), math.log(0.3)), torch.tensor([4.0]), torch.full((1, 1, 3), 1.0))
    cams = _cameras(1, 16, 16)
    out = R.rasteriser("auto", cuda)(g, cams)
    assert out.rgb.shape == (1, 16, 16, 3) and float(out.alpha[0, 8, 8]) > 0.9
    torch.testing.assert_close(out.depth[0, 8, 8], torch.tensor(2.0))
    # a CPU tensor never probes gsplat
    monkeypatch.setattr(R, "_GSPLAT", [])
    assert R.resolve_backend("auto", torch.device("cpu")) == "torch" and R._GSPLAT == []
