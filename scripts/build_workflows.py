"""Writes the shipped UI-format workflows in ``workflows/`` from one description each.

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
    "RenderSplat": ([("splat", "SPLAT"), ("bg_image", "IMAGE"), ("camera_info", "LOAD3D_CAMERA")],
                    ["width", "height", "frames", "splat_scale", "sharpen", "headlight_shading", "opacity_threshold",
                     "render_style", "background"], [("image", "IMAGE"), ("mask", "MASK")]),
    # ComfyUI's own model loaders: the workflows use them by default
    "UNETLoader": ([], ["unet_name", "weight_dtype"], [("MODEL", "MODEL")]),
    "VAELoader": ([], ["vae_name"], [("VAE", "VAE")]),
    "CLIPLoader": ([], ["clip_name", "type", "device"], [("CLIP", "CLIP")]),
    "CLIPTextEncode": ([("clip", "CLIP")], ["text"], [("CONDITIONING", "CONDITIONING")]),
}
CORE_OPTIONAL = {"RenderSplat": {"bg_image", "camera_info"}}


class Graph:
    def __init__(self) -> None:
        self.nodes, self.links = [], []

    def add(self, node_type: str, pos: tuple[int, int], widgets: dict | None = None, title: str | None = None) -> int:
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
            "id": nid, "type": node_type, "pos": list(pos), "size": [320, 60 + 26 * (len(wnames) + len(sockets))],
            "flags": {}, "order": nid - 1, "mode": 0,
            "inputs": [{"name": n, "type": t, "link": None, **({"shape": 7} if n in optional else {})}
                       for n, t in sockets],
            "outputs": [{"name": n, "type": t, "links": [], "slot_index": i} for i, (n, t) in enumerate(outputs)],
            "properties": {"Node name for S&R": node_type}, "widgets_values": values,
        }
        if title:
            node["title"] = title
        self.nodes.append(node)
        return nid

    def link(self, src: int, out_name: str, dst: int, in_name: str) -> None:
        s, d = self.nodes[src - 1], self.nodes[dst - 1]
        oi = next(i for i, o in enumerate(s["outputs"]) if o["name"] == out_name)
        ii = next(i for i, o in enumerate(d["inputs"]) if o["name"] == in_name)
        lid = len(self.links) + 1
        kind = s["outputs"][oi]["type"]
        self.links.append([lid, src, oi, dst, ii, kind])
        s["outputs"][oi]["links"].append(lid)
        d["inputs"][ii]["link"] = lid

    def to_json(self, note: str) -> dict:
        return {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
                "links": self.links, "groups": [], "config": {},
                "extra": {"info": {"description": note}, "ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}


def _yaw(degrees: float) -> list[float]:  # a turn about the camera's vertical axis as (w, x, y, z)
    return [math.cos(math.radians(degrees) / 2), 0.0, math.sin(math.radians(degrees) / 2), 0.0]


# a keyframed path as the Camera Director writes it: forward, then a curve to the right while turning
DIRECTOR_KEYFRAMES = json.dumps({"frames": 93, "interpolation": "spline", "keyframes": [
    {"frame": 30, "position": [0.0, 0.0, 0.3], "rotation": _yaw(0.0), "focal": 1.0, "ease": "ease-in"},
    {"frame": 60, "position": [0.12, 0.0, 0.55], "rotation": _yaw(12.0), "focal": 1.0, "ease": "linear"},
    {"frame": 92, "position": [0.35, -0.03, 0.7], "rotation": _yaw(28.0), "focal": 1.0, "ease": "ease-out"}]})


def _start(g: Graph, width=720, height=480, director: bool = False):
    img = g.add("LoadImage", (0, 0), {"image": "example.png", "upload": "image"})
    scale = g.add("ImageScale", (0, 360), {"upscale_method": "lanczos", "width": width, "height": height,
                                           "crop": "center"})
    g.link(img, "IMAGE", scale, "image")
    geo_model = g.add("WorldWarpLoadGeometryModel", (360, 0), {"backend": "depth-pro", "folder": "depth-pro-hf"})
    geo = g.add("WorldWarpEstimateGeometry", (720, 0))
    g.link(geo_model, "geometry_model", geo, "geometry_model")
    g.link(scale, "IMAGE", geo, "images")
    if director:  # the path drawn over the scene in the Camera Director's 3D editor
        cams = g.add("WorldWarpCameraDirector", (720, 260), {"frames": 93, "keyframes": DIRECTOR_KEYFRAMES})
    else:
        cams = g.add("WorldWarpCameraTrajectory", (720, 260), {"preset": "dolly_in@0.6 + pan_left@0.5",
                                                               "frames": 49})
    g.link(scale, "IMAGE", cams, "image")
    g.link(geo, "geometry", cams, "geometry")
    return scale, geo_model, geo, cams


def _core_models(g: Graph, training_free: bool = False) -> tuple[int, int, int]:
    """ComfyUI's own loaders for the user's model files: the transformer (the WorldWarp fine-tune through Load
    WorldWarp Diffusion Model, or base Wan2.1 with core Load Diffusion Model), Load VAE, Load CLIP (type wan)."""
    if training_free:
        model = g.add("UNETLoader", (360, 300), {"unet_name": MODEL_FILES["transformer"], "weight_dtype": "default"})
    else:
        model = g.add("WorldWarpLoadDiffusionModel", (360, 300), {"checkpoint": MODEL_FILES["worldwarp_checkpoint"]})
    vae = g.add("VAELoader", (360, 440), {"vae_name": MODEL_FILES["vae"]})
    clip = g.add("CLIPLoader", (360, 780), {"clip_name": MODEL_FILES["text_encoder"], "type": "wan",
                                            "device": "default"})
    return model, vae, clip


def full_generator(style: str = "", training_free: bool = False, captioned: bool = False,
                   director: bool = False) -> Graph:
    g = Graph()
    scale, geo_model, _, cams = _start(g, director=director)
    model, vae, clip = _core_models(g, training_free)
    loop = g.add("WorldWarpChunkLoop", (1100, 0), {
        "frames": 93, "prompt": "" if captioned else "a bright living room with large windows and wooden floors",
        "style": style, "training_free": training_free,
        "output_folder": "worldwarp/" + ("training_free" if training_free else "stylized" if style else "run")})
    for src, out, name in ((model, "MODEL" if training_free else "model", "model"), (vae, "VAE", "vae"),
                           (clip, "CLIP", "clip"), (geo_model, "geometry_model", "geometry_model"),
                           (scale, "IMAGE", "image"), (cams, "cameras", "cameras")):
        g.link(src, out, loop, name)
    if captioned:
        cap = g.add("WorldWarpLoadCaptioner", (360, 620), {"captioner": "fixed",
                                                           "fixed_prompt": "a quiet village street at dusk"})
        g.link(cap, "captioner", loop, "captioner")
    save = g.add("SaveImage", (1500, 0), {"filename_prefix": "worldwarp/frames"})
    g.link(loop, "frames", save, "images")
    sc = g.add("WorldWarpSaveCameras", (1500, 360))
    g.link(loop, "cameras", sc, "cameras")
    return g


def one_chunk(edit_hints: bool = False) -> Graph:
    g = Graph()
    scale, _, geo, cams = _start(g)
    cache = g.add("WorldWarpBuildCache", (1100, 0))
    g.link(scale, "IMAGE", cache, "images")
    g.link(geo, "geometry", cache, "geometry")
    hints = g.add("WorldWarpRenderHints", (1100, 420))
    g.link(cache, "cache", hints, "cache")
    g.link(cams, "cameras", hints, "cameras")
    hint_src, hint_out, mask_src, mask_out = hints, "hints", hints, "valid"
    if edit_hints:  # hints and masks are ordinary IMAGE / MASK: any core node can edit them
        blur = g.add("ImageBlur", (1450, 420), {"blur_radius": 2, "sigma": 1.0})
        g.link(hints, "hints", blur, "image")
        grow = g.add("GrowMask", (1450, 620), {"expand": -4, "tapered_corners": True})
        g.link(hints, "valid", grow, "mask")
        hint_src, hint_out, mask_src, mask_out = blur, "IMAGE", grow, "MASK"
        # the cache is also a core SPLAT: core Render Splat shows it from the chunk's last camera
        info = g.add("WorldWarpCameraInfo", (1450, 820), {"frame": 48})
        g.link(cams, "cameras", info, "cameras")
        render = g.add("RenderSplat", (1800, 1150), {
            "width": 720, "height": 480, "frames": 1, "splat_scale": 1.0, "sharpen": 2.0, "headlight_shading": 0.0,
            "opacity_threshold": 0.0, "render_style": "color", "background": "#000000"})
        g.link(cache, "splat", render, "splat")
        g.link(info, "camera_info", render, "camera_info")
        g.link(render, "image", g.add("PreviewImage", (2200, 1150), title="core Render Splat"), "images")
    model, vae, clip = _core_models(g)
    sampler = g.add("WorldWarpSTDiffSampler", (1800, 0), {"context_frames": 1})
    g.link(model, "model", sampler, "model")
    g.link(vae, "VAE", sampler, "vae")
    positive = g.add("CLIPTextEncode", (720, 620), {"text": "a bright living room with large windows and wooden floors"},
                     title="prompt")
    negative = g.add("CLIPTextEncode", (720, 760), {"text": DEFAULT_NEGATIVE}, title="negative prompt")
    for enc, name in ((positive, "conditioning"), (negative, "negative_conditioning")):
        g.link(clip, "CLIP", enc, "clip")
        g.link(enc, "CONDITIONING", sampler, name)
    g.link(hint_src, hint_out, sampler, "hints")
    g.link(mask_src, mask_out, sampler, "masks")
    g.link(scale, "IMAGE", sampler, "context")
    save = g.add("SaveImage", (2200, 0), {"filename_prefix": "worldwarp/chunk"})
    g.link(sampler, "frames", save, "images")
    g.link(sampler, "noise_schedule", g.add("PreviewImage", (2200, 360)), "images")
    g.link(hint_src, hint_out, g.add("PreviewImage", (1800, 600), title="hints"), "images")
    m2i = g.add("MaskToImage", (1800, 900))
    g.link(mask_src, mask_out, m2i, "mask")
    g.link(m2i, "IMAGE", g.add("PreviewImage", (2000, 900), title="valid"), "images")
    ps = g.add("WorldWarpPreviewSchedule", (2200, 600), {"context_frames": 1})
    g.link(mask_src, mask_out, ps, "masks")
    sp = g.add("WorldWarpSaveSplat", (1450, 0))
    g.link(cache, "cache", sp, "cache")
    return g


WORKFLOWS = {
    "worldwarp_camera_director.json": (full_generator(director=True), "The camera path drawn in 3D: queue once (or "
                                       "only the Camera Director) to see the start image's point cloud, drag the "
                                       "keyframes, watch the coverage strip, then generate 93 frames along exactly "
                                       "that path."),
    "worldwarp_full_generator.json": (full_generator(), "The whole autoregressive generator: image + camera path -> "
                                      "93 frames (2 chunks), cameras saved. Needs the Wan2.1 files, the WorldWarp "
                                      "fine-tune and Depth Pro."),
    "worldwarp_one_chunk_step_by_step.json": (one_chunk(), "One chunk with every stage visible: geometry, 3DGS cache "
                                              "(+ .ply), hints and masks, the noise schedule, ST-Diff."),
    "worldwarp_stylized_prompt.json": (full_generator(style="Van Gogh style, thick impasto brush strokes",
                                                      captioned=True),
                                       "Style text appended to the prompt (paper Fig. 8)."),
    "worldwarp_component_swap_edited_hints.json": (one_chunk(edit_hints=True), "Hints and masks are plain IMAGE / "
                                                   "MASK: here core nodes blur the hints and erode the masks before "
                                                   "sampling."),
    "worldwarp_training_free.json": (full_generator(training_free=True), "Base Wan2.1 weights without the WorldWarp "
                                     "fine-tune: the sampler's training-free mode."),
}


def main() -> None:
    out = os.path.join(ROOT, "workflows")
    os.makedirs(out, exist_ok=True)
    for name, (graph, note) in WORKFLOWS.items():
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            json.dump(graph.to_json(note), f, indent=1)
        print("wrote", name)


if __name__ == "__main__":
    main()
