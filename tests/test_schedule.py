"""schedule.py: mask pooling on hand-made masks, sigmas vs diffusers, σ maps per variant, picture."""

import pytest
import torch

from worldwarp_core.schedule import (
    context_latent_count,
    flow_sigmas,
    latent_frame_count,
    latent_mask,
    schedule_picture,
    sigma_map,
    sigma_start,
    start_index,
    token_mask,
)


def test_latent_counts():
    assert latent_frame_count(49) == 13 and latent_frame_count(1) == 1 and latent_frame_count(81) == 21
    assert context_latent_count(5) == 2 and context_latent_count(1) == 1 and context_latent_count(0) == 0
    with pytest.raises(ValueError, match=r"frame count must be 4k\+1 .* got 48"):
        latent_frame_count(48)


def test_token_mask_pools_frame0_alone_groups_of_4_and_16px():
    m = torch.ones(9, 32, 48)
    assert token_mask(m).shape == (3, 2, 3) and latent_mask(m).shape == (3, 4, 6)
    m[0, 0, 0] = 0  # one pixel of frame 0 invalid -> token (0, 0, 0) only
    m[3, 17, 40] = 0  # frame 3 belongs to latent frame 1 (frames 1-4), pixel in token (1, 2)
    tm = token_mask(m)
    expected = torch.ones(3, 2, 3)
    expected[0, 0, 0] = 0
    expected[1, 1, 2] = 0
    assert torch.equal(tm, expected)
    lm = latent_mask(m)
    assert lm[0, 0, 0] == 0 and lm[1, 2, 5] == 0 and lm.sum() == 3 * 4 * 6 - 2
    # frame 5 is the first frame of latent frame 2
    m2 = torch.ones(9, 32, 48)
    m2[5] = 0
    assert torch.equal(token_mask(m2)[2], torch.zeros(2, 3)) and token_mask(m2)[:2].min() == 1


def test_coverage_threshold():
    m = torch.zeros(1, 16, 16)
    m[0, :, :12] = 1  # 75 % of the token valid
    assert token_mask(m)[0, 0, 0] == 0
    assert token_mask(m, coverage=0.7)[0, 0, 0] == 1
    assert token_mask(m, coverage=0.8)[0, 0, 0] == 0
    with pytest.raises(ValueError, match=r"mask is 16x20; height and width must be multiples of 16"):
        token_mask(torch.ones(1, 16, 20))


def test_flow_sigmas_equal_diffusers_scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    for steps, shift in ((50, 3.0), (20, 5.0), (4, 1.0)):
        sch = FlowMatchEulerDiscreteScheduler(shift=shift)
        sch.set_timesteps(steps)
        assert torch.equal(flow_sigmas(steps, shift), sch.sigmas.float())
    assert torch.equal(flow_sigmas(10, scheduler_config={"flow_shift": 5.0}), flow_sigmas(10, 5.0))


def test_strength_mapping_follows_img2img():
    s = flow_sigmas(50)
    assert start_index(0.8, 50) == 10 and sigma_start(0.8, s) == float(s[10])
    assert sigma_start(1.0, s) == 1.0 and sigma_start(0.0, s) == 0.0
    with pytest.raises(ValueError, match=r"strength τ must be in \[0, 1\], got 1.5"):
        sigma_start(1.5, s)


def _mask():
    tm = torch.ones(4, 2, 2)
    tm[1, 0, 0] = 0
    tm[2, :, :] = 0
    tm[2, 1, 1] = 1
    tm[3, 0, 0] = 0
    return tm


def test_sigma_map_variants():
    tm = _mask()
    st = sigma_map(tm, 1, 0.6)
    assert torch.equal(st[0], torch.zeros(2, 2))  # context
    assert st[1, 0, 0] == 1.0 and st[1, 1, 1] == pytest.approx(0.6) and st[2, 0, 0] == 1.0
    sp = sigma_map(tm, 1, 0.6, "spatial")  # position (0,0) warped in 0 of 3 frames -> hole everywhere
    assert torch.equal(sp[1], sp[2]) and torch.equal(sp[2], sp[3])
    assert sp[1, 0, 0] == 1.0 and sp[1, 1, 1] == pytest.approx(0.6)
    tp = sigma_map(tm, 1, 0.6, "temporal")  # frame 2 is 25 % warped -> a hole frame
    assert torch.allclose(tp[1], torch.full((2, 2), 0.6)) and torch.equal(tp[2], torch.ones(2, 2))
    fu = sigma_map(tm, 1, 0.6, "full")
    assert torch.equal(fu[1:], torch.ones(3, 2, 2)) and torch.equal(fu[0], torch.zeros(2, 2))
    with pytest.raises(ValueError, match="unknown schedule variant 'mixed'"):
        sigma_map(tm, 1, 0.6, "mixed")
    with pytest.raises(ValueError, match=r"context latents must be in \[0, 3\] for 4 latent frames, got 4"):
        sigma_map(tm, 4, 0.6)


def test_schedule_picture_shows_context_warped_and_holes():
    tm = _mask()
    s = flow_sigmas(10)
    S = sigma_map(tm, 1, sigma_start(0.8, s))
    img = schedule_picture(S, s, rows="frames", cell=2)
    assert img.shape == (4 * 2, 11 * 2, 3) and img.min() >= 0 and img.max() <= 1
    dark = img[0, 0]  # context row: σ = 0 -> dark purple
    assert dark[2] > dark[1]
    img_t = schedule_picture(S, s, rows="tokens", cell=1)
    assert img_t.shape == (4 * 4 + 3, 11, 3)
    assert torch.allclose(img_t[0, 0], img_t[0, -1])  # context constant over the steps
    hole_row = img_t[5 + 0]  # frame 1 token (0, 0) is a hole: starts yellow, ends dark
    assert hole_row[0, 0] > 0.9 and hole_row[-1, 0] < 0.3
