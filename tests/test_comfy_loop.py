"""The wired chunk loop in the REAL ComfyUI server (a tree set up by ../shared/tools/comfy/setup.sh):
Loop Start -> stage nodes -> Loop End runs three chunks through node expansion with the same frames
as the compact Chunk Loop node and `python -m worldwarp_core generate`; a core Grow Mask in the body
changes the later chunks; an interrupted loop resumes to the same frames; resume off never touches
a folder holding a run; every shipped workflow loads in the real frontend with no missing and no
overlapping nodes (before and after a run). Skipped with a reason when no tree is available.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from comfy_tree import COMFYUI_DIR, HARNESS, ROOT, needs_comfy, server_url
from PIL import Image

PORT, URL = server_url(8191)
IMAGE = "worldwarp_loop_test.png"
C, CTX, FRAMES = 5, 1, 13  # three chunks: frames 0-4, 4-8, 8-12
TAU = 0.5  # with 2 steps, warped latents start at the second sigma (tau 0.8 would start them at full noise)

pytestmark = needs_comfy


# the 3DGS cache widgets at their defaults (an API prompt states every widget)
GS_DEFAULTS = {"depth_loss": "depth", "depth_loss_weight": 0.3, "sh_degree": 3, "init_opacity": 0.8,
               "position_lr_scaling": "extent"}


def L(node, slot=0):
    return [str(node), slot]


def _base(folder=None):
    from worldwarp_core.caption import DEFAULT_NEGATIVE

    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": IMAGE}},
        "2": {"class_type": "WorldWarpLoadModel", "inputs": {
            "transformer": "wan2.1_t2v_1.3B_fp16.safetensors", "vae": "wan_2.1_vae.safetensors",
            "text_encoder": "umt5_xxl_fp16.safetensors", "tokenizer": "umt5-xxl-tokenizer",
            "worldwarp_checkpoint": "worldwarp_latest.ckpt", "dtype": "fp32", "offload": "none"}},
        "3": {"class_type": "WorldWarpLoadGeometryModel", "inputs": {"backend": "depth-pro", "folder": "depth-pro-hf",
                                                                     "fov_degrees": 60.0}},
        "4": {"class_type": "WorldWarpEstimateGeometry", "inputs": {"geometry_model": L(3), "images": L(1),
                                                                    "pose_source": "requested"}},
        "5": {"class_type": "WorldWarpCameraTrajectory", "inputs": {
            "image": L(1), "preset": "dolly_in@0.6 + pan_left@0.5", "strength": 1.0, "frames": C, "fov_degrees": 60.0,
            "scene_scale": 0.0, "easing": "linear", "camera_file": "", "geometry": L(4)}},
    }, DEFAULT_NEGATIVE


def wired_prompt(folder, resume=False, grow=False, fps=16):
    """The body of the shipped full generator (API format), small."""
    p, negative = _base()
    p.update({
        "10": {"class_type": "WorldWarpLoopStart", "inputs": {
            "image": L(1), "cameras": L(5), "frames": FRAMES, "chunk_frames": C, "context_frames": CTX, "seed": 0,
            "extend_mode": "extrapolate", "extrapolation": "auto", "output_folder": folder, "resume": resume,
            "fps": fps}},
        "11": {"class_type": "WorldWarpEstimateGeometry", "inputs": {
            "geometry_model": L(3), "images": L(10, 1), "pose_source": "requested", "cameras": L(10, 2)}},
        "12": {"class_type": "WorldWarpAlignToHistory", "inputs": {"loop": L(10), "geometry": L(11)}},
        "13": {"class_type": "WorldWarpBuildCache", "inputs": {
            "images": L(10, 1), "geometry": L(12), "mode": "3dgs", "iterations": 2, "learning_rate": 1.6e-3,
            "stride": 1, "alpha_threshold": 0.5, "seed": L(10, 7), **GS_DEFAULTS,
            "train_frames": "context", "context_frames": L(10, 5)}},
        "14": {"class_type": "WorldWarpRenderHints", "inputs": {"cache": L(13), "cameras": L(10, 3)}},
        "16": {"class_type": "WorldWarpSTDiffSampler", "inputs": {
            "model": L(2), "hints": L(14), "masks": L(14, 1), "prompt": "a room", "negative_prompt": negative,
            "context_frames": L(10, 5), "strength": TAU, "steps": 2, "cfg": 2.0, "seed": L(10, 8),
            "schedule": "spatio-temporal", "training_free": False, "context": L(10, 4),
            "mask_rule": "official", "shift": 5.0}},
        "17": {"class_type": "WorldWarpLoopEnd", "inputs": {"loop": L(10), "frames": L(16), "cache": L(13)}},
        "18": {"class_type": "SaveVideo", "inputs": {"video": L(17, 4), "filename_prefix": folder + "/video",
                                                     "format": "auto", "codec": "auto"}},
    })
    if grow:  # a core node in the body: every chunk's masks grow
        p["15"] = {"class_type": "GrowMask", "inputs": {"mask": L(14, 1), "expand": 16, "tapered_corners": False}}
        p["16"]["inputs"]["masks"] = L(15)
    return p


def compact_prompt(folder):
    p, _ = _base()
    p["20"] = {"class_type": "WorldWarpChunkLoop", "inputs": {
        "model": L(2), "geometry_model": L(3), "image": L(1), "cameras": L(5), "frames": FRAMES, "prompt": "a room",
        "style": "", "chunk_frames": C, "context_frames": CTX, "strength": TAU, "steps": 2, "cfg": 2.0, "seed": 0,
        "schedule": "spatio-temporal", "cache_mode": "3dgs", "gs_iterations": 2, "extend_mode": "extrapolate",
        "training_free": False, "output_folder": folder, "resume": False, "pose_source": "requested",
        "extrapolation": "auto", "mask_rule": "official", "shift": 5.0, **GS_DEFAULTS, "cache_frames": "context"}}
    p["21"] = {"class_type": "SaveImage", "inputs": {"images": L(20), "filename_prefix": folder + "/frames"}}
    return p


def _req(path, data=None, timeout=60):
    body = json.dumps(data).encode() if data is not None else None
    r = urllib.request.Request(URL + path, data=body, headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(r, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as e:  # the server's reason (e.g. a prompt that fails validation)
        raise AssertionError(f"{path}: HTTP {e.code}: {e.read().decode(errors='replace')[:3000]}") from None
    return json.loads(raw) if raw[:1] in (b"{", b"[") else raw


def run(prompt, timeout=1500, interrupt_when=None):
    """Queue an API prompt; wait for its end: (status, messages). ``interrupt_when()``: interrupt once true."""
    pid = _req("/prompt", {"prompt": prompt})["prompt_id"]
    t0 = time.time()
    if interrupt_when is not None:  # watched closely: a chunk of the tiny model takes a fraction of a second
        def watch():
            while not interrupt_when() and time.time() - t0 < timeout:
                time.sleep(0.002)
            _req("/interrupt", {})

        threading.Thread(target=watch, daemon=True).start()
    while time.time() - t0 < timeout:
        h = _req(f"/history/{pid}")
        if pid in h and h[pid].get("status", {}).get("completed") is not None:
            st = h[pid]["status"]
            if st.get("status_str") in ("success", "error"):
                return st["status_str"], st.get("messages", [])
        time.sleep(0.5)
    raise TimeoutError(f"prompt {pid} still running after {timeout} s")


def frames_of(folder):
    d = os.path.join(folder, "frames")
    return np.stack([np.asarray(Image.open(os.path.join(d, f))) for f in sorted(os.listdir(d))])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    sys.path.insert(0, ROOT)
    import torch

    from worldwarp_core.geometry.testing import tiny_depth_pro
    from worldwarp_core.models import save_tiny_comfy_files
    from worldwarp_core.synthetic import default_scene

    tmp = tmp_path_factory.mktemp("comfy_loop")
    models = tmp / "models"
    paths = save_tiny_comfy_files(str(models))
    names = {"transformer": "diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors",
             "vae": "vae/wan_2.1_vae.safetensors", "text_encoder": "text_encoders/umt5_xxl_fp16.safetensors",
             "tokenizer": "worldwarp/umt5-xxl-tokenizer"}
    for k, rel in names.items():
        os.replace(paths[k], str(models / rel))
    # the fine-tune the CLI loads by default: the tiny transformer as an official-style checkpoint
    from safetensors.torch import load_file

    sd = load_file(str(models / names["transformer"]))
    torch.save({"state_dict": sd}, str(models / "diffusion_models" / "worldwarp_latest.ckpt"))
    tiny_depth_pro().save_pretrained(str(models / "worldwarp" / "depth-pro-hf"))
    cfg = tmp / "extra_model_paths.yaml"
    cfg.write_text("worldwarp_loop_test:\n" + f"  base_path: {models}\n" + "".join(
        f"  {f}: {f}/\n" for f in ("diffusion_models", "vae", "text_encoders", "worldwarp")))
    scene = default_scene()
    rgb, _ = scene.render(scene.default_camera(32, 32))
    inputs = tmp / "input"  # the server's --input-directory: ComfyUI's own input folder is left alone
    inputs.mkdir()
    image = inputs / IMAGE
    Image.fromarray((rgb[0] * 255).round().to(torch.uint8).numpy()).save(image)
    out = tmp / "out"
    log = tmp / "start.log"
    with open(log, "w") as f:
        r = subprocess.run([sys.executable, os.path.join(HARNESS, "run_workflow.py"), "--start-only", "--start",
                            "always", "--comfy-dir", COMFYUI_DIR, "--url", URL, "--output-dir", str(out),
                            f"--server-arg=--output-directory={out}", f"--server-arg=--input-directory={inputs}",
                            f"--server-arg=--extra-model-paths-config={cfg}"],
                           stdout=f, stderr=subprocess.STDOUT, timeout=600)
    text = log.read_text()
    assert r.returncode == 0, text[-3000:]
    pid = int(text.split("server left running (pid ")[1].split(")")[0])
    yield {"out": out, "models": models, "image": image, "tmp": tmp}
    os.killpg(pid, 15)  # the server this fixture started, by its process group id


@pytest.fixture(scope="module")
def wired_frames(server):
    status, messages = run(wired_prompt("wired"))
    assert status == "success", messages
    return frames_of(server["out"] / "wired")


def test_wired_loop_equals_compact_node_and_cli(server, wired_frames):
    assert wired_frames.shape == (FRAMES, 32, 32, 3)
    assert sorted(os.listdir(server["out"] / "wired" / "chunks")) == ["chunk_000", "chunk_001", "chunk_002"]
    assert any(f.endswith(".mp4") for f in os.listdir(server["out"] / "wired"))  # core Save Video's file
    status, messages = run(compact_prompt("compact"))
    assert status == "success", messages
    assert np.array_equal(frames_of(server["out"] / "compact"), wired_frames)  # bit for bit
    cli = server["tmp"] / "cli"
    r = subprocess.run([sys.executable, "-m", "worldwarp_core", "generate", "--image", str(server["image"]),
                        "--trajectory", "dolly_in@0.6 + pan_left@0.5", "--frames", str(FRAMES), "--path-frames",
                        str(C), "--models", str(server["models"]), "--out", str(cli), "--prompt", "a room",
                        "--chunk", str(C), "--context", str(CTX), "--tau", str(TAU), "--steps", "2", "--cfg", "2.0",
                        "--gs-iterations", "2", "--geometry", "depth-pro", "--dtype", "fp32", "--device", "cpu"],
                       cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stderr[-3000:]
    assert np.array_equal(frames_of(cli), wired_frames)


def test_grow_mask_in_the_body_changes_the_later_chunks(server, wired_frames):
    status, messages = run(wired_prompt("grown", grow=True))
    assert status == "success", messages
    grown = frames_of(server["out"] / "grown")
    for start in (4, 8):  # chunks 2 and 3: their new frames
        assert not np.array_equal(grown[start + CTX:start + C], wired_frames[start + CTX:start + C]), start


def test_interrupt_then_resume_gives_the_same_frames(server, wired_frames):
    folder = server["out"] / "cut"
    status, _ = run(wired_prompt("cut"), interrupt_when=lambda: os.path.isdir(folder / "chunks" / "chunk_000"))
    assert status == "error"  # interrupted
    done = sorted(os.listdir(folder / "chunks"))
    assert "chunk_002" not in done
    # resume off with the run in the folder: refused, nothing deleted
    status, messages = run(wired_prompt("cut", fps=8))
    assert status == "error" and "already holds a run; turn 'resume' on" in json.dumps(messages)
    assert sorted(os.listdir(folder / "chunks")) == done
    status, messages = run(wired_prompt("cut", resume=True))
    assert status == "success", messages
    assert np.array_equal(frames_of(folder), wired_frames)


def _error(messages) -> dict:
    return next(m[1] for m in messages if m[0] == "execution_error")


def test_wrong_wiring_and_an_edited_body_are_refused_before_any_chunk(server, wired_frames):
    two_ends = wired_prompt("two_ends")
    two_ends["19"] = json.loads(json.dumps(two_ends["17"]))
    status, messages = run(two_ends)
    err = _error(messages)
    assert status == "error" and err["node_id"] == "10", err
    assert err["exception_message"].startswith("WorldWarp Loop Start (node 10) feeds 2 Loop Ends (nodes 17, 19)")
    assert not os.path.exists(server["out"] / "two_ends")  # refused before the folder or any chunk
    by_hand = wired_prompt("by_hand")
    by_hand["19"] = {"class_type": "WorldWarpLoopNext", "inputs": {"loop": L(10)}}
    status, messages = run(by_hand)
    assert status == "error" and "WorldWarp Loop Next (node 19) is placed by Loop End only" in \
        _error(messages)["exception_message"]
    # the finished run "wired" with an edited body: Loop Start runs again (its graph input changed)
    # and refuses before the body runs, saying which node and input changed
    edited = wired_prompt("wired", resume=True)
    edited["16"]["inputs"]["steps"] = 3
    status, messages = run(edited)
    err = _error(messages)
    assert status == "error" and err["node_id"] == "10", err
    assert "changed: graph: node 16 (WorldWarpSTDiffSampler) steps 2 -> 3" in err["exception_message"]
    # resumed unchanged: every chunk is in the folder, so no body node runs again
    status, messages = run(wired_prompt("wired", resume=True))
    assert status == "success", messages
    assert np.array_equal(frames_of(server["out"] / "wired"), wired_frames)


def test_every_workflow_loads_without_missing_or_overlapping_nodes(server):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    modules = os.path.join(HARNESS, "browser", "node_modules")
    if chromium is None or not os.path.isdir(modules) or shutil.which("node") is None:
        pytest.skip("headless Chromium / playwright-core / node not installed (setup.sh --browser)")
    wf_dir = os.path.join(ROOT, "workflows")
    files = sorted(os.path.join(wf_dir, f) for f in os.listdir(wf_dir) if f.endswith(".json"))
    r = subprocess.run(["node", os.path.join(ROOT, "tests", "browser", "layout_check.js"), URL, "400", chromium,
                        *files], capture_output=True, text=True, timeout=600, env=dict(os.environ, NODE_PATH=modules))
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)
    for f in files:
        wf = json.load(open(f))
        got = report[f]
        assert len(got["nodes"]) == len(wf["nodes"]), f
        assert got["overlaps"] == [] and got["overlaps_after_run"] == [], (f, got["overlaps_after_run"])
        # grouped by stage: every node in exactly one group (the frontend's own membership), wholly inside it
        # (title bar included), and no two groups overlap
        assert got["groups"] and got["group_overlaps"] == [], (f, got["group_overlaps"])
        rects = {str(n["id"]): n["rect"] for n in got["nodes"]}
        owners = {nid: [g for g in got["groups"] if nid in {str(i) for i in g["nodes"]}] for nid in rects}
        assert all(len(gs) == 1 for gs in owners.values()), (f, {k: [g["title"] for g in v] for k, v in owners.items()
                                                                 if len(v) != 1})
        for nid, (g,) in owners.items():
            (x, y, w, h), (gx, gy, gw, gh) = rects[nid], g["rect"]
            assert gx <= x and gy <= y and x + w <= gx + gw and y + h <= gy + gh, (f, nid, g["title"])
        env = dict(os.environ, COMFY_PACK_NAME="worldwarp")
        b = subprocess.run([os.path.join(HARNESS, "browser_check"), "--workflow", f, "--url", URL],
                           capture_output=True, text=True, timeout=600, env=env)
        res = json.loads(b.stdout[b.stdout.index("{"):])
        assert res["missing_node_types"] == [] and res["page_errors"] == [], (f, res)
