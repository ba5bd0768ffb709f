"""WorldWarp core library: long-range, 3D-consistent camera-controlled video generation.

Implements *WorldWarp: Propagating 3D Geometry with Asynchronous Video Diffusion*
(arXiv 2512.19678). Importable and testable without ComfyUI: nothing here imports
``comfy`` or ``folder_paths``.
"""

from .cameras import Cameras

__version__ = "0.1.0"
__all__ = ["Cameras", "__version__"]
