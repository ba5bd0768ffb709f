"""Where the real-ComfyUI tests find the ComfyUI tree that ../shared/tools/comfy/setup.sh makes
(``COMFY_BASE``, ``COMFYUI_DIR``, ``COMFY_VENV`` override it) and on which port they start its server
(``COMFY_TEST_PORT``: several checkouts can run these tests side by side, each with its own tree and
port). Without a tree those tests skip with ``NO_TREE``."""

import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESS = os.path.join(os.path.dirname(ROOT), "shared", "tools", "comfy")
COMFY_BASE = os.environ.get("COMFY_BASE", os.path.dirname(ROOT))
COMFYUI_DIR = os.environ.get("COMFYUI_DIR", os.path.join(COMFY_BASE, "comfyui"))
COMFY_PY = os.path.join(os.environ.get("COMFY_VENV", os.path.join(COMFY_BASE, "comfy-venv")), "bin", "python")
HAVE_COMFY = (os.path.isfile(os.path.join(COMFYUI_DIR, "main.py")) and os.path.isfile(COMFY_PY)
              and os.path.isfile(os.path.join(HARNESS, "run_workflow.py"))
              and os.path.exists(os.path.join(COMFYUI_DIR, "custom_nodes", "worldwarp")))
NO_TREE = "no ComfyUI tree with this pack linked (run ../shared/tools/comfy/setup.sh to enable)"
needs_comfy = pytest.mark.skipif(not HAVE_COMFY, reason=NO_TREE)


def server_url(default_port: int, variable: str = "COMFY_TEST_PORT") -> tuple[int, str]:
    """``(port, url)`` of the server a test module starts."""
    port = int(os.environ.get(variable, str(default_port)))
    return port, f"http://127.0.0.1:{port}"
