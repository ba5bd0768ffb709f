"""The Camera Director in the REAL ComfyUI server and frontend (headless Chromium).

A workflow (image -> tiny Depth Pro -> Estimate Geometry -> Camera Director -> Save Cameras) is
loaded and queued, a keyframe is dragged with mouse events, the workflow is reloaded from what the
frontend saved and queued again: the cameras Save Cameras wrote equal the dragged path the editor
drew (to 1e-9), the edit survives the reload, the editor's drawing is not empty, and the page
logged no error. The HTTP routes answer hostile bodies with 400s while /ping stays fast.
Skipped with a reason without a ComfyUI tree, Chromium or playwright-core.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
import torch
from comfy_tree import COMFY_PY, COMFYUI_DIR, HARNESS, ROOT, needs_comfy, server_url

PORT, URL = server_url(8192)
PLAYWRIGHT = os.path.join(HARNESS, "browser", "node_modules", "playwright-core")
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = needs_comfy


def _post(route, body, timeout=60):
    req = urllib.request.Request(URL + route, data=body if isinstance(body, bytes) else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("director")
    sys.path.insert(0, ROOT)
    from PIL import Image

    from worldwarp_core.geometry.testing import tiny_depth_pro
    from worldwarp_core.synthetic import default_scene

    models = tmp / "models"
    tiny_depth_pro().save_pretrained(str(models / "worldwarp" / "depth-pro-hf"))
    cfg = tmp / "extra_model_paths.yaml"
    cfg.write_text(f"director_test:\n  base_path: {models}\n  worldwarp: worldwarp/\n")
    scene = default_scene()
    rgb, _ = scene.render(scene.default_camera(96, 64))
    input_dir = os.path.join(COMFYUI_DIR, "input")
    os.makedirs(input_dir, exist_ok=True)
    Image.fromarray((rgb[0].numpy() * 255).astype("uint8")).save(os.path.join(input_dir, "director_test.png"))
    out = tmp / "out"
    cmd = [sys.executable, os.path.join(HARNESS, "run_workflow.py"), "--start-only", "--start", "always",
           "--url", URL, "--comfy-dir", COMFYUI_DIR, "--python", COMFY_PY, f"--server-arg=--output-directory={out}",
           f"--server-arg=--extra-model-paths-config={cfg}", "--server-arg=--cpu"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    found = re.search(r"left running \(pid (\d+)\)", r.stdout + r.stderr)
    pid = int(found.group(1)) if found else None
    if pid is None:
        pytest.fail(f"could not start ComfyUI: {r.stdout[-2000:]} {r.stderr[-2000:]}")
    try:
        yield tmp, out
    finally:
        os.killpg(pid, signal.SIGTERM)


def _workflow():
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from build_workflows import Graph

    g = Graph()
    inputs, camera = g.group("Image and geometry", "models"), g.group("Camera path", "inputs")
    img = g.add("LoadImage", inputs, {"image": "director_test.png", "upload": "image"})
    gm = g.add("WorldWarpLoadGeometryModel", inputs, {"backend": "depth-pro", "folder": "depth-pro-hf"}, column=1)
    geo = g.add("WorldWarpEstimateGeometry", inputs, column=1)
    g.link(gm, "geometry_model", geo, "geometry_model")
    g.link(img, "IMAGE", geo, "images")
    d = g.add("WorldWarpCameraDirector", camera, {"preset": "dolly_in@0.4 + pan_left@0.8", "frames": 17})
    g.link(img, "IMAGE", d, "image")
    g.link(geo, "geometry", d, "geometry")
    save = g.add("WorldWarpSaveCameras", camera, {"filename_prefix": "director_test/cams"}, column=1)
    g.link(d, "cameras", save, "cameras")
    g.layout([[inputs, camera]])
    return g.to_json("Camera Director browser test")


def test_routes_answer_bad_bodies_with_400_and_stay_off_the_event_loop(server):
    status, body = _post("/worldwarp/director/path", {"preset": "dolly_in", "frames": 5})
    assert status == 200 and body["frames"] == 5 and body["mode"] == "preset"
    for bad, message in ((b"{", "not JSON"), (b"[]", "must be a JSON object"), ({"frames": 1e400}, "finite"),
                         ({"preset": "warp_speed"}, "unknown camera preset"), ({"keyframes": "{"}, "not valid JSON")):
        status, body = _post("/worldwarp/director/path", bad)
        assert status == 400 and message in body["error"], (bad, status, body)
    status, body = _post("/worldwarp/director/scene", {"scene": "0123456789abcdef"})
    assert status == 404 and "run the Camera Director node again" in body["error"]
    # a long fit runs in a worker thread: /ping keeps answering meanwhile
    import threading

    slow = threading.Thread(target=_post, args=("/worldwarp/director/fit", {"preset": "spiral * orbit_left",
                                                                             "frames": 2000}, 120))
    slow.start()
    worst = 0.0
    while slow.is_alive():
        t = time.perf_counter()
        urllib.request.urlopen(URL + "/system_stats", timeout=10).read()
        worst = max(worst, time.perf_counter() - t)
        time.sleep(0.05)
    slow.join()
    assert worst < 1.0, worst


def test_drag_reload_queue_gives_the_dragged_cameras(server):
    if not (CHROMIUM and os.path.isdir(PLAYWRIGHT) and shutil.which("node")):
        pytest.skip("headless Chromium / node / playwright-core not installed (setup.sh --browser)")
    tmp, out = server
    wf = tmp / "director.json"
    wf.write_text(json.dumps(_workflow()))
    shots = tmp / "shots"
    shots.mkdir()
    r = subprocess.run(["node", os.path.join(ROOT, "tests", "director_browser.js"), "--url", URL, "--workflow",
                        str(wf), "--out", str(shots), "--playwright", PLAYWRIGHT, "--chromium", CHROMIUM],
                       capture_output=True, text=True, timeout=900)
    report = json.loads((shots / "report.json").read_text())
    if os.environ.get("DIRECTOR_SHOTS"):  # keep the screenshots to look at
        shutil.copytree(shots, os.environ["DIRECTOR_SHOTS"], dirs_exist_ok=True)
    assert report.get("fatal") is None, (report.get("fatal"), r.stderr[-2000:])
    # no uncaught error at all, no console error from this pack (the frontend logs its own, e.g. blocked
    # model-download checks), and every request to the pack's routes and files succeeded
    ours = [e for e in report["console_errors"] if "worldwarp" in (e["url"] + e["text"]).lower()
            or "director" in e["text"].lower()]
    assert ours == [] and report["page_errors"] == [], (ours, report["page_errors"])
    assert not [r for r in report["failed_requests"] if "worldwarp" in r], report["failed_requests"]
    before, after = report["before"], report["after"]
    # the scene is drawn (points, path, frusta) and a preset became editable keyframes by dragging
    assert before["scene_points"] > 1000 and before["drawn"] > 0.05 and after["drawn"] > 0.05
    assert before["mode"] == "preset" and before["keyframes"] == "" and after["mode"] == "keyframes"
    assert len(before["coverage"]) == before["frames"] == 17 and before["coverage"][0] == 1.0
    # the keyframe under the mouse (the nearest one) was picked and followed it: 64 px right, 40 up
    moved = [h for h in after["handles"] if h and h["index"] == after["selected"]][0]
    assert after["selected"] >= 0 and moved["x"] - report["dragged_handle"]["x"] > 30
    assert report["dragged_handle"]["y"] - moved["y"] > 15
    assert after["viewmats"] != before["viewmats"]
    # the edit reloads, and the reloaded editor draws the same cameras
    assert report["reloaded"]["keyframes"] == after["keyframes"]
    assert report["reloaded"]["viewmats"] == after["viewmats"]
    assert all(s["status_str"] == "success" for s in report["history"]), report["history"]
    files = sorted((out / "director_test").glob("cams*.json"))  # ComfyUI's counter naming: one per run
    saved = json.loads(files[-1].read_text())
    got = torch.tensor([f["viewmat"] for f in saved["frames"]], dtype=torch.float64)
    drawn = torch.tensor(after["viewmats"], dtype=torch.float64).reshape(-1, 4, 4)
    torch.testing.assert_close(got, drawn, atol=1e-9, rtol=0)
    # the screenshots show a non-empty editor (not one flat colour) where the node's canvas is
    from PIL import Image

    for name in ("director_before.png", "director_after.png", "director_reloaded.png"):
        img = Image.open(shots / name).convert("RGB")
        box = report["after"]["rect"]
        crop = torch.tensor(list(img.crop((int(box["x"]), int(box["y"]), int(box["x"] + box["width"]),
                                           int(box["y"] + box["height"]))).getdata()), dtype=torch.float32)
        assert crop.std(dim=0).mean() > 10, name
