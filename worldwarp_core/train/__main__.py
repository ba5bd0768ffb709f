"""``python -m worldwarp_core.train``: ST-Diff training from the command line.

    python -m worldwarp_core.train --config worldwarp_core/train/configs/train_paper.json
    python -m worldwarp_core.train prepare --data data/train_clips --models models/Wan2.1-T2V-1.3B-Diffusers
    python -m worldwarp_core.train build-clip --video in.mp4 --out data/train_clips/clip_0001 \
        --geometry depth-anything-v2 --geometry-path models/worldwarp/depth-anything-v2-small-hf
    accelerate launch --config_file worldwarp_core/train/configs/accelerate_ddp_8gpu.yaml \
        -m worldwarp_core.train --config worldwarp_core/train/configs/train_paper.json
"""

from __future__ import annotations

import argparse
import sys


def _train(args: argparse.Namespace) -> int:
    from .loop import TrainConfig, train

    config = TrainConfig.from_json(args.config, data_dir=args.data, output_dir=args.out, max_steps=args.max_steps)

    def report(step: int, loss: float) -> None:
        if step % config.log_every == 0 or step == config.max_steps:
            print(f"step {step}/{config.max_steps}  loss {loss:.6f}", flush=True)

    train(config, callback=report)
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from .. import models
    from .data import list_clips, prepare_clip

    model = models.tiny_model() if args.models == "tiny" else models.load_diffusers_folder(args.models)
    clips = list_clips(args.data)
    for i, clip in enumerate(clips):
        prepare_clip(clip, model, sources=args.sources, radius=args.radius, overwrite=args.overwrite)
        print(f"[{i + 1}/{len(clips)}] {clip}", flush=True)
    return 0


def _build_clip(args: argparse.Namespace) -> int:
    from .data import build_clip_from_video

    build_clip_from_video(args.video, args.out, args.geometry, args.geometry_path, frames=args.frames,
                          stride=args.stride, width=args.width, height=args.height, prompt=args.prompt)
    print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("prepare", "build-clip"):
        cmd, argv = argv[0], argv[1:]
    else:
        cmd = "train"
    p = argparse.ArgumentParser(prog=f"python -m worldwarp_core.train {'' if cmd == 'train' else cmd}".strip())
    if cmd == "train":
        p.add_argument("--config", required=True, help="training config JSON (see configs/train_paper.json)")
        p.add_argument("--data", help="override data_dir")
        p.add_argument("--out", help="override output_dir")
        p.add_argument("--max-steps", type=int, help="override max_steps")
        return _train(p.parse_args(argv))
    if cmd == "prepare":
        p.add_argument("--data", required=True, help="folder of clip folders")
        p.add_argument("--models", required=True, help="a Wan2.1 diffusers folder, or 'tiny' for a pipeline check")
        p.add_argument("--radius", type=int, default=1, help="point splat radius of the one-to-all warp (pixels)")
        p.add_argument("--sources", type=int, default=8,
                       help="source frames warped per clip (evenly spaced; 0 = every frame); a step draws one")
        p.add_argument("--overwrite", action="store_true")
        return _prepare(p.parse_args(argv))
    p.add_argument("--video", required=True)
    p.add_argument("--out", required=True, help="clip folder to write")
    p.add_argument("--geometry", required=True, help="geometry backend name (see worldwarp_core.geometry)")
    p.add_argument("--geometry-path", required=True, help="local folder of the geometry model")
    p.add_argument("--frames", type=int, default=49)
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--width", type=int, default=720)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--prompt", default="")
    return _build_clip(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
