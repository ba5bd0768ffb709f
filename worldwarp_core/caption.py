"""Prompts for ST-Diff: a captioner describes the history, the user's style text is appended.

The paper writes each chunk's prompt with a VLM (Qwen2.5-VL) from the latest history frames
(supp. §7); users steer the look with style text ("Van Gogh style", Fig. 8). The ``fixed``
captioner returns the user's prompt and never loads a model; Florence-2 is the small
alternative (0.23B/0.77B parameters against Qwen2.5-VL's 3B+) for low-memory machines.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import Protocol

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


class Captioner(Protocol):
    name: str

    def describe(self, frames: Tensor) -> str:
        """A one-paragraph description of frames ``[F, H, W, 3]`` in 0..1."""
        ...

    def unload(self) -> None: ...


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

    def describe(self, frames: Tensor) -> str:
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


class QwenVLCaptioner:
    """Qwen2.5-VL / Qwen3-VL on transformers, with our own image preprocessing (no AutoProcessor,
    whose image processors import torchvision). Describes the first and last history frames."""

    def __init__(self, path: str | None = None, device: str = "cpu", dtype: torch.dtype = torch.float32,
                 model=None, tokenizer=None, max_new_tokens: int = 120, max_pixels: int = 448 * 448,
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

    @torch.no_grad()
    def describe(self, frames: Tensor) -> str:
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be [F, H, W, 3], got {list(frames.shape)}")
        picks = [frames[0], frames[-1]] if frames.shape[0] > 1 else [frames[0]]
        pixels, grids, parts = [], [], []
        image_token = self.tokenizer.convert_ids_to_tokens(self.model.config.image_token_id)
        start = self.tokenizer.convert_ids_to_tokens(self.model.config.vision_start_token_id)
        end = self.tokenizer.convert_ids_to_tokens(self.model.config.vision_end_token_id)
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
                             max_new_tokens=self.max_new_tokens, do_sample=False)
        new = out[0, enc.input_ids.shape[1]:]
        return " ".join(self.tokenizer.decode(new, skip_special_tokens=True).split())

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
                 model=None, tokenizer=None, max_new_tokens: int = 120, num_beams: int = 3,
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
    def describe(self, frames: Tensor) -> str:
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be [F, H, W, 3], got {list(frames.shape)}")
        ids, pixels = self.inputs(frames[-1])
        model = self.model.to(self.device)
        dtype = next(model.parameters()).dtype
        out = model.generate(input_ids=ids.to(self.device), pixel_values=pixels.to(self.device, dtype),
                             max_new_tokens=self.max_new_tokens, num_beams=self.num_beams, do_sample=False)
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
