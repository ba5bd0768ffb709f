"""Captioning: prompt composition, fixed mode, and a tiny Qwen2.5-VL through the real loading path."""

import os

import pytest
import torch

from worldwarp_core.caption import (
    DEFAULT_NEGATIVE,
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


# ----------------------------------------------------------------------------- the official request
# sha256 of the official demo's system prompt (VL_EN_SYS_PROMPT in pose_control.py, qbhan/WorldWarp 0396b80)
OFFICIAL_PROMPT_SHA256 = "0f5080e18ce9f5d33b2c1482e7041bc79c68a3ef07f8b2b9dd63bc00c80d0df0"
# the fetch tool's git mirror of qbhan/WorldWarp beside the checkout, or WORLDWARP_OFFICIAL_MIRROR
OFFICIAL_MIRROR = os.environ.get("WORLDWARP_OFFICIAL_MIRROR", os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".mirror", "qbhan+WorldWarp", "repo"))
# Qwen2.5-VL-Instruct's chat template (its chat_template.json), the text the official processor renders
QWEN_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _ascii_qwen_folder(path):
    """A tiny Qwen2.5-VL whose tokenizer has one token per printable ASCII character (so the system
    prompt and the request are tokenised without unknowns), saved and loaded back by the pack's loader."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    vocab = {chr(c): i for i, c in enumerate(range(32, 127))}
    vocab["\n"] = len(vocab)
    for s in SPECIALS:
        vocab[s] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), "isolated")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=SPECIALS[:6])
    ids = {s: vocab[s] for s in SPECIALS}
    cfg = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                         rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]},
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"]),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=4, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=32, window_size=56,
                           fullatt_block_indexes=[0]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(0)
    Qwen2_5_VLForConditionalGeneration(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path


def _reference_video(frames, video_fps, mean, std):
    """qwen-vl-utils' fetch_video + the Qwen2-VL video processor, written out for this test from their
    descriptions: smart_nframes at 2 fps, linspace(...).round() indices, a uint8 bicubic resize to the
    28-multiple size, the processor's own size bounds, rescale/normalise, (T, 2x2 merge) patch order."""
    import math

    import torch.nn.functional as Fn

    total, H, W = frames.shape[:3]
    n = min(max(total / video_fps * 2.0, 4), math.floor(min(768, total) / 2) * 2)
    n = round(n / 2) * 2
    idx = torch.linspace(0, total - 1, n).round().long()
    video = (frames[idx] * 255).round().permute(0, 3, 1, 2)  # the decoded video, uint8 levels

    def fit(h, w, lo, hi):  # qwen-vl-utils' smart_resize, factor 28
        hb, wb = max(28, round(h / 28) * 28), max(28, round(w / 28) * 28)
        if hb * wb > hi:
            beta = math.sqrt(h * w / hi)
            hb, wb = math.floor(h / beta / 28) * 28, math.floor(w / beta / 28) * 28
        elif hb * wb < lo:
            beta = math.sqrt(lo / (h * w))
            hb, wb = math.ceil(h * beta / 28) * 28, math.ceil(w * beta / 28) * 28
        return hb, wb

    lo = 128 * 28 * 28
    hi = max(min(768 * 28 * 28, 24576 * 28 * 28 / n * 2), int(lo * 1.05))
    h, w = fit(H, W, lo, hi)
    video = Fn.interpolate(video, size=(h, w), mode="bicubic", align_corners=False, antialias=True)
    video = video.clamp(0, 255).round()  # torchvision rounds a uint8 resize
    h2, w2 = fit(h, w, 256 * 28 * 28, 1280 * 28 * 28)  # the official processor's min/max pixels
    if (h2, w2) != (h, w):
        video = Fn.interpolate(video, size=(h2, w2), mode="bicubic", align_corners=False, antialias=True)
    x = (video / 255 - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    t, gh, gw = n // 2, h2 // 14, w2 // 14
    patches = torch.empty(t * gh * gw, 3 * 2 * 14 * 14)
    row = 0
    for ti in range(t):  # block by block: 2x2 neighbours of each merge group in a row, then the next group
        for bi in range(gh // 2):
            for bj in range(gw // 2):
                for di in range(2):
                    for dj in range(2):
                        i, j = 2 * bi + di, 2 * bj + dj
                        cube = x[2 * ti:2 * ti + 2, :, 14 * i:14 * i + 14, 14 * j:14 * j + 14]  # [T, C, P, P]
                        patches[row] = cube.permute(1, 0, 2, 3).reshape(-1)
                        row += 1
    return patches, [t, gh, gw]


def _official_processor(tokenizer, frames, video_fps, mean, std):
    from transformers import Qwen2_5_VLProcessor
    from transformers.image_processing_utils import BatchFeature
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.video_processing_utils import VideoProcessorMixin
    from transformers.video_utils import VideoMetadata

    class ReferenceVideoProcessor(VideoProcessorMixin):
        """The official video path (see _reference_video) in the processor's place: the real
        Qwen2.5-VL processor expands the chat text's video placeholder from the grid it returns."""

        merge_size, temporal_patch_size = 2, 2

        def __call__(self, videos, **kwargs):
            pv, grid = _reference_video(frames, video_fps, mean, std)
            # pre-sampled frames: the processor's fps is its default 2.0 (second_per_grid_ts = 2 / 2)
            return BatchFeature({"pixel_values_videos": pv, "video_grid_thw": torch.tensor([grid]),
                                 "video_metadata": [VideoMetadata(total_num_frames=grid[0] * 2, fps=2.0)]})

    class Processor(Qwen2_5_VLProcessor):
        def check_argument_for_proper_class(self, name, argument):  # its video class needs torchvision
            return None if name == "video_processor" else super().check_argument_for_proper_class(name, argument)

    return Processor(image_processor=Qwen2VLImageProcessorPil(), tokenizer=tokenizer,
                     video_processor=ReferenceVideoProcessor(), chat_template=QWEN_VL_CHAT_TEMPLATE)


@pytest.mark.parametrize("count,video_fps,style", [(49, 16.0, "Van Gogh style"), (1, 10.0, "")])
def test_official_request_is_the_official_token_sequence(tmp_path, count, video_fps, style):
    """The model receives exactly what the official demo's QwenPromptExpander builds: system prompt,
    user turn = [request text, video], chat template, processor; and generate()'s answer verbatim."""
    import hashlib

    from worldwarp_core.caption import OFFICIAL_SYSTEM_PROMPT, CaptionRequest, QwenVLCaptioner

    assert hashlib.sha256(OFFICIAL_SYSTEM_PROMPT.encode()).hexdigest() == OFFICIAL_PROMPT_SHA256
    folder = _ascii_qwen_folder(str(tmp_path / "qwen"))
    cap = load_captioner("qwen2.5-vl", folder)
    assert isinstance(cap, QwenVLCaptioner)
    g = torch.Generator().manual_seed(2)
    frames = (torch.rand(count, 150, 200, 3, generator=g) * 255).round() / 255  # stored frames: uint8 levels
    request = CaptionRequest(style="official", fps=16.0, style_text=style, still_frames=17)

    # the official construction (pose_control.py): the style reference is the request, the video follows it
    text = f'Style Reference: "{style}". Describe this video frame maintaining this style.' if style else ""
    msgs = [{"role": "system", "content": [{"type": "text", "text": OFFICIAL_SYSTEM_PROMPT}]},
            {"role": "user", "content": [{"type": "text", "text": text}, {"video": "chunk.mp4"}]}]
    # the first chunk's caption video is the start image written 17 times (the chunk) at 10 fps
    video = frames if count > 1 else frames.expand(17, -1, -1, -1)
    proc = _official_processor(cap.tokenizer, video, video_fps, cap.mean, cap.std)
    chat = proc.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    ref = proc(text=[chat], videos=[video], padding=True, return_tensors="pt")

    ours = cap.official_inputs(frames, request)
    assert ours["input_ids"].tolist() == ref["input_ids"].tolist()
    assert torch.equal(ours["video_grid_thw"], ref["video_grid_thw"])
    torch.testing.assert_close(ours["pixel_values_videos"], ref["pixel_values_videos"], atol=1e-5, rtol=0)
    assert ours["second_per_grid_ts"].tolist() == [1.0] == list(ref["second_per_grid_ts"])
    n_video = int((ref["input_ids"] == cap.model.config.video_token_id).sum())
    t, gh, gw = ref["video_grid_thw"][0].tolist()
    assert n_video == t * gh * gw // 4 and t == (3 if count > 1 else 2)  # 49 frames at 16 fps: 6; the still: 4

    # describe() hands generate() these inputs, up to 512 new tokens, and returns the answer as decoded
    seen = {}
    original = cap.model.generate

    def recording(**kw):
        seen.update(kw)
        return original(**{**kw, "max_new_tokens": 4})

    cap.model.generate = recording
    answer = cap.describe(frames, request)
    assert seen["input_ids"].tolist() == ref["input_ids"].tolist() and seen["max_new_tokens"] == 512
    assert "do_sample" not in seen  # the model's own generation config, as the official call
    expected = original(**{k: v for k, v in seen.items() if k != "max_new_tokens"}, max_new_tokens=4)
    assert answer == cap.tokenizer.decode(expected[0, ref["input_ids"].shape[1]:], skip_special_tokens=True)
    cap.unload()


@pytest.mark.skipif(not os.path.isdir(OFFICIAL_MIRROR), reason="the official code's mirror is not on this machine")
def test_official_system_prompt_is_quoted_exactly_from_the_official_code():
    import ast
    import subprocess

    from worldwarp_core.caption import OFFICIAL_SYSTEM_PROMPT

    src = subprocess.run(["git", "-C", OFFICIAL_MIRROR, "show", "0396b80:pose_control.py"], capture_output=True,
                         text=True, check=True).stdout
    values = [n.value.value for n in ast.parse(src).body if isinstance(n, ast.Assign)
              and getattr(n.targets[0], "id", None) == "VL_EN_SYS_PROMPT"]
    assert values == [OFFICIAL_SYSTEM_PROMPT]


def test_video_frame_count_and_official_style_refusals():
    from worldwarp_core.caption import CaptionRequest, check_caption_style, official_request, video_frame_count

    assert video_frame_count(81, 30.0) == 6  # an official 81-frame chunk at 30 fps: 5.4 -> 6 frames
    assert video_frame_count(81, 10.0) == 16  # the official first chunk's still video: 16.2 -> 16
    assert video_frame_count(49, 16.0) == 6 and video_frame_count(3, 16.0) == 2  # at least 4, at most the video
    with pytest.raises(ValueError, match="a 1-frame video cannot be sampled at 2 fps"):
        video_frame_count(1, 16.0)
    assert official_request("  ") == ""
    assert official_request("ukiyo-e") == 'Style Reference: "ukiyo-e". Describe this video frame maintaining this style.'
    with pytest.raises(ValueError, match="unknown caption style 'best'"):
        CaptionRequest(style="best")
    with pytest.raises(ValueError, match=r"caption_max_tokens must be a whole number >= 1 \(official: 512\), got 0"):
        CaptionRequest(max_tokens=0)
    check_caption_style(FixedCaptioner("x"), "official")  # no VLM: the fixed prompt is used either way
    florence = Florence2Captioner.__new__(Florence2Captioner)
    with pytest.raises(ValueError, match="caption style 'official' asks a Qwen-VL chat model .* the florence-2 "
                                         "captioner has no such request: use caption style 'pack'"):
        check_caption_style(florence, "official")


def test_prompt_cleaning_as_the_wan_pipeline():
    from worldwarp_core.caption import clean_prompt

    assert clean_prompt("  a  quiet\n\tstreet &amp;amp; a caf&eacute;  ") == "a quiet street & a café"
    assert clean_prompt("Tom &lt;b&gt;") == "Tom <b>"
    assert clean_prompt(DEFAULT_NEGATIVE) == DEFAULT_NEGATIVE  # the official negative prompt is already clean


def test_a_captioner_of_the_one_argument_protocol_still_works():
    from worldwarp_core.caption import CaptionRequest, describe_frames

    class Old:
        name = "mine"

        def describe(self, frames):
            return "a hall"

    frames = torch.zeros(2, 8, 8, 3)
    assert describe_frames(Old(), frames, CaptionRequest()) == "a hall"
    assert describe_frames(FixedCaptioner("x"), frames, CaptionRequest(style="official")) == "x"
    with pytest.raises(ValueError, match=r"the mine captioner's describe\(frames\) takes no request"):
        describe_frames(Old(), frames, CaptionRequest(max_tokens=30))
