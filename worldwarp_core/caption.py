"""Prompts for ST-Diff: a captioner describes the history, the user's style text is appended.

The paper writes each chunk's prompt with a VLM (Qwen2.5-VL) from the latest history frames
(supp. §7); users steer the look with style text ("Van Gogh style", Fig. 8). The ``fixed``
captioner returns the user's prompt and never loads a model; Florence-2 is the small
alternative (0.23B/0.77B parameters against Qwen2.5-VL's 3B+) for low-memory machines.

Two caption styles (``CaptionRequest.style``):

* ``pack``     a short instruction, the first and last history frames as images, 120 tokens; the
               user's style text is appended to the caption (``compose_prompt``).
* ``official`` what the official WorldWarp demo asks its Qwen2.5-VL (pose_control.py,
               ``QwenPromptExpander``): the "3D Scene Analyst" system prompt, the style inside the
               request, the history as a video sampled at 2 fps (qwen-vl-utils' rule, written here in
               torch), up to 512 new tokens, the answer used verbatim.

Prompts reach the text encoder through ``clean_prompt`` (what diffusers' Wan pipeline does to
every prompt: ftfy when installed, HTML unescaped twice, whitespace collapsed).
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor

from .loading import move_to_cpu
from .model_files import register_kind

# the official WorldWarp inference negative prompt (pose_control.py, prompts.negative), verbatim
DEFAULT_NEGATIVE = (
    "Person, people, pet, animals. Bright tones, static camera, overexposed, static, blurred details, subtitles, "
    "style, works, paintings, images, static, overall gray, worst quality, low quality, JPEG compression residue, "
    "ugly, incomplete, extra fingers, poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen "
    "limbs, fused fingers, still picture, messy background, three legs, many people in the background, walking "
    "backwards, unrealistic."
)


# The official WorldWarp demo's VLM system prompt, quoted exactly (a prompt string: the wording is the
# parity): VL_EN_SYS_PROMPT in pose_control.py of the official code (qbhan/WorldWarp, commit 0396b80),
# with its leading and trailing newline.
OFFICIAL_SYSTEM_PROMPT = """
You are an expert **3D Scene Analyst**. Your goal is to write precise, high-quality English captions for static scene reconstruction. You must accurately describe the visible environment and logically **extrapolate** the static geometry that exists beyond the current view to assist in generating novel views.

**Task Requirements:**

1.  **Static Environment Only:** Describe the scene as a completely **static, frozen environment**. Do **not** mention people, animals, or dynamic actions (e.g., walking, moving cars) if not necessary. If living beings are present in the image, ignore them or describe them as static statues only if absolutely necessary.
2.  **Scene Extrapolation (Crucial):** Logically predict the **layout** beyond the visible frame. Hallucinate the continuation of the environment to support novel view synthesis (e.g., *"The tiled pavement continues around the corner,"* or *"The row of trees likely extends further down the road"*).
3.  **Adaptive Style & Atmosphere:**
    * **If Real-World:** Describe the scene as "photorealistic" or "real-life." Focus on the clarity of the atmosphere (e.g., sunny, overcast, indoor lighting).
    * **If Stylized:** Only describe art styles (e.g., oil painting, sketch) if clearly present in the input. Otherwise, assume reality.
4.  **Visual Texture:** Describe textures and materials naturally to define 3D structure (e.g., *"mossy brick walls," "reflective glass windows," "smooth wooden floor"*).
5.  **Output Format:** Always output in **English**. Keep the response between **80-120 words**.

**Example Output:**
> A photorealistic, sun-drenched suburban street corner. A clean asphalt road with faded white markings curves gently to the right, bordered by a concrete sidewalk and well-maintained green lawns. The environment implies a residential neighborhood extending in all directions, with similar houses and fences likely lining the street beyond the frame. Tall oak trees cast static, dappled shadows across the pavement. The lighting is bright and natural, highlighting the rough texture of the road and the softness of the grass.
"""

CaptionStyle = Literal["official", "pack"]
CAPTION_STYLES: tuple[str, ...] = ("official", "pack")
PACK_MAX_TOKENS = 120
OFFICIAL_MAX_TOKENS = 512  # pose_control.py: generate(..., max_new_tokens=512)
# the official demo captions the first chunk from the start image written as a still video of the
# chunk's frames at 10 fps (pose_control.py, save_video_from_tensor's default fps)
OFFICIAL_STILL_FPS = 10.0


@dataclass(frozen=True)
class CaptionRequest:
    """How to caption: the style, the token budget, the frames' rate and the user's style text.

    ``max_tokens`` None: the style's own (pack: the captioner's ``max_new_tokens``, 120 by
    default; official: 512). ``fps``: frame rate of the frames given (official: sampled at 2 fps
    of it). ``still_frames``: a single frame under the official style is the official first
    chunk's still video, this many copies at ``OFFICIAL_STILL_FPS``.
    """

    style: CaptionStyle = "pack"
    max_tokens: int | None = None
    fps: float = 16.0
    style_text: str = ""
    still_frames: int = 81

    def __post_init__(self) -> None:
        if self.style not in CAPTION_STYLES:
            raise ValueError(f"unknown caption style {self.style!r}; choose one of {CAPTION_STYLES}")
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens < 1):
            raise ValueError(f"caption_max_tokens must be a whole number >= 1 (official: 512), got {self.max_tokens!r}")
        if not self.fps > 0 or not math.isfinite(self.fps):
            raise ValueError(f"caption fps must be a positive frame rate (the video's fps), got {self.fps}")
        if not isinstance(self.still_frames, int) or self.still_frames < 1:
            raise ValueError(f"still_frames must be >= 1, got {self.still_frames!r}")


def official_request(style_text: str) -> str:
    """The official demo's user text (pose_control.py, ``QwenPromptExpander.__call__`` with an empty
    prompt): the style reference inside it, or nothing when there is no style text."""
    style_text = style_text.strip()
    if not style_text:
        return ""
    return f"Style Reference: \"{style_text}\". Describe this video frame maintaining this style."


def clean_prompt(text: str) -> str:
    """A prompt as diffusers' Wan pipeline gives it to UMT5 (``prompt_clean``): ftfy's text fixing
    when ftfy is installed (it is not a dependency: without it mojibake is left as is), HTML
    entities unescaped twice, runs of whitespace made one space, the ends stripped."""
    try:
        import ftfy
    except ImportError:
        ftfy = None
    if ftfy is not None:
        text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


class Captioner(Protocol):
    name: str

    def describe(self, frames: Tensor, request: CaptionRequest | None = None) -> str:
        """A one-paragraph description of frames ``[F, H, W, 3]`` in 0..1 (``request``: how)."""
        ...

    def unload(self) -> None: ...


def describe_frames(captioner, frames: Tensor, request: CaptionRequest) -> str:
    """``captioner.describe(frames, request)``; a captioner written for the older one-argument
    protocol (``describe(frames)``) is called without the request when the request is the default
    pack one, and refused otherwise (it cannot honour another style or token budget)."""
    import inspect

    try:
        params = inspect.signature(captioner.describe).parameters.values()
        takes = len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]) >= 2 or any(
            p.kind == p.VAR_POSITIONAL for p in params)
    except (TypeError, ValueError):
        takes = True
    if takes:
        return captioner.describe(frames, request)
    if request.style != "pack" or request.max_tokens is not None:
        raise ValueError(f"the {getattr(captioner, 'name', type(captioner).__name__)} captioner's describe(frames) "
                         "takes no request, so caption style / max tokens cannot reach it: use caption style 'pack' "
                         "with the tokens unset, or give describe a second argument (CaptionRequest)")
    return captioner.describe(frames)


def check_caption_style(captioner, style: str) -> None:
    """The official style needs a chat VLM of the Qwen-VL family (or no VLM at all: the fixed prompt)."""
    if style not in CAPTION_STYLES:
        raise ValueError(f"unknown caption style {style!r}; choose one of {CAPTION_STYLES}")
    if style == "official" and captioner is not None and not isinstance(captioner, (FixedCaptioner, QwenVLCaptioner)):
        raise ValueError(f"caption style 'official' asks a Qwen-VL chat model (qwen2.5-vl, as the official demo, or "
                         f"qwen3-vl); the {getattr(captioner, 'name', type(captioner).__name__)} captioner has no "
                         "such request: use caption style 'pack' with it, or load a Qwen-VL captioner")


def compose_prompt(caption: str, style: str = "") -> str:
    """``"<caption>, <style>"``: the user's style text appended to the description."""
    caption, style = caption.strip().rstrip(",. "), style.strip().strip(",. ")
    if not caption and not style:
        raise ValueError("empty prompt: give a prompt, a style, or a captioner that describes the frames")
    if not style:
        return caption
    if not caption:
        return style
    return f"{caption}, {style}"


class FixedCaptioner:
    """Returns a fixed prompt; loads nothing."""

    name = "fixed"

    def __init__(self, prompt: str = "") -> None:
        self.prompt = prompt

    def describe(self, frames: Tensor, request: CaptionRequest | None = None) -> str:
        return self.prompt

    def unload(self) -> None:
        return None


CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
INSTRUCTION = ("Describe this scene in one paragraph for a video generator: the place, the objects, their "
               "materials and colours, the lighting and the atmosphere. Do not mention the camera.")


def _read_json(path: str | None) -> dict:
    if path and os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    return {}


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Sizes that are multiples of ``factor`` (patch x merge) with an area between the pixel bounds,
    keeping the aspect ratio (the Qwen-VL family's image sizing, written from its description)."""
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def qwen_vl_pixels(image: Tensor, patch: int, merge: int, temporal: int, mean, std, min_pixels: int,
                   max_pixels: int) -> tuple[Tensor, list[int]]:
    """One image ``[H, W, 3]`` -> Qwen-VL ``pixel_values [N, 3·T·P·P]`` and its grid ``[t, h, w]``.

    The image is resized (``smart_resize``), normalised, repeated ``temporal`` times (a still
    image is a one-step video) and cut into ``P×P`` patches ordered so that each ``merge×merge``
    group of neighbours is contiguous, as the vision tower merges them.
    """
    import torch.nn.functional as Fn

    H, W = image.shape[:2]
    h, w = smart_resize(H, W, patch * merge, min_pixels, max_pixels)
    x = Fn.interpolate(image.permute(2, 0, 1)[None].float(), size=(h, w), mode="bicubic", align_corners=False,
                       antialias=True)[0].clamp(0, 1)
    x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    x = x[None].expand(temporal, 3, h, w)
    gh, gw = h // patch, w // patch
    x = x.reshape(1, temporal, 3, gh // merge, merge, patch, gw // merge, merge, patch)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(gh * gw, 3 * temporal * patch * patch), [1, gh, gw]


# qwen-vl-utils' video rules, as the official demo runs them (src/qwen/utils.py of the official code:
# FPS, FRAME_FACTOR, FPS_MIN_FRAMES, FPS_MAX_FRAMES, VIDEO_MIN/MAX/TOTAL_PIXELS; pixel bounds written
# here in tokens of factor x factor pixels, factor = patch x merge = 28 for Qwen2.5-VL)
VIDEO_FPS = 2.0
FRAME_FACTOR = 2
VIDEO_MIN_FRAMES, VIDEO_MAX_FRAMES = 4, 768
VIDEO_MIN_TOKENS, VIDEO_MAX_TOKENS, VIDEO_TOTAL_TOKENS = 128, 768, 24576
# the official demo's processor: AutoProcessor.from_pretrained(min_pixels=256*28*28, max_pixels=1280*28*28)
PROCESSOR_MIN_TOKENS, PROCESSOR_MAX_TOKENS = 256, 1280


def video_frame_count(total: int, fps: float) -> int:
    """How many frames of a ``total``-frame video at ``fps`` qwen-vl-utils samples at 2 fps
    (``smart_nframes``): at least 4, at most 768 and the video's own count, an even number."""
    min_frames = math.ceil(VIDEO_MIN_FRAMES / FRAME_FACTOR) * FRAME_FACTOR
    max_frames = math.floor(min(VIDEO_MAX_FRAMES, total) / FRAME_FACTOR) * FRAME_FACTOR
    n = min(max(total / fps * VIDEO_FPS, min_frames), max_frames)
    n = round(n / FRAME_FACTOR) * FRAME_FACTOR
    if not FRAME_FACTOR <= n <= total:
        raise ValueError(f"a {total}-frame video cannot be sampled at {VIDEO_FPS:g} fps for the VLM (it needs at "
                         f"least {FRAME_FACTOR} frames); give more history frames")
    return n


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """``[F, 3, h, w]`` resized bicubically with antialiasing (what torchvision's tensor resize does)."""
    import torch.nn.functional as Fn

    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return Fn.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)


def qwen_video_pixels(frames: Tensor, fps: float, patch: int, merge: int, temporal: int, mean, std
                      ) -> tuple[Tensor, list[int], list[int]]:
    """A video ``[F, H, W, 3]`` (0..1, uint8 levels) at ``fps`` -> Qwen-VL ``pixel_values_videos
    [N, 3·T·P·P]``, its grid ``[t, h, w]`` and the sampled frame indices, as the official demo
    prepares its caption video.

    qwen-vl-utils: ``video_frame_count`` frames at ``linspace(0, F-1, n).round()``, resized to
    ``smart_resize`` with the per-frame bound ``max(min(768, 24576·2/n), 1.05·128)`` tokens
    (the video is uint8, so the resize is rounded to levels); then the processor's own bounds
    (256..1280 tokens, a resize only when they move the size), rescale, normalise, and
    ``T``-frame groups cut into ``P×P`` patches with each ``merge×merge`` group contiguous.
    """
    F, H, W = frames.shape[:3]
    n = video_frame_count(F, fps)
    idx = torch.linspace(0, F - 1, n).round().long()
    f = patch * merge
    video = frames[idx].permute(0, 3, 1, 2).float() * 255  # [n, 3, H, W] in levels
    min_px = VIDEO_MIN_TOKENS * f * f
    max_px = max(min(VIDEO_MAX_TOKENS * f * f, VIDEO_TOTAL_TOKENS * f * f / n * FRAME_FACTOR), int(min_px * 1.05))
    h, w = smart_resize(H, W, f, min_px, max_px)
    video = _resize(video, (h, w)).clamp(0, 255).round()
    h2, w2 = smart_resize(h, w, f, PROCESSOR_MIN_TOKENS * f * f, PROCESSOR_MAX_TOKENS * f * f)
    video = _resize(video, (h2, w2))
    x = (video / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    if pad := -n % temporal:  # whole temporal patches: the last frame repeated
        x = torch.cat([x, x[-1:].expand(pad, -1, -1, -1)])
    gt, gh, gw = x.shape[0] // temporal, h2 // patch, w2 // patch
    x = x.reshape(gt, temporal, 3, gh // merge, merge, patch, gw // merge, merge, patch)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(gt * gh * gw, 3 * temporal * patch * patch), [gt, gh, gw], idx.tolist()


class QwenVLCaptioner:
    """Qwen2.5-VL / Qwen3-VL on transformers, with our own image and video preprocessing (no
    AutoProcessor, whose processors import torchvision). Style ``pack``: the first and last history
    frames as images; ``official``: the official demo's request with the history as a video."""

    def __init__(self, path: str | None = None, device: str = "cpu", dtype: torch.dtype = torch.float32,
                 model=None, tokenizer=None, max_new_tokens: int = PACK_MAX_TOKENS, max_pixels: int = 448 * 448,
                 instruction: str = INSTRUCTION, name: str = "qwen2.5-vl") -> None:
        self.name = name
        if model is None or tokenizer is None:
            if path is None or not os.path.isdir(path):
                raise ValueError(f"{name}: model folder not found: {path}; put a local Qwen-VL folder (e.g. "
                                 "Qwen2.5-VL-3B-Instruct) in models/worldwarp")
            from transformers import AutoModelForImageTextToText, AutoTokenizer

            model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True, torch_dtype=dtype)
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model, self.tokenizer = model.eval(), tokenizer
        self.device, self.max_new_tokens, self.instruction = device, max_new_tokens, instruction
        v = model.config.vision_config
        self.patch, self.merge = v.patch_size, v.spatial_merge_size
        self.temporal = getattr(v, "temporal_patch_size", 2)
        pre = _read_json(os.path.join(path, "preprocessor_config.json") if path else None)
        self.mean, self.std = tuple(pre.get("image_mean", CLIP_MEAN)), tuple(pre.get("image_std", CLIP_STD))
        self.max_pixels = max_pixels

    def _token(self, key: str) -> str:
        return self.tokenizer.convert_ids_to_tokens(getattr(self.model.config, key))

    @torch.no_grad()
    def describe(self, frames: Tensor, request: CaptionRequest | None = None) -> str:
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be [F, H, W, 3], got {list(frames.shape)}")
        request = request or CaptionRequest()
        if request.style == "official":
            return self._describe_official(frames, request)
        picks = [frames[0], frames[-1]] if frames.shape[0] > 1 else [frames[0]]
        pixels, grids, parts = [], [], []
        image_token, start, end = (self._token(k) for k in ("image_token_id", "vision_start_token_id",
                                                            "vision_end_token_id"))
        for img in picks:
            pv, grid = qwen_vl_pixels(img, self.patch, self.merge, self.temporal, self.mean, self.std,
                                      (self.patch * self.merge) ** 2, self.max_pixels)
            pixels.append(pv)
            grids.append(grid)
            parts.append(start + image_token * (grid[0] * grid[1] * grid[2] // self.merge**2) + end)
        text = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n" + "".join(parts)
                + self.instruction + "<|im_end|>\n<|im_start|>assistant\n")
        enc = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        model = self.model.to(self.device)
        dtype = next(model.parameters()).dtype
        out = model.generate(input_ids=enc.input_ids.to(self.device), attention_mask=enc.attention_mask.to(self.device),
                             pixel_values=torch.cat(pixels).to(self.device, dtype),
                             image_grid_thw=torch.tensor(grids, device=self.device),
                             max_new_tokens=request.max_tokens or self.max_new_tokens, do_sample=False)
        new = out[0, enc.input_ids.shape[1]:]
        return " ".join(self.tokenizer.decode(new, skip_special_tokens=True).split())

    def official_inputs(self, frames: Tensor, request: CaptionRequest) -> dict:
        """The official demo's request for ``frames [F, H, W, 3]``: the chat text (system prompt, then
        the user turn: the request text, then the video) tokenised, and the video's pixels.

        Returns ``input_ids [1, L]``, ``attention_mask``, ``pixel_values_videos``, ``video_grid_thw
        [1, 3]`` and, for Qwen2.5-VL, ``second_per_grid_ts`` (T / 2 fps, the processor's default).
        A single frame is the official first chunk's still video (``request.still_frames`` copies
        at 10 fps)."""
        fps = request.fps
        if frames.shape[0] == 1:
            frames, fps = frames.expand(request.still_frames, -1, -1, -1), OFFICIAL_STILL_FPS
        pixels, grid, idx = qwen_video_pixels(frames.float().cpu(), fps, self.patch, self.merge, self.temporal,
                                              self.mean, self.std)
        start, end, pad = (self._token(k) for k in ("vision_start_token_id", "vision_end_token_id",
                                                    "video_token_id"))
        per_step = grid[1] * grid[2] // self.merge**2
        if getattr(self.model.config, "model_type", "") == "qwen3_vl":
            # Qwen3-VL's processor: each temporal patch with its time stamp, the mean of its frames' times
            idx = idx + [idx[-1]] * (-len(idx) % self.temporal)
            times = [(idx[i] + idx[i + self.temporal - 1]) / 2 / fps for i in range(0, len(idx), self.temporal)]
            video = "".join(f"<{t:.1f} seconds>" + start + pad * per_step + end for t in times)
        else:
            video = start + pad * (grid[0] * per_step) + end
        text = ("<|im_start|>system\n" + OFFICIAL_SYSTEM_PROMPT + "<|im_end|>\n<|im_start|>user\n"
                + official_request(request.style_text) + video + "<|im_end|>\n<|im_start|>assistant\n")
        enc = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        out = {"input_ids": enc.input_ids, "attention_mask": enc.attention_mask, "pixel_values_videos": pixels,
               "video_grid_thw": torch.tensor([grid])}
        if getattr(self.model.config, "model_type", "") == "qwen2_5_vl":
            out["second_per_grid_ts"] = torch.tensor([self.temporal / VIDEO_FPS])
        return out

    def _describe_official(self, frames: Tensor, request: CaptionRequest) -> str:
        inputs = self.official_inputs(frames, request)
        model = self.model.to(self.device)
        dtype = next(model.parameters()).dtype
        inputs = {k: v.to(self.device, dtype) if k == "pixel_values_videos" else v.to(self.device)
                  for k, v in inputs.items()}
        # the official call: the model's own generation config (Qwen2.5-VL-Instruct's: top-k 1, repetition
        # penalty 1.05), only the token budget set; the RNG is forked so a sampling config repeats on resume
        devices = [torch.device(self.device)] if torch.device(self.device).type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(0)
            out = model.generate(**inputs, max_new_tokens=request.max_tokens or OFFICIAL_MAX_TOKENS)
        return self.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    def unload(self) -> None:
        move_to_cpu(self.model)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FLORENCE_TASK = "Describe with a paragraph what is shown in the image."  # its <MORE_DETAILED_CAPTION> task


def pil_resize_normalise(image: Tensor, height: int, width: int, mean, std) -> Tensor:
    """``[H, W, 3]`` in 0..1 -> ``[3, height, width]``: 8-bit, PIL bicubic resize, ``/255``, normalised
    (what Florence-2's image processor does, without the torchvision it imports)."""
    import numpy as np
    from PIL import Image

    arr = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    pil = Image.fromarray(arr).resize((width, height), Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def florence_image_tokens(vision_config, height: int, width: int) -> int:
    """Image tokens Florence-2 produces for one ``height x width`` image: the DaViT stages' conv
    strides give an ``h x w`` grid of spatial tokens, plus one temporal token (577 at 768x768)."""
    h, w = height, width
    for k, s, p in zip(vision_config.patch_size, vision_config.patch_stride, vision_config.patch_padding):
        h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    return h * w + 1


class Florence2Captioner:
    """Florence-2 (transformers' native ``Florence2ForConditionalGeneration``; the converted
    ``florence-community/Florence-2-base|large`` folders) describing the newest history frame with
    its detailed-caption task. Preprocessing is ours (PIL resize + ImageNet normalisation)."""

    name = "florence-2"

    def __init__(self, path: str | None = None, device: str = "cpu", dtype: torch.dtype = torch.float32,
                 model=None, tokenizer=None, max_new_tokens: int = PACK_MAX_TOKENS, num_beams: int = 3,
                 task: str = FLORENCE_TASK) -> None:
        if model is None or tokenizer is None:
            if path is None or not os.path.isdir(path):
                raise ValueError(f"florence-2: model folder not found: {path}; put a local Florence-2 folder in "
                                 "transformers format (e.g. florence-community/Florence-2-large) in models/worldwarp")
            if "auto_map" in _read_json(os.path.join(path, "config.json")):
                raise ValueError(f"florence-2: {path} is the original remote-code release (its config.json has "
                                 "'auto_map'), which would run code from the folder; use the transformers-format "
                                 "conversion (florence-community/Florence-2-base or -large) instead")
            from transformers import AutoTokenizer, Florence2ForConditionalGeneration

            model = Florence2ForConditionalGeneration.from_pretrained(path, local_files_only=True, dtype=dtype)
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model, self.tokenizer = model.eval(), tokenizer
        self.device, self.max_new_tokens, self.num_beams, self.task = device, max_new_tokens, num_beams, task
        pre = _read_json(os.path.join(path, "preprocessor_config.json") if path else None)
        size = pre.get("size", {}) or {}
        self.height, self.width = int(size.get("height", 768)), int(size.get("width", 768))
        self.mean = tuple(pre.get("image_mean", IMAGENET_MEAN))
        self.std = tuple(pre.get("image_std", IMAGENET_STD))

    def inputs(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """``(input_ids [1, L], pixel_values [1, 3, h, w])`` for one ``[H, W, 3]`` image: the image
        placeholder tokens, then ``<s>task</s>``."""
        pixels = pil_resize_normalise(image, self.height, self.width, self.mean, self.std)[None]
        n = florence_image_tokens(self.model.config.vision_config, self.height, self.width)
        tok = self.tokenizer
        text = tok(self.task, add_special_tokens=False).input_ids
        ids = [self.model.config.image_token_id] * n + [tok.bos_token_id] + text + [tok.eos_token_id]
        return torch.tensor([ids]), pixels

    @torch.no_grad()
    def describe(self, frames: Tensor, request: CaptionRequest | None = None) -> str:
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be [F, H, W, 3], got {list(frames.shape)}")
        request = request or CaptionRequest()
        check_caption_style(self, request.style)
        ids, pixels = self.inputs(frames[-1])
        model = self.model.to(self.device)
        dtype = next(model.parameters()).dtype
        out = model.generate(input_ids=ids.to(self.device), pixel_values=pixels.to(self.device, dtype),
                             max_new_tokens=request.max_tokens or self.max_new_tokens, num_beams=self.num_beams,
                             do_sample=False)
        return " ".join(self.tokenizer.decode(out[0], skip_special_tokens=True).split())

    def unload(self) -> None:
        move_to_cpu(self.model)


CAPTIONERS: dict[str, Callable[..., Captioner]] = {
    "fixed": lambda prompt="", **_: FixedCaptioner(prompt),
    "florence-2": lambda path=None, **kw: Florence2Captioner(path, **kw),
    "qwen2.5-vl": lambda path=None, **kw: QwenVLCaptioner(path, name="qwen2.5-vl", **kw),
    "qwen3-vl": lambda path=None, **kw: QwenVLCaptioner(path, name="qwen3-vl", **kw),
}


def register_captioner(name: str, factory: Callable[..., Captioner],
                       folder_check: Callable[[str], str | None] | None = None) -> None:
    """Add a captioner: its factory, and ``folder_check(folder)`` saying why a folder for it is
    unusable (None: the usual transformers folder check), which ``model_files.run_needs`` uses."""
    CAPTIONERS[name] = factory
    register_kind("captioner", name, folder_check)


for _name in CAPTIONERS:
    register_kind("captioner", _name)


def list_captioners() -> list[str]:
    return sorted(CAPTIONERS)


def load_captioner(name: str, path: str | None = None, **kwargs) -> Captioner:
    if name not in CAPTIONERS:
        raise ValueError(f"unknown captioner {name!r}; choose one of {list_captioners()}")
    return CAPTIONERS[name](path=path, **kwargs)
