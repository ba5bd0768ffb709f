"""Loader dropdowns list only what each loader can load: folders of models/worldwarp by kind, and the
transformer list without the WorldWarp .ckpt (real tiny model folders, saved by their libraries)."""

import json
import os

from nodes import ops
from nodes.model_kinds import folder_kinds
from nodes.specs import spec_by_id
from worldwarp_core.geometry.testing import tiny_depth_pro
from worldwarp_core.models import tiny_tokenizer


class _Env:
    def __init__(self, root):
        self.root = root

    def models_list(self, folder):
        return sorted(os.listdir(os.path.join(self.root, folder)))

    def full_path(self, folder, name):
        return os.path.join(self.root, folder, name)


def _options(node_id, name, env):
    spec = next(i for i in spec_by_id()[node_id].inputs if i.name == name)
    return spec.options(env)


def test_each_loader_lists_only_what_it_can_load(tmp_path):
    ww = tmp_path / "worldwarp"
    tiny_tokenizer().save_pretrained(str(ww / "umt5-xxl-tokenizer"))
    tiny_depth_pro().save_pretrained(str(ww / "depth-pro-hf"))
    (ww / "Florence-2-large").mkdir()
    (ww / "Florence-2-large" / "config.json").write_text(json.dumps(
        {"model_type": "florence2", "architectures": ["Florence2ForConditionalGeneration"]}))
    (ww / "Qwen2.5-VL-3B-Instruct").mkdir()
    (ww / "Qwen2.5-VL-3B-Instruct" / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    for part in ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"):
        (ww / "Wan2.1-T2V-1.3B-Diffusers" / part).mkdir(parents=True)
    (ww / "TTT3R" / "src" / "dust3r").mkdir(parents=True)
    (ww / "my-da3-model").mkdir()
    (ww / "my-da3-model" / "config.json").write_text(json.dumps({"name": "da3-large"}))
    (ww / "notes").mkdir()
    (ww / "stray.txt").write_text("not a folder")
    dm = tmp_path / "diffusion_models"
    dm.mkdir()
    for f in ("wan2.1_t2v_1.3B_fp16.safetensors", "worldwarp_latest.ckpt"):
        (dm / f).write_bytes(b"")
    env = _Env(str(tmp_path))

    assert folder_kinds(str(ww / "depth-pro-hf")) == {"geometry"}
    assert _options("WorldWarpLoadModel", "tokenizer", env) == [
        "Wan2.1-T2V-1.3B-Diffusers", "notes", "umt5-xxl-tokenizer"]
    assert _options("WorldWarpLoadGeometryModel", "folder", env) == [
        ops.NONE, "TTT3R", "depth-pro-hf", "my-da3-model", "notes"]
    assert _options("WorldWarpLoadCaptioner", "folder", env) == [
        ops.NONE, "Florence-2-large", "Qwen2.5-VL-3B-Instruct", "my-da3-model", "notes"]
    assert _options("WorldWarpLoadModel", "transformer", env) == ["wan2.1_t2v_1.3B_fp16.safetensors", ops.DIFFUSERS]
    assert _options("WorldWarpLoadModel", "worldwarp_checkpoint", env) == [
        ops.NONE, "wan2.1_t2v_1.3B_fp16.safetensors", "worldwarp_latest.ckpt"]
    # the defaults the node falls back to: the tokenizer is no longer depth-pro-hf
    assert "depth-pro-hf" not in _options("WorldWarpLoadModel", "tokenizer", env)


def test_empty_folder_gives_the_none_choice(tmp_path):
    (tmp_path / "worldwarp").mkdir()
    env = _Env(str(tmp_path))
    assert _options("WorldWarpLoadModel", "tokenizer", env) == [ops.NONE]
    assert _options("WorldWarpLoadGeometryModel", "folder", env) == [ops.NONE]
