"""The paper's evaluation protocol (§5, Tables 1-3) on clips you have on disk.

For each test clip: start from its first frame and its ground-truth cameras, generate up to the
long-term frame (200), and score the short-term (50th) and long-term (200th) frames against the
clip's own frames: PSNR, SSIM, LPIPS (when its weights are given), and the camera errors of the
poses a geometry backend recovers from the generated frames (paper: R_dist, t_dist relative to
the first frame, translations normalised by the furthest frame). Clips aggregate into a table
(markdown + CSV); the ablation switches of Table 3 are the pipeline settings
(``cache_mode``, ``variant``).

Clip folder: ``frames/*.png`` (at least as many frames as the long-term index) and
``cameras.txt`` (RealEstate10K) or ``cameras.json`` -- the training clip layout without depth.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..cameras import Cameras
from .metrics import camera_metrics, psnr, ssim
from .plots import plot_curves

PoseEstimator = Callable[[Tensor], Tensor]  # frames [F, H, W, 3] -> camera-to-world [F, 4, 4]


@dataclass
class EvalClip:
    name: str
    frames: Tensor  # [F, H, W, 3]
    cameras: Cameras


def load_eval_clip(folder: str) -> EvalClip:
    """An evaluation clip: the training clip layout (``train.data.load_clip``) without depth."""
    from ..train.data import load_clip

    clip = load_clip(folder, require_depth=False)
    n = min(len(clip.cameras), clip.frames.shape[0])
    return EvalClip(os.path.basename(os.path.normpath(folder)), clip.frames[:n], clip.cameras[:n])


def smallest_total(at_least: int, chunk: int, context: int) -> int:
    """The shortest valid video length (chunk + k·(chunk - context)) covering ``at_least`` frames."""
    step = chunk - context
    k = max(0, math.ceil((at_least - chunk) / step))
    return chunk + k * step


def evaluate_clip(pipeline, clip: EvalClip, short: int = 50, long: int = 200, prompt: str = "",
                  lpips=None, pose_estimator: PoseEstimator | None = None, out_dir: str | None = None) -> dict:
    """Generate along the clip's cameras and score frames ``short`` and ``long`` (1-based, as the paper)."""
    F = clip.frames.shape[0]
    if F < long:
        raise ValueError(f"clip {clip.name} has {F} frames; the long-term score needs frame {long}")
    s = pipeline.settings
    total = smallest_total(long, s.chunk_frames, s.context_frames)
    result = pipeline(clip.frames[0], clip.cameras, total, prompt=prompt, out_dir=out_dir, overwrite=True)
    gen = result.frames[:long]
    gt = clip.frames[:long]
    per_frame = {"psnr": psnr(gen, gt).tolist(), "ssim": ssim(gen, gt).tolist()}
    if lpips is not None:
        with torch.no_grad():
            per_frame["lpips"] = torch.cat([lpips(gen[i:i + 8], gt[i:i + 8]) for i in range(0, long, 8)]).tolist()
    if pose_estimator is not None:
        est = pose_estimator(gen)
        cm = camera_metrics(est[:long], clip.cameras.c2w[:long])
        per_frame["R_dist"] = cm["R_dist"].tolist()
        per_frame["t_dist"] = cm["t_dist"].tolist()
    row = {"clip": clip.name}
    for key, values in per_frame.items():
        row[f"{key}@{short}"] = values[short - 1]
        row[f"{key}@{long}"] = values[long - 1]
    row["per_frame"] = per_frame
    return row


def aggregate(rows: list[dict], out_dir: str, title: str = "WorldWarp evaluation") -> dict[str, float]:
    """Mean of every score over the clips; writes ``results.csv``, ``results.md`` and curve plots."""
    if not rows:
        raise ValueError("no evaluated clips to aggregate")
    os.makedirs(out_dir, exist_ok=True)
    keys = [k for k in rows[0] if k not in ("clip", "per_frame")]
    means = {k: sum(r[k] for r in rows) / len(rows) for k in keys}
    with open(os.path.join(out_dir, "results.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["clip"] + keys)
        for r in rows:
            w.writerow([r["clip"]] + [f"{r[k]:.6g}" for k in keys])
        w.writerow(["mean"] + [f"{means[k]:.6g}" for k in keys])
    lines = [f"# {title}", "", "| clip | " + " | ".join(keys) + " |", "|" + " --- |" * (len(keys) + 1)]
    for r in rows + [{"clip": "**mean**", **means}]:
        lines.append(f"| {r['clip']} | " + " | ".join(f"{r[k]:.4g}" for k in keys) + " |")
    with open(os.path.join(out_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    metrics = rows[0]["per_frame"].keys()
    for m in metrics:
        series = {r["clip"]: r["per_frame"][m] for r in rows}
        n = min(len(v) for v in series.values())
        series["mean"] = [sum(v[i] for v in series.values()) / len(series) for i in range(n)]
        plot_curves(series, os.path.join(out_dir, f"{m}_vs_frame.png"), title=f"{m} vs frame", ylabel=m,
                    marks=(49, n - 1))
    return means


def evaluate_folder(pipeline, data_dir: str, out_dir: str, short: int = 50, long: int = 200, **kw) -> dict[str, float]:
    """Every clip folder under ``data_dir`` -> per-clip scores, the mean table and plots in ``out_dir``."""
    if not os.path.isdir(data_dir):
        raise ValueError(f"evaluation data folder not found: {data_dir}")
    clips = sorted(d for d in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, d, "frames")))
    if not clips:
        raise ValueError(f"{data_dir} holds no clip folders (frames/ + cameras.txt|json)")
    rows = [evaluate_clip(pipeline, load_eval_clip(os.path.join(data_dir, c)), short, long,
                          out_dir=os.path.join(out_dir, "runs", c), **kw) for c in clips]
    return aggregate(rows, out_dir)
