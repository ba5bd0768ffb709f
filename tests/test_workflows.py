"""Shipped workflows reference only existing node types, link consistently and carry valid widget values."""

import json
import os

import pytest

from nodes.specs import spec_by_id

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WF_DIR = os.path.join(ROOT, "workflows")
WORKFLOWS = sorted(f for f in os.listdir(WF_DIR) if f.endswith(".json"))
CORE_WIDGETS = {"LoadImage": 2, "ImageScale": 4, "SaveImage": 1, "PreviewImage": 0, "MaskToImage": 0,
                "ImageBlur": 2, "GrowMask": 2, "RenderSplat": 9, "UNETLoader": 2, "VAELoader": 1, "CLIPLoader": 3,
                "CLIPTextEncode": 1, "MarkdownNote": 1, "SaveVideo": 3, "CreateVideo": 2}
WIDGET_KINDS = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def test_five_workflows_ship():
    assert len(WORKFLOWS) >= 5
    names = " ".join(WORKFLOWS)
    for words in ("full generator", "one chunk", "stylized", "edits in the loop body", "training free", "compact"):
        assert words in names


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_starts_with_a_note_on_model_files_and_saves_a_video(name):
    wf = json.load(open(os.path.join(WF_DIR, name)))
    first = wf["nodes"][0]
    assert first["type"] == "MarkdownNote"
    text = first["widgets_values"][0]
    for needed in ("models/diffusion_models/", "models/vae/", "models/text_encoders/", "models/worldwarp/",
                   "wan_2.1_vae.safetensors", "| from |"):
        assert needed in text, (name, needed)
    types = {n["type"] for n in wf["nodes"]}
    if "one chunk" not in name:
        assert "SaveVideo" in types and "SaveImage" in types, name


@pytest.mark.parametrize("name", [w for w in WORKFLOWS if "one chunk" not in w and "compact" not in w])
def test_generators_are_the_wired_loop(name):
    """Every stage of the loop is a node of the graph between Loop Start and Loop End."""
    wf = json.load(open(os.path.join(WF_DIR, name)))
    types = {n["type"] for n in wf["nodes"]}
    assert {"WorldWarpLoopStart", "WorldWarpEstimateGeometry", "WorldWarpAlignToHistory", "WorldWarpBuildCache",
            "WorldWarpRenderHints", "WorldWarpSTDiffSampler", "WorldWarpLoopEnd"} <= types
    assert "WorldWarpChunkLoop" not in types


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_is_consistent(name):
    wf = json.load(open(os.path.join(WF_DIR, name)))
    specs = spec_by_id()
    nodes = {n["id"]: n for n in wf["nodes"]}
    for node in wf["nodes"]:
        t = node["type"]
        assert t in specs or t in CORE_WIDGETS, f"{name}: unknown node type {t}"
        values = node["widgets_values"]
        if t in CORE_WIDGETS:
            assert len(values) == CORE_WIDGETS[t], (name, t)
            continue
        spec = specs[t]
        widgets = [i for i in spec.inputs if i.kind in WIDGET_KINDS]
        it = iter(values)
        for w in widgets:
            v = next(it)
            if w.name == "seed":
                assert next(it) in ("fixed", "increment", "decrement", "randomize")
            if w.kind in ("INT", "FLOAT"):
                assert isinstance(v, (int, float)) and w.min <= v <= w.max, (name, t, w.name, v)
            elif w.kind == "BOOLEAN":
                assert isinstance(v, bool), (name, t, w.name)
            elif w.kind == "STRING":
                assert isinstance(v, str), (name, t, w.name)
            elif not callable(w.options):
                assert v in w.options, (name, t, w.name, v)
            else:
                assert isinstance(v, str) and v, (name, t, w.name)
        assert next(it, None) is None, f"{name}: {t} has extra widget values"
        sockets = [i for i in spec.inputs if i.kind not in WIDGET_KINDS]
        assert [s["name"] for s in node["inputs"] if "widget" not in s] == [s.name for s in sockets]
        for s in node["inputs"]:  # a widget fed by a link (the sampler's seed from Loop Start)
            if "widget" in s:
                assert s["widget"]["name"] == s["name"] in [w.name for w in widgets] and s["link"] is not None
        for s, socket in zip([s for s in node["inputs"] if "widget" not in s], sockets):
            assert s["link"] is not None or socket.optional, f"{name}: {t}.{s['name']} is not connected"
    for lid, src, src_slot, dst, dst_slot, kind in wf["links"]:
        assert nodes[src]["outputs"][src_slot]["type"] == kind
        assert nodes[dst]["inputs"][dst_slot]["link"] == lid
        assert lid in nodes[src]["outputs"][src_slot]["links"]


def _inside(inner, outer) -> bool:
    x, y, w, h = inner
    gx, gy, gw, gh = outer
    return gx <= x and gy <= y and x + w <= gx + gw and y + h <= gy + gh


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_is_grouped_by_stage(name):
    """Every node lies wholly inside exactly one titled group (its title bar too, below the group's own),
    no two groups overlap, and the stages a user looks for each have their group."""
    wf = json.load(open(os.path.join(WF_DIR, name)))
    groups = wf["groups"]
    titles = [g["title"] for g in groups]
    assert len(set(titles)) == len(titles), titles
    for i, a in enumerate(groups):
        for b in groups[i + 1:]:
            assert not _overlap(a["bounding"], b["bounding"]), (name, a["title"], b["title"])
    for node in wf["nodes"]:
        rect = [node["pos"][0], node["pos"][1] - 30, node["size"][0], node["size"][1] + 30]  # title bar above pos
        owners = [g["title"] for g in groups if _inside(rect, g["bounding"])]
        assert len(owners) == 1, (name, node["id"], node["type"], owners)
        below_title = [g for g in groups if g["title"] == owners[0]][0]["bounding"][1] + 40
        assert rect[1] >= below_title, (name, node["type"], "under the group's title")
    words = " ".join(titles).lower()
    for stage in ("models", "camera path", "outputs"):
        assert stage in words, (name, stage)
    if "one chunk" not in name and "compact" not in name:
        for stage in ("geometry", "3dgs cache", "hints", "st-diff sampler"):
            assert "loop body" in words and stage in words, (name, stage)
        body = {g["title"] for g in groups if g["title"].startswith("Loop body")}
        for node in wf["nodes"]:
            if node["type"] in {"WorldWarpBuildCache", "WorldWarpRenderHints", "WorldWarpSTDiffSampler",
                                "WorldWarpAlignToHistory"}:
                rect = [node["pos"][0], node["pos"][1] - 30, node["size"][0], node["size"][1] + 30]
                assert any(_inside(rect, g["bounding"]) for g in groups if g["title"] in body), (name, node["type"])
