"""Interruption inside a long forward pass: ``check()`` runs before every submodule's forward.

A depth model's or a VAE's single forward over a long clip takes seconds to minutes; the caller's
``check`` (inside ComfyUI: ``comfy.model_management.throw_exception_if_processing_interrupted``,
passed in by the nodes -- this library never imports comfy) raises to stop it there. The hooks
change no number: they only call ``check`` and are removed on exit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

Check = Callable[[], None]


@contextmanager
def checked(module, check: Check | None) -> Iterator[None]:
    """Within the block, ``check()`` runs before the forward of ``module`` and of each of its
    submodules (``module``: a ``torch.nn.Module``, or anything else, then nothing is hooked)."""
    if check is None or not isinstance(module, torch.nn.Module):
        yield
        return
    handles = [m.register_forward_pre_hook(lambda _m, _args: check()) for m in module.modules()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def takes_check(fn) -> bool:
    """Whether ``fn`` (a model's ``encode_video`` / ``decode_video``) takes ``check=`` (the pack's models
    do; a user's own model may not, and is then called without it)."""
    import inspect

    try:
        return "check" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def call_checked(fn, *args, check: Check | None = None, **kwargs):
    """``fn(*args, **kwargs, check=check)`` when ``fn`` takes it, else ``fn(*args, **kwargs)``."""
    if check is not None and takes_check(fn):
        return fn(*args, **kwargs, check=check)
    return fn(*args, **kwargs)


__all__ = ["Check", "call_checked", "checked", "takes_check"]
