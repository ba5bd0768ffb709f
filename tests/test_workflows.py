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
                "CLIPTextEncode": 1}
WIDGET_KINDS = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def test_five_workflows_ship():
    assert len(WORKFLOWS) >= 5
    names = " ".join(WORKFLOWS)
    for word in ("full_generator", "one_chunk", "stylized", "component_swap", "training_free"):
        assert word in names


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
        assert [s["name"] for s in node["inputs"]] == [s.name for s in sockets]
        for s, socket in zip(node["inputs"], sockets):
            assert s["link"] is not None or socket.optional, f"{name}: {t}.{s['name']} is not connected"
    for lid, src, src_slot, dst, dst_slot, kind in wf["links"]:
        assert nodes[src]["outputs"][src_slot]["type"] == kind
        assert nodes[dst]["inputs"][dst_slot]["link"] == lid
        assert lid in nodes[src]["outputs"][src_slot]["links"]
