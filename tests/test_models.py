"""models.py: every loader round-trips tiny models saved in the real formats; clear errors."""

import os

import pytest
import torch
from safetensors.torch import save_file

from worldwarp_core import models
from worldwarp_core.models import (
    diffusers_to_wan_key,
    load_components,
    load_diffusers_folder,
    load_text_encoder,
    load_transformer,
    load_vae,
    load_worldwarp_checkpoint,
    save_tiny_diffusers_folder,
    save_transformer_file,
    tiny_components,
    tiny_model,
    wan_to_diffusers_key,
)


def _probe(transformer):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, 2, 4, 4, generator=g)
    t = torch.rand(1, 2 * 2 * 2, generator=g) * 1000  # per-token timesteps [B, L]
    e = torch.randn(1, 7, models.TINY_TEXT_DIM, generator=g)
    with torch.no_grad():
        return transformer(hidden_states=x, timestep=t, encoder_hidden_states=e, return_dict=False)[0]


@pytest.fixture(scope="module")
def tiny():
    return tiny_model(seed=0)


def test_key_maps_are_inverse_and_cover_every_key(tiny):
    keys = list(tiny.transformer.state_dict())
    wan = [diffusers_to_wan_key(k) for k in keys]
    assert "blocks.0.self_attn.q.weight" in wan and "head.head.weight" in wan and "blocks.1.modulation" in wan
    assert "blocks.0.norm3.weight" in wan and "text_embedding.0.weight" in wan and "head.modulation" in wan
    assert [wan_to_diffusers_key(k) for k in wan] == keys
    assert len(set(wan)) == len(keys)


@pytest.mark.parametrize("layout", ["wan", "comfyui", "diffusers"])
def test_single_file_transformer_round_trip(tmp_path, tiny, layout):
    path = str(tmp_path / f"t_{layout}.safetensors")
    save_transformer_file(tiny.transformer, path, layout)
    loaded = load_transformer(path, config=models.TINY_TRANSFORMER_CONFIG)
    assert torch.equal(_probe(loaded), _probe(tiny.transformer))
    with pytest.raises(ValueError, match="transformer width 16 is not a Wan2.1 size"):
        load_transformer(path)


def test_diffusers_folder_round_trip(tmp_path, tiny):
    folder = save_tiny_diffusers_folder(str(tmp_path / "wan"), seed=0)
    m = load_diffusers_folder(folder, dtype="fp32")
    assert torch.equal(_probe(m.transformer), _probe(tiny.transformer))
    assert torch.equal(m.encode_prompt(["a red room"]), tiny.encode_prompt(["a red room"]))
    frames = torch.rand(5, 32, 32, 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(m.encode_video(frames), tiny.encode_video(frames))
    with pytest.raises(ValueError, match=r"is not a Wan diffusers folder: missing \['tokenizer'\]"):
        import shutil

        shutil.rmtree(os.path.join(folder, "tokenizer"))
        load_diffusers_folder(folder)


def test_single_file_vae_text_encoder_and_components(tmp_path, tiny):
    _, vae, te = tiny_components(0)
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(tmp_path / "vae.safetensors"))
    # ComfyUI's umt5 files carry the encoder under transformers' names, without a duplicate embedding
    te_sd = {k: v.contiguous() for k, v in te.state_dict().items() if k != "encoder.embed_tokens.weight"}
    save_file(te_sd, str(tmp_path / "te.safetensors"))
    save_transformer_file(tiny.transformer, str(tmp_path / "t.safetensors"), "comfyui")
    tiny.tokenizer.save_pretrained(str(tmp_path / "tok"))
    v2 = load_vae(str(tmp_path / "vae.safetensors"), config=models.TINY_VAE_CONFIG)
    x = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(v2.encode(x).latent_dist.mode(), vae.encode(x).latent_dist.mode())
    t2 = load_text_encoder(str(tmp_path / "te.safetensors"))
    ids = torch.tensor([[5, 6, 7, 1]])
    with torch.no_grad():
        assert torch.equal(t2(ids).last_hidden_state, te(ids).last_hidden_state)
    m = load_components(str(tmp_path / "t.safetensors"), str(tmp_path / "vae.safetensors"),
                        str(tmp_path / "te.safetensors"), str(tmp_path / "tok"), dtype="fp32",
                        transformer_config=models.TINY_TRANSFORMER_CONFIG, vae_config=models.TINY_VAE_CONFIG)
    assert torch.equal(m.encode_prompt(["hello"]), tiny.encode_prompt(["hello"]))


def test_worldwarp_ckpt_with_container_and_prefixes(tmp_path, tiny):
    sd = {f"module.{k}": v.clone() for k, v in tiny.transformer.state_dict().items()}
    torch.save({"state_dict": sd, "step": 10000}, str(tmp_path / "worldwarp_latest.ckpt"))
    other, _, _ = tiny_components(seed=1)
    assert not torch.equal(_probe(other), _probe(tiny.transformer))
    load_worldwarp_checkpoint(str(tmp_path / "worldwarp_latest.ckpt"), other)
    assert torch.equal(_probe(other), _probe(tiny.transformer))
    # EMA container in the original Wan layout
    ema = {diffusers_to_wan_key(k): v for k, v in tiny.transformer.state_dict().items()}
    torch.save({"ema": ema}, str(tmp_path / "ema.ckpt"))
    third, _, _ = tiny_components(seed=2)
    load_worldwarp_checkpoint(str(tmp_path / "ema.ckpt"), third)
    assert torch.equal(_probe(third), _probe(tiny.transformer))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_needing_code_execution_is_refused(tmp_path, tiny):
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": _Evil()}, str(tmp_path / "bad.ckpt"))
    with pytest.raises(ValueError, match="refusing to load: the pickle needs code execution"):
        load_worldwarp_checkpoint(str(tmp_path / "bad.ckpt"), tiny.transformer)


def test_missing_and_unexpected_keys_load_nothing(tmp_path, tiny):
    sd = dict(tiny.transformer.state_dict())
    dropped = sd.pop("proj_out.bias")
    sd["extra.weight"] = torch.zeros(2)
    torch.save(sd, str(tmp_path / "half.ckpt"))
    target, _, _ = tiny_components(seed=3)
    before = _probe(target)
    with pytest.raises(ValueError, match=r"1 missing \(e.g. \['proj_out.bias'\]\); 1 unexpected \(e.g. \['extra.weight'\]\)"):
        load_worldwarp_checkpoint(str(tmp_path / "half.ckpt"), target)
    assert torch.equal(_probe(target), before) and dropped.numel() > 0


def test_missing_and_corrupt_files_say_where(tmp_path):
    with pytest.raises(ValueError, match=r"transformer not found: '.*nope.safetensors' \(searched in .*\); put wan2.1_t2v"):
        load_transformer(str(tmp_path / "nope.safetensors"))
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00\x01garbage")
    with pytest.raises(ValueError, match="not a readable .safetensors file"):
        load_vae(str(bad))


def test_encode_prompt_pads_to_512_with_zeros(tiny):
    e = tiny.encode_prompt(["abc", "a longer prompt"])
    assert e.shape == (2, 512, models.TINY_TEXT_DIM)
    n0 = len("abc") + 1  # characters + </s>
    assert bool((e[0, :n0].abs().sum(-1) > 0).all()) and torch.equal(e[0, n0:], torch.zeros(512 - n0, models.TINY_TEXT_DIM))


def test_latent_normalisation_round_trip(tiny):
    frames = torch.rand(9, 32, 48, 3, generator=torch.Generator().manual_seed(3))
    z = tiny.encode_video(frames)
    assert z.shape == (16, 3, 4, 6)
    with torch.no_grad():
        raw = tiny.vae.encode(frames.permute(3, 0, 1, 2)[None] * 2 - 1).latent_dist.mode()[0]
    mean = torch.tensor(tiny.vae.config.latents_mean).view(-1, 1, 1, 1)
    std = torch.tensor(tiny.vae.config.latents_std).view(-1, 1, 1, 1)
    torch.testing.assert_close(z * std + mean, raw, atol=1e-5, rtol=1e-5)
    out = tiny.decode_video(z)
    assert out.shape == (9, 32, 48, 3) and out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError, match="frames must be 4k\\+1 and sizes multiples of 16"):
        tiny.encode_video(torch.rand(8, 32, 48, 3))


def test_check_models_lists_found_and_missing(tmp_path):
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "wan_2.1_vae.safetensors").write_bytes(b"")
    report = {r["component"]: r for r in models.check_models(str(tmp_path))}
    assert report["vae"]["found"].endswith("wan_2.1_vae.safetensors")
    assert report["transformer"]["found"] is None and "diffusion_models" in report["transformer"]["hint"]


_RES = {"norm1.gamma": "residual.0.gamma", "conv1.weight": "residual.2.weight", "conv1.bias": "residual.2.bias",
        "norm2.gamma": "residual.3.gamma", "conv2.weight": "residual.6.weight", "conv2.bias": "residual.6.bias",
        "conv_shortcut.weight": "shortcut.weight", "conv_shortcut.bias": "shortcut.bias"}


def _original_wan_vae_key(key: str) -> str:
    """diffusers AutoencoderKLWan name -> the original Wan2.1 VAE name (wan/modules/vae.py layout: encoder
    and decoder 'downsamples'/'upsamples' as flat Sequentials, 'middle', 'head', conv1/conv2 around the
    latent), for the 4-level, 2-resnet-per-level VAE the converter knows."""
    for a, b in (("quant_conv.", "conv1."), ("post_quant_conv.", "conv2.")):
        if key.startswith(a):
            return b + key[len(a):]
    side, rest = key.split(".", 1)
    for a, b in (("conv_in.", "conv1."), ("norm_out.", "head.0."), ("conv_out.", "head.2.")):
        if rest.startswith(a):
            return f"{side}.{b}{rest[len(a):]}"
    parts = rest.split(".")
    if parts[0] == "mid_block":
        kind, i, tail = parts[1], int(parts[2]), ".".join(parts[3:])
        if kind == "attentions":
            return f"{side}.middle.1.{tail}"
        return f"{side}.middle.{2 * i}.{_RES[tail]}"
    if parts[0] == "down_blocks":
        i, tail = parts[1], ".".join(parts[2:])
        return f"{side}.downsamples.{i}.{_RES.get(tail, tail)}"
    if parts[0] == "up_blocks":
        b = int(parts[1])
        if parts[2] == "upsamplers":
            return f"{side}.upsamples.{4 * b + 3}.{'.'.join(parts[4:])}"
        r, tail = int(parts[3]), ".".join(parts[4:])
        return f"{side}.upsamples.{4 * b + r}.{_RES[tail]}"
    raise AssertionError(f"unmapped VAE key {key}")


def test_original_layout_vae_file_loads_through_the_diffusers_key_converter(tmp_path):
    """ComfyUI's wan_2.1_vae.safetensors uses the original Wan names; a small VAE with the real layout's
    structure (4 levels, 2 resnets each, a shortcut where channels change) round-trips through it."""
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    cfg = {"base_dim": 8, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2,
           "temperal_downsample": [False, True, True]}
    torch.manual_seed(0)
    vae = AutoencoderKLWan.from_config(cfg).eval()
    sd = vae.state_dict()
    original = {_original_wan_vae_key(k): v.contiguous() for k, v in sd.items()}
    assert len(original) == len(sd) and "decoder.upsamples.4.shortcut.weight" in original
    assert set(convert_wan_vae_to_diffusers(dict(original))) == set(sd)  # our inverse is exact
    path = str(tmp_path / "wan_2.1_vae.safetensors")
    save_file(original, path)
    loaded = load_vae(path, config=cfg)
    x = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x).latent_dist.mode(), vae.encode(x).latent_dist.mode(),
                                   rtol=0, atol=0)
    # the shipped full-size config is what a file without one is read with: a small file then says so
    with pytest.raises(ValueError, match="with other shapes"):
        load_vae(path)
    junk = str(tmp_path / "junk.safetensors")
    save_file({"something.weight": torch.zeros(2)}, junk)
    with pytest.raises(ValueError, match="neither a diffusers AutoencoderKLWan file nor the original Wan2.1 VAE"):
        load_vae(junk)


def test_bf16_loads_keep_the_fp32_modules_as_from_pretrained_does_and_warn_nothing(tmp_path):
    """Single files cast to bf16 give exactly the dtypes of diffusers' from_pretrained(torch_dtype=bf16)
    (Wan's norms, rope, time embedder and scale-shift tables stay float32), with no cast warning."""
    import logging

    from diffusers import WanTransformer3DModel

    folder = save_tiny_diffusers_folder(str(tmp_path / "wan"), seed=0)
    reference = WanTransformer3DModel.from_pretrained(os.path.join(folder, "transformer"), torch_dtype=torch.bfloat16)
    messages = []

    class _Catch(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    catch = _Catch()
    logging.getLogger("diffusers").addHandler(catch)
    try:
        save_transformer_file(tiny_model(0).transformer, str(tmp_path / "t.safetensors"), "comfyui")
        ours = load_transformer(str(tmp_path / "t.safetensors"), torch.bfloat16, models.TINY_TRANSFORMER_CONFIG)
        vae = load_vae(os.path.join(folder, "vae"))  # a folder: from_pretrained
        _, tiny_vae, _ = tiny_components(0)
        save_file({k: v.contiguous() for k, v in tiny_vae.state_dict().items()}, str(tmp_path / "vae.safetensors"))
        vae_file = load_vae(str(tmp_path / "vae.safetensors"), config=models.TINY_VAE_CONFIG)
    finally:
        logging.getLogger("diffusers").removeHandler(catch)
    assert not [m for m in messages if "should be kept in float32" in m], messages
    want = {n: p.dtype for n, p in reference.named_parameters()}
    got = {n: p.dtype for n, p in ours.named_parameters()}
    assert got == want and {torch.float32, torch.bfloat16} == set(got.values())
    # the sampler feeds the compute dtype (bf16), not the first parameter's (a float32-kept table)
    assert models.compute_dtype(ours) == torch.bfloat16 == models.compute_dtype(reference)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, 2, 4, 4, generator=g).to(torch.bfloat16)
    e = torch.randn(1, 7, models.TINY_TEXT_DIM, generator=g).to(torch.bfloat16)
    with torch.no_grad():
        v = ours(hidden_states=x, timestep=torch.full((1, 8), 500.0), encoder_hidden_states=e, return_dict=False)[0]
        v_ref = reference(hidden_states=x, timestep=torch.full((1, 8), 500.0), encoder_hidden_states=e,
                          return_dict=False)[0]
    assert torch.equal(v, v_ref)
    assert all(p.dtype == torch.float32 for p in (*vae.parameters(), *vae_file.parameters()))
