"""The default inference profile against an independent transcription of the official WorldWarp code.

The functions prefixed ``official_`` below are transcribed from the official inference code
(``pose_control.py``: ``get_sigmas``, ``erode_mask``, ``flow_matching_sample_step``,
``sample_sequence`` and the mask preparation of ``run_inference_chunk``; ``src/ttt3r/ttt3r.py``:
``_compute_geometric_validity_mask``), keeping their layout ``[B, T, C, H, W]`` and their
operations. Departures, all outside the maths: the noise is passed in instead of drawn (so both
sides use the same ε), the bf16 autocast and the schedule picture are left out, and the config is
a plain dict. Nothing here calls the package's own mask, schedule or sampler code.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as Fn
from diffusers import FlowMatchEulerDiscreteScheduler

from worldwarp_core.caption import DEFAULT_NEGATIVE
from worldwarp_core.sampler import SamplerConfig, st_diff_sample, transformer_denoiser
from worldwarp_core.schedule import (
    context_latent_count,
    flow_sigmas,
    sampler_mask,
    sigma_map,
    sigma_start,
    start_index,
    token_mask,
)

OFFICIAL_NEGATIVE = (
    "Person, people, pet, animals. Bright tones, static camera, overexposed, static, blurred details, subtitles, "
    "style, works, paintings, images, static, overall gray, worst quality, low quality, JPEG compression residue, "
    "ugly, incomplete, extra fingers, poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen "
    "limbs, fused fingers, still picture, messy background, three legs, many people in the background, walking "
    "backwards, unrealistic."
)


# ---------------------------------------------------------------- transcription of the official code
def official_get_sigmas(timesteps, schedule_timesteps, sigmas, device, n_dim=4, dtype=torch.float32):
    timesteps = timesteps.to(device)
    orig_shape = timesteps.shape
    indices = torch.argmax((timesteps.flatten().unsqueeze(-1) == schedule_timesteps.unsqueeze(0)).int(), dim=1)
    sigma = sigmas[indices].reshape(orig_shape)
    while len(sigma.shape) < n_dim:
        sigma = sigma.unsqueeze(-1)
    return sigma.to(dtype)


def official_erode_mask(mask, kernel_size=3):
    kernel = torch.ones(1, 1, kernel_size, kernel_size, device=mask.device)
    padding = kernel_size // 2
    conv = Fn.conv2d(mask.float(), kernel, padding=padding)
    return (conv == kernel_size ** 2).float()


def official_prepare_masks(valid_masks, mask_thres=0.5, factors=(4, 8)):
    """``run_inference_chunk``: threshold, every 4th frame, erode 15, nearest 1/8 -> ``[b, T_lat, 1, h, w]``."""
    valid_masks = valid_masks.clone()
    b, _, _, h_orig, w_orig = valid_masks.shape
    valid_masks[valid_masks < mask_thres] = 0.0
    valid_masks[valid_masks >= mask_thres] = 1.0
    sliced_masks = valid_masks[:, ::factors[0]]
    return Fn.interpolate(official_erode_mask(sliced_masks.reshape(-1, 1, h_orig, w_orig), 15),
                          scale_factor=1 / factors[1]).reshape(b, -1, 1, h_orig // 8, w_orig // 8).bool()


def official_flow_matching_sample_step(diffusion_model, x, curr_noise, next_noise, val_ts, val_sigmas, p_emb,
                                       neg_p_emb, guidance_scale):
    dtype, device = diffusion_model.dtype, x.device
    n_dim = len(x.shape)
    curr_sigma = official_get_sigmas(curr_noise.flatten(), val_ts, val_sigmas, device, n_dim,
                                     dtype).reshape(curr_noise.shape)
    next_sigma = official_get_sigmas(next_noise.flatten(), val_ts, val_sigmas, device, n_dim,
                                     dtype).reshape(next_noise.shape)
    p_t, p_h, p_w = diffusion_model.config.patch_size
    patch_timesteps = curr_noise[:, ::p_t, :, ::p_h, ::p_w]
    if patch_timesteps.shape[2] == 1:
        patch_timesteps = patch_timesteps.squeeze(2)
    noise_pred = diffusion_model(x.permute(0, 2, 1, 3, 4), patch_timesteps, encoder_hidden_states=p_emb)[0]
    noise_uncond = diffusion_model(x.permute(0, 2, 1, 3, 4), patch_timesteps, encoder_hidden_states=neg_p_emb)[0]
    pred = noise_uncond + guidance_scale * (noise_pred - noise_uncond)
    pred = pred.float().permute(0, 2, 1, 3, 4)
    x_pred = x + (next_sigma - curr_sigma) * pred
    mask = curr_noise == next_noise
    return torch.where(mask, x, x_pred)


def official_sample_sequence(diffusion_model, scheduler, xs_warped, valid_masks, prompt_embeds,
                             negative_prompt_embeds, cfg, noise, current_context_frames, trace=None):
    device = xs_warped.device
    B, T, C, H, W = xs_warped.shape
    S = cfg["sampling_timesteps"]
    scheduler.set_timesteps(S)
    val_ts = torch.cat([scheduler.timesteps, torch.zeros(1)], dim=-1).to(device)
    val_sigmas = scheduler.sigmas.to(device)
    minxs_step_idx = min(int(cfg["minxs"] * S), S - 1)
    minxs_timestep = scheduler.timesteps[minxs_step_idx].item()
    max_timestep = scheduler.timesteps[0].item()
    start_timesteps = torch.full((B, T, 1, H, W), minxs_timestep, device=device)
    start_timesteps = torch.where(valid_masks.bool(), start_timesteps, torch.tensor(max_timestep, device=device))
    start_sigmas = official_get_sigmas(start_timesteps.flatten(), val_ts, val_sigmas, device, 5).reshape(B, T, 1, H, W)
    xs_pred = (1.0 - start_sigmas) * xs_warped + start_sigmas * noise
    num_ctx_tokens = (current_context_frames - 1) // 4 + 1
    context_mask = torch.zeros((B, T), dtype=torch.long, device=device)
    context_mask[:, :num_ctx_tokens] = 1
    xs_pred = torch.where(context_mask.view(B, T, 1, 1, 1).bool(), xs_warped, xs_pred)
    base_sched = torch.from_numpy(scheduler.timesteps.numpy()).to(device)
    base_sched = base_sched.view(S, 1, 1, 1, 1, 1).expand(S, B, T, 1, H, W).clone()
    minxs_sched = base_sched.clone()
    minxs_sched[:minxs_step_idx] = minxs_timestep
    valid_masks_exp = valid_masks.unsqueeze(0).expand(S, -1, -1, -1, -1, -1)
    sched_mat = torch.where(valid_masks_exp, minxs_sched, base_sched)
    ctx_mask_exp = context_mask.view(1, B, T, 1, 1, 1).expand(S, B, T, 1, H, W).bool()
    sched_mat = torch.where(ctx_mask_exp, torch.tensor(0.0, device=device), sched_mat)
    sched_mat = torch.cat([sched_mat, torch.zeros_like(sched_mat[:1])], dim=0)
    for m in range(S):
        from_lvl, to_lvl = sched_mat[m], sched_mat[m + 1]
        xs_prev = xs_pred.clone()
        xs_pred = official_flow_matching_sample_step(diffusion_model, xs_pred, from_lvl, to_lvl, val_ts, val_sigmas,
                                                     prompt_embeds, negative_prompt_embeds, cfg["guidance_scale"])
        xs_pred = torch.where(context_mask.view(B, T, 1, 1, 1).bool(), xs_prev, xs_pred)
        if trace is not None:
            trace.append(xs_pred.clone())
    return xs_pred


def official_geometric_validity(target_depth, target_c2w, target_K, source_c2w, source_Ks, source_depths, width,
                                height, depth_threshold=0.1, min_sources=1):
    """``_compute_geometric_validity_mask`` for one target view (the rendered depth passed in)."""
    device = target_depth.device
    y_grid, x_grid = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device),
                                    indexing="ij")
    pixels = torch.stack([x_grid, y_grid, torch.ones_like(x_grid)], dim=-1).float()
    points_cam = (torch.inverse(target_K) @ pixels.reshape(-1, 3).T).T
    points_cam = points_cam * target_depth.reshape(-1, 1)
    points_world = (target_c2w[:3, :3] @ points_cam.T).T + target_c2w[:3, 3]
    visibility_count = torch.zeros(height * width, device=device)
    for i in range(source_c2w.shape[0]):
        src_w2c = torch.inverse(source_c2w[i])
        points_src_cam = (src_w2c[:3, :3] @ points_world.T).T + src_w2c[:3, 3]
        points_src_img = (source_Ks[i] @ points_src_cam.T).T
        points_src_img = points_src_img[:, :2] / (points_src_img[:, 2:3] + 1e-8)
        depth_src_predicted = points_src_cam[:, 2]
        valid_x = (points_src_img[:, 0] >= 0) & (points_src_img[:, 0] < width)
        valid_y = (points_src_img[:, 1] >= 0) & (points_src_img[:, 1] < height)
        valid_bounds = valid_x & valid_y & (depth_src_predicted > 0)
        x_idx = points_src_img[:, 0].long().clamp(0, width - 1)
        y_idx = points_src_img[:, 1].long().clamp(0, height - 1)
        depth_src_gt = source_depths[i][y_idx, x_idx]
        depth_error = torch.abs(depth_src_predicted - depth_src_gt) / (depth_src_gt + 1e-8)
        valid = valid_bounds & (depth_error < depth_threshold) & (depth_src_gt > 0)
        visibility_count += valid.float()
    return (visibility_count >= min_sources).float().reshape(height, width)


# ---------------------------------------------------------------- a fake Wan transformer for both sides
class _Config:
    patch_size = (1, 2, 2)


class FakeWan(torch.nn.Module):
    """Diffusers-Wan call signature; output depends on every token's timestep, the text and other frames."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.config = _Config()
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    @property
    def dtype(self):
        return self.anchor.dtype

    def forward(self, hidden_states, timestep, encoder_hidden_states=None, return_dict=True, **kw):
        B, C, T, H, W = hidden_states.shape
        t = timestep.reshape(B, T, H // 2, W // 2).float()
        t_lat = t.repeat_interleave(2, -2).repeat_interleave(2, -1).unsqueeze(1)
        e = encoder_hidden_states.float().mean(dim=(1, 2)).view(B, 1, 1, 1, 1)
        x = hidden_states.float()
        v = torch.tanh(x) * (0.5 + t_lat / 1000.0) + e + 0.1 * x.roll(1, dims=2) - 0.05 * x.roll(1, dims=3)
        for b in range(B):
            self.calls.append((x[b].clone(), t[b].clone()))
        return (v,)


def _synthetic_warp(F=9, H=96, W=128, seed=0):
    """A validity map like a render's: a region sliding across the frames, speckle holes, values at 0.5."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    out = []
    for f in range(F):
        edge = 30 + 6 * f
        alpha = torch.sigmoid((edge - xx) / 3.0) * torch.sigmoid((yy - 8.0) / 2.0)
        holes = torch.rand(H, W, generator=g) < 0.002
        alpha = torch.where(holes, torch.zeros_like(alpha), alpha)
        out.append(alpha)
    m = torch.stack(out)
    m[:, 40, 10:20] = 0.5  # exactly at the threshold: valid by the official >= rule
    return m


# ---------------------------------------------------------------- tests
def test_official_mask_rule_equals_transcription():
    for seed in range(3):
        pix = _synthetic_warp(seed=seed)
        ours = sampler_mask(pix, "official")
        ref = official_prepare_masks(pix[None, :, None])[0, :, 0]
        assert ours.shape == (3, 12, 16)
        assert torch.equal(ours.bool(), ref), f"seed {seed}"
    # the 0.5-valued run is valid; erosion 15 removes 7 pixels at the border
    pix = torch.ones(5, 32, 48)
    m = sampler_mask(pix, "official")
    assert torch.equal(m.bool(), official_prepare_masks(pix[None, :, None])[0, :, 0])
    assert m[:, 0].sum() == 0 and m[:, :, 0].sum() == 0 and m[:, 1:-1, 1:-1].min() == 1


@pytest.mark.parametrize("steps", [1, 7, 20, 50, 51])
def test_start_index_is_the_official_minxs_rule(steps):
    for k in range(21):
        tau = k / 20
        minxs = float(f"{1 - k / 20:.2f}")  # what a user of the official code writes, e.g. 0.2
        assert start_index(tau, steps) == min(int(minxs * steps), steps - 1), (tau, steps)
    assert start_index(0.8, 50) == 10 and start_index(0.75, 50) == 12  # img2img convention gave 13


def test_default_profile_is_official():
    cfg = SamplerConfig()
    assert cfg.shift == 5.0 and cfg.mask_rule == "official" and cfg.guidance_scale == 5.0 and cfg.strength == 0.8
    assert DEFAULT_NEGATIVE == OFFICIAL_NEGATIVE
    sch = FlowMatchEulerDiscreteScheduler(shift=5)
    sch.set_timesteps(50)
    assert torch.equal(flow_sigmas(50), sch.sigmas.float())
    assert sigma_start(0.8, flow_sigmas(50)) == float(sch.sigmas[10])


@pytest.mark.parametrize("context_frames", [1, 5])
def test_st_diff_sample_equals_official_sample_sequence_step_for_step(context_frames):
    F, H, W, C = 9, 96, 128, 4
    pix = _synthetic_warp(F, H, W, seed=1)
    steps, tau = 50, 0.8
    g = torch.Generator().manual_seed(3)
    z_warp = torch.randn(C, 3, H // 8, W // 8, generator=g)
    pos = torch.randn(1, 6, 8, generator=g)
    neg = torch.randn(1, 6, 8, generator=g)
    cfg = SamplerConfig(steps=steps, strength=tau, seed=11)
    eps = torch.randn(z_warp.shape, generator=torch.Generator().manual_seed(cfg.seed))

    ours_model = FakeWan()
    trace_ours = []
    mask = sampler_mask(pix, cfg.mask_rule)
    res = st_diff_sample(None, z_warp, mask, context_latent_count(context_frames), pos, neg, cfg,
                         denoise_fn=_tracing(transformer_denoiser(ours_model, pos, neg, cfg.guidance_scale),
                                             trace_ours))

    ref_model = FakeWan()
    trace_ref = []
    valid_lat = official_prepare_masks(pix[None, :, None])
    ref = official_sample_sequence(
        ref_model, FlowMatchEulerDiscreteScheduler(shift=5), z_warp.permute(1, 0, 2, 3)[None], valid_lat, pos, neg,
        {"sampling_timesteps": steps, "minxs": 0.2, "guidance_scale": 5.0}, eps.permute(1, 0, 2, 3)[None],
        context_frames, trace_ref)
    assert torch.equal(res.latents, ref[0].permute(1, 0, 2, 3))
    # every step: the official calls (cond, uncond) per step; ours batches (uncond, cond) and skips no step here
    assert len(ref_model.calls) == 2 * steps and len(ours_model.calls) == 2 * steps
    for k in range(steps):
        x_ref, t_ref = ref_model.calls[2 * k]
        x_ours, t_ours = ours_model.calls[2 * k + 1]
        assert torch.equal(x_ours, x_ref), f"model input differs at step {k}"
        assert torch.equal(t_ours, t_ref), f"token timesteps differ at step {k}"
        if k < steps - 1:  # the state after step k is the input of call k + 1
            assert torch.equal(trace_ours[k], trace_ref[k][0].permute(1, 0, 2, 3)), f"state differs after step {k}"


def _tracing(fn, trace):
    """Record the sampler's state at every call after the first (= the state after the previous step)."""
    calls = []

    def denoise(x, t):
        if calls:
            trace.append(x[0].clone())
        calls.append(1)
        return fn(x, t)

    return denoise


def test_geometric_validity_equals_transcription():
    from worldwarp_core.cameras import Cameras, intrinsics_from_fov
    from worldwarp_core.gscache.validity import geometric_validity

    H, W = 48, 64
    K = intrinsics_from_fov(60.0, W, H, 3).float()
    c2w = torch.eye(4).repeat(3, 1, 1)
    c2w[1, 0, 3] = 0.3
    c2w[2, 2, 3] = 0.4
    ang = math.radians(6)
    c2w[2, :3, :3] = torch.tensor([[math.cos(ang), 0, math.sin(ang)], [0, 1, 0], [-math.sin(ang), 0, math.cos(ang)]])
    cams = Cameras.from_c2w(c2w, K, W, H)
    yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    src_depth = torch.stack([2.0 + 0.02 * xx + (xx > 40).float() * 1.5, 3.0 - 0.01 * yy])  # a step edge: occlusion
    g = torch.Generator().manual_seed(0)
    tgt_depth = (2.2 + 0.03 * xx + 0.2 * torch.rand(H, W, generator=g))[None]
    ours = geometric_validity(tgt_depth, cams[2:3], src_depth, cams[:2])[0]
    ref = official_geometric_validity(tgt_depth[0], cams.c2w[2].float(), K[2], cams.c2w[:2].float(), K[:2],
                                      src_depth, W, H)
    agree = (ours == ref.bool()).float().mean()
    assert 0.05 < float(ref.mean()) < 0.95  # both outcomes occur
    assert agree >= 0.999, f"agreement {float(agree):.4f}"


def test_strict_rule_is_kept_as_an_option_and_differs():
    pix = _synthetic_warp(seed=2)
    strict = sampler_mask(pix, "strict")
    assert torch.equal(strict, token_mask(pix))
    s = flow_sigmas(50)
    official = sigma_map(sampler_mask(pix, "official"), 1, sigma_start(0.8, s))
    tok_official = official[:, ::2, ::2]  # the latent pixel that sets each token's timestep
    tok_strict = sigma_map(strict, 1, sigma_start(0.8, s))
    changed = float((tok_official != tok_strict).float().mean())
    assert 0.0 < changed < 0.5
    with pytest.raises(ValueError, match="the 'strict' mask rule needs a mask"):
        st_diff_sample(None, torch.zeros(4, 3, 12, 16), sampler_mask(pix, "official"), 1, torch.zeros(1, 2, 8),
                       None, SamplerConfig(mask_rule="strict", guidance_scale=1.0), denoise_fn=lambda x, t: x)
