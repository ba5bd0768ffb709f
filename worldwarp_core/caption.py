"""Prompts for ST-Diff: a captioner describes the history, the user's style text is appended.

The paper writes each chunk's prompt with a VLM (Qwen2.5-VL) from the latest history frames
(supp. §7); users steer the look with style text ("Van Gogh style", Fig. 8). The ``fixed``
captioner returns the user's prompt and never loads a model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from torch import Tensor

DEFAULT_NEGATIVE = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly "
    "drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy "
    "background, three legs, many people in the background, walking backwards"
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


CAPTIONERS: dict[str, Callable[..., Captioner]] = {"fixed": lambda prompt="", **_: FixedCaptioner(prompt)}


def list_captioners() -> list[str]:
    return sorted(CAPTIONERS)


def load_captioner(name: str, path: str | None = None, **kwargs) -> Captioner:
    if name not in CAPTIONERS:
        raise ValueError(f"unknown captioner {name!r}; choose one of {list_captioners()}")
    return CAPTIONERS[name](path=path, **kwargs)
