"""Named profiles: one switch that sets the defaults of many settings at once.

``pack``           the pack's measured choices (every default of ``PipelineSettings``)
``paper``          the paper's chunking (49 frames, 5 context, τ 0.8, supp. §7) with the official
                   code's pieces around the sampler (captions, extrapolation, the 3DGS fit's
                   opacity, depth term and learning rate, the cache on the context frames, the
                   geometry's square input, re-anchoring and raw scale)
``official-demo``  the official demo's defaults (``gradio_demo.py`` of ``qbhan/WorldWarp``, last
                   commit 0396b80): 81-frame chunks with 1 context frame, τ 0.6, seed 32, 30 fps,
                   the start image stretched to 720×480, focal 1.2·W, the official presets, and
                   the same pieces as ``paper``

What the profiles still do differently from the official demo is listed in docs/GUIDE.md.

A profile only sets defaults: every value it sets stays a separate option, and what is given
explicitly wins (``pipeline.settings_for``; the CLI's ``--profile``; in ComfyUI, choosing a profile sets the
node's widgets, which stay editable). The manifest records the profile and every setting that
differs from it (``profile_record``).

The values are ``PipelineSettings`` fields; ``gs.<name>`` is a field of its ``GSConfig``. Inputs
that are not settings (the image size, the start camera's focal, how bare preset names are read)
are in ``Profile.inputs``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

PROFILE_NAMES = ("pack", "paper", "official-demo")
DEFAULT_PROFILE = "pack"

# the official demo's focal 1.2·W as a horizontal field of view (CameraPoseController's default)
OFFICIAL_FOV_DEG = math.degrees(2.0 * math.atan(1.0 / (2.0 * 1.2)))


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    settings: dict[str, Any] = field(default_factory=dict)  # PipelineSettings fields ("gs.x": GSConfig's)
    # resize "WxH" (stretched, not cropped), fov (degrees, horizontal) of the start camera,
    # presets "official": bare preset names are the official presets
    inputs: dict[str, Any] = field(default_factory=dict)


# the official code's pieces around the sampler, shared by "paper" and "official-demo"
_OFFICIAL_PIECES = {
    "caption_style": "official",  # the 3D-scene-analyst request, the history as a 2 fps video, verbatim
    "extrapolation": "official",  # body-frame momentum past the given path
    "history_intrinsics": "requested",  # the requested intrinsics everywhere
    # TTT3R on the history zero-padded to a 512 square; its cameras re-anchored at the last history frame's
    # requested pose, its depth at its own scale (GS3DWarper.warp_with_validity_mask, src/ttt3r/ttt3r.py)
    "geometry_input": "square-pad",
    "geometry_alignment": "official",
    "cache_frames": "context",  # the cache is fitted on the context frames only
    "mask_rule": "official",
    "shift": 5.0,
    # the official 3DGS fit (src/ttt3r/train.py): opacity 0.9999 at init, 0.01 x disparity L1 on top of
    # 0.8 L1 + 0.2 (1 - SSIM), an absolute position learning rate
    "gs.init_opacity": 0.9999,
    "gs.depth_loss": "disparity",
    "gs.depth_loss_weight": 0.01,
    "gs.position_lr_scaling": "absolute",
    # the official cache init (GS3DWarper._initialize_splats_from_depth): <= 50k random points per frame past
    # the 0.8 depth cut, 3-NN scales; hints as the render composited over black (premultiplied)
    "gs.init": "official",
    "gs.hints": "premultiplied",
}

PROFILES: dict[str, Profile] = {
    "pack": Profile("pack", "the pack's measured defaults"),
    "paper": Profile("paper", "the paper's chunking (49/5, τ 0.8) with the official code's pieces",
                     {"chunk_frames": 49, "context_frames": 5, "strength": 0.8, **_OFFICIAL_PIECES}),
    "official-demo": Profile(
        "official-demo", "the official demo's defaults (81/1, τ 0.6, seed 32, 30 fps, 720x480)",
        {"chunk_frames": 81, "context_frames": 1, "strength": 0.6, "seed": 32, "fps": 30, "steps": 50,
         "guidance_scale": 5.0, "gs.iterations": 500, **_OFFICIAL_PIECES},
        {"resize": "720x480", "fov": OFFICIAL_FOV_DEG, "presets": "official"}),
}


def get_profile(name: str, option: str = "profile") -> Profile:
    if name not in PROFILES:
        raise ValueError(f"{option} {name!r} is not a profile; use one of {', '.join(PROFILE_NAMES)}")
    return PROFILES[name]


def split_settings(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    top = {k: v for k, v in values.items() if not k.startswith("gs.")}
    gs = {k[3:]: v for k, v in values.items() if k.startswith("gs.")}
    return top, gs


def profile_keys() -> list[str]:
    """Every key some profile sets (choosing any profile sets all of them, so switching is consistent)."""
    keys: list[str] = []
    for p in PROFILES.values():
        keys += [k for k in p.settings if k not in keys]
    return keys


def profile_value(profile: Profile, key: str, default: Any) -> Any:
    """The profile's value of ``key`` (a settings field, ``gs.x``, or an input), else ``default``."""
    if key in profile.settings:
        return profile.settings[key]
    return profile.inputs.get(key, default)


def setting_value(settings, key: str) -> Any:
    obj = settings
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def profile_record(settings) -> dict:
    """``{"profile": name, "differs": {key: {"profile": v, "used": u}}}``: the ``PipelineSettings``
    that differ from what their profile sets (a key the profile leaves alone compares with the
    pack's default: the settings class's own)."""
    profile = get_profile(settings.profile)
    base, differs = type(settings)(), {}
    keys = [f.name for f in fields(settings) if f.name not in ("gs", "profile")]
    keys += [f"gs.{f.name}" for f in fields(settings.gs) if f.name != "seed"]
    for key in keys:
        expected = profile.settings.get(key, setting_value(base, key))
        used = setting_value(settings, key)
        if used != expected:
            differs[key] = {"profile": plain(expected), "used": plain(used)}
    return {"profile": profile.name, "differs": differs}


def plain(v: Any) -> Any:
    return v if isinstance(v, (bool, int, float, str, type(None))) else repr(v)


def read_preset_names(name: str, spec: str) -> str:
    """A trajectory spec as profile ``name`` reads it: under a profile whose ``presets`` input is
    ``"official"``, a spec made only of official preset names without the ``official:`` prefix
    (``"dolly_in + pan_right"``) means those official presets; any other spec is returned as given."""
    from .official_paths import PREFIX, is_official_spec, list_official_presets

    if get_profile(name).inputs.get("presets") != "official" or is_official_spec(spec):
        return spec
    parts = [p.strip() for p in spec.replace(";", "+").split("+")]
    official = {n[len(PREFIX):] for n in list_official_presets()}
    if not parts or any(p.split("@", 1)[0].strip() not in official for p in parts):
        return spec
    out = []
    for token in _tokens(spec):
        out.append(token if token in "+;" else f"{PREFIX}{token.strip()}")
    return " ".join(out)


def _tokens(spec: str) -> list[str]:
    """``"a + b@2 ; c"`` -> ``["a", "+", "b@2", ";", "c"]``."""
    out, cur = [], ""
    for ch in spec:
        if ch in "+;":
            out += [cur.strip(), ch]
            cur = ""
        else:
            cur += ch
    return out + [cur.strip()]
