"""The Templates browser's thumbnails: one beside every shipped workflow, drawn from its graph, byte-stable."""

import copy
import json
import os
import sys

import numpy as np
import pytest
from PIL import Image, ImageFont

from nodes.specs import spec_by_id

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import workflow_thumbnails as wt  # noqa: E402

WF_DIR = os.path.join(ROOT, "workflows")
WORKFLOWS = sorted(f for f in os.listdir(WF_DIR) if f.endswith(".json"))


def _load(name: str) -> dict:
    return json.load(open(os.path.join(WF_DIR, name), encoding="utf-8"))


def _reach(wf: dict, start: int, forward: bool) -> set[int]:
    step = {}
    for _lid, src, _s, dst, _d, _k in wf["links"]:
        a, b = (src, dst) if forward else (dst, src)
        step.setdefault(a, []).append(b)
    seen, todo = {start}, [start]
    while todo:
        for m in step.get(todo.pop(), []):
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


def _id(wf: dict, node_type: str) -> int:
    return next(n["id"] for n in wf["nodes"] if n["type"] == node_type)


def test_the_bundled_font_takes_a_size():
    # requirements.txt asks for pillow>=10.1, where load_default(size=...) gives the scalable bundled font
    assert isinstance(ImageFont.load_default(size=20), ImageFont.FreeTypeFont)


@pytest.mark.parametrize("name", WORKFLOWS)
def test_every_workflow_has_its_thumbnail(name):
    path = os.path.join(WF_DIR, name.removesuffix(".json") + ".jpg")
    with Image.open(path) as im:
        assert im.format == "JPEG" and im.size == (wt.SIZE, wt.SIZE) and im.mode == "RGB"
        im.load()


def test_no_thumbnail_without_a_workflow_and_names_read_as_titles():
    files = os.listdir(WF_DIR)
    jpgs = {f.removesuffix(".jpg") for f in files if f.endswith(".jpg")}
    assert jpgs == {f.removesuffix(".json") for f in WORKFLOWS}
    assert set(files) == {f + ".json" for f in jpgs} | {f + ".jpg" for f in jpgs}
    for f in WORKFLOWS:  # the frontend's description replaces - and _ with spaces: titles have none
        assert f.startswith("WorldWarp ") and "_" not in f and "-" not in f, f


@pytest.mark.parametrize("name", WORKFLOWS)
def test_the_shipped_thumbnail_is_the_picture_of_the_shipped_graph(name):
    """A stale picture (the graph changed, build_workflows.py not rerun) differs; another Pillow/FreeType build
    may round a few text pixels differently, hence a tolerance rather than equal bytes (one changed line of
text is about 1% of the pixels)."""
    title = name.removesuffix(".json")
    fresh = np.asarray(wt.render(title, _load(name)), dtype=np.float32)
    with Image.open(os.path.join(WF_DIR, title + ".jpg")) as im:
        shipped = np.asarray(im.convert("RGB"), dtype=np.float32)
    changed = (np.abs(fresh - shipped).max(axis=2) > 80).mean()  # JPEG rounding alone stays far below 80
    assert changed < 0.002, f"{name}: rerun python scripts/build_workflows.py ({changed:.2%} of the pixels differ)"


def test_the_same_workflow_gives_the_same_bytes():
    wf = _load("WorldWarp full generator.json")
    a = wt.thumbnail_bytes("WorldWarp full generator", wf)
    assert a == wt.thumbnail_bytes("WorldWarp full generator", copy.deepcopy(wf))
    assert a[:2] == b"\xff\xd8" and a != wt.thumbnail_bytes("WorldWarp other title", wf)


def test_building_twice_writes_identical_files_and_removes_stale_ones(tmp_path):
    import build_workflows

    (tmp_path / "worldwarp_old_name.json").write_text("{}")
    (tmp_path / "worldwarp_old_name.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("kept")
    build_workflows.write_all(str(tmp_path))
    first = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    build_workflows.write_all(str(tmp_path))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == first
    assert set(first) == {f for name in build_workflows.WORKFLOWS
                          for f in (name, name.removesuffix(".json") + ".jpg")} | {"notes.txt"}


def test_the_full_generators_boxes_are_its_loop_body():
    """The boxes are every node on a path from Loop Start to Loop End, each once, and every link inside the
    body goes from an earlier box to a later one."""
    wf = _load("WorldWarp full generator.json")
    start, end = _id(wf, "WorldWarpLoopStart"), _id(wf, "WorldWarpLoopEnd")
    body = _reach(wf, start, True) & _reach(wf, end, False)
    g = wt.diagram(wf)
    assert g.kind == "loop"
    place = {b.node_id: i for i, slot in enumerate(g.slots) for b in slot}
    assert sorted(place) == sorted(body) and sum(map(len, g.slots)) == len(body)
    assert place[start] == 0 and place[end] == len(g.slots) - 1
    for _lid, src, _s, dst, _d, _k in wf["links"]:
        if src in body and dst in body:
            assert place[src] < place[dst], (src, dst)
    types = {n["id"]: n["type"] for n in wf["nodes"]}
    names = spec_by_id()
    assert [[b.label for b in slot] for slot in g.slots] == [
        [names[types[b.node_id]].display_name.removeprefix("WorldWarp ") for b in slot] for slot in g.slots]
    # as the paper's Fig. 3 reads: one stage after the other
    assert [b.label for slot in g.slots for b in slot] == [
        "Loop Start", "Estimate Geometry", "Align Depth To Previous Chunk", "Build 3DGS Cache", "Render Warp Hints",
        "Remembered Hints", "ST-Diff Sampler", "Loop End"]


def test_nodes_added_to_the_body_appear_where_they_are_wired():
    full = [[b.label for b in s] for s in wt.diagram(_load("WorldWarp full generator.json")).slots]
    edited = wt.diagram(_load("WorldWarp edits in the loop body.json"))
    at = full.index(["Render Warp Hints"]) + 1
    assert [[b.label for b in s] for s in edited.slots] == full[:at] + [["Image Blur", "Grow Mask"]] + full[at:]
    assert {b.family for b in edited.slots[at]} == {"core"}
    styled = [[b.label for b in s] for s in wt.diagram(_load("WorldWarp stylized prompt.json")).slots]
    assert ["Remembered Hints", "Describe Scene"] in styled  # both feed the sampler, neither the other


def test_each_kind_of_workflow_gets_its_own_schematic():
    compact = wt.diagram(_load("WorldWarp compact chunk loop.json"))
    assert compact.kind == "compact" and [[b.label for b in s] for s in compact.slots] == [["Chunk Loop"]]
    chunk = wt.diagram(_load("WorldWarp one chunk step by step.json"))
    labels = [b.label for s in chunk.slots for b in s]
    assert chunk.kind == "chunk" and labels[0] == "Estimate Geometry" and labels[-1] == "ST-Diff Sampler"
    assert "Loop Start" not in labels and "Build 3DGS Cache" in labels
    director = wt.diagram(_load("WorldWarp Camera Director.json"))
    keys = json.loads(wt.widget_values(next(n for n in _load("WorldWarp Camera Director.json")["nodes"]
                                            if n["type"] == "WorldWarpCameraDirector"))["keyframes"])["keyframes"]
    assert director.camera_path is not None and len(director.camera_path) == len(keys) + 1
    assert director.camera_path[-1][:2] == (keys[-1]["position"][0], keys[-1]["position"][2])
    assert wt.diagram(_load("WorldWarp training free.json")).model == "Load Diffusion Model"
    assert wt.diagram(_load("WorldWarp full generator.json")).model == "Load WorldWarp Diffusion Model"


def test_a_workflow_without_stages_or_with_a_cut_loop_is_refused():
    wf = _load("WorldWarp full generator.json")
    with pytest.raises(ValueError, match="needs WorldWarp Loop Start"):
        wt.diagram({"nodes": [n for n in wf["nodes"] if n["type"] == "MarkdownNote"], "links": []})
    cut = copy.deepcopy(wf)
    end = _id(cut, "WorldWarpLoopEnd")
    cut["links"] = [lk for lk in cut["links"] if lk[3] != end]
    with pytest.raises(ValueError, match="no path of links"):
        wt.diagram(cut)
