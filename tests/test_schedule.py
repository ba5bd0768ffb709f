"""schedule.py: mask pooling on hand-made masks, sigmas vs diffusers, σ maps per variant, picture."""

import pytest
import torch

from worldwarp_core.schedule import (
    GROUP_COLOURS,
    PICTURE_SIZE,
    _colormap,
    context_latent_count,
    flow_sigmas,
    group_sigmas,
    latent_frame_count,
    latent_mask,
    picture_layout,
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


def test_strength_mapping_follows_the_official_minxs_rule():
    s = flow_sigmas(50)
    assert start_index(0.8, 50) == 10 and sigma_start(0.8, s) == float(s[10])
    # τ = 1 starts at pure noise; τ = 0 still takes the last step (the official clamp to N - 1)
    assert sigma_start(1.0, s) == 1.0 and sigma_start(0.0, s) == float(s[49]) > 0
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


def _runs(column):
    """Consecutive runs of equal colours down a pixel column ``[H, 3]`` -> [(colour, length)]."""
    runs = []
    for px in column:
        key = tuple(round(float(c) * 255) for c in px)  # 8-bit colour
        if runs and runs[-1][0] == key:
            runs[-1][1] += 1
        else:
            runs.append([key, 1])
    return runs


def test_schedule_picture_rows_show_context_holes_and_warped():
    # frame 0 context, frame 1 all holes, frame 2 all warped
    tm = torch.stack([torch.ones(2, 3), torch.zeros(2, 3), torch.ones(2, 3)])
    s = flow_sigmas(10)
    s0 = sigma_start(0.8, s)
    S = sigma_map(tm, 1, s0)
    img = schedule_picture(S, s, rows="frames")
    assert img.shape == (*PICTURE_SIZE, 3) and img.min() >= 0 and img.max() <= 1
    colour = {name: tuple(round(float(c) * 255) for c in _colormap(torch.tensor(v))) for name, v in
              (("context", 0.0), ("holes", 1.0), ("warped", s0))}
    left, right, top, bot, _, _ = picture_layout(PICTURE_SIZE, False)
    first = [(c, n) for c, n in _runs(img[top:bot, left + 1]) if n > 1]  # 1-pixel lines separate the frames
    assert [c for c, _ in first] == [colour["context"], colour["holes"], colour["warped"]]
    assert min(n for _, n in first) >= 4 and max(n for _, n in first) - min(n for _, n in first) <= 3  # equal bands
    # the last column is the end of sampling: every token at σ = 0
    assert [c for c, n in _runs(img[top:bot, right - 1]) if n > 1] == [colour["context"]] * 3
    # the group strip left of step 0 marks context, holes and warped rows in the legend's colours
    strip = {rgb: name for name, rgb in GROUP_COLOURS.items()}
    assert [strip[c] for c, _ in _runs(img[top:bot, left - 6])] == ["context", "holes", "warped"]


def test_schedule_picture_token_sample_keeps_each_token_on_its_schedule():
    tm = torch.stack([torch.ones(2, 2), torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.zeros(2, 2)])
    s = flow_sigmas(10)  # (with 4 steps the official τ rule starts τ = 0.8 at σ = 1, like the holes)
    img = schedule_picture(sigma_map(tm, 1, sigma_start(0.8, s)), s, rows="tokens")
    left, _, top, bot, _, _ = picture_layout(PICTURE_SIZE, False)
    strip = {rgb: name for name, rgb in GROUP_COLOURS.items()}
    groups = [strip[c] for c, _ in _runs(img[top:bot, left - 6])]
    # one row per token in (frame, y, x) order: 4 context, then warped/hole/hole/warped, then 4 holes
    assert groups == ["context", "warped", "holes", "warped", "holes"]
    lengths = [n for _, n in _runs(img[top:bot, left - 6])]
    assert abs(lengths[0] - 2 * lengths[2]) <= 2 and abs(lengths[4] - 2 * lengths[2]) <= 2


@pytest.mark.parametrize("shape,steps", [((1, 1, 1), 1), ((3, 2, 2), 4), ((13, 30, 45), 50), ((21, 45, 80), 200)])
@pytest.mark.parametrize("rows", ["frames", "tokens"])
def test_schedule_picture_has_a_fixed_readable_size(shape, steps, rows):
    """480x720, 49 frames, 50 steps is 13x30x45 tokens: the picture stays 400x640 (a per-token picture
    was 204 x 17,562 px there, and 20x20 px at test sizes)."""
    tm = (torch.rand(shape, generator=torch.Generator().manual_seed(0)) > 0.4).float()
    s = flow_sigmas(steps)
    ctx = 1 if shape[0] > 1 else 0
    img = schedule_picture(sigma_map(tm, ctx, sigma_start(0.8, s)), s, rows=rows, title="t")
    assert img.shape == (*PICTURE_SIZE, 3)
    # every latent frame band is at least 4 pixels tall up to 81-frame chunks (21 latent frames)
    if rows == "frames":
        left, _, top, bot, _, _ = picture_layout(PICTURE_SIZE, True)
        separator = (30, 30, 30)
        bands = [n for c, n in _runs(img[top:bot, left - 6]) if c != separator]  # the group strip: no separators
        heat = [n for c, n in _runs(img[top:bot, left + 1]) if c != separator]
        assert sum(bands) == bot - top and min(heat) >= 4 * (shape[0] == 1) + 1
        assert (bot - top) / shape[0] >= 8  # rows per latent frame


def test_schedule_picture_bad_input():
    s = flow_sigmas(4)
    S = torch.zeros(2, 2, 2)
    with pytest.raises(ValueError, match="rows must be 'frames' or 'tokens', got 'pixels'"):
        schedule_picture(S, s, rows="pixels")
    with pytest.raises(ValueError, match=r"sigma_map must be \[F_lat, h, w\], got \[2, 2\]"):
        schedule_picture(S[0], s)
    with pytest.raises(ValueError, match="schedule picture size must be at least 240x400"):
        schedule_picture(S, s, size=(100, 100))


def test_group_sigmas_follow_the_variant():
    s = flow_sigmas(10)
    g = group_sigmas(0.8, s, "spatio-temporal")
    assert torch.equal(g["holes"], s) and torch.equal(g["context"], torch.zeros(11))
    assert float(g["warped"][0]) == sigma_start(0.8, s) and torch.equal(g["warped"][3:], s[3:])
    for variant in ("spatial", "temporal"):  # they regroup tokens, not the curves
        assert torch.equal(group_sigmas(0.8, s, variant)["warped"], g["warped"])
    assert torch.equal(group_sigmas(0.8, s, "full")["warped"], s)  # full-sequence noise: every token from 1
    with pytest.raises(ValueError, match="unknown schedule variant 'tokenwise'"):
        group_sigmas(0.8, s, "tokenwise")
