"""ST-Diff components (Wan2.1-T2V-1.3B on diffusers/transformers): loading, dtype, offload, encode/decode.

Nothing here ever reaches a hub: architectures come from the configs shipped in
``worldwarp_core/configs/`` and weights from local files:

* a diffusers folder (``Wan2.1-T2V-1.3B-Diffusers`` layout: transformer/, vae/, text_encoder/,
  tokenizer/, scheduler/);
* single ``.safetensors`` files, as ComfyUI users keep them: the transformer in the original Wan
  key layout (``blocks.0.self_attn.q.weight``) or ComfyUI's repackaging of it (the same keys under
  ``model.diffusion_model.``), e.g. ``diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors``; the VAE
  (``vae/wan_2.1_vae.safetensors``, converted by diffusers' own single-file converter); the UMT5
  encoder (``text_encoders/umt5_xxl_fp16.safetensors``, transformers' key names);
* the official WorldWarp fine-tune ``worldwarp_latest.ckpt`` (a torch pickle holding the state dict
  of the patched diffusers transformer), read with ``torch.load(weights_only=True)`` only.

Latents are normalised as diffusers' Wan pipelines do: ``z = (mean_vae(x) - latents_mean) /
latents_std`` per channel, and back before decoding.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from .loading import cast_floats, compute_dtype, from_pretrained_local, move_to_cpu  # noqa: F401 - public here too
from .model_files import COMFY_FILES, SOURCES

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "wan2.1_t2v_1.3b")
# none: every component stays on the device; text_encoder: the UMT5 encoder (5.7 B parameters, about
# 11 GB in bf16, used once per new prompt) waits on the CPU between prompts; model: every component does
Offload = Literal["none", "text_encoder", "model"]
OFFLOADS: tuple[str, ...] = ("none", "text_encoder", "model")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp8": torch.float8_e4m3fn}

WHERE = {
    "transformer": "put wan2.1_t2v_1.3B_fp16.safetensors (or a diffusers transformer/ folder) in models/diffusion_models "
                   f"(from {SOURCES['transformer']})",
    "worldwarp": f"put the official worldwarp_latest.ckpt in models/diffusion_models (from {SOURCES['worldwarp']})",
    "vae": f"put wan_2.1_vae.safetensors in models/vae (from {SOURCES['vae']})",
    "text_encoder": f"put umt5_xxl_fp16.safetensors in models/text_encoders (from {SOURCES['text_encoder']})",
    "tokenizer": "put the umt5-xxl tokenizer folder (tokenizer.json / spiece.model) in "
                 f"models/worldwarp/umt5-xxl-tokenizer (from {SOURCES['tokenizer']})",
}


def _require(path: str, what: str) -> str:
    if not path or not os.path.exists(path):
        folder = os.path.dirname(os.path.abspath(path)) if path else "(none given)"
        raise ValueError(f"{what} not found: '{path}' (searched in {folder}); {WHERE.get(what, '')}".rstrip("; "))
    return path


def _config(name: str) -> dict:
    with open(os.path.join(CONFIG_DIR, name, "config.json"), encoding="utf-8") as f:
        return {k: v for k, v in json.load(f).items() if not k.startswith("_")}


def scheduler_config() -> dict:
    with open(os.path.join(CONFIG_DIR, "scheduler", "scheduler_config.json"), encoding="utf-8") as f:
        return json.load(f)


# ----------------------------------------------------------------------------- key layouts
# original Wan (wan/modules/model.py) name fragment -> diffusers WanTransformer3DModel fragment
_WAN_TO_DIFFUSERS = [
    ("time_embedding.0.", "condition_embedder.time_embedder.linear_1."),
    ("time_embedding.2.", "condition_embedder.time_embedder.linear_2."),
    ("text_embedding.0.", "condition_embedder.text_embedder.linear_1."),
    ("text_embedding.2.", "condition_embedder.text_embedder.linear_2."),
    ("time_projection.1.", "condition_embedder.time_proj."),
    (".self_attn.q.", ".attn1.to_q."), (".self_attn.k.", ".attn1.to_k."), (".self_attn.v.", ".attn1.to_v."),
    (".self_attn.o.", ".attn1.to_out.0."), (".self_attn.norm_q.", ".attn1.norm_q."),
    (".self_attn.norm_k.", ".attn1.norm_k."),
    (".cross_attn.q.", ".attn2.to_q."), (".cross_attn.k.", ".attn2.to_k."), (".cross_attn.v.", ".attn2.to_v."),
    (".cross_attn.o.", ".attn2.to_out.0."), (".cross_attn.norm_q.", ".attn2.norm_q."),
    (".cross_attn.norm_k.", ".attn2.norm_k."),
    (".norm3.", ".norm2."),  # the affine cross-attention norm
    (".ffn.0.", ".ffn.net.0.proj."), (".ffn.2.", ".ffn.net.2."),
]
_COMFY_PREFIX = "model.diffusion_model."


def wan_to_diffusers_key(key: str) -> str:
    if key.startswith("head.head."):
        return "proj_out." + key[len("head.head."):]
    if key == "head.modulation":
        return "scale_shift_table"
    if key.startswith("blocks.") and key.endswith(".modulation"):
        return key[: -len("modulation")] + "scale_shift_table"
    for a, b in _WAN_TO_DIFFUSERS:
        if key.startswith(a) or (a.startswith(".") and a in key):
            return key.replace(a, b, 1)
    return key


def diffusers_to_wan_key(key: str) -> str:
    if key.startswith("proj_out."):
        return "head.head." + key[len("proj_out."):]
    if key == "scale_shift_table":
        return "head.modulation"
    if key.startswith("blocks.") and key.endswith(".scale_shift_table"):
        return key[: -len("scale_shift_table")] + "modulation"
    for a, b in _WAN_TO_DIFFUSERS:
        if key.startswith(b) or (b.startswith(".") and b in key):
            return key.replace(b, a, 1)
    return key


def transformer_layout(keys) -> Literal["diffusers", "wan", "comfyui"]:
    keys = list(keys)
    if any(k.startswith(_COMFY_PREFIX) for k in keys):
        return "comfyui"
    if any(".self_attn." in k or k.startswith("head.head") for k in keys):
        return "wan"
    return "diffusers"


def to_diffusers_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Any supported transformer key layout -> diffusers keys."""
    layout = transformer_layout(state)
    if layout == "comfyui":
        state = {k[len(_COMFY_PREFIX):] if k.startswith(_COMFY_PREFIX) else k: v for k, v in state.items()}
        layout = transformer_layout(state)
    if layout == "wan":
        return {wan_to_diffusers_key(k): v for k, v in state.items()}
    return dict(state)


def save_transformer_file(transformer, path: str, layout: Literal["diffusers", "wan", "comfyui"] = "wan",
                          embed_config: bool = False) -> None:
    """Write a transformer as one ``.safetensors`` in the given key layout (tests, training exports).

    ``embed_config`` stores the architecture in the file's metadata (``worldwarp_config``), so a
    size other than the shipped Wan2.1 configs (a fine-tune of another width, tiny test models)
    loads without a config argument.
    """
    from safetensors.torch import save_file

    sd = {k: v.detach().cpu().contiguous() for k, v in transformer.state_dict().items()}
    if layout in ("wan", "comfyui"):
        sd = {diffusers_to_wan_key(k): v for k, v in sd.items()}
    if layout == "comfyui":
        sd = {_COMFY_PREFIX + k: v for k, v in sd.items()}
    meta = {"worldwarp_config": json.dumps(dict(transformer.config))} if embed_config else None
    save_file(sd, path, metadata=meta)


def _embedded_config(path: str) -> dict | None:
    from safetensors import safe_open

    try:
        with safe_open(path, "pt") as f:
            meta = f.metadata() or {}
    except Exception:  # noqa: BLE001 - unreadable files are reported by the loader itself
        return None
    if "worldwarp_config" not in meta:
        return None
    return {k: v for k, v in json.loads(meta["worldwarp_config"]).items() if not k.startswith("_")}


def _transformer_config_for(state: dict[str, Tensor]) -> dict:
    """The shipped 1.3B config with sizes read from the weights (so the 14B file also loads)."""
    cfg = _config("transformer")
    if "patch_embedding.weight" not in state:
        raise ValueError("not a Wan transformer state dict: no 'patch_embedding.weight'")
    dim = state["patch_embedding.weight"].shape[0]
    if dim % cfg["attention_head_dim"]:
        raise ValueError(f"transformer width {dim} is not a Wan2.1 size (1536 for 1.3B, 5120 for 14B); "
                         "pass its config explicitly")
    cfg["in_channels"] = state["patch_embedding.weight"].shape[1]
    cfg["num_attention_heads"] = dim // cfg["attention_head_dim"]
    cfg["num_layers"] = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    cfg["ffn_dim"] = state["blocks.0.ffn.net.0.proj.weight"].shape[0]
    cfg["text_dim"] = state["condition_embedder.text_embedder.linear_1.weight"].shape[1]
    cfg["freq_dim"] = state["condition_embedder.time_embedder.linear_1.weight"].shape[1]
    cfg["out_channels"] = state["proj_out.weight"].shape[0] // 4
    return cfg


def _read_safetensors(path: str) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f"{path}: not a readable .safetensors file ({e}); the file may be incomplete or corrupt") from None


def _apply_dtype(module, dtype: torch.dtype):
    if dtype == torch.float8_e4m3fn:
        # fp8 storage, bf16 compute (diffusers' layerwise casting upcasts each layer when it runs)
        cast_floats(module, torch.bfloat16)
        module.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.bfloat16)
        return module
    return cast_floats(module, dtype)


def load_transformer(path: str, dtype: torch.dtype = torch.float32, config: dict | None = None):
    """A ``WanTransformer3DModel`` from a diffusers folder or a single ``.safetensors`` file (any layout)."""
    from diffusers import WanTransformer3DModel

    _require(path, "transformer")
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise ValueError(f"{path}: no config.json; a diffusers transformer/ folder holds config.json and weights")
        model = from_pretrained_local(WanTransformer3DModel, path, "transformer", torch_dtype=torch.float32)
        return _apply_dtype(model.eval(), dtype)
    if path.endswith((".ckpt", ".pt", ".pth", ".bin")):
        state = to_diffusers_state_dict(read_checkpoint(path))
    else:
        state = to_diffusers_state_dict(_read_safetensors(path))
        config = config or _embedded_config(path)
    model = WanTransformer3DModel.from_config(config or _transformer_config_for(state))
    _load_exact(model, state, path)
    return _apply_dtype(model.eval(), dtype)


def _load_exact(model, state: dict[str, Tensor], path: str) -> None:
    """Load ``state`` into ``model`` or raise listing missing/unexpected/mis-shaped keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if shapes:
            k = sorted(shapes)[0]
            parts.append(f"{len(shapes)} with other shapes (e.g. {k}: file {list(state[k].shape)}, model {list(own[k].shape)})")
        raise ValueError(f"{path} does not match the {type(model).__name__} architecture: " + "; ".join(parts)
                         + ". Nothing was loaded.")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def read_checkpoint(path: str) -> dict[str, Tensor]:
    """A torch pickle state dict, read with ``weights_only=True``; containers and prefixes unwrapped."""
    _require(path, "worldwarp")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"{path}: refusing to load: the pickle needs code execution (only plain tensors are read, "
            f"weights_only=True). Convert it to .safetensors with trusted code first. ({str(e).splitlines()[0]})"
        ) from None
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path}: not a readable torch checkpoint ({e})") from None
    for key in ("ema", "ema_state_dict", "state_dict", "model", "module", "transformer"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a state dict of tensors (possibly under 'state_dict'/'model'/'ema')")
    out = dict(obj)
    changed = True
    while changed:  # strip wrapper prefixes, possibly nested ("module.model.")
        changed = False
        for prefix in ("module.", "_orig_mod.", "transformer.", "model.", "dit."):
            if out and all(k.startswith(prefix) for k in out) and not all(k.startswith(_COMFY_PREFIX) for k in out):
                out = {k[len(prefix):]: v for k, v in out.items()}
                changed = True
    return out


def load_worldwarp_checkpoint(path: str, transformer) -> None:
    """Load the official WorldWarp fine-tune (``worldwarp_latest.ckpt``) onto ``transformer`` in place."""
    state = to_diffusers_state_dict(read_checkpoint(path))
    _load_exact(transformer, state, path)


def load_vae(path: str, dtype: torch.dtype = torch.float32, config: dict | None = None):
    from diffusers import AutoencoderKLWan

    _require(path, "vae")
    if os.path.isdir(path):
        return from_pretrained_local(AutoencoderKLWan, path, "vae", torch_dtype=dtype).eval()
    state = _read_safetensors(path)
    if not any(k.startswith(("encoder.down_blocks", "encoder.conv_in", "quant_conv")) for k in state):
        if not any(k.startswith(("encoder.conv1.", "decoder.upsamples.")) for k in state):
            raise ValueError(f"vae: {path} is neither a diffusers AutoencoderKLWan file nor the original Wan2.1 VAE "
                             "layout (wan_2.1_vae.safetensors); put the Wan2.1 VAE in models/vae")
        # original Wan VAE layout (ComfyUI's wan_2.1_vae.safetensors): renamed with diffusers' own key
        # converter (what its from_single_file uses); nothing is fetched
        from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

        state = convert_wan_vae_to_diffusers(state)
    model = AutoencoderKLWan.from_config(config or _embedded_config(path) or _config("vae"))
    _load_exact(model, state, path)
    return cast_floats(model, dtype).eval()


def load_text_encoder(path: str, dtype: torch.dtype = torch.float32):
    from transformers import UMT5Config, UMT5EncoderModel

    _require(path, "text_encoder")
    if os.path.isdir(path):
        return from_pretrained_local(UMT5EncoderModel, path, "text_encoder", torch_dtype=dtype).eval()
    state = _read_safetensors(path)
    state = {k: v for k, v in state.items() if k != "spiece_model"}  # ComfyUI may embed the tokenizer
    if "shared.weight" not in state and "encoder.embed_tokens.weight" in state:
        state["shared.weight"] = state["encoder.embed_tokens.weight"]
    # the keys the architecture is read from; a file without them is not a UMT5 encoder
    need = ["shared.weight", "encoder.block.0.layer.1.DenseReluDense.wi_0.weight",
            "encoder.block.0.layer.0.SelfAttention.q.weight",
            "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    missing = [k for k in need if k not in state]
    if missing:
        raise ValueError(f"text_encoder: {path} is not a UMT5 encoder file (missing {', '.join(missing)}); "
                         f"{WHERE['text_encoder']}")
    state.setdefault("encoder.embed_tokens.weight", state["shared.weight"])
    cfg = _config("text_encoder")
    cfg["vocab_size"], cfg["d_model"] = state["shared.weight"].shape
    cfg["num_layers"] = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.block."))
    cfg["d_ff"] = state["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"].shape[0]
    q = state["encoder.block.0.layer.0.SelfAttention.q.weight"]
    cfg["relative_attention_num_buckets"], cfg["num_heads"] = state[
        "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"].shape
    cfg["d_kv"] = q.shape[0] // cfg["num_heads"]
    model = UMT5EncoderModel(UMT5Config(**cfg))
    _load_exact(model, state, path)
    return model.to(dtype).eval()


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    _require(path, "tokenizer")
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"tokenizer: {path} could not be loaded ({first}); {WHERE['tokenizer']}") from None


def check_chunk_video(frames: Tensor) -> None:
    """Frames ``[F, H, W, 3]`` the Wan VAE can encode: ``F = 4k+1``, sides multiples of 16."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [F, H, W, 3], got {list(frames.shape)}")
    F, H, W, _ = frames.shape
    if (F - 1) % 4 or H % 16 or W % 16:
        raise ValueError(f"video of {F} frames at {W}x{H}: frames must be 4k+1 and sizes multiples of 16")


@contextlib.contextmanager
def vae_tiling(vae, on: bool):
    """diffusers' spatial VAE tiling (tiles of ``tile_sample_min_*`` pixels, 256 by default, every
    ``tile_sample_stride_*`` = 192, blended linearly over the 64-pixel overlap) switched on for the
    block and back to the VAE's own setting after it. Frames no larger than one tile run untiled."""
    if not on:
        yield vae
        return
    if not hasattr(vae, "enable_tiling"):
        raise ValueError(f"vae_tiling: the {type(vae).__name__} VAE has no tiled mode; switch vae_tiling off")
    was = getattr(vae, "use_tiling", False)
    vae.enable_tiling()
    try:
        yield vae
    finally:
        vae.use_tiling = was


# ----------------------------------------------------------------------------- the bundle
@dataclass
class WorldWarpModel:
    """The ST-Diff components and how to run them."""

    transformer: object
    vae: object
    text_encoder: object
    tokenizer: object
    scheduler_config: dict = field(default_factory=scheduler_config)
    device: str = "cpu"
    offload: Offload = "none"
    files: dict[str, str] = field(default_factory=dict)  # what was loaded from where (run manifests)

    @property
    def compute_dtype(self) -> torch.dtype:
        return compute_dtype(self.transformer)

    def _offloaded(self, module) -> bool:
        """Whether ``module`` waits on the CPU between uses (``offload``)."""
        return self.offload == "model" or (self.offload == "text_encoder" and module is self.text_encoder)

    def _use(self, module):
        if self._offloaded(module):
            module.to(self.device)
        return module

    def _done(self, module) -> None:
        if self._offloaded(module):
            move_to_cpu(module)

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str], max_length: int = 512) -> Tensor:
        """UMT5 embeddings ``[B, max_length, D]``, padded like Wan: positions past the prompt are zero.
        Each prompt is cleaned first as diffusers' Wan pipeline does (``caption.clean_prompt``)."""
        from .caption import clean_prompt

        prompts = [clean_prompt(p) for p in prompts]
        tok = self.tokenizer(prompts, padding="max_length", max_length=max_length, truncation=True,
                             add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
        enc = self._use(self.text_encoder)
        dev = next(enc.parameters()).device
        h = enc(tok.input_ids.to(dev), tok.attention_mask.to(dev)).last_hidden_state.float()
        self._done(enc)
        keep = tok.attention_mask.to(h.device).unsqueeze(-1).bool()
        return torch.where(keep, h, torch.zeros_like(h)).cpu()

    def _latent_stats(self, z: Tensor) -> tuple[Tensor, Tensor]:
        cfg = self.vae.config
        mean = torch.tensor(cfg.latents_mean, dtype=z.dtype, device=z.device).view(-1, 1, 1, 1)
        std = torch.tensor(cfg.latents_std, dtype=z.dtype, device=z.device).view(-1, 1, 1, 1)
        return mean, std

    @torch.no_grad()
    def encode_video(self, frames: Tensor, tiled: bool = False, check=None) -> Tensor:
        """Frames ``[F, H, W, 3]`` in 0..1 -> normalised latents ``[C, F_lat, H/8, W/8]``.

        ``tiled``: the VAE runs on overlapping 256x256-pixel tiles blended at the seams (diffusers'
        tiling), so its activations are a tile's, not the frame's; the latents differ slightly.
        ``check()`` (may raise to interrupt) runs inside the VAE's forward (``interrupt.checked``)."""
        from .interrupt import checked

        check_chunk_video(frames)
        vae = self._use(self.vae)
        p = next(vae.parameters())
        x = (frames.permute(3, 0, 1, 2).unsqueeze(0) * 2 - 1).to(p.device, p.dtype)
        with vae_tiling(vae, tiled), checked(vae, check):
            z = vae.encode(x).latent_dist.mode()[0].float()
        self._done(vae)
        mean, std = self._latent_stats(z)
        return ((z - mean) / std).cpu()

    @torch.no_grad()
    def decode_video(self, z: Tensor, tiled: bool = False, check=None) -> Tensor:
        """Normalised latents ``[C, F_lat, h, w]`` -> frames ``[F, 8h, 8w, 3]`` in 0..1 (``tiled``,
        ``check``: as in :meth:`encode_video`)."""
        from .interrupt import checked

        vae = self._use(self.vae)
        p = next(vae.parameters())
        mean, std = self._latent_stats(z.float())
        x = (z.float() * std + mean).unsqueeze(0).to(p.device, p.dtype)
        with vae_tiling(vae, tiled), checked(vae, check):
            video = vae.decode(x, return_dict=False)[0][0].float()
        self._done(vae)
        return ((video.clamp(-1, 1) + 1) / 2).permute(1, 2, 3, 0).cpu()

    def release(self) -> None:
        """Drop every component (free memory at the end of a run or on error)."""
        for name in ("transformer", "vae", "text_encoder"):
            setattr(self, name, None)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _place(model: WorldWarpModel) -> WorldWarpModel:
    if model.offload not in OFFLOADS:
        raise ValueError(f"offload must be one of {', '.join(OFFLOADS)}; got {model.offload!r}")
    for module in (model.transformer, model.vae, model.text_encoder):
        module.to("cpu" if model._offloaded(module) else model.device)
    return model


def load_diffusers_folder(path: str, dtype: str | torch.dtype = "bf16", device: str = "cpu",
                          offload: Offload = "none") -> WorldWarpModel:
    """Load a ``Wan2.1-T2V-1.3B-Diffusers``-layout folder."""
    if not os.path.isdir(path):
        raise ValueError(f"diffusers model folder not found: {path} (it holds transformer/, vae/, text_encoder/, tokenizer/)")
    missing = [s for s in ("transformer", "vae", "text_encoder", "tokenizer") if not os.path.isdir(os.path.join(path, s))]
    if missing:
        raise ValueError(f"{path} is not a Wan diffusers folder: missing {missing} "
                         "(expected the Wan2.1-T2V-1.3B-Diffusers layout)")
    dt = DTYPES[dtype] if isinstance(dtype, str) else dtype
    sched = scheduler_config()
    sched_file = os.path.join(path, "scheduler", "scheduler_config.json")
    if os.path.isfile(sched_file):
        with open(sched_file, encoding="utf-8") as f:
            sched = json.load(f)
    te_dtype = torch.bfloat16 if dt == torch.float8_e4m3fn else dt
    model = WorldWarpModel(
        transformer=load_transformer(os.path.join(path, "transformer"), dt),
        vae=load_vae(os.path.join(path, "vae"), torch.float32),
        text_encoder=load_text_encoder(os.path.join(path, "text_encoder"), te_dtype),
        tokenizer=load_tokenizer(os.path.join(path, "tokenizer")),
        scheduler_config=sched, device=device, offload=offload, files={"diffusers_folder": path},
    )
    return _place(model)


def load_components(transformer_file: str, vae_file: str, text_encoder_file: str, tokenizer_dir: str,
                    worldwarp_ckpt: str | None = None, dtype: str | torch.dtype = "bf16", device: str = "cpu",
                    offload: Offload = "none", transformer_config: dict | None = None,
                    vae_config: dict | None = None) -> WorldWarpModel:
    """Load the files ComfyUI users keep (diffusion_models/, vae/, text_encoders/) + the fine-tune."""
    dt = DTYPES[dtype] if isinstance(dtype, str) else dtype
    transformer = load_transformer(transformer_file, torch.float32, transformer_config)
    if worldwarp_ckpt:
        load_worldwarp_checkpoint(worldwarp_ckpt, transformer)
    te_dtype = torch.bfloat16 if dt == torch.float8_e4m3fn else dt
    files = {"transformer": transformer_file, "vae": vae_file, "text_encoder": text_encoder_file,
             "tokenizer": tokenizer_dir}
    if worldwarp_ckpt:
        files["worldwarp"] = worldwarp_ckpt
    model = WorldWarpModel(
        transformer=_apply_dtype(transformer, dt), vae=load_vae(vae_file, torch.float32, vae_config),
        text_encoder=load_text_encoder(text_encoder_file, te_dtype), tokenizer=load_tokenizer(tokenizer_dir),
        device=device, offload=offload, files=files,
    )
    return _place(model)


# ----------------------------------------------------------------------------- model folder checks
def check_models(models_dir: str) -> list[dict]:
    """Which model files are found under a ComfyUI-style ``models/`` folder, and where to get the rest."""
    if not os.path.isdir(models_dir):
        raise ValueError(f"models folder not found: {models_dir}")
    report = []
    for what, sub, names in COMFY_FILES:
        found = next((os.path.join(models_dir, sub, n) for n in names if os.path.exists(os.path.join(models_dir, sub, n))), None)
        report.append({"component": what, "folder": os.path.join(models_dir, sub), "found": found,
                       "expected": list(names), "hint": WHERE[what]})
    return report


def find_components(models_dir: str) -> dict[str, str | None]:
    return {r["component"]: r["found"] for r in check_models(models_dir)}


# ----------------------------------------------------------------------------- tiny models (tests, demo)
TINY_TEXT_DIM = 32
TINY_TRANSFORMER_CONFIG = {
    "patch_size": [1, 2, 2], "num_attention_heads": 2, "attention_head_dim": 8, "in_channels": 16,
    "out_channels": 16, "text_dim": TINY_TEXT_DIM, "freq_dim": 16, "ffn_dim": 32, "num_layers": 2,
    "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "rope_max_seq_len": 64,
}
TINY_VAE_CONFIG = {"base_dim": 8, "z_dim": 16, "dim_mult": [1, 1, 1, 1], "num_res_blocks": 1,
                   "temperal_downsample": [False, True, True]}


def tiny_tokenizer(vocab_words: int = 0):
    """A tiny character-level T5-style tokenizer built in code (tokenizers library), no files needed."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = list("abcdefghijklmnopqrstuvwxyz0123456789,.'-!?")
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, "▁": 3}
    for c in chars:
        vocab[c] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def tiny_components(seed: int = 0):
    """Tiny random transformer, VAE and UMT5 encoder with the real classes (for tests and the demo)."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    transformer = WanTransformer3DModel.from_config(TINY_TRANSFORMER_CONFIG).eval()
    vae = AutoencoderKLWan.from_config(TINY_VAE_CONFIG).eval()
    te = UMT5EncoderModel(UMT5Config(vocab_size=64, d_model=TINY_TEXT_DIM, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
                                     relative_attention_num_buckets=8, feed_forward_proj="gated-gelu")).eval()
    return transformer, vae, te


def tiny_model(seed: int = 0, device: str = "cpu") -> WorldWarpModel:
    """A complete tiny random-weight ``WorldWarpModel``: a pipeline check, its output is noise."""
    transformer, vae, te = tiny_components(seed)
    return WorldWarpModel(transformer.to(device), vae.to(device), te.to(device), tiny_tokenizer(),
                          device=device, files={"tiny": f"random weights, seed {seed}"})


def save_vae_file(vae, path: str) -> None:
    """A diffusers-keyed VAE ``.safetensors`` with its config in the metadata."""
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in vae.state_dict().items()}, path,
              metadata={"worldwarp_config": json.dumps(dict(vae.config))})


def save_tiny_comfy_files(models_dir: str, seed: int = 0) -> dict[str, str]:
    """Tiny random models laid out as a ComfyUI ``models/`` folder (node and workflow tests, demos)."""
    m = tiny_model(seed)
    paths = {
        "transformer": os.path.join(models_dir, "diffusion_models", "worldwarp_tiny_test.safetensors"),
        "vae": os.path.join(models_dir, "vae", "worldwarp_tiny_vae_test.safetensors"),
        "text_encoder": os.path.join(models_dir, "text_encoders", "worldwarp_tiny_umt5_test.safetensors"),
        "tokenizer": os.path.join(models_dir, "worldwarp", "tiny-umt5-tokenizer"),
    }
    for p in paths.values():
        os.makedirs(os.path.dirname(p), exist_ok=True)
    from safetensors.torch import save_file

    save_transformer_file(m.transformer, paths["transformer"], "comfyui", embed_config=True)
    save_vae_file(m.vae, paths["vae"])
    te = {k: v.contiguous() for k, v in m.text_encoder.state_dict().items() if k != "encoder.embed_tokens.weight"}
    save_file(te, paths["text_encoder"])
    m.tokenizer.save_pretrained(paths["tokenizer"])
    return paths


def save_tiny_diffusers_folder(path: str, seed: int = 0) -> str:
    """Write a tiny model in the ``Wan2.1-T2V-1.3B-Diffusers`` folder layout (tests, demo)."""
    m = tiny_model(seed)
    m.transformer.save_pretrained(os.path.join(path, "transformer"))
    m.vae.save_pretrained(os.path.join(path, "vae"))
    m.text_encoder.save_pretrained(os.path.join(path, "text_encoder"))
    m.tokenizer.save_pretrained(os.path.join(path, "tokenizer"))
    os.makedirs(os.path.join(path, "scheduler"), exist_ok=True)
    with open(os.path.join(path, "scheduler", "scheduler_config.json"), "w", encoding="utf-8") as f:
        json.dump(scheduler_config(), f)
    return path
