"""The official 3DGS cache init (``GSConfig.init`` "official") and premultiplied hints.

The official code (``GS3DWarper._initialize_splats_from_depth``, ``src/ttt3r/ttt3r.py`` of
``qbhan/WorldWarp``) keeps at most 50 000 random pixels per frame with depth > 0.8, merges clouds of
over a million points on a voxel grid, sizes each Gaussian by simple-knn's ``distCUDA2`` (the mean
squared distance to the 3 nearest other points, clamped at 1e-7) and renders hints composited over
black. Checked here: the exact nearest-neighbour scales against brute force, the draw's counts,
depth cut and determinism, the voxel merge, premultiplied = unpremultiplied x alpha, the errors, and
that the default init is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from nodes import ops
from worldwarp_core.cameras import Cameras
from worldwarp_core.gscache import GeometryCache, GSConfig, build_cache, init_gaussians, knn_mean_sq_dist
from worldwarp_core.gscache.gaussians import (
    KNN_MIN_SQ_DIST,
    _morton_bound,
    official_init_mask,
    voxel_merge,
)
from worldwarp_core.synthetic import default_scene
from worldwarp_core.warp import unproject

W, H = 32, 32


def _brute_knn(p: torch.Tensor, k: int = 3) -> torch.Tensor:
    d2 = torch.cdist(p, p, compute_mode="donot_use_mm_for_euclid_dist").square()
    d2.fill_diagonal_(float("inf"))
    return d2.topk(min(k, p.shape[0] - 1), dim=1, largest=False).values.mean(dim=1)


def _history(frames: int = 2):
    scene = default_scene()
    base = scene.default_camera(W, H)
    c2w = base.c2w.repeat(frames, 1, 1)
    c2w[:, 0, 3] += torch.linspace(0.0, 0.3, frames, dtype=c2w.dtype)
    cams = Cameras.from_c2w(c2w, base.Ks.repeat(frames, 1, 1), W, H)
    rgb, depth = scene.render(cams)
    return rgb.float(), depth.float(), cams


# ----------------------------------------------------------------------------- nearest neighbours


@pytest.mark.parametrize("n", [2, 3, 4, 57, 2500])
def test_knn_equals_brute_force(n):
    g = torch.Generator().manual_seed(n)
    p = torch.randn(n, 3, generator=g, dtype=torch.float64)
    if n > 100:  # a dense cluster inside a sparse cloud: bounds of very different sizes
        p[: n // 2] *= 0.01
    got = knn_mean_sq_dist(p)
    assert torch.allclose(got, _brute_knn(p), rtol=1e-12, atol=0)


def test_knn_on_a_depth_cloud_with_duplicates_and_small_blocks():
    rgb, depth, cams = _history(2)
    p = unproject(rgb, depth, cams).points.double()
    p = torch.cat([p, p[:40]])  # exact duplicates: their nearest distance is 0
    got = knn_mean_sq_dist(p, block=64, chunk=100)  # many blocks and column chunks
    assert torch.equal(got, _brute_knn(p))
    assert int((got[:40] < _brute_knn(p)[:40] + 1).sum()) == 40


def test_morton_bound_is_an_upper_bound():
    p = torch.rand(3000, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    d2 = torch.cdist(p, p).square()
    d2.fill_diagonal_(float("inf"))
    kth = d2.topk(3, dim=1, largest=False).values[:, -1]
    bound = _morton_bound(p, 3)
    assert bool((bound >= kth * (1 - 1e-12)).all())
    assert float((bound / kth).median()) < 1.5  # tight for most points, or the boxes grow


def test_knn_bad_input():
    with pytest.raises(ValueError, match=r"points must be \[N, 3\], got \[4, 2\]"):
        knn_mean_sq_dist(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="nearest-neighbour scales need at least 2 points, got 1"):
        knn_mean_sq_dist(torch.zeros(1, 3))


# ----------------------------------------------------------------------------- the draw


def test_official_mask_counts_depth_cut_and_determinism():
    g = torch.Generator().manual_seed(0)
    depths = torch.rand(3, H, W, generator=g) * 2  # 0..2: about 60 % past 0.8
    keep = torch.ones_like(depths, dtype=torch.bool)
    keep[2] = False
    keep[2, :2] = True  # frame 2: only 64 pixels may be kept
    cfg = GSConfig(init="official", init_max_points=100, init_min_depth=0.8, seed=3)
    mask = official_init_mask(depths, cfg, keep)
    cand = keep & (depths > 0.8)
    assert bool((mask <= cand).all())  # only candidates, so never at or before the depth cut
    assert mask[0].sum() == 100 and mask[1].sum() == 100
    assert mask[2].sum() == cand[2].sum() < 100  # fewer candidates than the cap: all of them
    assert torch.equal(mask, official_init_mask(depths, cfg, keep))  # the same seed, the same draw
    other = official_init_mask(depths, GSConfig(init="official", init_max_points=100, seed=4), keep)
    assert not torch.equal(mask, other) and other[0].sum() == 100


def test_official_init_statistics():
    rgb, depth, cams = _history(2)
    cfg = GSConfig(init="official", init_max_points=150, init_min_depth=float(depth.median()), sh_degree=0,
                   init_opacity=0.9999)
    g = init_gaussians(rgb, depth, cams, cfg)
    assert len(g) == 2 * 150
    # the same pixels, unprojected: the means are those points, the scales their 3-NN distance
    keep = official_init_mask(depth, cfg, torch.isfinite(depth) & (depth > 0))
    cloud = unproject(rgb, depth, cams, masks=keep)
    assert torch.equal(g.means, cloud.points)
    assert bool((depth[keep] > cfg.init_min_depth).all())
    std = _brute_knn(cloud.points.double()).clamp_min(KNN_MIN_SQ_DIST).sqrt()
    assert torch.allclose(g.log_scales, std.log().float().unsqueeze(1).expand(-1, 3), atol=1e-6, rtol=0)
    assert torch.allclose(torch.sigmoid(g.opacity_logits), torch.full((len(g),), 0.9999), atol=1e-6)
    # colours as 8-bit frames (truncated): the DC term maps back to k / 255
    rgb_back = g.sh[:, 0] * 0.28209479177387814 + 0.5
    assert torch.allclose(rgb_back * 255, (rgb_back * 255).round(), atol=1e-3)
    assert torch.allclose(rgb_back, torch.floor(cloud.colors * 255) / 255, atol=1e-6)


def test_official_init_caps_each_frame_not_the_sum():
    rgb, depth, cams = _history(3)
    g = init_gaussians(rgb, depth, cams, GSConfig(init="official", init_max_points=40, init_min_depth=0.0))
    assert len(g) == 3 * 40
    full = init_gaussians(rgb, depth, cams, GSConfig(init="official", init_max_points=10**6, init_min_depth=0.0))
    assert len(full) == int((depth > 0).sum())  # the cap does not bind: every pixel with depth


def test_official_init_with_every_pixel_too_near_says_what_to_do():
    rgb, depth, cams = _history(1)
    with pytest.raises(ValueError, match=r"the official init keeps 0 pixel\(s\) with depth > init_min_depth 100.0 "
                                         r"\(depth ranges .* to .*\); lower init_min_depth or use init 'per-pixel'"):
        init_gaussians(rgb, depth, cams, GSConfig(init="official", init_min_depth=100.0))


def test_default_init_is_per_pixel_with_footprint_scales():
    rgb, depth, cams = _history(1)
    g = init_gaussians(rgb, depth, cams, GSConfig())
    assert len(g) == W * H
    footprint = depth[0].reshape(-1) / cams.Ks[0, 0, 0].float()
    assert torch.allclose(g.log_scales[:, 0], footprint.log(), atol=1e-6)


# ----------------------------------------------------------------------------- the voxel merge


def test_voxel_merge_averages_points_and_colours_per_voxel():
    # two clusters far apart, each well inside one voxel of the first try (smallest extent / 100)
    p = torch.tensor([[0.0, 0.0, 0.0], [100.0, 100.0, 100.0], [0.001, 0.0, 0.0], [100.0, 100.002, 100.0]])
    c = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    mp, mc = voxel_merge(p, c, target=2)
    assert mp.shape == (2, 3)
    assert torch.allclose(mp, torch.tensor([[0.0005, 0.0, 0.0], [100.0, 100.001, 100.0]]))
    assert torch.allclose(mc, torch.tensor([[0.5, 0.0, 0.0], [0.5, 1.0, 1.0]]))
    same = voxel_merge(p, c, target=4)
    assert same[0] is p and same[1] is c  # at most the target: unchanged


def test_voxel_merge_grows_the_voxel_until_it_fits():
    p = torch.rand(5000, 3, generator=torch.Generator().manual_seed(0))
    mp, mc = voxel_merge(p, p.clone(), target=4000)
    assert 0 < mp.shape[0] <= 4000 and torch.equal(mp, mc)
    # the first try's voxels (edge 0.01 on a unit cube) keep nearly every point: it took several tries
    first = torch.unique(torch.floor((p - (p.amin(0) - 0.005 * 0.99998)) / 0.01), dim=0).shape[0]
    assert first > 4000
    # after 20 tries (edge 0.01 x 1.1^19 = 0.061) more than a small target may remain, as in the official code
    assert voxel_merge(p, p, target=300)[0].shape[0] > 300


def test_official_init_merges_large_clouds():
    rgb, depth, cams = _history(2)
    g = init_gaussians(rgb, depth, cams, GSConfig(init="official", init_min_depth=0.0, init_max_total=1500))
    assert 0 < len(g) <= 1500 < int((depth > 0).sum())


def test_voxel_merge_of_a_flat_cloud_says_what_to_do():
    p = torch.rand(10, 3)
    p[:, 2] = 1.0
    with pytest.raises(ValueError, match=r"the cloud of 10 points is flat along an axis .* raise init_max_total "
                                         r"above 10 or use init 'per-pixel'"):
        voxel_merge(p, p, target=5)


# ----------------------------------------------------------------------------- premultiplied hints


def test_premultiplied_hints_are_the_unpremultiplied_times_alpha():
    rgb, depth, cams = _history(2)
    cfg = GSConfig(iterations=0, backend="torch", init_opacity=0.3, stride=2, alpha_threshold=0.1)
    cache = build_cache(rgb, depth, cams, "3dgs", cfg)
    viewmat = cams.viewmats[:1].clone()
    viewmat[0, 0, 3] -= 0.2
    viewmat[0, 2, 3] += 1.0  # stepped back: the history's frusta do not fill the view, so there are holes
    target = Cameras(viewmat, cams.Ks[:1], W, H)
    plain = cache.render_hints(target, depth_tolerance=None)
    pre = GeometryCache("3dgs", replace(cfg, hints="premultiplied"), gaussians=cache.gaussians).render_hints(target, depth_tolerance=None)
    alpha = cache.render(target).alpha
    assert torch.equal(plain.masks, pre.masks) and torch.equal(plain.depths, pre.depths)
    m = plain.masks
    partial = m & (alpha < 0.95)
    assert int(partial.sum()) > 10  # the comparison means something: partly transparent valid pixels
    expect = (plain.images * alpha.unsqueeze(-1)).clamp(0, 1)
    unclamped = m & (plain.images < 1).all(-1)  # where the division was not clipped at 1
    assert torch.allclose(pre.images[unclamped], expect[unclamped], atol=1e-5)
    assert bool((pre.images[partial] <= plain.images[partial] + 1e-6).all())  # darker, never brighter
    assert bool((~m).any()) and float(pre.images[~m].abs().max()) == 0.0  # holes stay black


# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize("kwargs, message", [
    ({"init": "random"}, r"init must be one of \('per-pixel', 'official'\) \(the official code's: 'official'\), "
                         r"got 'random'"),
    ({"init_max_points": 0}, r"init_max_points must be an integer >= 1 \(points per frame; official: 50000\), got 0"),
    ({"init_max_points": True}, r"init_max_points must be an integer >= 1 .* got True"),
    ({"init_max_total": 1}, r"init_max_total must be an integer >= 2 \(points in all; official: 1000000\), got 1"),
    ({"init_min_depth": -1.0}, r"init_min_depth must be a finite number >= 0 \(official demo: 0.8; .*got -1.0"),
    ({"init_min_depth": math.nan}, r"init_min_depth must be a finite number >= 0 .*got nan"),
    ({"hints": "straight"}, r"hints must be one of \('unpremultiplied', 'premultiplied'\) \(the official code's: "
                            r"'premultiplied'\), got 'straight'"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GSConfig(**kwargs)


def test_build_cache_node_passes_the_init_options():
    rgb, depth, cams = _history(2)
    env = SimpleNamespace(progress=lambda total: SimpleNamespace(update_absolute=lambda *a: None),
                          check_interrupt=lambda: None, make_splat=lambda fields: fields)
    geometry = SimpleNamespace(depth=depth, cameras=cams)
    cache, _ = ops.build_cache_node(env, rgb, geometry, "3dgs", 0, 1.6e-3, 1, 0.5, 0, train_frames="chunk",
                                    init="official", init_max_points=25, init_min_depth=0.0, hints="premultiplied")
    assert len(cache.gaussians) == 2 * 25
    assert (cache.config.init, cache.config.init_max_points, cache.config.hints) == ("official", 25, "premultiplied")
