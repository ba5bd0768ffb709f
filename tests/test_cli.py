"""The CLI fails early and clearly: every cheap argument and every model file is checked before any
model loads; `check-models` and `generate` make the same decision for each backend choice; every
option has help with its default and choices; progress counts chunks right."""

import itertools
import json
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from worldwarp_core.cli import build_parser, main
from worldwarp_core.geometry import list_estimators


class _Loaded(Exception):
    """Raised by the patched loaders: reaching one means every check passed."""


@pytest.fixture
def no_loading(monkeypatch):
    """Every model loader fails the test if called (nothing may load before the checks pass)."""
    import worldwarp_core.caption as caption
    import worldwarp_core.geometry as geometry
    import worldwarp_core.models as models

    def loader(*a, **k):
        raise _Loaded

    for mod, name in [(geometry, "load_estimator"), (models, "load_components"), (models, "load_diffusers_folder"),
                      (caption, "load_captioner")]:
        monkeypatch.setattr(mod, name, loader)


def _weights(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file({"w": torch.zeros(4)}, path)


def _model_folder(path):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({}, f)
    _weights(os.path.join(path, "model.safetensors"))


def fake_models(root, skip=()):
    """A ComfyUI models/ folder with every file a run may need, as tiny stand-ins (names and headers
    are all the checks read); ``skip`` leaves components out."""
    m = str(root)
    files = {
        "transformer": lambda: _weights(f"{m}/diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors"),
        "worldwarp": lambda: (os.makedirs(f"{m}/diffusion_models", exist_ok=True),
                              open(f"{m}/diffusion_models/worldwarp_latest.ckpt", "wb").write(b"x")),
        "vae": lambda: _weights(f"{m}/vae/wan_2.1_vae.safetensors"),
        "text_encoder": lambda: _weights(f"{m}/text_encoders/umt5_xxl_fp16.safetensors"),
        "tokenizer": lambda: (os.makedirs(f"{m}/worldwarp/umt5-xxl-tokenizer", exist_ok=True),
                              open(f"{m}/worldwarp/umt5-xxl-tokenizer/tokenizer.json", "w").write("{}")),
        "depth-pro": lambda: _model_folder(f"{m}/worldwarp/depth-pro-hf"),
        "depth-anything-v2": lambda: _model_folder(f"{m}/worldwarp/depth-anything-v2-small-hf"),
        "depth-anything-3": lambda: _model_folder(f"{m}/worldwarp/DA3-BASE"),
        "ttt3r": lambda: (os.makedirs(f"{m}/worldwarp/TTT3R/src/dust3r", exist_ok=True),
                          open(f"{m}/worldwarp/TTT3R/src/cut3r_512_dpt_4_64.pth", "wb").write(b"x")),
        "florence-2": lambda: _model_folder(f"{m}/worldwarp/Florence-2-large"),
    }
    for name, make in files.items():
        if name not in skip:
            make()
    return m


@pytest.fixture
def setup(tmp_path):
    img = tmp_path / "start.png"
    Image.fromarray(np.random.RandomState(0).randint(0, 256, (32, 48, 3)).astype(np.uint8)).save(img)
    models = fake_models(tmp_path / "models")
    base = ["generate", "--image", str(img), "--trajectory", "dolly_in", "--frames", "49", "--models", models,
            "--out", str(tmp_path / "out"), "--prompt", "a room", "--device", "cpu", "--geometry", "depth-anything-v2"]
    return tmp_path, base


def _with(base, **opts):
    args = list(base)
    for k, v in opts.items():
        flag = "--" + k.replace("_", "-")
        if flag in args:
            i = args.index(flag)
            args[i + 1] = v
        else:
            args += [flag, v]
    return args


def test_valid_arguments_reach_the_loaders(setup, no_loading):
    _, base = setup
    with pytest.raises(_Loaded):
        main(base)


def test_every_cheap_argument_is_checked_before_any_model_loads(setup, no_loading, capsys):
    tmp, base = setup
    text = tmp / "notes.png"
    text.write_text("hello")
    one = tmp / "one.png"
    Image.new("RGB", (1, 1)).save(one)
    wide = tmp / "wide.png"
    Image.new("RGB", (4096, 32)).save(wide)
    rgba = np.zeros((32, 48, 4), np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp / "rgba.png")
    afile = tmp / "afile"
    afile.write_text("x")
    held = tmp / "held"
    held.mkdir()
    (held / "run.json").write_text("{}")
    empty = tmp / "empty"
    empty.mkdir()
    cams = tmp / "cams.json"
    cams.write_text(json.dumps({"width": "abc", "height": 32, "frames": []}))
    cases = [
        (dict(frames="100"), r"100 frames cannot be chunked .* use 93 or 137"),
        (dict(frames="2000001"), r"--frames must be in 1..10000, got 2000001; use 10000"),
        (dict(frames="49", chunk="10"), r"frame count must be 4k\+1"),
        (dict(trajectory="dolly_inn"), r"--trajectory 'dolly_inn': unknown camera preset 'dolly_inn'"),
        (dict(trajectory=str(tmp / "path.txt")), r"camera file not found: .*path.txt"),
        (dict(trajectory=str(cams)), r"cams.json"),
        (dict(cfg="nan"), r"--cfg must be a finite number >= 1, got nan; use e.g. 5"),
        (dict(tau="1.5"), r"--tau must be a finite number >= 0 and <= 1, got 1.5; use e.g. 1"),
        (dict(seed=str(2**70)), r"--seed must be in 0..2147483647, got 1180591620717411303424; use 2147483647"),
        (dict(world_voxel="0"), r"--world-voxel must be a finite number > 0, got 0.0; use e.g. 0.05"),
        (dict(world_views="17"), r"--world-views must be in 0..16, got 17; use 16"),
        (dict(world_views="2"), r"world_views 2 retrieves past frames from the persistent world: set memory 'world'"),
        (dict(path_frames="0"), r"--path-frames must be in 1..10000, got 0; use 1"),
        (dict(fov="0"), r"--fov must be a finite number > 0 and < 180"),
        (dict(device="bogus"), r"--device 'bogus' is not a device"),
        (dict(out=str(afile)), r"--out .*afile is a file, not a folder"),
        (dict(out=str(held)), r"held already holds a run; pass --resume to continue it or --overwrite to replace it"),
        (dict(image=str(text)), r"notes.png is not an image this program can read"),
        (dict(image=str(one)), r"one.png is 1x1: .*; pass --resize 32x32"),
        (dict(image=str(wide)), r"wide.png is 4096x32: .* at most 4x the shorter; pass --resize 2048x512"),
        (dict(image=str(tmp / "rgba.png")), r"rgba.png has transparent pixels \(100.0 % of the image\)"),
        (dict(prompt=""), r"--prompt is empty"),
        (dict(geometry_path=""), r"--geometry-path is empty"),
        (dict(geometry_path=str(empty)), r"empty has no config.json"),
        (dict(models=str(tmp / "nothing")), r"--models folder not found: .*nothing"),
        (dict(out=str(held), from_chunk="1"), r"--from-chunk 1 is out of range: .*held holds 0 finished chunks and "
                                              r"this run has 1; a rollback keeps at least one chunk"),
        (dict(out=str(empty), from_chunk="1"), r"--from-chunk 1: .*empty holds no run to roll back \(no run.json\)"),
        (dict(from_chunk="-2"), r"--from-chunk must be .*0, got -2"),
        (dict(captioner="florence-2", caption_style="official"), r"--caption-style official asks a Qwen-VL chat "
                                                                 r"model"),
        (dict(caption_max_tokens="0"), r"--caption-max-tokens must be .*1, got 0"),
    ]
    if not torch.cuda.is_available():
        cases.append((dict(device="cuda"), r"--device cuda: CUDA is not available here"))
    assert main(_with(base, out=str(held), from_chunk="1") + ["--overwrite"]) == 2
    assert "--from-chunk and --overwrite exclude each other" in capsys.readouterr().err
    for opts, pattern in cases:
        code = main(_with(base, **opts))
        err = capsys.readouterr().err
        assert code == 2, (opts, err)
        assert err.startswith("error: ") and err.count("\n") == 1, err  # one line
        assert re.search(pattern, err), (opts, err)


def test_missing_and_truncated_files_are_named_with_folder_and_source(setup, no_loading, capsys):
    tmp, base = setup
    models = fake_models(tmp / "partial", skip=("transformer",))
    assert main(_with(base, models=models)) == 2
    err = capsys.readouterr().err
    assert ("transformer: wan2.1_t2v_1.3B_fp16.safetensors or wan2.1_t2v_1.3B_bf16.safetensors not found in "
            f"{models}/diffusion_models; get it from Comfy-Org/Wan_2.1_ComfyUI_repackaged") in err
    vae = os.path.join(base[base.index("--models") + 1], "vae", "wan_2.1_vae.safetensors")
    raw = open(vae, "rb").read()
    open(vae, "wb").write(raw[:-8])
    assert main(base) == 2
    assert "wan_2.1_vae.safetensors is truncated" in capsys.readouterr().err


def test_check_models_and_generate_agree_for_every_backend_choice(tmp_path, no_loading, capsys):
    img = tmp_path / "start.png"
    Image.new("RGB", (48, 32)).save(img)
    layouts = {"all": (), "no-worldwarp": ("worldwarp",),
               "no-geometry": ("depth-pro", "depth-anything-v2", "depth-anything-3", "ttt3r"),
               "no-florence": ("florence-2",)}
    folders = {k: fake_models(tmp_path / k, skip) for k, skip in layouts.items()}
    seen = set()
    for (layout, models), geometry, captioner, pose, free in itertools.product(
            folders.items(), list_estimators(), ["fixed", "florence-2"], ["requested", "estimated"], [False, True]):
        opts = ["--geometry", geometry, "--captioner", captioner, "--pose-source", pose] + (
            ["--training-free"] if free else [])
        check = main(["check-models", models] + opts)
        report = capsys.readouterr().out
        flagged = {line.split()[1] for line in report.splitlines() if line.startswith(("MISSING", "PROBLEM"))}
        try:
            code = main(["generate", "--image", str(img), "--trajectory", "dolly_in", "--frames", "49", "--models",
                         models, "--out", str(tmp_path / "out"), "--prompt", "x", "--device", "cpu"] + opts)
            generated = True
        except _Loaded:
            code, generated = 0, False
        err = capsys.readouterr().err
        assert (check == 0) == (code == 0), (layout, opts, report, err)
        if check:
            assert generated and "missing model files" in err
            named = {part.split(":")[0].strip() for part in err.split("full list): ", 1)[1].split(" | ")}
            assert named == flagged, (layout, opts, named, flagged)
        seen.add((check == 0, layout))
    # each layout gave both answers somewhere (the loop covers real decisions, not one outcome)
    assert {ok for ok, _ in seen} == {True, False}
    assert (True, "no-worldwarp") in seen and (False, "no-worldwarp") in seen


def test_every_option_has_help_with_its_default_and_choices():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, sub in subparsers.choices.items():
        fmt = sub._get_formatter()
        for action in sub._actions:
            if action.dest == "help":
                continue
            assert action.help and len(action.help) > 8, (name, action.dest)
            text = fmt._get_help_string(action)
            assert "[default:" in text or "[required]" in text, (name, action.dest, text)
            if action.choices:
                assert "(choices: %(choices)s)" in text
        help_text = sub.format_help()
        for action in sub._actions:
            for opt in action.option_strings:
                assert opt in help_text
    g = subparsers.choices["generate"].format_help()
    assert "[default: 0]" in g and "choices: fp32, bf16, fp16, fp8" in g and "[default: off]" in g


def test_demo_progress_counts_chunks_and_gives_an_eta(tmp_path, monkeypatch, capsys):
    import worldwarp_core.demo as demo

    def fake_run_demo(out_dir, frames, resume, overwrite, callback):
        starts = demo.DEMO_SETTINGS.chunk_starts(frames)
        for k, s in enumerate(starts):
            callback({"stage": "chunk", "chunk": k, "first_frame": s})
            callback({"stage": "stage", "name": "3dgs cache", "chunk": k})
            callback({"stage": "st-diff", "chunk": k, "step": 1, "total": 1})
            callback({"stage": "chunk_done", "chunk": k, "frames": s + 17})

        class R:
            pass

        r = R()
        r.frames, r.out_dir = torch.zeros(frames, 1, 1, 3), out_dir
        return r

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    assert main(["demo", "--out", str(tmp_path / "d"), "--frames", "53"]) == 0
    err = capsys.readouterr().err
    assert "chunk 4/4" in err and "chunk 4/3" not in err and "chunk 1/4" in err
    assert "ETA" in err and "3dgs cache" in err
    assert main(["demo", "--out", str(tmp_path / "d2"), "--frames", "50"]) == 2
    assert "use 41 or 53" in capsys.readouterr().err


def test_os_errors_become_one_line(tmp_path, monkeypatch, capsys):
    import errno

    import worldwarp_core.cli as cli

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "frames" / "00012.png"))

    monkeypatch.setattr(cli, "cmd_presets", full)
    assert main(["presets"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: disk full while writing {tmp_path}/frames/00012.png; free space and run again with "
                   "--resume (finished chunks are kept)\n")
