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

from worldwarp_core.cli import main
from worldwarp_core.convert import convert_checkpoint, read_transformer_file, to_comfy_layout
from worldwarp_core.models import TINY_TRANSFORMER_CONFIG, load_transformer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMFY_BASE = os.environ.get("COMFY_BASE", os.path.dirname(ROOT))
COMFYUI_DIR = os.environ.get("COMFYUI_DIR", os.path.join(COMFY_BASE, "comfyui"))
COMFY_PY = os.path.join(os.environ.get("COMFY_VENV", os.path.join(COMFY_BASE, "comfy-venv")), "bin", "python")
STUBS = os.path.join(os.path.dirname(ROOT), "shared", "tools", "comfy", "stubs")


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
    return json.load(open(out / "report.json"))


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
