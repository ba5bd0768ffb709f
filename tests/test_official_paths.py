"""The official demo's camera paths against an independent transcription of the official functions.

The ``_ref_*`` functions below re-state the official ``pose_control.py`` / ``gradio_demo.py``
(commit 0396b80) with scipy, as the official code computes them (``Rotation``,
``savgol_filter``, ``interp1d``); the pack's ``worldwarp_core/official_paths.py`` uses neither.
Every official preset, their additive '+', the smoothing, the slowdown extension and the speed
multiplier must agree to 1e-9.
"""

import math

import numpy as np
import pytest
import torch

scipy_rotation = pytest.importorskip("scipy.spatial.transform")
signal = pytest.importorskip("scipy.signal")
interpolate = pytest.importorskip("scipy.interpolate")
R = scipy_rotation.Rotation

from worldwarp_core import official_paths as op  # noqa: E402
from worldwarp_core.cameras import Cameras, intrinsics_from_fov  # noqa: E402
from worldwarp_core.trajectory import extend_to, make_trajectory, parse_trajectory, part_end_frames  # noqa: E402

KEYS = ("roll", "pitch", "yaw", "move_forward", "move_right", "move_up",
        "angular_velocity_roll", "angular_velocity_pitch", "angular_velocity_yaw")

# the official CAMERA_MOVEMENTS table, typed again from pose_control.py (name: nine amounts in KEYS order)
REF_TABLE = {
    "DOLLY_IN": (0, 0, 0, 0.008, 0, 0, 0, 0, 0), "DOLLY_OUT": (0, 0, 0, -0.005, 0, 0, 0, 0, 0),
    "TRUCK_RIGHT": (0, 0, 0, 0, 0.004, 0, 0, 0, 0), "TRUCK_LEFT": (0, 0, 0, 0, -0.004, 0, 0, 0, 0),
    "PEDESTAL_UP": (0, 0, 0, 0, 0, -0.005, 0, 0, 0), "PEDESTAL_DOWN": (0, 0, 0, 0, 0, 0.005, 0, 0, 0),
    "PAN_RIGHT": (0, 5, 0, 0, 0, 0, 0, 0, 0), "PAN_LEFT": (0, -5, 0, 0, 0, 0, 0, 0, 0),
    "TILT_UP": (5, 0, 0, 0, 0, 0, 0, 0, 0), "TILT_DOWN": (-5, 0, 0, 0, 0, 0, 0, 0, 0),
    "ROLL_LEFT": (0, 0, 5, 0, 0, 0, 0, 0, 0), "ROLL_RIGHT": (0, 0, -5, 0, 0, 0, 0, 0, 0),
    "ORBIT_RIGHT": (0, 0, 0, 0, 0, 0, 0, 0.1, 0), "ORBIT_LEFT": (0, 0, 0, 0, 0, 0, 0, -0.1, 0),
    "ORBIT_UP": (0, 0, 0, 0, 0, 0, 0.1, 0, 0), "ORBIT_DONW": (0, 0, 0, 0, 0, 0, -0.1, 0, 0),
    "CRANE_UP": (-3, 0, 0, 0.002, 0, -0.003, 0, 0, 0), "CRANE_DOWN": (3, 0, 0, 0.002, 0, 0.003, 0, 0, 0),
    "TRACKING_SHOT": (0, -4, 0, 0.002, 0.004, 0, 0, 0, 0),
    "REVEAL_SHOT": (-3, 0, 0, 0, 0, -0.008, 0, 0, -0.05),
    "ESTABLISHING_SHOT": (0, 0, 0, 0.012, 0, 0, 0, 0, 0), "STATIC": (0, 0, 0, 0, 0, 0, 0, 0, 0),
    "DOLLY_IN_SLOW": (0, 0, 0, 0.005, 0, 0, 0, 0, 0), "DOLLY_IN_FAST": (0, 0, 0, 0.015, 0, 0, 0, 0, 0),
    "PAN_RIGHT_SLOW": (0, 3, 0, 0, 0, 0, 0, 0, 0), "PAN_LEFT_SLOW": (0, -3, 0, 0, 0, 0, 0, 0, 0),
    "TILT_UP_SLOW": (3, 0, 0, 0, 0, 0, 0, 0, 0), "TILT_DOWN_SLOW": (-3, 0, 0, 0, 0, 0, 0, 0, 0),
    "ZOOM_IN": (1, 0, 0, 0.006, 0, 0, 0, 0, 0), "HERO_SHOT": (2, 2, 0, 0.005, 0, 0, 0, 0, 0),
    "FLOAT_UP": (-2, 0, 0, 0, 0, -0.002, 0, 0, 0), "FLOAT_DOWN": (2, 0, 0, 0, 0, 0.002, 0, 0, 0),
    "CIRCLE_RIGHT": (0, 0, 0, 0.002, 0.002, 0, 0, 0.1, 0), "CIRCLE_LEFT": (0, 0, 0, 0.002, -0.002, 0, 0, -0.1, 0),
}


def _ref_combine(*names):
    out = dict.fromkeys(KEYS, 0.0)
    for n in names:
        for k, v in zip(KEYS, REF_TABLE[n.strip()]):
            out[k] += v
    return out


def _ref_smooth(poses, window):
    if window % 2 == 0:
        window += 1
    if window > len(poses):
        window = len(poses) if len(poses) % 2 == 1 else len(poses) - 1
    pos = signal.savgol_filter(poses[:, :3, 3], window, 3, axis=0)
    quats = np.array([R.from_matrix(p[:3, :3]).as_quat() for p in poses])
    quats = signal.savgol_filter(quats, window, 3, axis=0)
    quats = quats / np.linalg.norm(quats, axis=1, keepdims=True)
    out = np.zeros_like(poses)
    for i in range(len(poses)):
        out[i, :3, :3] = R.from_quat(quats[i]).as_matrix()
        out[i, :3, 3] = pos[i]
        out[i, 3, 3] = 1.0
    return out


def _ref_segment(n, c, start_pose, start_euler):
    poses = np.zeros((n, 4, 4))
    p0 = start_pose[:3, 3].copy()
    r0, pi0, y0 = start_euler
    tr, tp, ty = r0 + c["roll"], pi0 + c["pitch"], y0 + c["yaw"]
    for i in range(n):
        t = i / max(n - 1, 1)
        ts = t * t * (3.0 - 2.0 * t)
        cr = r0 + (tr - r0) * ts + c["angular_velocity_roll"] * i
        cp = pi0 + (tp - pi0) * ts + c["angular_velocity_pitch"] * i
        cy = y0 + (ty - y0) * ts + c["angular_velocity_yaw"] * i
        rot = R.from_euler("zyx", [cy, cp, cr], degrees=True).as_matrix()
        disp = np.array([c["move_right"] * i, c["move_up"] * i, c["move_forward"] * i])
        poses[i] = np.eye(4)
        poses[i, :3, :3] = rot
        poses[i, :3, 3] = p0 + rot @ disp
    return poses, (cr, cp, cy)


def _ref_generate(configs, num_frames, window=7):
    per, rem = divmod(num_frames, len(configs))
    cur, euler, out = np.eye(4), (0.0, 0.0, 0.0), []
    for k, c in enumerate(configs):
        seg, euler = _ref_segment(per + (1 if k < rem else 0), c, cur, euler)
        out.append(seg)
        cur = seg[-1].copy()
    return _ref_smooth(np.concatenate(out, 0), window)


def _ref_momentum(poses, window):
    N = len(poses)
    lin, ang = [], []
    for i in range(N - window, N - 1):
        Rc, tc, Rn, tn = poses[i, :3, :3], poses[i, :3, 3], poses[i + 1, :3, :3], poses[i + 1, :3, 3]
        lin.append(Rc.T @ (tn - tc))
        ang.append(R.from_matrix(Rc.T @ Rn).as_rotvec())
    return np.mean(lin, 0), np.mean(ang, 0)


def _ref_slowdown(poses, n_new, decay=0.95):
    N = len(poses)
    v, w = _ref_momentum(poses, min(10, N - 1))
    Rc, tc, new = poses[-1, :3, :3], poses[-1, :3, 3], []
    for k in range(n_new):
        f = max(decay ** k, 0.1)
        tc = tc + Rc @ (v * f)
        Rc = (R.from_matrix(Rc) * R.from_rotvec(w * f)).as_matrix()
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = Rc, tc
        new.append(m)
    return np.concatenate([poses, np.stack(new)], 0)


def _ref_stretch(poses, Ks, target):
    N = len(poses)
    quats = np.array([R.from_matrix(poses[i, :3, :3]).as_quat() for i in range(N)])
    t0, t1 = np.linspace(0, 1, N), np.linspace(0, 1, target)
    pos = interpolate.interp1d(t0, poses[:, :3, 3], axis=0, kind="cubic")(t1)
    q = interpolate.interp1d(t0, quats, axis=0, kind="linear")(t1)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    out = np.zeros((target, 4, 4))
    for i in range(target):
        out[i, :3, :3] = R.from_quat(q[i]).as_matrix()
        out[i, :3, 3] = pos[i]
        out[i, 3, 3] = 1.0
    return out, interpolate.interp1d(t0, Ks, axis=0, kind="linear")(t1)


def _unit_start(W=96, H=64):
    return Cameras(torch.eye(4)[None], intrinsics_from_fov(60.0, W, H), W, H)


# ----------------------------------------------------------------------------- presets


def test_the_table_is_the_official_one():
    names = {n.lower().replace("orbit_donw", "orbit_down") for n in REF_TABLE}
    assert set(op.OFFICIAL_PRESETS) == names and len(names) == 34
    for n, amounts in REF_TABLE.items():
        mv = op.official_moves(f"official:{n}")[0]  # the official spelling (upper case, ORBIT_DONW) is accepted
        assert tuple(getattr(mv, k) for k in KEYS) == tuple(float(a) for a in amounts), n


@pytest.mark.parametrize("name", sorted(REF_TABLE))
def test_every_official_preset_equals_the_transcription(name):
    ref = _ref_generate([_ref_combine(name)], 81)
    ours = op.official_poses(op.official_moves(f"official:{name.lower()}"), 81)
    assert ours.dtype == torch.float64 and ours.shape == (81, 4, 4)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-9, rtol=0)


def test_additive_plus_and_segments_equal_the_transcription():
    # "A + B" adds the amounts (combine_movements); ';' is the official chunk list, 161 frames split 81/80
    spec = "official:dolly_in + official:pan_right ; official:truck_left+official:orbit_up ; official:reveal_shot"
    configs = [_ref_combine("DOLLY_IN", "PAN_RIGHT"), _ref_combine("TRUCK_LEFT", "ORBIT_UP"),
               _ref_combine("REVEAL_SHOT")]
    np.testing.assert_allclose(op.official_poses(op.official_moves(spec), 161).numpy(),
                               _ref_generate(configs, 161), atol=1e-9, rtol=0)
    # short segments (2, 2, 1, 1, 1 frames: a 1-frame segment keeps its start angles, as there)
    names = ["PAN_RIGHT", "TILT_UP", "ROLL_LEFT", "CRANE_UP", "CIRCLE_LEFT"]
    np.testing.assert_allclose(
        op.official_poses(op.official_moves(";".join("official:" + n for n in names)), 7).numpy(),
        _ref_generate([_ref_combine(n) for n in names], 7), atol=1e-9, rtol=0)
    # strength scales every amount of a part
    m = op.official_moves("official:dolly_in@0.5 + official:pan_left@2")[0]
    assert (m.move_forward, m.pitch) == (0.004, -10.0)


def test_smoothing_and_savgol_equal_scipy():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(23, 4, generator=g, dtype=torch.float64).cumsum(0)
    for window, order in ((7, 3), (5, 2), (9, 3), (23, 3)):
        np.testing.assert_allclose(op.savgol(x, window, order).numpy(),
                                   signal.savgol_filter(x.numpy(), window, order, axis=0), atol=1e-10, rtol=0)
    # a rough path (random turns of up to ~170 degrees, where scipy's quaternion signs flip) smooths the same
    rot = R.random(30, random_state=1).as_matrix()
    poses = np.tile(np.eye(4), (30, 1, 1))
    poses[:, :3, :3], poses[:, :3, 3] = rot, np.random.default_rng(2).normal(size=(30, 3))
    np.testing.assert_allclose(op.smooth_poses(torch.from_numpy(poses)).numpy(), _ref_smooth(poses, 7),
                               atol=1e-9, rtol=0)
    # the window as the official code adjusts it: even -> odd, at most the (odd) frame count
    assert [op.official_window(n) for n in (4, 5, 6, 7, 30)] == [0, 5, 5, 7, 7]
    assert op.official_window(30, 6) == 7
    np.testing.assert_allclose(op.smooth_poses(torch.from_numpy(poses[:6])).numpy(), _ref_smooth(poses[:6], 7),
                               atol=1e-9, rtol=0)


def test_quaternions_take_scipys_signs():
    rot = R.random(200, random_state=3)
    m = rot.as_matrix()
    np.testing.assert_allclose(op.quat_xyzw(torch.from_numpy(m)).numpy(), R.from_matrix(m).as_quat(), atol=1e-12)
    m32 = m.astype(np.float32).astype(np.float64)  # not orthonormal to 1e-12: scipy projects it first
    np.testing.assert_allclose(op.quat_xyzw(torch.from_numpy(m32)).numpy(), R.from_matrix(m32).as_quat(), atol=1e-12)
    e = np.random.default_rng(4).uniform(-180, 180, size=(50, 3))
    np.testing.assert_allclose(op.euler_matrix(*torch.from_numpy(e).T).numpy(),
                               R.from_euler("zyx", e[:, ::-1], degrees=True).as_matrix(), atol=1e-12)


def test_make_trajectory_anchors_the_official_path_with_the_official_focal():
    start = _unit_start()
    cams = make_trajectory("official:dolly_in + official:pan_right", 49, start, scene_scale=3.0)
    ref = _ref_generate([_ref_combine("DOLLY_IN", "PAN_RIGHT")], 49)
    rel = np.linalg.inv(ref[0]) @ ref  # the official loop's get_relative_poses(poses, 0)
    np.testing.assert_allclose(cams.c2w.double().numpy(), rel, atol=1e-9, rtol=0)
    torch.testing.assert_close(cams.Ks[0].double(), torch.tensor(
        [[1.2 * 96, 0, 48], [0, 1.2 * 96, 32], [0, 0, 1.0]], dtype=torch.float64))
    # scene_scale plays no part (raw units); the pack's '+' is unchanged beside it
    again = make_trajectory("official:dolly_in + official:pan_right", 49, start, scene_scale=0.1)
    torch.testing.assert_close(again.viewmats, cams.viewmats)
    seq = make_trajectory("dolly_in + pan_right", 49, start, scene_scale=3.0)
    assert float(seq.centers[24, 2]) == pytest.approx(3.0, rel=1e-6)  # the pack's: dolly first, 1 median depth
    assert float(cams.centers[48, 2]) == pytest.approx(48 * 0.008, rel=0.05)
    assert part_end_frames("official:dolly_in ; official:pan_left", 49) == [24, 48]
    assert parse_trajectory("official:dolly_in + official:pan_left")[0] == "official"


def test_official_specs_refuse_bad_input():
    start = _unit_start()
    cases = {
        "official:dolly_in + pan_left": "official paths take official presets only; write 'official:pan_left'",
        "official:dolly": "unknown official camera preset 'official:dolly'",
        "official:dolly_in * official:pan_left": "official presets add with '+'",
        "official:dolly_in:2": "no ':' weights",
        "official:dolly_in@x": "must be a finite number",
        "dolly_in + official:pan_left": "official paths take official presets only",
    }
    for spec, msg in cases.items():
        with pytest.raises(ValueError, match=msg.replace("*", r"\*").replace("+", r"\+")):
            make_trajectory(spec, 9, start)
    with pytest.raises(ValueError, match="3 official path segments need at least 3 frames, got 2"):
        make_trajectory("official:static;official:static;official:static", 2, start)


# ----------------------------------------------------------------------------- slowdown and speed


def _rough_path(n=40):
    poses = op.official_poses(op.official_moves("official:circle_right + official:tilt_up ; official:tracking_shot"), n)
    return Cameras.from_c2w(poses, intrinsics_from_fov(50.0, 96, 64, n), 96, 64)


def test_slowdown_equals_the_transcription():
    cams = _rough_path()
    out = extend_to(cams, 40 + 30, "slowdown")
    ref = _ref_slowdown(cams.c2w.double().numpy(), 30)
    np.testing.assert_allclose(out.c2w.double().numpy(), ref, atol=1e-9, rtol=0)
    torch.testing.assert_close(out.Ks[-1].double(), cams.Ks[-1].double())
    S = op.slowdown_progress(60)
    assert float(S[1]) == 1.0 and float(S[-1] - S[-2]) == pytest.approx(0.1)  # never below 10 % of the step


@pytest.mark.parametrize("speed", [0.25, 0.5, 1.5, 2.0, 4.0, 0.3])
def test_speed_multiplier_equals_the_transcription(speed):
    cams = _rough_path()
    Ks = cams.Ks.double().numpy()
    Ks[:, 0, 0] += np.linspace(0, 5, 40)  # intrinsics are interpolated too
    cams = Cameras(cams.viewmats, torch.from_numpy(Ks), 96, 64)
    out = op.change_speed(cams, speed)
    ref, ref_K = _ref_stretch(cams.c2w.double().numpy(), Ks, int(40 / speed))
    assert len(out) == int(40 / speed)
    np.testing.assert_allclose(out.c2w.double().numpy(), ref, atol=1e-9, rtol=0)
    np.testing.assert_allclose(out.Ks.double().numpy(), ref_K, atol=1e-9, rtol=0)


def test_cubic_spline_is_scipys_not_a_knot():
    x = np.sort(np.random.default_rng(5).uniform(0, 3, 9))
    y = np.random.default_rng(6).normal(size=(9, 2))
    at = np.linspace(x[0], x[-1], 31)
    for n in (4, 5, 9):
        np.testing.assert_allclose(op.cubic_spline(x[:n], y[:n], np.linspace(x[0], x[n - 1], 17)),
                                   interpolate.interp1d(x[:n], y[:n], axis=0, kind="cubic")(
                                       np.linspace(x[0], x[n - 1], 17)), atol=1e-10)
    np.testing.assert_allclose(op.cubic_spline(x, y, at), interpolate.CubicSpline(x, y, bc_type="not-a-knot")(at),
                               atol=1e-10)


def test_speed_refuses_bad_input():
    cams = _rough_path(8)
    assert op.change_speed(cams, 1.0) is cams
    for bad, msg in ((0.0, "must be a positive number"), (math.inf, "must be a positive number"),
                     (100.0, "leaves no frame"), ("2", "must be a positive number")):
        with pytest.raises(ValueError, match=msg):
            op.change_speed(cams, bad)
    with pytest.raises(ValueError, match="at least 4 cameras"):
        op.change_speed(cams[:3], 0.5)


def test_limits_agree_with_the_pack_grammar():
    import worldwarp_core.trajectory as tr

    assert (op.MAX_FRAMES, op.MAX_SPEC_CHARS, op.MAX_PARTS, op.MAX_STRENGTH) == (
        tr.MAX_FRAMES, tr.MAX_SPEC_CHARS, tr.MAX_PARTS, tr.MAX_STRENGTH)
    with pytest.raises(ValueError, match="the limit is 16"):
        op.parse_official(" + ".join(["official:static"] * 17))


def test_generate_checks_an_official_spec_at_its_frame_count(tmp_path, capsys):
    from PIL import Image
    from test_cli import fake_models

    from worldwarp_core.cli import main

    Image.new("RGB", (48, 32)).save(tmp_path / "start.png")
    base = ["generate", "--image", str(tmp_path / "start.png"), "--frames", "49", "--models",
            fake_models(tmp_path / "models"), "--out", str(tmp_path / "out"), "--prompt", "a room", "--device", "cpu",
            "--geometry", "depth-anything-v2"]
    spec = ";".join(["official:static"] * 3)
    assert main(base + ["--trajectory", spec, "--path-frames", "2"]) == 2
    assert "3 official path segments need at least 3 frames, got 2" in capsys.readouterr().err
    assert main(base + ["--trajectory", "official:dolly_in + pan_left"]) == 2
    assert "write 'official:pan_left'" in capsys.readouterr().err


def test_every_extend_mode_list_is_the_same():
    from typing import get_args

    from nodes.specs import spec_by_id
    from worldwarp_core.cli import build_parser
    from worldwarp_core.pipeline import ExtendMode
    from worldwarp_core.trajectory import EXTEND_MODES

    assert "slowdown" in EXTEND_MODES and get_args(ExtendMode) == EXTEND_MODES
    specs = spec_by_id()
    for node, name in (("WorldWarpExtrapolateTrajectory", "mode"), ("WorldWarpChunkLoop", "extend_mode"),
                       ("WorldWarpLoopStart", "extend_mode")):
        assert next(i for i in specs[node].inputs if i.name == name).options == EXTEND_MODES
    gen = next(a for a in build_parser()._actions if a.dest == "command").choices["generate"]
    assert tuple(next(a for a in gen._actions if a.dest == "extend").choices) == EXTEND_MODES
