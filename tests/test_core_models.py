"""ST-Diff on ComfyUI's own models: checkpoint conversion (core-free) and parity with ComfyUI's code.

The parity half runs ``tests/comfy_core_parity.py`` in ComfyUI's venv with ComfyUI on ``sys.path``:
tiny random weights written by ComfyUI's own Wan transformer / Wan VAE / UMT5 classes in their own key
layout, loaded by core loaders and by the pack's; it is skipped with a reason when no tree is set up.
"""

import json
import os
import subprocess

import pytest
import torch
from comfy_tree import COMFY_PY, COMFYUI_DIR, HARNESS, HAVE_COMFY, NO_TREE, ROOT, server_url

from worldwarp_core.cli import main
from worldwarp_core.convert import convert_checkpoint, read_transformer_file, to_comfy_layout
from worldwarp_core.models import TINY_TRANSFORMER_CONFIG, load_transformer

STUBS = os.path.join(HARNESS, "stubs")


def _tiny_diffusers(seed=0):
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    return WanTransformer3DModel.from_config(TINY_TRANSFORMER_CONFIG).eval()


class Payload:
    """A pickled object whose unpickling would run code (os.system)."""

    def __reduce__(self):
        return os.system, ("echo pwned > /dev/null",)


# ----------------------------------------------------------------------------- conversion (no ComfyUI)
def test_convert_checkpoint_writes_original_layout_that_loads_back_exactly(tmp_path):
    model = _tiny_diffusers()
    src = tmp_path / "worldwarp_tiny.ckpt"
    torch.save({"state_dict": model.state_dict()}, src)  # a container, as training scripts save
    dst = tmp_path / "out" / "worldwarp_comfy.safetensors"
    assert main(["convert-checkpoint", str(src), str(dst)]) == 0
    from safetensors.torch import load_file

    keys = set(load_file(str(dst)))
    assert {"head.modulation", "head.head.weight", "blocks.0.self_attn.q.weight", "blocks.1.norm3.weight",
            "time_projection.1.weight", "text_embedding.2.bias"} <= keys
    assert not any(k.startswith(("condition_embedder", "proj_out", "scale_shift_table")) for k in keys)
    back = load_transformer(str(dst), torch.float32, TINY_TRANSFORMER_CONFIG)
    for k, v in model.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    # refuses to overwrite; bf16 on request
    assert main(["convert-checkpoint", str(src), str(dst)]) == 2
    info = convert_checkpoint(str(src), str(dst), "bf16", overwrite=True)
    assert info["blocks"] == 2 and load_file(str(dst))["head.modulation"].dtype == torch.bfloat16


def test_conversion_refuses_code_pickles_and_foreign_weights(tmp_path):
    bad = tmp_path / "evil.ckpt"
    torch.save({"weight": torch.zeros(1), "x": Payload()}, bad)
    with pytest.raises(ValueError, match="refusing to load: the pickle needs code execution"):
        read_transformer_file(str(bad))
    with pytest.raises(ValueError, match="refusing to load"):
        convert_checkpoint(str(bad), str(tmp_path / "x.safetensors"))
    assert not (tmp_path / "x.safetensors").exists()
    state = {k: v for k, v in _tiny_diffusers().state_dict().items()}
    state["img_emb.proj.0.weight"] = torch.zeros(2)  # an image-to-video Wan
    with pytest.raises(ValueError, match=r"not a Wan 2.1 text-to-video transformer.*img_emb.proj.0.weight"):
        to_comfy_layout(state, "i2v.safetensors")
    with pytest.raises(ValueError, match="missing"):
        to_comfy_layout({"blocks.0.self_attn.q.weight": torch.zeros(1)}, "partial")
    with pytest.raises(ValueError, match="must be a .safetensors"):
        convert_checkpoint(str(bad), str(tmp_path / "out.ckpt"))


def test_core_model_inputs_say_what_to_connect():
    from nodes import ops
    from nodes.core_models import conditioning_embeds, is_core_model

    class Patcher:  # what the nodes see of a core MODEL (a ComfyUI ModelPatcher)
        load_device, model_options = "cpu", {}

    hints, masks = torch.zeros(5, 32, 48, 3), torch.ones(5, 32, 48)
    assert is_core_model(Patcher()) and not is_core_model(object())
    with pytest.raises(ValueError, match="needs the core Wan VAE as well: connect Load VAE"):
        ops.st_diff_sampler(None, Patcher(), hints, masks, "", "", 1, 0.8, 2, 5.0, 0, "spatio-temporal", False)
    with pytest.raises(ValueError, match="connect a model"):
        ops.st_diff_sampler(None, None, hints, masks, "", "", 1, 0.8, 2, 5.0, 0, "spatio-temporal", False)
    with pytest.raises(ValueError, match="conditioning must come from CLIP Text Encode"):
        conditioning_embeds([torch.zeros(1, 4, 8)])
    e = conditioning_embeds([[torch.ones(1, 7, 8), {}]])
    assert e.shape == (1, 512, 8) and e[:, 7:].abs().sum() == 0  # padded with zeros like Wan's text


# ----------------------------------------------------------------------------- parity with ComfyUI
@pytest.fixture(scope="module")
def parity_report(tmp_path_factory):
    if not (os.path.isfile(os.path.join(COMFYUI_DIR, "comfy", "sd.py")) and os.path.isfile(COMFY_PY)):
        pytest.skip(f"no ComfyUI tree at {COMFYUI_DIR} with a venv at {COMFY_PY} "
                    "(run ../shared/tools/comfy/setup.sh, or set COMFYUI_DIR / COMFY_VENV)")
    out = tmp_path_factory.mktemp("core_parity")
    cmd = [COMFY_PY, os.path.join(ROOT, "tests", "comfy_core_parity.py"), COMFYUI_DIR, str(out)]
    if os.path.isdir(STUBS):
        cmd.append(STUBS)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.load(open(out / "report.json"))
    report["out"] = str(out)
    return report


@pytest.mark.comfy
def test_transformer_parity_per_token_timesteps(parity_report):
    r = parity_report
    # one forward with a different timestep for every token: core WanModel vs diffusers, same file
    assert r["forward_max_abs"] <= 2e-5 * max(1.0, r["forward_scale"])
    # a whole ST-Diff run (4 steps, CFG 5, batched) through core Load Diffusion Model + core VAE vs the pack
    assert r["stdiff_moved"] > 0.1  # the run really changed the latents
    assert r["stdiff_max_abs"] <= 2e-5 * max(1.0, r["stdiff_latent_scale"])
    # the official-checkpoint loader: diffusers state dict (torch.save) -> core MODEL == diffusers transformer
    assert r["ckpt_vs_diffusers_max_abs"] <= 2e-5 * max(1.0, r["forward_scale"])
    # cfg_batch sequential on the core model: two forwards of batch 1 give the batched latents
    assert r["core_sequential_vs_batched_max_abs"] <= 1e-5 * max(1.0, r["stdiff_latent_scale"])
    # the core VAE's tiled mode runs; within one tile it is the untiled VAE
    assert r["core_tiled_encode_max_abs"] <= 1e-5 * max(1.0, r["vae_latent_scale"])
    assert r["core_tiled_decode_max_abs"] <= 1e-5


@pytest.mark.comfy
def test_vae_and_text_encoder_parity(parity_report):
    r = parity_report
    assert r["vae_encode_max_abs"] <= 5e-6 * max(1.0, r["vae_latent_scale"])
    assert r["vae_decode_max_abs"] <= 5e-6
    assert r["umt5_token_ids_equal"] and r["umt5_tokens"] > 10
    assert r["umt5_shapes"][0] == r["umt5_shapes"][1] == [1, 512, 32]
    assert r["umt5_max_abs"] <= 5e-5 * max(1.0, r["umt5_scale"])


@pytest.mark.comfy
def test_fp8_weights_and_core_lora_apply(parity_report):
    r = parity_report
    assert r["fp8_weight_dtype"] == "torch.float8_e4m3fn" and r["fp8_finite"]
    assert 0 < r["fp8_vs_fp32_max_abs"] <= 0.1 * max(1.0, r["stdiff_latent_scale"])  # 8-bit weights, close
    # a core LoRA patch reaches the per-token forward, equal to merging the same update into the weights
    assert r["lora_changes_output"] > 1e-3
    assert r["lora_vs_merged_max_abs"] <= 2e-5 * max(1.0, r["forward_scale"])


# ----------------------------------------------------------------------------- the real server, end to end
PORT, _ = server_url(8191)
TEST_PACKS = os.path.join(ROOT, "tests", "comfy_test_packs")


def _core_loader_workflow():
    """API-format graph: core Load Diffusion Model / Load VAE / Load CLIP (wan) / CLIP Text Encode feeding the
    WorldWarp nodes; an fp8 copy of the model; the official-checkpoint loader; the chunk loop on core models."""
    from nodes.specs import spec_by_id

    specs = spec_by_id()
    wf = {}

    def add(nid, node_type, **inputs):
        if node_type in specs:
            widgets = {i.name: i.default for i in specs[node_type].inputs
                       if i.kind in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO") and i.default is not None}
            inputs = {**widgets, **inputs}
        wf[str(nid)] = {"class_type": node_type, "inputs": inputs}
        return [str(nid), 0]

    image = add(1, "LoadImage", image="worldwarp_core_e2e.png")
    model = add(2, "UNETLoader", unet_name="wan2.1_t2v_1.3B_fp16.safetensors", weight_dtype="default")
    vae = add(3, "VAELoader", vae_name="wan_2.1_vae.safetensors")
    clip = add(4, "CLIPLoader", clip_name="umt5_xxl_fp16.safetensors", type="wan", device="default")
    pos = add(5, "CLIPTextEncode", text="a small room with a window", clip=clip)
    neg = add(6, "CLIPTextEncode", text="blurry, static", clip=clip)
    geo_model = add(7, "WorldWarpLoadGeometryModel", backend="depth-anything-v2", folder="tiny-depth-anything")
    geometry = add(8, "WorldWarpEstimateGeometry", geometry_model=geo_model, images=image)
    cams = add(9, "WorldWarpCameraTrajectory", image=image, preset="dolly_in@0.2", frames=9, geometry=geometry)
    cache = add(10, "WorldWarpBuildCache", images=image, geometry=geometry, iterations=2, stride=4)
    hints = add(11, "WorldWarpRenderHints", cache=cache, cameras=cams)
    sampler = {"hints": hints, "masks": [hints[0], 1], "context_frames": 1, "steps": 2, "context": image, "vae": vae}
    add(12, "WorldWarpSTDiffSampler", model=model, conditioning=pos, negative_conditioning=neg, **sampler)
    add(13, "SaveImage", images=["12", 0], filename_prefix="core_e2e/bf16")
    fp8 = add(14, "UNETLoader", unet_name="wan2.1_t2v_1.3B_fp16.safetensors", weight_dtype="fp8_e4m3fn")
    add(15, "WorldWarpSTDiffSampler", model=fp8, conditioning=pos, negative_conditioning=neg, **sampler)
    add(16, "SaveImage", images=["15", 0], filename_prefix="core_e2e/fp8")
    official = add(17, "WorldWarpLoadDiffusionModel", checkpoint="worldwarp_latest.ckpt", weight_dtype="default")
    captioner = add(18, "WorldWarpLoadCaptioner", captioner="fixed", fixed_prompt="a tiny room")
    described = add(19, "WorldWarpDescribeScene", captioner=captioner, images=image, style="oil painting", clip=clip)
    add(20, "WorldWarpSTDiffSampler", model=official, conditioning=[described[0], 1], negative_conditioning=neg,
        **sampler)
    add(21, "SaveImage", images=["20", 0], filename_prefix="core_e2e/official")
    add(22, "WorldWarpChunkLoop", model=model, geometry_model=geo_model, image=image, cameras=cams, frames=17,
        prompt="a small room", chunk_frames=9, context_frames=1, steps=2, gs_iterations=2,
        output_folder="worldwarp/core_e2e", vae=vae, clip=clip)
    add(23, "SaveImage", images=["22", 0], filename_prefix="core_e2e/loop")
    return wf


@pytest.mark.comfy
def test_core_loader_workflow_runs_in_the_real_server(parity_report, tmp_path):
    import sys

    from PIL import Image

    from worldwarp_core.geometry.testing import save_tiny_depth_anything
    from worldwarp_core.synthetic import default_scene

    if not HAVE_COMFY:
        pytest.skip(NO_TREE)
    models = os.path.join(parity_report["out"], "models")
    save_tiny_depth_anything(os.path.join(models, "worldwarp", "tiny-depth-anything"))
    cfg = tmp_path / "extra_model_paths.yaml"
    cfg.write_text("worldwarp_core_test:\n" + f"  base_path: {models}\n"
                   + "".join(f"  {f}: {f}/\n" for f in ("diffusion_models", "vae", "text_encoders", "worldwarp"))
                   + f"  custom_nodes: {TEST_PACKS}\n")
    inputs, out = tmp_path / "input", tmp_path / "out"
    inputs.mkdir()
    scene = default_scene()
    rgb, _ = scene.render(scene.default_camera(48, 32))
    Image.fromarray((rgb[0].numpy() * 255).astype("uint8")).save(inputs / "worldwarp_core_e2e.png")
    wf = tmp_path / "core_loaders_api.json"
    wf.write_text(json.dumps(_core_loader_workflow()))
    cmd = [sys.executable, os.path.join(HARNESS, "run_workflow.py"), str(wf), "--timeout", "900", "--require-outputs",
           "--comfy-dir", COMFYUI_DIR, "--url", f"http://127.0.0.1:{PORT}", "--output-dir", str(out),
           "--expect-node", "WorldWarpLoadDiffusionModel", f"--server-arg=--output-directory={out}",
           f"--server-arg=--input-directory={inputs}", f"--server-arg=--extra-model-paths-config={cfg}",
           "--server-arg=--cpu"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, (r.stdout[-4000:], r.stderr[-4000:])
    from PIL import Image as _Image

    saved = {name: sorted(os.listdir(out / "core_e2e")) for name in ("core_e2e",)}["core_e2e"]
    for prefix, frames in (("bf16", 9), ("fp8", 9), ("official", 9), ("loop", 17)):
        files = [f for f in saved if f.startswith(prefix)]
        assert len(files) == frames, (prefix, saved)
        assert _Image.open(out / "core_e2e" / files[0]).size == (48, 32)
    assert os.path.isfile(out / "worldwarp" / "core_e2e" / "manifest.json")
