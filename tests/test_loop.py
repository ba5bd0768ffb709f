"""The chunk loop's bookkeeping (worldwarp_core.loop): chunking, history, context, append, save and
resume, for several frame counts, chunk/context sizes and resume points, and against the pipeline."""

import json
import os
from dataclasses import asdict, replace

import pytest
import torch

from worldwarp_core.cameras import Cameras, intrinsics_from_fov
from worldwarp_core.gscache import GSConfig
from worldwarp_core.loop import chunk_record, end_chunk, open_run, plan_chunk, run_path
from worldwarp_core.pipeline import PipelineSettings
from worldwarp_core.trajectory import make_trajectory

H, W = 16, 32


def _path(n=5):
    start = Cameras(torch.eye(4)[None], intrinsics_from_fov(60.0, W, H), W, H)
    return make_trajectory("dolly_in@0.5 + pan_left", n, start, scene_scale=2.0)


def _image():
    g = torch.Generator().manual_seed(1)
    return torch.rand(H, W, 3, generator=g)


def _fake_chunk(plan, C):
    """Frames a chunk 'generates': its context kept, then frames stamped with (chunk, index)."""
    new = torch.stack([torch.full((H, W, 3), ((plan.index * 37 + i * 11) % 251) / 255.0) for i in range(C - plan.context)])
    return torch.cat([plan.context_frames, new])


def _run(settings, frames, out=None, stop_after=None, resume=False):
    state = open_run(_image(), _path(), frames, settings, out, resume=resume, run_info={"frames": frames})
    plans = []
    while not state.done and (stop_after is None or state.next_chunk < stop_after):
        plan = plan_chunk(state)
        plans.append(plan)
        C = settings.chunk_frames
        hint_depth = torch.stack([torch.full((C, H, W), 1.0 + plan.index), torch.ones(C, H, W)])
        state = end_chunk(state, plan, _fake_chunk(plan, C), hint_depth, chunk_record(plan, C, "p", None, None, None))
    return state, plans


CASES = [(9, 1, 9), (9, 1, 25), (9, 5, 17), (13, 5, 29), (17, 5, 41), (13, 1, 37)]


@pytest.mark.parametrize("C,ctx,frames", CASES)
@pytest.mark.parametrize("stride", [1, 3])
def test_chunking_history_context_append(C, ctx, frames, stride):
    s = PipelineSettings(chunk_frames=C, context_frames=ctx, history_stride=stride)
    state, plans = _run(s, frames)
    starts = s.chunk_starts(frames)
    assert [p.start for p in plans] == starts and state.done and state.frames == frames
    assert state.video.shape == (frames, H, W, 3)
    path = run_path(_path(), frames, s)
    image = (_image() * 255).round() / 255
    assert torch.equal(state.video[0], image)  # the start image, as stored
    for p in plans:
        assert p.context == (1 if p.index == 0 else ctx)
        # the chunk covers [start, start + C); its context is the video's frames right before the new ones
        assert torch.equal(p.cameras.viewmats, path.viewmats[p.start:p.start + C])
        new0 = p.start + p.context
        assert torch.equal(p.context_frames, state.video[p.start:new0])
        # history: the previous chunk's frames (every `stride`-th and the newest); the start image first
        if p.index == 0:
            assert p.history.tolist() == [0]
        else:
            prev = plans[p.index - 1]
            assert prev.start + C == new0  # the previous chunk ends where this one's new frames begin
            expected = list(range(prev.start, new0, stride))
            assert p.history.tolist() == expected + ([new0 - 1] if expected[-1] != new0 - 1 else [])
        assert torch.equal(p.history_frames, state.video[p.history])
        assert torch.equal(p.history_cameras.viewmats, path.viewmats[p.history])
        # the new frames of chunk k land at [start + context, start + C) unchanged
        fake = _fake_chunk(p, C)
        assert torch.equal(state.video[new0:p.start + C], (fake[p.context:] * 255).round() / 255)
    seeds = {(p.cache_seed, p.sampler_seed) for p in plans}
    assert len(seeds) == len(plans)  # every chunk samples its own noise


@pytest.mark.parametrize("C,ctx,frames", [(9, 1, 25), (9, 5, 17), (13, 5, 29)])
def test_save_and_resume_at_every_chunk(C, ctx, frames, tmp_path):
    s = PipelineSettings(chunk_frames=C, context_frames=ctx)
    full, plans = _run(s, frames, str(tmp_path / "full"))
    n = len(plans)
    for stop in range(n + 1):
        out = str(tmp_path / f"stop{stop}")
        _run(s, frames, out, stop_after=stop)
        resumed = open_run(_image(), _path(), frames, s, out, resume=True, run_info={"frames": frames})
        assert resumed.next_chunk == resumed.resumed_from == stop
        assert resumed.video.shape[0] == (1 if stop == 0 else plans[stop - 1].start + C)
        assert torch.equal(resumed.video, full.video[:resumed.video.shape[0]])
        if stop:
            assert torch.equal(resumed.prev_depth, torch.full((C, H, W), float(stop)))
            assert [c["chunk"] for c in resumed.chunks] == list(range(stop))
        if stop < n:  # the next chunk is planned exactly as in the uninterrupted run
            p, q = plan_chunk(resumed), plans[stop]
            assert (p.start, p.context, p.cache_seed, p.sampler_seed) == (q.start, q.context, q.cache_seed, q.sampler_seed)
            assert torch.equal(p.history, q.history) and torch.equal(p.history_frames, q.history_frames)
            assert torch.equal(p.context_frames, q.context_frames)
        finished, _ = _run(s, frames, out, resume=True)
        assert torch.equal(finished.video, full.video)
        assert sorted(os.listdir(os.path.join(out, "frames"))) == [f"{i:05d}.png" for i in range(frames)]


def test_run_folder_rules(tmp_path):
    s = PipelineSettings(chunk_frames=9, context_frames=1)
    out = str(tmp_path / "run")
    _run(s, 17, out, stop_after=1)
    with pytest.raises(ValueError, match="already holds a run; pass resume"):
        open_run(_image(), _path(), 17, s, out, run_info={"frames": 17})
    assert os.path.isfile(os.path.join(out, "chunks", "chunk_000", "chunk.json"))  # nothing was deleted
    with pytest.raises(ValueError, match="holds a different run"):
        open_run(_image(), _path(), 17, replace(s, seed=1), out, resume=True, run_info={"frames": 17, "seed": 1})
    state = open_run(_image(), _path(), 17, s, out, resume=True, run_info={"frames": 17})
    plan = plan_chunk(state)
    with pytest.raises(ValueError, match=r"chunk 2 has frames \[5, 16, 32, 3\]; the loop needs \[9, 16, 32, 3\]"):
        end_chunk(state, plan, torch.zeros(5, H, W, 3), torch.zeros(2, 9, H, W), {})
    done, _ = _run(s, 17, out, resume=True)
    with pytest.raises(ValueError, match="all 2 chunks are made"):
        plan_chunk(done)
    rec = json.load(open(os.path.join(out, "chunks", "chunk_001", "chunk.json")))
    assert rec["first_frame"] == 8 and rec["history_frames"] == list(range(0, 9)) and rec["new_frames"] == 8


# ----------------------------------------------------------------------------- against the pipeline
@pytest.fixture(scope="module")
def tiny_parts():
    from worldwarp_core.geometry.monocular import DepthAnythingV2
    from worldwarp_core.geometry.testing import tiny_depth_anything
    from worldwarp_core.models import tiny_model

    return tiny_model(seed=0), DepthAnythingV2(model=tiny_depth_anything(), input_size=56)


@pytest.mark.parametrize("C,ctx,frames,stop", [(9, 5, 13, 1)])
def test_pipeline_follows_the_bookkeeping(tiny_parts, tmp_path, C, ctx, frames, stop):
    """The pipeline's chunks are the ones plan_chunk makes; a run interrupted at chunk ``stop`` and
    read back by open_run plans its next chunk with the uninterrupted run's frames."""
    from worldwarp_core.pipeline import WorldWarpPipeline

    model, geo = tiny_parts
    s = PipelineSettings(chunk_frames=C, context_frames=ctx, steps=2, guidance_scale=2.0,
                         gs=GSConfig(iterations=2, stride=4), offload_helpers=False)
    img = _image().repeat(2, 1, 1)[:32]  # 32x32
    cams = _path().resize(32, 32)
    pipe = WorldWarpPipeline(model, geo, None, s)
    full = pipe(img, cams, frames, prompt="a room", out_dir=str(tmp_path / "full"))
    out = str(tmp_path / "cut")

    def cut(e):
        if e["stage"] == "chunk" and e["chunk"] == stop:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipe(img, cams, frames, prompt="a room", out_dir=out, callback=cut)
    info = {"settings": asdict(s), "prompt": "a room", "style": "", "frames": frames}
    state = open_run(img, cams, frames, s, out, resume=True, run_info=info,
                     components={"model": model, "geometry": geo, "captioner": pipe.captioner})
    assert state.next_chunk == stop and torch.equal(state.video, full.frames[:state.video.shape[0]])
    plan = plan_chunk(state)
    rec = full.chunks[stop]
    assert (plan.start, plan.context, plan.history.tolist()) == (rec["first_frame"], rec["context_frames"],
                                                                 rec["history_frames"])
    assert torch.equal(plan.context_frames, full.frames[plan.start:plan.start + plan.context])
    assert [c["first_frame"] for c in full.chunks] == s.chunk_starts(frames)
