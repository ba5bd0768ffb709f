"""sampler.py: hard context constraints, first-call timesteps, oracle recovery, diffusers parity, CFG."""

import pytest
import torch

from worldwarp_core.sampler import (
    SamplerConfig,
    sample_training_free,
    sample_with_denoiser,
    st_diff_sample,
    tokens_to_latent,
    transformer_denoiser,
)
from worldwarp_core.schedule import flow_sigmas, sigma_map, sigma_start

C, F, h, w = 4, 3, 4, 6  # token grid [3, 2, 3]


def _setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(C, F, h, w, generator=g)
    tm = torch.ones(F, h // 2, w // 2)
    tm[1, 0, 0] = 0
    tm[2, 1, :] = 0
    return x0, tm


def oracle(x0):
    """The true velocity ε - x0 = (x - x0)/σ for a token at σ > 0 (from its timestep)."""

    def fn(x, t):
        sig = tokens_to_latent(t.reshape(1, F, h // 2, w // 2) / 1000.0).unsqueeze(1)
        return torch.where(sig > 0, (x - x0.unsqueeze(0)) / sig.clamp_min(1e-12), torch.zeros_like(x))

    return fn


@pytest.mark.parametrize("variant", ["spatio-temporal", "spatial", "temporal", "full"])
def test_oracle_recovers_x0_for_every_variant(variant):
    x0, tm = _setup()
    s = flow_sigmas(12)
    S = sigma_map(tm, 1, sigma_start(0.8, s), variant)
    z_warp = x0 + 0.3 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(5))
    z_warp[:, 0] = x0[:, 0]  # context latents are the clean history
    out = sample_with_denoiser(oracle(x0), z_warp, S, s, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=1e-4)


def test_context_tokens_bit_for_bit_and_first_call_timesteps():
    x0, tm = _setup()
    s = flow_sigmas(8)
    st = sigma_start(0.5, s)
    S = sigma_map(tm, 1, st)
    z_warp = torch.randn(C, F, h, w, generator=torch.Generator().manual_seed(2))
    calls = []

    def spy(x, t):
        calls.append(t.clone())
        return torch.randn(x.shape, generator=torch.Generator().manual_seed(len(calls)))

    out = sample_with_denoiser(spy, z_warp, S, s, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out[:, 0], z_warp[:, 0])  # context: exact, whatever the model says
    first = calls[0].reshape(F, h // 2, w // 2)
    assert torch.equal(first[0], torch.zeros(2, 3))
    assert first[1, 0, 0] == 1000.0 and first[2, 1, 0] == 1000.0  # holes
    assert torch.allclose(first[1, 1, 1], torch.tensor(1000.0 * st))  # warped
    # warped tokens wait at σ_start until the schedule reaches it: their state is untouched
    assert len(calls) == 8


def test_equals_diffusers_flow_match_euler_when_all_tokens_share_sigma():
    from diffusers import FlowMatchEulerDiscreteScheduler

    x0, _ = _setup()
    steps = 10
    s = flow_sigmas(steps, 3.0)
    S = torch.ones(F, h // 2, w // 2)  # every token a hole: ordinary text-to-video sampling
    noise = torch.randn(C, F, h, w, generator=torch.Generator().manual_seed(4))

    def model(x, t):
        return torch.sin(x) + t.reshape(-1)[0] / 1000.0

    trace = []
    ours = sample_with_denoiser(model, torch.zeros_like(noise), S, s, noise=noise,
                                callback=lambda k, n, x0e: trace.append(k))
    sch = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sch.set_timesteps(steps)
    x = noise.clone().unsqueeze(0)
    for t in sch.timesteps:
        sig = t / 1000.0
        v = model(x, sig.reshape(1, 1).expand(1, S.numel()) * 1000.0)
        x = sch.step(v, t, x, return_dict=False)[0]
    torch.testing.assert_close(ours, x[0], atol=1e-5, rtol=1e-5)
    assert trace == list(range(1, steps + 1))


def test_training_free_oracle_and_constraints():
    x0, tm = _setup()
    s = flow_sigmas(12)
    st = sigma_start(0.7, s)
    S = sigma_map(tm, 1, st)
    z_warp = x0.clone()

    def uniform_oracle(x, t):
        sig = float(t.reshape(-1)[0]) / 1000.0
        return (x - x0.unsqueeze(0)) / sig

    seen = []
    out = sample_training_free(lambda x, t: (seen.append(t.clone()), uniform_oracle(x, t))[1], z_warp, S, s, st,
                               generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=1e-4)
    assert torch.equal(out[:, 0], z_warp[:, 0])
    assert all(t.numel() == 1 for t in seen)  # uniform timesteps for base Wan weights


def _tiny_transformer():
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=C, out_channels=C,
        text_dim=16, freq_dim=16, ffn_dim=32, num_layers=1, rope_max_seq_len=32,
    ).eval()


def test_cfg_batched_equals_two_separate_calls():
    tr = _tiny_transformer()
    pos = torch.randn(1, 5, 16, generator=torch.Generator().manual_seed(1))
    neg = torch.randn(1, 5, 16, generator=torch.Generator().manual_seed(2))
    x = torch.randn(1, C, F, h, w, generator=torch.Generator().manual_seed(3))
    t = torch.rand(1, F * (h // 2) * (w // 2), generator=torch.Generator().manual_seed(4)) * 1000
    v = transformer_denoiser(tr, pos, neg, 4.0)(x, t)
    with torch.no_grad():
        vp = tr(hidden_states=x, timestep=t, encoder_hidden_states=pos, return_dict=False)[0]
        vn = tr(hidden_states=x, timestep=t, encoder_hidden_states=neg, return_dict=False)[0]
    torch.testing.assert_close(v, vn + 4.0 * (vp - vn), atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="classifier-free guidance needs negative prompt embeddings"):
        transformer_denoiser(tr, pos, None, 4.0)


def test_st_diff_sample_runs_a_real_tiny_transformer_deterministically():
    tr = _tiny_transformer()
    _, tm = _setup()
    z_warp = torch.randn(C, F, h, w, generator=torch.Generator().manual_seed(6))
    pos, neg = torch.randn(1, 5, 16), torch.zeros(1, 5, 16)
    cfg = SamplerConfig(steps=4, strength=0.8, guidance_scale=3.0, seed=7, mask_rule="strict")
    a = st_diff_sample(tr, z_warp, tm, 1, pos, neg, cfg)
    b = st_diff_sample(tr, z_warp, tm, 1, pos, neg, cfg)
    assert torch.equal(a.latents, b.latents) and torch.isfinite(a.latents).all()
    assert torch.equal(a.latents[:, 0], z_warp[:, 0])
    assert a.sigma_map.shape == (F, 2, 3) and a.sigmas.shape == (5,)
    c = st_diff_sample(tr, z_warp, tm, 1, pos, neg, SamplerConfig(steps=4, seed=8, guidance_scale=3.0, mask_rule="strict"))
    assert not torch.equal(a.latents, c.latents)
    tf = st_diff_sample(tr, z_warp, tm, 1, pos, neg, SamplerConfig(steps=4, training_free=True, guidance_scale=3.0,
                                                             mask_rule="strict"))
    assert torch.equal(tf.latents[:, 0], z_warp[:, 0])


def test_callback_can_interrupt_and_config_errors():
    x0, tm = _setup()
    s = flow_sigmas(5)
    S = sigma_map(tm, 1, 0.5)

    def stop(k, n, x0e):
        if k == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sample_with_denoiser(oracle(x0), x0, S, s, callback=stop)
    with pytest.raises(ValueError, match=r"Σ must be \[F, h/2, w/2\] = \[3, 2, 3\]"):
        sample_with_denoiser(oracle(x0), x0, S[:, :1], s)
    with pytest.raises(ValueError, match=r"strength τ must be in \[0, 1\], got 2"):
        SamplerConfig(strength=2)
