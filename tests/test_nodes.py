"""Node specs are consistent with their functions, and every node runs on tiny models (no ComfyUI)."""

import inspect
import json
import os

import pytest
import torch

from nodes import ops
from nodes.specs import CUSTOM_TYPES, SPECS
from worldwarp_core.geometry.testing import save_tiny_depth_anything
from worldwarp_core.models import save_tiny_comfy_files
from worldwarp_core.synthetic import default_scene

BASIC = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "IMAGE", "MASK", "CONDITIONING", "SPLAT", "LOAD3D_CAMERA",
         "MODEL", "VAE", "CLIP", "VIDEO"}


class _Bar:
    def __init__(self, total):
        self.total, self.values = total, []

    def update_absolute(self, value, total=None, preview=None):
        self.values.append(value)


class FakeEnv:
    """The services ComfyUI gives the nodes, on temporary folders."""

    def __init__(self, root):
        self.models = os.path.join(root, "models")
        self.output = os.path.join(root, "output")
        self.input = os.path.join(root, "input")
        for d in (self.models, self.output, self.input):
            os.makedirs(d, exist_ok=True)
        self.bars, self.interrupt_checks = [], 0

    def models_list(self, folder):
        base = os.path.join(self.models, folder)
        return sorted(os.listdir(base)) if os.path.isdir(base) else []

    def full_path(self, folder, name):
        p = os.path.join(self.models, folder, name)
        if not os.path.exists(p):
            raise ValueError(f"{name} not in {folder}")
        return p

    def output_path(self, relative, option="output_folder"):
        from worldwarp_core.inputs import path_inside

        return path_inside(self.output, relative, option)

    def output_dir(self):
        return self.output

    def save_target(self, prefix):
        """ComfyUI's counter: one more than the highest ``<name>_<n>_`` already in the folder."""
        from worldwarp_core.inputs import check_name

        check_name(prefix, "filename_prefix", "a file name under ComfyUI's output folder")
        folder, name = os.path.split(self.output_path(prefix, "filename_prefix"))
        os.makedirs(folder, exist_ok=True)
        taken = [int(f[len(name) + 1:].split("_")[0]) for f in os.listdir(folder)
                 if f.startswith(name + "_") and f[len(name) + 1:].split("_")[0].isdigit()]
        return folder, f"{name}_{max(taken, default=0) + 1:05}_"

    def input_dir(self):
        return self.input

    def device(self):
        return "cpu"

    def progress(self, total):
        self.bars.append(_Bar(total))
        return self.bars[-1]

    def check_interrupt(self):
        self.interrupt_checks += 1

    def latent_preview(self, x0):
        self.previews = getattr(self, "previews", 0) + 1
        return None

    def make_splat(self, fields):
        return fields


WIDGETS = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def test_the_node_factory_has_no_case_for_a_node_id():
    """Each node's ui and loop role are fields of its spec; the ComfyUI wrapper reads them and never
    a node id (nor does it do the loop's graph work: ``nodes/loop_graph.py`` does)."""
    import ast

    source = open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "nodes", "_v3.py")).read()
    strings = {n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not {s.node_id for s in SPECS} & strings
    assert "dp.get_node" not in source and "GraphBuilder" not in source
    by_id = {s.node_id: s for s in SPECS}
    assert by_id["WorldWarpPreviewSchedule"].ui == "images" and by_id["WorldWarpSaveSplat"].ui == "saved"
    assert {s.node_id: s.loop for s in SPECS if s.loop} == {"WorldWarpLoopStart": "start",
                                                             "WorldWarpLoopNext": "next", "WorldWarpLoopEnd": "end"}


def test_specs_match_functions_ids_unique_and_documented():
    ids = [s.node_id for s in SPECS]
    assert len(ids) == len(set(ids)) and all(i.startswith("WorldWarp") for i in ids)
    required = {"WorldWarpLoadModel", "WorldWarpLoadGeometryModel", "WorldWarpLoadCaptioner",
                "WorldWarpCameraTrajectory", "WorldWarpExtrapolateTrajectory", "WorldWarpEstimateGeometry",
                "WorldWarpBuildCache", "WorldWarpRenderHints", "WorldWarpDescribeScene", "WorldWarpSTDiffSampler",
                "WorldWarpChunkLoop", "WorldWarpSaveCameras", "WorldWarpSaveSplat", "WorldWarpPreviewSchedule"}
    assert required <= set(ids)
    for spec in SPECS:
        # keyword-only parameters are what the node wrapper adds (e.g. the loop's graph signature)
        params = {k: p for k, p in inspect.signature(spec.fn).parameters.items() if p.kind != p.KEYWORD_ONLY}
        names = [p for p in params if p != "env"]
        assert [i.name for i in spec.inputs] == names, spec.node_id
        for i in spec.inputs:
            assert i.tooltip and set(i.kind.split(",")) <= BASIC | set(CUSTOM_TYPES), (spec.node_id, i.name)
            default = params[i.name].default
            if i.optional and i.kind in WIDGETS:  # left out of a prompt (an older workflow): the spec's default
                assert default == i.default and default is not None, (spec.node_id, i.name)
            else:
                assert i.optional == (default is None), (spec.node_id, i.name)
            if i.kind == "COMBO" and not callable(i.options):
                assert i.default in i.options, (spec.node_id, i.name)
            if i.kind in ("INT", "FLOAT"):
                assert i.min <= i.default <= i.max, (spec.node_id, i.name)
        # the frontend lists required widgets before optional ones: the spec (and widgets_values) in that order
        widgets = [i.optional for i in spec.inputs if i.kind in WIDGETS]
        assert widgets == sorted(widgets), spec.node_id
        assert spec.ui in (None, "images", "saved") or callable(spec.ui), spec.node_id
        assert spec.loop in (None, "start", "next", "end"), spec.node_id
        assert spec.category.startswith("WorldWarp/") and spec.description
        assert all(o.kind in BASIC | set(CUSTOM_TYPES) for o in spec.outputs)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = FakeEnv(str(tmp_path_factory.mktemp("comfy")))
    save_tiny_comfy_files(e.models)
    save_tiny_depth_anything(os.path.join(e.models, "worldwarp", "tiny-depth-anything"))
    return e


def test_every_node_runs_on_tiny_models(env):
    (model,) = ops.load_model(env, "worldwarp_tiny_test.safetensors", "worldwarp_tiny_vae_test.safetensors",
                              "worldwarp_tiny_umt5_test.safetensors", "tiny-umt5-tokenizer", ops.NONE, "fp32", "none")
    (geo_model,) = ops.load_geometry_model(env, "depth-anything-v2", "tiny-depth-anything", 60.0)
    (captioner,) = ops.load_captioner_node(env, "fixed", ops.NONE, "a small room")
    scene = default_scene()
    rgb, _ = scene.render(scene.default_camera(48, 32))
    image = rgb[:1]
    geometry, preview = ops.estimate_geometry(env, geo_model, image)
    assert preview.shape == (1, 32, 48, 3)
    # known cameras are kept ('requested'); 'estimated' aligns the backend's own poses to them
    known = scene.default_camera(48, 32)
    kept, _ = ops.estimate_geometry(env, geo_model, image, "requested", known)
    assert torch.equal(kept.cameras.viewmats, known.viewmats)
    aligned, _ = ops.estimate_geometry(env, geo_model, image, "estimated", known)
    torch.testing.assert_close(aligned.cameras.c2w.float(), known.c2w.float(), atol=1e-5, rtol=0)
    (cams,) = ops.camera_trajectory(env, image, "dolly_in@0.2 + pan_left@0.3", 1.0, 9, 60.0, 0.0, "linear", "",
                                    geometry)
    assert len(cams) == 9
    (longer,) = ops.extrapolate_trajectory(env, cams, 17, "extrapolate", 20, 0.0)
    assert len(longer) == 17
    cache, splat = ops.build_cache_node(env, image, geometry, "3dgs", 2, 1.6e-3, 4, 0.5, 0)
    assert splat["positions"].shape[0] == 1 and env.bars[-1].values[-1] == 2
    hints, masks = ops.render_hints(env, cache, cams)
    assert hints.shape == (9, 32, 48, 3) and masks.shape == (9, 32, 48)
    prompt, no_conditioning = ops.describe_scene(env, captioner, image, "Van Gogh style")
    assert no_conditioning is None  # no CLIP connected
    assert prompt == "a small room, Van Gogh style"
    frames, schedule = ops.st_diff_sampler(env, model, hints, masks, prompt, "blurry", 1, 0.8, 2, 2.0, 0,
                                           "spatio-temporal", False, context=image)
    assert frames.shape == (9, 32, 48, 3) and schedule.ndim == 4 and schedule.shape[-1] == 3
    assert env.previews >= 1  # the sampler hands its x0 estimates to the preview
    cond = [[torch.randn(1, 7, 32), {}]]
    frames2, _ = ops.st_diff_sampler(env, model, hints, masks, "", "", 1, 0.8, 2, 2.0, 0, "spatial", True,
                                     context=image, conditioning=cond, negative_conditioning=cond)
    assert frames2.shape == frames.shape
    (pic,) = ops.preview_schedule(env, masks, 1, 0.8, 10, "temporal")
    assert pic.shape[0] == 1
    out_frames, out_cams = ops.chunk_loop(env, model, geo_model, image, cams, 17, "a room", "", 9, 1, 0.8, 2, 2.0,
                                          0, "spatio-temporal", "3dgs", 2, "extrapolate", False, "worldwarp/test",
                                          False, "requested", "auto", captioner)
    assert out_frames.shape == (17, 32, 48, 3) and len(out_cams) == 17
    assert os.path.isfile(os.path.join(env.output, "worldwarp", "test", "manifest.json"))
    with open(os.path.join(env.output, "worldwarp", "test", "manifest.json")) as f:
        vram = json.load(f)["vram"]  # no free-memory figure off CUDA: the fastest profile, said so
    assert vram["choice"] == "auto" and vram["profile"] == "high" and "no CUDA free-memory figure" in vram["reason"]
    assert env.interrupt_checks > 0
    saved = ops.save_cameras(env, out_cams, "worldwarp/cams")
    (txt,) = saved
    assert txt == os.path.join(env.output, "worldwarp", "cams_00001_.txt") and os.path.isfile(txt[:-4] + ".json")
    assert saved.ui_text == f"17 cameras: cams_00001_.txt + .json in {os.path.dirname(txt)}"
    (txt2,) = ops.save_cameras(env, out_cams, "worldwarp/cams")  # a second run never overwrites the first
    assert txt2.endswith("cams_00002_.txt") and os.path.isfile(txt)
    (ply,) = ops.save_splat(env, cache, "worldwarp/scene")
    assert ply == "worldwarp/scene_00001_.ply" and os.path.isfile(os.path.join(env.output, ply))


def test_node_errors_are_clear(env):
    with pytest.raises(ValueError, match="context has 2 frames but context_frames is 1"):
        ops.st_diff_sampler(env, None, torch.zeros(9, 32, 48, 3), torch.ones(9, 32, 48), "", "", 1, 0.8, 2, 1.0, 0,
                            "spatio-temporal", False, context=torch.zeros(2, 32, 48, 3))
    with pytest.raises(ValueError, match="camera_file: 'nope.txt' not found in ComfyUI's input folder"):
        ops.camera_trajectory(env, torch.zeros(1, 32, 48, 3), "dolly_in", 1.0, 9, 60.0, 0.0, "linear", "nope.txt")


def test_node_inputs_are_checked_before_anything_runs(env):
    """Every cheap input of the nodes is refused by name, with the nearest valid value, before a model
    runs or the output folder is made (the models passed are None: nothing may use them)."""
    from worldwarp_core.cameras import Cameras, intrinsics_from_fov

    img = torch.rand(1, 32, 48, 3)
    cams = Cameras(torch.eye(4).repeat(17, 1, 1), intrinsics_from_fov(60.0, 48, 32, 17), 48, 32)

    def loop(image=img, frames=17, cfg=2.0, seed=0, folder="worldwarp/never"):
        return ops.chunk_loop(env, None, None, image, cams, frames, "a room", "", 9, 1, 0.8, 2, cfg, seed,
                              "spatio-temporal", "3dgs", 2, "extrapolate", False, folder, False)

    cases = [
        (lambda: loop(image=torch.rand(2, 32, 48, 3)), r"image holds 2 images; this node starts from one"),
        (lambda: loop(image=img * 255), r"image values must be in 0..1, got .*; it looks like 0..255: divide by 255"),
        (lambda: loop(image=torch.rand(1, 32, 50, 3)), r"image is 50x32: width and height must be multiples of 16; "
                                                       r"resize or crop it to 48x32"),
        (lambda: loop(frames=20), r"20 frames cannot be chunked into 9-frame chunks .* use 17 or 25"),
        (lambda: loop(cfg=float("nan")), r"guidance_scale \(cfg\) must be a finite number >= 1, got nan"),
        (lambda: loop(seed=2**40), r"seed must be in 0..2147483647, got 1099511627776; use 2147483647"),
        (lambda: loop(folder="  "), r"output_folder is empty"),
        (lambda: ops.st_diff_sampler(env, None, torch.rand(10, 32, 48, 3), torch.ones(10, 32, 48), "", "", 1, 0.8, 2,
                                     2.0, 0, "spatio-temporal", False), r"hints hold 10 frames; .* use 9 or 13"),
        (lambda: ops.st_diff_sampler(env, None, torch.rand(9, 32, 48, 3), torch.ones(9, 32, 40), "", "", 1, 0.8, 2,
                                     2.0, 0, "spatio-temporal", False), r"masks must be \[F, H, W\] = \[9, 32, 48\]"),
        (lambda: ops.camera_trajectory(env, img, "dolly_in", 1.0, 0, 60.0, 0.0, "linear", ""),
         r"frames must be in 1..10000, got 0; use 1"),
        (lambda: ops.load_geometry_model(env, "depth-anything-v2", "tiny-depth-anything", 0.0),
         r"fov_degrees must be a finite number > 0 and < 180, got 0.0; use e.g. 60"),
    ]
    for run, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            run()
    assert not os.path.exists(os.path.join(env.output, "worldwarp", "never"))


def test_camera_info_uses_core_splat_convention(env):
    """camera_info is in a three.js world (Y up, looking down local -Z), related to the splat's (= our)
    coordinates by (x, y, z) -> (x, -y, -z), as core Render Splat reads it. Checked end to end against
    core Render Splat in the session that wrote it: 23.0 dB between its render and ours."""
    import math

    from worldwarp_core.cameras import Cameras, intrinsics_from_fov, look_at
    from worldwarp_core.trajectory import quat_to_matrix

    eye = torch.tensor([[1.0, -0.5, 0.2]], dtype=torch.float64)
    cams = Cameras(look_at(eye, torch.tensor([[0.0, 0.0, 4.0]], dtype=torch.float64)),
                   intrinsics_from_fov(60.0, 64, 48).double(), 64, 48)
    (info,) = ops.cameras_to_camera_info(env, cams, 0)
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    q = info["quaternion"]
    R = quat_to_matrix(torch.tensor([q["w"], q["x"], q["y"], q["z"]], dtype=torch.float64))
    torch.testing.assert_close(flip @ -R[:, 2], cams.c2w[0, :3, 2])  # view direction
    torch.testing.assert_close(flip @ -R[:, 1], cams.c2w[0, :3, 1])  # image down
    torch.testing.assert_close(flip @ R[:, 0], cams.c2w[0, :3, 0])  # image right
    pos = torch.tensor([info["position"][k] for k in "xyz"], dtype=torch.float64)
    torch.testing.assert_close(flip @ pos, eye[0])
    assert info["fov"] == pytest.approx(math.degrees(2 * math.atan(24 / float(cams.Ks[0, 1, 1]))))
    with pytest.raises(ValueError, match="frame 3 is outside the path's 1 cameras"):
        ops.cameras_to_camera_info(env, cams, 3)
