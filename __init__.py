"""WorldWarp for ComfyUI: node pack entry point.

ComfyUI imports this file; it registers the pack's nodes through ``comfy_entrypoint`` and
serves ``web/`` for the frontend extensions. The maths lives in ``worldwarp_core``.
"""

import os
import sys

WEB_DIRECTORY = "./web"

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # worldwarp_core is imported by absolute name from the nodes
    sys.path.append(_HERE)

# ComfyUI imports this file as a package. pytest imports it alone (no package) when the checkout's
# folder name is not a Python identifier (a clone named ComfyUI-WorldWarp); then there is nothing to register.
if __package__:
    try:  # inside ComfyUI
        from .nodes import comfy_entrypoint  # noqa: F401
    except ImportError as _e:  # outside ComfyUI (tests, CLI): the core library still imports
        if "comfy" not in str(_e) and "folder_paths" not in str(_e):
            raise
