"""History poses: 'auto' is the paper's estimated (Sim(3)-aligned) poses where the backend estimates them."""

import pytest

from worldwarp_core.geometry import POSE_SOURCES, resolve_pose_source
from worldwarp_core.geometry.external import DepthAnything3Estimator
from worldwarp_core.geometry.monocular import DepthAnythingV2, DepthPro
from worldwarp_core.geometry.ttt3r import TTT3REstimator
from worldwarp_core.pipeline import PipelineSettings


def test_auto_resolves_by_what_the_backend_estimates():
    assert resolve_pose_source("auto", TTT3REstimator) == "estimated"
    assert resolve_pose_source("auto", DepthAnything3Estimator) == "estimated"
    assert resolve_pose_source("auto", DepthAnythingV2) == "requested"
    assert resolve_pose_source("auto", DepthPro) == "requested"
    assert resolve_pose_source("auto", None) == "requested"  # start depth given, no backend
    for explicit in ("estimated", "requested"):
        assert resolve_pose_source(explicit, TTT3REstimator) == explicit
        assert resolve_pose_source(explicit, DepthPro) == explicit
    assert POSE_SOURCES[0] == "auto"
    with pytest.raises(ValueError, match="pose_source must be one of"):
        resolve_pose_source("guessed", None)


def test_settings_default_to_auto_official_rule_and_shift_5():
    s = PipelineSettings()
    assert (s.pose_source, s.mask_rule, s.shift, s.guidance_scale, s.strength) == ("auto", "official", 5.0, 5.0, 0.8)
    with pytest.raises(ValueError, match="unknown mask rule 'loose'"):
        PipelineSettings(mask_rule="loose")
    with pytest.raises(ValueError, match="shift must be positive"):
        PipelineSettings(shift=0.0)
    with pytest.raises(ValueError, match="pose_source must be one of"):
        PipelineSettings(pose_source="guessed")


def test_cli_and_nodes_default_to_auto():
    from nodes.specs import spec_by_id
    from worldwarp_core.cli import build_parser

    args = build_parser().parse_args(["generate", "--image", "img.png", "--models", "m", "--out", "o", "--trajectory", "x",
                                      "--frames", "49"])
    assert (args.pose_source, args.mask_rule, args.shift) == ("auto", "official", 5.0)
    specs = spec_by_id()
    for node_id in ("WorldWarpChunkLoop", "WorldWarpEstimateGeometry"):
        default = {i.name: i.default for i in specs[node_id].inputs}["pose_source"]
        assert default == "auto", node_id
    for node_id in ("WorldWarpChunkLoop", "WorldWarpSTDiffSampler"):
        inputs = {i.name: i.default for i in specs[node_id].inputs}
        assert inputs["mask_rule"] == "official" and inputs["shift"] == 5.0, node_id


def _hint_error(intrinsics: str) -> float:
    """A geometry stand-in with exact depth and poses but a focal 1.3x too long (as a backend's focal
    estimate can be): the history frame warped to the next camera of the path, against the true view."""
    import torch

    from worldwarp_core.cameras import Cameras, intrinsics_from_fov, look_at
    from worldwarp_core.geometry import GeometryResult, align_poses
    from worldwarp_core.synthetic import default_scene
    from worldwarp_core.warp import forward_warp, unproject

    scene, (w, h) = default_scene(), (64, 48)
    eyes = torch.tensor([[0.0, 0.0, 0.0], [0.25, 0.0, 0.4]])
    path = Cameras(look_at(eyes, eyes + torch.tensor([0.0, 0.0, 1.0])), intrinsics_from_fov(60.0, w, h, 2), w, h)
    images, depth = scene.render(path)
    wrong = path.Ks.clone()
    wrong[:, :2, :2] *= 1.3
    estimate = GeometryResult(depth[:1], torch.ones_like(depth[:1]),
                              Cameras(path.viewmats[:1], wrong[:1], w, h))
    cams, d, _ = align_poses(estimate, path[:1], "estimated", intrinsics)
    hints = forward_warp(unproject(images[:1], d, cams), path[1:])
    m = hints.masks[0]
    return float((hints.images[0][m] - images[1][m]).abs().mean())


def test_a_wrong_focal_estimate_no_longer_zooms_the_hints():
    requested, estimated = _hint_error("requested"), _hint_error("estimated")
    assert requested < 0.5 * estimated, (requested, estimated)
    with pytest.raises(ValueError, match="intrinsics must be one of"):
        from worldwarp_core.geometry import align_poses

        align_poses(None, None, "estimated", "guessed")
