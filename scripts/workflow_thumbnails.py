"""Thumbnails of the shipped workflows for ComfyUI's Templates browser: a schematic drawn from the graph.

The frontend shows a custom node pack's template ``workflows/<name>.json`` with the picture
``workflows/<name>.jpg`` in a square card about 260 px wide (the picture is fitted, not cropped). The
schematic is read off the workflow itself, so it stays true when a workflow changes:

- a wired loop (WorldWarp Loop Start ... Loop End): every node on a path from Loop Start to Loop End, in
  link order, drawn as a cycle with the loop-back arrow "once per chunk";
- the compact generator: the one WorldWarp Chunk Loop node;
- anything else: the nodes on a path from the first Estimate Geometry to the ST-Diff Sampler (one chunk).

The Camera Director's keyframes are drawn from above between the rows. Below the diagram: the camera,
the transformer's loader and what the workflow saves. PIL only, with Pillow's bundled font, drawn at twice the size and
reduced; the same workflow gives the same bytes.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageDraw, ImageFont

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from nodes.specs import spec_by_id  # noqa: E402

SIZE = 600  # the square picture, in pixels
SCALE = 2  # drawn at SCALE x SIZE, then reduced: smooth lines and text without antialiased primitives
WIDGET_KINDS = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# ComfyUI's own display names of the core nodes the workflows use (others: the class name split into words)
CORE_NAMES = {"UNETLoader": "Load Diffusion Model", "VAELoader": "Load VAE", "CLIPLoader": "Load CLIP",
              "CLIPTextEncode": "CLIP Text Encode", "LoadImage": "Load Image", "ImageScale": "Upscale Image"}
# what a save node keeps, in the order the footer lists them
SAVES = {"SaveVideo": "video", "SaveImage": "frames", "WorldWarpSaveCameras": "cameras",
         "WorldWarpSaveSplat": "3D scene"}
LOOP_NODES = {"WorldWarpLoopStart", "WorldWarpLoopEnd", "WorldWarpChunkLoop"}

BG, TEXT, MUTED, ARROW = (28, 30, 36), (242, 242, 245), (170, 176, 190), (205, 208, 216)
FILL = {"worldwarp": ((40, 70, 112), (120, 170, 235)), "core": ((104, 72, 28), (235, 172, 80)),
        "loop": ((74, 52, 116), (186, 148, 245))}  # family -> (fill, outline)
Family = Literal["worldwarp", "core", "loop"]


@dataclass(frozen=True)
class Box:
    node_id: int
    node_type: str
    label: str
    family: Family


@dataclass(frozen=True)
class Diagram:
    """What a thumbnail shows. ``slots`` are the stages in link order; nodes that run side by side (neither
    feeds the other) share a slot."""

    kind: Literal["loop", "chunk", "compact"]
    slots: tuple[tuple[Box, ...], ...]
    camera: str | None
    camera_path: tuple[tuple[float, float, float], ...] | None  # keyframes as (x, z, yaw in radians)
    model: str | None
    saves: tuple[str, ...]
    note: str | None = None  # the compact node's own description


def node_label(node_type: str) -> str:
    spec = spec_by_id().get(node_type)
    if spec is not None:
        return spec.display_name.removeprefix("WorldWarp ")
    return CORE_NAMES.get(node_type) or re.sub(r"(?<=[a-z])(?=[A-Z])", " ", node_type)


def _family(node_type: str) -> Family:
    if node_type in LOOP_NODES:
        return "loop"
    return "worldwarp" if node_type in spec_by_id() else "core"


def widget_values(node: dict) -> dict:
    """A WorldWarp node's widget values by name (the frontend stores them as a list; a seed has a control
    value after it)."""
    spec = spec_by_id()[node["type"]]
    values, out = iter(node["widgets_values"]), {}
    for i in spec.inputs:
        if i.kind in WIDGET_KINDS:
            out[i.name] = next(values)
            if i.name == "seed":
                next(values)
    return out


class _Links:
    def __init__(self, wf: dict) -> None:
        self.nodes = {n["id"]: n for n in wf["nodes"]}
        self.out: dict[int, list[int]] = {i: [] for i in self.nodes}
        self.into: dict[int, list[int]] = {i: [] for i in self.nodes}
        self.input_src: dict[tuple[int, str], int] = {}
        for _lid, src, _s, dst, dst_slot, _kind in wf["links"]:
            self.out[src].append(dst)
            self.into[dst].append(src)
            self.input_src[(dst, self.nodes[dst]["inputs"][dst_slot]["name"])] = src

    def _reach(self, start: int, step: dict[int, list[int]]) -> set[int]:
        seen, todo = {start}, [start]
        while todo:
            for m in step[todo.pop()]:
                if m not in seen:
                    seen.add(m)
                    todo.append(m)
        return seen

    def between(self, start: int, end: int) -> set[int]:
        """Every node on a path from ``start`` to ``end``, both included."""
        return self._reach(start, self.out) & self._reach(end, self.into)

    def first(self, node_type: str) -> int | None:
        return min((i for i, n in self.nodes.items() if n["type"] == node_type), default=None)


def _slots(links: _Links, start: int, end: int) -> tuple[tuple[Box, ...], ...]:
    """The nodes between ``start`` and ``end`` grouped by their longest distance to ``end`` (each as late as
    its consumers allow), furthest first; a group is ordered by node id."""
    body = links.between(start, end)
    if end not in body:
        raise ValueError(f"no path of links from node {start} to node {end}: the workflow's stages are not wired")
    depth = {end: 0}

    def dist(n: int) -> int:
        if n not in depth:
            depth[n] = 1 + max(dist(m) for m in links.out[n] if m in body)
        return depth[n]

    groups: dict[int, list[int]] = {}
    for n in sorted(body):
        groups.setdefault(dist(n), []).append(n)
    return tuple(tuple(Box(n, links.nodes[n]["type"], node_label(links.nodes[n]["type"]),
                           _family(links.nodes[n]["type"])) for n in groups[d])
                 for d in sorted(groups, reverse=True))


def diagram(wf: dict) -> Diagram:
    """Reads the schematic off a UI-format workflow."""
    links = _Links(wf)
    start, end = links.first("WorldWarpLoopStart"), links.first("WorldWarpLoopEnd")
    compact = links.first("WorldWarpChunkLoop")
    if start is not None and end is not None:
        kind, slots, model_node = "loop", _slots(links, start, end), None
    elif compact is not None:
        box = Box(compact, "WorldWarpChunkLoop", node_label("WorldWarpChunkLoop"), "loop")
        kind, slots, model_node = "compact", ((box,),), compact
    else:
        geo, sampler = links.first("WorldWarpEstimateGeometry"), links.first("WorldWarpSTDiffSampler")
        if geo is None or sampler is None:
            raise ValueError("a workflow thumbnail needs WorldWarp Loop Start + Loop End, a WorldWarp Chunk Loop, "
                             "or Estimate Geometry + ST-Diff Sampler; this workflow has none of them")
        kind, slots, model_node = "chunk", _slots(links, geo, sampler), None
    camera = path = None
    cam_id = links.first("WorldWarpCameraDirector") or links.first("WorldWarpCameraTrajectory")
    if cam_id is not None:
        cam = links.nodes[cam_id]
        values = widget_values(cam)
        if cam["type"] == "WorldWarpCameraDirector":
            camera = "drawn in the " + node_label(cam["type"])
            keys = json.loads(values["keyframes"] or "{}").get("keyframes", [])
            path = ((0.0, 0.0, 0.0),) + tuple(  # frame 0 is the start image's camera
                (k["position"][0], k["position"][2], 2 * math.atan2(k["rotation"][2], k["rotation"][0]))
                for k in keys)
        else:
            camera = values.get("preset") or node_label(cam["type"])
    sampler = model_node or links.first("WorldWarpSTDiffSampler")  # the node the transformer feeds
    model_src = links.input_src.get((sampler, "model")) if sampler is not None else None
    model = node_label(links.nodes[model_src]["type"]) if model_src is not None else None
    types = {n["type"] for n in wf["nodes"]}
    saves = tuple(what for t, what in SAVES.items() if t in types)
    note = spec_by_id()["WorldWarpChunkLoop"].description if kind == "compact" else None
    return Diagram(kind, slots, camera, path, model, saves, note)


# -- drawing ----------------------------------------------------------------------------------------------------

def _font(size: float) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=round(size * SCALE))


class _Canvas:
    """Drawing in picture coordinates (SIZE x SIZE); everything is scaled by SCALE."""

    def __init__(self) -> None:
        self.img = Image.new("RGB", (SIZE * SCALE, SIZE * SCALE), BG)
        self.d = ImageDraw.Draw(self.img)

    def width(self, text: str, size: float) -> float:
        return self.d.textlength(text, font=_font(size)) / SCALE

    def text(self, xy, text: str, size: float, fill=TEXT, anchor: str = "la") -> None:
        self.d.text((xy[0] * SCALE, xy[1] * SCALE), text, font=_font(size), fill=fill, anchor=anchor)

    def wrap(self, text: str, size: float, width: float) -> list[str]:
        lines: list[str] = []
        for word in text.split():
            if lines and self.width(lines[-1] + " " + word, size) <= width:
                lines[-1] += " " + word
            else:
                lines.append(word)
        return lines

    def box(self, rect, family: Family, label: str, max_size: float = 23) -> None:
        x0, y0, x1, y1 = rect
        fill, outline = FILL[family]
        self.d.rounded_rectangle([v * SCALE for v in rect], radius=10 * SCALE, fill=fill, outline=outline,
                                 width=2 * SCALE)
        size = max_size  # the largest size at which the wrapped label fits the box
        while size > 12:
            lines = self.wrap(label, size, x1 - x0 - 10)
            if len(lines) * size * 1.15 <= y1 - y0 - 8 and all(self.width(ln, size) <= x1 - x0 - 8 for ln in lines):
                break
            size -= 1
        lines = self.wrap(label, size, x1 - x0 - 10)
        top = (y0 + y1) / 2 - len(lines) * size * 1.15 / 2
        for i, ln in enumerate(lines):
            self.text(((x0 + x1) / 2, top + (i + 0.5) * size * 1.15), ln, size, anchor="mm")

    def arrow(self, points, fill=ARROW, width: float = 3, head: float = 11) -> None:
        pts = [(x * SCALE, y * SCALE) for x, y in points]
        self.d.line(pts, fill=fill, width=round(width * SCALE), joint="curve")
        (xa, ya), (xb, yb) = pts[-2], pts[-1]
        a, h = math.atan2(yb - ya, xb - xa), head * SCALE
        self.d.polygon([(xb, yb), (xb - h * math.cos(a - 0.45), yb - h * math.sin(a - 0.45)),
                        (xb - h * math.cos(a + 0.45), yb - h * math.sin(a + 0.45))], fill=fill)

    def picture(self) -> Image.Image:
        return self.img.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


def _slot_rects(rect, n: int) -> list[tuple[float, float, float, float]]:
    """``rect`` split into ``n`` stacked boxes (nodes that run side by side)."""
    x0, y0, x1, y1 = rect
    gap = 8
    h = (y1 - y0 - gap * (n - 1)) / n
    return [(x0, y0 + i * (h + gap), x1, y0 + i * (h + gap) + h) for i in range(n)]


def _draw_slot(c: _Canvas, rect, slot: tuple[Box, ...]) -> None:
    for r, b in zip(_slot_rects(rect, len(slot)), slot):
        c.box(r, b.family, b.label, max_size=23 if len(slot) == 1 else 19)


LEFT, RIGHT, COLS, MAX_COLS, GAP = 48, 584, 4, 5, 26  # the diagram's columns (5 for a long body)
TOP, ROW_H, ROW_GAP = 150, 118, 84


def _columns(count: int = COLS) -> list[tuple[float, float]]:
    w = (RIGHT - LEFT - GAP * (count - 1)) / count
    return [(LEFT + i * (w + GAP), LEFT + i * (w + GAP) + w) for i in range(count)]


def _draw_flow(c: _Canvas, g: Diagram) -> None:
    """The stages as boxes in two rows, the second right to left; a loop closes with an arrow back up."""
    n = len(g.slots)
    if n > 2 * MAX_COLS:
        raise ValueError(f"{n} stages do not fit a thumbnail's {2 * MAX_COLS} places")
    count = max(COLS, math.ceil(n / 2))
    cols = _columns(count)
    top_n = min(count, n if n <= count else math.ceil(n / 2))
    bottom = n - top_n
    y_top = TOP if bottom else TOP + (ROW_H + ROW_GAP) / 2
    y_bot = TOP + ROW_H + ROW_GAP
    places = [(cols[i], y_top) for i in range(top_n)]
    if bottom:  # right to left from under the last top box; the last one always in the first column
        places += [(cols[top_n - 1 - i], y_bot) for i in range(bottom - 1)] + [(cols[0], y_bot)]
    rects = [(x0, y, x1, y + ROW_H) for (x0, x1), y in places]
    for rect, slot in zip(rects, g.slots):
        _draw_slot(c, rect, slot)
    for a, b in zip(rects, rects[1:]):
        ya, yb = (a[1] + a[3]) / 2, (b[1] + b[3]) / 2
        if a[1] != b[1]:  # down to the second row
            c.arrow([((a[0] + a[2]) / 2, a[3] + 4), ((b[0] + b[2]) / 2, b[1] - 4)])
        elif b[0] > a[0]:
            c.arrow([(a[2] + 3, ya), (b[0] - 4, yb)])
        else:
            c.arrow([(a[0] - 3, ya), (b[2] + 4, yb)])
    if g.camera_path and bottom:  # the drawn camera path, between the rows
        _draw_camera_path(c, g.camera_path, (cols[1][0] + 20, TOP + ROW_H + 8, cols[3][0] - 10,
                                             TOP + ROW_H + ROW_GAP - 14))
    if g.kind == "loop":
        first, last = rects[0], rects[-1]
        x = LEFT - 26
        accent = FILL["loop"][1]
        c.arrow([(last[0] - 3, (last[1] + last[3]) / 2), (x, (last[1] + last[3]) / 2),
                 (x, (first[1] + first[3]) / 2), (first[0] - 4, (first[1] + first[3]) / 2)], fill=accent)
        c.text((x + 14, TOP + ROW_H + ROW_GAP / 2), "once per chunk", 24, fill=accent, anchor="lm")
    else:
        c.text((LEFT, TOP + ROW_H + ROW_GAP / 2 if bottom else y_top + ROW_H + 34), "one chunk", 24, fill=MUTED,
               anchor="lm")


def _draw_compact(c: _Canvas, g: Diagram) -> None:
    (b,), = g.slots
    x0, y0, x1, y1 = LEFT, TOP + 10, RIGHT, TOP + 2 * ROW_H + ROW_GAP - 10
    fill, outline = FILL["loop"]
    c.d.rounded_rectangle([v * SCALE for v in (x0, y0, x1, y1)], radius=16 * SCALE, fill=fill, outline=outline,
                          width=3 * SCALE)
    c.text(((x0 + x1) / 2, y0 + 54), b.label, 44, anchor="mm")
    for i, ln in enumerate(c.wrap(g.note or "", 23, x1 - x0 - 60)):
        c.text(((x0 + x1) / 2, y0 + 118 + i * 30), ln, 23, fill=TEXT, anchor="mm")
    # a circular arrow: every chunk goes round once inside the node
    cx, cy, r = (x0 + x1) / 2 - 92, y1 - 58, 22
    c.d.arc([(cx - r) * SCALE, (cy - r) * SCALE, (cx + r) * SCALE, (cy + r) * SCALE], 40, 340,
            fill=outline, width=4 * SCALE)
    c.arrow([(cx + r * math.cos(math.radians(330)), cy + r * math.sin(math.radians(330))),
             (cx + r * math.cos(math.radians(345)), cy + r * math.sin(math.radians(345)))], fill=outline, head=12)
    c.text((cx + r + 16, cy), "once per chunk", 24, fill=outline, anchor="lm")


def _draw_camera_path(c: _Canvas, path, rect) -> None:
    """The keyframes seen from above, forward to the right, each with its viewing direction."""
    x0, y0, x1, y1 = rect
    xs, zs = [p[0] for p in path], [p[1] for p in path]
    s = min((x1 - x0 - 30) / max(max(zs) - min(zs), 1e-6), (y1 - y0 - 24) / max(max(xs) - min(xs), 1e-6))
    cx, cz = (max(xs) + min(xs)) / 2, (max(zs) + min(zs)) / 2

    def at(x, z):
        return ((x0 + x1) / 2 + (z - cz) * s, (y0 + y1) / 2 + (x - cx) * s)

    accent = FILL["worldwarp"][1]
    c.d.line([(u * SCALE, v * SCALE) for u, v in (at(x, z) for x, z, _ in path)], fill=accent, width=3 * SCALE,
             joint="curve")
    for x, z, yaw in path:  # each keyframe: a dot and its viewing direction (sin yaw, cos yaw) in (x, z)
        u, v = at(x, z)
        c.d.ellipse([(u - 4) * SCALE, (v - 4) * SCALE, (u + 4) * SCALE, (v + 4) * SCALE], fill=TEXT)
        c.arrow([(u, v), (u + 20 * math.cos(yaw), v + 20 * math.sin(yaw))], fill=TEXT, width=2, head=8)


def render(title: str, wf: dict) -> Image.Image:
    """The thumbnail of a workflow called ``title`` (its file name without .json): SIZE x SIZE RGB."""
    g = diagram(wf)
    c = _Canvas()
    # the card's "Node graph" badge covers the top left corner: the pack's name goes top right
    c.text((SIZE - 24, 30), "WorldWarp", 24, fill=MUTED, anchor="rm")
    name = title.removeprefix("WorldWarp ").strip()
    name = name[:1].upper() + name[1:]
    size = 44
    while size > 26 and c.width(name, size) > SIZE - 48:
        size -= 2
    c.text((24, 102), name, size, anchor="lm")
    if g.kind == "compact":
        _draw_compact(c, g)
    else:
        _draw_flow(c, g)
    lines = ([("camera", g.camera)] if g.camera else []) + ([("model", g.model)] if g.model else []) \
        + ([("saves", ", ".join(g.saves))] if g.saves else [])
    y = 502
    for key, value in lines:
        c.text((24, y), key, 23, fill=MUTED, anchor="lm")
        shown = value
        while c.width(shown, 23) > SIZE - 24 - 112 and len(shown) > 4:
            shown = shown[:-2].rstrip() + "…"
        c.text((112, y), shown, 23, fill=TEXT, anchor="lm")
        y += 34
    return c.picture()


def thumbnail_bytes(title: str, wf: dict) -> bytes:
    """The JPEG the Templates browser shows for ``title``; the same workflow always gives the same bytes."""
    buf = io.BytesIO()
    render(title, wf).save(buf, format="JPEG", quality=90, subsampling=0, optimize=False)
    return buf.getvalue()
