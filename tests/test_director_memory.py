"""Camera Director: the predicted coverage world memory could add (``revisit_coverage``): the
chunking as the pipeline's, a hand-made revisit, a 360-degree orbit against a dolly-out, and the
coverage route's answer and errors."""

import math

import pytest
import torch

from nodes import director as srv
from worldwarp_core.cameras import Cameras, intrinsics_from_fov
from worldwarp_core.director import generating_chunks, revisit_coverage, revisit_masks
from worldwarp_core.geometry.base import GeometryResult
from worldwarp_core.pipeline import PipelineSettings
from worldwarp_core.synthetic import default_scene
from worldwarp_core.trajectory import axis_angle


def _start(width=32, height=24):
    return Cameras(torch.eye(4, dtype=torch.float64)[None], intrinsics_from_fov(60.0, width, height).double(),
                   width, height)


def _yawed(degrees: list[float], width=32, height=24) -> Cameras:
    """Cameras at the origin turned about the y axis (c2w rotations), 60 degrees of horizontal view."""
    c2w = torch.eye(4, dtype=torch.float64).repeat(len(degrees), 1, 1)
    for i, d in enumerate(degrees):
        c2w[i, :3, :3] = axis_angle(torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), math.radians(d))
    K = intrinsics_from_fov(60.0, width, height).double().expand(len(degrees), 3, 3)
    return Cameras.from_c2w(c2w, K, width, height)


def _path(preset: str, frames: int) -> Cameras:
    return srv.director_path(srv._state({"preset": preset, "frames": frames}), _start(), 1.0)


def test_chunks_are_the_pipelines():
    for C, ctx in ((49, 5), (81, 1), (17, 5)):
        settings = PipelineSettings(chunk_frames=C, context_frames=ctx)
        for total in (C, C + (C - ctx), C + 4 * (C - ctx)):
            chunk, starts = generating_chunks(total, C, ctx)
            assert starts == settings.chunk_starts(total)
            # each chunk makes the frames after its context, up to its end
            for k, s in enumerate(starts):
                made = torch.nonzero(chunk == k).flatten()
                first = 0 if k == 0 else s + ctx
                assert made.tolist() == list(range(first, s + C))
    # a total the pipeline refuses is its chunks with the last one cut short
    chunk, starts = generating_chunks(60, 49, 5)
    assert starts == [0, 44] and int(chunk[48]) == 0 and int(chunk[49]) == 1 and len(chunk) == 60


def test_a_view_seen_chunks_ago_and_not_by_the_history_is_remembered_whole():
    # chunks of 5 frames, 1 of context: chunk 0 makes 0-4, chunk 1 5-8, chunk 2 9-12, chunk 3 13-16
    # frames 0-3 look ahead, 4-12 turned 90 degrees (outside a 60-degree view), 13-16 ahead again
    cams = _yawed([0.0] * 4 + [90.0] * 9 + [0.0] * 4)
    masks = revisit_masks(cams, 5, 1, proxy_depth=2.0)
    assert masks.shape == (17, 24, 32)
    # chunk 3's history (frames 8-12) looks away; frames 0-3 saw exactly this: every pixel
    assert bool(masks[13:].all())
    # chunk 2 (9-12) looks where its history (4-8) looks: the online cache has it all
    assert not bool(masks[:13].any())


def test_orbit_remembers_its_start_and_dolly_out_nothing():
    frames = 49 + 5 * 44  # six chunks
    orbit = revisit_coverage(_path("orbit_left@12", frames), 49, 5, proxy_depth=1.0)  # 12 x 30 degrees
    turn = revisit_coverage(_path("pan_left@12", frames), 49, 5, proxy_depth=1.0)
    dolly = revisit_coverage(_path("dolly_out@4", frames), 49, 5, proxy_depth=1.0)
    for cov in (orbit, turn, dolly):
        assert cov.shape == (frames,) and bool(((cov >= 0) & (cov <= 1)).all())
        assert float(cov[:93].abs().max()) == 0.0  # the first two chunks have nothing older than the history
    # coming back round, the last frames see again what the first chunk saw and the history did not
    assert float(orbit[-10:].mean()) > 0.5 and float(turn[-10:].mean()) > 0.5
    # backing away: the history (the previous chunk, closer) holds all an older frame held
    assert float(dolly.max()) < 0.02
    # halfway round, facing away from where the first chunk looked, less of the frame is remembered
    # (what remains is where the proxy spheres meet, around the orbit's centre)
    assert float(orbit[120:137].mean()) < float(orbit[-10:].mean())


def test_a_known_surface_replaces_the_sphere():
    # a flat wall 2 units ahead of a camera sliding sideways and coming back: on the wall (depths
    # given) the way back is remembered; on spheres that never meet (no depths) nothing is
    frames = 5 + 4 * 4
    x = [0.0] * 4 + [3.0] * 13 + [0.0] * 4  # 3 units aside: the wall there lies outside the view
    c2w = torch.eye(4, dtype=torch.float64).repeat(frames, 1, 1)
    c2w[:, 0, 3] = torch.tensor(x, dtype=torch.float64)
    cams = Cameras.from_c2w(c2w, intrinsics_from_fov(60.0, 32, 24).double().expand(frames, 3, 3), 32, 24)
    wall = torch.full((frames, 24, 32), 2.0)
    with_wall = revisit_coverage(cams, 5, 1, proxy_depth=2.0, depths=wall)
    assert float(with_wall[-4:].min()) == 1.0 and float(with_wall[:-4].max()) == 0.0
    without = revisit_coverage(cams, 5, 1, proxy_depth=2.0)
    assert float(without[:-4].max()) == 0.0 and float(without[-4:].min()) == 1.0  # same place, same sphere
    moved = cams.c2w.clone()
    moved[-4:, 2, 3] = 1.0  # the way back one unit nearer: a sphere that is not the first chunk's
    near = Cameras.from_c2w(moved, cams.Ks, 32, 24)
    assert float(revisit_coverage(near, 5, 1, proxy_depth=2.0)[-4:].max()) < 0.2
    nearer_wall = torch.where(torch.arange(frames)[:, None, None] >= frames - 4, 1.0, 2.0).expand(frames, 24, 32)
    assert float(revisit_coverage(near, 5, 1, proxy_depth=2.0, depths=nearer_wall)[-4:].min()) == 1.0


def test_bad_arguments_say_what_to_fix():
    cams = _path("orbit_left", 20)
    with pytest.raises(ValueError, match=r"frame count must be 4k\+1"):
        revisit_coverage(cams, 48, 5, 1.0)
    with pytest.raises(ValueError, match="context frames must be 4j\\+1 and fewer than the chunk's 49 frames"):
        revisit_coverage(cams, 49, 49, 1.0)
    with pytest.raises(ValueError, match="proxy_depth must be a positive finite depth"):
        revisit_coverage(cams, 49, 5, float("nan"))
    with pytest.raises(ValueError, match=r"depths must be \[F, H, W\] = \[20, 24, 32\]"):
        revisit_coverage(cams, 49, 5, 1.0, depths=torch.ones(20, 24, 31))
    with pytest.raises(ValueError, match="tolerance must be a relative depth agreement"):
        revisit_coverage(cams, 49, 5, 1.0, tolerance=0.0)


@pytest.fixture(scope="module")
def scene_id():
    scene = default_scene()
    cam = scene.default_camera(48, 32)
    rgb, depth = scene.render(cam)
    return srv.remember_scene(rgb[:1].float(), GeometryResult(depth.float(), torch.ones_like(depth).float(), cam))


def test_coverage_route_adds_the_memory_prediction(scene_id):
    frames = 49 + 3 * 44
    answer = srv.handle_coverage({"preset": "pan_left@12", "frames": frames, "scene": scene_id})
    cov, rem = torch.tensor(answer["coverage"]), torch.tensor(answer["remembered"])
    assert len(cov) == len(rem) == frames and bool(((rem >= 0) & (rem <= 1)).all())
    assert (answer["chunk_frames"], answer["context_frames"]) == (srv.CHUNK_FRAMES, srv.CONTEXT_FRAMES) == (49, 5)
    assert float(rem[:93].max()) == 0.0
    assert float(rem[-10:].mean()) > 0.3  # turning on the spot, round to the start again
    # other chunking from the body: 17-frame chunks, the first two end at frame 33
    short = srv.handle_coverage({"preset": "pan_left@12", "frames": frames, "scene": scene_id, "chunk_frames": 17,
                                 "context_frames": 1})
    assert short["chunk_frames"] == 17 and len(short["remembered"]) == frames
    assert max(short["remembered"][:33]) == 0.0 and sum(short["remembered"][-10:]) / 10 > 0.3


def test_coverage_route_bad_chunking_is_a_one_line_error(scene_id):
    body = {"preset": "dolly_in", "frames": 13, "scene": scene_id}
    for extra, message in (({"chunk_frames": 48}, "frame count must be 4k+1 (1, 5, 9, ..., 49, 81) for the Wan VAE, "
                                                  "got 48"),
                           ({"chunk_frames": "49"}, "'chunk_frames' must be a finite number, got '49'"),
                           ({"chunk_frames": 1}, "'chunk_frames' must be from 5 to 10000, got 1"),
                           ({"context_frames": 2.5}, "'context_frames' must be a whole number, got 2.5"),
                           ({"context_frames": 3}, "context frames must be 4j+1 and fewer than the chunk's 49 "
                                                   "frames (e.g. 1 or 5), got 3")):
        with pytest.raises(ValueError) as err:
            srv.handle_coverage({**body, **extra})
        assert str(err.value) == message
