"""Named profiles: one switch for many defaults; what is given explicitly wins; the manifest says
what differs. The official demo's values are read off ``gradio_demo.py`` / ``pose_control.py`` of
the official code (81 frames, 1 context frame, τ 0.6, seed 32, 30 fps, 720x480, focal 1.2·W)."""

from __future__ import annotations

import math

import pytest

from nodes.specs import PROFILE_WIDGETS, SPECS
from worldwarp_core.cli import PROFILE_OPTIONS, apply_profile, build_parser, given_options
from worldwarp_core.gscache import GSConfig
from worldwarp_core.pipeline import PipelineSettings, profile_widget_values, settings_for
from worldwarp_core.profiles import (
    OFFICIAL_FOV_DEG,
    PROFILE_NAMES,
    PROFILES,
    get_profile,
    profile_keys,
    profile_record,
    read_preset_names,
)


def test_official_demo_values():
    s = settings_for("official-demo")
    assert (s.chunk_frames, s.context_frames, s.strength, s.seed, s.fps) == (81, 1, 0.6, 32, 30)
    assert (s.caption_style, s.extrapolation, s.cache_frames, s.mask_rule, s.shift) == (
        "official", "official", "context", "official", 5.0)
    assert (s.gs.init_opacity, s.gs.depth_loss, s.gs.depth_loss_weight, s.gs.position_lr_scaling) == (
        0.9999, "disparity", 0.01, "absolute")
    assert (s.gs.init, s.gs.init_max_points, s.gs.init_min_depth, s.gs.hints) == (
        "official", 50000, 0.8, "premultiplied")
    assert (settings_for("paper").gs.init, settings_for("paper").gs.hints) == ("official", "premultiplied")
    inputs = get_profile("official-demo").inputs
    assert inputs["resize"] == "720x480" and inputs["presets"] == "official"
    # focal 1.2·W as a horizontal field of view: W / (2 tan(fov / 2)) = 1.2 W
    assert 1.0 / (2.0 * math.tan(math.radians(inputs["fov"]) / 2.0)) == pytest.approx(1.2, abs=1e-12)
    paper = settings_for("paper")
    assert (paper.chunk_frames, paper.context_frames, paper.strength) == (49, 5, 0.8)
    assert paper.caption_style == "official" and paper.seed == PipelineSettings().seed


def test_pack_profile_is_the_defaults_and_records_nothing():
    assert settings_for("pack") == PipelineSettings()
    assert profile_record(PipelineSettings()) == {"profile": "pack", "differs": {}}
    for name in PROFILE_NAMES:  # a profile's own settings differ from nothing
        assert profile_record(settings_for(name)) == {"profile": name, "differs": {}}


def test_given_values_win_and_the_manifest_names_them():
    s = settings_for("official-demo", strength=0.7, gs=GSConfig(iterations=20))
    assert s.strength == 0.7 and s.chunk_frames == 81
    record = profile_record(s)
    assert record["profile"] == "official-demo"
    assert record["differs"]["strength"] == {"profile": 0.6, "used": 0.7}
    assert record["differs"]["gs.iterations"] == {"profile": 500, "used": 20}
    # the given GSConfig replaces the profile's whole: its official opacity is no longer used
    assert record["differs"]["gs.init_opacity"] == {"profile": 0.9999, "used": GSConfig().init_opacity}
    assert "chunk_frames" not in record["differs"]


def test_bad_profile_name_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"^--profile 'official' is not a profile; use one of pack, paper, "
                                         r"official-demo$"):
        get_profile("official", "--profile")
    with pytest.raises(ValueError, match="profile must be one of"):
        PipelineSettings(profile="demo")


def _args(*extra):
    argv = ["generate", "--image", "a.png", "--trajectory", "dolly_in + pan_right", "--frames", "81",
            "--models", "m", "--out", "o", *extra]
    args = build_parser().parse_args(argv)
    args.given = given_options(argv)
    apply_profile(args)
    return args


def test_cli_profile_sets_every_option_it_names_unless_given():
    a = _args("--profile", "official-demo", "--tau", "0.7", "--seed=5")
    assert (a.chunk, a.context, a.fps, a.resize, a.fov) == (81, 1, 30, "720x480", OFFICIAL_FOV_DEG)
    assert (a.tau, a.seed) == (0.7, 5)  # given explicitly: kept
    assert a.trajectory == "official:dolly_in + official:pan_right"  # bare names are the official presets
    assert a.gs_init_opacity == 0.9999 and a.gs_position_lr == "absolute" and a.caption_style == "official"
    assert (a.gs_init, a.gs_hints) == ("official", "premultiplied")
    mixed = _args("--profile", "paper", "--gs-init", "per-pixel")  # given explicitly: kept
    assert (mixed.gs_init, mixed.gs_hints) == ("per-pixel", "premultiplied")
    plain = _args()
    assert (plain.chunk, plain.context, plain.tau, plain.seed, plain.fps) == (49, 5, 0.8, 0, 16)
    assert plain.resize is None and plain.fov is None and plain.trajectory == "dolly_in + pan_right"
    # every key a profile sets is an option of generate (else the CLI would ignore it silently)
    for name, profile in PROFILES.items():
        assert set(profile.settings) | set(profile.inputs) - {"presets"} <= set(PROFILE_OPTIONS), name


def test_bare_preset_names_under_the_official_profile():
    assert read_preset_names("official-demo", "dolly_in@0.5 ; pan_left") == "official:dolly_in@0.5 ; official:pan_left"
    assert read_preset_names("official-demo", "spiral") == "spiral"  # not an official preset: the pack's
    assert read_preset_names("official-demo", "dolly_in + spiral") == "dolly_in + spiral"
    assert read_preset_names("pack", "dolly_in") == "dolly_in"
    assert read_preset_names("official-demo", "official:dolly_in") == "official:dolly_in"


def test_node_profile_widgets_exist_and_take_the_profile_values():
    specs = {s.node_id: s for s in SPECS}
    for node_id, widgets in PROFILE_WIDGETS.items():
        names = {i.name for i in specs[node_id].inputs}
        assert "profile" in names and set(widgets) <= names, node_id
        assert set(widgets.values()) <= set(profile_keys()), node_id
    demo = profile_widget_values("official-demo", PROFILE_WIDGETS["WorldWarpChunkLoop"])
    assert (demo["chunk_frames"], demo["context_frames"], demo["strength"], demo["seed"], demo["fps"]) == (
        81, 1, 0.6, 32, 30)
    pack = profile_widget_values("pack", PROFILE_WIDGETS["WorldWarpChunkLoop"])
    defaults = PipelineSettings()
    assert (pack["chunk_frames"], pack["strength"], pack["cfg"], pack["gs_iterations"]) == (
        defaults.chunk_frames, defaults.strength, defaults.guidance_scale, defaults.gs.iterations)
    # switching profiles sets the same widgets every time
    assert {frozenset(profile_widget_values(n, PROFILE_WIDGETS["WorldWarpChunkLoop"])) for n in PROFILE_NAMES} == {
        frozenset(demo)}


def test_generate_with_a_profile_records_it_and_what_was_given(tmp_path, capsys):
    """``generate --profile official-demo`` through the real loaders (tiny random weights): the
    profile's fps, seed and official preset are used; the options given win and are named."""
    import json

    import numpy as np
    from PIL import Image

    from worldwarp_core.cli import main
    from worldwarp_core.geometry.testing import save_tiny_depth_anything
    from worldwarp_core.models import save_tiny_diffusers_folder

    wan = save_tiny_diffusers_folder(str(tmp_path / "Wan2.1-T2V-1.3B-Diffusers"))
    depth = save_tiny_depth_anything(str(tmp_path / "depth-anything-v2-small-hf"))
    img = tmp_path / "start.png"
    Image.fromarray(np.random.RandomState(0).randint(0, 256, (80, 112, 3)).astype(np.uint8)).save(img)
    out = tmp_path / "run"
    code = main(["generate", "--profile", "official-demo", "--image", str(img), "--trajectory", "dolly_in",
                 "--frames", "25", "--chunk", "17", "--context", "9", "--steps", "2", "--resize", "96x64",
                 "--cache", "pointcloud", "--models", wan, "--out", str(out), "--geometry", "depth-anything-v2",
                 "--geometry-path", depth, "--dtype", "fp32", "--training-free", "--prompt", "a room",
                 "--geometry-dtype", "fp32"])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    settings, inference = manifest["settings"], manifest["inference"]
    assert (settings["fps"], settings["seed"], settings["strength"], settings["profile"]) == (30, 32, 0.6, "official-demo")
    assert inference["profile"] == "official-demo"
    assert {"chunk_frames": {"profile": 81, "used": 17}, "context_frames": {"profile": 1, "used": 9},
            "steps": {"profile": 50, "used": 2}} == {k: inference["differs"][k] for k in
                                                      ("chunk_frames", "context_frames", "steps")}
    assert "fps" not in inference["differs"] and "seed" not in inference["differs"]
    assert json.loads((out / "run.json").read_text())  # the run's inputs were recorded
    cams = json.loads((out / "cameras.json").read_text())
    # focal 1.2 x width (the profile's fov), at the 96x64 the run was resized to
    assert cams["frames"][0]["K"][0][0] == pytest.approx(1.2 * 96, rel=1e-6)
