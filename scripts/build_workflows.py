"""Writes the shipped UI-format workflows in ``workflows/`` from one description each, and beside each one the
thumbnail ComfyUI's Templates browser shows (``scripts/workflow_thumbnails.py``).

Widget values of our nodes come from ``nodes/specs.py`` defaults (so they stay valid when a
node gains an input); a workflow only states what it changes. Run after changing a node:

    python scripts/build_workflows.py
"""

from __future__ import annotations

import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from workflow_thumbnails import thumbnail_bytes  # noqa: E402  (beside this script)

from nodes.specs import SPECS  # noqa: E402
from worldwarp_core.caption import DEFAULT_NEGATIVE  # noqa: E402

WIDGET_KINDS = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
MODEL_FILES = {
    "transformer": "wan2.1_t2v_1.3B_fp16.safetensors",
    "vae": "wan_2.1_vae.safetensors",
    "text_encoder": "umt5_xxl_fp16.safetensors",
    "tokenizer": "umt5-xxl-tokenizer",
    "worldwarp_checkpoint": "worldwarp_latest.ckpt",
}
# core nodes used by the workflows: (inputs as sockets, widget names in order, outputs)
CORE = {
    "LoadImage": ([], ["image", "upload"], [("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "ImageScale": ([("image", "IMAGE")], ["upscale_method", "width", "height", "crop"], [("IMAGE", "IMAGE")]),
    "SaveImage": ([("images", "IMAGE")], ["filename_prefix"], []),
    "PreviewImage": ([("images", "IMAGE")], [], []),
    "MaskToImage": ([("mask", "MASK")], [], [("IMAGE", "IMAGE")]),
    "ImageBlur": ([("image", "IMAGE")], ["blur_radius", "sigma"], [("IMAGE", "IMAGE")]),
    "GrowMask": ([("mask", "MASK")], ["expand", "tapered_corners"], [("MASK", "MASK")]),
    "SaveVideo": ([("video", "VIDEO")], ["filename_prefix", "format", "codec"], []),
    "CreateVideo": ([("images", "IMAGE"), ("audio", "AUDIO")], ["fps", "bit_depth"], [("VIDEO", "VIDEO")]),
    "MarkdownNote": ([], ["text"], []),
    # ComfyUI's own model loaders: the workflows use them
    "UNETLoader": ([], ["unet_name", "weight_dtype"], [("MODEL", "MODEL")]),
    "VAELoader": ([], ["vae_name"], [("VAE", "VAE")]),
    "CLIPLoader": ([], ["clip_name", "type", "device"], [("CLIP", "CLIP")]),
    "CLIPTextEncode": ([("clip", "CLIP")], ["text"], [("CONDITIONING", "CONDITIONING")]),
    "RenderSplat": ([("splat", "SPLAT"), ("bg_image", "IMAGE"), ("camera_info", "LOAD3D_CAMERA")],
                    ["width", "height", "frames", "splat_scale", "sharpen", "headlight_shading", "opacity_threshold",
                     "render_style", "background"], [("image", "IMAGE"), ("mask", "MASK")]),
}
CORE_OPTIONAL = {"RenderSplat": {"bg_image", "camera_info"}, "CreateVideo": {"audio"}}


# ComfyUI group colours (the frontend's palette), by what a group holds
GROUP_COLORS = {"note": "#b06634", "models": "#3f789e", "inputs": "#8A8", "loop": "#a1309b", "body": "#b58b2a",
                "outputs": "#88A"}
TITLE_H = 30  # the frontend draws a node's title bar above its pos
GROUP_TITLE_H = 50  # a group's title bar (the frontend draws its titles at 20 px)
PAD, NODE_GAP, COLUMN_GAP, GROUP_GAP = 16, 24, 30, 50
VIEW = (1600, 1000)  # the canvas the opening view (extra.ds) fits the graph into


class Graph:
    """A UI-format workflow built node by node. Every node belongs to a titled group (ComfyUI groups) and a
    column inside it; :meth:`layout` places the groups in rows and the nodes in their columns, so no two
    nodes and no two groups overlap and every node lies inside its group."""

    def __init__(self) -> None:
        self.nodes, self.links, self.groups = [], [], {}  # groups: title -> (colour kind, [[node ids] per column])
        self.rows: list[list[str]] = []

    def group(self, title: str, kind: str) -> str:
        self.groups[title] = (kind, [])
        return title

    def add(self, node_type: str, group: str, widgets: dict | None = None, title: str | None = None,
            size: tuple[int, int] | None = None, column: int = 0) -> int:
        widgets = widgets or {}
        nid = len(self.nodes) + 1
        spec = next((s for s in SPECS if s.node_id == node_type), None)
        if spec is not None:
            sockets = [(i.name, i.kind) for i in spec.inputs if i.kind not in WIDGET_KINDS]
            wnames = [i.name for i in spec.inputs if i.kind in WIDGET_KINDS]
            defaults = {i.name: i.default for i in spec.inputs if i.kind in WIDGET_KINDS}
            defaults.update({k: v for k, v in MODEL_FILES.items() if k in defaults})
            outputs = [(o.name, o.kind) for o in spec.outputs]
            optional = {i.name for i in spec.inputs if i.optional}
        else:
            sockets, wnames, outputs = CORE[node_type]
            defaults, optional = {}, CORE_OPTIONAL.get(node_type, set())
        unknown = set(widgets) - set(wnames)
        if unknown:
            raise ValueError(f"{node_type} has no widgets {sorted(unknown)}")
        values = []
        for n in wnames:
            values.append(widgets.get(n, defaults.get(n)))
            if n == "seed" and spec is not None:  # the frontend adds a control widget after an INT named seed
                values.append("fixed")
        node = {
            "id": nid, "type": node_type, "pos": [0, 0],
            # the frontend's rows: input and output slots side by side, then the widgets (a seed's control too)
            "size": list(size or (320, 60 + 26 * (len(wnames) + ("seed" in wnames and spec is not None)
                                                   + max(len(sockets), len(outputs))))),
            "flags": {}, "order": nid - 1, "mode": 0,
            "inputs": [{"name": n, "type": t, "link": None, **({"shape": 7} if n in optional else {})}
                       for n, t in sockets],
            "outputs": [{"name": n, "type": t, "links": [], "slot_index": i} for i, (n, t) in enumerate(outputs)],
            "properties": {"Node name for S&R": node_type}, "widgets_values": values,
        }
        if title:
            node["title"] = title
        node["_widgets"] = wnames
        self.nodes.append(node)
        columns = self.groups[group][1]
        while len(columns) <= column:
            columns.append([])
        columns[column].append(nid)
        return nid

    def layout(self, rows: list[list]) -> None:
        """Groups left to right in ``rows`` (top to bottom; a tuple of titles is a stack of groups, one below
        the other), each group's columns side by side, nodes stacked in their column."""
        placed = [t for row in rows for slot in row for t in ((slot,) if isinstance(slot, str) else slot)]
        if sorted(placed) != sorted(self.groups):
            raise ValueError(f"rows must place every group once: {sorted(placed)} vs {sorted(self.groups)}")
        self.bounds, y = {}, 0
        for row in rows:
            x, row_h = 0, 0
            for slot in row:
                gy, slot_w = y, 0
                for title in (slot,) if isinstance(slot, str) else slot:
                    w, h = self._place(title, x, gy)
                    gy += h + GROUP_GAP
                    slot_w = max(slot_w, w)
                x += slot_w + GROUP_GAP
                row_h = max(row_h, gy - GROUP_GAP - y)
            y += row_h + GROUP_GAP

    def _place(self, title: str, x: int, y: int) -> tuple[int, int]:
        cx, bottom = x + PAD, y + GROUP_TITLE_H
        for column in self.groups[title][1]:
            cy, width = y + GROUP_TITLE_H, 0
            for nid in column:
                node = self.nodes[nid - 1]
                node["pos"] = [cx, cy + TITLE_H]
                cy += TITLE_H + node["size"][1] + NODE_GAP
                width = max(width, node["size"][0])
            bottom = max(bottom, cy - NODE_GAP)
            cx += width + COLUMN_GAP
        w, h = cx - COLUMN_GAP + PAD - x, bottom + PAD - y
        self.bounds[title] = [x, y, w, h]
        return w, h

    def link(self, src: int, out_name: str, dst: int, in_name: str) -> None:
        s, d = self.nodes[src - 1], self.nodes[dst - 1]
        oi = next(i for i, o in enumerate(s["outputs"]) if o["name"] == out_name)
        if in_name not in [i["name"] for i in d["inputs"]] and in_name in d["_widgets"]:
            # a widget fed by a link (e.g. the sampler's seed from Loop Start): a socket marked as that widget
            d["inputs"].append({"name": in_name, "type": s["outputs"][oi]["type"], "widget": {"name": in_name},
                                "link": None})
        ii = next(i for i, o in enumerate(d["inputs"]) if o["name"] == in_name)
        lid = len(self.links) + 1
        kind = s["outputs"][oi]["type"]
        self.links.append([lid, src, oi, dst, ii, kind])
        s["outputs"][oi]["links"].append(lid)
        d["inputs"][ii]["link"] = lid

    def to_json(self, note: str) -> dict:
        nodes = [{k: v for k, v in n.items() if k != "_widgets"} for n in self.nodes]
        groups = [{"id": i + 1, "title": t, "bounding": self.bounds[t], "color": GROUP_COLORS[kind], "flags": {}} for i, (t, (kind, _)) in enumerate(self.groups.items())]
        # open with the whole graph in view (the frontend restores extra.ds): scale to fit, centred
        width = max(b[0] + b[2] for b in self.bounds.values())
        height = max(b[1] + b[3] for b in self.bounds.values())
        scale = round(min(VIEW[0] / (width + 80), VIEW[1] / (height + 80), 1.0), 3)
        offset = [round((VIEW[0] / scale - width) / 2, 1), round((VIEW[1] / scale - height) / 2, 1)]
        return {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": nodes,
                "links": self.links, "groups": groups, "config": {},
                "extra": {"info": {"description": note}, "ds": {"scale": scale, "offset": offset}}, "version": 0.4}


def _yaw(degrees: float) -> list[float]:  # a turn about the camera's vertical axis as (w, x, y, z)
    return [math.cos(math.radians(degrees) / 2), 0.0, math.sin(math.radians(degrees) / 2), 0.0]


# a keyframed path as the Camera Director writes it: forward, then a curve to the right while turning
DIRECTOR_KEYFRAMES = json.dumps({"frames": 93, "interpolation": "spline", "keyframes": [
    {"frame": 30, "position": [0.0, 0.0, 0.3], "rotation": _yaw(0.0), "focal": 1.0, "ease": "ease-in"},
    {"frame": 60, "position": [0.12, 0.0, 0.55], "rotation": _yaw(12.0), "focal": 1.0, "ease": "linear"},
    {"frame": 92, "position": [0.35, -0.03, 0.7], "rotation": _yaw(28.0), "focal": 1.0, "ease": "ease-out"}]})


FILES = {
    "wan": ("`wan2.1_t2v_1.3B_fp16.safetensors`", "`models/diffusion_models/`",
            "Comfy-Org/Wan_2.1_ComfyUI_repackaged (split_files/diffusion_models)"),
    "ckpt": ("`worldwarp_latest.ckpt`", "`models/diffusion_models/`", "the official WorldWarp release (qbhan/WorldWarp)"),
    "vae": ("`wan_2.1_vae.safetensors`", "`models/vae/`", "Comfy-Org/Wan_2.1_ComfyUI_repackaged (split_files/vae)"),
    "te": ("`umt5_xxl_fp16.safetensors`", "`models/text_encoders/`",
           "Comfy-Org/Wan_2.1_ComfyUI_repackaged (split_files/text_encoders)"),
    "depth": ("`depth-pro-hf/`", "`models/worldwarp/`", "apple/DepthPro-hf (transformers format)"),
    "vlm": ("`Florence-2-large/` or `Qwen2.5-VL-3B-Instruct/`", "`models/worldwarp/`",
            "florence-community/Florence-2-large, Qwen/Qwen2.5-VL-3B-Instruct"),
}


def note(title: str, what: str, files: list[str]) -> str:
    rows = "\n".join(f"| {FILES[f][0]} | {FILES[f][1]} | {FILES[f][2]} |" for f in files)
    return (f"## {title}\n\n{what}\n\n**Model files** (nothing is downloaded at run time):\n\n"
            f"| file | put it in | from |\n| --- | --- | --- |\n{rows}\n\n"
            "`python -m worldwarp_core check-models ComfyUI/models` lists what is found and what is missing.")


PROMPT = "a bright living room with large windows and wooden floors"


MODELS, INPUTS, PROMPT_GROUP, OUTPUTS, NOTE = ("Models", "Start image and camera path", "Prompt", "Outputs",
                                               "Read me")
LOOP_START, LOOP_END = "Chunk loop: start (frames, folder, resume)", "Chunk loop: end"
BODY = ("Loop body 1: geometry of the history", "Loop body 2: 3DGS cache", "Loop body 3: hints and masks",
        "Loop body 4: ST-Diff sampler")


def _core_models(g: Graph, training_free: bool = False) -> tuple[int, int, int]:
    """ComfyUI's own loaders for the user's model files: the transformer (the WorldWarp fine-tune through Load
    WorldWarp Diffusion Model, or base Wan2.1 with core Load Diffusion Model), Load VAE, Load CLIP (type wan)."""
    if training_free:
        model = g.add("UNETLoader", MODELS, {"unet_name": MODEL_FILES["transformer"], "weight_dtype": "default"},
                      size=(340, 90))
    else:
        model = g.add("WorldWarpLoadDiffusionModel", MODELS, {"checkpoint": MODEL_FILES["worldwarp_checkpoint"]},
                      size=(340, 90))
    vae = g.add("VAELoader", MODELS, {"vae_name": MODEL_FILES["vae"]}, size=(340, 60))
    clip = g.add("CLIPLoader", MODELS, {"clip_name": MODEL_FILES["text_encoder"], "type": "wan",
                                        "device": "default"}, size=(340, 110))
    return model, vae, clip


def _encode(g: Graph, clip: int, text: str, title: str, column: int = 0) -> int:
    enc = g.add("CLIPTextEncode", PROMPT_GROUP, {"text": text}, title=title, size=(340, 200), column=column)
    g.link(clip, "CLIP", enc, "clip")
    return enc


def _wire_models(g: Graph, model: int, vae: int, training_free: bool, target: int) -> None:
    g.link(model, "MODEL" if training_free else "model", target, "model")
    g.link(vae, "VAE", target, "vae")


def _note(g: Graph, text: str) -> None:
    g.group(NOTE, "note")
    g.add("MarkdownNote", NOTE, {"text": text}, size=(400, 440))


def _inputs(g: Graph, width=720, height=480, director: bool = False):
    """Start image, the geometry model (in Models), the start image's geometry and the camera path."""
    g.group(MODELS, "models")
    g.group(INPUTS, "inputs")
    img = g.add("LoadImage", INPUTS, {"image": "example.png", "upload": "image"}, size=(340, 370))
    scale = g.add("ImageScale", INPUTS, {"upscale_method": "lanczos", "width": width, "height": height,
                                         "crop": "center"})
    g.link(img, "IMAGE", scale, "image")
    geo_model = g.add("WorldWarpLoadGeometryModel", MODELS, {"backend": "depth-pro", "folder": "depth-pro-hf"})
    geo = g.add("WorldWarpEstimateGeometry", INPUTS, title="Estimate Geometry (start image)", column=1)
    g.link(geo_model, "geometry_model", geo, "geometry_model")
    g.link(scale, "IMAGE", geo, "images")
    if director:  # the path drawn over the scene in the Camera Director's 3D editor
        cams = g.add("WorldWarpCameraDirector", INPUTS, {"frames": 93, "keyframes": DIRECTOR_KEYFRAMES},
                     size=(560, 700), column=1)
    else:
        cams = g.add("WorldWarpCameraTrajectory", INPUTS, {"preset": "dolly_in@0.6 + pan_left@0.5", "frames": 49},
                     size=(340, 420), column=1)
    g.link(scale, "IMAGE", cams, "image")
    g.link(geo, "geometry", cams, "geometry")
    return scale, geo_model, cams


def wired_generator(kind: str = "full") -> Graph:
    """The whole generator as a graph: Loop Start -> stage nodes (+ edits) -> Loop End, once per chunk."""
    training_free, styled, edited = kind == "training_free", kind == "stylized", kind == "component_swap"
    director = kind == "director"
    g = Graph()
    what = {
        "full": "Image + camera path -> a long video, one 49-frame chunk at a time. Everything between "
                "**WorldWarp Loop Start** and **WorldWarp Loop End** (the four *Loop body* groups) runs once per "
                "chunk: edit it and the edit reaches every chunk. Finished chunks are saved in `output/worldwarp/run`; "
                "turn `resume` on to continue an interrupted run (off, a folder holding a run is refused; choose "
                "another folder).",
        "stylized": "A captioner describes each chunk's history and **Describe Scene** appends the style "
                    "(paper Fig. 8), once per chunk inside the loop.",
        "component_swap": "Hints and masks are plain IMAGE / MASK: core **Image Blur** and **Grow Mask** sit in "
                          "the loop's body, so they change every chunk of the video.",
        "training_free": "Base Wan2.1 weights without the WorldWarp fine-tune: the sampler's training-free mode.",
        "director": "The camera path drawn in 3D: queue once (or only the **Camera Director**) to see the start "
                    "image's point cloud, drag the keyframes, watch the coverage strip, then generate along exactly "
                    "that path.",
    }[kind]
    files = (["wan"] if training_free else ["ckpt"]) + ["vae", "te", "depth"] + (["vlm"] if styled else [])
    title = {"full": "WorldWarp: the full generator", "stylized": "WorldWarp: stylized prompt per chunk",
             "component_swap": "WorldWarp: edits in the loop body", "training_free": "WorldWarp: training-free",
             "director": "WorldWarp: Camera Director"}[kind]
    _note(g, note(title, what, files))
    scale, geo_model, cams = _inputs(g, director=director)
    model, vae, clip = _core_models(g, training_free)
    g.group(PROMPT_GROUP, "models")
    g.group(LOOP_START, "loop")
    for t in BODY:
        g.group(t, "body")
    g.group(LOOP_END, "loop")
    g.group(OUTPUTS, "outputs")
    folder = "worldwarp/" + {"full": "run", "stylized": "stylized", "component_swap": "edited",
                             "training_free": "training_free", "director": "director"}[kind]
    start = g.add("WorldWarpLoopStart", LOOP_START, {"frames": 93, "output_folder": folder}, size=(340, 600))
    g.link(scale, "IMAGE", start, "image")
    g.link(cams, "cameras", start, "cameras")
    # the body: geometry of the history -> aligned to the previous cache -> 3DGS cache -> hints -> ST-Diff
    geo = g.add("WorldWarpEstimateGeometry", BODY[0], title="Estimate Geometry (history)", size=(340, 180))
    g.link(geo_model, "geometry_model", geo, "geometry_model")
    g.link(start, "history", geo, "images")
    g.link(start, "history_cameras", geo, "cameras")
    align = g.add("WorldWarpAlignToHistory", BODY[0])
    g.link(start, "loop", align, "loop")
    g.link(geo, "geometry", align, "geometry")
    cache = g.add("WorldWarpBuildCache", BODY[1], size=(340, 630))
    g.link(start, "history", cache, "images")
    g.link(align, "geometry", cache, "geometry")
    g.link(start, "cache_seed", cache, "seed")
    g.link(start, "context_frames", cache, "context_frames")  # trained on the next chunk's context frames
    hints = g.add("WorldWarpRenderHints", BODY[2])
    g.link(cache, "cache", hints, "cache")
    g.link(start, "cameras", hints, "cameras")
    hint_src, hint_out, mask_src, mask_out = hints, "hints", hints, "valid"
    if edited:
        blur = g.add("ImageBlur", BODY[2], {"blur_radius": 2, "sigma": 1.0}, column=1)
        g.link(hints, "hints", blur, "image")
        grow = g.add("GrowMask", BODY[2], {"expand": -4, "tapered_corners": True}, column=1)
        g.link(hints, "valid", grow, "mask")
        hint_src, hint_out, mask_src, mask_out = blur, "IMAGE", grow, "MASK"
    # revisit memory: with Loop Start's memory 'world' the holes are filled from the persistent world
    remember = g.add("WorldWarpWorldHints", BODY[2], size=(340, 140))
    g.link(start, "loop", remember, "loop")
    g.link(start, "cameras", remember, "cameras")
    g.link(hint_src, hint_out, remember, "hints")
    g.link(mask_src, mask_out, remember, "valid")
    hint_src, hint_out, mask_src, mask_out = remember, "hints", remember, "valid"
    m2i = g.add("MaskToImage", BODY[2])
    g.link(mask_src, mask_out, m2i, "mask")
    g.link(m2i, "IMAGE", g.add("PreviewImage", BODY[2], title="valid (this chunk)", size=(340, 370)), "images")
    g.link(hint_src, hint_out, g.add("PreviewImage", BODY[2], title="hints (this chunk)", size=(340, 370), column=1),
           "images")
    if styled:  # the prompt is written per chunk inside the loop: Describe Scene is a stage of the body
        cap = g.add("WorldWarpLoadCaptioner", PROMPT_GROUP, {"captioner": "fixed",
                                                             "fixed_prompt": "a quiet village street at dusk"},
                    size=(340, 200))
        desc = g.add("WorldWarpDescribeScene", BODY[3], {"style": "Van Gogh style, thick impasto brush strokes"},
                     size=(360, 220), column=1)
        g.link(cap, "captioner", desc, "captioner")
        g.link(start, "history", desc, "images")
        g.link(clip, "CLIP", desc, "clip")
    sampler = g.add("WorldWarpSTDiffSampler", BODY[3], {"prompt": "", "training_free": training_free},
                    size=(360, 640))
    _wire_models(g, model, vae, training_free, sampler)
    g.link(hint_src, hint_out, sampler, "hints")
    g.link(mask_src, mask_out, sampler, "masks")
    g.link(start, "context", sampler, "context")
    g.link(start, "context_frames", sampler, "context_frames")
    g.link(start, "sampler_seed", sampler, "seed")
    if styled:
        g.link(desc, "conditioning", sampler, "conditioning")
    else:
        g.link(_encode(g, clip, PROMPT, "prompt"), "CONDITIONING", sampler, "conditioning")
    negative = _encode(g, clip, DEFAULT_NEGATIVE, "negative prompt")
    g.link(negative, "CONDITIONING", sampler, "negative_conditioning")
    g.link(sampler, "noise_schedule", g.add("PreviewImage", BODY[3], title="noise schedule", size=(360, 370),
                                            column=1), "images")
    end = g.add("WorldWarpLoopEnd", LOOP_END, size=(340, 200))
    g.link(start, "loop", end, "loop")
    g.link(sampler, "frames", end, "frames")
    g.link(cache, "cache", end, "cache")
    # outputs: a core VIDEO (Save Video), the frames, the cameras and the last 3DGS scene
    if styled:  # frames are plain IMAGE: core Create Video makes the video from them too
        video = g.add("CreateVideo", OUTPUTS, {"fps": 16, "bit_depth": 8})
        g.link(end, "frames", video, "images")
        g.link(video, "VIDEO", g.add("SaveVideo", OUTPUTS, {"filename_prefix": folder + "/video", "format": "auto",
                                                            "codec": "auto"}, size=(400, 370)), "video")
    else:
        g.link(end, "video", g.add("SaveVideo", OUTPUTS, {"filename_prefix": folder + "/video", "format": "auto",
                                                          "codec": "auto"}, size=(400, 370)), "video")
    g.link(end, "frames", g.add("SaveImage", OUTPUTS, {"filename_prefix": folder + "/frames"}, size=(400, 370),
                                column=1), "images")
    sc = g.add("WorldWarpSaveCameras", OUTPUTS, {"filename_prefix": folder + "/cameras"}, size=(400, 112))
    g.link(end, "cameras", sc, "cameras")
    sp = g.add("WorldWarpSaveSplat", OUTPUTS, {"filename_prefix": folder + "/scene"}, size=(400, 112), column=1)
    g.link(end, "cache", sp, "cache")
    # two rows read left to right: what goes in, then the loop's stages and what comes out
    g.layout([[NOTE, MODELS, PROMPT_GROUP, INPUTS, LOOP_START, BODY[0]], [BODY[1], BODY[2], BODY[3], (LOOP_END, OUTPUTS)]])
    return g


def compact_generator() -> Graph:
    """The whole generator in one node (WorldWarp Chunk Loop): the same frames as the wired loop."""
    g = Graph()
    _note(g, note("WorldWarp: the generator in one node", "**WorldWarp Chunk Loop** runs every stage inside "
                  "itself (the same frames as the wired loop and the CLI). To change a stage, use the full generator "
                  "workflow, whose loop body is ordinary nodes.", ["ckpt", "vae", "te", "depth"]))
    scale, geo_model, cams = _inputs(g)
    model, vae, clip = _core_models(g)
    loop_group = g.group("Chunk loop: every stage of every chunk", "loop")
    g.group(OUTPUTS, "outputs")
    loop = g.add("WorldWarpChunkLoop", loop_group, {"frames": 93, "prompt": PROMPT,
                                                    "output_folder": "worldwarp/compact"}, size=(360, 1330))
    _wire_models(g, model, vae, False, loop)
    g.link(clip, "CLIP", loop, "clip")
    for src, out, name in ((geo_model, "geometry_model", "geometry_model"), (scale, "IMAGE", "image"),
                           (cams, "cameras", "cameras")):
        g.link(src, out, loop, name)
    video = g.add("CreateVideo", OUTPUTS, {"fps": 16, "bit_depth": 8})
    g.link(loop, "frames", video, "images")
    g.link(video, "VIDEO", g.add("SaveVideo", OUTPUTS, {"filename_prefix": "worldwarp/compact/video",
                                                        "format": "auto", "codec": "auto"}, size=(400, 370)),
           "video")
    g.link(loop, "frames", g.add("SaveImage", OUTPUTS, {"filename_prefix": "worldwarp/compact/frames"},
                                 size=(400, 370), column=1), "images")
    sc = g.add("WorldWarpSaveCameras", OUTPUTS, {"filename_prefix": "worldwarp/compact/cameras"}, size=(400, 112),
               column=1)
    g.link(loop, "cameras", sc, "cameras")
    g.layout([[NOTE, MODELS, INPUTS], [loop_group, OUTPUTS]])
    return g


def one_chunk() -> Graph:
    g = Graph()
    _note(g, note("WorldWarp: one chunk, step by step", "Every stage of one chunk with its output visible: "
                  "geometry, the 3DGS cache (+ .ply), hints and masks, the noise schedule, ST-Diff. The full "
                  "generator workflow runs these same nodes once per chunk.",
                  ["ckpt", "vae", "te", "depth"]))
    scale, geo_model, cams = _inputs(g)
    geo = 5  # Estimate Geometry (start image), made by _inputs
    model, vae, clip = _core_models(g)
    g.group(PROMPT_GROUP, "models")
    stages = ("Stage 1: 3DGS cache", "Stage 2: hints and masks", "Stage 3: ST-Diff sampler")
    for t in stages:
        g.group(t, "body")
    g.group(OUTPUTS, "outputs")
    cache = g.add("WorldWarpBuildCache", stages[0], size=(340, 630))
    g.link(scale, "IMAGE", cache, "images")
    g.link(geo, "geometry", cache, "geometry")
    sp = g.add("WorldWarpSaveSplat", stages[0])
    g.link(cache, "cache", sp, "cache")
    hints = g.add("WorldWarpRenderHints", stages[1])
    g.link(cache, "cache", hints, "cache")
    g.link(cams, "cameras", hints, "cameras")
    m2i = g.add("MaskToImage", stages[1])
    g.link(hints, "valid", m2i, "mask")
    g.link(hints, "hints", g.add("PreviewImage", stages[1], title="hints", size=(340, 370)), "images")
    g.link(m2i, "IMAGE", g.add("PreviewImage", stages[1], title="valid", size=(340, 370), column=1), "images")
    sampler = g.add("WorldWarpSTDiffSampler", stages[2], {"prompt": "", "context_frames": 1}, size=(360, 640))
    _wire_models(g, model, vae, False, sampler)
    for text, title, name in ((PROMPT, "prompt", "conditioning"),
                              (DEFAULT_NEGATIVE, "negative prompt", "negative_conditioning")):
        g.link(_encode(g, clip, text, title), "CONDITIONING", sampler, name)
    g.link(hints, "hints", sampler, "hints")
    g.link(hints, "valid", sampler, "masks")
    g.link(scale, "IMAGE", sampler, "context")
    ps = g.add("WorldWarpPreviewSchedule", stages[2], {"context_frames": 1}, size=(360, 370), column=1)
    g.link(hints, "valid", ps, "masks")
    g.link(sampler, "frames", g.add("SaveImage", OUTPUTS, {"filename_prefix": "worldwarp/chunk"}, size=(400, 370)),
           "images")
    g.link(sampler, "noise_schedule", g.add("PreviewImage", OUTPUTS, title="noise schedule", size=(400, 370),
                                            column=1), "images")
    g.layout([[NOTE, MODELS, PROMPT_GROUP, INPUTS], list(stages) + [OUTPUTS]])
    return g


# file name -> (graph, description). The Templates browser titles a template with its file name and shows
# `<name>.jpg` beside it: names are words for a reader, without "-" or "_" (its description turns those into
# spaces).
WORKFLOWS = {
    "WorldWarp Camera Director.json": (
        wired_generator("director"), "The camera path drawn in 3D: queue once (or only the Camera Director) to see "
        "the start image's point cloud, drag the keyframes, watch the coverage strip, then generate along exactly "
        "that path."),
    "WorldWarp full generator.json": (
        wired_generator("full"), "The whole autoregressive generator as a graph: Loop Start -> geometry -> depth "
        "alignment -> 3DGS cache -> hints -> ST-Diff -> Loop End, once per chunk; video, frames, cameras and the "
        "scene saved."),
    "WorldWarp one chunk step by step.json": (
        one_chunk(), "One chunk with every stage visible: geometry, 3DGS cache (+ .ply), hints and masks, the noise "
        "schedule, ST-Diff."),
    "WorldWarp stylized prompt.json": (
        wired_generator("stylized"), "A captioner and a style text give each chunk its prompt (paper Fig. 8)."),
    "WorldWarp edits in the loop body.json": (
        wired_generator("component_swap"), "Core nodes in the loop body blur the hints and erode the masks of every "
        "chunk."),
    "WorldWarp training free.json": (
        wired_generator("training_free"), "Base Wan2.1 weights without the WorldWarp fine-tune: the sampler's "
        "training-free mode."),
    "WorldWarp compact chunk loop.json": (
        compact_generator(), "The whole generator in one node (WorldWarp Chunk Loop)."),
}


def write_all(out: str) -> None:
    """Writes every workflow and its thumbnail into ``out``, and removes any other .json / .jpg there (a renamed
    workflow leaves no stale copy: ``workflows/`` holds only what this script writes)."""
    os.makedirs(out, exist_ok=True)
    written = set()
    for name, (graph, note) in WORKFLOWS.items():
        wf = graph.to_json(note)
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            json.dump(wf, f, indent=1)
        picture = name.removesuffix(".json") + ".jpg"
        with open(os.path.join(out, picture), "wb") as f:
            f.write(thumbnail_bytes(name.removesuffix(".json"), wf))
        written |= {name, picture}
        print("wrote", name, "+ .jpg")
    for stale in sorted(set(os.listdir(out)) - written):
        if stale.endswith((".json", ".jpg")):
            os.remove(os.path.join(out, stale))
            print("removed", stale)


def main() -> None:
    write_all(os.path.join(ROOT, "workflows"))


if __name__ == "__main__":
    main()
