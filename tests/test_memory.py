"""Revisit memory: hints from the persistent world where the online cache has holes.

The frustum selection keeps exactly the Gaussians that project into the views; the composite keeps
every valid online pixel and fills only holes; on a path that comes back, the world covers more of
the revisited views than the online cache; ``online`` is the paper's loop, unchanged.
"""

from __future__ import annotations

import pytest
import torch

from worldwarp_core.cameras import Cameras, intrinsics_from_fov, look_at
from worldwarp_core.geometry.monocular import DepthAnythingV2
from worldwarp_core.geometry.testing import tiny_depth_anything
from worldwarp_core.gscache import Gaussians, GSConfig
from worldwarp_core.gscache.world import WorldModel, composite_hints, frustum_select, remembered_hints
from worldwarp_core.models import tiny_model
from worldwarp_core.pipeline import PipelineSettings, WorldWarpPipeline
from worldwarp_core.synthetic import default_scene
from worldwarp_core.trajectory import make_trajectory, median_depth
from worldwarp_core.warp import WarpResult


def _points(means: torch.Tensor) -> Gaussians:
    N = len(means)
    return Gaussians(means=means, quats=torch.tensor([[1.0, 0, 0, 0]]).expand(N, 4).clone(),
                     log_scales=torch.full((N, 3), -3.0), opacity_logits=torch.full((N,), 3.0),
                     sh=torch.full((N, 1, 3), 0.5))


def _camera(eye, target, W=32, H=24):
    w2c = look_at(torch.tensor(eye, dtype=torch.float64), torch.tensor(target, dtype=torch.float64)).float()
    return Cameras(w2c[None] if w2c.dim() == 2 else w2c, intrinsics_from_fov(60.0, W, H), W, H)


def test_frustum_selection_returns_only_what_projects_into_the_views():
    g = _points(torch.randn(5000, 3, generator=torch.Generator().manual_seed(0)) * 4.0)
    cams = Cameras.cat([_camera([0.0, 0.0, -6.0], [0.0, 0.0, 0.0]), _camera([6.0, 0.0, 0.0], [0.0, 0.0, 0.0])])
    index = frustum_select(g, cams, margin=0.0, block=777)  # several blocks
    uv, z = cams.project(g.means)
    inside = (z > 1e-3) & (uv[..., 0] >= 0) & (uv[..., 0] <= cams.width) & (uv[..., 1] >= 0) & (
        uv[..., 1] <= cams.height)
    assert index.tolist() == torch.nonzero(inside.any(0)).flatten().tolist()
    assert 0 < len(index) < len(g)
    assert len(frustum_select(g, cams, margin=0.1)) >= len(index)
    assert len(frustum_select(None, cams)) == 0


def test_composite_keeps_every_online_pixel_and_fills_only_holes():
    gen = torch.Generator().manual_seed(1)
    V, H, W = 2, 6, 8

    def result():
        return WarpResult(torch.rand(V, H, W, 3, generator=gen), torch.rand(V, H, W, generator=gen) > 0.5,
                          torch.rand(V, H, W, generator=gen) + 1)

    online, world = result(), result()
    out, filled = composite_hints(online, world)
    assert torch.equal(out.images[online.masks], online.images[online.masks])
    assert torch.equal(filled, world.masks & ~online.masks)
    assert torch.equal(out.images[filled], world.images[filled])
    assert torch.equal(out.masks, online.masks | world.masks)
    assert torch.equal(out.depths[filled], world.depths[filled])


def test_remembered_hints_cover_a_view_of_the_world_and_nothing_elsewhere():
    scene = default_scene()
    cam = scene.default_camera(32, 24)
    rgb, depth = scene.render(cam)
    from worldwarp_core.gscache import init_gaussians

    world = WorldModel(0.05).add(init_gaussians(rgb, depth, cam, GSConfig(stride=1)))
    seen, selected = remembered_hints(world, cam, GSConfig())
    assert seen.masks.float().mean() > 0.9
    away = Cameras(cam.viewmats @ torch.diag(torch.tensor([-1.0, 1.0, -1.0, 1.0], dtype=cam.viewmats.dtype)),
                   cam.Ks, 32, 24)  # turned around: the world is behind it
    nothing, none = remembered_hints(world, away, GSConfig())
    assert not nothing.masks.any() and none == 0
    assert 0 < selected <= len(world.gaussians)


SETTINGS = dict(chunk_frames=5, context_frames=1, steps=2, guidance_scale=2.0, world_voxel=0.05,
                gs=GSConfig(iterations=2, stride=2))
FRAMES = 21  # five chunks: out to 120 degrees and back to the start


@pytest.fixture(scope="module")
def there_and_back():
    scene = default_scene()
    start = scene.default_camera(32, 32)
    rgb, depth = scene.render(start)
    scale = median_depth(depth[0])
    path = make_trajectory("orbit_left@4 + orbit_right@4", FRAMES, start, scene_scale=scale)
    geo = DepthAnythingV2(model=tiny_depth_anything(), input_size=56)
    return rgb[0], depth[0], path, geo


def _run(parts, memory, out=None, world_views=None, **kw):
    rgb, depth, path, geo = parts
    extra = {} if world_views is None else {"world_views": world_views}
    settings = PipelineSettings(**SETTINGS, memory=memory, **extra)
    return WorldWarpPipeline(tiny_model(seed=0), geo, None, settings)(rgb, path, FRAMES, prompt="a room",
                                                                      start_depth=depth, out_dir=out, **kw)


def test_a_path_that_comes_back_gets_more_hints_from_the_world(there_and_back, tmp_path):
    online = _run(there_and_back, "online", str(tmp_path / "online"))
    world = _run(there_and_back, "world", str(tmp_path / "world"))
    import json

    def records(run):
        return [json.load(open(tmp_path / run / "chunks" / f"chunk_{k:03d}" / "chunk.json")) for k in range(5)]

    on, wo = records("online"), records("world")
    # the way back (last chunk, ending at the start camera): the world remembers what the online cache lost
    assert wo[-1]["valid_hint_fraction"] > on[-1]["valid_hint_fraction"]
    assert wo[-1]["remembered_fraction"] > 0 and "remembered_fraction" not in on[-1]
    assert wo[-1]["valid_hint_fraction"] == pytest.approx(
        min(1.0, on[-1]["valid_hint_fraction"] + wo[-1]["remembered_fraction"]), abs=0.35)
    # the first chunk has no world yet: the same frames either way
    assert torch.equal(online.frames[:5], world.frames[:5])


def test_world_memory_needs_the_world_and_names_the_choices():
    with pytest.raises(ValueError, match=r"memory 'world' renders hints from the persistent world: set world_voxel"):
        PipelineSettings(memory="world")
    with pytest.raises(ValueError, match="memory must be one of"):
        PipelineSettings(memory="global", world_voxel=0.1)


def test_resume_with_world_memory_is_bit_identical(there_and_back, tmp_path):
    ref = _run(there_and_back, "world", str(tmp_path / "ref"))

    class Stop(BaseException):
        pass

    def kill(e):
        if e["stage"] == "chunk" and e["chunk"] == 3:
            raise Stop

    with pytest.raises(Stop):
        _run(there_and_back, "world", str(tmp_path / "run"), callback=kill)
    resumed = _run(there_and_back, "world", str(tmp_path / "run"), resume=True)
    assert torch.equal(resumed.frames, ref.frames)


def test_the_world_remembers_which_chunk_left_each_gaussian_and_the_ply_keeps_it(tmp_path):
    from worldwarp_core.gscache.ply import load_ply, ply_property, save_ply

    a = _points(torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0]]))
    b = _points(torch.tensor([[0.01, 0.0, 1.0], [3.0, 0.0, 1.0]]))  # the first shares a's first voxel: b wins
    world = WorldModel(0.5).add(a, 0).add(b, 4)
    assert sorted(world.born.tolist()) == [0, 4, 4] and world.chunks == 5
    assert len(world.remembered(4)) == 1 and world.remembered(0) is None
    path = save_ply(world.gaussians, str(tmp_path / "world.ply"), extra={"chunk": world.born.float()})
    assert torch.equal(ply_property(path, "chunk").long(), world.born)
    assert torch.equal(load_ply(path).means, world.gaussians.means) and ply_property(path, "nothing") is None
    with pytest.raises(ValueError, match=r"ply property chunk has shape \[2\]; one value per Gaussian \(3\)"):
        save_ply(world.gaussians, str(tmp_path / "bad.ply"), extra={"chunk": torch.zeros(2)})


def test_a_world_that_keeps_the_oldest_gaussian_remembers_the_first_view_of_a_voxel():
    a = _points(torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0]]))
    b = _points(torch.tensor([[0.01, 0.0, 1.0], [3.0, 0.0, 1.0]]))  # the first shares a's first voxel
    newest, oldest = WorldModel(0.5).add(a, 0).add(b, 4), WorldModel(0.5, keep="oldest").add(a, 0).add(b, 4)
    assert len(newest.gaussians) == len(oldest.gaussians) == 3
    assert sorted(oldest.born.tolist()) == [0, 0, 4] and sorted(newest.born.tolist()) == [0, 4, 4]
    kept = oldest.gaussians.means[(oldest.gaussians.means[:, 0] < 0.4)]
    assert kept.tolist() == [[0.0, 0.0, 1.0]]  # a's, seen first
    assert len(oldest.remembered(4)) == 2
    with pytest.raises(ValueError, match="world_keep must be one of newest, oldest"):
        WorldModel(0.5, keep="first")
    with pytest.raises(ValueError, match="world_keep must be one of newest, oldest; got 'first'"):
        PipelineSettings(world_voxel=0.05, world_keep="first")


def test_a_revisit_brings_drifted_depth_back_to_the_remembered_scene():
    from worldwarp_core.gscache import init_gaussians
    from worldwarp_core.loop import ChunkPlan, LoopState, align_to_world

    scene = default_scene()
    cam = scene.default_camera(32, 24)
    rgb, depth = scene.render(cam)
    world = WorldModel(0.05).add(init_gaussians(rgb, depth, cam, GSConfig(stride=1)), 0)
    settings = PipelineSettings(chunk_frames=5, context_frames=1, memory="world", world_voxel=0.05, world_align=True)
    state = LoopState(settings, cam, (0,), rgb, world=world)

    def plan(k):
        return ChunkPlan(k, 0, 1, torch.tensor([0]), rgb, cam, cam, rgb, 0, 0)

    seen, _ = remembered_hints(world, cam, GSConfig())  # the depth the remembered scene renders there
    drifted = seen.depths * 1.1  # the history's depth after chunks of small scale errors
    fixed, scale = align_to_world(state, plan(5), drifted, cam)
    assert scale == pytest.approx(1 / 1.1, rel=1e-3)
    assert torch.allclose(fixed, seen.depths, rtol=1e-3)
    # the last few chunks are not a revisit; a view the world never saw has nothing to align to
    assert align_to_world(state, plan(3), drifted, cam) == (drifted, None)
    away = Cameras(cam.viewmats @ torch.diag(torch.tensor([-1.0, 1.0, -1.0, 1.0], dtype=cam.viewmats.dtype)),
                   cam.Ks, 32, 24)
    assert align_to_world(state, plan(5), drifted, away)[1] is None
    with pytest.raises(ValueError, match="world_align must be True or False"):
        PipelineSettings(memory="world", world_voxel=0.05, world_align="yes")


# ----------------------------------------------------------------------------- past frames as training views
def _scene_points(scene, cam):
    from worldwarp_core.gscache.world import target_points

    _, depth = scene.render(cam)
    return target_points(WarpResult(torch.zeros(1, cam.height, cam.width, 3), depth > 0, depth), cam)


def test_retrieval_picks_the_past_frame_at_the_target_camera_over_far_ones():
    from worldwarp_core.gscache.world import RETRIEVAL_POINTS, retrieve_views

    scene = default_scene()
    target = scene.default_camera(32, 24)
    points, distance = _scene_points(scene, target)
    assert 0 < len(points) <= RETRIEVAL_POINTS and distance.min() > 0
    eye = target.centers[0].double()
    forward = target.rotations[0].double().T @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    far_back = _camera((eye - 3 * forward).tolist(), (eye + forward).tolist())  # sees it all, from far away
    turned = _camera(eye.tolist(), (eye + torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)).tolist())
    same = Cameras(target.viewmats, target.Ks, 32, 24)
    past = Cameras.cat([far_back, turned, same, turned])
    picked = retrieve_views(points, distance, past, 2)
    assert picked[0] == 2  # the frame taken at the target camera itself
    assert 2 not in picked[1:].tolist() and len(picked) <= 2
    # a view already trained on leaves nothing for the same view to add
    assert len(retrieve_views(points, distance, same, 1, given=same)) == 0
    assert len(retrieve_views(points, distance, past, 0)) == 0


def test_world_views_come_from_older_frames_with_the_worlds_depth():
    from worldwarp_core.gscache import init_gaussians
    from worldwarp_core.loop import ChunkPlan, LoopState, retrieve_world_views

    scene = default_scene()
    cam = scene.default_camera(32, 24)
    turned = _camera(cam.centers[0].tolist(), (cam.centers[0] + torch.tensor([1.0, 0.0, 0.0])).tolist())
    rgb, depth = scene.render(cam)
    world = WorldModel(0.05).add(init_gaussians(rgb, depth, cam, GSConfig(stride=1)), 0)
    settings = PipelineSettings(chunk_frames=5, context_frames=1, memory="world", world_voxel=0.05, world_views=1)
    # video frames 0-3: the target camera at frame 1, turned away elsewhere; the history is frames 2-3
    path = Cameras.cat([turned, cam, turned, turned])
    video = torch.stack([rgb[0] * 0, rgb[0], rgb[0] * 0, rgb[0] * 0])
    state = LoopState(settings, path, (0, 3), video, next_chunk=1, world=world)
    plan = ChunkPlan(1, 3, 1, torch.tensor([2, 3]), video[2:], path[2:], cam, video[-1:], 0, 0)
    seen, _ = remembered_hints(world, cam, GSConfig())
    got = retrieve_world_views(state, plan, seen, 1, path[3:])
    assert got.index.tolist() == [1]
    assert torch.equal(got.frames, video[1:2]) and torch.allclose(got.cameras.viewmats, cam.viewmats.float())
    known = got.depth[0] > 0
    assert known.float().mean() > 0.9
    assert torch.allclose(got.depth[0][known], seen.depths[0][known], rtol=1e-4)
    # only frames older than the history are candidates: the target camera inside the history is not one
    inside = ChunkPlan(1, 3, 1, torch.tensor([1, 2, 3]), video[1:], path[1:], cam, video[-1:], 0, 0)
    assert retrieve_world_views(state, inside, seen, 1) is None


def test_world_views_are_checked_and_name_the_setting():
    with pytest.raises(ValueError, match="world_views must be"):
        PipelineSettings(memory="world", world_voxel=0.05, world_views=-1)
    with pytest.raises(ValueError, match="world_views"):
        PipelineSettings(memory="world", world_voxel=0.05, world_views=2.5)
    with pytest.raises(ValueError, match="world_views"):
        PipelineSettings(memory="world", world_voxel=0.05, world_views=1000)
    with pytest.raises(ValueError, match="world_views 2 retrieves past frames from the persistent world: set memory"):
        PipelineSettings(world_views=2)


def test_world_views_zero_is_world_memory_as_before_and_retrieval_is_recorded(there_and_back, tmp_path):
    import json

    assert PipelineSettings(**SETTINGS, memory="world", world_views=0) == PipelineSettings(**SETTINGS, memory="world")
    off = _run(there_and_back, "world", str(tmp_path / "off"), world_views=0)
    on = _run(there_and_back, "world", str(tmp_path / "on"), world_views=2)

    def records(run):
        return [json.load(open(tmp_path / run / "chunks" / f"chunk_{k:03d}" / "chunk.json")) for k in range(5)]

    assert all("world_views" not in r for r in records("off"))
    got = [r["world_views"] for r in records("on")]
    for views, rec in zip(got, records("on")):
        assert len(views) <= 2 and all(v < min(rec["history_frames"]) for v in views)  # older than the history
    assert got[0] == [] and got[1] == []  # no frame older than the history yet
    assert any(got)  # the way back finds the frames that saw it
    first = next(k for k, v in enumerate(got) if v)
    start = records("on")[first]["first_frame"]
    # until a chunk retrieves a frame, the same frames as without retrieval; then its cache is another
    assert torch.equal(on.frames[:start + 1], off.frames[:start + 1])
    assert records("on")[first]["valid_hint_fraction"] != records("off")[first]["valid_hint_fraction"]


def test_fitting_each_frame_removes_each_frames_own_scale_error():
    from worldwarp_core.geometry.base import GeometryResult
    from worldwarp_core.loop import ChunkPlan, LoopState, align_history_depth, fit_each_frame

    scene = default_scene()
    cams = Cameras.cat([scene.default_camera(32, 24)] * 3)
    rgb, true = scene.render(cams)
    errors = torch.tensor([1.1, 0.9, 1.25])
    geo = GeometryResult(true * errors[:, None, None], torch.ones_like(true), cams, "metric")
    alpha = torch.ones_like(true)
    alpha[2] = 0  # the cache saw nothing of the last frame: it keeps the history's fit
    chunk_fit = true * errors[:, None, None] * 0.97
    fixed = fit_each_frame(geo, chunk_fit, true, alpha, 0.5)
    assert torch.allclose(fixed[:2], true[:2], rtol=1e-4)
    assert torch.equal(fixed[2], chunk_fit[2])
    # through the loop: depth_fit "frame" fits each frame, "chunk" (the default) one scale for all
    for depth_fit, per_frame in (("chunk", False), ("frame", True)):
        settings = PipelineSettings(chunk_frames=5, context_frames=1, depth_fit=depth_fit)
        state = LoopState(settings, cams, (0, 4), rgb, next_chunk=1, prev_depth=torch.cat([true, true[:2]]),
                          prev_alpha=torch.ones(5, 24, 32))
        plan = ChunkPlan(1, 4, 1, torch.tensor([2, 3, 4]), rgb, cams, cams, rgb[-1:], 0, 0)
        depth, _ = align_history_depth(state, plan, geo, geo.depth)
        ratio = (depth / true).flatten(1).median(dim=1).values
        assert torch.allclose(ratio, torch.ones(3), rtol=1e-3) == per_frame
    with pytest.raises(ValueError, match="depth_fit must be one of chunk, frame"):
        PipelineSettings(depth_fit="pixel")
