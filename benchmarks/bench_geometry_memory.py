"""Peak memory of the geometry stage: Depth Pro (full config) on F frames, mini-batches of B.

The full Depth Pro architecture (transformers' ``DepthProConfig`` defaults with the FoV head on, as
apple/DepthPro-hf: about 0.95 B parameters, random weights, nothing downloaded) runs through the
pack's estimator and ``estimate_in_batches`` on 1536x1536 model inputs. Each setting runs in its
own process; the activation peak is the highest count of bytes malloc has handed out (glibc
``mallinfo2``, sampled every 5 ms) above the count after the model is built: the tensors alive at
once, which is what an accelerator would hold; the resident-memory peak is printed too (it also
counts memory freed but kept by the allocator). On a GPU the figure is ``torch.cuda.max_memory_allocated`` above
the weights instead.

    python benchmarks/bench_geometry_memory.py --runs 1:1 2:1 4:1 2:2 [--dtype bf16] [--device cpu]
    python benchmarks/bench_geometry_memory.py --one 4 1     # one setting in this process (JSON line)

``F:B`` = frames:geometry_batch. Depth Pro at 1536x1536 takes tens of seconds per frame on a 2-core
CPU; keep to a few runs. Prints Markdown rows.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import threading
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


_LIBC = ctypes.CDLL(None)
_LIBC.mallinfo2.restype = _MallInfo2


def _in_use() -> int:
    """Bytes glibc's malloc has handed out and not had back (heap + mmapped blocks): the tensors, not
    the freed memory the allocator keeps (which RSS counts)."""
    m = _LIBC.mallinfo2()
    return int(m.uordblks + m.hblkhd)


class Peak:
    """The highest resident set size and malloc in-use bytes while the block runs (a sampling thread);
    the process exits (status 3) when its RSS passes ``limit`` bytes."""

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def __enter__(self):
        self.rss, self.used, self._stop = _rss(), _in_use(), False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _sample(self) -> None:
        self.rss, self.used = max(self.rss, _rss()), max(self.used, _in_use())
        if self.rss > self.limit:
            print(json.dumps({"error": f"RSS {self.rss / 1e9:.1f} GB passed the limit"}), flush=True)
            os._exit(3)

    def _run(self) -> None:
        while not self._stop:
            self._sample()
            time.sleep(0.005)

    def __exit__(self, *exc) -> None:
        self._stop = True
        self._t.join()
        self._sample()


# apple/DepthPro-hf: three DINOv2 ViT-L/16 encoders (patches, whole image, FoV) at 384x384
VIT_L16 = {"model_type": "dinov2", "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
           "patch_size": 16, "image_size": 384, "layerscale_value": 1.0, "use_mask_token": False}


def one(frames: int, batch: int, dtype: str, device: str, size: int, limit_gb: float) -> dict:
    from transformers import DepthProConfig, DepthProForDepthEstimation

    from worldwarp_core.cameras import Cameras, intrinsics_from_fov
    from worldwarp_core.geometry import estimate_in_batches, geometry_dtype
    from worldwarp_core.geometry.monocular import DepthPro

    dt = geometry_dtype(dtype, device)
    cfg = DepthProConfig(use_fov_model=True, image_model_config=VIT_L16, patch_model_config=VIT_L16,
                         fov_model_config=VIT_L16)
    from transformers.initialization import no_init_weights

    torch.manual_seed(0)
    with no_init_weights():  # built in dt (no fp32 copy), without the minutes of 0.95 B random inits
        model = DepthProForDepthEstimation._from_config(cfg, dtype=dt).eval()
    with torch.no_grad():  # weights of the usual scale (their values do not change the memory)
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    params = sum(p.numel() for p in model.parameters())
    est = DepthPro(model=model, device=device, dtype=dt)
    images = torch.rand(frames, size, size * 3 // 2, 3, generator=torch.Generator().manual_seed(0))
    # known intrinsics, as the pipeline gives them (random weights predict any field of view)
    cams = Cameras(torch.eye(4).expand(frames, 4, 4).clone(), intrinsics_from_fov(60.0, size * 3 // 2, size, frames),
                   size * 3 // 2, size)
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    base_rss, base_used = _rss(), _in_use()
    t0 = time.perf_counter()
    with Peak(limit_gb * 1e9) as mem:
        result = estimate_in_batches(est, images, cams, batch)
    seconds = time.perf_counter() - t0
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = mem.used - base_used
    assert result.depth.shape[0] == frames and bool(torch.isfinite(result.depth).all())
    return {"frames": frames, "geometry_batch": batch, "dtype": str(dt).replace("torch.", ""), "device": device,
            "parameters": params, "weights_gb": params * torch.finfo(dt).bits / 8 / 1e9,
            "activation_peak_gb": peak / 1e9, "rss_peak_above_weights_gb": (mem.rss - base_rss) / 1e9,
            "seconds": seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", default=["1:1", "2:1", "4:1", "2:2"], help="frames:geometry_batch")
    p.add_argument("--one", nargs=2, type=int, metavar=("FRAMES", "BATCH"), help="one setting, this process")
    p.add_argument("--dtype", default="bf16", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=64, help="height of the input frames (resized to 1536 anyway)")
    p.add_argument("--limit-gb", type=float, default=8.0, help="stop a run whose resident memory passes this")
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], args.dtype, args.device, args.size, args.limit_gb)))
        return
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}")
    print("| frames | geometry_batch | dtype | weights GB | activation peak GB (malloc in use) | RSS peak GB | s |")
    print("|---|---|---|---|---|---|---|")
    for run in args.runs:
        f, b = (int(v) for v in run.split(":"))
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", str(f), str(b), "--dtype",
                              args.dtype, "--device", args.device, "--size", str(args.size), "--limit-gb",
                              str(args.limit_gb)], capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        if "error" in r:
            print(f"| {f} | {b} | {args.dtype} | | {r['error']} | | |", flush=True)
            continue
        print(f"| {r['frames']} | {r['geometry_batch']} | {r['dtype']} | {r['weights_gb']:.2f} | "
              f"{r['activation_peak_gb']:.2f} | {r['rss_peak_above_weights_gb']:.2f} | {r['seconds']:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
