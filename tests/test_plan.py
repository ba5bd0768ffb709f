"""The chunk plan: FLOPs against hand counts, planned peaks against the CPU allocator, the vram choice."""

import json
import os

import pytest
import torch
import torch.nn.functional as Fn

from worldwarp_core import plan as P


def test_linear_flops_equal_hand_count():
    lin = torch.nn.Linear(64, 48)
    x = torch.randn(5, 7, 64)
    assert P.trace(lambda: lin(x)).flops == 2 * 5 * 7 * 64 * 48  # one multiply-add per weight and row


def _attention_block(d=32, heads=4):
    torch.manual_seed(0)
    wq, wk, wv, wo = (torch.nn.Linear(d, d) for _ in range(4))

    def block(x, ctx):  # x [B, L, d], ctx [B, S, d]
        B, L, _ = x.shape
        S = ctx.shape[1]
        q = wq(x).view(B, L, heads, d // heads).transpose(1, 2)
        k = wk(ctx).view(B, S, heads, d // heads).transpose(1, 2)
        v = wv(ctx).view(B, S, heads, d // heads).transpose(1, 2)
        return wo(Fn.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, L, d))

    return block


def test_attention_block_flops_equal_hand_count_real_and_fake():
    B, L, S, d, H = 2, 12, 9, 32, 4
    block = _attention_block(d, H)
    # q and o projections on L tokens, k and v on S; QK^T and PV: 2·B·H·L·S·(d/H) each
    hand = 2 * (2 * B * L * d * d) + 2 * (2 * B * S * d * d) + 2 * (2 * B * H * L * S * (d // H))
    assert P.trace(lambda: block(torch.randn(B, L, d), torch.randn(B, S, d))).flops == hand
    with P.fake_mode():
        fake_block = _attention_block(d, H)
        assert P.trace(lambda: fake_block(torch.randn(B, L, d), torch.randn(B, S, d))).flops == hand


def test_live_bytes_counts_each_new_storage_once_until_freed():
    w = torch.randn(100, 100)  # existed before: not counted, nor its views
    live = P.LiveBytes()
    with live:
        wt = w.t()
        b = w @ wt  # 40,000 bytes
        flat = b.view(-1)
        b.add_(1)
        del b, flat
        after_free = live.live
        c = w + 1
    assert after_free == 0 and live.peak == 40_000 and live.live == 40_000
    del c
    assert live.live == 0


def _tiny_wan():
    from diffusers import WanTransformer3DModel

    cfg = {"patch_size": [1, 2, 2], "num_attention_heads": 4, "attention_head_dim": 16, "in_channels": 16,
           "out_channels": 16, "text_dim": 32, "freq_dim": 32, "ffn_dim": 256, "num_layers": 2,
           "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "rope_max_seq_len": 64}
    torch.manual_seed(0)
    return WanTransformer3DModel.from_config(cfg).eval()


@pytest.mark.parametrize("f_lat,h,w", [(2, 16, 16), (3, 24, 32), (5, 32, 48)])
def test_planned_peak_matches_the_cpu_allocator(f_lat, h, w):
    """The plan (fake tensors) against the CPU allocator's own live bytes on real tensors: within 15 %."""
    from worldwarp_core.sampler import transformer_denoiser

    def step(model):
        x = torch.randn(1, 16, f_lat, h, w)
        ts = torch.full((1, f_lat * h * w // 4), 500.0)
        pos, neg = torch.randn(1, 8, 32), torch.randn(1, 8, 32)
        return lambda: transformer_denoiser(model, pos, neg, 5.0)(x, ts)

    measured = P.measured_peak(step(_tiny_wan()))
    with P.fake_mode():
        planned = P.trace(step(_tiny_wan())).activation_peak
    assert measured > 0 and abs(planned / measured - 1) <= 0.15, (planned, measured)


@pytest.fixture(scope="module")
def depth_anything_small():
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
    from plan_chunk import depth_anything_small_config
    from transformers import DepthAnythingForDepthEstimation

    torch.manual_seed(0)
    return depth_anything_small_config, DepthAnythingForDepthEstimation(depth_anything_small_config()).eval()


@pytest.mark.parametrize("shape", [(1, 3, 126, 182), (2, 3, 98, 140)])
def test_planned_depth_anything_peak_matches_the_cpu_allocator(depth_anything_small, shape):
    """The full-size Depth Anything V2 Small (convolutions: plus oneDNN's in-operator buffers)."""
    from transformers import DepthAnythingForDepthEstimation

    config, model = depth_anything_small
    x = torch.rand(*shape)
    measured = P.measured_peak(lambda: model(pixel_values=x).predicted_depth)
    with P.fake_mode():
        fake = DepthAnythingForDepthEstimation(config()).eval()
        fx = torch.rand(*shape)
        planned = P.trace(lambda: fake(pixel_values=fx).predicted_depth, scratch=P.cpu_kernel_scratch).activation_peak
    assert abs(planned / measured - 1) <= 0.15, (planned, measured)


def test_plan_file_is_what_the_planner_gives():
    """The shipped plan's ST-Diff figure equals a fresh fake-tensor trace of the full-size transformer."""
    from diffusers import WanTransformer3DModel

    from worldwarp_core import models as M
    from worldwarp_core.sampler import transformer_denoiser

    with open(P.PLAN_FILE, encoding="utf-8") as f:
        shipped = json.load(f)
    assert shipped["chunk"] == {"frames": 49, "height": 480, "width": 720, "context": 5, "steps": 50}
    with P.fake_mode():
        m = WanTransformer3DModel.from_config(M._config("transformer")).eval()
        M.cast_floats(m, torch.bfloat16)
        x, ts, text = torch.randn(1, 16, 13, 60, 90), torch.full((1, 13 * 30 * 45), 500.0), torch.randn(1, 512, 4096)
        one = P.trace(lambda: transformer_denoiser(m, text, None, 1.0)(x, ts))
        assert shipped["weights"]["transformer"]["bf16"] == P.module_bytes(m)
    assert shipped["activations"]["transformer"]["sequential"] == one.activation_peak + x.numel() * 4


def test_planned_peaks_meet_the_targets_and_batching_bounds_depth_pro():
    # ComfyUI's offloading (each model on the card for its stage), geometry in batches of 4 (the medium profile)
    comfy_default = P.MemorySettings(offload="model", geometry_batch=4)
    fp8 = P.MemorySettings(dtype="fp8", text_encoder_dtype="fp8", offload="model", geometry_batch=2)
    small = P.MemorySettings(dtype="fp8", text_encoder_dtype="fp8", offload="model", cfg_batch="sequential",
                             geometry_batch=1, vae_tiling=True)
    assert P.planned_peak(comfy_default)[0] <= 16e9
    assert P.planned_peak(fp8)[0] <= 10e9
    assert P.planned_peak(small)[0] <= 8e9
    # 49 history frames in batches of 8 peak as one batch of 8 (1.0x); in one batch of 49 about 5x
    geo = lambda k: P.stage_peaks(P.MemorySettings(offload="model", geometry_batch=k))["geometry"]  # noqa: E731
    assert geo(49) > 4 * geo(8)
    before = P.planned_peak(P.MemorySettings(geometry_dtype="fp32", geometry_batch=49, offload="none"))
    assert before[1] == "geometry" and before[0] > 150e9


def test_vram_auto_picks_differently_for_6_and_80_gb():
    small, big = P.pick_settings(6e9), P.pick_settings(80e9)
    assert big.profile == "high" and big.settings["offload"] == "none" and big.settings["cfg_batch"] == "batched"
    assert small.profile != big.profile and small.settings["cfg_batch"] == "sequential"
    assert small.settings["geometry_batch"] < big.settings["geometry_batch"]
    assert small.reason.startswith("vram auto: 6.0 GB free") and "80.0 GB free -> high" in big.reason
    assert P.pick_settings(None).profile == "high"  # no CUDA figure: the fastest
    assert P.pick_settings(6e9, "manual").settings == {}
    # a model that only has its own offload keeps it; ComfyUI's core models offload by themselves
    assert P.pick_settings(6e9, offload_choices=("none",)).settings["offload"] == "none"
    assert P.pick_settings(6e9, offload_choices=("comfyui",)).settings["offload"] == "comfyui"
    with pytest.raises(ValueError, match=r"vram must be one of auto, high, medium, low, small, manual; got 'huge'"):
        P.pick_settings(6e9, "huge")


def test_vram_choices_give_the_same_frames(tmp_path):
    """Two picks (a 6 GB and an 80 GB card, free memory mocked) applied to the same tiny run."""
    from worldwarp_core.geometry.monocular import DepthAnythingV2
    from worldwarp_core.geometry.testing import tiny_depth_anything
    from worldwarp_core.models import tiny_model
    from worldwarp_core.pipeline import PipelineSettings, WorldWarpPipeline
    from worldwarp_core.synthetic import default_scene
    from worldwarp_core.trajectory import make_trajectory, median_depth

    scene = default_scene()
    start = scene.default_camera(48, 32)
    rgb, depth = scene.render(start)
    path = make_trajectory("dolly_in@0.3", 9, start, scene_scale=median_depth(depth))
    # one chunk: geometry of the start image, encode, CFG sampling, decode (the stages a pick changes)
    base = PipelineSettings(chunk_frames=9, context_frames=1, steps=2, guidance_scale=2.0, cache_mode="pointcloud")
    frames = {}
    for free in (6e9, 80e9):
        choice = P.pick_settings(free, frames=9, height=32, width=48)
        pipe = WorldWarpPipeline(tiny_model(seed=0), DepthAnythingV2(model=tiny_depth_anything(), input_size=56), None,
                                 P.apply_choice(base, choice), vram=choice.record())
        out = str(tmp_path / f"run{int(free / 1e9)}")
        frames[free] = pipe(rgb[0], path, 9, prompt="a room", out_dir=out).frames
        manifest = json.load(open(os.path.join(out, "manifest.json")))
        assert manifest["vram"]["profile"] == choice.profile and manifest["vram"]["reason"] == choice.reason
    # equal to the uint8 level the frames are stored in (sequential CFG: same latents to 1e-5)
    torch.testing.assert_close(frames[6e9], frames[80e9], atol=1 / 255 + 1e-6, rtol=0)


def test_cli_vram_applies_the_pick_but_keeps_options_given(monkeypatch):
    from worldwarp_core import cli
    from worldwarp_core.pipeline import PipelineSettings

    monkeypatch.setattr(P, "cuda_free_bytes", lambda device=None: 6e9)
    base = ["generate", "--image", "x.png", "--trajectory", "dolly_in", "--frames", "49", "--models", "m",
            "--out", "o", "--device", "cpu"]
    args = cli.build_parser().parse_args(base)
    args.given = cli.given_options(base)
    choice, _ = cli.fit_card(args, PipelineSettings(), 720, 480)
    assert choice.profile == "small" and args.offload == "model" and choice.reason.startswith("vram auto: 6.0 GB")
    argv = base + ["--offload=none"]
    args = cli.build_parser().parse_args(argv)
    args.given = cli.given_options(argv)
    choice, _ = cli.fit_card(args, PipelineSettings(), 720, 480)
    assert args.offload == "none" and "offload" not in choice.settings
    assert choice.reason.endswith("kept as given: --offload")
    args = cli.build_parser().parse_args(base + ["--vram", "manual"])
    args.given = set()
    choice, settings = cli.fit_card(args, PipelineSettings(), 720, 480)
    assert choice.settings == {} and settings == PipelineSettings() and args.offload == "none"
