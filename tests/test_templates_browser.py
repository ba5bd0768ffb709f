"""The shipped workflows in the REAL ComfyUI's Templates browser (a tree set up by
../shared/tools/comfy/setup.sh --browser): the server lists every workflow of ``workflows/`` and serves
its thumbnail; in the frontend each card shows the file name as its whole title and our picture (not the
stand-in), and clicking a card loads that workflow. Skipped with a reason when no tree is available.
"""

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest
from comfy_tree import COMFYUI_DIR, HARNESS, HAVE_COMFY, ROOT, server_url
from PIL import Image

PACK = os.environ.get("COMFY_PACK_NAME", "worldwarp")
PORT, URL = server_url(8196, "COMFY_TEMPLATES_PORT")  # beside the other real-server tests' port
MODULES = os.path.join(HARNESS, "browser", "node_modules")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WF_DIR = os.path.join(ROOT, "workflows")
NAMES = sorted(f.removesuffix(".json") for f in os.listdir(WF_DIR) if f.endswith(".json"))

pytestmark = pytest.mark.skipif(
    not (HAVE_COMFY and os.path.exists(os.path.join(COMFYUI_DIR, "custom_nodes", PACK))
         and CHROMIUM and os.path.isdir(MODULES) and shutil.which("node")),
    reason="no ComfyUI tree with this pack linked, or no headless Chromium / playwright-core / node "
           "(run ../shared/tools/comfy/setup.sh --browser to enable)",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("comfy_templates")
    log = tmp / "start.log"
    with open(log, "w") as f:
        r = subprocess.run([sys.executable, os.path.join(HARNESS, "run_workflow.py"), "--start-only", "--start",
                            "always", "--comfy-dir", COMFYUI_DIR, "--url", URL, "--output-dir", str(tmp / "out"),
                            "--pack", PACK], stdout=f, stderr=subprocess.STDOUT, timeout=600)
    text = log.read_text()
    assert r.returncode == 0, text[-3000:]
    pid = int(text.split("server left running (pid ")[1].split(")")[0])
    yield tmp
    os.killpg(pid, 15)  # the server this fixture started, by its process group id


def _get(path: str) -> bytes:
    with urllib.request.urlopen(URL + path, timeout=60) as r:
        return r.read()


def test_the_server_lists_every_workflow_and_serves_its_thumbnail(server):
    listed = json.loads(_get("/api/workflow_templates"))
    assert sorted(listed[PACK]) == NAMES
    for name in NAMES:  # file names with spaces, quoted as the frontend does
        got = _get(f"/api/workflow_templates/{PACK}/" + urllib.parse.quote(name + ".jpg"))
        assert got == open(os.path.join(WF_DIR, name + ".jpg"), "rb").read(), name


def test_every_card_shows_its_whole_title_and_our_thumbnail(server):
    shot = server / "templates.png"
    r = subprocess.run(["node", os.path.join(ROOT, "tests", "browser", "templates_check.js"), URL, CHROMIUM,
                        str(shot), PACK, "WorldWarp full generator"],
                       capture_output=True, text=True, timeout=600, env=dict(os.environ, NODE_PATH=MODULES))
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)
    assert report["page_errors"] == [], report["page_errors"]
    cards = {c["name"]: c for c in report["cards"]}
    assert sorted(cards) == NAMES
    for name, card in cards.items():
        assert card["title"] == name and not card["title_cut"], card
        size = list(Image.open(os.path.join(WF_DIR, name + ".jpg")).size)
        assert not card["stand_in"] and card["loaded"] == size and min(card["shown"]) >= 200, card
    wf = json.load(open(os.path.join(WF_DIR, "WorldWarp full generator.json")))
    assert report["opened"]["nodes"] == len(wf["nodes"])
    assert shot.stat().st_size > 0


def test_choosing_a_profile_sets_the_nodes_widgets_and_they_stay_editable(server):
    """The frontend asks GET /worldwarp/profiles and sets the widgets a profile defines; the
    values are the pack's own (``pipeline.profile_widget_values``)."""
    sys.path.insert(0, ROOT)
    from nodes.specs import PROFILE_WIDGETS
    from worldwarp_core.pipeline import profile_widget_values

    assert json.loads(_get("/worldwarp/profiles"))["WorldWarpChunkLoop"]["official-demo"]["chunk_frames"] == 81
    for node_type in ("WorldWarpChunkLoop", "WorldWarpLoopStart"):
        r = subprocess.run(["node", os.path.join(ROOT, "tests", "browser", "profile_check.js"), URL, CHROMIUM,
                            node_type, "official-demo", "paper", "pack"],
                           capture_output=True, text=True, timeout=600, env=dict(os.environ, NODE_PATH=MODULES))
        assert r.returncode == 0, r.stderr[-3000:]
        report = json.loads(r.stdout)
        assert report["page_errors"] == [], report["page_errors"]
        first, *chosen, edited = report["steps"]
        assert first["widgets"]["profile"] == "pack"
        for step in chosen:
            want = profile_widget_values(step["chose"], PROFILE_WIDGETS[node_type])
            assert {k: step["widgets"][k] for k in want} == want, (node_type, step["chose"])
        assert chosen[0]["widgets"]["chunk_frames"] == 81 and chosen[-1]["widgets"]["chunk_frames"] == 49
        assert edited["widgets"]["chunk_frames"] == 17 and edited["widgets"]["profile"] == "pack"
