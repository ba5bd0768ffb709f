"""The camera-path preview behind ``POST /worldwarp/trajectory_preview`` (web/worldwarp.js), with no
ComfyUI or aiohttp import so it is tested on its own; ``nodes/_v3.py`` registers the route.

A request can never stall the server: the body is size-checked before it is read and validated
field by field (every bad body is a 400 with one line saying what to send: integers of at most
``inputs.MAX_JSON_INT_DIGITS`` digits, nesting at most ``inputs.MAX_JSON_DEPTH`` levels), the
preset text is parsed in linear time under ``MAX_SPEC_CHARS`` / ``MAX_PARTS`` and frames are
capped at ``MAX_FRAMES`` (``worldwarp_core.trajectory``), and the JSON decoding and the path
maths run on one worker thread, off the event loop, answered with a 503 when they take longer
than ``BUDGET_S``. A client that goes away mid-body is one line in the log (``serve``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from concurrent.futures import Executor, ThreadPoolExecutor

import torch

from worldwarp_core.cameras import Cameras, intrinsics_from_fov
from worldwarp_core.inputs import loads_json
from worldwarp_core.trajectory import check_frames, make_trajectory, parse_trajectory

MAX_BODY_BYTES = 16 * 1024  # the frontend sends ~150 bytes; a preset is at most MAX_SPEC_CHARS
BUDGET_S = 10.0  # the slowest valid request (16 parts x 10000 frames): 0.4-1 s on one free CPU core,
# 4 s in a ComfyUI server on a 2-core machine at load 13
MAX_POINTS = 500  # cameras sent back: the JSON encoding holds the GIL, so it stays small (~50 KB)
FIELDS = "preset, strength, frames, fov_degrees, scene_scale, easing"

# one worker: a flood of requests queues here (each waits at most BUDGET_S) instead of taking
# every thread of the process
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worldwarp-preview")


def _number(body: dict, key: str, default: float, lo: float, hi: float, what: str) -> float:
    v = body.get(key)
    if v is None or v == "":
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"'{key}' must be a number ({what}), got {json.dumps(v)[:40]}")
    v = float(v)
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ValueError(f"'{key}' must be between {lo:g} and {hi:g} ({what}), got {v:g}")
    return v


def decode_body(raw: bytes, limit: int, fields: str) -> dict:
    """A request body -> its JSON object, or a one-line ``ValueError`` (too large, not JSON, NaN or
    Infinity, an integer too long, nested too deeply, not an object: ``fields`` says what to send).
    Call it off the event loop (``run_off_loop``): a large body takes a while to decode."""
    if len(raw) > limit:
        raise ValueError(f"request body is {len(raw)} bytes; the limit is {limit}")
    try:
        body = loads_json(raw, "request body")
    except ValueError as e:
        raise ValueError(f"{str(e)[:200]}; send a JSON object with {fields}") from None
    if not isinstance(body, dict):
        raise ValueError(f"request body must be a JSON object with {fields}; got a JSON {type(body).__name__}")
    return body


async def read_body(request, limit: int) -> bytes | None:
    """At most ``limit + 1`` bytes of an aiohttp request's body (``None``: its declared length is over
    the limit, so it is refused unread)."""
    size = request.content_length
    if size is not None and size > limit:
        return None
    raw = b""
    while len(raw) <= limit:  # a body without a length: read at most the limit + 1
        block = await request.content.read(limit + 1 - len(raw))
        if not block:
            break
        raw += block
    return raw


async def serve(request, limit: int, respond) -> tuple[int, str]:
    """``(HTTP status, JSON text)`` of one aiohttp request: its body read (at most ``limit`` bytes;
    a declared length over it is refused unread) and handed to ``respond(raw) -> (status, text)``.
    A client that drops mid-body is one line in the log, not a traceback."""
    try:
        raw = await read_body(request, limit)
    except (ConnectionError, OSError, EOFError, asyncio.IncompleteReadError) as e:
        return _dropped(request, e)
    except Exception as e:  # aiohttp's payload errors (ClientPayloadError, ContentLengthError, ...)
        if "Payload" in type(e).__name__ or "ContentLength" in type(e).__name__ or "Connection" in type(e).__name__:
            return _dropped(request, e)
        raise
    if raw is None:
        return 400, json.dumps({"error": f"request body is {request.content_length} bytes; the limit is {limit}"})
    return await respond(raw)


def _dropped(request, e: BaseException) -> tuple[int, str]:
    detail = str(e).splitlines()[0][:120] if str(e) else ""
    logging.warning("WorldWarp %s: the client went away before its request body arrived (%s%s)",
                    getattr(request, "path", "route"), type(e).__name__, f": {detail}" if detail else "")
    return 400, json.dumps({"error": "the request body did not arrive whole"})


async def run_off_loop(work, arg, executor: Executor, budget_s: float, what: str) -> tuple[int, str]:
    """``(HTTP status, JSON text)`` of ``work(arg) -> JSON text`` run on ``executor``, never on the event
    loop: 200, 400 for a ``ValueError``, 404 for a ``LookupError`` (something asked for is gone), 503
    when it takes longer than ``budget_s``."""
    future = asyncio.get_running_loop().run_in_executor(executor, work, arg)
    try:
        return 200, await asyncio.wait_for(future, budget_s)
    except asyncio.TimeoutError:
        return 503, json.dumps({"error": f"{what} took longer than {budget_s:g} s; try again or use fewer frames"})
    except ValueError as e:
        return 400, json.dumps({"error": str(e).splitlines()[0] if str(e) else type(e).__name__})
    except (OverflowError, RecursionError) as e:  # a number or nesting out of range the checks let through
        return 400, json.dumps({"error": f"request body holds a value out of range ({type(e).__name__})"})
    except LookupError as e:
        return 404, json.dumps({"error": str(e.args[0] if e.args else e)})


def parse_request(raw: bytes) -> dict:
    """The request body -> ``make_trajectory`` arguments, or a ``ValueError`` naming the field."""
    body = decode_body(raw, MAX_BODY_BYTES, FIELDS)
    preset = body.get("preset")
    if preset is None or preset == "":
        preset = "static"
    if not isinstance(preset, str):
        raise ValueError(f"'preset' must be text such as 'dolly_in + pan_left', got {json.dumps(preset)[:40]}")
    parse_trajectory(preset)  # length, parts, names and numbers, before any maths
    frames = body.get("frames")
    frames = check_frames(49 if frames is None or frames == "" else frames, "'frames'")
    easing = body.get("easing") or "linear"
    if easing not in ("linear", "ease-in-out"):
        raise ValueError(f"'easing' must be 'linear' or 'ease-in-out', got {json.dumps(easing)[:40]}")
    scale = _number(body, "scene_scale", 0.0, 0.0, 1e4, "median scene depth; 0 = 1")
    return {"preset": preset, "frames": frames, "easing": easing,
            "strength": _number(body, "strength", 1.0, -1e3, 1e3, "multiplies the preset strengths"),
            "fov_degrees": _number(body, "fov_degrees", 60.0, 1.0, 179.0, "horizontal field of view"),
            "scene_scale": scale if scale > 0 else 1.0}


def compute(args: dict) -> dict:
    """Camera centres and view directions of the path, with world "up" (-y in OpenCV) drawn upwards:
    every camera up to ``MAX_POINTS``, else ``MAX_POINTS`` evenly spaced ones (first and last kept;
    a node a few hundred pixels wide draws no more). ``frames`` is the path's full length."""
    start = Cameras(torch.eye(4)[None], intrinsics_from_fov(args["fov_degrees"], 64, 48), 64, 48)
    cams = make_trajectory(args["preset"], args["frames"], start, scene_scale=args["scene_scale"],
                           strength=args["strength"], ease=args["easing"])
    c2w = cams.c2w
    if len(cams) > MAX_POINTS:
        c2w = c2w[torch.linspace(0, len(cams) - 1, MAX_POINTS).round().long()]
    centers, forward = c2w[:, :3, 3].clone(), c2w[:, :3, 2].clone()
    centers[:, 1] *= -1
    forward[:, 1] *= -1
    return {"centers": centers.tolist(), "forward": forward.tolist(), "scale": args["scene_scale"],
            "frames": len(cams)}


def _answer(raw: bytes) -> str:
    return json.dumps(compute(parse_request(raw)))


async def respond(raw: bytes, executor: Executor | None = None, budget_s: float = BUDGET_S) -> tuple[int, str]:
    """``(HTTP status, JSON text)`` for one request body: 200 with the path, 400 with ``error`` for a
    bad body, 503 with ``error`` when decoding and the path maths exceed ``budget_s``. Nothing runs
    on the caller's event loop: the body is decoded and checked on the worker too."""
    if len(raw) > MAX_BODY_BYTES:  # refused without decoding
        return 400, json.dumps({"error": f"request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}"})
    return await run_off_loop(_answer, raw, executor or _EXECUTOR, budget_s, "the path preview")
