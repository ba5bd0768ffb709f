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
