"""Captioning: prompt composition, fixed mode, and a tiny Qwen2.5-VL through the real loading path."""

import pytest
import torch

from worldwarp_core.caption import (
    FixedCaptioner,
    Florence2Captioner,
    compose_prompt,
    florence_image_tokens,
    list_captioners,
    load_captioner,
    qwen_vl_pixels,
    smart_resize,
)

SPECIALS = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
            "<|video_pad|>", "<|endoftext|>"]


def _tiny_qwen_folder(path):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    chars = list("abcdefghijklmnopqrstuvwxyz .,:\n")
    vocab = {c: i for i, c in enumerate(chars)}
    for s in SPECIALS:
        vocab[s] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=SPECIALS[:6])
    ids = {s: vocab[s] for s in SPECIALS}
    cfg = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]},
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"]),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=32, window_size=56,
                           fullatt_block_indexes=[1]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(0)
    Qwen2_5_VLForConditionalGeneration(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path


def test_compose_prompt_and_fixed_mode():
    assert compose_prompt("a quiet street at dusk.", "Van Gogh style") == "a quiet street at dusk, Van Gogh style"
    assert compose_prompt("a room", "") == "a room" and compose_prompt("", "ukiyo-e") == "ukiyo-e"
    with pytest.raises(ValueError, match="empty prompt"):
        compose_prompt(" ", "")
    fixed = load_captioner("fixed", prompt="a beach")
    assert isinstance(fixed, FixedCaptioner) and fixed.describe(torch.zeros(1, 8, 8, 3)) == "a beach"
    assert {"fixed", "florence-2", "qwen2.5-vl", "qwen3-vl"} <= set(list_captioners())
    with pytest.raises(ValueError, match="unknown captioner 'gpt'"):
        load_captioner("gpt")
    with pytest.raises(ValueError, match="qwen2.5-vl: model folder not found"):
        load_captioner("qwen2.5-vl", "/nonexistent/folder")


def test_qwen_patching_groups_merge_neighbours():
    assert smart_resize(64, 96, 28, 784, 448 * 448) == (56, 84)
    img = torch.rand(64, 96, 3, generator=torch.Generator().manual_seed(0))
    pv, grid = qwen_vl_pixels(img, 14, 2, 2, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 784, 448 * 448)
    assert grid == [1, 4, 6] and pv.shape == (24, 3 * 2 * 14 * 14)
    import torch.nn.functional as Fn

    x = Fn.interpolate(img.permute(2, 0, 1)[None], size=(56, 84), mode="bicubic", align_corners=False,
                       antialias=True)[0].clamp(0, 1)
    # patch 1 is the right neighbour of patch 0 (same 2x2 merge group), patch 2 the one below
    right = x[:, 0:14, 14:28]
    below = x[:, 14:28, 0:14]
    torch.testing.assert_close(pv[1].reshape(3, 2, 14, 14)[:, 0], right)
    torch.testing.assert_close(pv[2].reshape(3, 2, 14, 14)[:, 1], below)


def test_tiny_qwen_vl_round_trip_describes_frames(tmp_path):
    folder = _tiny_qwen_folder(str(tmp_path / "qwen"))
    cap = load_captioner("qwen2.5-vl", folder, max_new_tokens=5)
    text = cap.describe(torch.rand(3, 64, 96, 3, generator=torch.Generator().manual_seed(1)))
    assert isinstance(text, str)
    assert compose_prompt(text or "x", "Van Gogh style").endswith("Van Gogh style")
    cap.unload()


def test_tiny_florence_2_round_trip_matches_the_transformers_processor(tiny_florence):
    import numpy as np
    from transformers import Florence2Processor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    cap = load_captioner("florence-2", tiny_florence, max_new_tokens=6, num_beams=2)
    assert isinstance(cap, Florence2Captioner) and (cap.height, cap.width) == (64, 64)
    img = np.random.RandomState(0).randint(0, 256, (40, 56, 3)).astype(np.uint8)
    frame = torch.from_numpy(img).float() / 255

    # the token count formula equals what the vision tower really produces
    ids, pixels = cap.inputs(frame)
    feats = cap.model.get_image_features(pixels).pooler_output
    n = florence_image_tokens(cap.model.config.vision_config, 64, 64)
    assert feats.shape[1] == n == 5
    assert florence_image_tokens(cap.model.config.vision_config, 768, 768) == 577  # the released models' count

    # our inputs are exactly what transformers' own processor (PIL backend) builds for the detailed-caption task
    ip = CLIPImageProcessorPil(size={"height": 64, "width": 64}, do_center_crop=False, resample=3,
                               image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    ip.image_seq_length = n
    proc = Florence2Processor(image_processor=ip, tokenizer=cap.tokenizer)
    ref = proc(text="<MORE_DETAILED_CAPTION>", images=img, return_tensors="pt")
    assert torch.equal(ids, ref.input_ids)
    torch.testing.assert_close(pixels, ref.pixel_values, atol=1e-5, rtol=0)

    # and the caption is the one generate() gives on those reference inputs
    expected = cap.model.generate(input_ids=ref.input_ids, pixel_values=ref.pixel_values, max_new_tokens=6,
                                  num_beams=2, do_sample=False)
    text = cap.describe(torch.stack([torch.rand(40, 56, 3), frame]))  # the newest frame is described
    assert text == " ".join(cap.tokenizer.decode(expected[0], skip_special_tokens=True).split())
    assert compose_prompt(text or "x", "Van Gogh style").endswith(", Van Gogh style")
    cap.unload()


def test_florence_2_refuses_remote_code_releases_and_missing_folders(tmp_path):
    with pytest.raises(ValueError, match="florence-2: model folder not found"):
        load_captioner("florence-2", str(tmp_path / "nothing"))
    remote = tmp_path / "Florence-2-large"
    remote.mkdir()
    (remote / "config.json").write_text('{"model_type": "florence2", "auto_map": {"AutoConfig": "x.Config"}}')
    with pytest.raises(ValueError, match="original remote-code release"):
        load_captioner("florence-2", str(remote))
