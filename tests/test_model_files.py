"""Model files that are incomplete or not what they claim give one line naming the file; Depth
Anything 3 loads from a local folder only."""

import os
import sys
import types

import pytest
import torch
from safetensors.torch import load_file, save_file

from worldwarp_core import models as M
from worldwarp_core.geometry import load_estimator
from worldwarp_core.geometry.testing import save_tiny_depth_anything


def test_text_encoder_file_without_the_umt5_keys_is_named(tmp_path):
    te = M.tiny_model().text_encoder
    state = {k: v.contiguous() for k, v in te.state_dict().items() if k != "encoder.embed_tokens.weight"}
    good = str(tmp_path / "umt5.safetensors")
    save_file(state, good)
    assert M.load_text_encoder(good) is not None
    bad = str(tmp_path / "not_umt5.safetensors")
    save_file({k: v for k, v in state.items() if "DenseReluDense.wi_0" not in k}, bad)
    with pytest.raises(ValueError, match=r"text_encoder: .*not_umt5.safetensors is not a UMT5 encoder file \(missing "
                                         r"encoder.block.0.layer.1.DenseReluDense.wi_0.weight\); put umt5_xxl_fp16"):
        M.load_text_encoder(bad)


def test_truncated_weights_in_a_diffusers_folder_are_named_before_loading(tmp_path):
    folder = M.save_tiny_diffusers_folder(str(tmp_path / "wan"))
    vae_dir = os.path.join(folder, "vae")
    weights = next(os.path.join(vae_dir, n) for n in os.listdir(vae_dir) if n.endswith(".safetensors"))
    raw = open(weights, "rb").read()
    open(weights, "wb").write(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"vae: .*diffusion_pytorch_model.safetensors is truncated: \d+ of \d+ bytes"):
        M.load_diffusers_folder(folder, "fp32")
    os.remove(weights)
    with pytest.raises(ValueError, match=r"vae: .*vae has config.json but no weights"):
        M.load_vae(vae_dir)


def test_geometry_folders_that_are_empty_or_broken_are_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"depth-anything-v2-small-hf: .*empty has no config.json"):
        load_estimator("depth-anything-v2", str(empty))
    folder = save_tiny_depth_anything(str(tmp_path / "da"))
    weights = os.path.join(folder, "model.safetensors")
    state = load_file(weights)
    save_file({k: v for i, (k, v) in enumerate(state.items()) if i % 2}, weights)  # a whole file, half the keys
    with pytest.raises(ValueError, match=r"depth-anything-v2-small-hf: .*da could not be loaded"):
        load_estimator("depth-anything-v2", folder)


def test_depth_anything_3_loads_local_files_only(tmp_path, monkeypatch):
    calls = []

    class FakeDA3:
        @classmethod
        def from_pretrained(cls, path, **kwargs):
            calls.append((path, kwargs))
            return torch.nn.Identity()

    api = types.ModuleType("depth_anything_3.api")
    api.DepthAnything3 = FakeDA3
    monkeypatch.setitem(sys.modules, "depth_anything_3", types.ModuleType("depth_anything_3"))
    monkeypatch.setitem(sys.modules, "depth_anything_3.api", api)
    folder = tmp_path / "DA3-BASE"
    folder.mkdir()
    load_estimator("depth-anything-3", str(folder))
    assert calls == [(str(folder), {"local_files_only": True})]
    with pytest.raises(ValueError, match=r"depth-anything-3: model folder not found"):
        from worldwarp_core.geometry.external import DepthAnything3Estimator

        DepthAnything3Estimator(str(tmp_path / "nope"))
