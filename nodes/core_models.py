"""ST-Diff on ComfyUI's own models: a core ``MODEL`` (Wan 2.1 T2V), ``VAE`` and ``CLIP``.

:class:`CoreWanModel` has the interface the sampler node, the chunk loop and the pipeline use on
``worldwarp_core.models.WorldWarpModel`` (``encode_video``, ``decode_video``, ``encode_prompt``,
``denoiser``), so the ONE per-token schedule/sampler in ``worldwarp_core.sampler`` drives either.
Only two adapters differ:

* call the transformer: ComfyUI's ``WanModel`` takes a timestep per token (``t [B, L]`` gives one
  time embedding per token, ``comfy/ldm/wan/model.py``). Each call goes through
  ``comfy.model_management.load_models_gpu`` (the patcher's weights with LoRA patches, weight dtype,
  lowvram partial loading shared with the rest of the graph) and the model's ``APPLY_MODEL`` wrappers
  (TorchCompileModel), with the patcher's ``transformer_options`` (attention patches);
* encode/decode: the core VAE, latents normalised with the model's own latent format
  (``latent_format.process_in`` / ``process_out``, Wan21 = the diffusers per-channel mean/std);
  ``tiled=True`` uses the core VAE's ``encode_tiled`` / ``decode_tiled`` (its own tile sizes).

The shift of the flow schedule is the sampler's setting (the shipped scheduler config), not the
core model's ``ModelSamplingSD3`` shift, so both paths give the same numbers. Only imported inside
ComfyUI (or a script with ComfyUI on ``sys.path``); comfy is imported lazily.
"""

from __future__ import annotations

import json

import torch
from torch import Tensor

from worldwarp_core.models import check_chunk_video, scheduler_config

WEIGHT_DTYPES = ("default", "fp8_e4m3fn", "fp8_e5m2")
TEXT_LENGTH = 512  # Wan pads prompt embeddings to 512 tokens (zeros past the prompt)
# VAE tiles in space only (the whole clip in time: the causal Wan VAE split in time changes more), the
# sizes of the pack's diffusers path: 256 px tiles overlapping by 64 px (32 and 8 latent pixels)
TILE_PIXELS, TILE_OVERLAP_PIXELS, WHOLE_CLIP = 256, 64, 999


def is_core_model(model) -> bool:
    """A core ``MODEL`` (a ComfyUI ModelPatcher) rather than a ``WORLDWARP_MODEL``."""
    return hasattr(model, "load_device") and hasattr(model, "model_options") and not hasattr(model, "encode_video")


def pad_embeds(e: Tensor, length: int = TEXT_LENGTH) -> Tensor:
    """``[1, S, D]`` -> ``[1, max(S, length), D]`` with zeros appended (Wan's text padding)."""
    if e.shape[1] < length:
        e = torch.cat([e, e.new_zeros(e.shape[0], length - e.shape[1], e.shape[2])], dim=1)
    return e


def conditioning_embeds(conditioning) -> Tensor:
    """Core ``CONDITIONING`` (``[[tensor [1, S, D], {...}], ...]``) -> ``[1, S', D]`` float, padded to 512."""
    if not conditioning or not isinstance(conditioning[0], (list, tuple)) or not torch.is_tensor(conditioning[0][0]):
        raise ValueError("conditioning must come from CLIP Text Encode (a core CONDITIONING)")
    return pad_embeds(conditioning[0][0].float().cpu())


class CoreWanModel:
    """A core Wan 2.1 T2V ``MODEL`` + core ``VAE`` (+ ``CLIP`` for prompts) as an ST-Diff model."""

    def __init__(self, model, vae, clip=None, files: dict | None = None) -> None:
        if vae is None or not hasattr(vae, "decode"):
            raise ValueError("a core MODEL needs the core Wan VAE as well: connect Load VAE "
                             "(wan_2.1_vae.safetensors) to the node's 'vae' input")
        base = model.model
        fmt = getattr(base, "latent_format", None)
        if getattr(fmt, "latent_channels", None) != 16 or getattr(fmt, "latent_dimensions", 3) != 3 \
                or not hasattr(base.diffusion_model, "patch_embedding"):
            raise ValueError(f"the MODEL is a {type(base).__name__}, not Wan 2.1 text-to-video; load "
                             "wan2.1_t2v_1.3B_fp16.safetensors (or the WorldWarp checkpoint) with Load Diffusion Model")
        if base.diffusion_model.patch_embedding.weight.shape[1] != 16:
            raise ValueError("the MODEL takes extra input channels (an image-to-video or control Wan); ST-Diff needs "
                             "the text-to-video Wan 2.1")
        self.patcher = model
        self.vae = vae
        self.clip = clip
        self.latent_format = fmt
        self.scheduler_config = scheduler_config()
        self.files = files or _source_files(model=model, vae=getattr(vae, "patcher", None),
                                            text_encoder=getattr(clip, "patcher", None))
        self.transformer = None  # the sampler gets ``denoiser`` instead

    # ------------------------------------------------------------------ text
    @torch.no_grad()
    def encode_prompt(self, prompts: list[str], max_length: int = TEXT_LENGTH) -> Tensor:
        if self.clip is None:
            raise ValueError("prompts need a text encoder: connect Load CLIP (umt5_xxl, type wan) to the node's "
                             "'clip' input, or CLIP Text Encode to 'conditioning'")
        if len(prompts) != 1:
            raise ValueError("one prompt at a time")
        from worldwarp_core.caption import clean_prompt

        # cleaned as diffusers' Wan pipeline (and the pack's own encoder) does
        cond = self.clip.encode_from_tokens_scheduled(self.clip.tokenize(clean_prompt(prompts[0])))
        return pad_embeds(cond[0][0].float().cpu(), max_length)

    # ------------------------------------------------------------------ video
    @torch.no_grad()
    def encode_video(self, frames: Tensor, tiled: bool = False, check=None) -> Tensor:
        """Frames ``[F, H, W, 3]`` in 0..1 -> normalised latents ``[C, F_lat, H/8, W/8]`` (the model's latent
        format); ``check()`` runs inside the VAE's forward (``worldwarp_core.interrupt.checked``)."""
        from worldwarp_core.interrupt import checked

        check_chunk_video(frames)
        pixels = frames.float().cpu()
        with checked(getattr(self.vae, "first_stage_model", None), check):
            if tiled:  # [1, C, F_lat, h, w] raw VAE latents (in inference mode, as ComfyUI runs nodes)
                with torch.inference_mode():
                    z = self.vae.encode_tiled(pixels, tile_x=TILE_PIXELS, tile_y=TILE_PIXELS,
                                              overlap=TILE_OVERLAP_PIXELS)
                z = z.clone()
            else:
                z = self.vae.encode(pixels)
        return self.latent_format.process_in(z.float())[0].cpu()

    @torch.no_grad()
    def decode_video(self, z: Tensor, tiled: bool = False, check=None) -> Tensor:
        """Normalised latents ``[C, F_lat, h, w]`` -> frames ``[F, 8h, 8w, 3]`` in 0..1."""
        from worldwarp_core.interrupt import checked

        raw = self.latent_format.process_out(z.float().cpu().unsqueeze(0))
        with checked(getattr(self.vae, "first_stage_model", None), check):
            if tiled:  # ComfyUI's tiled decode updates its output in place: run it as ComfyUI runs nodes
                with torch.inference_mode():
                    images = self.vae.decode_tiled(raw, tile_x=TILE_PIXELS // 8, tile_y=TILE_PIXELS // 8,
                                                   overlap=TILE_OVERLAP_PIXELS // 8, tile_t=WHOLE_CLIP, overlap_t=1)
                images = images.clone()  # an ordinary tensor again
            else:
                images = self.vae.decode(raw)
        return images.reshape(-1, *images.shape[-3:]).float().clamp(0, 1).cpu()

    # ------------------------------------------------------------------ transformer
    def denoiser(self, prompt_embeds: Tensor, negative_embeds: Tensor | None, guidance_scale: float,
                 cfg_batch: str = "batched"):
        """``denoise_fn(x [1, C, F, h, w], timestep [1, L]) -> v`` on the core model; CFG in one forward of
        batch 2 (``cfg_batch="batched"``) or two forwards of batch 1 (``"sequential"``: ComfyUI is asked
        for the memory of one branch, so more of the model stays loaded on a small card)."""
        import comfy.model_management as mm
        import comfy.model_patcher
        import comfy.patcher_extension as pe

        from worldwarp_core.sampler import check_cfg_batch

        check_cfg_batch(cfg_batch)
        cfg = guidance_scale > 1.0
        if cfg and negative_embeds is None:
            raise ValueError("classifier-free guidance needs a negative conditioning (or cfg = 1)")
        batched = cfg and cfg_batch == "batched"
        if cfg:
            L = max(prompt_embeds.shape[1], negative_embeds.shape[1])
            contexts = [pad_embeds(negative_embeds.float(), L), pad_embeds(prompt_embeds.float(), L)]
            if batched:
                contexts = [torch.cat(contexts)]
        else:
            contexts = [prompt_embeds.float()]
        patcher = self.patcher
        options = comfy.model_patcher.create_model_options_clone(patcher.model_options)
        transformer_options = options.setdefault("transformer_options", {})
        pe.merge_nested_dicts(transformer_options.setdefault("wrappers", {}), patcher.wrappers, copy_dict1=False)
        pe.merge_nested_dicts(transformer_options.setdefault("callbacks", {}), patcher.callbacks, copy_dict1=False)

        def apply_model(x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None, **kwargs):
            # what BaseModel._apply_model does, with the timestep per token given as is (t = 1000·σ_i)
            transformer_options = transformer_options or {}
            base = patcher.model
            dtype = base.get_dtype_inference()
            xc = x.to(dtype)
            ctx = mm.cast_to_device(c_crossattn, xc.device, dtype)
            opts = transformer_options.copy()
            opts["prefetch_dynamic_vbars"] = base.current_patcher is not None and base.current_patcher.is_dynamic()
            return base.diffusion_model(xc, t.float(), context=ctx, control=control, transformer_options=opts).float()

        def denoise(x: Tensor, timestep: Tensor) -> Tensor:
            batch = 2 if batched else 1
            shape = [batch, *x.shape[1:]]
            mm.load_models_gpu([patcher], memory_required=patcher.memory_required(shape))
            device = patcher.load_device
            xb = x.to(device, torch.float32)
            tb = timestep.to(device, torch.float32)
            if batched:
                xb, tb = torch.cat([xb, xb]), torch.cat([tb, tb])
            patcher.pre_run()
            try:
                with torch.no_grad():
                    executor = pe.WrapperExecutor.new_class_executor(
                        apply_model, patcher.model, pe.get_all_wrappers(pe.WrappersMP.APPLY_MODEL, transformer_options))
                    vs = [executor.execute(xb, tb, None, c.to(device), None, transformer_options) for c in contexts]
            finally:
                patcher.cleanup()
            if cfg:
                v_neg, v_pos = vs[0].chunk(2) if batched else vs
                v = v_neg + guidance_scale * (v_pos - v_neg)
            else:
                v = vs[0]
            return v.to(x.device)

        return denoise

    def release(self) -> None:
        """Nothing to free: ComfyUI's model management owns the weights."""


def _source_files(**patchers) -> dict[str, str]:
    """The files ComfyUI loaded each model from, when it recorded them (for run manifests)."""
    files = {}
    for name, patcher in patchers.items():
        init = getattr(patcher, "cached_patcher_init", None)
        args = init[1] if isinstance(init, tuple) and len(init) > 1 and init[1] else ()
        first = args[0] if args else None
        if isinstance(first, (list, tuple)) and first:
            first = first[0]
        if isinstance(first, str):
            files[name] = first
    return files


def load_core_diffusion_model(state: dict[str, Tensor], weight_dtype: str = "default", source: str = ""):
    """A core ``MODEL`` from an original-layout Wan state dict (what core Load Diffusion Model does with a file)."""
    import comfy.sd

    if weight_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weight_dtype must be one of {WEIGHT_DTYPES}, got {weight_dtype!r}")
    options = {}
    if weight_dtype == "fp8_e4m3fn":
        options["dtype"] = torch.float8_e4m3fn
    elif weight_dtype == "fp8_e5m2":
        options["dtype"] = torch.float8_e5m2
    # ComfyUI detects every Wan size from the weights except the text width (it assumes UMT5-XXL's 4096);
    # its "config" metadata convention carries the one it cannot see
    text = state.get("text_embedding.0.weight")
    metadata = {"config": json.dumps({"transformer": {"text_dim": int(text.shape[1])}})} if text is not None else None
    model = comfy.sd.load_diffusion_model_state_dict(dict(state), model_options=options, metadata=metadata)
    if model is None:
        raise ValueError(f"{source or 'checkpoint'}: ComfyUI did not recognise the converted weights as a diffusion "
                         "model")
    return model


__all__ = ["CoreWanModel", "WEIGHT_DTYPES", "conditioning_embeds", "is_core_model", "load_core_diffusion_model",
           "pad_embeds"]
