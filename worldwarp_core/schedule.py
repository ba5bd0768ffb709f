"""Spatio-temporal noise schedules for ST-Diff (paper eq. 6, 9-10, Fig. 9, Table 3).

Grids. The Wan VAE compresses time 4x with frame 0 alone (``F_lat = 1 + (F-1)/4``) and space
8x; the transformer patches 1x2x2, so one token = one latent frame x 16x16 pixels. A 49-frame
chunk is 13 latent frames; its 5 context frames are exactly latent frames 0-1.

Mask rules (``MaskRule``). A pixel validity mask ``[F, H, W]`` becomes the mask the sampler reads:
  * ``official`` (default; the rule the official ``worldwarp_latest.ckpt`` was sampled with, from
    ``run_inference_chunk`` of the official ``pose_control.py``): the hint renderer's validity
    (alpha ≥ 0.5 and rendered depth consistent with a source frame's depth, ``gscache``) is
    binarised at 0.5, every 4th frame is kept (frames 0, 4, 8, …: the LAST pixel frame of each
    4-frame latent group), eroded with a 15x15 square (zero padding, so 7 pixels at the border
    are invalid), and downsampled to the latent grid by nearest sampling (latent pixel ``(i, j)``
    reads pixel ``(8i, 8j)``): ``[F_lat, H/8, W/8]``. Σ lives at latent resolution; the
    transformer's timestep for a token is that of its top-left latent pixel (``[..., ::2, ::2]``),
    so within a token latent pixels may move on different schedules than the one the model is told.
  * ``strict``: a token mask ``[F_lat, H/16, W/16]`` by min-pooling over each token's footprint
    (frame 0 alone, then groups of 4 frames, times the 16x16 pixel square): a cell is valid only if
    all its pixels are (``coverage=1``; ``coverage=c`` needs a fraction ``c``), so a token's state
    always matches its timestep.

Strength τ: the fraction of the denoising schedule warped tokens go through. The start index is
computed as the official sampler does from its ``minxs = 1 - τ``: ``i = min(int(minxs·N), N-1)``
into the sigmas ``s_0 > … > s_N = 0`` (``minxs`` rounded to 10 decimals first, so τ = 0.8 gives the
official 0.2 exactly, not 0.19999999999999996). τ = 1 starts warped tokens at pure noise (like
holes); τ = 0 still gives them the last step (the official clamp). Paper default τ = 0.8.

σ maps Σ (eq. 9) at token resolution: warped tokens ``σ_start``, holes 1.0, context tokens 0.
Variants (Table 3):
  * ``spatio-temporal``: per token, as above (the method);
  * ``spatial``: one σ per spatial position for all generated frames, frame-agnostic: a position
    is warped if it is warped in the majority of the generated (non-context) frames;
  * ``temporal``: one σ per latent frame: ``σ_start`` if at least half of the frame's tokens are
    warped, else 1.0;
  * ``full``: one σ for every generated token, 1.0 (standard video diffusion from pure noise, the
    paper's "Full sequence noise" row); context frames stay at 0 in every variant.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as Fn
from torch import Tensor

ScheduleVariant = Literal["spatio-temporal", "spatial", "temporal", "full"]
SCHEDULE_VARIANTS: tuple[str, ...] = ("spatio-temporal", "spatial", "temporal", "full")
MaskRule = Literal["official", "strict"]
MASK_RULES: tuple[str, ...] = ("official", "strict")

OFFICIAL_SHIFT = 5.0  # FlowMatchEulerDiscreteScheduler(shift=5) in the official sampler
OFFICIAL_MASK_THRESHOLD = 0.5  # inference_params.mask_thres
OFFICIAL_EROSION = 15  # erode_mask(..., 15)

VAE_TIME = 4  # Wan VAE temporal compression (frame 0 alone)
VAE_SPACE = 8  # Wan VAE spatial compression
PATCH = 2  # transformer spatial patch (1x2x2)
TOKEN_PIXELS = VAE_SPACE * PATCH  # 16


def latent_frame_count(frames: int) -> int:
    """``1 + (F-1)/4``; ``F`` must be ``4k+1``."""
    if frames < 1 or (frames - 1) % VAE_TIME:
        raise ValueError(f"frame count must be 4k+1 (1, 5, 9, ..., 49, 81) for the Wan VAE, got {frames}")
    return 1 + (frames - 1) // VAE_TIME


def context_latent_count(context_frames: int) -> int:
    """Latent frames that hold ``context_frames`` pixel frames (``4j+1`` -> ``j+1``; 0 -> 0)."""
    return 0 if context_frames == 0 else latent_frame_count(context_frames)


def _pool(mask: Tensor, cell: int, coverage: float) -> Tensor:
    F, H, W = mask.shape
    if H % cell or W % cell:
        raise ValueError(f"mask is {H}x{W}; height and width must be multiples of {cell} (resize to a multiple of 16)")
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    lat = latent_frame_count(F)
    m = mask.float()
    # temporal groups: frame 0 alone, then 4 frames per latent frame
    groups = torch.cat([m[:1], m[1:].reshape(lat - 1, VAE_TIME, H, W).mean(dim=1) if lat > 1 else m[:0]], dim=0)
    frac = torch.cat([m[:1], m[1:].reshape(lat - 1, VAE_TIME, H, W).amin(dim=1) if lat > 1 else m[:0]], dim=0)
    if coverage >= 1.0:
        # every pixel of the footprint (all frames of the group, all pixels of the cell) valid
        return -Fn.max_pool2d(-frac.unsqueeze(1), cell).squeeze(1)
    cover = Fn.avg_pool2d(groups.unsqueeze(1), cell).squeeze(1)
    return (cover >= coverage - 1e-6).float()


def latent_mask(pixel_mask: Tensor, coverage: float = 1.0) -> Tensor:
    """Pixel mask ``[F, H, W]`` -> latent mask ``[F_lat, H/8, W/8]`` (float 0/1)."""
    _check_mask(pixel_mask)
    return _pool(pixel_mask, VAE_SPACE, coverage)


def token_mask(pixel_mask: Tensor, coverage: float = 1.0) -> Tensor:
    """Pixel mask ``[F, H, W]`` -> token mask ``[F_lat, H/16, W/16]`` (float 0/1)."""
    _check_mask(pixel_mask)
    return _pool(pixel_mask, TOKEN_PIXELS, coverage)


def erode(mask: Tensor, kernel: int) -> Tensor:
    """Binary erosion of ``[F, H, W]`` with a ``kernel``x``kernel`` square, zero padding (outside = invalid)."""
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"erosion kernel must be odd and >= 1, got {kernel}")
    pad = kernel // 2
    m = Fn.pad(mask.float().unsqueeze(1), (pad, pad, pad, pad), value=0.0)
    return (-Fn.max_pool2d(-m, kernel, stride=1)).squeeze(1)


def official_latent_mask(pixel_mask: Tensor, threshold: float = OFFICIAL_MASK_THRESHOLD,
                         erosion: int = OFFICIAL_EROSION) -> Tensor:
    """Pixel validity ``[F, H, W]`` -> latent mask ``[F_lat, H/8, W/8]`` by the official rule (module docstring).

    ``pixel_mask`` is the renderer's validity (bool, or alpha·consistency in 0..1); a pixel is valid
    when ``≥ threshold``. Frames ``0, 4, 8, …`` are kept, eroded by ``erosion`` pixels, and latent
    pixel ``(i, j)`` reads pixel ``(8i, 8j)`` (``F.interpolate(scale_factor=1/8)``, nearest).
    """
    _check_mask(pixel_mask)
    F, H, W = pixel_mask.shape
    latent_frame_count(F)
    if H % TOKEN_PIXELS or W % TOKEN_PIXELS:
        raise ValueError(f"mask is {H}x{W}; height and width must be multiples of {TOKEN_PIXELS} (resize to a "
                         "multiple of 16)")
    valid = (pixel_mask.float() >= threshold).float()[::VAE_TIME]  # [F_lat, H, W]
    return erode(valid, erosion)[:, ::VAE_SPACE, ::VAE_SPACE].contiguous()


def sampler_mask(pixel_mask: Tensor, rule: MaskRule = "official", coverage: float = 1.0) -> Tensor:
    """The mask ST-Diff reads: ``official`` -> latent grid ``[F_lat, H/8, W/8]``; ``strict`` -> tokens ``[F_lat, H/16, W/16]``."""
    if rule == "official":
        return official_latent_mask(pixel_mask)
    if rule == "strict":
        return token_mask(pixel_mask, coverage)
    raise ValueError(f"unknown mask rule {rule!r}; choose one of {MASK_RULES}")


def token_timestep_sigma(sigma_latent: Tensor) -> Tensor:
    """σ of each token from a latent-resolution map ``[..., h, w]``: its top-left latent pixel (official)."""
    return sigma_latent[..., ::PATCH, ::PATCH]


def _check_mask(mask: Tensor) -> None:
    if mask.ndim != 3:
        raise ValueError(f"pixel mask must be [F, H, W], got {list(mask.shape)}")


def flow_sigmas(steps: int, shift: float = OFFICIAL_SHIFT, scheduler_config: dict | None = None) -> Tensor:
    """Flow-matching sigmas ``[steps + 1]`` from 1 down to the terminal 0.

    Exactly those of diffusers' ``FlowMatchEulerDiscreteScheduler`` (the paper's scheduler) after
    ``set_timesteps(steps)``, with the shift of ``scheduler_config`` (a checkpoint's scheduler
    config: ``shift`` or Wan's ``flow_shift``) or ``shift`` (the official WorldWarp sampler: 5; the
    Wan2.1 480p config: 3).
    """
    from diffusers import FlowMatchEulerDiscreteScheduler

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    config = scheduler_config or {}
    # a Wan diffusers folder ships a UniPC config with "flow_shift"; a flow-match one has "shift"
    shift = float(config.get("shift", config.get("flow_shift", shift)))
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}")
    scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(steps)
    return scheduler.sigmas.float().cpu()


def start_index(strength: float, steps: int) -> int:
    """Index into the sigmas where warped tokens start, as the official sampler computes it (module docstring)."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength τ must be in [0, 1], got {strength}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    minxs = round(1.0 - strength, 10)
    return min(int(minxs * steps), steps - 1)


def sigma_start(strength: float, sigmas: Tensor) -> float:
    """σ_start for strength τ given the sigmas ``[N+1]`` (module docstring)."""
    return float(sigmas[start_index(strength, sigmas.numel() - 1)])


def sigma_map(
    token_mask: Tensor,
    context_latents: int,
    sigma_start: float,
    variant: ScheduleVariant = "spatio-temporal",
) -> Tensor:
    """Σ ``[F_lat, h, w]`` on the mask's grid (eq. 9): warped σ_start, holes 1, context 0.

    The grid is the mask's: tokens (``strict``) or latent pixels (``official``).
    """
    if variant not in SCHEDULE_VARIANTS:
        raise ValueError(f"unknown schedule variant {variant!r}; choose one of {SCHEDULE_VARIANTS}")
    if token_mask.ndim != 3:
        raise ValueError(f"mask must be [F_lat, h, w], got {list(token_mask.shape)}")
    F = token_mask.shape[0]
    if not 0 <= context_latents < F:
        raise ValueError(f"context latents must be in [0, {F - 1}] for {F} latent frames, got {context_latents}")
    if not 0.0 <= sigma_start <= 1.0:
        raise ValueError(f"sigma_start must be in [0, 1], got {sigma_start}")
    m = token_mask.float().clone()
    gen = m[context_latents:]
    if variant == "spatial":
        gen[:] = (gen.mean(dim=0, keepdim=True) > 0.5).float()
    elif variant == "temporal":
        gen[:] = (gen.mean(dim=(1, 2), keepdim=True) >= 0.5).float().expand_as(gen)
    elif variant == "full":
        gen[:] = 0.0
    S = gen * sigma_start + (1 - gen) * 1.0
    return torch.cat([torch.zeros_like(m[:context_latents]), S], dim=0)


def _colormap(x: Tensor) -> Tensor:
    """A viridis-like colour ramp (dark purple -> teal -> yellow) for values in [0, 1]: ``[..., 3]``."""
    stops = torch.tensor([
        [0.267, 0.005, 0.329], [0.230, 0.322, 0.546], [0.128, 0.567, 0.551],
        [0.369, 0.789, 0.383], [0.993, 0.906, 0.144],
    ])
    pos = x.clamp(0, 1) * (len(stops) - 1)
    i = pos.floor().long().clamp(max=len(stops) - 2)
    f = (pos - i).unsqueeze(-1)
    return stops[i] * (1 - f) + stops[i + 1] * f


def sigma_trace(sigma_map: Tensor, sigmas: Tensor) -> Tensor:
    """σ of every token at every step: ``min(Σ_i, s_k)`` -> ``[N+1, F_lat, h, w]``."""
    return torch.minimum(sigma_map.unsqueeze(0), sigmas.view(-1, 1, 1, 1).to(sigma_map))


def group_sigmas(strength: float, sigmas: Tensor, variant: ScheduleVariant = "spatio-temporal") -> dict[str, Tensor]:
    """σ at every step ``[N+1]`` of each token group under a variant, for previews without masks:
    context 0; holes from 1; warped tokens from σ_start, or from 1 under ``full`` (every generated
    token starts at pure noise). ``spatial`` and ``temporal`` only decide which tokens count as
    warped (per position / per frame), so their curves are the spatio-temporal ones."""
    if variant not in SCHEDULE_VARIANTS:
        raise ValueError(f"unknown schedule variant {variant!r}; choose one of {SCHEDULE_VARIANTS}")
    sig = sigmas.float()
    start = 1.0 if variant == "full" else sigma_start(strength, sig)
    return {"context": torch.zeros_like(sig), "warped": sig.clamp(max=start), "holes": sig.clone()}


PICTURE_SIZE = (400, 640)  # height, width of schedule_picture, whatever the chunk size and step count
PICTURE_LEFT = 62  # x of the heat map's first column (room for the frame labels and the group strip)
GROUP_COLOURS = {"context": (120, 170, 235), "warped": (90, 200, 120), "holes": (235, 95, 80)}  # RGB 0..255


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def picture_layout(size: tuple[int, int], titled: bool) -> tuple[int, int, int, int, int, int]:
    """Pixel boxes of :func:`schedule_picture`: heat map columns ``[left, right)`` and rows
    ``[heat_top, heat_bot)`` on top, the σ plot rows ``[plot_top, plot_bot]`` below, legend right."""
    H, W = size
    top = 30 if titled else 12
    plot_h = max(70, (H - top - 60) // 3)
    heat_bot = H - 44 - plot_h - 14
    return PICTURE_LEFT, W - 150, top, heat_bot, heat_bot + 14, H - 44


def schedule_picture(sigma_map: Tensor, sigmas: Tensor, rows: Literal["frames", "tokens"] = "frames",
                     title: str = "", size: tuple[int, int] = PICTURE_SIZE, max_tokens: int = 48) -> Tensor:
    """The Σ matrix over the denoising steps as a readable image ``[H, W, 3]`` in 0..1 (paper Fig. 9).

    ``sigma_map`` ``[F_lat, h, w]`` (any grid: token or latent resolution), ``sigmas`` ``[N+1]``.
    The picture has the fixed ``size`` (height, width) whatever the chunk size and step count:
      * top: a heat map, columns = steps (left: first step), colour = σ of a token at that step
        (``min(Σ, s_k)``; a viridis-like ramp, 0 dark purple, 1 yellow, with a colour bar).
        ``rows="frames"``: one band per latent frame, its tokens sorted by Σ so the band's
        height splits exactly into the frame's holes (top), warped tokens and context (bottom);
        ``rows="tokens"``: one row per token of an evenly spaced sample of at most ``max_tokens``.
        A strip left of step 0 marks each row's group: context (Σ = 0), warped (0 < Σ < 1), holes (Σ = 1).
      * bottom: σ against the step for each group (every distinct warped Σ), in the group colours;
      * axes (step, σ, latent frame) and a legend with each group's share of the tokens.
    Its text is ASCII ('sigma', 'tau'): PIL's default font has no Greek letters.
    """
    from PIL import Image, ImageDraw

    if sigma_map.ndim != 3:
        raise ValueError(f"sigma_map must be [F_lat, h, w], got {list(sigma_map.shape)}")
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError(f"sigmas must be [N+1] with N >= 1 steps, got {list(sigmas.shape)}")
    if rows not in ("frames", "tokens"):
        raise ValueError(f"rows must be 'frames' or 'tokens', got {rows!r}")
    H, W = size
    if H < 240 or W < 400:
        raise ValueError(f"schedule picture size must be at least 240x400 (height x width), got {H}x{W}")
    S = sigma_map.detach().float().cpu()
    sig = sigmas.detach().float().cpu()
    F, K = S.shape[0], sig.numel()  # K = N + 1 columns: the state before each step and the end
    steps = K - 1
    tokens = S.flatten(1)  # [F, L]

    left, right, heat_top, heat_bot, plot_top, plot_bot = picture_layout(size, bool(title))
    width = right - left
    col = (torch.arange(width) * K // width).clamp(max=K - 1)  # step of each pixel column

    # heat map rows: per pixel row, which frame and which Σ it shows
    if rows == "frames":
        band = (heat_bot - heat_top) / F
        pix = torch.arange(heat_bot - heat_top).float() + 0.5
        frame = (pix / band).long().clamp(max=F - 1)
        within = pix / band - frame  # 0..1 inside the band, top -> bottom
        sorted_desc = tokens.sort(dim=1, descending=True).values  # holes first, context last
        L = tokens.shape[1]
        row_sigma = sorted_desc[frame, (within * L).long().clamp(max=L - 1)]
        boundaries = [heat_top + round(f * band) for f in range(1, F)] if band >= 5 else []
        labels = [(heat_top + (f + 0.5) * band, str(f)) for f in range(F) if band >= 11 or f % max(1, round(11 / band)) == 0]
        y_name = "frame"
    else:
        flat = tokens.flatten()
        n = min(max_tokens, flat.numel())
        pick = torch.linspace(0, flat.numel() - 1, n).round().long()  # evenly spaced, in (frame, y, x) order
        band = (heat_bot - heat_top) / n
        pix = torch.arange(heat_bot - heat_top).float() + 0.5
        r = (pix / band).long().clamp(max=n - 1)
        row_sigma = flat[pick][r]
        frame_of = pick // tokens.shape[1]
        starts = [i for i in range(n) if i == 0 or frame_of[i] != frame_of[i - 1]]
        boundaries = [heat_top + round(i * band) for i in starts[1:]]
        labels = []
        for i in starts:  # a label per frame, where there is room for it
            y = heat_top + (i + 0.5) * band
            if not labels or y - labels[-1][0] >= 11:
                labels.append((y, str(int(frame_of[i]))))
        y_name = "frame"
    trace = torch.minimum(row_sigma[:, None], sig[col][None, :])  # [rows_px, width]

    img = Image.new("RGB", (W, H), (30, 30, 30))
    heat = (_colormap(trace) * 255).round().byte().numpy()
    img.paste(Image.fromarray(heat), (left, heat_top))
    d = ImageDraw.Draw(img)
    for y in boundaries:
        d.line([(left, y), (right - 1, y)], fill=(30, 30, 30))
    group = torch.where(row_sigma <= 0, 0, torch.where(row_sigma >= 1, 2, 1))
    names = ("context", "warped", "holes")
    for y in range(heat_bot - heat_top):
        d.line([(left - 10, heat_top + y), (left - 3, heat_top + y)], fill=GROUP_COLOURS[names[int(group[y])]])
    small, font = _font(11), _font(12)
    text = (215, 215, 215)
    if title:
        d.text((left, 8), title, fill=text, font=font)
    for y, lab in labels:
        d.text((left - 13, y), lab, fill=text, font=small, anchor="rm")
    d.text((6, (heat_top + heat_bot) / 2), y_name, fill=text, font=small, anchor="lm")

    # σ curves of each group
    d.rectangle([left, plot_top, right - 1, plot_bot], outline=(90, 90, 90))

    def px(k: float) -> float:
        return left + (k + 0.5) * width / K

    def py(v: float) -> float:
        return plot_bot - v * (plot_bot - plot_top)

    for v in (0.0, 0.5, 1.0):
        d.line([(left - 3, py(v)), (left, py(v))], fill=text)
        d.text((left - 6, py(v)), f"{v:g}", fill=text, font=small, anchor="rm")
    d.text((left + 5, plot_top + 3), "sigma", fill=text, font=small, anchor="lt")
    values = tokens.flatten()
    warped_starts = sorted({round(float(v), 4) for v in values[(values > 0) & (values < 1)].unique()[:4]})
    curves = [("holes", 1.0)] if (values >= 1).any() else []
    curves += [("warped", v) for v in warped_starts]
    curves += [("context", 0.0)] if (values <= 0).any() else []
    for name, start in curves:
        ys = torch.minimum(torch.tensor(start), sig)
        d.line([(px(k), py(float(ys[k]))) for k in range(K)], fill=GROUP_COLOURS[name], width=2)
    # step axis (shared by both panels)
    for k in sorted({0, steps // 2, steps}):
        d.line([(px(k), plot_bot), (px(k), plot_bot + 3)], fill=text)
        d.text((px(k), plot_bot + 5), str(k), fill=text, font=small, anchor="mt")
    d.text(((left + right) / 2, plot_bot + 20), f"step (of {steps}; the last column is the end)", fill=text,
           font=small, anchor="mt")

    # legend: groups with their share of tokens, and the σ colour bar
    lx, ly = right + 14, heat_top
    total = values.numel()
    shares = {"context": int((values <= 0).sum()), "warped": int(((values > 0) & (values < 1)).sum()),
              "holes": int((values >= 1).sum())}
    starts_txt = {"context": "sigma = 0, fixed", "holes": "from sigma = 1",
                  "warped": "from sigma = " + ", ".join(f"{v:.3f}" for v in warped_starts) if warped_starts else "none"}
    for i, name in enumerate(("context", "warped", "holes")):
        y = ly + 36 * i
        d.rectangle([lx, y + 2, lx + 10, y + 12], fill=GROUP_COLOURS[name])
        d.text((lx + 16, y), f"{name} {100 * shares[name] / total:.0f} %", fill=text, font=font)
        d.text((lx + 16, y + 15), starts_txt[name], fill=(170, 170, 170), font=small)
    bar_top, bar_bot = ly + 118, min(ly + 118 + 120, heat_bot + 40)
    ramp = _colormap(torch.linspace(1, 0, bar_bot - bar_top))[:, None, :].expand(-1, 14, 3)
    img.paste(Image.fromarray((ramp * 255).round().byte().numpy()), (lx, bar_top))
    d.text((lx + 20, bar_top), "sigma = 1", fill=text, font=small, anchor="lt")
    d.text((lx + 20, bar_bot), "sigma = 0", fill=text, font=small, anchor="lb")
    return torch.from_numpy(np.asarray(img).copy()).float() / 255
