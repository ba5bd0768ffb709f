"""The wired loop's nodes (Loop Start -> stage nodes -> Loop End) run as ComfyUI would run them,
without ComfyUI: the same frames as the compact Chunk Loop node, a body edit reaching later chunks,
interrupt + resume, refusal of a folder holding a run, and the graph helpers (body, expansion)."""

import os

import pytest
import torch
from test_nodes import FakeEnv

from nodes import loop_graph, ops
from worldwarp_core.caption import DEFAULT_NEGATIVE
from worldwarp_core.geometry.testing import save_tiny_depth_anything
from worldwarp_core.models import save_tiny_comfy_files
from worldwarp_core.synthetic import default_scene

C, CTX, FRAMES, STEPS, GS_IT = 9, 5, 17, 2, 2  # three chunks: frames 0-8, 4-12, 8-16
TAU = 0.5  # with 2 steps, warped latents start at the second sigma (tau 0.8 would start them at full noise)


class Env(FakeEnv):
    def make_video(self, frames, fps):
        return {"frames": frames, "fps": fps}


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    env = Env(str(tmp_path_factory.mktemp("comfy")))
    save_tiny_comfy_files(env.models)
    save_tiny_depth_anything(os.path.join(env.models, "worldwarp", "tiny-depth-anything"))
    (model,) = ops.load_model(env, "worldwarp_tiny_test.safetensors", "worldwarp_tiny_vae_test.safetensors",
                              "worldwarp_tiny_umt5_test.safetensors", "tiny-umt5-tokenizer", ops.NONE, "fp32", "none")
    (geo,) = ops.load_geometry_model(env, "depth-anything-v2", "tiny-depth-anything", 60.0)
    scene = default_scene()
    rgb, _ = scene.render(scene.default_camera(32, 32))
    image = rgb[:1]
    (cams,) = ops.camera_trajectory(env, image, "dolly_in@0.2 + pan_left@0.3", 1.0, 9, 60.0, 0.0, "linear", "")
    return env, model, geo, image, cams


def _grow(masks, expand=16):
    """What core Grow Mask (``expand`` px, no taper) does: a max filter. 16 px, as these 32 px masks'
    holes stay holes after the sampler's 15 px erosion (official mask rule) when grown less."""
    return torch.nn.functional.max_pool2d(masks[:, None], 2 * expand + 1, stride=1, padding=expand)[:, 0]


def wired(env, model, geo, image, cams, folder, resume=False, edit=None, start_outputs=None, stop_at=None,
          from_chunk=0, graph_signature=None, memory="online"):
    """The body of the shipped full-generator workflow, node by node, once per chunk as Loop End's
    expansion runs it. ``start_outputs``: Loop Start's outputs from ComfyUI's cache (a re-queue)."""
    outs = start_outputs or ops.loop_start(env, image, cams, FRAMES, C, CTX, 0, "extrapolate", "auto", folder, resume,
                                           16, from_chunk, graph_signature=graph_signature, memory=memory)
    first = outs
    while True:
        loop, hist, hist_cams, chunk_cams, context, n_ctx, k, cache_seed, sampler_seed = outs
        if stop_at is not None and k == stop_at:
            raise Interrupted(first)
        if ops.chunk_saved(loop):  # Loop End's lazy inputs: a chunk the folder holds runs no body
            state, final = ops.loop_end(env, loop, None, None)
            if final is not None:
                return final, first
            outs = ops.loop_next(env, state)
            continue
        geometry, _ = ops.estimate_geometry(env, geo, hist, "requested", hist_cams)
        (geometry,) = ops.align_to_history(env, loop, geometry)
        cache, _ = ops.build_cache_node(env, hist, geometry, "3dgs", GS_IT, 1.6e-3, 1, 0.5, cache_seed,
                                        context_frames=n_ctx)
        hints, masks = ops.render_hints(env, cache, chunk_cams)
        if edit is not None:
            masks = edit(masks)
        hints, masks, _ = ops.world_hints(env, loop, chunk_cams, hints, masks)  # as shipped: memory 'online' passes
        frames, _ = ops.st_diff_sampler(env, model, hints, masks, "a room", DEFAULT_NEGATIVE, n_ctx, TAU, STEPS, 2.0,
                                        sampler_seed, "spatio-temporal", False, context=context)
        state, final = ops.loop_end(env, loop, frames, cache)
        if final is not None:
            return final, first
        outs = ops.loop_next(env, state)


@pytest.fixture(scope="module")
def compact(parts):
    env, model, geo, image, cams = parts
    frames, out_cams = ops.chunk_loop(env, model, geo, image, cams, FRAMES, "a room", "", C, CTX, TAU, STEPS, 2.0, 0,
                                      "spatio-temporal", "3dgs", GS_IT, "extrapolate", False, "compact", False)
    return frames, out_cams


@pytest.fixture(scope="module")
def wired_run(parts):
    return wired(*parts, "wired")


def test_wired_loop_equals_compact_node(parts, compact, wired_run):
    env = parts[0]
    (frames, cams, cache, splat, video), _ = wired_run
    assert frames.shape == (FRAMES, 32, 32, 3) and len(cams) == FRAMES
    assert torch.equal(frames, compact[0])  # bit for bit
    assert torch.equal(cams.viewmats, compact[1].viewmats)
    assert video["fps"] == 16 and torch.equal(video["frames"], frames) and splat is not None
    for name in ("frames/00016.png", "chunks/chunk_002/hint_depth.npy", "cameras.txt", "video.mp4", "scene.ply"):
        assert os.path.isfile(os.path.join(env.output, "wired", name)), name


def test_body_edit_reaches_later_chunks(parts, wired_run):
    plain = wired_run[0][0]
    (edited, *_), _ = wired(*parts, "wired_grow", edit=_grow)
    starts = [0, 4, 8]
    for k in (1, 2):  # every chunk after the first makes other frames
        new = slice(starts[k] + CTX, starts[k] + C)
        assert not torch.equal(edited[new], plain[new]), k


def test_interrupt_then_resume_is_identical(parts, wired_run, monkeypatch):
    env, model, geo, image, cams = parts
    full = wired_run[0][0]
    with pytest.raises(Interrupted) as cut:  # stopped as chunk 3 starts: chunks 1-2 are saved
        wired(env, model, geo, image, cams, "cut", stop_at=2)
    assert sorted(os.listdir(os.path.join(env.output, "cut", "chunks"))) == ["chunk_000", "chunk_001"]
    # re-queued unchanged: Loop Start comes from ComfyUI's cache; Loop End finds chunks 1-2 in the folder
    calls = []
    sampler = ops.st_diff_sampler

    def counting(*a, **k):
        calls.append(1)
        return sampler(*a, **k)

    monkeypatch.setattr(ops, "st_diff_sampler", counting)
    (again, *_), _ = wired(env, model, geo, image, cams, "cut", start_outputs=cut.value.args[0])
    monkeypatch.undo()
    assert torch.equal(again, full) and len(calls) == 1  # chunk 3 only (Loop End reads chunks 1-2 from the folder)
    # re-queued with resume on (Loop Start runs again): starts at chunk 3... of a finished run: the last
    # chunk is planned again and Loop End returns the run as it is, without running its body
    outs = ops.loop_start(env, image, cams, FRAMES, C, CTX, 0, "extrapolate", "auto", "cut", True, 16)
    assert outs[6] == 2 and outs[0].resumed_from == 3 and ops.chunk_saved(outs[0])
    calls.clear()
    monkeypatch.setattr(ops, "st_diff_sampler", counting)
    (resumed, _, last_cache, splat, _), _ = wired(env, model, geo, image, cams, "cut", resume=True)
    monkeypatch.undo()
    assert torch.equal(resumed, full) and calls == [] and last_cache.gaussians is not None and splat is not None


def test_resume_off_refuses_a_folder_holding_a_run(parts, wired_run):
    env, model, geo, image, cams = parts
    before = sorted(os.listdir(os.path.join(env.output, "wired", "frames")))
    with pytest.raises(ValueError, match="already holds a run; turn 'resume' on to continue it, or set another output_folder"):
        ops.loop_start(env, image, cams, FRAMES, C, CTX, 0, "extrapolate", "auto", "wired", False, 16)
    with pytest.raises(ValueError, match="holds a different run"):
        ops.loop_start(env, image, cams, FRAMES, C, CTX, 1, "extrapolate", "auto", "wired", True, 16)
    with pytest.raises(ValueError, match="already holds a run; turn 'resume' on to continue it, or set another output_folder"):  # the compact node too
        ops.chunk_loop(env, model, geo, image, cams, FRAMES, "a room", "", C, CTX, TAU, STEPS, 2.0, 0,
                       "spatio-temporal", "3dgs", GS_IT, "extrapolate", False, "wired", False)
    assert sorted(os.listdir(os.path.join(env.output, "wired", "frames"))) == before  # nothing deleted
    # inside ComfyUI the graph is part of the run: an edited graph does not continue this run
    with pytest.raises(ValueError, match="holds a different run"):
        ops.loop_start(env, image, cams, FRAMES, C, CTX, 0, "extrapolate", "auto", "wired", True, 16,
                       graph_signature=[["an edited graph"]])


def test_from_chunk_rolls_an_edited_body_back_to_the_kept_chunks(parts, wired_run):
    """The official demo's rollback in the graph: a re-queue with an edited body and from_chunk k keeps
    the first k chunks byte for byte and makes the rest with the edit (instead of refusing it)."""
    import json
    import shutil

    env, model, geo, image, cams = parts
    plain = wired_run[0][0]
    folder = os.path.join(env.output, "rollback")
    shutil.copytree(os.path.join(env.output, "wired"), folder)
    chunk0 = os.path.join(folder, "chunks", "chunk_000")
    kept = [os.path.join(chunk0, d, f) for d in ("", "hints", "masks") for f in sorted(os.listdir(os.path.join(chunk0, d)))
            if os.path.isfile(os.path.join(chunk0, d, f))]
    kept += [os.path.join(folder, "frames", f"{i:05d}.png") for i in range(C)]
    before = {p: open(p, "rb").read() for p in kept}
    old_fp = json.load(open(os.path.join(folder, "run.json")))["fingerprint"]
    edited_graph = [["an edited graph"]]
    with pytest.raises(ValueError, match=r"holds a different run .* roll back to make the later chunks with these "
                                         r"\(from_chunk"):
        ops.loop_start(env, image, cams, FRAMES, C, CTX, 0, "extrapolate", "auto", "rollback", True, 16,
                       graph_signature=edited_graph)
    root = os.path.abspath(folder)
    with pytest.raises(ValueError) as e:  # three chunks finished: keep 1 or 2
        ops.loop_start(env, image, cams, FRAMES, C, CTX, 0, "extrapolate", "auto", "rollback", False, 16, 3)
    assert str(e.value) == (f"from_chunk 3 is out of range: {root} holds 3 finished chunks and this run has 3; "
                            "choose 1 to 2 (the chunks kept), or 0 for no rollback")
    with pytest.raises(ValueError) as e:  # the compact node checks it the same way
        ops.chunk_loop(env, model, geo, image, cams, FRAMES, "a room", "", C, CTX, TAU, STEPS, 2.0, 0,
                       "spatio-temporal", "3dgs", GS_IT, "extrapolate", False, "rollback", False, from_chunk=3)
    assert str(e.value).startswith("from_chunk 3 is out of range: ")
    (edited, *_), _ = wired(env, model, geo, image, cams, "rollback", edit=_grow, from_chunk=1,
                            graph_signature=edited_graph)
    assert {p: open(p, "rb").read() for p in kept} == before
    assert torch.equal(edited[:C], plain[:C]) and not torch.equal(edited[C:], plain[C:])
    run = json.load(open(os.path.join(folder, "run.json")))
    assert run["chunk_runs"] == [old_fp] and run["rolled_back"][0]["fingerprint"] == old_fp
    assert [json.load(open(os.path.join(folder, "chunks", f"chunk_{k:03d}", "chunk.json")))["run_fingerprint"]
            for k in (1, 2)] == [run["fingerprint"]] * 2


def test_a_folder_deleted_after_an_interrupt_starts_clean_on_the_requeue(parts, wired_run):
    """Interrupted, then the run folder deleted, then re-queued unchanged (Loop Start from ComfyUI's
    cache): the first chunk's Loop End makes the folder again and the run completes, the same frames;
    no debris blocks the folder afterwards."""
    import shutil

    env, model, geo, image, cams = parts
    with pytest.raises(Interrupted) as cut:
        wired(env, model, geo, image, cams, "gone", stop_at=1)
    folder = os.path.join(env.output, "gone")
    shutil.rmtree(folder)
    (frames, *_), _ = wired(env, model, geo, image, cams, "gone", start_outputs=cut.value.args[0])
    assert torch.equal(frames, wired_run[0][0])
    assert sorted(os.listdir(os.path.join(folder, "chunks"))) == ["chunk_000", "chunk_001", "chunk_002"]
    with pytest.raises(ValueError, match="already holds a run"):  # a valid run, refused as any run is
        ops.loop_start(env, image, cams, FRAMES, C, CTX, 0, "extrapolate", "auto", "gone", False, 16)


def test_hint_rendering_answers_an_interrupt(parts, wired_run):
    env = parts[0]
    cache = wired_run[0][2]

    class Stop(Env):
        def check_interrupt(self):
            raise Interrupted("interrupt")

    stop = Stop(env.output + "_stop")
    with pytest.raises(Interrupted):
        ops.render_hints(stop, cache, parts[4])
    assert stop.bars[-1].values == []  # stopped after the first views, before any progress was shown


# ----------------------------------------------------------------------------- the graph helpers
def _prompt():
    """An API-format prompt: 1 image, 2 model, 10 Loop Start, 11 geometry, 12 cache, 13 hints,
    14 Grow Mask, 15 sampler, 16 Loop End, 17 Save Video."""
    L = lambda n, s=0: [str(n), s]  # noqa: E731
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "WorldWarpLoadModel", "inputs": {"dtype": "fp32"}},
        "10": {"class_type": "WorldWarpLoopStart", "inputs": {"image": L(1), "frames": 17, "output_folder": "a",
                                                             "resume": False}},
        "11": {"class_type": "WorldWarpEstimateGeometry", "inputs": {"images": L(10, 1), "cameras": L(10, 2)}},
        "12": {"class_type": "WorldWarpBuildCache", "inputs": {"images": L(10, 1), "geometry": L(11), "seed": L(10, 7)}},
        "13": {"class_type": "WorldWarpRenderHints", "inputs": {"cache": L(12), "cameras": L(10, 3)}},
        "14": {"class_type": "GrowMask", "inputs": {"mask": L(13, 1), "expand": 1}},
        "15": {"class_type": "WorldWarpSTDiffSampler", "inputs": {"model": L(2), "hints": L(13), "masks": L(14),
                                                                 "seed": L(10, 8)}},
        "16": {"class_type": "WorldWarpLoopEnd", "inputs": {"loop": L(10), "frames": L(15), "cache": L(12)}},
        "17": {"class_type": "SaveVideo", "inputs": {"video": L(16, 4)}},
    }


class _Builder:
    """GraphBuilder's surface (node, lookup_node, out, set_input, set_override_display_id)."""

    def __init__(self):
        self.nodes = {}

    def node(self, class_type, id):
        n = _Builder.Node(class_type, "p." + id)
        self.nodes[id] = n
        return n

    def lookup_node(self, id):
        return self.nodes[id]

    class Node:
        def __init__(self, class_type, id):
            self.class_type, self.id, self.inputs, self.display = class_type, id, {}, None

        def out(self, i):
            return [self.id, i]

        def set_input(self, k, v):
            self.inputs[k] = v

        def set_override_display_id(self, d):
            self.display = d


def test_body_signature_and_expansion():
    p = _prompt()
    get = p.__getitem__
    assert loop_graph.body(get, "10", "16") == ["10", "11", "12", "13", "14", "15", "16"]
    assert loop_graph.start_of(get, "16") == "10" and loop_graph.ends_of(get, p, "10") == ["16"]
    sig = loop_graph.signature(get, "16")
    assert [s[0] for s in sig] == ["1", "2", "10", "11", "12", "13", "14", "15", "16"]
    p2 = _prompt()
    p2["10"]["inputs"].update(output_folder="b", resume=True)  # where and whether to resume: same loop
    assert loop_graph.signature(p2.__getitem__, "16") == sig
    p2["14"]["inputs"]["expand"] = 2  # a body edit: another loop
    assert loop_graph.signature(p2.__getitem__, "16") != sig
    g = _Builder()
    state = object()
    end = loop_graph.expand_next(get, "10", "16", state, g, display_id=str)
    assert end.class_type == "WorldWarpLoopEnd" and end.id == "p.Recurse"
    assert g.nodes["10"].class_type == "WorldWarpLoopNext" and g.nodes["10"].inputs == {"loop": state}
    assert g.nodes["14"].inputs == {"mask": ["p.13", 1], "expand": 1} and g.nodes["14"].display == "14"
    assert g.nodes["15"].inputs["model"] == ["2", 0]  # outside the body: the same loader, not a copy
    assert end.inputs == {"loop": ["p.10", 0], "frames": ["p.15", 0], "cache": ["p.12", 0]}
    assert set(g.nodes) == {"10", "11", "12", "13", "14", "15", "Recurse"}
    p["16"]["inputs"]["loop"] = ["11", 0]
    with pytest.raises(ValueError, match="comes from a WorldWarpEstimateGeometry node"):
        loop_graph.start_of(get, "16")


def test_loop_start_refuses_bad_inputs_before_touching_the_folder(parts):
    env, model, geo, image, cams = parts
    cases = [((torch.cat([image, image]), cams, FRAMES), "holds 2 images; this node starts from one"),
             ((image, cams, FRAMES + 1), f"use {FRAMES} or {FRAMES + C - CTX}"),
             ((image[:, :, :, :1], cams, FRAMES), r"image must be \[H, W, 3\] in 0..1, got shape \[32, 32, 1\]")]
    for (img, c, frames), message in cases:
        with pytest.raises(ValueError, match=message):
            ops.loop_start(env, img, c, frames, C, CTX, 0, "extrapolate", "auto", "refused", False, 16)
    assert not os.path.exists(os.path.join(env.output, "refused"))


def test_disk_full_is_one_line_and_resume_finishes_the_same_run(parts, compact, monkeypatch):
    """A failed write inside the Chunk Loop node names the file and says to re-queue with resume on;
    doing so gives the frames of a run that never failed."""
    import errno

    from worldwarp_core import loop as loop_mod

    env, model, geo, image, cams = parts
    real, calls = loop_mod.save_png, [0]

    def full_once(path, image):
        calls[0] += 1
        if calls[0] == 20:  # partway through the run
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real(path, image)

    monkeypatch.setattr(loop_mod, "save_png", full_once)
    args = (env, model, geo, image, cams, FRAMES, "a room", "", C, CTX, TAU, STEPS, 2.0, 0, "spatio-temporal", "3dgs",
            GS_IT, "extrapolate", False, "full_disk")
    with pytest.raises(ValueError, match=r"^disk full while writing .*\.png; free space and queue the workflow again "
                                         r"with resume on \(finished chunks are kept\)$"):
        ops.chunk_loop(*args, False)
    assert calls[0] == 20
    frames, _ = ops.chunk_loop(*args, True)
    assert torch.equal(frames, compact[0])


def test_loop_start_vram_picks_for_the_free_memory(parts, capsys):
    """ComfyUI's free memory (mocked) decides the pick; the line says what and why; a bad choice is refused."""
    env, _, _, image, cams = parts
    lines = {}
    for free in (6e9, 80e9):
        class Card(Env):
            def free_memory(self, free=free):
                return free

        card = Card(env.output[:-len("/output")])
        ops.loop_start(card, image, cams, FRAMES, C, CTX, 0, "extrapolate", "auto", f"vram{int(free / 1e9)}", False,
                       16, vram="auto")
        lines[free] = [x for x in capsys.readouterr().out.splitlines() if x.startswith("[WorldWarp] vram")][-1]
    assert lines[6e9].startswith("[WorldWarp] vram auto: 6.0 GB free -> ") and "sequential CFG" in lines[6e9]
    assert lines[80e9].startswith("[WorldWarp] vram auto: 80.0 GB free -> high ")
    with pytest.raises(ValueError, match="vram must be one of auto, high, medium, low, small, manual; got 'lots'"):
        ops.loop_start(env, image, cams, FRAMES, C, CTX, 0, "extrapolate", "auto", "vram_bad", False, 16, vram="lots")


def test_remembered_hints_fill_holes_from_the_loops_world(parts):
    """Loop Start's memory 'world' keeps the world; Remembered Hints keeps every valid online pixel and
    fills holes from it; with memory 'online' it passes the hints through; wrong wiring is refused."""
    env, model, geo, image, cams = parts
    outs = ops.loop_start(env, image, cams, FRAMES, C, CTX, 0, "extrapolate", "auto", "remember", False, 16,
                          memory="world", world_voxel=0.05)
    loop, hist, hist_cams, chunk_cams, context, n_ctx, k, cache_seed, sampler_seed = outs
    assert loop.world is not None and loop.world.gaussians is None  # nothing remembered before chunk 1
    geometry, _ = ops.estimate_geometry(env, geo, hist, "requested", hist_cams)
    cache, _ = ops.build_cache_node(env, hist, geometry, "3dgs", GS_IT, 1.6e-3, 1, 0.5, cache_seed, context_frames=n_ctx)
    hints, masks = ops.render_hints(env, cache, chunk_cams)
    same = ops.world_hints(env, loop, chunk_cams, hints, masks)
    assert torch.equal(same[0], hints) and torch.equal(same[1], masks) and not same[2].any()
    frames, _ = ops.st_diff_sampler(env, model, hints, masks, "a room", DEFAULT_NEGATIVE, n_ctx, TAU, STEPS, 2.0,
                                    sampler_seed, "spatio-temporal", False, context=context)
    state, _ = ops.loop_end(env, loop, frames, cache)
    assert state.world.gaussians is not None
    loop, *_, chunk_cams = ops.loop_next(env, state)[:4]
    online = torch.zeros(len(chunk_cams), 32, 32, 3), torch.zeros(len(chunk_cams), 32, 32)
    online[1][:, :, :16] = 1.0  # the left half valid online: kept; the right half from the world
    online[0][:, :, :16] = 0.25
    out, valid, remembered = ops.world_hints(env, loop, chunk_cams, *online)
    assert torch.equal(out[:, :, :16], online[0][:, :, :16]) and valid[:, :, :16].eq(1).all()
    assert remembered[:, :, :16].eq(0).all() and remembered[:, :, 16:].mean() > 0.5
    assert torch.equal(valid, torch.maximum(online[1], remembered))
    alone = ops.world_hints(env, loop, chunk_cams)
    assert torch.equal(alone[2], alone[1]) and torch.equal(alone[0][remembered > 0], out[remembered > 0])
    with pytest.raises(ValueError, match="connect both hints and valid"):
        ops.world_hints(env, loop, chunk_cams, online[0], None)
    with pytest.raises(ValueError, match=r"must be \[9, 32, 32, 3\] and \[9, 32, 32\]"):
        ops.world_hints(env, loop, chunk_cams, online[0][:, :8], online[1][:, :8])
    with pytest.raises(ValueError, match="memory must be one of"):
        ops.loop_start(env, image, cams, FRAMES, C, CTX, 0, "extrapolate", "auto", "remember2", False, 16,
                       memory="global")


def test_wired_loop_with_world_memory_equals_the_compact_node(parts):
    """Loop Start's memory 'world' + Remembered Hints in the body = Chunk Loop's memory 'world', bit for bit."""
    env, model, geo, image, cams = parts
    (frames, *_), _ = wired(*parts, "wired_world", memory="world")
    compact, _ = ops.chunk_loop(env, model, geo, image, cams, FRAMES, "a room", "", C, CTX, TAU, STEPS, 2.0, 0,
                                "spatio-temporal", "3dgs", GS_IT, "extrapolate", False, "compact_world", False,
                                memory="world", world_voxel=0.05)
    assert torch.equal(frames, compact)
    online = ops.chunk_loop(env, model, geo, image, cams, FRAMES, "a room", "", C, CTX, TAU, STEPS, 2.0, 0,
                            "spatio-temporal", "3dgs", GS_IT, "extrapolate", False, "compact_online", False)[0]
    assert not torch.equal(frames, online)  # the memory changed what later chunks were given
