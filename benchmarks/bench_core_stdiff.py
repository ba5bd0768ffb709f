"""ST-Diff on both model paths: the pack's diffusers transformer and ComfyUI's core Wan MODEL.

One 49-frame 480x720 chunk (latents [16, 13, 60, 90]), 50 Euler steps, CFG 5 batched, with the
FULL-size Wan2.1-T2V-1.3B architecture and random weights (compute does not depend on the values;
nothing is downloaded). The same random weights are written once as a ComfyUI-layout file and
loaded by each path: the pack's ``load_transformer`` and ComfyUI's ``load_diffusion_model`` (what
Load Diffusion Model runs), driven by ``nodes.core_models.CoreWanModel`` through
``comfy.model_management``. Prints one Markdown row per path: seconds per chunk, peak VRAM, and
the largest latent difference between the two paths.

Run it with ComfyUI's Python (ComfyUI's own options go after ``--``):

    COMFY=/path/to/ComfyUI; $COMFY/venv/bin/python benchmarks/bench_core_stdiff.py --comfy $COMFY
    ... --weight-dtype fp8_e4m3fn                 # fp8 weights (core path)
    ... -- --lowvram                              # ComfyUI's offloading (or --novram, --reserve-vram 60)
    ... --tiny                                    # tiny model on CPU, few steps: checks the script

Targets (one H100): <= 20 s per 50 steps, <= 16 GB peak with offload, <= 10 GB with fp8 + offload.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--comfy", required=True, help="ComfyUI folder (its comfy/ package is imported)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--weight-dtype", default="default", choices=["default", "fp8_e4m3fn", "fp8_e5m2"],
                   help="core path weight dtype (as core Load Diffusion Model)")
    p.add_argument("--paths", default="pack,core", help="which paths to run: pack, core or both")
    p.add_argument("--tiny", action="store_true", help="tiny model on CPU: a check of the script")
    p.add_argument("--stubs", help="folder with import stand-ins for torchvision (CPU test machines)")
    own, _, comfy_args = " ".join(sys.argv[1:]).partition(" -- ")
    args = p.parse_args(own.split())
    return args, comfy_args.split()


def main() -> None:
    args, comfy_args = _args()
    sys.path.insert(0, args.comfy)
    sys.path.insert(1, ROOT)
    if args.stubs:
        sys.path.append(args.stubs)
    from comfy.cli_args import args as comfy_cli
    from comfy.cli_args import parser

    given, defaults = vars(parser.parse_args(comfy_args)), vars(parser.parse_args([]))
    for k, v in given.items():  # only the options given (ComfyUI post-processes some defaults at import)
        if v != defaults[k]:
            setattr(comfy_cli, k, v)
    import torch

    if args.tiny or not torch.cuda.is_available():
        if not args.tiny:
            print("no CUDA: the full-size benchmark needs a GPU (use --tiny to check the script on CPU)")
            return
        comfy_cli.cpu = True
    import comfy.model_management as mm
    import comfy.ops
    import comfy.sd
    from comfy.ldm.wan.model import WanModel
    from safetensors.torch import save_file

    from worldwarp_core.models import load_transformer
    from worldwarp_core.sampler import SamplerConfig, st_diff_sample

    spec = importlib.util.spec_from_file_location("worldwarp_core_models", os.path.join(ROOT, "nodes", "core_models.py"))
    core_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(core_models)

    cuda = torch.cuda.is_available() and not args.tiny
    device = "cuda" if cuda else "cpu"
    if args.tiny:
        arch = dict(dim=128, ffn_dim=256, freq_dim=256, text_dim=32, num_heads=1, num_layers=2)
        shape, steps, dtype = (16, 13, 8, 12), min(args.steps, 4), torch.float32
    else:  # Wan2.1-T2V-1.3B
        arch = dict(dim=1536, ffn_dim=8960, freq_dim=256, text_dim=4096, num_heads=12, num_layers=30)
        shape, steps, dtype = (16, 13, 60, 90), args.steps, torch.bfloat16
    with torch.device("meta"):
        skeleton = WanModel(model_type="t2v", in_dim=16, out_dim=16, operations=comfy.ops.disable_weight_init, **arch)
    g = torch.Generator().manual_seed(0)
    state = {k: (torch.randn(v.shape, generator=g) * 0.02).to(dtype) for k, v in skeleton.state_dict().items()}
    n_params = sum(v.numel() for v in state.values()) / 1e9
    tmp = tempfile.mkdtemp(prefix="bench_core_")
    path = os.path.join(tmp, "wan_random.safetensors")
    save_file(state, path, metadata={"config": json.dumps({"transformer": {"text_dim": arch["text_dim"]}})})
    del state

    z = torch.randn(shape, generator=g)
    mask = (torch.rand(shape[1], shape[2] // 2, shape[3] // 2, generator=g) > 0.3).float()
    pos = torch.randn(1, 512, arch["text_dim"], generator=g)
    neg = torch.randn(1, 512, arch["text_dim"], generator=g)
    # a token-level mask of the chunk (the strict rule's input); the time per step does not depend on the rule
    cfg = SamplerConfig(steps=steps, guidance_scale=5.0, mask_rule="strict")
    name = torch.cuda.get_device_name() if cuda else "CPU"
    mode = " ".join(comfy_args) or "default"
    results = {}

    def timed(label, run):
        run(SamplerConfig(steps=2, guidance_scale=5.0, mask_rule="strict"))  # warm-up
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        out = run(cfg)
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if cuda else "-"
        results[label] = out.latents
        print(f"| {name} | {label} | {'tiny' if args.tiny else 'Wan2.1-1.3B'} ({n_params:.2f} B) | latents "
              f"{list(shape)} | {steps} steps, CFG batch 2 | {dt:.2f} s | peak {peak} |", flush=True)

    if "pack" in args.paths:
        transformer = load_transformer(path, dtype).to(device)
        timed("pack (diffusers)", lambda c: st_diff_sample(transformer, z.to(device), mask, 2, pos.to(device, dtype),
                                                           neg.to(device, dtype), c))
        del transformer
        if cuda:
            torch.cuda.empty_cache()
    if "core" in args.paths:
        options = {"fp8_e4m3fn": {"dtype": torch.float8_e4m3fn}, "fp8_e5m2": {"dtype": torch.float8_e5m2}}
        model = comfy.sd.load_diffusion_model(path, model_options=options.get(args.weight_dtype, {}))

        def run_core(c):
            adapter = core_models.CoreWanModel.__new__(core_models.CoreWanModel)  # no VAE needed to sample
            adapter.patcher = model
            fn = adapter.denoiser(pos, neg, 5.0)
            return st_diff_sample(None, z.to(device), mask, 2, pos, neg, c, denoise_fn=fn)

        timed(f"core MODEL, weights {args.weight_dtype}, ComfyUI {mode}", run_core)
        mm.unload_all_models()
    if len(results) == 2:
        a, b = results.values()
        print(f"largest latent difference between the paths: {(a.float().cpu() - b.float().cpu()).abs().max():.3g}")


if __name__ == "__main__":
    main()
