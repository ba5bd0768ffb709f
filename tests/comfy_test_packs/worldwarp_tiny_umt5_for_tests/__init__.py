"""Test-only ComfyUI pack (never installed for users): lets core Load CLIP (type wan) build a TINY UMT5.

ComfyUI's Load CLIP always builds the full-size UMT5-XXL (5.7 B parameters, the size is not read from
the file), which a CPU test cannot hold. For a file that carries a ``worldwarp_test_umt5_config``
tensor (written only by tests/comfy_core_parity.py), this builds the same core CLIP ComfyUI builds
for Wan (``WanT5Tokenizer`` + ``wan.te()``, the file's own ``spiece_model`` tokenizer) with the size
passed through ComfyUI's own ``umt5xxl_model_config`` model option. Every other file loads untouched.
"""

import json

import comfy.sd
import comfy.supported_models_base
import comfy.text_encoders.wan

MARKER = "worldwarp_test_umt5_config"
_core_loader = comfy.sd.load_text_encoder_state_dicts


def _load_text_encoder_state_dicts(state_dicts=(), embedding_directory=None,
                                   clip_type=comfy.sd.CLIPType.STABLE_DIFFUSION, model_options=None, **kwargs):
    model_options = dict(model_options or {})
    if len(state_dicts) == 1 and MARKER in state_dicts[0] and clip_type == comfy.sd.CLIPType.WAN:
        sd = dict(state_dicts[0])
        size = json.loads(bytes(sd.pop(MARKER).tolist()).decode())
        target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.wan.WanT5Tokenizer,
                                                        comfy.text_encoders.wan.te())
        return comfy.sd.CLIP(target, embedding_directory=embedding_directory,
                             tokenizer_data={"spiece_model": sd.pop("spiece_model")}, state_dict=[sd],
                             model_options={**model_options, "umt5xxl_model_config": size})
    return _core_loader(list(state_dicts), embedding_directory, clip_type, model_options, **kwargs)


comfy.sd.load_text_encoder_state_dicts = _load_text_encoder_state_dicts
NODE_CLASS_MAPPINGS = {}
