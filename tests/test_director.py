"""Camera Director: keyframe paths, keyframe fitting, the editor's server answers equal the node's
cameras, and coverage equals the core warp's valid fraction (no ComfyUI needed)."""

import json
import math

import pytest
import torch

from nodes import director as srv
from nodes import ops
from worldwarp_core.cameras import Cameras, intrinsics_from_fov, look_at
from worldwarp_core.director import (
    KeyframePath,
    fit_keyframes,
    keyframe_cameras,
    parse_keyframes,
    path_coverage,
    relative_poses,
)
from worldwarp_core.geometry.base import GeometryResult
from worldwarp_core.synthetic import default_scene
from worldwarp_core.trajectory import (
    _ease,
    axis_angle,
    interpolate_at,
    make_trajectory,
    matrix_to_quat,
    part_end_frames,
    quat_to_matrix,
)
from worldwarp_core.warp import forward_warp, one_to_all_warp, unproject


@pytest.fixture
def start():
    vm = look_at(torch.tensor([[0.3, -0.2, -1.0]], dtype=torch.float64), torch.tensor([[0.0, 0.0, 2.0]],
                                                                                      dtype=torch.float64))
    return Cameras(vm, intrinsics_from_fov(60.0, 64, 48).double(), 64, 48)


@pytest.fixture(scope="module")
def scene_geometry():
    scene = default_scene()
    cam = scene.default_camera(48, 32)
    rgb, depth = scene.render(cam)
    geometry = GeometryResult(depth.float(), torch.ones_like(depth).float(), cam)
    return rgb.float(), geometry


def _quat(axis, degrees):
    return matrix_to_quat(axis_angle(torch.tensor(axis, dtype=torch.float64), math.radians(degrees))).tolist()


def _spec(frames=49, mode="spline"):
    return json.dumps({"frames": frames, "interpolation": mode, "keyframes": [
        {"frame": 12, "position": [0.1, -0.05, 0.3], "rotation": _quat([0, 1, 0], 10), "focal": 1.0},
        {"frame": 30, "position": [0.4, -0.1, 0.5], "rotation": _quat([0.2, 1, 0], -15), "focal": 1.2,
         "ease": "ease-in-out"},
        {"frame": 48, "position": [0.2, 0.0, 0.9], "rotation": _quat([1, 0, 0], 5), "ease": "ease-out"}]})


# ----------------------------------------------------------------------------- interpolation


def test_uneven_spline_passes_keys_reproduces_lines_and_is_smooth(start):
    times = torch.tensor([0.0, 3.0, 10.0, 12.0, 30.0], dtype=torch.float64)
    c2w = torch.eye(4, dtype=torch.float64).repeat(5, 1, 1)
    velocity = torch.tensor([0.1, -0.02, 0.05], dtype=torch.float64)
    c2w[:, :3, 3] = times[:, None] * velocity  # constant velocity, uneven key times
    keys = Cameras.from_c2w(c2w, start.Ks.double().expand(5, 3, 3), 64, 48)
    t = torch.linspace(0, 30, 301, dtype=torch.float64)
    out = interpolate_at(keys, times, t, "spline")
    torch.testing.assert_close(out.centers, t[:, None] * velocity, atol=1e-12, rtol=0)  # lines are kept
    # a curved path: through every keyframe, and the velocity is continuous across keyframes (C1)
    c2w[:, :3, 3] = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    keys = Cameras.from_c2w(c2w, start.Ks.double().expand(5, 3, 3), 64, 48)
    at_keys = interpolate_at(keys, times, times, "spline")
    torch.testing.assert_close(at_keys.centers, keys.centers, atol=1e-12, rtol=0)
    h = 1e-6
    for tk in times[1:-1]:
        c = interpolate_at(keys, times, torch.stack([tk - h, tk, tk + h]), "spline").centers
        torch.testing.assert_close((c[1] - c[0]) / h, (c[2] - c[1]) / h, atol=1e-4, rtol=0)


def test_sine_easings_are_the_halves_of_ease_in_out():
    for p in (0.0, 0.1, 0.37, 0.8, 1.0):
        assert _ease(p / 2, "ease-in-out") == pytest.approx(0.5 * _ease(p, "ease-in"), abs=1e-15)
        assert _ease(0.5 + p / 2, "ease-in-out") == pytest.approx(0.5 + 0.5 * _ease(p, "ease-out"), abs=1e-15)


def test_bad_interpolation_input(start):
    keys = make_trajectory("dolly_in", 3, start)
    with pytest.raises(ValueError, match="keyframe times must increase strictly"):
        interpolate_at(keys, torch.tensor([0.0, 2.0, 2.0]), torch.arange(3.0))
    with pytest.raises(ValueError, match="2 keyframe times for 3 keyframes"):
        interpolate_at(keys, torch.tensor([0.0, 2.0]), torch.arange(3.0))
    with pytest.raises(ValueError, match="1 easings for 2 segments"):
        interpolate_at(keys, torch.arange(3.0), torch.arange(3.0), eases=["linear"])


# ----------------------------------------------------------------------------- keyframe paths


def test_keyframe_path_hits_every_keyframe_and_starts_at_start(start):
    path = parse_keyframes(_spec())
    cams = keyframe_cameras(path, 49, start, 2.0)
    assert len(cams) == 49
    torch.testing.assert_close(cams.viewmats[0], start.viewmats[0].double(), atol=1e-12, rtol=0)
    rel, focal = relative_poses(cams, start, 2.0)
    for k in path.keys:
        i = int(k.frame)
        torch.testing.assert_close(rel[i, :3, 3], torch.tensor(k.position, dtype=torch.float64), atol=1e-12, rtol=0)
        torch.testing.assert_close(rel[i, :3, :3], quat_to_matrix(torch.tensor(k.rotation, dtype=torch.float64)),
                                   atol=1e-12, rtol=0)
        assert float(focal[i]) == pytest.approx(k.focal, abs=1e-12)
    # more frames stretch the key times: frame 24 of 49 is frame 48 of 97
    longer = keyframe_cameras(path, 97, start, 2.0)
    torch.testing.assert_close(longer.viewmats[60], cams.viewmats[30], atol=1e-12, rtol=0)


def test_keyframe_spec_round_trips_and_bad_specs_say_what_to_fix():
    path = parse_keyframes(_spec())
    assert parse_keyframes(path.to_json()) == path
    assert parse_keyframes('{"frames": 9, "keyframes": []}') == KeyframePath(9, (), "spline")
    cases = [
        ("{", "not valid JSON"),
        ("[]", "expected an object with 'frames'"),
        ('{"frames": 0, "keyframes": []}', "'frames' must be an integer from 1 to 10000"),
        ('{"frames": 9, "keyframes": [{"frame": 9, "position": [0,0,0]}]}', "keyframe 0 is at frame 9"),
        ('{"frames": 9, "keyframes": [{"frame": 4, "position": [0,0,0]}, {"frame": 4, "position": [0,0,0]}]}',
         "keyframe 1 is at frame 4; frames must increase"),
        ('{"frames": 9, "keyframes": [{"frame": 4, "position": [0,0]}]}', "keyframe 0's position must be a list of 3"),
        ('{"frames": 9, "keyframes": [{"frame": 4, "position": [0,0,NaN]}]}', "must be a finite number"),
        ('{"frames": 9, "keyframes": [{"frame": 4, "position": [0,0,0], "rotation": [2,0,0,0]}]}',
         "not a unit quaternion"),
        ('{"frames": 9, "keyframes": [{"frame": 4, "position": [0,0,0], "ease": "bounce"}]}', "ease 'bounce'"),
        ('{"frames": 9, "interpolation": "cubic", "keyframes": []}', "interpolation must be 'spline' or 'linear'"),
        ("x" * 200_001, "over the limit"),
    ]
    for text, message in cases:
        with pytest.raises(ValueError, match=message):
            parse_keyframes(text)


def test_presets_fit_into_few_exact_keyframes(start):
    # sequences split at their joints, easing per part: dolly then pan is two linear segments, exact
    for spec, ease, most in (("dolly_in + pan_left", "linear", 2), ("zoom_in + truck_right:2", "ease-in-out", 2),
                             ("dolly_in", "ease-in-out", 1), ("orbit_left", "linear", 6)):
        cams = make_trajectory(spec, 49, start, scene_scale=2.0, ease=ease)
        path, err = fit_keyframes(cams, start, 2.0, ease=ease, seed_frames=part_end_frames(spec, 49))
        assert len(path.keys) <= most and err <= 1.0, (spec, len(path.keys), err)
        got = keyframe_cameras(path, 49, start, 2.0)
        rel_got, _ = relative_poses(got, start, 2.0)
        rel_want, _ = relative_poses(cams, start, 2.0)
        assert float((rel_got[:, :3, 3] - rel_want[:, :3, 3]).norm(dim=1).max()) <= 2e-3 + 1e-9
    assert part_end_frames("dolly_in:1 + pan_left:3", 49) == [12, 48]
    # a keyframe path fits back into its own keyframes
    path = parse_keyframes(_spec(mode="linear"))
    cams = keyframe_cameras(path, 49, start, 2.0)
    fitted, err = fit_keyframes(cams, start, 2.0, seed_frames=[12, 30])
    assert err <= 1.0 and len(fitted.keys) <= 4


# ----------------------------------------------------------------------------- server == node


class _Env:
    def input_dir(self):
        return "/nonexistent"


STATES = [
    {"preset": "dolly_in@0.5 + pan_left", "strength": 1.0, "frames": 17, "easing": "linear", "keyframes": ""},
    {"preset": "orbit_left * dolly_in@0.3", "strength": 0.7, "frames": 33, "easing": "ease-in-out", "keyframes": ""},
    {"preset": "ignored", "strength": 1.0, "frames": 49, "easing": "linear", "keyframes": _spec()},
    {"preset": "static", "strength": 1.0, "frames": 25, "easing": "ease-in-out", "keyframes": _spec(mode="linear")},
]


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("with_geometry", [False, True])
def test_path_route_returns_the_nodes_cameras(state, with_geometry, scene_geometry):
    rgb, geometry = scene_geometry
    image = rgb[:1]
    body = dict(state, fov_degrees=55.0, scene_scale=0.0, width=48, height=32)
    if with_geometry:
        ui = srv.scene_ui(None, image, geometry=geometry, **{k: body[k] for k in (
            "preset", "strength", "frames", "fov_degrees", "scene_scale", "easing", "keyframes")})
        body["scene"] = ui["worldwarp_director"][0]["scene"]
    answer = srv.handle_path(json.loads(json.dumps(body)))
    answer = json.loads(json.dumps(answer))  # what the browser receives
    (cams,) = ops.camera_director(_Env(), image, state["preset"], state["strength"], state["frames"], 55.0, 0.0,
                                  state["easing"], state["keyframes"], geometry if with_geometry else None)
    got = torch.tensor(answer["viewmats"], dtype=torch.float64).reshape(-1, 4, 4)
    torch.testing.assert_close(got, cams.viewmats.double(), atol=1e-9, rtol=0)
    torch.testing.assert_close(torch.tensor(answer["Ks"], dtype=torch.float64).reshape(-1, 3, 3),
                               cams.Ks.double(), atol=1e-9, rtol=0)
    # the drawing frame: start camera at the identity, translations in median depths
    rel = torch.tensor(answer["c2w"], dtype=torch.float64).reshape(-1, 4, 4)
    torch.testing.assert_close(rel[0], torch.eye(4, dtype=torch.float64), atol=1e-6, rtol=0)
    # the exported files hold the same cameras
    for fmt in ("re10k", "json", "nerfstudio"):
        out = srv.handle_export(dict(body, format=fmt))
        back = Cameras.parse(out["text"], out["name"], cams.width, cams.height)
        torch.testing.assert_close(back.viewmats.double(), cams.viewmats.double(), atol=1e-9, rtol=0)
        torch.testing.assert_close(back.Ks.double(), cams.Ks.double(), atol=1e-9, rtol=0)


def test_preset_and_dropped_files_become_keyframes_with_the_same_path(scene_geometry, tmp_path):
    rgb, geometry = scene_geometry
    scene = srv.remember_scene(rgb[:1], geometry)
    body = {"preset": "dolly_in@0.5 + pan_left", "frames": 25, "scene": scene, "width": 48, "height": 32}
    preset_path = srv.handle_path(body)
    fit = srv.handle_fit(body)
    assert fit["count"] == 2 and fit["fit_error"] <= 1.0
    edited = srv.handle_path(dict(body, keyframes=fit["keyframes"]))
    assert edited["mode"] == "keyframes"
    a = torch.tensor(preset_path["c2w"]).reshape(-1, 4, 4)
    b = torch.tensor(edited["c2w"]).reshape(-1, 4, 4)
    assert float((a - b).abs().max()) < 1e-6
    # a RealEstate10K file from elsewhere in the world: its motion from its first camera is kept
    other = make_trajectory("orbit_right@0.6", 25, Cameras(look_at(torch.tensor([[5.0, 1.0, -3.0]]),
                                                                  torch.tensor([[4.0, 1.0, 2.0]])),
                                                          intrinsics_from_fov(50.0, 48, 32), 48, 32), scene_scale=3.0)
    text = other.to_re10k_text()
    fit = srv.handle_fit(dict(body, file_text=text, file_name="walk.txt"))
    assert fit["fit_error"] <= 1.0
    drawn = torch.tensor(srv.handle_path(dict(body, keyframes=fit["keyframes"]))["c2w"]).reshape(-1, 4, 4)
    want = other.c2w[:1].double().inverse() @ other.c2w.double()
    want[:, :3, 3] /= srv.SCENES.get(scene).median
    assert float((drawn[:, :3, 3] - want[:, :3, 3]).abs().max()) < 3e-3
    with pytest.raises(ValueError, match="walk.json: not a RealEstate10K .txt and not valid JSON"):
        srv.handle_fit(dict(body, file_text="hello", file_name="walk.json"))


def test_coverage_is_the_core_warps_valid_fraction(scene_geometry):
    rgb, geometry = scene_geometry
    scene_id = srv.remember_scene(rgb[:1], geometry)
    scene = srv.SCENES.get(scene_id)
    body = {"preset": "dolly_out@0.8 + pan_left@2", "frames": 13, "scene": scene_id}
    answer = srv.handle_coverage(body)
    cov = torch.tensor(answer["coverage"])
    assert (answer["width"], answer["height"]) == (srv.COVERAGE_WIDTH, round(srv.COVERAGE_WIDTH * 32 / 48))
    cams = srv.director_path(srv._state(body), scene.start, scene.median)
    small = cams.resize(answer["width"], answer["height"])
    # the core warp at that size, written out: unproject the small start image, splat radius 1
    cloud = unproject(scene.cov_image[None], scene.cov_depth[None], scene.cov_start.to(dtype=torch.float32))
    masks = forward_warp(cloud, small.to(dtype=torch.float32), radius=1).masks
    torch.testing.assert_close(cov, masks.float().mean(dim=(1, 2)), atol=0, rtol=0)
    ref = one_to_all_warp(scene.cov_image, scene.cov_depth, scene.cov_start.to(dtype=torch.float32),
                          small.to(dtype=torch.float32), radius=1).masks.float().mean(dim=(1, 2))
    torch.testing.assert_close(cov, ref, atol=0, rtol=0)
    assert float(cov[0]) == 1.0  # the start view sees all of itself
    assert float(cov[6]) < 0.95 and float(cov[-1]) < float(cov[6])  # backing out, then turning away
    with pytest.raises(ValueError, match="coverage needs the scene"):
        srv.handle_coverage({"preset": "dolly_in"})
    with pytest.raises(KeyError, match="run the Camera Director node again"):
        srv.handle_coverage({"preset": "dolly_in", "scene": "0123456789abcdef"})
    # the same function on the full-size geometry
    full = path_coverage(rgb[0], geometry.depth[0], geometry.cameras, cams[:2])
    assert float(full[0]) == 1.0


def test_scene_points_are_the_start_view_in_scene_units(scene_geometry):
    import base64

    import numpy as np

    rgb, geometry = scene_geometry
    answer = srv.handle_scene({"scene": srv.remember_scene(rgb[:1], geometry)})
    pts = torch.from_numpy(np.frombuffer(base64.b64decode(answer["points"]), dtype=np.float32).reshape(-1, 3).copy())
    cols = np.frombuffer(base64.b64decode(answer["colors"]), dtype=np.uint8).reshape(-1, 3)
    assert pts.shape[0] == answer["count"] == 48 * 32 and cols.shape == (48 * 32, 3)
    # projected with the start intrinsics, each point lands on its own pixel, at depth / median
    K = geometry.cameras.Ks[0].float()
    uv = (pts @ K.T)[:, :2] / pts[:, 2:]
    v, u = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(48) + 0.5, indexing="ij")
    torch.testing.assert_close(uv, torch.stack([u, v], -1).reshape(-1, 2), atol=1e-3, rtol=0)
    torch.testing.assert_close(pts[:, 2] * answer["median"], geometry.depth[0].reshape(-1), atol=1e-4, rtol=1e-5)


def test_bad_bodies_are_one_line_errors():
    for body, message in (([], "must be a JSON object"), ({"frames": 0}, "'frames' must be from 1 to 10000"),
                          ({"frames": 1e400}, "'frames' must be a finite number"),
                          ({"frames": 2.5}, "'frames' must be a whole number"),
                          ({"preset": 7}, "'preset' must be a string"),
                          ({"easing": "fast"}, "'easing' must be one of"),
                          ({"preset": "dolly_in+" * 600}, "the limit is 1000"),
                          ({"preset": "warp_speed"}, "unknown camera preset 'warp_speed'"),
                          ({"keyframes": "{"}, "keyframes: not valid JSON"),
                          ({"format": "fbx"}, "'format' must be one of")):
        with pytest.raises(ValueError, match=message):
            (srv.handle_export if "format" in body else srv.handle_path)(body)


def test_routes_check_bodies_and_never_block_the_event_loop(scene_geometry):
    import asyncio

    rgb, geometry = scene_geometry
    scene = srv.remember_scene(rgb[:1], geometry)
    hostile = [(b"{", 400, "request body is not JSON"), (b"[1]", 400, "must be a JSON object with preset"),
               (b'{"frames": Infinity}', 400, "Infinity is not a number JSON allows"),
               (b"[" * 15000, 400, "nests too deeply"),
               (b"x" * (srv.MAX_BODY_BYTES + 1), 400, "the limit is"),
               (json.dumps({"keyframes": "{"}).encode(), 400, "keyframes: not valid JSON"),
               (json.dumps({"scene": "feedfacefeedface"}).encode(), 404, "run the Camera Director node again")]
    heavy = json.dumps({"preset": "spiral * orbit_left", "frames": 2000, "scene": scene}).encode()

    async def main():
        loop = asyncio.get_running_loop()
        worst, stop = 0.0, asyncio.Event()

        async def pinger():  # how late does the loop run a ready callback?
            nonlocal worst
            while not stop.is_set():
                t = loop.time()
                await asyncio.sleep(0)
                worst = max(worst, loop.time() - t)
                await asyncio.sleep(0.01)

        task = asyncio.create_task(pinger())
        routes = ["coverage" if b"feedface" in raw else "path" for raw, _, _ in hostile] + ["fit", "coverage"]
        answers = await asyncio.gather(*(srv.respond(r, raw) for r, raw in zip(routes, [h[0] for h in hostile]
                                                                                 + [heavy, heavy])))
        slow = await srv.respond("fit", heavy, budget_s=1e-4)
        stop.set()
        await task
        return worst, answers, slow

    worst, answers, slow = asyncio.run(main())
    for (status, text), (_, want_status, message) in zip(answers, hostile):
        assert status == want_status and message in json.loads(text)["error"], (status, text)
    assert [a[0] for a in answers[len(hostile):]] == [200, 200]
    assert len(json.loads(answers[-1][1])["coverage"]) == 2000
    assert slow[0] == 503 and "took longer than" in json.loads(slow[1])["error"]
    assert worst < 0.1, f"the loop stalled {worst * 1000:.0f} ms"
