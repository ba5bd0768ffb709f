"""ST-Diff training: data prep (one-to-all warp + latent cache), a tiny model overfits, resume, loader."""

import os

import pytest
import torch

from worldwarp_core.synthetic import default_scene
from worldwarp_core.train.data import Clip, LatentDataset, load_clip, pick_source, prepare_clip, save_clip
from worldwarp_core.train.loop import TrainConfig, train
from worldwarp_core.train.noise import NoiseConfig
from worldwarp_core.trajectory import make_trajectory, median_depth


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from worldwarp_core.models import tiny_model

    root = tmp_path_factory.mktemp("clips")
    scene = default_scene()
    start = scene.default_camera(48, 32)
    _, d0 = scene.render(start)
    cams = make_trajectory("dolly_in@0.2 * pan_left@0.3", 9, start, scene_scale=median_depth(d0))
    rgb, depth = scene.render(cams)
    save_clip(str(root / "clip_0000"), Clip(rgb, depth, cams, "a small textured room"))
    back = load_clip(str(root / "clip_0000"))
    assert torch.equal(back.frames, (rgb * 255).round() / 255) and torch.allclose(back.depths, depth)
    sample = prepare_clip(str(root / "clip_0000"), tiny_model(seed=0), sources=3)
    assert sample["z_gt"].shape == (16, 3, 4, 6) and sample["z_warp"].shape == (3, 16, 3, 4, 6)
    assert sample["mask_latent"].shape == (3, 3, 4, 6) and sample["mask_token"].shape == (3, 3, 2, 3)
    assert sample["source_index"].tolist() == [0, 4, 8]  # each warps to all frames (eq. 2-3)
    # each source's own frame is (mostly) valid and the warps differ
    assert not torch.equal(sample["z_warp"][0], sample["z_warp"][2])
    assert float(sample["mask_latent"].mean()) > 0.1
    return str(root)


def _config(data_dir, out, **kw):
    base = dict(data_dir=data_dir, output_dir=out, model="tiny", lr=2e-3, warmup_steps=1, max_steps=30,
                batch_size=1, mixed_precision="no", gradient_checkpointing=False, save_every=10, log_every=5,
                noise=NoiseConfig(context_prob=0.0))
    base.update(kw)
    return TrainConfig(**base)


def test_tiny_model_overfits_one_clip_and_checkpoint_loads_in_the_sampler(data_dir, tmp_path):
    """A small random transformer (saved as a single file, its config in the metadata) fits one clip.

    Measured (2-core CPU): mean loss of the first 5 steps 1.25, of the last 5 after 60 steps ~0.5.
    """
    from diffusers import WanTransformer3DModel

    from worldwarp_core.models import TINY_TRANSFORMER_CONFIG, save_transformer_file

    torch.manual_seed(0)
    wide = WanTransformer3DModel.from_config(dict(TINY_TRANSFORMER_CONFIG, num_attention_heads=4,
                                                  attention_head_dim=16, ffn_dim=256))
    start = str(tmp_path / "start.safetensors")
    save_transformer_file(wide, start, "diffusers", embed_config=True)
    losses = train(_config(data_dir, str(tmp_path / "run"), model=start, lr=5e-3, max_steps=60, save_every=30))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first, (first, last)
    ckpt = tmp_path / "run" / "checkpoint-60" / "transformer.safetensors"
    assert ckpt.is_file() and (tmp_path / "run" / "loss.csv").is_file()
    from worldwarp_core.models import load_transformer
    from worldwarp_core.sampler import SamplerConfig, st_diff_sample

    tr = load_transformer(str(ckpt))
    sample = pick_source(LatentDataset(data_dir)[0])
    out = st_diff_sample(tr, sample["z_warp"], sample["mask_latent"], 1, sample["prompt_embeds"][None],
                         torch.zeros_like(sample["prompt_embeds"][None]), SamplerConfig(steps=3, guidance_scale=2.0))
    assert torch.isfinite(out.latents).all() and torch.equal(out.latents[:, 0], sample["z_warp"][:, 0])


def test_resume_continues_the_same_loss_curve(data_dir, tmp_path):
    full = train(_config(data_dir, str(tmp_path / "a"), max_steps=8, save_every=4))
    part = train(_config(data_dir, str(tmp_path / "b"), max_steps=4, save_every=4))
    rest = train(_config(data_dir, str(tmp_path / "b"), max_steps=8, save_every=4))
    assert len(part) == 4 and len(rest) == 4
    torch.testing.assert_close(torch.tensor(part + rest), torch.tensor(full), rtol=1e-5, atol=1e-7)


def test_training_config_and_data_errors(tmp_path):
    with pytest.raises(ValueError, match="mixed_precision must be 'no', 'fp16' or 'bf16'"):
        TrainConfig(data_dir="x", output_dir="y", mixed_precision="fp8")
    with pytest.raises(ValueError, match="holds no clip folders"):
        LatentDataset(str(tmp_path))
    (tmp_path / "c" / "frames").mkdir(parents=True)
    with pytest.raises(ValueError, match="frames holds no .png/.jpg frames"):
        load_clip(str(tmp_path / "c"))
    cfg = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "worldwarp_core", "train", "configs", "train_paper.json")
    paper = TrainConfig.from_json(cfg)
    assert (paper.lr, paper.warmup_steps, paper.max_steps, paper.batch_size) == (5e-5, 1000, 10000, 8)


def test_build_clip_from_video_with_a_geometry_backend(tmp_path):
    """A video (written with PyAV) becomes a training clip: frames, depth and cameras from the adapter."""
    from worldwarp_core.geometry.testing import save_tiny_depth_anything
    from worldwarp_core.outputs import write_mp4
    from worldwarp_core.train.data import build_clip_from_video

    scene = default_scene()
    start = scene.default_camera(64, 48)
    cams = make_trajectory("dolly_in@0.2", 12, start, scene_scale=3.0)
    rgb, _ = scene.render(cams)
    video = write_mp4(str(tmp_path / "in.mp4"), rgb, fps=8)
    model = save_tiny_depth_anything(str(tmp_path / "da"))
    clip = build_clip_from_video(video, str(tmp_path / "clip"), "depth-anything-v2", model, frames=9, stride=1,
                                 width=48, height=32, prompt="a room")
    assert clip.frames.shape == (9, 32, 48, 3) and clip.depths.shape == (9, 32, 48) and len(clip.cameras) == 9
    again = load_clip(str(tmp_path / "clip"))
    assert again.prompt == "a room" and again.frames.shape == clip.frames.shape
    with pytest.raises(ValueError, match="a clip needs 4k\\+1 frames"):
        build_clip_from_video(video, str(tmp_path / "c2"), "depth-anything-v2", model, frames=8, width=48, height=32)


def test_each_step_draws_the_warp_source(data_dir, tmp_path, monkeypatch):
    import worldwarp_core.train.data as data

    drawn = []
    real = data.pick_source

    def spy(sample, generator=None):
        one = real(sample, generator)
        drawn.append(int(one["source_index"]))
        return one

    monkeypatch.setattr(data, "pick_source", spy)
    train(_config(data_dir, str(tmp_path / "run"), max_steps=12, save_every=12))
    assert len(drawn) == 12 and len(set(drawn)) >= 2, drawn
