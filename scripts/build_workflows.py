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


class Graph:
    def __init__(self) -> None:
        self.nodes, self.links = [], []

    def add(self, node_type: str, pos: tuple[int, int], widgets: dict | None = None, title: str | None = None,
            size: tuple[int, int] | None = None) -> int:
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
            "id": nid, "type": node_type, "pos": list(pos),
            "size": list(size or (320, 60 + 26 * (len(wnames) + len(sockets)))),
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
        return nid

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
        return {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": nodes,
                "links": self.links, "groups": [], "config": {},
                "extra": {"info": {"description": note}, "ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}


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


def _core_models(g: Graph, training_free: bool = False, x: int = 600, y: int = 900) -> tuple[int, int, int]:
    """ComfyUI's own loaders for the user's model files: the transformer (the WorldWarp fine-tune through Load
    WorldWarp Diffusion Model, or base Wan2.1 with core Load Diffusion Model), Load VAE, Load CLIP (type wan)."""
    if training_free:
        model = g.add("UNETLoader", (x, y), {"unet_name": MODEL_FILES["transformer"], "weight_dtype": "default"},
                      size=(340, 110))
    else:
        model = g.add("WorldWarpLoadDiffusionModel", (x, y), {"checkpoint": MODEL_FILES["worldwarp_checkpoint"]},
                      size=(340, 110))
    vae = g.add("VAELoader", (x, y + 150), {"vae_name": MODEL_FILES["vae"]}, size=(340, 80))
    clip = g.add("CLIPLoader", (x, y + 270), {"clip_name": MODEL_FILES["text_encoder"], "type": "wan",
                                              "device": "default"}, size=(340, 130))
    return model, vae, clip


def _encode(g: Graph, clip: int, text: str, pos: tuple[int, int], title: str) -> int:
    enc = g.add("CLIPTextEncode", pos, {"text": text}, title=title, size=(340, 200))
    g.link(clip, "CLIP", enc, "clip")
    return enc


def _wire_models(g: Graph, model: int, vae: int, training_free: bool, target: int) -> None:
    g.link(model, "MODEL" if training_free else "model", target, "model")
    g.link(vae, "VAE", target, "vae")


def _note(g: Graph, text: str) -> None:
    g.add("MarkdownNote", (0, 0), {"text": text}, size=(560, 520))


def _inputs(g: Graph, width=720, height=480, y=560, director: bool = False):
    """Start image, the geometry model, the start image's geometry and the camera path (column 1-2)."""
    img = g.add("LoadImage", (0, y), {"image": "example.png", "upload": "image"}, size=(340, 380))
    scale = g.add("ImageScale", (0, y + 420), {"upscale_method": "lanczos", "width": width, "height": height,
                                               "crop": "center"})
    g.link(img, "IMAGE", scale, "image")
    geo_model = g.add("WorldWarpLoadGeometryModel", (600, 0), {"backend": "depth-pro", "folder": "depth-pro-hf"})
    geo = g.add("WorldWarpEstimateGeometry", (600, 220), title="Estimate Geometry (start image)")
    g.link(geo_model, "geometry_model", geo, "geometry_model")
    g.link(scale, "IMAGE", geo, "images")
    if director:  # the path drawn over the scene in the Camera Director's 3D editor
        cams = g.add("WorldWarpCameraDirector", (600, 440), {"frames": 93, "keyframes": DIRECTOR_KEYFRAMES},
                     size=(560, 700))
    else:
        cams = g.add("WorldWarpCameraTrajectory", (600, 440), {"preset": "dolly_in@0.6 + pan_left@0.5",
                                                               "frames": 49}, size=(340, 420))
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
                "**WorldWarp Loop Start** and **WorldWarp Loop End** runs once per chunk: edit it and the edit "
                "reaches every chunk. Finished chunks are saved in `output/worldwarp/run`; turn `resume` on to "
                "continue an interrupted run (off, a folder holding a run is refused; choose another folder).",
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
    # the Camera Director is wider and taller: the loaders go below it, the loop to its right (moved below)
    model, vae, clip = _core_models(g, training_free, y=1180 if director else 900)
    folder = "worldwarp/" + {"full": "run", "stylized": "stylized", "component_swap": "edited",
                             "training_free": "training_free", "director": "director"}[kind]
    start = g.add("WorldWarpLoopStart", (1000, 0), {"frames": 93, "output_folder": folder}, size=(340, 420))
    g.link(scale, "IMAGE", start, "image")
    g.link(cams, "cameras", start, "cameras")
    # the body: geometry of the history -> aligned to the previous cache -> 3DGS cache -> hints -> ST-Diff
    x = 1400
    geo = g.add("WorldWarpEstimateGeometry", (x, 0), title="Estimate Geometry (history)", size=(340, 180))
    g.link(geo_model, "geometry_model", geo, "geometry_model")
    g.link(start, "history", geo, "images")
    g.link(start, "history_cameras", geo, "cameras")
    align = g.add("WorldWarpAlignToHistory", (x, 240))
    g.link(start, "loop", align, "loop")
    g.link(geo, "geometry", align, "geometry")
    cache = g.add("WorldWarpBuildCache", (x, 400), size=(340, 520))
    g.link(start, "history", cache, "images")
    g.link(align, "geometry", cache, "geometry")
    g.link(start, "cache_seed", cache, "seed")
    g.link(start, "context_frames", cache, "context_frames")  # trained on the next chunk's context frames
    hints = g.add("WorldWarpRenderHints", (x, 980))
    g.link(cache, "cache", hints, "cache")
    g.link(start, "cameras", hints, "cameras")
    x = 1800
    hint_src, hint_out, mask_src, mask_out = hints, "hints", hints, "valid"
    if edited:
        blur = g.add("ImageBlur", (x, 0), {"blur_radius": 2, "sigma": 1.0})
        g.link(hints, "hints", blur, "image")
        grow = g.add("GrowMask", (x, 180), {"expand": -4, "tapered_corners": True})
        g.link(hints, "valid", grow, "mask")
        hint_src, hint_out, mask_src, mask_out = blur, "IMAGE", grow, "MASK"
    m2i = g.add("MaskToImage", (x, 360))
    g.link(mask_src, mask_out, m2i, "mask")
    g.link(m2i, "IMAGE", g.add("PreviewImage", (x, 510), title="valid (this chunk)", size=(340, 400)), "images")
    g.link(hint_src, hint_out, g.add("PreviewImage", (x, 960), title="hints (this chunk)", size=(340, 400)), "images")
    x = 2200
    sampler = g.add("WorldWarpSTDiffSampler", (x, 0), {
        "prompt": "", "training_free": training_free}, size=(360, 640))
    _wire_models(g, model, vae, training_free, sampler)
    g.link(hint_src, hint_out, sampler, "hints")
    g.link(mask_src, mask_out, sampler, "masks")
    g.link(start, "context", sampler, "context")
    g.link(start, "context_frames", sampler, "context_frames")
    g.link(start, "sampler_seed", sampler, "seed")
    if styled:
        cap = g.add("WorldWarpLoadCaptioner", (1000, 480), {"captioner": "fixed",
                                                            "fixed_prompt": "a quiet village street at dusk"},
                    size=(340, 260))
        desc = g.add("WorldWarpDescribeScene", (1000, 790), {"style": "Van Gogh style, thick impasto brush strokes"},
                     size=(340, 180))
        g.link(cap, "captioner", desc, "captioner")
        g.link(start, "history", desc, "images")
        g.link(clip, "CLIP", desc, "clip")
        g.link(desc, "conditioning", sampler, "conditioning")
        negative = _encode(g, clip, DEFAULT_NEGATIVE, (1000, 1020), "negative prompt")
    else:
        positive = _encode(g, clip, PROMPT, (1000, 480), "prompt")
        g.link(positive, "CONDITIONING", sampler, "conditioning")
        negative = _encode(g, clip, DEFAULT_NEGATIVE, (1000, 740), "negative prompt")
    g.link(negative, "CONDITIONING", sampler, "negative_conditioning")
    g.link(sampler, "noise_schedule", g.add("PreviewImage", (x, 680), title="noise schedule", size=(360, 400)),
           "images")
    x = 2620
    end = g.add("WorldWarpLoopEnd", (x, 0), size=(340, 200))
    g.link(start, "loop", end, "loop")
    g.link(sampler, "frames", end, "frames")
    g.link(cache, "cache", end, "cache")
    # outputs: a core VIDEO (Save Video), the frames, the cameras and the last 3DGS scene
    x = 3020
    if styled:  # frames are plain IMAGE: core Create Video makes the video from them too
        video = g.add("CreateVideo", (x, 0), {"fps": 16, "bit_depth": 8})
        g.link(end, "frames", video, "images")
        g.link(video, "VIDEO", g.add("SaveVideo", (x, 200), {"filename_prefix": folder + "/video", "format": "auto",
                                                            "codec": "auto"}, size=(400, 460)), "video")
    else:
        g.link(end, "video", g.add("SaveVideo", (x, 0), {"filename_prefix": folder + "/video", "format": "auto",
                                                        "codec": "auto"}, size=(400, 460)), "video")
    g.link(end, "frames", g.add("SaveImage", (x, 700), {"filename_prefix": folder + "/frames"}, size=(400, 420)),
           "images")
    sc = g.add("WorldWarpSaveCameras", (x + 460, 0), {"filename_prefix": folder + "/cameras"})
    g.link(end, "cameras", sc, "cameras")
    sp = g.add("WorldWarpSaveSplat", (x + 460, 200), {"filename_prefix": folder + "/scene"})
    g.link(end, "cache", sp, "cache")
    if director:
        for n in g.nodes:
            if n["pos"][0] >= 1000:
                n["pos"][0] += 240
    return g


def compact_generator() -> Graph:
    """The whole generator in one node (WorldWarp Chunk Loop): the same frames as the wired loop."""
    g = Graph()
    _note(g, note("WorldWarp: the generator in one node", "**WorldWarp Chunk Loop** runs every stage inside "
                  "itself (the same frames as the wired loop and the CLI). To change a stage, use the full generator "
                  "workflow, whose loop body is ordinary nodes.", ["ckpt", "vae", "te", "depth"]))
    scale, geo_model, cams = _inputs(g)
    model, vae, clip = _core_models(g)
    loop = g.add("WorldWarpChunkLoop", (1000, 0), {"frames": 93, "prompt": PROMPT, "output_folder": "worldwarp/compact"},
                 size=(360, 900))
    _wire_models(g, model, vae, False, loop)
    g.link(clip, "CLIP", loop, "clip")
    for src, out, name in ((geo_model, "geometry_model", "geometry_model"), (scale, "IMAGE", "image"),
                           (cams, "cameras", "cameras")):
        g.link(src, out, loop, name)
    video = g.add("CreateVideo", (1420, 0), {"fps": 16, "bit_depth": 8})
    g.link(loop, "frames", video, "images")
    g.link(video, "VIDEO", g.add("SaveVideo", (1420, 200), {"filename_prefix": "worldwarp/compact/video",
                                                            "format": "auto", "codec": "auto"}, size=(400, 460)),
           "video")
    g.link(loop, "frames", g.add("SaveImage", (1420, 700), {"filename_prefix": "worldwarp/compact/frames"},
                                 size=(400, 420)), "images")
    sc = g.add("WorldWarpSaveCameras", (1880, 0), {"filename_prefix": "worldwarp/compact/cameras"})
    g.link(loop, "cameras", sc, "cameras")
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
    cache = g.add("WorldWarpBuildCache", (1000, 0), size=(340, 520))
    g.link(scale, "IMAGE", cache, "images")
    g.link(geo, "geometry", cache, "geometry")
    sp = g.add("WorldWarpSaveSplat", (1000, 580))
    g.link(cache, "cache", sp, "cache")
    hints = g.add("WorldWarpRenderHints", (1000, 760))
    g.link(cache, "cache", hints, "cache")
    g.link(cams, "cameras", hints, "cameras")
    g.link(hints, "hints", g.add("PreviewImage", (1000, 940), title="hints", size=(340, 400)), "images")
    m2i = g.add("MaskToImage", (1000, 1380))
    g.link(hints, "valid", m2i, "mask")
    g.link(m2i, "IMAGE", g.add("PreviewImage", (1000, 1530), title="valid", size=(340, 400)), "images")
    sampler = g.add("WorldWarpSTDiffSampler", (1400, 0), {"prompt": "", "context_frames": 1}, size=(360, 640))
    _wire_models(g, model, vae, False, sampler)
    for text, pos, title, name in ((PROMPT, (600, 1340), "prompt", "conditioning"),
                                   (DEFAULT_NEGATIVE, (600, 1580), "negative prompt", "negative_conditioning")):
        g.link(_encode(g, clip, text, pos, title), "CONDITIONING", sampler, name)
    g.link(hints, "hints", sampler, "hints")
    g.link(hints, "valid", sampler, "masks")
    g.link(scale, "IMAGE", sampler, "context")
    ps = g.add("WorldWarpPreviewSchedule", (1400, 700), {"context_frames": 1}, size=(360, 400))
    g.link(hints, "valid", ps, "masks")
    g.link(sampler, "frames", g.add("SaveImage", (1820, 0), {"filename_prefix": "worldwarp/chunk"}, size=(400, 420)),
           "images")
    g.link(sampler, "noise_schedule", g.add("PreviewImage", (1820, 480), title="noise schedule", size=(400, 400)),
           "images")
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
