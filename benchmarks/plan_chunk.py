"""Memory and time of one chunk at full size, planned without a GPU (planned, not measured).

Builds the real full-size architectures from configs (Wan2.1-T2V-1.3B transformer and VAE from the
shipped configs, the UMT5-XXL encoder, Depth Pro, Depth Anything V2 Small, Qwen2.5-VL-3B/7B and
Florence-2-large built from transformers config classes) on PyTorch fake tensors and runs every
stage of one chunk -- 49 frames at 480x720, 5 context frames, 50 steps (one ST-Diff step is
planned and multiplied by 50) -- through the pack's own code where it runs on fake tensors
(``sampler.transformer_denoiser``, ``WorldWarpModel.encode_video/decode_video``'s VAE calls).

Per stage: FLOPs (``torch.utils.flop_counter``), weights and activation peak (every storage an
operator creates, followed until its last reference goes: ``worldwarp_core.plan.LiveBytes``), and a
projected time on H100, RTX 4090 and RTX 3060 at ``plan.FRACTION_OF_PEAK`` (40 %) of the vendor's
dense peak (``plan.CARDS``). Then the chunk's peak for every setting (dtype, offload, CFG mode,
geometry batch, VAE tiling, the vram profiles).

    python benchmarks/plan_chunk.py                # tables
    python benchmarks/plan_chunk.py --json         # {"stages", "settings", "peak_gb", "plan"}
    python benchmarks/plan_chunk.py --validate     # plan vs the CPU allocator at small sizes (~6 GB RAM)

Not planned: TTT3R/CUT3R (its code is the user's checkout, not importable here). The 3DGS stage is
an analytic count (its rasterisers' tile lists depend on data), stated as such.
"""

# every lambda here runs at once inside the loop that defines it (plan.trace / measured_peak)
# ruff: noqa: B023
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from worldwarp_core import models as M  # noqa: E402
from worldwarp_core import plan as P  # noqa: E402

FRAMES, HEIGHT, WIDTH, CONTEXT, STEPS = 49, 480, 720, 5, 50
GEOMETRY_BATCHES = (1, 2, 4, 8, 49)
GB = 1e9


# ----------------------------------------------------------------------------- full-size configs
def depth_pro_config():
    from transformers import DepthProConfig

    # apple/DepthPro-hf: three DINOv2-L/16 encoders at 384 (image, patches, FoV), fusion 256
    vit = {"model_type": "dinov2", "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
           "intermediate_size": 4096, "patch_size": 16, "image_size": 384, "layerscale_value": 1.0}
    return DepthProConfig(patch_size=384, fusion_hidden_size=256, image_model_config=vit, patch_model_config=vit,
                          fov_model_config=vit, use_fov_model=True, scaled_images_ratios=[0.25, 0.5, 1],
                          scaled_images_overlap_ratios=[0.0, 0.5, 0.25], scaled_images_feature_dims=[1024, 1024, 512],
                          intermediate_hook_ids=[11, 5], intermediate_feature_dims=[256, 256])


def depth_anything_small_config():
    from transformers import DepthAnythingConfig, Dinov2Config

    bb = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                      patch_size=14, image_size=518, out_indices=[3, 6, 9, 12], reshape_hidden_states=False)
    return DepthAnythingConfig(backbone_config=bb, reassemble_hidden_size=384, neck_hidden_sizes=[48, 96, 192, 384],
                               fusion_hidden_size=64, head_hidden_size=32, reassemble_factors=[4, 2, 1, 0.5])


def qwen25_vl_config(size: str):
    from transformers import Qwen2_5_VLConfig

    text = {"3b": dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                       num_key_value_heads=2, tie_word_embeddings=True),
            "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                       num_key_value_heads=4, tie_word_embeddings=False)}[size]
    vision = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31],
                  out_hidden_size=text["hidden_size"])
    return Qwen2_5_VLConfig(text_config=dict(vocab_size=151936, rope_scaling={"type": "mrope",
                                                                               "mrope_section": [16, 24, 24]},
                                             **text),
                            vision_config=vision, tie_word_embeddings=text["tie_word_embeddings"])


def florence2_large_config():
    from transformers import Florence2Config

    vision = dict(embed_dim=[256, 512, 1024, 2048], depths=[1, 1, 9, 1], num_heads=[8, 16, 32, 64],
                  num_groups=[8, 16, 32, 64], projection_dim=1024)
    text = dict(d_model=1024, encoder_layers=12, decoder_layers=12, encoder_attention_heads=16,
                decoder_attention_heads=16, encoder_ffn_dim=4096, decoder_ffn_dim=4096, vocab_size=51289)
    return Florence2Config(vision_config=vision, text_config=text)


# ----------------------------------------------------------------------------- stages
def _row(name, flops, weights, act, precision, reads_weights=1, note=""):
    return {"stage": name, "flops": int(flops), "weights_bytes": int(weights), "activation_bytes": int(act),
            "precision": precision, "weight_reads": reads_weights, "note": note}


def plan_transformer(rows, plan):
    from diffusers import WanTransformer3DModel

    from worldwarp_core.sampler import transformer_denoiser

    L = M.latent_frame_count(FRAMES) * (HEIGHT // 16) * (WIDTH // 16) if hasattr(M, "latent_frame_count") else \
        (1 + (FRAMES - 1) // 4) * (HEIGHT // 16) * (WIDTH // 16)
    with P.fake_mode():
        m = WanTransformer3DModel.from_config(M._config("transformer")).eval()
        M.cast_floats(m, torch.bfloat16)
        bf16 = P.module_bytes(m)
        # fp8: diffusers' layerwise casting stores the Linear/Conv weights outside its skip patterns in
        # fp8 (1 byte) and casts one layer at a time to bf16 when it runs
        skip = ("patch_embedding", "condition_embedder", "norm", "proj_out", "scale_shift_table")
        fp8 = bf16
        for name, mod in m.named_modules():
            if isinstance(mod, (torch.nn.Linear, torch.nn.Conv3d)) and not any(k in name for k in skip):
                fp8 -= mod.weight.numel()  # 2 -> 1 byte
        largest = max(mod.weight.numel() * 2 for mod in m.modules() if isinstance(mod, torch.nn.Linear))
        pos, neg = torch.randn(1, 512, 4096), torch.randn(1, 512, 4096)
        x = torch.randn(1, 16, 1 + (FRAMES - 1) // 4, HEIGHT // 8, WIDTH // 8)
        ts = torch.full((1, L), 500.0)
        batched = P.trace(lambda: transformer_denoiser(m, pos, neg, 5.0)(x, ts))
        one = P.trace(lambda: transformer_denoiser(m, pos, None, 1.0)(x, ts))
    v_kept = x.numel() * 4  # sequential CFG keeps the first branch's v (fp32) during the second
    plan["weights"]["transformer"] = {"bf16": bf16, "fp8": fp8 + largest, "fp32": 2 * bf16}
    plan["weights"]["transformer_blocks"] = len(m.blocks)
    plan["activations"]["transformer"] = {"batched": batched.activation_peak,
                                          "sequential": one.activation_peak + v_kept}
    rows.append(_row("ST-Diff step, batched CFG (x50)", batched.flops * STEPS, bf16, batched.activation_peak, "bf16",
                     STEPS, f"{L} tokens, batch 2"))
    rows.append(_row("ST-Diff step, sequential CFG (x50)", 2 * one.flops * STEPS, bf16,
                     one.activation_peak + v_kept, "bf16", 2 * STEPS, "two batch-1 forwards per step"))


def plan_text_encoder(rows, plan):
    from transformers import UMT5Config, UMT5EncoderModel

    with P.fake_mode():
        te = UMT5EncoderModel(UMT5Config(**M._config("text_encoder"))).eval()
        te.encoder.embed_tokens.weight = te.shared.weight  # one token table (as the released files hold it)
        te.to(torch.bfloat16)
        w = P.module_bytes(te)
        ids = torch.ones(1, 512, dtype=torch.long)
        r = P.trace(lambda: te(ids, torch.ones_like(ids)).last_hidden_state.float())
    plan["weights"]["text_encoder"] = {"bf16": w, "fp8": w // 2}
    plan["weights"]["text_encoder_blocks"] = te.config.num_layers
    plan["activations"]["text_encoder"] = {"default": r.activation_peak}
    rows.append(_row("encode prompt (UMT5-XXL, x2 prompts)", 2 * r.flops, w, r.activation_peak, "bf16", 2,
                     "512 tokens each"))


def plan_vae(rows, plan):
    """Untiled: traced at 49 frames. Tiled (diffusers' 256-pixel tiles): traced at 9 and 17 frames and
    extended linearly to 49 (the VAE runs frame group by frame group, so both grow linearly; tracing
    all 49 frames' tiles one operator at a time takes minutes)."""
    from diffusers import AutoencoderKLWan

    def run(vae, frames):
        x = torch.randn(1, 3, frames, HEIGHT, WIDTH)
        z = torch.randn(1, 16, 1 + (frames - 1) // 4, HEIGHT // 8, WIDTH // 8)
        enc = P.trace(lambda: vae.encode(x).latent_dist.mode())
        dec = P.trace(lambda: vae.decode(z, return_dict=False)[0])
        # the input video [1, 3, F, H, W] fp32 is on the card while it is encoded
        return (enc.flops, enc.activation_peak + x.numel() * 4), (dec.flops, dec.activation_peak)

    with P.fake_mode():
        vae = AutoencoderKLWan.from_config(M._config("vae")).eval()
        w = P.module_bytes(vae)  # the pack keeps the VAE in fp32
        untiled = run(vae, FRAMES)
        vae.use_tiling = True
        a, b = run(vae, 9), run(vae, 17)
    k = (FRAMES - 17) / (17 - 9)
    tiled = tuple(tuple(int(y + (y - x) * k) for x, y in zip(pa, pb)) for pa, pb in zip(a, b))
    plan["weights"]["vae"] = {"fp32": w}
    plan["activations"]["vae_encode"] = {"untiled": untiled[0][1], "tiled": tiled[0][1]}
    plan["activations"]["vae_decode"] = {"untiled": untiled[1][1], "tiled": tiled[1][1]}
    for name, res, note in (("untiled", untiled, ""), ("tiled", tiled, "from 9 and 17 frames, linear")):
        rows.append(_row(f"VAE encode ({name})", res[0][0], w, res[0][1], "tf32", note=note))
        rows.append(_row(f"VAE decode ({name})", res[1][0], w, res[1][1], "tf32", note=note))


def plan_geometry(rows, plan):
    from transformers import DepthAnythingForDepthEstimation, DepthProForDepthEstimation

    from worldwarp_core.geometry.preprocess import fit_multiple

    specs = {"depth-pro": (DepthProForDepthEstimation, depth_pro_config(), (1536, 1536)),
             "depth-anything-v2": (DepthAnythingForDepthEstimation, depth_anything_small_config(),
                                   fit_multiple(HEIGHT, WIDTH, 518, 14))}
    for name, (cls, cfg, (h, w)) in specs.items():
        with P.fake_mode():
            model = cls(cfg).eval()
            plan["weights"][name] = {}
            for dtype_name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
                model.to(dtype)
                wb = P.module_bytes(model)
                plan["weights"][name][dtype_name] = wb
                points = {}
                for k in GEOMETRY_BATCHES:
                    x = torch.randn(k, 3, h, w, dtype=dtype)
                    r = P.trace(lambda: model(pixel_values=x).predicted_depth.float())
                    points[str(k)] = r.activation_peak + x.numel() * x.element_size()
                    if k in (8, 49):
                        rows.append(_row(f"geometry {name} {dtype_name}, batch {k}", r.flops * FRAMES // k, wb,
                                         points[str(k)], dtype_name if dtype_name == "bf16" else "fp32",
                                         -(-FRAMES // k), f"{FRAMES} frames at {w}x{h}"))
                plan["activations"][f"geometry.{name}.{dtype_name}"] = points


class _Float(float):
    def item(self) -> float:
        return float(self)


@contextlib.contextmanager
def _python_linspace():
    """Florence-2's constructor reads its drop-path rates with ``torch.linspace(...)[i].item()``, which
    fake tensors cannot answer: give it the same numbers from Python while it is built."""
    real = torch.linspace

    def linspace(start, end, steps, **kwargs):
        return [_Float(start + (end - start) * i / max(1, steps - 1)) for i in range(steps)]

    torch.linspace = linspace
    try:
        yield
    finally:
        torch.linspace = real


def plan_captioners(rows, plan):
    """Weights exactly (full configs); the language model's prefill traced on fake tensors with the
    image tokens as embeddings; 120 generated tokens at 2 FLOPs per weight each. The vision
    towers' activations are small next to the prefill and counted by their FLOPs only."""
    from transformers import Florence2ForConditionalGeneration, Qwen2_5_VLForConditionalGeneration

    from worldwarp_core.caption import smart_resize

    new_tokens = 120
    for name, cfg in (("qwen2.5-vl-3b", qwen25_vl_config("3b")), ("qwen2.5-vl-7b", qwen25_vl_config("7b"))):
        with P.fake_mode():
            model = Qwen2_5_VLForConditionalGeneration(cfg).eval()
            if cfg.tie_word_embeddings:
                model.lm_head.weight = model.model.language_model.embed_tokens.weight
            model.to(torch.bfloat16)
            w = P.module_bytes(model)
            v = cfg.vision_config
            h, wd = smart_resize(HEIGHT, WIDTH, v.patch_size * v.spatial_merge_size, 56 * 56, 448 * 448)
            patches = (h // v.patch_size) * (wd // v.patch_size)
            tokens = 2 * patches // v.spatial_merge_size ** 2 + 80  # two images + the instruction
            lm = model.model.language_model
            emb = torch.randn(1, tokens, cfg.text_config.hidden_size, dtype=torch.bfloat16)
            r = P.trace(lambda: model.lm_head(lm(inputs_embeds=emb, use_cache=True).last_hidden_state[:, -1:]))
            vision_params = sum(p.numel() for p in model.model.visual.parameters())
            lm_params = sum(p.numel() for p in lm.parameters())
        flops = r.flops + 2 * vision_params * 2 * patches + 2 * lm_params * new_tokens
        plan["weights"][name] = {"bf16": w}
        plan["activations"][f"caption.{name}"] = {"default": r.activation_peak}
        rows.append(_row(f"caption {name} (2 frames, {new_tokens} tokens)", flops, w, r.activation_peak, "bf16",
                         1 + new_tokens, f"prefill {tokens} tokens traced; vision and decode counted"))
    with P.fake_mode(), _python_linspace():
        model = Florence2ForConditionalGeneration(florence2_large_config()).eval()
        lm = model.model.language_model  # BART: encoder, decoder and head share the token embedding
        lm.encoder.embed_tokens.weight = lm.decoder.embed_tokens.weight = model.lm_head.weight = lm.shared.weight
        model.to(torch.bfloat16)
        w = P.module_bytes(model)
        pixels = torch.randn(1, 3, 768, 768, dtype=torch.bfloat16)
        r = P.trace(lambda: model.get_image_features(pixels))
        params = sum(p.numel() for p in model.parameters())
    flops = r.flops + 2 * params * 3 * new_tokens  # 3 beams
    plan["weights"]["florence-2"] = {"bf16": w}
    plan["activations"]["caption.florence-2"] = {"default": r.activation_peak}
    rows.append(_row(f"caption florence-2-large (1 frame, {new_tokens} tokens, 3 beams)", flops, w, r.activation_peak,
                     "bf16", 1 + new_tokens, "vision tower traced; decode counted"))


def plan_3dgs(rows, plan):
    """Analytic (stated): the cache's Gaussians from the context frames' pixels, each with means 3,
    quats 4, scales 3, opacity 1 and SH degree 3 (48) floats, times 4 (value, gradient, two Adam
    moments); per-iteration buffers of one 480x720 view (~30 floats per Gaussian projected and the
    tile lists at ~4 tiles per Gaussian)."""
    n = CONTEXT * HEIGHT * WIDTH
    floats = 3 + 4 + 3 + 1 + 48
    state = n * floats * 4 * 4
    per_iter = n * 30 * 4 + n * 4 * 12
    plan["activations"]["3dgs"] = {"default": state + per_iter}
    flops = 500 * n * 2000  # ~2000 FLOPs per Gaussian per iteration (projection, blending, backward)
    rows.append(_row("3DGS cache (500 iterations, analytic)", flops, 0, state + per_iter, "fp32", 0,
                     f"{n:,} Gaussians"))


# ----------------------------------------------------------------------------- settings
SETTINGS = {
    # before the fixes: every geometry model in fp32 on all 49 history frames at once
    "before: geometry fp32 batch 49, offload none": dict(geometry_dtype="fp32", geometry_batch=49, offload="none"),
    "before: geometry fp32 batch 49, offload model": dict(geometry_dtype="fp32", geometry_batch=49, offload="model"),
    "bf16, offload none, geometry bf16 batch 8": dict(geometry_batch=8),
    "bf16, offload model, geometry batch 8": dict(offload="model", geometry_batch=8),
    "bf16, offload model, geometry batch 4": dict(offload="model", geometry_batch=4),
    "bf16, ComfyUI lowvram, geometry batch 4": dict(offload="lowvram", geometry_batch=4),
    "bf16, offload model, sequential CFG, geometry batch 4": dict(offload="model", cfg_batch="sequential",
                                                                  geometry_batch=4),
    "fp8 + fp8 text encoder, offload model, geometry batch 2": dict(dtype="fp8", text_encoder_dtype="fp8",
                                                                    offload="model", geometry_batch=2),
    "fp8 (text encoder bf16, the pack's loader), offload model, geometry batch 2":
        dict(dtype="fp8", offload="model", geometry_batch=2),
    "small card: fp8 + fp8 text encoder, offload model, sequential CFG, geometry batch 1, VAE tiling":
        dict(dtype="fp8", text_encoder_dtype="fp8", offload="model", cfg_batch="sequential", geometry_batch=1,
             vae_tiling=True),
    "depth-anything-v2 bf16 batch 8, offload model": dict(geometry="depth-anything-v2", offload="model",
                                                          geometry_batch=8),
}
for _k in GEOMETRY_BATCHES:
    SETTINGS[f"bf16, offload model, geometry batch {_k}"] = dict(offload="model", geometry_batch=_k)
for _name in ("qwen2.5-vl-3b", "qwen2.5-vl-7b", "florence-2"):
    SETTINGS[f"bf16, offload model, geometry batch 4, captioner {_name}"] = dict(offload="model", geometry_batch=4,
                                                                                captioner=_name)


def settings_table(plan):
    out = {}
    for name, kw in SETTINGS.items():
        ms = P.MemorySettings(**kw)
        peaks = P.stage_peaks(ms, plan)
        stage = max(peaks, key=peaks.get)
        out[name] = {"settings": kw, "peak_gb": round(peaks[stage] / GB, 2), "peak_stage": stage,
                     "stages_gb": {k: round(v / GB, 2) for k, v in peaks.items()}}
    for profile, kw in P.PROFILES.items():
        for dtype in ("bf16", "fp8"):
            ms = P.MemorySettings(dtype=dtype, text_encoder_dtype=dtype, **kw)
            peaks = P.stage_peaks(ms, plan)
            stage = max(peaks, key=peaks.get)
            out[f"vram profile {profile}, {dtype}"] = {"settings": dict(kw, dtype=dtype),
                                                       "peak_gb": round(peaks[stage] / GB, 2), "peak_stage": stage,
                                                       "stages_gb": {k: round(v / GB, 2) for k, v in peaks.items()}}
    return out


def times(rows):
    for r in rows:
        r["seconds"] = {}
        for key, card in P.CARDS.items():
            per = P.projected_seconds(r["flops"] / max(1, r["weight_reads"]), r["weights_bytes"], card,
                                      r["precision"])
            r["seconds"][key] = round(per * max(1, r["weight_reads"]), 2)
    return rows


# ----------------------------------------------------------------------------- validation
def validate(sizes=None, out=sys.stdout):
    """Plan vs the CPU allocator (profiler memory events) on real tensors, at small sizes. For the
    convolutional model the plan adds what PyTorch's CPU convolutions allocate inside the operator
    (``plan.cpu_kernel_scratch``); its tensors alone are ``tensors_only_ratio`` of the measured peak."""
    from transformers import DepthAnythingForDepthEstimation

    results = []
    torch.manual_seed(0)
    model = DepthAnythingForDepthEstimation(depth_anything_small_config()).eval()
    for k, h, w in sizes or [(1, 266, 392), (2, 266, 392), (4, 266, 392)]:
        x = torch.rand(k, 3, h, w)
        measured = P.measured_peak(lambda: model(pixel_values=x).predicted_depth)
        with P.fake_mode():
            fm = DepthAnythingForDepthEstimation(depth_anything_small_config()).eval()
            fx = torch.rand(k, 3, h, w)
            plain = P.trace(lambda: fm(pixel_values=fx).predicted_depth).activation_peak
            planned = P.trace(lambda: fm(pixel_values=fx).predicted_depth, scratch=P.cpu_kernel_scratch).activation_peak
        results.append({"model": "depth-anything-v2-small (+ oneDNN conv buffers)", "input": f"{k}x3x{h}x{w}",
                        "planned": planned, "measured": measured, "ratio": planned / measured,
                        "tensors_only_ratio": plain / measured})
    from diffusers import WanTransformer3DModel

    from worldwarp_core.sampler import transformer_denoiser

    cfg = dict(M._config("transformer"), num_layers=2)
    torch.manual_seed(0)
    tr = WanTransformer3DModel.from_config(cfg).eval()
    for f_lat, hh, ww in [(2, 30, 44), (4, 30, 44)]:
        x = torch.randn(1, 16, f_lat, hh, ww)
        ts = torch.full((1, f_lat * hh * ww // 4), 500.0)
        pos, neg = torch.randn(1, 64, 4096), torch.randn(1, 64, 4096)
        measured = P.measured_peak(lambda: transformer_denoiser(tr, pos, neg, 5.0)(x, ts))
        with P.fake_mode():
            ftr = WanTransformer3DModel.from_config(cfg).eval()
            fx, fts = torch.randn(1, 16, f_lat, hh, ww), torch.full((1, f_lat * hh * ww // 4), 500.0)
            fpos, fneg = torch.randn(1, 64, 4096), torch.randn(1, 64, 4096)
            planned = P.trace(lambda: transformer_denoiser(ftr, fpos, fneg, 5.0)(fx, fts)).activation_peak
        results.append({"model": "wan2.1-1.3b, 2 blocks, fp32, batched CFG", "input": f"latents 16x{f_lat}x{hh}x{ww}",
                        "planned": planned, "measured": measured, "ratio": planned / measured})
    print("| model | input | planned MB | measured MB (CPU allocator) | planned / measured |", file=out)
    print("| --- | --- | --- | --- | --- |", file=out)
    for r in results:
        print(f"| {r['model']} | {r['input']} | {r['planned'] / 1e6:.1f} | {r['measured'] / 1e6:.1f} | "
              f"{r['ratio']:.3f} |", file=out)
    if "--json" in sys.argv:
        print(json.dumps(results), file=out)
    return results


# ----------------------------------------------------------------------------- measured on a GPU
def measure_cuda(out=sys.stdout):
    """Measured vs planned peak on CUDA (random weights): ``max_memory_allocated`` above the weights."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import DepthProForDepthEstimation

    from worldwarp_core.sampler import transformer_denoiser

    plan, rows, dev = P.load_plan(), [], "cuda"

    def peak(fn):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        with torch.no_grad():
            r = fn()
            del r
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base

    tr = WanTransformer3DModel.from_config(M._config("transformer")).eval()
    M.cast_floats(tr, torch.bfloat16)
    tr.to(dev)
    L = 13 * (HEIGHT // 16) * (WIDTH // 16)
    x = torch.randn(1, 16, 13, HEIGHT // 8, WIDTH // 8, device=dev)
    ts = torch.full((1, L), 500.0, device=dev)
    pos, neg = torch.randn(1, 512, 4096, device=dev), torch.randn(1, 512, 4096, device=dev)
    rows.append(("ST-Diff step, batched CFG", peak(lambda: transformer_denoiser(tr, pos, neg, 5.0)(x, ts)),
                 plan["activations"]["transformer"]["batched"]))
    rows.append(("ST-Diff forward, batch 1", peak(lambda: transformer_denoiser(tr, pos, None, 1.0)(x, ts)),
                 plan["activations"]["transformer"]["sequential"] - x.numel() * 4))
    tr = None  # freed before the VAE is measured
    vae = AutoencoderKLWan.from_config(M._config("vae")).eval().to(dev)
    z = torch.randn(1, 16, 13, HEIGHT // 8, WIDTH // 8, device=dev)
    for tiled in (False, True):
        vae.use_tiling = tiled
        rows.append((f"VAE decode ({'tiled' if tiled else 'untiled'})", peak(lambda: vae.decode(z, return_dict=False)[0]),
                     plan["activations"]["vae_decode"]["tiled" if tiled else "untiled"]))
    vae = None
    dp = DepthProForDepthEstimation(depth_pro_config()).eval().to(dev, torch.bfloat16)
    for k in (1, 2):
        px = torch.randn(k, 3, 1536, 1536, device=dev, dtype=torch.bfloat16)
        rows.append((f"Depth Pro bf16, batch {k}", peak(lambda: dp(pixel_values=px).predicted_depth) + px.numel() * 2,
                     plan["activations"]["geometry.depth-pro.bf16"][str(k)]))
    print("| stage | planned GB | measured GB | measured / planned |\n| --- | --- | --- | --- |", file=out)
    for name, measured, planned in rows:
        print(f"| {name} | {planned / GB:.2f} | {measured / GB:.2f} | {measured / planned:.2f} |", file=out)
    return [{"stage": n, "measured_bytes": int(m), "planned_bytes": int(p)} for n, m, p in rows]


# ----------------------------------------------------------------------------- main
def build_plan():
    rows, plan = [], {"weights": {}, "activations": {}}
    for step in (plan_transformer, plan_text_encoder, plan_vae, plan_geometry, plan_captioners, plan_3dgs):
        t0 = time.perf_counter()
        step(rows, plan)
        print(f"planned {step.__name__[5:]} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return times(rows), plan


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help='print {"stages", "settings", "peak_gb", "plan"}')
    p.add_argument("--validate", action="store_true", help="plan vs CPU allocator at small sizes (~6 GB RAM)")
    p.add_argument("--write", action="store_true",
                   help=f"also write the per-stage figures the pack's vram choice reads ({P.PLAN_FILE})")
    p.add_argument("--measure", metavar="JSON", help="on CUDA: measured vs planned peaks, written to JSON")
    args = p.parse_args()
    if args.measure:
        if not torch.cuda.is_available():
            print("no CUDA: --measure needs a GPU")
            return
        with open(args.measure, "w", encoding="utf-8") as f:
            json.dump({"device": torch.cuda.get_device_name(0), "rows": measure_cuda()}, f, indent=1)
        return
    if args.validate:
        validate()
        return
    rows, plan = build_plan()
    if args.write:
        with open(P.PLAN_FILE, "w", encoding="utf-8") as f:
            json.dump({"note": "planned by benchmarks/plan_chunk.py on fake tensors, not measured",
                       "chunk": {"frames": FRAMES, "height": HEIGHT, "width": WIDTH, "context": CONTEXT,
                                 "steps": STEPS}, **plan}, f, indent=1, sort_keys=True)
            f.write("\n")
    table = settings_table(plan)
    if args.json:
        print(json.dumps({"chunk": {"frames": FRAMES, "height": HEIGHT, "width": WIDTH, "context": CONTEXT,
                                    "steps": STEPS},
                          "cards": {k: vars(c) for k, c in P.CARDS.items()}, "fraction_of_peak": P.FRACTION_OF_PEAK,
                          "stages": {r["stage"]: r for r in rows},
                          "settings": {k: v["settings"] for k, v in table.items()},
                          "peak_gb": {k: v["peak_gb"] for k, v in table.items()},
                          "peak_stage": {k: v["peak_stage"] for k, v in table.items()},
                          "plan": plan}, indent=1))
        return
    print(f"One chunk: {FRAMES} frames at {WIDTH}x{HEIGHT}, {CONTEXT} context, {STEPS} steps. Planned on fake "
          f"tensors, not measured. Time at {P.FRACTION_OF_PEAK:.0%} of each card's dense peak.\n")
    print("| stage | TFLOP | weights GB | activations GB | " + " | ".join(f"{k} s" for k in P.CARDS) + " |")
    print("| --- | --- | --- | --- | " + " | ".join("---" for _ in P.CARDS) + " |")
    for r in rows:
        print(f"| {r['stage']} | {r['flops'] / 1e12:,.1f} | {r['weights_bytes'] / GB:.2f} | "
              f"{r['activation_bytes'] / GB:.2f} | " + " | ".join(f"{r['seconds'][k]:.1f}" for k in P.CARDS) + " |")
    print("\n| setting | planned peak GB | stage |\n| --- | --- | --- |")
    for name, v in table.items():
        print(f"| {name} | {v['peak_gb']:.1f} | {v['peak_stage']} |")


if __name__ == "__main__":
    main()
