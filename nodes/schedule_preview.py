"""The noise-schedule curves behind ``POST /worldwarp/schedule_preview`` (web/worldwarp.js draws them
on the Preview Noise Schedule node), computed by the same core functions as the node, so the
preview follows the selected schedule variant, the strength τ and the step count. No ComfyUI or
aiohttp import: tested on its own; ``nodes/_v3.py`` registers the route."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

from worldwarp_core.inputs import loads_json
from worldwarp_core.schedule import SCHEDULE_VARIANTS, flow_sigmas, group_sigmas

from .preview import run_off_loop

MAX_BODY_BYTES = 4096  # the frontend sends ~60 bytes
MAX_STEPS = 200  # the node's steps maximum
BUDGET_S = 30.0  # the first request imports diffusers (its scheduler) on a loaded machine
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worldwarp-schedule")


def parse_request(raw: bytes) -> tuple[int, float, str]:
    """The request body -> ``(steps, strength, schedule)``, or a one-line ``ValueError`` naming the field."""
    if len(raw) > MAX_BODY_BYTES:
        raise ValueError(f"request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}")
    try:  # integers too long and nesting too deep are refused here, not by a RecursionError later
        body = loads_json(raw or b"{}", "request body")
    except ValueError as e:
        raise ValueError(f"{e}; send a JSON object with steps, strength, schedule") from None
    if not isinstance(body, dict):
        raise ValueError("request body must be a JSON object with steps, strength, schedule")
    steps, strength = body.get("steps", 50), body.get("strength", 0.8)
    schedule = body.get("schedule", "spatio-temporal")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"'steps' must be an integer from 1 to {MAX_STEPS}, got {json.dumps(steps)[:40]}")
    if (isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength)
            or not 0.0 <= strength <= 1.0):
        raise ValueError(f"'strength' must be a number from 0 to 1, got {json.dumps(strength)[:40]}")
    if schedule not in SCHEDULE_VARIANTS:
        raise ValueError(f"'schedule' must be one of {', '.join(SCHEDULE_VARIANTS)}, got {json.dumps(schedule)[:40]}")
    return steps, float(strength), schedule


def curves(raw: bytes) -> dict:
    """The JSON answer for a request body: σ per step of the sigmas and of each token group."""
    steps, strength, schedule = parse_request(raw)
    sigmas = flow_sigmas(steps)
    groups = group_sigmas(strength, sigmas, schedule)
    return {"steps": steps, "schedule": schedule, "sigma_start": float(groups["warped"][0]),
            **{name: [round(float(v), 5) for v in curve] for name, curve in groups.items()}}


def respond(raw: bytes) -> tuple[int, dict]:
    """HTTP status and JSON body, computed on the caller's thread (``respond_off_loop``: the route's)."""
    if len(raw) > MAX_BODY_BYTES:
        return 400, {"error": f"request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}"}
    try:
        return 200, curves(raw)
    except ValueError as e:
        return 400, {"error": str(e)}


async def respond_off_loop(raw: bytes, executor=None, budget_s: float = BUDGET_S) -> tuple[int, str]:
    """``(HTTP status, JSON text)`` of ``POST /worldwarp/schedule_preview``, decoded and computed off
    the event loop."""
    if len(raw) > MAX_BODY_BYTES:
        return 400, json.dumps({"error": f"request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}"})
    return await run_off_loop(lambda r: json.dumps(curves(r)), raw, executor or _EXECUTOR, budget_s,
                              "the schedule preview")
