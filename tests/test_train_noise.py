"""Training noise follows eq. 5-8 exactly on hand-made tensors."""

import pytest
import torch

from worldwarp_core.train.noise import (
    NoiseConfig,
    composite_latents,
    noisy_latents,
    sample_sigma_pairs,
    shifted_uniform,
    sigma_map,
    tokens_to_latent,
    velocity_target,
)


def _hand_made():
    C, F, h, w = 2, 3, 4, 4
    z_warp = torch.full((C, F, h, w), 10.0)
    z_gt = torch.full((C, F, h, w), -10.0)
    m = torch.zeros(F, h, w)
    m[:, :2, :] = 1  # top half warped in every frame
    m[1, :, :] = 0  # frame 1 entirely a hole
    return z_warp, z_gt, m


def test_composite_takes_warped_where_mask_is_one():
    z_warp, z_gt, m = _hand_made()
    z_c = composite_latents(z_warp, z_gt, m)
    assert torch.equal(z_c[:, 0, :2], z_warp[:, 0, :2])
    assert torch.equal(z_c[:, 0, 2:], z_gt[:, 0, 2:])
    assert torch.equal(z_c[:, 1], z_gt[:, 1])
    with pytest.raises(ValueError, match=r"latent mask \[3, 4, 5\] does not match latents"):
        composite_latents(z_warp, z_gt, torch.zeros(3, 4, 5))


def test_sigma_map_gives_each_region_its_sigma_and_noisy_latent_is_eq7():
    z_warp, z_gt, m = _hand_made()
    tok = m[:, ::2, ::2]  # [F, 2, 2] token grid
    sw = torch.tensor([0.2, 0.3, 0.4])
    sf = torch.tensor([0.9, 0.8, 0.7])
    S = sigma_map(tok, sw, sf)
    assert torch.allclose(S[0, 0], torch.full((2,), 0.2)) and torch.allclose(S[0, 1], torch.full((2,), 0.9))
    assert torch.allclose(S[1], torch.full((2, 2), 0.8))  # frame 1 all holes -> σ_filled
    S_lat = tokens_to_latent(S)
    assert S_lat.shape == m.shape and torch.equal(S_lat[:, ::2, ::2], S)
    eps = torch.full_like(z_gt, 3.0)
    z_c = composite_latents(z_warp, z_gt, m)
    z_noisy = noisy_latents(z_c, S_lat, eps)
    # warped token of frame 0: (1-0.2)*10 + 0.2*3; hole token of frame 0: (1-0.9)*(-10) + 0.9*3
    assert torch.allclose(z_noisy[:, 0, 0, 0], torch.tensor(0.8 * 10 + 0.2 * 3))
    assert torch.allclose(z_noisy[:, 0, 3, 3], torch.tensor(0.1 * -10 + 0.9 * 3))


def test_target_is_noise_minus_ground_truth_not_composite():
    z_warp, z_gt, m = _hand_made()
    eps = torch.randn_like(z_gt)
    target = velocity_target(eps, z_gt)
    assert torch.equal(target, eps - z_gt)
    assert not torch.allclose(target, eps - composite_latents(z_warp, z_gt, m))
    # Consistency with the flow: at σ = 1 everywhere z_noisy = ε and x0 = z_noisy - σ·v = z_gt.
    z_noisy = noisy_latents(composite_latents(z_warp, z_gt, m), torch.ones(m.shape), eps)
    assert torch.allclose(z_noisy - 1.0 * target, z_gt)


@pytest.mark.parametrize("variant", ["spatio-temporal", "spatial", "temporal", "full"])
def test_sigma_pair_variants(variant):
    g = torch.Generator().manual_seed(0)
    cfg = NoiseConfig(variant=variant, context_prob=0.0)
    sw, sf, n_ctx = sample_sigma_pairs(13, cfg, g)
    assert sw.shape == sf.shape == (13,) and n_ctx == 0
    assert bool(((sw >= 0) & (sw <= 1) & (sf >= 0) & (sf <= 1)).all())
    if variant == "spatio-temporal":
        assert len(set(sw.tolist())) == 13 and not torch.equal(sw, sf)
    if variant == "spatial":
        assert len(set(sw.tolist())) == 1 and len(set(sf.tolist())) == 1 and not torch.equal(sw, sf)
    if variant == "temporal":
        assert torch.equal(sw, sf) and len(set(sw.tolist())) == 13
    if variant == "full":
        assert torch.equal(sw, sf) and len(set(sw.tolist())) == 1


def test_context_frames_and_ordering():
    g = torch.Generator().manual_seed(1)
    sw, sf, n_ctx = sample_sigma_pairs(13, NoiseConfig(context_prob=1.0, ordered=True), g)
    assert n_ctx == 2 and torch.equal(sw[:2], torch.zeros(2)) and torch.equal(sf[:2], torch.zeros(2))
    assert bool((sw <= sf).all())


def test_shifted_uniform_matches_wan_shift_formula():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    u = torch.rand(1000, generator=g1, dtype=torch.float64)
    s = shifted_uniform((1000,), 3.0, g2)
    torch.testing.assert_close(s, (3 * u / (1 + 2 * u)).float())
    assert float(s.mean()) > 0.6  # shift 3 favours high noise, as Wan's sampler does


def test_bad_config():
    with pytest.raises(ValueError, match="unknown noise variant 'mixed'"):
        NoiseConfig(variant="mixed")
