"""The evaluation protocol end to end on a tiny synthetic dataset with tiny models."""

import csv
import os

import torch

from worldwarp_core.eval.protocol import evaluate_folder, smallest_total
from worldwarp_core.geometry.monocular import DepthAnythingV2
from worldwarp_core.geometry.testing import tiny_depth_anything
from worldwarp_core.gscache import GSConfig
from worldwarp_core.models import tiny_model
from worldwarp_core.outputs import save_png
from worldwarp_core.pipeline import PipelineSettings, WorldWarpPipeline
from worldwarp_core.synthetic import default_scene
from worldwarp_core.trajectory import make_trajectory, median_depth


def test_smallest_total():
    assert smallest_total(200, 49, 5) == 225 and smallest_total(49, 49, 5) == 49 and smallest_total(10, 9, 1) == 17


def test_protocol_runs_end_to_end_and_writes_the_table(tmp_path):
    scene = default_scene()
    start = scene.default_camera(48, 32)
    _, d0 = scene.render(start)
    data = tmp_path / "clips"
    for i, spec in enumerate(("dolly_in@0.3", "truck_right@0.2")):
        cams = make_trajectory(spec, 12, start, scene_scale=median_depth(d0))
        rgb, _ = scene.render(cams)
        (data / f"clip{i}" / "frames").mkdir(parents=True)
        for k in range(12):
            save_png(str(data / f"clip{i}" / "frames" / f"{k:05d}.png"), rgb[k])
        cams.to_re10k(str(data / f"clip{i}" / "cameras.txt"))
    settings = PipelineSettings(chunk_frames=9, context_frames=1, steps=2, guidance_scale=1.0,
                                gs=GSConfig(iterations=2, stride=4))
    pipe = WorldWarpPipeline(tiny_model(), DepthAnythingV2(model=tiny_depth_anything(), input_size=56), None, settings)

    def oracle_poses(frames):  # a stand-in pose estimator that always answers clip0's true path
        from worldwarp_core.cameras import Cameras

        c2w = Cameras.from_re10k(str(data / "clip0" / "cameras.txt"), 48, 32).c2w[: frames.shape[0]].clone()
        return c2w

    means = evaluate_folder(pipe, str(data), str(tmp_path / "eval"), short=5, long=12, prompt="a room",
                            pose_estimator=oracle_poses)
    for key in ("psnr@5", "psnr@12", "ssim@12", "R_dist@12", "t_dist@12"):
        assert key in means and torch.isfinite(torch.tensor(means[key]))
    rows = list(csv.reader(open(tmp_path / "eval" / "results.csv")))
    assert rows[0][0] == "clip" and [r[0] for r in rows[1:]] == ["clip0", "clip1", "mean"]
    assert os.path.isfile(tmp_path / "eval" / "results.md") and os.path.isfile(tmp_path / "eval" / "psnr_vs_frame.png")
    table = {r["clip"]: r for r in csv.DictReader(open(tmp_path / "eval" / "results.csv"))}
    assert float(table["clip0"]["R_dist@12"]) < 1e-6 and float(table["clip0"]["t_dist@12"]) < 1e-6
    assert float(table["clip1"]["t_dist@12"]) > 0.1  # clip1 moved sideways, not forward
