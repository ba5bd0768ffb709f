"""WorldWarp ComfyUI nodes. Inside ComfyUI ``comfy_entrypoint`` registers them (V3 schema);
outside it, ``nodes.ops`` and ``nodes.specs`` still import (tests, scripts)."""

try:
    import comfy_api.latest  # noqa: F401
except ImportError:  # not running inside ComfyUI
    pass
else:
    from ._v3 import NODES, comfy_entrypoint  # noqa: F401
