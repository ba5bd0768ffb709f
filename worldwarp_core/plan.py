"""Memory and time of one chunk, planned without a GPU, and the ``vram`` choice made from it.

Two halves:

* **Tools to plan a stage** (used by ``benchmarks/plan_chunk.py`` and the tests): the stage runs on
  PyTorch fake tensors (``FakeTensorMode``: shapes, dtypes and storages, no data and no memory),
  :class:`LiveBytes` follows every storage an operator creates until its last reference goes (a
  weak-reference finaliser), so its peak is the stage's activation peak over the tensors'
  lifetimes, and :func:`flop_counter` counts FLOPs (``torch.utils.flop_counter``, plus the CPU
  flash-attention kernel it does not know). :func:`measured_peak` is the check: the CPU
  allocator's own live bytes during a real run (the profiler's memory events).
* **The per-setting model** (used by the CLI and the loop nodes): :data:`PLAN` holds the planned
  weights and activation peaks of each stage of a 49-frame 480x720 chunk (what
  ``python benchmarks/plan_chunk.py --json`` prints, planned, not measured on a GPU);
  :func:`planned_peak` composes them for a setting (dtype, offload, CFG batching, geometry batch,
  VAE tiling) and :func:`pick_settings` picks the fastest profile that fits the free memory.

Peaks are what the tensors hold; an allocator adds rounding and fragmentation on top (the CUDA
caching allocator typically a few per cent), which the pick leaves as headroom (:data:`HEADROOM`).
"""

from __future__ import annotations

import contextlib
import json
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

GB = 1e9

# ----------------------------------------------------------------------------- tracking tools


class LiveBytes(TorchDispatchMode):
    """Live bytes of the storages operators create while the mode is active, and their peak.

    A storage is counted once (views and in-place results share it) from the operator that
    created it until Python drops its last reference; tensors that existed before (weights) are
    not counted. Works on fake, meta and real tensors alike.
    """

    def __init__(self, device_type: str | None = None, scratch: Callable | None = None) -> None:
        super().__init__()
        self.device_type = device_type  # count only storages on this device type ("cuda"); None: all
        # buffers a kernel allocates and frees inside one operator (invisible to dispatch):
        # scratch(func, args, out) -> bytes, added to the peak while that operator runs
        self.scratch = scratch
        self.live = 0
        self.peak = 0
        self._seen: dict[int, int] = {}

    @staticmethod
    def _storage(t: torch.Tensor):
        try:
            return t.untyped_storage()
        except (NotImplementedError, RuntimeError):  # sparse / storage-less tensors
            return None

    def _track(self, t: torch.Tensor, inputs: set[int]) -> None:
        s = self._storage(t)
        if s is None:
            return
        key = id(s)
        # a view or in-place result of an input (a weight, or a tensor already counted) is not new
        if key in self._seen or key in inputs or (self.device_type is not None and s.device.type != self.device_type):
            return
        n = int(s.nbytes())
        self._seen[key] = n
        self.live += n
        self.peak = max(self.peak, self.live)
        weakref.finalize(s, self._drop, key, n)

    def _drop(self, key: int, n: int) -> None:
        if self._seen.pop(key, None) is not None:
            self.live -= n

    def reset_peak(self) -> None:
        self.peak = self.live

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = {id(st) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)
                  for st in [self._storage(t)] if st is not None}
        out = func(*args, **kwargs)
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._track(t, inputs)
        if self.scratch is not None:
            self.peak = max(self.peak, self.live + int(self.scratch(func, args, out)))
        return out


def cpu_kernel_scratch(func, args, out) -> int:
    """The buffers PyTorch's CPU (oneDNN) convolutions allocate inside the operator, as measured with
    the CPU allocator: a blocked-layout copy of the larger of input and output for a convolution,
    two output-sized buffers for a transposed one. Only for checking the plan against the CPU
    allocator; a GPU's kernels (cuDNN workspaces) are covered by the pick's headroom instead."""
    if func is not torch.ops.aten.convolution.default:
        return 0
    x = args[0]
    transposed = bool(args[6]) if len(args) > 6 else False
    out_bytes = out.numel() * out.element_size()
    return 2 * out_bytes if transposed else max(out_bytes, x.numel() * x.element_size())


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of CPU flash attention: ``QK^T`` and ``PV`` (``2·B·H·L·S·(D + Dv)``), as torch counts
    the CUDA kernels (``flop_counter.sdpa_flop_count``)."""
    B, H, L, D = query_shape
    S, Dv = key_shape[-2], value_shape[-1]
    return 2 * B * H * L * S * D + 2 * B * H * L * S * Dv


def flop_counter() -> torch.utils.flop_counter.FlopCounterMode:
    """``FlopCounterMode`` (no display) that also counts ``_scaled_dot_product_flash_attention_for_cpu``."""
    from torch.utils.flop_counter import FlopCounterMode

    extra = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}
    return FlopCounterMode(display=False, custom_mapping=extra)


def tensor_bytes(tensors) -> int:
    """Bytes of the distinct storages behind ``tensors`` (a module's parameters and buffers)."""
    seen, total = set(), 0
    for t in tensors:
        s = t.untyped_storage()
        if id(s) not in seen:
            seen.add(id(s))
            total += int(s.nbytes())
    return total


def module_bytes(module: torch.nn.Module) -> int:
    return tensor_bytes(list(module.parameters()) + list(module.buffers()))


@dataclass
class StageTrace:
    """One stage on fake tensors: FLOPs, activation peak (bytes above what existed before)."""

    flops: int
    activation_peak: int


def trace(fn: Callable[[], object], device_type: str | None = None, scratch: Callable | None = None) -> StageTrace:
    """Run ``fn`` (inside a ``FakeTensorMode`` the caller entered, or on real tensors) counting FLOPs
    and the peak of the storages its operators create (on ``device_type`` only, when given; plus
    ``scratch``, see :class:`LiveBytes`)."""
    live = LiveBytes(device_type, scratch)
    with torch.no_grad(), flop_counter() as fc, live:
        out = fn()
        del out
    return StageTrace(int(fc.get_total_flops()), int(live.peak))


def measured_peak(fn: Callable[[], object]) -> int:
    """The CPU allocator's peak live bytes while ``fn`` runs on real tensors (profiler memory events:
    every allocation and free the allocator reports, summed in time order)."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
        del out
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    return peak


@contextlib.contextmanager
def fake_mode():
    """A ``FakeTensorMode`` in which models can be built, cast and run at full size without memory.

    ``Module.to`` casts parameters by replacing them (torch would swap fake tensors in place, which
    its weak references to them forbid). Everything stays on the (fake) CPU: attention there runs
    the fused flash kernel's shape function, which holds what a GPU's flash attention holds (the
    output and its log-sum-exp, never the L x S scores).
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    real_to = torch.nn.Module.to

    def module_to(self, *args, **kwargs):
        _device, dtype, _non_blocking, _fmt = torch._C._nn._parse_to(*args, **kwargs)
        done: dict[int, tuple] = {}  # tied weights stay tied (the old tensor is kept: its id stays unique)
        for m in self.modules(remove_duplicate=False):
            for table in (m._parameters, m._buffers):
                for key, t in list(table.items()):
                    if t is None or dtype is None or not t.is_floating_point() or t.dtype == dtype:
                        continue
                    if id(t) not in done:
                        new = torch.empty(t.shape, dtype=dtype)  # fake: no values to copy
                        done[id(t)] = (t, torch.nn.Parameter(new, requires_grad=t.requires_grad)
                                       if isinstance(t, torch.nn.Parameter) else new)
                    table[key] = done[id(t)][1]
        return self

    torch.nn.Module.to = module_to
    try:
        with contextlib.ExitStack() as stack:
            try:  # transformers' weight initialisers (truncated normal) need values; fake tensors have none
                from transformers.initialization import no_init_weights

                stack.enter_context(no_init_weights())
            except ImportError:
                pass
            yield stack.enter_context(FakeTensorMode(allow_non_fake_inputs=True))
    finally:
        torch.nn.Module.to = real_to


# ----------------------------------------------------------------------------- cards and time
@dataclass(frozen=True)
class Card:
    """Vendor peak figures (dense, no sparsity): TFLOP/s for bf16/fp16 tensor cores with fp32
    accumulation (what PyTorch uses), TF32 tensor cores (cuDNN convolutions in fp32 by default),
    plain fp32, and memory bandwidth in GB/s."""

    name: str
    memory_gb: float
    bf16_tflops: float
    tf32_tflops: float
    fp32_tflops: float
    bandwidth_gbs: float


# H100 SXM5 datasheet; Ada (RTX 4090) and Ampere GA10x (RTX 3060) whitepapers, fp32-accumulate rates
CARDS = {
    "H100": Card("H100 SXM 80 GB", 80, 989.0, 494.0, 67.0, 3350.0),
    "RTX 4090": Card("RTX 4090 24 GB", 24, 165.2, 82.6, 82.6, 1008.0),
    "RTX 3060": Card("RTX 3060 12 GB", 12, 25.6, 12.8, 12.7, 360.0),
}
# the fraction of peak a real stage reaches (kernels, launches, non-matmul work); one number, stated
FRACTION_OF_PEAK = 0.4


def projected_seconds(flops: float, weight_bytes_read: float, card: Card, precision: str,
                      fraction: float = FRACTION_OF_PEAK) -> float:
    """Roofline time of one forward: the slower of compute (FLOPs at ``fraction`` of the card's peak
    for ``precision``) and reading the weights once (bytes at ``fraction`` of its bandwidth)."""
    peak = {"bf16": card.bf16_tflops, "fp16": card.bf16_tflops, "fp8": card.bf16_tflops,
            "tf32": card.tf32_tflops, "fp32": card.fp32_tflops}[precision]
    return max(flops / (peak * 1e12 * fraction), weight_bytes_read / (card.bandwidth_gbs * 1e9 * fraction))


# ----------------------------------------------------------------------------- the plan of one chunk
# Planned by ``python benchmarks/plan_chunk.py --write`` (fake tensors, full-size configs; planned,
# not measured): one chunk of 49 frames at 480x720, 5 context frames, 50 steps. Bytes.
# weights: component -> dtype -> bytes; activations: stage -> variant -> peak bytes above the weights.
REFERENCE = {"frames": 49, "height": 480, "width": 720}
PLAN_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "chunk_plan_49x480x720.json")


def load_plan(path: str = PLAN_FILE) -> dict:
    """The planned figures (``benchmarks/plan_chunk.py --write``): ``{"weights": {component: {dtype: bytes}},
    "activations": {stage: {variant: bytes}}}``."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return {"weights": data["weights"], "activations": data["activations"]}


PLAN: dict = load_plan() if os.path.isfile(PLAN_FILE) else {"weights": {}, "activations": {}}

Offload = Literal["none", "model", "lowvram"]
CfgBatch = Literal["batched", "sequential"]


@dataclass(frozen=True)
class MemorySettings:
    """What the memory of a chunk depends on (the names are PipelineSettings' and the CLI's)."""

    dtype: str = "bf16"  # ST-Diff transformer weights: bf16 | fp16 | fp32 | fp8
    text_encoder_dtype: str = "bf16"  # bf16 | fp8 (ComfyUI's umt5_xxl_fp8_e4m3fn_scaled)
    offload: Offload = "none"
    cfg_batch: CfgBatch = "batched"
    geometry: str = "depth-pro"
    geometry_dtype: str = "bf16"
    geometry_batch: int = 4  # the pack's default (PipelineSettings.geometry_batch)
    vae_tiling: bool = False
    captioner: str | None = None


def _interp(points: dict, k: float) -> float:
    """Linear in ``k`` through the planned points ``{k: bytes}`` (extrapolated from the last two)."""
    ks = sorted(int(x) for x in points)
    if k in ks:
        return float(points[str(k)] if str(k) in points else points[k])
    get = (lambda x: float(points[str(x)] if str(x) in points else points[x]))
    lo = max([x for x in ks if x <= k], default=ks[0])
    hi = min([x for x in ks if x > lo], default=ks[-1])
    if hi == lo:
        lo, hi = ks[-2], ks[-1]
    return get(lo) + (get(hi) - get(lo)) * (k - lo) / (hi - lo)


def stage_peaks(s: MemorySettings, plan: dict | None = None, frames: int = 49, height: int = 480,
                width: int = 720) -> dict[str, float]:
    """Planned peak bytes of each stage of one chunk under ``s``.

    Offload ``none`` keeps the transformer, VAE and text encoder on the card for the whole run (the
    geometry model and captioner come and go, ``offload_helpers``); ``model`` brings each model to
    the card only for its stage; ``lowvram`` (ComfyUI's) streams the weights, keeping about two of
    the model's blocks resident. Activations scale linearly with pixels x frames from the 49x480x720
    plan (flash attention: linear in tokens); the geometry models resize every frame to their own
    input size, so theirs scale with the batch only.
    """
    p = plan or PLAN
    w, a = p["weights"], p["activations"]
    if not w or not a:
        raise ValueError("the chunk plan is empty; run python benchmarks/plan_chunk.py --json")
    scale = (frames * height * width) / (REFERENCE["frames"] * REFERENCE["height"] * REFERENCE["width"])
    frame_scale = (height * width) / (REFERENCE["height"] * REFERENCE["width"])

    def weights(component: str, dtype: str) -> float:
        table = w[component]
        if dtype not in table:
            raise ValueError(f"no planned weights for {component} in {dtype}; planned: {sorted(table)}")
        if s.offload == "lowvram" and component in ("transformer", "text_encoder"):
            return 2 * table[dtype] / w[component + "_blocks"]
        return table[dtype]

    st_dtype = "fp8" if s.dtype == "fp8" else "bf16" if s.dtype in ("bf16", "fp16") else "fp32"
    resident = {"transformer": weights("transformer", st_dtype), "vae": w["vae"]["fp32"],
                "text_encoder": weights("text_encoder", s.text_encoder_dtype)}
    always = sum(resident.values()) if s.offload == "none" else 0.0

    def on_card(component: str) -> float:
        return 0.0 if s.offload == "none" else resident[component]

    out = {}
    geo = a.get(f"geometry.{s.geometry}.{s.geometry_dtype}")
    if geo is not None:  # a geometry model the plan does not hold (TTT3R) is left out
        out["geometry"] = always + w[s.geometry][s.geometry_dtype] + _interp(geo, min(s.geometry_batch, frames))
    out.update({
        "3dgs": always + a["3dgs"]["default"] * frame_scale,
        "encode_prompt": always + on_card("text_encoder") + a["text_encoder"]["default"],
        "vae_encode": always + on_card("vae") + a["vae_encode"]["tiled" if s.vae_tiling else "untiled"] * frame_scale,
        "st_diff": always + on_card("transformer") + a["transformer"][s.cfg_batch] * scale,
        "vae_decode": always + on_card("vae") + a["vae_decode"]["tiled" if s.vae_tiling else "untiled"] * scale,
    })
    if s.captioner and f"caption.{s.captioner}" in a:
        out["caption"] = always + w[s.captioner]["bf16"] + a[f"caption.{s.captioner}"]["default"]
    return out


def planned_peak(s: MemorySettings, plan: dict | None = None, **size) -> tuple[float, str]:
    """The chunk's planned peak bytes under ``s`` and the stage that sets it."""
    peaks = stage_peaks(s, plan, **size)
    stage = max(peaks, key=peaks.get)
    return peaks[stage], stage


# ----------------------------------------------------------------------------- the vram choice
# profiles from the fastest to the most frugal; the settings are PipelineSettings' names
PROFILES: dict[str, dict] = {
    "high": {"offload": "none", "cfg_batch": "batched", "geometry_batch": 8, "vae_tiling": False},
    "medium": {"offload": "model", "cfg_batch": "batched", "geometry_batch": 4, "vae_tiling": False},
    "low": {"offload": "model", "cfg_batch": "sequential", "geometry_batch": 2, "vae_tiling": False},
    "small": {"offload": "model", "cfg_batch": "sequential", "geometry_batch": 1, "vae_tiling": True},
}
VRAM_CHOICES = ("auto", *PROFILES, "manual")
HEADROOM = 0.10  # of the free memory, left for allocator rounding/fragmentation and other tensors


@dataclass(frozen=True)
class VramChoice:
    choice: str  # what was asked: auto, a profile name, or manual
    profile: str  # the profile used ("manual": the settings as given)
    settings: dict = field(default_factory=dict)  # geometry_batch, cfg_batch, offload, vae_tiling
    planned_gb: float | None = None
    free_gb: float | None = None
    reason: str = ""

    def record(self) -> dict:
        """What the manifest keeps."""
        return {"choice": self.choice, "profile": self.profile, "settings": dict(self.settings),
                "planned_peak_gb": self.planned_gb, "free_gb": self.free_gb, "reason": self.reason}


def _describe(settings: dict) -> str:
    return (f"offload {settings['offload']}, {settings['cfg_batch']} CFG, geometry batch "
            f"{settings['geometry_batch']}, VAE tiling {'on' if settings['vae_tiling'] else 'off'}")


def pick_settings(free_bytes: float | None, choice: str = "auto", *, dtype: str = "bf16",
                  text_encoder_dtype: str | None = None, geometry: str = "depth-pro", geometry_dtype: str = "bf16",
                  captioner: str | None = None, frames: int = 49, height: int = 480, width: int = 720,
                  offload_choices: tuple[str, ...] = ("none", "model"), plan: dict | None = None) -> VramChoice:
    """The geometry batch, CFG mode, offload and VAE tiling for a card with ``free_bytes`` free.

    ``auto`` takes the fastest profile of :data:`PROFILES` whose planned peak fits ``free_bytes``
    less :data:`HEADROOM`; a profile name takes that profile; ``manual`` picks nothing. Without a
    free-memory figure (no CUDA) ``auto`` keeps the fastest profile. ``offload_choices``: the
    offload modes the model can use, most frugal last (a model loaded with one offload mode: just
    that one; a ComfyUI core model offloads by itself: ``("comfyui",)``, planned as ``lowvram``, the
    floor of ComfyUI's partial loading). ``text_encoder_dtype``: the UMT5 encoder's weights (default:
    fp8 with fp8 weights, as ComfyUI's fp8 text encoder; the pack's own loader keeps it in bf16). The frames are the same under every choice (VAE
    tiling, the last resort, blends tile seams: the "small" profile's frames differ there by the
    VAE's tiling blend).
    """
    from .inputs import check_choice

    check_choice(choice, "vram", VRAM_CHOICES)
    if choice == "manual":
        return VramChoice("manual", "manual", {}, None, _gb(free_bytes), "vram manual: the settings as given")
    te = text_encoder_dtype or ("fp8" if dtype == "fp8" else "bf16")

    def offload_of(profile: dict) -> str:
        """The profile's offload when the model can use it, else the most frugal one it can."""
        return profile["offload"] if profile["offload"] in offload_choices else offload_choices[-1]

    def plan_of(profile: dict) -> tuple[float, str]:
        off = offload_of(profile)
        # ComfyUI loads a model partially and streams the rest when it does not fit: its floor is lowvram's
        ms = MemorySettings(dtype=dtype, text_encoder_dtype=te, offload="lowvram" if off == "comfyui" else off,
                            cfg_batch=profile["cfg_batch"], geometry=geometry, geometry_dtype=geometry_dtype,
                            geometry_batch=profile["geometry_batch"], vae_tiling=profile["vae_tiling"],
                            captioner=captioner)
        return planned_peak(ms, plan, frames=frames, height=height, width=width)

    def settings_of(profile: dict) -> dict:
        return dict(profile, offload=offload_of(profile))

    names = list(PROFILES) if choice == "auto" else [choice]
    free = _gb(free_bytes)
    if choice != "auto":
        peak, stage = plan_of(PROFILES[choice])
        return VramChoice(choice, choice, settings_of(PROFILES[choice]), round(peak / GB, 2), free,
                          f"vram {choice}: {_describe(settings_of(PROFILES[choice]))}; planned peak "
                          f"{peak / GB:.1f} GB ({stage})")
    if free_bytes is None:
        peak, stage = plan_of(PROFILES[names[0]])
        return VramChoice("auto", names[0], settings_of(PROFILES[names[0]]), round(peak / GB, 2), None,
                          f"vram auto: no CUDA free-memory figure, so {names[0]} "
                          f"({_describe(settings_of(PROFILES[names[0]]))})")
    budget = free_bytes * (1 - HEADROOM)
    for name in names:
        peak, stage = plan_of(PROFILES[name])
        if peak <= budget:
            return VramChoice("auto", name, settings_of(PROFILES[name]), round(peak / GB, 2), free,
                              f"vram auto: {free:.1f} GB free -> {name} ({_describe(settings_of(PROFILES[name]))}): "
                              f"planned peak {peak / GB:.1f} GB ({stage}) fits with {HEADROOM:.0%} headroom")
    name = names[-1]
    peak, stage = plan_of(PROFILES[name])
    return VramChoice("auto", name, settings_of(PROFILES[name]), round(peak / GB, 2), free,
                      f"vram auto: {free:.1f} GB free, less than the smallest profile's planned "
                      f"{peak / GB:.1f} GB ({stage}) -> {name} ({_describe(settings_of(PROFILES[name]))}); it may "
                      "run out of memory: use fp8 weights and the fp8 text encoder")


def planned_captioner(name: str | None) -> str | None:
    """A captioner as the chunk plan names it (the Qwen-VL family: its 3B model; none: ``fixed``)."""
    return {"florence-2": "florence-2", "qwen2.5-vl": "qwen2.5-vl-3b", "qwen3-vl": "qwen2.5-vl-3b"}.get(name or "")


def _gb(free_bytes: float | None) -> float | None:
    return None if free_bytes is None else round(free_bytes / GB, 2)


def apply_choice(settings, choice: VramChoice):
    """``settings`` (a PipelineSettings) with the picked fields it has replaced (``dataclasses.replace``)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(settings)}
    picked = {k: v for k, v in choice.settings.items() if k in names and k != "offload"}
    return dataclasses.replace(settings, **picked) if picked else settings


def cuda_free_bytes(device: str | torch.device | None = None) -> float | None:
    """Free memory of a CUDA device (``torch.cuda.mem_get_info``), None elsewhere."""
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type != "cuda":
        return None
    if not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info(dev)
    return float(free)


__all__ = [
    "CARDS", "FRACTION_OF_PEAK", "cpu_kernel_scratch", "fake_mode", "HEADROOM", "PLAN", "PLAN_FILE", "load_plan", "PROFILES", "VRAM_CHOICES", "Card", "LiveBytes",
    "MemorySettings", "StageTrace", "VramChoice", "apply_choice", "cuda_free_bytes", "flop_counter",
    "measured_peak", "module_bytes", "pick_settings", "planned_captioner", "planned_peak", "projected_seconds", "stage_peaks",
    "tensor_bytes", "trace",
]
