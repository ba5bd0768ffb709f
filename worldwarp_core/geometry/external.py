"""Optional backends users install themselves: TTT3R and Depth Anything 3.

TTT3R (the paper's geometry model) is not on PyPI and its CUT3R part is non-commercial: users
who have its repository and checkpoint give both paths; we import it from there and copy none of
its code. Depth Anything 3 comes from the ``depth-anything-3`` package when it is installed.
Both refuse clearly when absent.
"""

from __future__ import annotations

import importlib
import os
import sys

import torch

from .base import register


class _Unavailable(RuntimeError):
    pass


def _import_from_repo(repo: str | None, module: str, what: str):
    if repo is None or not os.path.isdir(repo):
        raise ValueError(f"{what}: give the path of your local {what} repository checkout (repo_path); "
                         f"'{repo}' is not a folder. It is not installed from PyPI.")
    if repo not in sys.path:
        sys.path.insert(0, repo)
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"{what}: could not import '{module}' from {repo} ({e}); check the checkout and its "
                         "requirements") from None


@register("ttt3r", "give the TTT3R repository checkout (repo_path) and its checkpoint file (path)")
def _ttt3r(path=None, device="cpu", dtype=torch.float32, repo_path=None, **kw):
    if path is None or not os.path.isfile(path):
        raise ValueError(f"ttt3r: checkpoint file not found: {path}; download it from the TTT3R project yourself")
    _import_from_repo(repo_path, "src.dust3r.model", "TTT3R")
    raise ValueError("ttt3r: the repository imported, but this pack has no adapter for its inference API in this "
                     "version; use 'depth-pro' or 'depth-anything-v2' with pose_source='requested'")


@register("depth-anything-3", "install the depth-anything-3 package and give its local model folder")
def _da3(path=None, device="cpu", dtype=torch.float32, **kw):
    try:
        importlib.import_module("depth_anything_3")
    except ImportError:
        raise ValueError("depth-anything-3: the 'depth-anything-3' package is not installed; "
                         "pip install it yourself, or choose another geometry backend") from None
    raise ValueError("depth-anything-3: the package is installed but this pack has no adapter for it in this "
                     "version; use 'depth-pro' or 'depth-anything-v2'")
