"""The core library imports without ComfyUI and never imports comfy/folder_paths."""

import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORBIDDEN = {"comfy", "folder_paths", "comfy_api", "comfy_extras", "server", "nodes"}


def _imported_roots(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], node.lineno


def test_core_never_imports_comfy():
    offenders = []
    for dirpath, _, files in os.walk(os.path.join(ROOT, "worldwarp_core")):
        for f in files:
            if f.endswith(".py"):
                p = os.path.join(dirpath, f)
                offenders += [f"{p}:{ln} imports {m}" for m, ln in _imported_roots(p) if m in FORBIDDEN]
    assert offenders == []


def test_core_imports_in_a_clean_interpreter():
    code = (
        "import sys, worldwarp_core, pkgutil, importlib\n"
        "for m in pkgutil.walk_packages(worldwarp_core.__path__, 'worldwarp_core.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('comfy', 'folder_paths', 'comfy_api')]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_requirements_pull_no_torch_build():
    reqs = open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8").read().lower()
    lines = [ln.split("#")[0].strip() for ln in reqs.splitlines()]
    names = {ln.split(">")[0].split("=")[0].split("<")[0].strip() for ln in lines if ln}
    assert not names & {"torch", "torchvision", "torchaudio"}


def test_web_extension_is_registered_once():
    """ComfyUI serves a pack's web folder for WEB_DIRECTORY (under the folder name) and again for
    pyproject's ``[tool.comfy] web`` (under the project name); both would load web/*.js twice."""
    import tomllib

    conf = tomllib.load(open(os.path.join(ROOT, "pyproject.toml"), "rb"))
    init = open(os.path.join(ROOT, "__init__.py"), encoding="utf-8").read()
    assert 'WEB_DIRECTORY = "./web"' in init
    assert "web" not in conf["tool"]["comfy"]


def test_license_file_matches_pyproject():
    import tomllib

    conf = tomllib.load(open(os.path.join(ROOT, "pyproject.toml"), "rb"))
    text = open(os.path.join(ROOT, "LICENSE"), encoding="utf-8").read()
    assert conf["project"]["license"]["text"] == "Apache-2.0"
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
