"""POST /worldwarp/trajectory_preview under hostile bodies: every bad body is a 400 with a message,
the work runs off the event loop, and a cheap request is answered within 100 ms throughout.

The handler logic (``nodes/preview.py``) is tested on a bare asyncio loop; the same attack is then
sent to the REAL ComfyUI server when a tree set up by ../shared/tools/comfy/setup.sh is present.
"""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import torch
from comfy_tree import COMFY_PY, COMFYUI_DIR, HARNESS, needs_comfy, server_url

from nodes import preview
from worldwarp_core.cameras import Cameras, intrinsics_from_fov
from worldwarp_core.trajectory import MAX_FRAMES, MAX_PARTS, MAX_SPEC_CHARS, make_trajectory

HEAVY = " * ".join(["dolly_in", "orbit_left", "pan_left", "spiral"] * 4)  # MAX_PARTS parts
# (raw body, expected message): the bodies the fuzz campaign sent, and their kin
HOSTILE = [
    (b'{"preset": "dolly_in", "frames": Infinity}', "Infinity is not a number JSON allows"),
    (b'{"frames": NaN}', "NaN is not a number JSON allows"),
    (b'[1, 2, 3]', "must be a JSON object with preset, strength, frames"),
    (b'"dolly_in"', "must be a JSON object"),
    (b"", "request body is not JSON"),
    (b"\xff\xfe\x00garbage", "request body is not JSON"),
    (b"[" * 15000, "nests too deeply"),
    (json.dumps({"preset": "dolly_in" + " " * 20000 + "x"}).encode(), "request body is 20023 bytes; the limit is 16384"),
    (json.dumps({"preset": "dolly_in" + " " * 1600 + "x"}).encode(), "trajectory text is 1609 characters; the limit is 1000"),
    (json.dumps({"preset": "dolly_in" + " " * 900 + "x"}).encode(), "cannot read trajectory part 'dolly_in x'"),
    (json.dumps({"preset": " * ".join(["dolly_in@0.5"] * 500)}).encode(), "the limit is 1000"),
    (json.dumps({"preset": " * ".join(["pan_left"] * 40)}).encode(), "trajectory has 40 parts; the limit is 16"),
    (json.dumps({"preset": "dolly_in@1e999"}).encode(), "strength '1e999' of trajectory part 'dolly_in@1e999' must be a finite number"),
    (json.dumps({"preset": "dolly_in@0.5.5"}).encode(), "cannot read the strength '0.5.5'"),
    (json.dumps({"preset": "fly"}).encode(), "unknown camera preset 'fly'"),
    (json.dumps({"preset": 5}).encode(), "'preset' must be text"),
    (json.dumps({"frames": 2000001}).encode(), "'frames' is 2000001; the limit is 10000 frames"),
    (json.dumps({"frames": "49"}).encode(), "'frames' must be a whole number, got '49'"),
    (json.dumps({"frames": 9.5}).encode(), "'frames' must be a whole number, got 9.5"),
    (json.dumps({"frames": 0}).encode(), "'frames' must be >= 1, got 0"),
    (b'{"strength": 1e999}', "'strength' must be between -1000 and 1000"),
    (json.dumps({"strength": [1]}).encode(), "'strength' must be a number"),
    (json.dumps({"fov_degrees": 180}).encode(), "'fov_degrees' must be between 1 and 179"),
    (json.dumps({"scene_scale": -1}).encode(), "'scene_scale' must be between 0 and 10000"),
    (json.dumps({"easing": {"a": 1}}).encode(), "'easing' must be 'linear' or 'ease-in-out'"),
]


def _respond(raw, **kw):
    status, text = asyncio.run(preview.respond(raw, **kw))
    return status, json.loads(text)


@pytest.mark.parametrize("raw,message", HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_every_bad_body_is_a_400_with_a_message(raw, message):
    t = time.perf_counter()
    status, body = _respond(raw)
    assert status == 400 and message in body["error"], body
    assert "\n" not in body["error"] and len(body["error"]) < 300
    assert time.perf_counter() - t < 0.5  # the cubic parser took 3 s on 1,600 spaces


def test_parser_is_linear_in_the_spec_length():
    start = Cameras(torch.eye(4)[None], intrinsics_from_fov(60, 64, 48), 64, 48)
    worst = 0.0
    for spec in ["dolly_in" + " " * (MAX_SPEC_CHARS - 9) + "x", " " * MAX_SPEC_CHARS,
                 "dolly_in@" + "1" * (MAX_SPEC_CHARS - 10) + "x", "+" * MAX_SPEC_CHARS,
                 " + ".join(["dolly_in@  0.5  :  2"] * 40)]:
        t = time.perf_counter()
        with pytest.raises(ValueError):
            make_trajectory(spec, 9, start)
        worst = max(worst, time.perf_counter() - t)
    assert worst < 0.05, worst


def test_a_valid_body_is_the_nodes_path():
    status, body = _respond(json.dumps({"preset": "dolly_in@0.5 + pan_left", "frames": 9, "strength": 2,
                                        "fov_degrees": 50, "scene_scale": 3, "easing": "ease-in-out"}).encode())
    assert status == 200
    start = Cameras(torch.eye(4)[None], intrinsics_from_fov(50, 64, 48), 64, 48)
    cams = make_trajectory("dolly_in@0.5 + pan_left", 9, start, scene_scale=3, strength=2, ease="ease-in-out")
    centers = torch.tensor(body["centers"], dtype=torch.float64)
    torch.testing.assert_close(centers, cams.c2w[:, :3, 3] * torch.tensor([1.0, -1.0, 1.0]))
    assert len(body["forward"]) == 9 and body["scale"] == 3 and body["frames"] == 9
    # what the frontend sends for an untouched node: every field empty or missing
    status, body = _respond(b'{"preset": "", "frames": null}')
    assert status == 200 and len(body["centers"]) == 49
    # strength 0 is a still camera, not "default 1"
    status, body = _respond(b'{"preset": "dolly_in", "frames": 5, "strength": 0}')
    assert status == 200 and max(abs(v) for c in body["centers"] for v in c) == 0


def test_the_heaviest_valid_request_is_bounded_and_the_budget_holds():
    t = time.perf_counter()
    status, body = _respond(json.dumps({"preset": HEAVY, "frames": MAX_FRAMES}).encode())
    assert status == 200 and body["frames"] == MAX_FRAMES and len(body["centers"]) == preview.MAX_POINTS
    start = Cameras(torch.eye(4)[None], intrinsics_from_fov(60, 64, 48), 64, 48)
    last = make_trajectory(HEAVY, MAX_FRAMES, start).c2w[-1, :3, 3] * torch.tensor([1.0, -1.0, 1.0])
    torch.testing.assert_close(torch.tensor(body["centers"][-1], dtype=torch.float64), last)
    assert time.perf_counter() - t < preview.BUDGET_S
    status, body = _respond(json.dumps({"preset": HEAVY, "frames": MAX_FRAMES}).encode(), budget_s=1e-4)
    assert status == 503 and "took longer than 0.0001 s" in body["error"]


async def _attack_and_ping(send, ping, seconds_after=0.3):
    """Fire every hostile body and heavy valid requests concurrently; ``ping`` every 10 ms meanwhile.
    Returns (worst ping latency in s, statuses)."""
    worst, statuses = 0.0, []
    stop = asyncio.Event()

    async def pinger():
        nonlocal worst
        while not stop.is_set():
            worst = max(worst, await ping())
            await asyncio.sleep(0.01)

    task = asyncio.create_task(pinger())
    await asyncio.sleep(0.1)
    bodies = [raw for raw, _ in HOSTILE] + [json.dumps({"preset": HEAVY, "frames": 2000}).encode()] * 3
    statuses = await asyncio.gather(*(send(raw) for raw in bodies))
    await asyncio.sleep(seconds_after)
    stop.set()
    await task
    return worst, statuses


def test_the_event_loop_answers_within_100_ms_under_attack():
    async def main():
        loop = asyncio.get_running_loop()

        async def ping():  # a cheap route: how late does the loop run a ready callback?
            t = loop.time()
            await asyncio.sleep(0)
            return loop.time() - t

        async def send(raw):
            return (await preview.respond(raw))[0]

        return await _attack_and_ping(send, ping)

    worst, statuses = asyncio.run(main())
    assert statuses == [400] * len(HOSTILE) + [200] * 3
    assert worst < 0.1, f"the loop stalled {worst * 1000:.0f} ms"


# ----------------------------------------------------------------------------- the real server
PORT, URL = server_url(8191)


def _http(path, raw=None, timeout=30):
    req = urllib.request.Request(URL + path, data=raw, method="POST" if raw is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.comfy
@needs_comfy
def test_real_server_answers_a_cheap_route_within_100_ms_under_attack(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(HARNESS, "run_workflow.py"), "--start-only", "--start", "always",
                        "--url", URL, "--comfy-dir", COMFYUI_DIR, "--python", COMFY_PY,
                        f"--server-arg=--output-directory={tmp_path}"],
                       capture_output=True, text=True, timeout=400)
    m = re.search(r"\(pid (\d+)\)", r.stdout)
    assert r.returncode == 0 and m, (r.stdout[-3000:], r.stderr[-3000:])
    pid = int(m.group(1))
    try:
        assert _http("/features")[0] == 200

        async def main():
            loop = asyncio.get_running_loop()

            async def ping():
                t = time.perf_counter()
                status, _ = await loop.run_in_executor(None, _http, "/features")
                assert status == 200
                return time.perf_counter() - t

            async def send(raw):
                return (await loop.run_in_executor(None, _http, "/worldwarp/trajectory_preview", raw))[0]

            return await _attack_and_ping(send, ping, seconds_after=1.0)

        worst, statuses = asyncio.run(main())
        assert statuses == [400] * len(HOSTILE) + [200] * 3
        status, body = _http("/worldwarp/trajectory_preview", json.dumps({"preset": "dolly_in", "frames": 5}).encode())
        assert status == 200 and len(json.loads(body)["centers"]) == 5
        assert worst < 0.1, f"/features took {worst * 1000:.0f} ms during the attack"
    finally:
        t = time.perf_counter()
        os.killpg(pid, signal.SIGTERM)  # the server the harness started for this test, by its id
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().split(") ")[1].startswith("Z"):
                        break
            except (ProcessLookupError, FileNotFoundError):
                break
            time.sleep(0.2)
        else:
            os.killpg(pid, signal.SIGKILL)
            pytest.fail("the server ignored SIGTERM for 30 s")
        print(f"server stopped {time.perf_counter() - t:.1f} s after SIGTERM")


def test_limits_are_the_stated_ones():
    assert (MAX_FRAMES, MAX_SPEC_CHARS, MAX_PARTS) == (10_000, 1_000, 16)
    assert preview.MAX_BODY_BYTES > MAX_SPEC_CHARS * 6  # a preset at the limit, even \u-escaped, fits a body
