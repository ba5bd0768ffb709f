"""Shared pytest fixtures. Tests run on CPU; GPU tests skip without CUDA."""

import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def shared_data():
    """Path of ../shared/data (real data nobody here wrote); skips if absent."""
    if not os.path.isdir(SHARED_DATA):
        pytest.skip(f"real data folder not found: {SHARED_DATA}")
    return SHARED_DATA


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


FLORENCE_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def _tiny_florence_folder(path, size=64):
    """A tiny random Florence-2 in transformers' format, a character tokenizer with BART's special
    tokens and an image token, and a preprocessor config, saved as a real model folder."""
    import json

    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import Florence2Config, Florence2ForConditionalGeneration, PreTrainedTokenizerFast

    vocab = {s: i for i, s in enumerate(FLORENCE_SPECIALS)}
    for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,:<>_":
        vocab[c] = len(vocab)
    vocab["<image>"] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", extra_special_tokens={"image_token": "<image>"})
    cfg = Florence2Config(
        text_config=dict(model_type="bart", vocab_size=len(vocab), d_model=32, encoder_layers=1, decoder_layers=1,
                         encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                         max_position_embeddings=256, bos_token_id=0, pad_token_id=1, eos_token_id=2,
                         decoder_start_token_id=2, forced_bos_token_id=0, forced_eos_token_id=2),
        vision_config=dict(depths=(1, 1, 1, 1), embed_dim=(8, 16, 16, 32), num_heads=(1, 2, 2, 4),
                           num_groups=(1, 2, 2, 4), window_size=2, projection_dim=32, max_position_embeddings=50),
        image_token_id=vocab["<image>"])
    torch.manual_seed(0)
    Florence2ForConditionalGeneration(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    pre = {"size": {"height": size, "width": size}, "image_mean": [0.485, 0.456, 0.406],
           "image_std": [0.229, 0.224, 0.225], "resample": 3, "do_resize": True, "do_center_crop": False,
           "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True}
    with open(f"{path}/preprocessor_config.json", "w") as f:
        json.dump(pre, f)
    return path


@pytest.fixture(scope="session")
def tiny_florence(tmp_path_factory):
    """A tiny random Florence-2 model folder (64x64 input), built once per session."""
    return _tiny_florence_folder(str(tmp_path_factory.mktemp("models") / "Florence-2-large"))
