"""Parity of the pack's own model stack with ComfyUI's, run inside ComfyUI's venv (see test_core_models.py).

    python tests/comfy_core_parity.py COMFYUI_DIR OUT_DIR [STUBS_DIR]

Tiny random weights are made by ComfyUI's own classes (``comfy.ldm.wan.model.WanModel``,
``comfy.ldm.wan.vae.WanVAE``, ``comfy.text_encoders.t5.T5``) and saved in their own (original Wan /
ComfyUI) key layout, so the pack's loaders are checked against code nobody here wrote, not against
our inverse mapping. Each file is then loaded both ways:

* transformer: core ``comfy.sd.load_diffusion_model`` (what Load Diffusion Model runs) driven by
  ``nodes.core_models.CoreWanModel`` vs the pack's ``load_transformer`` (diffusers); one ST-Diff run each;
* VAE: core ``comfy.sd.VAE`` (Load VAE) vs the pack's ``load_vae``; encode + decode;
* UMT5: core ``comfy.sd.CLIP`` with ComfyUI's Wan tokenizer and text encoder classes vs the pack's
  ``load_text_encoder`` + tokenizer of the same sentencepiece model. ComfyUI's Load CLIP only builds the
  full-size UMT5-XXL, so the core CLIP is built from its Wan target with the size given through
  ComfyUI's own ``umt5xxl_model_config`` model option;
* official checkpoint: a diffusers-layout state dict saved with ``torch.save`` through the pack's loader
  node into a core MODEL vs the diffusers transformer; fp8 weight dtype; a core LoRA.

Writes ``OUT_DIR/report.json`` with the largest differences measured.
"""

from __future__ import annotations

import json
import os
import sys

COMFY, OUT = sys.argv[1], sys.argv[2]
STUBS = sys.argv[3] if len(sys.argv) > 3 else None
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, COMFY)
sys.path.insert(1, ROOT)
if STUBS:
    sys.path.append(STUBS)

from comfy.cli_args import args  # noqa: E402

args.cpu = True
import torch  # noqa: E402

torch.set_num_threads(2)
import importlib.util  # noqa: E402

import comfy.model_management as mm  # noqa: E402
import comfy.ops  # noqa: E402
import comfy.sd  # noqa: E402
import comfy.utils  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

# ComfyUI's own nodes.py shadows the pack's nodes/ package here: load the adapter by its file
_spec = importlib.util.spec_from_file_location("worldwarp_core_models", os.path.join(ROOT, "nodes", "core_models.py"))
_core_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_core_models)
CoreWanModel, load_core_diffusion_model = _core_models.CoreWanModel, _core_models.load_core_diffusion_model
from worldwarp_core.convert import read_transformer_file, to_comfy_layout  # noqa: E402
from worldwarp_core.models import (  # noqa: E402
    WorldWarpModel,
    _config,
    diffusers_to_wan_key,
    load_text_encoder,
    load_tokenizer,
    load_transformer,
    load_vae,
)
from worldwarp_core.sampler import SamplerConfig, st_diff_sample  # noqa: E402

os.makedirs(OUT, exist_ok=True)
report: dict = {}
gen = torch.Generator().manual_seed(0)


def randomise(module, scale=0.05):
    """Fresh random values for every tensor (ComfyUI builds its layers uninitialised); norms stay near 1."""
    out = {}
    for k, v in module.state_dict().items():
        r = torch.randn(v.shape, generator=gen, dtype=torch.float32)
        norm = ("norm" in k or "gamma" in k or "layer_norm" in k) and v.ndim == 1
        out[k] = (1 + 0.1 * r) if norm else r * scale
    return out


def maxdiff(a, b):
    return float((a.float() - b.float()).abs().max())


# ----------------------------------------------------------------------------- VAE (core layout)
from comfy.ldm.wan.vae import WanVAE  # noqa: E402

core_vae_module = WanVAE(dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                         temperal_downsample=[False, True, True], dropout=0.0)
vae_sd = randomise(core_vae_module, 0.2)
vae_path = os.path.join(OUT, "tiny_wan_vae.safetensors")
save_file(vae_sd, vae_path)
core_vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(vae_path))
vae_cfg = dict(_config("vae"), base_dim=8, dim_mult=[1, 2, 4, 4], num_res_blocks=2)
pack_vae = load_vae(vae_path, torch.float32, vae_cfg)

# ----------------------------------------------------------------------------- transformer (core layout)
from comfy.ldm.wan.model import WanModel  # noqa: E402

TINY = dict(model_type="t2v", dim=128, ffn_dim=256, freq_dim=256, text_dim=32, out_dim=16, in_dim=16, num_heads=1,
            num_layers=2)
core_dit = WanModel(**TINY, operations=comfy.ops.disable_weight_init)
dit_sd = randomise(core_dit)
dit_path = os.path.join(OUT, "tiny_wan_t2v.safetensors")
# ComfyUI's detection reads text_dim from the file's "config" metadata (its own convention); the rest from shapes
save_file(dit_sd, dit_path, metadata={"config": json.dumps({"transformer": {"text_dim": TINY["text_dim"]}})})
core_model = comfy.sd.load_diffusion_model(dit_path)  # what core Load Diffusion Model runs
pack_transformer = load_transformer(dit_path, torch.float32)

# ----------------------------------------------------------------------------- one ST-Diff run on each path
F, H, W = 9, 32, 48
frames = torch.rand(F, H, W, 3, generator=gen)
masks = (torch.rand(F, H, W, generator=gen) > 0.3).float()
prompt = torch.randn(1, 512, TINY["text_dim"], generator=gen)
prompt[:, 9:] = 0
negative = torch.randn(1, 512, TINY["text_dim"], generator=gen)
negative[:, 5:] = 0

pack = WorldWarpModel(pack_transformer, pack_vae, None, None)
core = CoreWanModel(core_model, core_vae)
z_pack = pack.encode_video(frames)
z_core = core.encode_video(frames)
report["vae_encode_max_abs"] = maxdiff(z_pack, z_core)
report["vae_latent_scale"] = float(z_pack.abs().max())
x_pack, x_core = pack.decode_video(z_pack), core.decode_video(z_pack)
report["vae_decode_max_abs"] = maxdiff(x_pack, x_core)
assert x_pack.shape == x_core.shape == frames.shape, (x_pack.shape, x_core.shape)

from worldwarp_core.schedule import context_latent_count, sampler_mask  # noqa: E402

cfg = SamplerConfig(steps=4, strength=0.8, guidance_scale=5.0, seed=3)
tm = sampler_mask(masks, cfg.mask_rule)  # the default (official) rule
r_pack = st_diff_sample(pack.transformer, z_pack, tm, context_latent_count(1), prompt, negative, cfg,
                        scheduler_config=pack.scheduler_config)
r_core = st_diff_sample(None, z_pack, tm, context_latent_count(1), prompt, negative, cfg,
                        scheduler_config=core.scheduler_config, denoise_fn=core.denoiser(prompt, negative, 5.0))
report["stdiff_max_abs"] = maxdiff(r_pack.latents, r_core.latents)
report["stdiff_latent_scale"] = float(r_pack.latents.abs().max())
report["stdiff_moved"] = maxdiff(r_pack.latents, z_pack)
# sequential CFG (two forwards of batch 1) on the core model: the batched latents to float rounding
r_seq = st_diff_sample(None, z_pack, tm, context_latent_count(1), prompt, negative, cfg,
                       scheduler_config=core.scheduler_config,
                       denoise_fn=core.denoiser(prompt, negative, 5.0, cfg_batch="sequential"))
report["core_sequential_vs_batched_max_abs"] = maxdiff(r_seq.latents, r_core.latents)
# the core VAE's tiled encode/decode (frames within one 256-pixel tile: the untiled result)
report["core_tiled_encode_max_abs"] = maxdiff(core.encode_video(frames, tiled=True), z_core)
report["core_tiled_decode_max_abs"] = maxdiff(core.decode_video(z_pack, tiled=True), x_core)

# a single forward with per-token timesteps (no CFG): the raw transformer outputs
t = torch.rand(1, 3 * 2 * 3, generator=gen) * 1000
x = torch.randn(1, 16, 3, 4, 6, generator=gen)
with torch.no_grad():
    v_pack = pack_transformer(hidden_states=x, timestep=t, encoder_hidden_states=prompt, return_dict=False)[0]
v_core = core.denoiser(prompt, None, 1.0)(x, t)
report["forward_max_abs"] = maxdiff(v_pack, v_core)
report["forward_scale"] = float(v_pack.abs().max())

# ----------------------------------------------------------------------------- fp8 weights, core LoRA
fp8_model = load_core_diffusion_model(comfy.utils.load_torch_file(dit_path), "fp8_e4m3fn", dit_path)
mm.load_models_gpu([fp8_model])
report["fp8_weight_dtype"] = str(fp8_model.model.diffusion_model.blocks[0].self_attn.q.weight.dtype)
r_fp8 = st_diff_sample(None, z_pack, tm, context_latent_count(1), prompt, negative, cfg,
                       denoise_fn=CoreWanModel(fp8_model, core_vae).denoiser(prompt, negative, 5.0),
                       scheduler_config=core.scheduler_config)
report["fp8_finite"] = bool(torch.isfinite(r_fp8.latents).all())
report["fp8_vs_fp32_max_abs"] = maxdiff(r_fp8.latents, r_pack.latents)

rank, alpha = 4, 2.0
down = torch.randn(rank, 128, generator=gen) * 0.3
up = torch.randn(128, rank, generator=gen) * 0.3
lora = {"diffusion_model.blocks.1.self_attn.q.lora_down.weight": down,
        "diffusion_model.blocks.1.self_attn.q.lora_up.weight": up,
        "diffusion_model.blocks.1.self_attn.q.alpha": torch.tensor(alpha)}
lora_model, _ = comfy.sd.load_lora_for_models(core_model, None, lora, 0.7, 0.0)
v_lora = CoreWanModel(lora_model, core_vae).denoiser(prompt, None, 1.0)(x, t)
merged = load_transformer(dit_path, torch.float32)
with torch.no_grad():
    merged.blocks[1].attn1.to_q.weight += 0.7 * (alpha / rank) * (up @ down)
    v_merged = merged(hidden_states=x, timestep=t, encoder_hidden_states=prompt, return_dict=False)[0]
report["lora_changes_output"] = maxdiff(v_lora, v_core)
report["lora_vs_merged_max_abs"] = maxdiff(v_lora, v_merged)

# ----------------------------------------------------------------------------- official checkpoint loader
diffusers_sd = {k: v.clone() for k, v in pack_transformer.state_dict().items()}
assert all(diffusers_to_wan_key(k) in dit_sd for k in diffusers_sd)
ckpt_path = os.path.join(OUT, "worldwarp_tiny.ckpt")
torch.save(diffusers_sd, ckpt_path)
state = to_comfy_layout(read_transformer_file(ckpt_path), ckpt_path)
ckpt_model = load_core_diffusion_model(state, "default", ckpt_path)
ckpt_model.model.diffusion_model.text_dim  # noqa: B018 - detected from the converted weights
v_ckpt = CoreWanModel(ckpt_model, core_vae).denoiser(prompt, None, 1.0)(x, t)
report["ckpt_vs_diffusers_max_abs"] = maxdiff(v_ckpt, v_pack)

# ----------------------------------------------------------------------------- UMT5 (core CLIP vs pack)
import sentencepiece as spm  # noqa: E402

corpus = ["a red house by the sea", "a bright living room with large windows", "wooden floors and a green sofa",
          "blurry low quality static frames", "the camera moves forward through a quiet street at dusk"] * 20
spm_prefix = os.path.join(OUT, "tiny_spiece")
spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_prefix=spm_prefix, vocab_size=48,
                               pad_id=0, eos_id=1, unk_id=2, bos_id=-1, model_type="unigram",
                               character_coverage=1.0, minloglevel=2)
spm_bytes = open(spm_prefix + ".model", "rb").read()
UMT5_TINY = {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_heads": 4, "num_layers": 2,
             "relative_attention_num_buckets": 8, "vocab_size": 64}
import comfy.supported_models_base  # noqa: E402
import comfy.text_encoders.t5  # noqa: E402
import comfy.text_encoders.wan  # noqa: E402

te_cfg = json.load(open(os.path.join(os.path.dirname(comfy.text_encoders.wan.__file__), "umt5_config_xxl.json")))
te_cfg.update(UMT5_TINY)
t5 = comfy.text_encoders.t5.T5(te_cfg, torch.float32, "cpu", comfy.ops.disable_weight_init)
te_sd = randomise(t5, 0.3)
te_path = os.path.join(OUT, "tiny_umt5.safetensors")
save_file(te_sd, te_path)
target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.wan.WanT5Tokenizer, comfy.text_encoders.wan.te())
core_clip = comfy.sd.CLIP(target, tokenizer_data={"spiece_model": spm_bytes},
                          state_dict=[comfy.utils.load_torch_file(te_path)],
                          model_options={"umt5xxl_model_config": UMT5_TINY, "dtype": torch.float32})
from transformers import T5Tokenizer  # noqa: E402

sp = spm.SentencePieceProcessor(model_proto=spm_bytes)
tok_dir = os.path.join(OUT, "tiny_umt5_tokenizer")  # the pack's tokenizer folder, from the same sentencepiece model
T5Tokenizer(vocab=[(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())],
            extra_ids=0).save_pretrained(tok_dir)
pack_te = WorldWarpModel(None, None, load_text_encoder(te_path, torch.float32), load_tokenizer(tok_dir))
text = "a bright living room, wooden floors"
e_pack = pack_te.encode_prompt([text])
e_core = CoreWanModel(core_model, core_vae, core_clip).encode_prompt([text])
report["umt5_max_abs"] = maxdiff(e_pack, e_core)
report["umt5_scale"] = float(e_pack.abs().max())
report["umt5_tokens"] = int((e_pack.abs().sum(-1) > 0).sum())
report["umt5_token_ids_equal"] = [t[0] for t in core_clip.tokenize(text)["umt5xxl"][0]][:report["umt5_tokens"]] == \
    load_tokenizer(tok_dir)(text).input_ids
report["umt5_shapes"] = [list(e_pack.shape), list(e_core.shape)]

# ----------------------------------------------------------------------------- a models/ folder for the server test
# the same tiny files under the names users have (the end-to-end workflow test in the real server)
import shutil  # noqa: E402

models = os.path.join(OUT, "models")
for sub in ("diffusion_models", "vae", "text_encoders"):
    os.makedirs(os.path.join(models, sub), exist_ok=True)
shutil.copy(dit_path, os.path.join(models, "diffusion_models", "wan2.1_t2v_1.3B_fp16.safetensors"))
shutil.copy(ckpt_path, os.path.join(models, "diffusion_models", "worldwarp_latest.ckpt"))
shutil.copy(vae_path, os.path.join(models, "vae", "wan_2.1_vae.safetensors"))
# ComfyUI's text encoder files carry their tokenizer as "spiece_model"; the marker tells the test-only pack
# (tests/comfy_test_packs) the tiny size, which core Load CLIP cannot detect
te_file = dict(te_sd, spiece_model=torch.frombuffer(bytearray(spm_bytes), dtype=torch.uint8),
               worldwarp_test_umt5_config=torch.frombuffer(bytearray(json.dumps(UMT5_TINY).encode()), dtype=torch.uint8))
save_file(te_file, os.path.join(models, "text_encoders", "umt5_xxl_fp16.safetensors"))

json.dump(report, open(os.path.join(OUT, "report.json"), "w"), indent=1)
print(json.dumps(report, indent=1))
