"""The Camera Director's server side (no ComfyUI import): what the node shows in its editor and the
answers of the ``/worldwarp/director/*`` routes, as plain functions of a JSON body.

Every path the editor draws comes from ``director_path``, the same function the node's execute
uses (``ops.camera_director``), so the editor shows exactly the cameras the workflow will use.

Scenes: when the node runs with geometry connected it keeps the start image's point cloud and a
small copy of its depth (for coverage) in a bounded in-memory cache (``SCENES``, the last
``SCENE_SLOTS`` scenes), keyed by a content hash the node's UI message carries. It only serves
the editor; no node output depends on it. After a server restart the editor asks to run the
node again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from worldwarp_core.cameras import Cameras, intrinsics_from_fov
from worldwarp_core.director import (
    MAX_FRAMES,
    coverage_inputs,
    coverage_masks,
    director_cameras,
    fit_keyframes,
    generating_chunks,
    relative_poses,
    revisit_masks,
    scene_points,
)
from worldwarp_core.inputs import check_float
from worldwarp_core.trajectory import EASES, median_depth, part_end_frames

from .preview import decode_body, run_off_loop

SCENE_SLOTS = 8
MAX_POINTS = 40_000
COVERAGE_WIDTH = 64
# the remembered-coverage prediction is tested pixel by earlier camera: on half the coverage grid
# (a quarter of the pixels) a 2000-frame path's answer stays well inside BUDGET_S on a loaded CPU
REMEMBER_WIDTH = 32
CHUNK_FRAMES, CONTEXT_FRAMES = 49, 5  # the pipeline's defaults (PipelineSettings)
MAX_FILE_CHARS = 4_000_000
EXPORT_FORMATS = {"re10k": "cameras.txt", "json": "cameras.json", "nerfstudio": "transforms.json"}


def start_and_scale(width: int, height: int, fov_degrees: float, scene_scale: float, geometry=None):
    """The start camera and scene unit of the Camera Trajectory / Director nodes: the geometry's first
    camera and median depth, else a camera at the origin with the given field of view."""
    # NaN fails every comparison: without these checks it would read as "0 = from the geometry"
    scene_scale = check_float(scene_scale, "scene_scale", 0.0, 1e4, example=0.0)
    fov_degrees = check_float(fov_degrees, "fov_degrees", 0.0, 180.0, lo_open=True, hi_open=True, example=60.0)
    if geometry is not None:
        start = geometry.cameras[:1]
        scale = median_depth(geometry.depth[0]) if scene_scale <= 0 else scene_scale
    else:
        start = Cameras(torch.eye(4)[None], intrinsics_from_fov(fov_degrees, width, height), width, height)
        scale = scene_scale if scene_scale > 0 else 1.0
    return start, scale


@dataclass
class Scene:
    start: Cameras
    median: float  # the start image's median depth
    points: torch.Tensor  # [N, 3] float32, start camera frame, scene units of `median`
    colors: torch.Tensor  # [N, 3] uint8
    cov_image: torch.Tensor  # [h, w, 3] at the coverage size
    cov_depth: torch.Tensor  # [h, w]
    cov_start: Cameras


class SceneCache:
    def __init__(self, slots: int = SCENE_SLOTS):
        self.slots, self._items, self._lock = slots, OrderedDict(), threading.Lock()

    def put(self, key: str, scene: Scene) -> None:
        with self._lock:
            self._items[key] = scene
            self._items.move_to_end(key)
            while len(self._items) > self.slots:
                self._items.popitem(last=False)

    def get(self, key) -> Scene:
        with self._lock:
            scene = self._items.get(key) if isinstance(key, str) else None
            if scene is None:
                raise KeyError(f"scene {key!r} is not in memory (the server restarted or ran other scenes since); "
                               "run the Camera Director node again to load it")
            self._items.move_to_end(key)
            return scene


SCENES = SceneCache()


def remember_scene(image: torch.Tensor, geometry) -> str:
    """Keep the start image's geometry for the editor; returns its id (a content hash)."""
    depth = geometry.depth[0].float().cpu()
    start = geometry.cameras[:1].to("cpu")
    H, W = depth.shape
    img = image[0].float().cpu()
    if img.shape[:2] != (H, W):
        img = torch.nn.functional.interpolate(img.permute(2, 0, 1)[None], size=(H, W), mode="bilinear",
                                              align_corners=False)[0].permute(1, 2, 0)
    h = hashlib.sha1()
    for t in (depth, img, start.viewmats.double(), start.Ks.double()):
        h.update(t.contiguous().numpy().tobytes())
    key = h.hexdigest()[:16]
    median = median_depth(depth)
    scene_start = start if (start.width, start.height) == (W, H) else start.resize(W, H)
    points, colors = scene_points(img, depth, scene_start, median, MAX_POINTS)
    cov_image, cov_depth, cov_start = coverage_inputs(img, depth, scene_start, COVERAGE_WIDTH)
    SCENES.put(key, Scene(start, median, points, colors, cov_image, cov_depth, cov_start))
    return key


def scene_ui(outputs, image, preset, strength, frames, fov_degrees, scene_scale, easing, keyframes, geometry=None):
    """The node's UI message: the image size and, with geometry, the id of the scene for the editor."""
    info = {"width": int(image.shape[2]), "height": int(image.shape[1])}
    if geometry is not None:
        info["scene"] = remember_scene(image, geometry)
    return {"worldwarp_director": [info]}


# ----------------------------------------------------------------------------- request bodies


def _get(body: dict, name: str, kind, default, lo=None, hi=None):
    value = body.get(name, default)
    if value is None:
        value = default
    if kind is str:
        if not isinstance(value, str):
            raise ValueError(f"'{name}' must be a string, got {type(value).__name__}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"'{name}' must be a finite number, got {value!r}")
    if kind is int and value != int(value):
        raise ValueError(f"'{name}' must be a whole number, got {value!r}")
    value = kind(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"'{name}' must be from {lo} to {hi}, got {value}")
    return value


def _state(body) -> dict:
    """The node's widget values from a request body, checked like the node's inputs."""
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object of the node's widget values")
    state = {
        "preset": _get(body, "preset", str, "static"),
        "strength": _get(body, "strength", float, 1.0, 0.0, 10.0),
        "frames": _get(body, "frames", int, 49, 1, MAX_FRAMES),
        "fov_degrees": _get(body, "fov_degrees", float, 60.0, 10.0, 170.0),
        "scene_scale": _get(body, "scene_scale", float, 0.0, 0.0, 1e4),
        "easing": _get(body, "easing", str, "linear"),
        "keyframes": _get(body, "keyframes", str, ""),
        "width": _get(body, "width", int, 64, 1, 16384),
        "height": _get(body, "height", int, 48, 1, 16384),
    }
    if state["easing"] not in EASES:
        raise ValueError(f"'easing' must be one of {', '.join(EASES)}, got {state['easing']!r}")
    return state


def _scene(body) -> Scene | None:
    key = body.get("scene")
    return SCENES.get(key) if key else None


def _start(state: dict, scene: Scene | None):
    if scene is not None:
        scale = scene.median if state["scene_scale"] <= 0 else state["scene_scale"]
        return scene.start, scale
    return start_and_scale(state["width"], state["height"], state["fov_degrees"], state["scene_scale"])


def director_path(state: dict, start: Cameras, scale: float) -> Cameras:
    return director_cameras(state["preset"], state["strength"], state["frames"], state["easing"], state["keyframes"],
                            start, scale)


def _rows(t: torch.Tensor) -> list:
    return t.double().reshape(t.shape[0], -1).tolist()


def handle_path(body) -> dict:
    """The node's cameras for a widget state: world ``viewmats``/``Ks`` (what execute returns) and,
    for drawing, camera-to-start-camera poses in scene units (``c2w``, row-major 4x4) and focal
    factors."""
    state = _state(body)
    scene = _scene(body)
    start, scale = _start(state, scene)
    cams = director_path(state, start, scale)
    rel, focal = relative_poses(cams, start, scale)
    K0 = start.Ks[0].double()
    return {"frames": len(cams), "width": cams.width, "height": cams.height, "scale": scale,
            "viewmats": _rows(cams.viewmats), "Ks": _rows(cams.Ks), "c2w": _rows(rel), "focal": focal.tolist(),
            "start_K": K0.tolist(), "mode": "keyframes" if state["keyframes"].strip() else "preset"}


def handle_fit(body) -> dict:
    """Keyframes for the current path (the preset, or a dropped camera file's content): what the
    editor turns a preset or a file into before the user edits it."""
    state = _state(body)
    scene = _scene(body)
    start, scale = _start(state, scene)
    text = body.get("file_text")
    seeds = None
    if text is not None:
        name = _get(body, "file_name", str, "cameras.json")
        if not isinstance(text, str) or len(text) > MAX_FILE_CHARS:
            raise ValueError(f"{name}: the file must be text of at most {MAX_FILE_CHARS} characters")
        cams = Cameras.parse(text, name, start.width, start.height)
        if len(cams) > MAX_FRAMES:
            raise ValueError(f"{name} has {len(cams)} cameras; the limit is {MAX_FRAMES}")
        if (cams.width, cams.height) != (start.width, start.height):
            cams = cams.resize(start.width, start.height)
        # the file's path from its first camera, placed at the start camera; its units become
        # scene units through the current scale, so the drawn motion is the file's
        rel0 = cams.c2w[:1].double().inverse() @ cams.c2w.double()
        f = cams.Ks[:, 0, 0].double() / cams.Ks[0, 0, 0].double()
        Ks = start.Ks[:1].double().repeat(len(cams), 1, 1)
        Ks[:, 0, 0] *= f
        Ks[:, 1, 1] *= f
        cams = Cameras.from_c2w(start.c2w.double() @ rel0, Ks, start.width, start.height)
    else:
        cams = director_path(state, start, scale)
        if not state["keyframes"].strip():
            seeds = part_end_frames(state["preset"], state["frames"])
    path, err = fit_keyframes(cams, start, scale, ease=state["easing"], seed_frames=seeds)
    return {"keyframes": path.to_json(), "frames": path.frames, "count": len(path.keys), "fit_error": err}


def _nearest(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[F, h, w]`` -> ``[F, *size]`` float, nearest-neighbour (no depth blended across an edge)."""
    return torch.nn.functional.interpolate(t[:, None].float(), size=size, mode="nearest-exact")[:, 0]


def handle_coverage(body) -> dict:
    """Per frame, the fraction of the frame the start image's geometry covers (``path_coverage`` at
    the coverage size, ``coverage``) and a planning-time prediction of what world memory could add
    to the hints: ``remembered``, the fraction an older chunk's frames saw and the online cache's
    history did not (``revisit_masks`` with the start geometry's depth where it lands, else a sphere
    at the start image's median depth; on a half-size grid). The chunking comes from the body's
    ``chunk_frames`` / ``context_frames`` (the pipeline's 49 / 5 when absent)."""
    state = _state(body)
    chunk_frames = _get(body, "chunk_frames", int, CHUNK_FRAMES, 5, MAX_FRAMES)
    context_frames = _get(body, "context_frames", int, CONTEXT_FRAMES, 1, MAX_FRAMES)
    generating_chunks(1, chunk_frames, context_frames)  # the 4k+1 / context checks, before any work
    scene = _scene(body)
    if scene is None:
        raise ValueError("coverage needs the scene: connect geometry to the Camera Director and run it once")
    start, scale = _start(state, scene)
    cams = director_path(state, start, scale)
    warp = coverage_masks(scene.cov_image, scene.cov_depth, scene.cov_start, cams)
    w, h = scene.cov_start.width, scene.cov_start.height
    rw, rh = min(REMEMBER_WIDTH, w), max(1, round(min(REMEMBER_WIDTH, w) * h / w))
    depths = torch.where(warp.masks, warp.depths, torch.zeros_like(warp.depths))
    small = revisit_masks(cams.resize(rw, rh), chunk_frames, context_frames, scene.median,
                          depths=_nearest(depths, (rh, rw)))
    return {"coverage": warp.masks.float().mean(dim=(1, 2)).tolist(),
            "remembered": small.float().mean(dim=(1, 2)).tolist(),
            "chunk_frames": chunk_frames, "context_frames": context_frames, "width": w, "height": h}


def handle_scene(body) -> dict:
    """The scene's points (float32 x, y, z in the start camera's frame, scene units) and colours
    (uint8 r, g, b), base64."""
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object with 'scene'")
    scene = SCENES.get(body.get("scene"))
    return {"count": int(scene.points.shape[0]), "median": scene.median,
            "points": base64.b64encode(scene.points.contiguous().numpy().tobytes()).decode(),
            "colors": base64.b64encode(scene.colors.contiguous().numpy().tobytes()).decode(),
            "width": scene.start.width, "height": scene.start.height}


def handle_export(body) -> dict:
    """The path as a camera file's content: RealEstate10K .txt, the pack's JSON or a nerfstudio
    transforms.json."""
    state = _state(body)
    fmt = body.get("format", "re10k")
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"'format' must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    start, scale = _start(state, _scene(body))
    cams = director_path(state, start, scale)
    if fmt == "re10k":
        text = cams.to_re10k_text()
    elif fmt == "json":
        text = json.dumps(cams.to_dict(), indent=1)
    else:
        text = json.dumps(cams.to_nerfstudio_dict(), indent=1)
    return {"name": EXPORT_FORMATS[fmt], "text": text}


HANDLERS = {"path": handle_path, "fit": handle_fit, "coverage": handle_coverage, "scene": handle_scene,
            "export": handle_export}
MAX_BODY_BYTES = MAX_FILE_CHARS + 64 * 1024  # a dropped camera file and the widget values
BUDGET_S = 20.0  # a fit of a 10000-frame path on a loaded 2-core machine stays well under it
FIELDS = "preset, strength, frames, fov_degrees, scene_scale, easing, keyframes (+ width, height, scene)"
# two workers (the editor asks for the path, its keyframes and the coverage together); a flood
# queues here instead of taking every thread of the process
_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="worldwarp-director")


async def respond(name: str, raw: bytes, executor=None, budget_s: float = BUDGET_S) -> tuple[int, str]:
    """``(HTTP status, JSON text)`` of ``POST /worldwarp/director/<name>``: the body is decoded, checked
    and answered on a worker thread (``preview.run_off_loop``), never on the caller's event loop (a
    4 MB body takes tens of milliseconds to decode)."""
    if len(raw) > MAX_BODY_BYTES:  # refused without decoding
        return 400, json.dumps({"error": f"request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}"})
    handler = HANDLERS[name]
    return await run_off_loop(lambda r: json.dumps(handler(decode_body(r, MAX_BODY_BYTES, FIELDS))), raw,
                              executor or _EXECUTOR, budget_s, f"the director's {name}")
