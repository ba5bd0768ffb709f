"""Training as the paper: the warp's source frame drawn per step, eq. (6) on the latent-resolution mask."""

import pytest
import torch

from worldwarp_core.train.data import pick_source, source_frames
from worldwarp_core.train.loop import st_diff_loss
from worldwarp_core.train.noise import NoiseConfig, sample_sigma_pairs

C, F, h, w = 4, 3, 4, 6


class Recorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.ones(()))
        self.seen = []

    def forward(self, hidden_states, timestep, encoder_hidden_states=None, return_dict=True):
        self.seen.append((hidden_states.detach().clone(), timestep.detach().clone()))
        return (hidden_states * self.anchor,)


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    m_lat = (torch.rand(1, F, h, w, generator=g) > 0.4).float()
    m_lat[0, 1, 0:2, 0:2] = torch.tensor([[0.0, 1.0], [1.0, 1.0]])  # a token whose top-left pixel is a hole
    m_lat[0, 1, 0:2, 2:4] = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # a token whose top-left pixel is warped
    m_tok = -torch.nn.functional.max_pool2d(-m_lat, 2)  # the strict rule's token mask
    return {"z_gt": torch.randn(1, C, F, h, w, generator=g), "z_warp": torch.randn(1, C, F, h, w, generator=g),
            "mask_latent": m_lat, "mask_token": m_tok, "prompt_embeds": torch.zeros(1, 2, 8)}


def test_eq6_uses_the_latent_mask_and_token_timesteps_as_inference():
    batch = _batch()
    cfg = NoiseConfig(context_prob=0.0)
    model = Recorder()
    st_diff_loss(model, batch, cfg, torch.Generator().manual_seed(5))
    x, t = model.seen[0]
    g = torch.Generator().manual_seed(5)  # the same draws, in the same order
    sw, sf, _ = sample_sigma_pairs(F, cfg, g)
    eps = torch.randn(batch["z_gt"].shape, generator=g)
    M = batch["mask_latent"][0]
    S = M * sw[:, None, None] + (1 - M) * sf[:, None, None]  # eq. (6) at latent resolution
    z_c = M * batch["z_warp"] + (1 - M) * batch["z_gt"]  # eq. (5)
    torch.testing.assert_close(x, (1 - S) * z_c + S * eps, rtol=0, atol=1e-6)  # eq. (7)
    torch.testing.assert_close(t, (1000.0 * S[:, ::2, ::2]).reshape(1, -1), rtol=0, atol=1e-4)
    assert t.reshape(F, h // 2, w // 2)[1, 0, 0] == pytest.approx(1000.0 * float(sf[1]), abs=1e-3)
    assert t.reshape(F, h // 2, w // 2)[1, 0, 1] == pytest.approx(1000.0 * float(sw[1]), abs=1e-3)
    # the strict rule is still available: Σ on tokens, a token warped only if all its latent pixels are
    strict = Recorder()
    st_diff_loss(strict, batch, NoiseConfig(context_prob=0.0, mask_rule="strict"), torch.Generator().manual_seed(5))
    assert strict.seen[0][1].reshape(F, h // 2, w // 2)[1, 0, 1] == pytest.approx(1000.0 * float(sf[1]), abs=1e-3)


def test_source_frame_is_drawn_per_step():
    assert source_frames(49, 8) == [0, 7, 14, 21, 27, 34, 41, 48]
    assert source_frames(9, 0) == list(range(9)) and source_frames(9, 1) == [4]
    with pytest.raises(ValueError, match="outside the clip's 9 frames"):
        source_frames(9, [3, 12])
    K = 5
    sample = {"z_gt": torch.zeros(C, F, h, w), "prompt_embeds": torch.zeros(2, 8),
              "z_warp": torch.arange(K).float().view(K, 1, 1, 1, 1).expand(K, C, F, h, w).clone(),
              "mask_latent": torch.zeros(K, F, h, w), "mask_token": torch.zeros(K, F, h // 2, w // 2),
              "source_index": torch.tensor([0, 2, 4, 6, 8])}
    g = torch.Generator().manual_seed(0)
    drawn = []
    for _ in range(200):
        one = pick_source(sample, g)
        k = int(one["z_warp"][0, 0, 0, 0])
        assert one["z_warp"].shape == (C, F, h, w) and int(one["source_index"]) == 2 * k
        drawn.append(k)
    counts = torch.bincount(torch.tensor(drawn), minlength=K)
    assert counts.min() > 20  # every cached source is used, roughly uniformly
