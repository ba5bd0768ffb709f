"""Which model files a run needs, where they were looked for, and where to get the missing ones.

One function, :func:`run_needs`, decides from a run's options (geometry backend, captioner, pose
source, training-free); ``check-models`` prints its answer and ``generate`` refuses to start,
before anything loads, while a required file is missing (:func:`require`). Only file names,
folder listings and ``.safetensors`` headers are read here: it takes milliseconds.

Sources are public model repositories (Hugging Face ids unless a URL is given); nothing is
downloaded by this package.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from .loading import WEIGHT_SUFFIXES, safetensors_problem, weights_problem  # noqa: F401 - public here too

# folder names under models/worldwarp/ when --geometry-path / --captioner-path are not given
DEFAULT_FOLDERS = {
    "depth-pro": "depth-pro-hf", "depth-anything-v2": "depth-anything-v2-small-hf", "ttt3r": "TTT3R",
    "depth-anything-3": "DA3-BASE", "florence-2": "Florence-2-large", "qwen2.5-vl": "Qwen2.5-VL-3B-Instruct",
    "qwen3-vl": "Qwen3-VL-2B-Instruct",
}
WAN_REPACKAGED = "Comfy-Org/Wan_2.1_ComfyUI_repackaged"
SOURCES = {
    "transformer": f"{WAN_REPACKAGED} (split_files/diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors)",
    "worldwarp": "imsuperkong/worldwarp (worldwarp_latest.ckpt)",
    "vae": f"{WAN_REPACKAGED} (split_files/vae/wan_2.1_vae.safetensors)",
    "text_encoder": f"{WAN_REPACKAGED} (split_files/text_encoders/umt5_xxl_fp16.safetensors)",
    "tokenizer": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers (its tokenizer/ folder)",
    "diffusers": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers (the whole repository)",
    "depth-pro": "apple/DepthPro-hf",
    "depth-anything-v2": "depth-anything/Depth-Anything-V2-Small-hf (or -Base-hf / -Large-hf)",
    "ttt3r": "git clone https://github.com/Inception3D/TTT3R, plus cut3r_512_dpt_4_64.pth from its README in src/",
    "depth-anything-3": "depth-anything/DA3-BASE (and pip install depth-anything-3 yourself)",
    "florence-2": "florence-community/Florence-2-large (transformers format)",
    "qwen2.5-vl": "Qwen/Qwen2.5-VL-3B-Instruct",
    "qwen3-vl": "Qwen/Qwen3-VL-2B-Instruct",
}
# ComfyUI layout: component, subfolder of models/, accepted names
COMFY_FILES = [
    ("transformer", "diffusion_models", ("wan2.1_t2v_1.3B_fp16.safetensors", "wan2.1_t2v_1.3B_bf16.safetensors")),
    ("worldwarp", "diffusion_models", ("worldwarp_latest.ckpt",)),
    ("vae", "vae", ("wan_2.1_vae.safetensors",)),
    ("text_encoder", "text_encoders", ("umt5_xxl_fp16.safetensors", "umt5_xxl_fp8_e4m3fn_scaled.safetensors")),
    ("tokenizer", "worldwarp", ("umt5-xxl-tokenizer",)),
]
POSE_ESTIMATORS = ("ttt3r", "depth-anything-3")  # backends that estimate camera poses
TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "tokenizer.model")


@dataclass(frozen=True)
class Need:
    """One model file or folder a run uses."""

    component: str  # transformer, worldwarp, vae, text_encoder, tokenizer, diffusers, geometry, captioner
    required: bool  # False: optional, or not used with these options
    looked_in: str  # the file or folder checked
    expected: tuple[str, ...]  # accepted names
    source: str  # where to get it
    found: str | None = None  # the path found
    problem: str | None = None  # found but unusable (empty folder, truncated file, option conflict)

    @property
    def ok(self) -> bool:
        return self.found is not None and self.problem is None

    def describe(self) -> str:
        """``component: what is wrong, where, and where to get it`` (one line)."""
        if self.problem:
            return f"{self.component}: {self.problem}; get it from {self.source}"
        return (f"{self.component}: {' or '.join(self.expected)} not found in {self.looked_in}; "
                f"get it from {self.source}")


FolderCheck = Callable[[str], "str | None"]
# the helper models a run can use, registered where each kind is defined (``geometry.base.register``,
# ``caption.register_captioner``): role -> name -> why a found folder is unusable (None: the usual
# transformers folder check; captioner "fixed" needs no folder). Listed here, not imported from there,
# so this module stays below the modules that load models.
KINDS: dict[str, dict[str, FolderCheck | None]] = {"geometry": {}, "captioner": {}}


def register_kind(role: str, name: str, check: FolderCheck | None = None) -> None:
    """Make ``name`` a known geometry backend or captioner for :func:`run_needs` (``check(folder)``
    says why a folder found for it is unusable, or None)."""
    if role not in KINDS:
        raise ValueError(f"unknown model role {role!r}; use one of {', '.join(KINDS)}")
    KINDS[role][name] = check


def _known(role: str) -> list[str]:
    if not KINDS[role]:  # nothing registered yet: the registering packages were never imported
        raise ValueError(f"no {role} kinds are registered: import worldwarp_core.geometry and "
                         "worldwarp_core.caption before asking which model files a run needs")
    return sorted(KINDS[role])


_weights_problem = weights_problem  # the older private name


def _folder_need(component: str, folder: str, what: str, source: str, required: bool = True) -> Need:
    if not os.path.exists(folder):
        return Need(component, required, os.path.dirname(folder) or ".", (os.path.basename(folder),), source)
    return Need(component, required, os.path.dirname(folder) or ".", (os.path.basename(folder),), source, folder,
                _weights_problem(folder, what))


def _tokenizer_need(folder: str, source: str, component: str = "tokenizer") -> Need:
    need = Need(component, True, os.path.dirname(folder), (os.path.basename(folder),), source)
    if not os.path.isdir(folder):
        return need
    if not any(os.path.isfile(os.path.join(folder, n)) for n in TOKENIZER_FILES):
        return Need(**{**need.__dict__, "found": folder,
                       "problem": f"{folder} holds no tokenizer ({' / '.join(TOKENIZER_FILES)})"})
    return Need(**{**need.__dict__, "found": folder})


def _file_need(component: str, folder: str, names, source: str, required: bool) -> Need:
    found = next((os.path.join(folder, n) for n in names if os.path.exists(os.path.join(folder, n))), None)
    problem = None
    if found and found.endswith(".safetensors"):
        problem = safetensors_problem(found)
    return Need(component, required, folder, tuple(names), source, found, problem)


def _wan_needs(models: str, training_free: bool, worldwarp_ckpt: str | None) -> list[Need]:
    ckpt_source = SOURCES["worldwarp"] + " (or pass --training-free to run the base Wan2.1 weights)"
    if os.path.isdir(os.path.join(models, "transformer")):  # a Wan2.1 diffusers folder
        needs = [_folder_need(s, os.path.join(models, s), "diffusers", SOURCES["diffusers"])
                 for s in ("transformer", "vae", "text_encoder")]
        needs.append(_tokenizer_need(os.path.join(models, "tokenizer"), SOURCES["diffusers"]))
        if worldwarp_ckpt:
            needs.append(_given_file("worldwarp", worldwarp_ckpt, ckpt_source))
        elif not training_free:
            needs.append(Need("worldwarp", True, "--worldwarp-ckpt", ("worldwarp_latest.ckpt",), ckpt_source,
                              problem="a diffusers folder holds the base weights: pass --worldwarp-ckpt "
                                      "worldwarp_latest.ckpt (or --training-free)"))
        return needs
    needs = []
    for what, sub, names in COMFY_FILES:
        folder = os.path.join(models, sub)
        if what == "tokenizer":
            needs.append(_tokenizer_need(os.path.join(folder, names[0]), SOURCES["tokenizer"]))
        elif what == "worldwarp":
            if worldwarp_ckpt:
                needs.append(_given_file("worldwarp", worldwarp_ckpt, ckpt_source))
            else:
                needs.append(_file_need(what, folder, names, ckpt_source, required=not training_free))
        else:
            needs.append(_file_need(what, folder, names, SOURCES[what], required=True))
    return needs


def _given_file(component: str, path: str, source: str) -> Need:
    need = Need(component, True, os.path.dirname(os.path.abspath(path)), (os.path.basename(path),), source)
    if not os.path.isfile(path):
        return need
    return Need(**{**need.__dict__, "found": path,
                   "problem": safetensors_problem(path) if path.endswith(".safetensors") else None})


def _path_or_default(path: str | None, models: str, name: str, option: str) -> str:
    if path is not None and not str(path).strip():
        raise ValueError(f"{option} is empty; give the model folder, or leave the option out to use "
                         f"{os.path.join(models, 'worldwarp', DEFAULT_FOLDERS.get(name, name))}")
    return path or os.path.join(models, "worldwarp", DEFAULT_FOLDERS.get(name, name))


def _geometry_need(models: str, backend: str, path: str | None, pose_source: str) -> Need:
    known = _known("geometry")
    if backend not in known:
        raise ValueError(f"--geometry {backend!r} is not a geometry backend; choose one of {', '.join(known)}")
    folder = _path_or_default(path, models, backend, "--geometry-path")
    source = SOURCES.get(backend, f"the {backend} model")
    check = KINDS["geometry"][backend]
    if check is None:
        need = _folder_need("geometry", folder, backend, source)
    else:  # the backend's own check (a checkout, an installed package)
        need = Need("geometry", True, os.path.dirname(folder), (os.path.basename(folder),), source)
        if os.path.exists(folder):
            need = Need(**{**need.__dict__, "found": folder, "problem": check(folder)})
    if pose_source == "estimated" and backend not in POSE_ESTIMATORS and need.problem is None:
        need = Need(**{**need.__dict__, "problem": f"--pose-source estimated needs a backend that estimates camera "
                                                   f"poses ({', '.join(POSE_ESTIMATORS)}); {backend} estimates none: "
                                                   "use --pose-source requested"})
    return need


def _captioner_need(models: str, captioner: str, path: str | None) -> Need | None:
    known = _known("captioner")
    if captioner not in known:
        raise ValueError(f"--captioner {captioner!r} is not a captioner; choose one of {', '.join(known)}")
    if captioner == "fixed":
        return None
    folder = _path_or_default(path, models, captioner, "--captioner-path")
    return _folder_need("captioner", folder, captioner, SOURCES.get(captioner, f"the {captioner} model"))


def run_needs(models: str, geometry: str = "depth-pro", captioner: str = "fixed", pose_source: str = "requested",
              training_free: bool = False, geometry_path: str | None = None, captioner_path: str | None = None,
              worldwarp_ckpt: str | None = None) -> list[Need]:
    """Every model file or folder a ``generate`` run with these options needs, found or not.

    ``models`` is a ComfyUI ``models/`` folder or a ``Wan2.1-T2V-1.3B-Diffusers`` folder. The
    WorldWarp fine-tune is required unless ``training_free``; a geometry model always (the
    start image's depth); a captioner folder unless it is ``fixed``; ``pose_source="estimated"``
    needs a backend that estimates poses.
    """
    if not models or not os.path.isdir(models):
        raise ValueError(f"--models folder not found: {models!r}; give your ComfyUI models/ folder or a "
                         f"Wan2.1-T2V-1.3B-Diffusers folder ({SOURCES['diffusers']})")
    needs = _wan_needs(models, training_free, worldwarp_ckpt)
    needs.append(_geometry_need(models, geometry, geometry_path, pose_source))
    cap = _captioner_need(models, captioner, captioner_path)
    if cap is not None:
        needs.append(cap)
    return needs


def require(needs: list[Need]) -> dict[str, str]:
    """``{component: path}`` of the found files, or one ValueError line naming every missing required one."""
    bad = [n for n in needs if n.required and not n.ok]
    if bad:
        raise ValueError("missing model files (run `python -m worldwarp_core check-models` for the full list): "
                         + " | ".join(n.describe() for n in bad))
    return {n.component: n.found for n in needs if n.ok}


__all__ = ["DEFAULT_FOLDERS", "KINDS", "Need", "SOURCES", "register_kind", "require", "run_needs", "safetensors_problem"]
