"""Hostile input, second pass: every path confined to ComfyUI's folders (links resolved), every
input that scales work bounded before work, wrong loop wiring refused by name, and each refusal a
line a user can act on. Each test reproduces one finding of a fuzz campaign against the real server."""

import asyncio
import json
import logging
import os
import sys
import threading
import types
import weakref

import pytest
import torch
from test_nodes import FakeEnv

from nodes import director as director_routes
from nodes import loop_graph, ops, preview, schedule_preview
from nodes.specs import spec_by_id
from worldwarp_core.cameras import Cameras, intrinsics_from_fov
from worldwarp_core.gscache import GeometryCache, GSConfig
from worldwarp_core.gscache.cache import render_hints_in_steps
from worldwarp_core.inputs import (
    MAX_CAMERA_FILE_BYTES,
    MAX_CAMERAS,
    MAX_FRAMES,
    MAX_HINT_PIXELS,
    check_name,
    input_file,
    load_camera_file,
    path_inside,
)
from worldwarp_core.outputs import RunFolder
from worldwarp_core.warp import WarpResult

IMG = torch.rand(1, 32, 48, 3)


def _cams(n=9, w=48, h=32):
    vm = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    vm[:, 2, 3] = torch.linspace(0, 0.1, n, dtype=torch.float64)
    return Cameras(vm, intrinsics_from_fov(60.0, w, h, n).double(), w, h)


@pytest.fixture
def env(tmp_path):
    return FakeEnv(str(tmp_path / "comfy"))


def _loop_start(env, folder, resume=False, frames=17):
    return ops.loop_start(env, IMG, _cams(), frames, 9, 5, 0, "extrapolate", "auto", folder, resume, 16)


# ----------------------------------------------------------------------------- 1. links out of output/
def test_a_link_inside_the_output_folder_does_not_take_the_run_outside(env, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, os.path.join(env.output, "link"))
    with pytest.raises(ValueError, match=r"output_folder 'link/run' leaves ComfyUI's output folder \(a '\.\.' or a "
                                         r"link to another place\)"):
        _loop_start(env, "link/run")
    with pytest.raises(ValueError, match="filename_prefix 'link/cams' leaves ComfyUI's output folder"):
        ops.save_cameras(env, _cams(), "link/cams")
    assert os.listdir(outside) == []
    inner = os.path.join(env.output, "inner")
    os.makedirs(inner)
    os.symlink(inner, os.path.join(env.output, "alias"))  # a link that stays inside is fine
    assert path_inside(env.output, "alias/run", "output_folder") == os.path.join(os.path.realpath(inner), "run")


def test_comfy_env_resolves_links_as_comfyuis_save_nodes(tmp_path, monkeypatch):
    """nodes/comfy_env.py itself (ComfyUI's services) with a stand-in folder_paths module."""
    out, inp = tmp_path / "output", tmp_path / "input"
    out.mkdir()
    inp.mkdir()
    (tmp_path / "secret").mkdir()
    os.symlink(tmp_path / "secret", out / "link")
    fp = types.ModuleType("folder_paths")
    fp.get_output_directory = lambda: str(out)
    fp.get_input_directory = lambda: str(inp)
    fp.get_save_image_path = lambda prefix, root: (os.path.join(root, os.path.dirname(prefix)),
                                                   os.path.basename(prefix), 1, os.path.dirname(prefix), prefix)
    monkeypatch.setitem(sys.modules, "folder_paths", fp)
    monkeypatch.delitem(sys.modules, "nodes.comfy_env", raising=False)
    from nodes.comfy_env import ComfyEnv

    e = ComfyEnv()
    with pytest.raises(ValueError, match="leaves ComfyUI's output folder"):
        e.output_path("link/run")
    with pytest.raises(ValueError, match="leaves ComfyUI's output folder"):
        e.save_target("link/cams")
    with pytest.raises(ValueError, match="filename_prefix is empty"):
        e.save_target("")
    assert e.save_target("worldwarp/cams") == (str(out / "worldwarp"), "cams_00001_")
    assert os.listdir(tmp_path / "secret") == []


# ----------------------------------------------------------------------------- 2. files read: input/ only, bounded
def test_camera_file_is_read_from_the_input_folder_only_and_leaks_nothing(env, tmp_path):
    good = _cams(3)
    outside = tmp_path / "outside.txt"
    good.to_re10k(str(outside))
    os.makedirs(os.path.join(env.input, "sub"))
    good.to_re10k(os.path.join(env.input, "sub", "mine.txt"))
    os.symlink(outside, os.path.join(env.input, "link.txt"))
    os.symlink(tmp_path / "missing.txt", os.path.join(env.input, "dead.txt"))

    def refusal(name):
        with pytest.raises(ValueError) as e:
            ops.camera_trajectory(env, IMG, "dolly_in", 1.0, 9, 60.0, 0.0, "linear", name)
        assert "\n" not in str(e.value)
        return str(e.value).replace("missing", "outside")

    # a file outside that exists and one that does not give the same line (the name decides it)
    assert refusal(str(outside)) == refusal(str(tmp_path / "missing.txt"))
    assert "is an absolute path; put the file in ComfyUI's input folder" in refusal(str(outside))
    assert refusal("../outside.txt") == refusal("../missing.txt")
    assert refusal("link.txt").replace("link.txt", "dead.txt") == refusal("dead.txt")
    assert "'link.txt' leaves ComfyUI's input folder (a '..' or a link to another place)" in refusal("link.txt")
    assert "leaves ComfyUI's input folder" in refusal("sub/../../outside.txt")
    assert "control character" in refusal("a\x00b.txt")
    assert "is not a .txt/.json/.npz file" in refusal("model.safetensors")
    (cams,) = ops.camera_trajectory(env, IMG, "dolly_in", 1.0, 9, 60.0, 0.0, "linear", "sub/mine.txt")
    assert torch.allclose(cams.viewmats, good.viewmats)
    with pytest.raises(ValueError, match=r"camera_file: 'nope.txt' not found in ComfyUI's input folder"):
        ops.camera_trajectory(env, IMG, "dolly_in", 1.0, 9, 60.0, 0.0, "linear", "nope.txt")


def test_camera_files_have_a_size_and_a_camera_limit_before_parsing(env, tmp_path):
    big = os.path.join(env.input, "big.txt")
    with open(big, "wb") as f:  # sparse: refused by its size, never read
        f.truncate(MAX_CAMERA_FILE_BYTES + 1)
    with pytest.raises(ValueError, match=rf"big.txt: {MAX_CAMERA_FILE_BYTES + 1:,} bytes; a camera file is at most "
                                         rf"{MAX_CAMERA_FILE_BYTES:,} bytes"):
        ops.camera_trajectory(env, IMG, "dolly_in", 1.0, 9, 60.0, 0.0, "linear", "big.txt")
    import numpy as np

    np.savez_compressed(os.path.join(env.input, "bomb.npz"), poses=np.zeros((MAX_CAMERA_FILE_BYTES // 128 + 1, 4, 4)),
                        intrinsics=np.zeros((1, 3, 3)))  # ~17 KB on disk, 16 MiB unpacked
    with pytest.raises(ValueError, match=rf"bomb.npz: unpacks to [\d,]+ bytes; a pose cache is at most "
                                         rf"{MAX_CAMERA_FILE_BYTES:,} bytes"):
        ops.camera_trajectory(env, IMG, "dolly_in", 1.0, 9, 60.0, 0.0, "linear", "bomb.npz")
    line = "0 0.5 0.5 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0\n"
    many = tmp_path / "many.txt"
    many.write_text(line * (MAX_CAMERAS + 1))
    with pytest.raises(ValueError, match=rf"many.txt holds {MAX_CAMERAS + 1:,} cameras; the limit is {MAX_CAMERAS:,}"):
        load_camera_file(str(many), 48, 32)  # the CLI reads the user's own paths, with the same limits
    js = tmp_path / "many.json"
    js.write_text(json.dumps({"width": 48, "height": 32, "frames": [{}] * (MAX_CAMERAS + 1)}))
    with pytest.raises(ValueError, match=rf"holds {MAX_CAMERAS + 1:,} cameras"):
        load_camera_file(str(js), 48, 32)
    huge = tmp_path / "huge.json"
    huge.write_text('{"width": 1' + "0" * 5000 + ', "height": 32, "frames": []}')
    with pytest.raises(ValueError, match="an integer of 5001 digits"):
        load_camera_file(str(huge), 48, 32)


def test_widget_maxima_equal_the_limits():
    specs = spec_by_id()
    for node, name in (("WorldWarpLoopStart", "frames"), ("WorldWarpChunkLoop", "frames"),
                       ("WorldWarpCameraTrajectory", "frames"), ("WorldWarpCameraDirector", "frames"),
                       ("WorldWarpExtrapolateTrajectory", "total_frames")):
        assert {i.name: i for i in specs[node].inputs}[name].max == MAX_FRAMES, (node, name)
    assert MAX_CAMERAS == MAX_FRAMES == 10_000
    # the suggested totals stay within the widget's maximum
    from worldwarp_core.pipeline import PipelineSettings

    with pytest.raises(ValueError, match=r"use 9993$"):
        PipelineSettings().chunk_starts(10_000)


# ----------------------------------------------------------------------------- 3. loop wiring
def _graph(**extra):
    L = lambda n, s=0: [str(n), s]  # noqa: E731
    g = {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
         "2": {"class_type": "WorldWarpLoopStart", "inputs": {"image": L(1), "output_folder": "a", "frames": 17}},
         "3": {"class_type": "WorldWarpSTDiffSampler", "inputs": {"hints": L(2, 1), "steps": 20}},
         "4": {"class_type": "WorldWarpLoopEnd", "inputs": {"loop": L(2), "frames": L(3), "cache": L(3, 1)}}}
    g.update(extra)
    return g


def _check(g, start="2"):
    return loop_graph.check_wiring(g.__getitem__, list(g), start)


def test_wrong_loop_wiring_is_one_line_naming_the_nodes():
    L = lambda n, s=0: [str(n), s]  # noqa: E731
    assert _check(_graph()) == "4"
    two_ends = _graph(**{"5": {"class_type": "WorldWarpLoopEnd", "inputs": {"loop": L(2), "frames": L(3)}}})
    with pytest.raises(ValueError, match=r"^WorldWarp Loop Start \(node 2\) feeds 2 Loop Ends \(nodes 4, 5\); a Loop "
                                         r"Start closes with one Loop End"):
        _check(two_ends)
    other = _graph(**{"6": {"class_type": "WorldWarpLoopStart", "inputs": {"image": L(1), "output_folder": "b"}},
                      "7": {"class_type": "WorldWarpLoopEnd", "inputs": {"loop": L(6), "frames": L(6, 1)}}})
    other["3"]["inputs"]["hints"] = L(6, 1)  # the body reads Loop Start 6 while Loop End 4 closes Loop Start 2
    with pytest.raises(ValueError, match=r"^WorldWarpSTDiffSampler \(node 3\) in the loop of WorldWarp Loop End "
                                         r"\(node 4\) reads WorldWarp Loop Start \(node 6\), but that Loop End closes "
                                         r"WorldWarp Loop Start \(node 2\)"):
        _check(other)
    with pytest.raises(ValueError, match=r"WorldWarp Loop Start \(node 2\) has no WorldWarp Loop End"):
        _check({k: v for k, v in _graph().items() if k != "4"})
    by_hand = _graph(**{"8": {"class_type": "WorldWarpLoopNext", "inputs": {"loop": L(2)}}})
    with pytest.raises(ValueError, match=r"WorldWarp Loop Next \(node 8\) is placed by Loop End only; delete it"):
        _check(by_hand)
    # a finished loop's video may feed the next loop's body
    chained = _graph(**{"6": {"class_type": "WorldWarpLoopStart", "inputs": {"image": L(1), "output_folder": "b"}},
                        "7": {"class_type": "WorldWarpLoopEnd", "inputs": {"loop": L(6), "frames": L(6, 1)}}})
    chained["3"]["inputs"]["context"] = L(7)
    assert _check(chained) == "4"


def test_queued_prompts_mark_loop_start_with_its_graph():
    """An edit of the body changes Loop Start's inputs (ComfyUI's cache key), so Loop Start runs -- and
    refuses a folder made by the old graph -- before the body runs again."""
    def mark(g):
        return loop_graph.mark_graphs(g)["2"]["inputs"][loop_graph.GRAPH_INPUT]

    base = mark(_graph())
    edited = _graph()
    edited["3"]["inputs"]["steps"] = 30
    moved = _graph()
    moved["2"]["inputs"]["output_folder"] = "elsewhere"  # where it is written does not change what it computes
    outside = _graph(**{"9": {"class_type": "SaveVideo", "inputs": {"video": ["4", 4]}}})
    assert mark(edited) != base and mark(moved) == base and mark(outside) == base
    marked = loop_graph.mark_graphs(_graph())
    assert marked["3"] == _graph()["3"]  # nothing else changes
    assert loop_graph.GRAPH_INPUT not in json.dumps(loop_graph.signature(marked.__getitem__, "4"))
    assert loop_graph.mark_graphs({"x": {"class_type": "WorldWarpLoopStart", "inputs": {"a": ["nope", 0]}}})


def test_a_graph_change_says_which_node_and_input(tmp_path):
    sig = loop_graph.signature(_graph().__getitem__, "4")
    edited = _graph()
    edited["3"]["inputs"]["steps"] = 30
    run = RunFolder(str(tmp_path / "run"))
    run.prepare({"fingerprint": "a", "inputs": {"graph": str([sig])}, "graph": [sig]}, False, False)
    new_sig = loop_graph.signature(edited.__getitem__, "4")
    with pytest.raises(ValueError, match=r"changed: graph: node 3 \(WorldWarpSTDiffSampler\) steps 20 -> 30\)"):
        run.prepare({"fingerprint": "b", "inputs": {"graph": str([new_sig])}, "graph": [new_sig]}, True, False)


# ----------------------------------------------------------------------------- 4. hint rendering bounded
class _CountingCache:
    """A cache whose renders are watched: how many are alive while the next one is made."""

    def __init__(self):
        self.calls, self.alive, self.refs = 0, 0, []

    def render_hints(self, cameras, depth_tolerance=None):
        self.calls += 1
        self.alive = max(self.alive, sum(r() is not None for r in self.refs))
        V, H, W = len(cameras), cameras.height, cameras.width
        img = torch.full((V, H, W, 3), 0.5)
        self.refs.append(weakref.ref(img))
        return WarpResult(img, torch.ones(V, H, W, dtype=torch.bool), torch.ones(V, H, W))


def test_hint_rendering_keeps_one_step_and_has_a_stated_limit(env):
    cache = _CountingCache()
    hints = render_hints_in_steps(cache, _cams(10), views_per_step=2)
    assert cache.calls == 5 and cache.alive == 0  # each step's render was dropped before the next
    assert hints.images.shape == (10, 32, 48, 3) and bool((hints.images == 0.5).all()) and bool(hints.masks.all())
    W, H = 256, 144
    too_many = MAX_HINT_PIXELS // (W * H) + 1
    path = Cameras(torch.eye(4).repeat(too_many, 1, 1), intrinsics_from_fov(60.0, W, H, too_many), W, H)
    refused = _CountingCache()
    with pytest.raises(ValueError, match=rf"{too_many} views at 256x144 are [\d,]+ hint pixels; one render is at most "
                                         rf"{MAX_HINT_PIXELS:,} \(e\.g\. {too_many - 1:,} views at this size\)"):
        ops.render_hints(env, refused, path)
    assert refused.calls == 0  # before any work


def test_hint_rendering_streams_the_same_hints_as_one_render():
    from worldwarp_core.gscache import build_cache

    torch.manual_seed(0)
    cams = _cams(6)
    cache = build_cache(torch.rand(1, 32, 48, 3), torch.full((1, 32, 48), 2.0), cams[:1], "pointcloud", GSConfig())
    whole = cache.render_hints(cams)
    parts = render_hints_in_steps(cache, cams, views_per_step=4)
    for a, b in zip((whole.images, whole.masks, whole.depths), (parts.images, parts.masks, parts.depths)):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------- 5. routes
BIG = "1" + "0" * 400


@pytest.mark.parametrize("route,raw,message", [
    ("preview", '{"strength": BIG}', "an integer of 401 digits; numbers have at most 30 digits"),
    ("preview", '{"frames": BIG}', "an integer of 401 digits"),
    ("schedule", '{"strength": BIG}', "an integer of 401 digits"),
    ("schedule", '{"steps": -BIG}', "an integer of 401 digits"),
    ("schedule", "[" * 2000 + "]" * 2000, "nests too deeply"),
    ("schedule", '{"a": ' * 40 + "1" + "}" * 40, "nests too deeply (more than 32 levels)"),
    ("path", '{"frames": BIG}', "an integer of 401 digits"),
    ("path", '{"keyframes": "{\\"frames\\": 9, \\"keyframes\\": [{\\"frame\\": BIG}]}"}',
     "keyframes: an integer of 401 digits"),
    ("path", '{"keyframes": "{\\"frames\\": 9, \\"keyframes\\": [{\\"frame\\": 1e999}]}"}',
     "keyframe 0's frame must be a finite number"),
], ids=lambda v: v[:12] if isinstance(v, str) else str(v))
def test_every_route_answers_huge_integers_and_deep_nesting_with_a_400_line(route, raw, message):
    raw = raw.replace("BIG", BIG).encode()
    if route == "preview":
        status, text = asyncio.run(preview.respond(raw))
    elif route == "schedule":
        status, text = asyncio.run(schedule_preview.respond_off_loop(raw))
    else:
        status, text = asyncio.run(director_routes.respond(route, raw))
    error = json.loads(text)["error"]
    assert status == 400 and message in error and "\n" not in error and len(error) < 400, (status, error)


def test_director_node_keyframes_overflow_is_a_value_error():
    text = '{"frames": 9, "keyframes": [{"frame": 4, "position": [X, 0, 0]}]}'
    keyframes, bigger = text.replace("X", "1" + "0" * 25), text.replace("X", "1" + "0" * 400)
    (cams,) = ops.camera_director(None, IMG, "dolly_in", 1.0, 9, 60.0, 0.0, "linear", keyframes)
    assert len(cams) == 9
    with pytest.raises(ValueError, match="keyframes: an integer of 401 digits"):
        ops.camera_director(None, IMG, "dolly_in", 1.0, 9, 60.0, 0.0, "linear", bigger)


def test_route_bodies_are_decoded_off_the_event_loop(monkeypatch):
    threads = []
    real = preview.loads_json

    def watching(*a, **k):
        threads.append(threading.current_thread())
        return real(*a, **k)

    monkeypatch.setattr(preview, "loads_json", watching)
    body = json.dumps({"preset": "dolly_in", "frames": 9}).encode()

    async def main():
        loop_thread = threading.current_thread()
        answers = [await preview.respond(body), await director_routes.respond("path", body)]
        return loop_thread, answers

    loop_thread, answers = asyncio.run(main())
    assert [a[0] for a in answers] == [200, 200] and len(threads) == 2
    assert all(t is not loop_thread for t in threads)


class _Content:
    def __init__(self, blocks, error=None):
        self.blocks, self.error = list(blocks), error

    async def read(self, n):
        if self.blocks:
            return self.blocks.pop(0)[:n]
        if self.error is not None:
            raise self.error
        return b""


class _Request:
    path = "/worldwarp/schedule_preview"

    def __init__(self, blocks, length=None, error=None):
        self.content, self.content_length = _Content(blocks, error), length


def test_a_client_that_drops_mid_body_is_one_log_line(caplog):
    class ClientPayloadError(Exception):  # aiohttp's name for a body cut short
        pass

    async def never(raw):
        raise AssertionError("a cut body is not answered")

    with caplog.at_level(logging.WARNING):
        for err in (ConnectionResetError("Connection lost"), ClientPayloadError("Response payload is not completed")):
            status, text = asyncio.run(preview.serve(_Request([b'{"steps"'], error=err), 4096, never))
            assert status == 400 and json.loads(text)["error"] == "the request body did not arrive whole"
    lines = [r for r in caplog.records if "WorldWarp" in r.getMessage()]
    assert len(lines) == 2 and all(r.exc_info is None and "\n" not in r.getMessage() for r in lines)
    assert "client went away before its request body arrived (ConnectionResetError" in lines[0].getMessage()
    # a declared length over the limit is refused unread; a whole body is answered
    status, text = asyncio.run(preview.serve(_Request([], length=10**9), 4096, never))
    assert status == 400 and "the limit is 4096" in json.loads(text)["error"]
    schedule_preview.respond(b"{}")  # the scheduler's import, outside the route's time budget
    status, text = asyncio.run(preview.serve(_Request([b'{"steps": 4}']), 4096, schedule_preview.respond_off_loop))
    assert status == 200 and len(json.loads(text)["warped"]) == 5


# ----------------------------------------------------------------------------- 6. interrupts inside long forwards
class Interrupted(Exception):
    pass


class _StopAfter(FakeEnv):
    def __init__(self, root, after):
        super().__init__(root)
        self.after = after

    def check_interrupt(self):
        self.interrupt_checks += 1
        if self.interrupt_checks > self.after:
            raise Interrupted


def test_estimate_geometry_answers_an_interrupt_inside_its_forward(tmp_path):
    from worldwarp_core.geometry.monocular import DepthAnythingV2
    from worldwarp_core.geometry.testing import tiny_depth_anything

    geo = DepthAnythingV2(model=tiny_depth_anything(), input_size=56)
    frames = torch.rand(3, 32, 48, 3)
    counting = _StopAfter(str(tmp_path / "a"), 10**9)
    ops.estimate_geometry(counting, geo, frames)
    assert counting.interrupt_checks > 20  # checks run inside the one forward, layer by layer
    with pytest.raises(Interrupted):
        ops.estimate_geometry(_StopAfter(str(tmp_path / "b"), 5), geo, frames)
    assert all(not m._forward_pre_hooks for m in geo.model.modules())  # hooks removed, numbers unchanged
    again = ops.estimate_geometry(counting, geo, frames)[0].depth
    assert torch.equal(again, geo.estimate(frames).depth)


def test_vae_encode_and_decode_answer_an_interrupt(tmp_path):
    from worldwarp_core.models import tiny_model

    model = tiny_model()
    video = torch.rand(5, 32, 32, 3)
    checks = []
    z = model.encode_video(video, check=lambda: checks.append(1))
    n = len(checks)
    model.decode_video(z, check=lambda: checks.append(1))
    assert n > 5 and len(checks) > 2 * n - n  # inside both

    def stop():
        raise Interrupted

    with pytest.raises(Interrupted):
        model.encode_video(video, check=stop)
    with pytest.raises(Interrupted):
        model.decode_video(z, check=stop)
    assert torch.equal(model.encode_video(video), z)


# ----------------------------------------------------------------------------- 7. debris of a deleted folder
def test_debris_of_a_deleted_run_folder_does_not_block_it(env):
    tmp = os.path.join(env.output, "worldwarp", "run", "chunks", "chunk_000.tmp", "hints")
    os.makedirs(tmp)  # what a Loop End left when it wrote into a folder deleted under it
    outs = _loop_start(env, "worldwarp/run")
    assert outs[0].folder.holds_run(outs[0].fingerprint)
    assert sorted(os.listdir(os.path.join(env.output, "worldwarp", "run", "chunks"))) == []
    for resume in (True, False):  # and the other way round: a folder emptied to debris, either switch
        import shutil

        shutil.rmtree(os.path.join(env.output, "worldwarp", "run"))
        os.makedirs(tmp)
        _loop_start(env, "worldwarp/run", resume=resume)


# ----------------------------------------------------------------------------- 8. refusals before heavy work
class _NoEncode:
    """A model that must not be reached: the checks come first."""

    def encode_video(self, *a, **k):
        raise AssertionError("the VAE encode ran before the checks")


@pytest.mark.parametrize("kw,message", [
    (dict(strength=1.5), r"strength must be a finite number >= 0 and <= 1, got 1.5"),
    (dict(strength=float("nan")), r"strength must be a finite number >= 0 and <= 1, got nan"),
    (dict(cfg=0.5), r"cfg must be a finite number >= 1 and <= 20, got 0.5"),
    (dict(shift=float("nan")), r"shift must be a finite number > 0 and <= 20, got nan"),
    (dict(shift=0.0), r"shift must be a finite number > 0 and <= 20, got 0.0"),
    (dict(steps=0), r"steps must be in 1..200, got 0; use 1"),
])
def test_st_diff_checks_its_numbers_before_the_vae_encode(env, kw, message):
    args = dict(strength=0.8, steps=2, cfg=1.0, shift=5.0)
    args.update(kw)
    with pytest.raises(ValueError, match=message):
        ops.st_diff_sampler(env, _NoEncode(), torch.rand(9, 32, 48, 3), torch.ones(9, 32, 48), "", "", 1,
                            args["strength"], args["steps"], args["cfg"], 0, "spatio-temporal", False,
                            shift=args["shift"])


# ----------------------------------------------------------------------------- 9. messages a user can act on
def test_messages_name_the_node_input_and_what_to_do(env):
    with pytest.raises(ValueError, match=r"^hints hold 1 frame\(s\) and context_frames is 1: nothing is left to "
                                         r"generate; give at least 5 hint frames"):
        ops.st_diff_sampler(env, _NoEncode(), torch.rand(1, 32, 48, 3), torch.ones(1, 32, 48), "", "", 1, 0.8, 2,
                            1.0, 0, "spatio-temporal", False)
    with pytest.raises(ValueError, match=r"^shift must be a finite number > 0 and <= 20, got nan"):
        ops.preview_schedule(env, torch.ones(9, 32, 48), 1, 0.8, 4, "spatio-temporal", shift=float("nan"))
    with pytest.raises(ValueError, match=r"^output_folder holds the character U\+0000"):
        _loop_start(env, "a\x00b")
    _loop_start(env, "held")
    with pytest.raises(ValueError) as e:
        _loop_start(env, "held")
    assert "turn 'resume' on to continue it, or set another output_folder" in str(e.value)
    assert "overwrite" not in str(e.value)  # no node has an overwrite switch
    with pytest.raises(ValueError) as e:
        ops.loop_start(env, IMG, _cams(), 17, 9, 5, 1, "extrapolate", "auto", "held", True, 16)
    assert "holds a different run (changed: loop.seed 0 -> 1" in str(e.value) and "overwrite" not in str(e.value)


# ----------------------------------------------------------------------------- 10. the low ones
@pytest.mark.parametrize("name,message", [
    ("", r"filename_prefix is empty"),
    (".", r"filename_prefix '\.' ends in a folder, not a name; add a name, e\.g\. worldwarp/run"),
    ("worldwarp/", r"ends in a folder, not a name"),
    ("worldwarp/.cams", r"'\.cams' would be a hidden file"),
    ("worldwarp/CON", r"'CON' is a reserved device name on Windows"),
    ("worldwarp/aux.txt", r"'aux\.txt' is a reserved device name on Windows"),
    ("worldwarp/cams.", r"ends in a dot"),
    ("worldwarp/a|b", r"holds the character '\|'"),
])
def test_save_names_are_valid_on_windows_and_linux(env, name, message):
    with pytest.raises(ValueError, match=message):
        ops.save_cameras(env, _cams(), name)
    assert os.listdir(env.output) == []  # nothing written, no hidden file in the output root


def test_low_findings(env, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"output_folder is empty; give a folder under ComfyUI's output folder"):
        _loop_start(env, "")  # an empty folder would save nothing without a word
    _loop_start(env, "outer")
    with pytest.raises(ValueError, match=r"outer/frames/inner is inside the run folder .*outer; choose a folder "
                                         r"outside it"):
        _loop_start(env, "outer/frames/inner")
    with pytest.raises(ValueError, match=r"output_folder .worldwarp/NUL.: .NUL. is a reserved device name on Windows"):
        _loop_start(env, "worldwarp/NUL")
    with pytest.raises(ValueError, match=r"^scene_scale must be a finite number >= 0 and <= 10000, got nan"):
        ops.camera_trajectory(env, IMG, "dolly_in", 1.0, 9, 60.0, float("nan"), "linear", "")
    with pytest.raises(ValueError, match=r"^scene_scale must be a finite number"):
        ops.camera_director(env, IMG, "dolly_in", 1.0, 9, 60.0, float("nan"), "linear", "")
    with pytest.raises(ValueError, match=r"^total_frames is 5 but the path already has 9 cameras; set total_frames "
                                         r"to at least 9"):
        ops.extrapolate_trajectory(env, _cams(9), 5, "extrapolate", 0, 0.0)
    # a failed camera write leaves no temporary behind
    real_replace = os.replace

    def full_disk(src, dst):
        raise OSError(28, "No space left on device", dst)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(ValueError, match="disk full while writing"):
        ops.save_cameras(env, _cams(), "worldwarp/cams")
    monkeypatch.setattr(os, "replace", real_replace)
    assert not [f for f in os.listdir(os.path.join(env.output, "worldwarp")) if ".tmp" in f]


def test_names_and_input_files_helpers(tmp_path):
    assert check_name("worldwarp/run_2", "output_folder") == "worldwarp/run_2"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "c.txt").write_text("x")
    assert input_file(str(tmp_path / "in"), " c.txt ", "camera_file") == str((tmp_path / "in" / "c.txt").resolve())
    with pytest.raises(ValueError, match="is an absolute path"):
        input_file(str(tmp_path / "in"), "C:\\Windows\\win.ini", "camera_file")
    with pytest.raises(ValueError, match="'sub' not found in ComfyUI's input folder"):
        (tmp_path / "in" / "sub").mkdir()
        input_file(str(tmp_path / "in"), "sub", "camera_file")
    cache = GeometryCache("none", GSConfig())
    assert render_hints_in_steps(cache, _cams(3), keep_depths=False).depths.numel() == 0


def test_the_chunk_loop_answers_an_interrupt_inside_geometry_and_the_vae():
    """The pipeline (Chunk Loop node, CLI) gives its callback a "check" event inside each long forward."""
    from worldwarp_core.geometry.monocular import DepthAnythingV2
    from worldwarp_core.geometry.testing import tiny_depth_anything
    from worldwarp_core.models import tiny_model
    from worldwarp_core.pipeline import PipelineSettings, WorldWarpPipeline

    geo = DepthAnythingV2(model=tiny_depth_anything(), input_size=56)
    settings = PipelineSettings(chunk_frames=5, context_frames=1, steps=1, gs=GSConfig(iterations=1))
    pipe = WorldWarpPipeline(tiny_model(), geo, settings=settings)
    image = torch.rand(32, 32, 3)
    cams = _cams(5, 32, 32)
    seen = []

    def stop_at(name):
        def cb(e):
            seen.append(e["stage"] if e["stage"] != "stage" else e["name"])
            if e["stage"] == "check" and name in seen:
                raise Interrupted

        return cb

    for stage in ("geometry", "encode", "decode"):
        seen.clear()
        with pytest.raises(Interrupted):
            pipe(image, cams, 5, prompt="a room", callback=stop_at(stage))
        assert seen[-1] == "check" and seen[-2] == stage, seen[-4:]  # inside that stage's forward
