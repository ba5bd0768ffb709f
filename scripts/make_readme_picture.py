"""Writes docs/images/pipeline_stages.png, the README's picture, from a CPU demo run.

    python -m worldwarp_core demo --out output/demo   # or run_demo(..., width=192, height=128, frames=17)
    python scripts/make_readme_picture.py output/demo

Top row: the start image, then the 3DGS cache rendered at the first chunk's middle and last cameras
(the warped hints) and the last one's validity mask (white = warped, black = hole). Bottom: the
chunk's noise-schedule picture. Everything is the pack's real output; the diffusion frames are left
out because the demo's diffusion model is random.
"""

from __future__ import annotations

import os
import sys

from PIL import Image, ImageDraw, ImageFont

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "docs", "images", "pipeline_stages.png")


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def main(run: str) -> int:
    chunk = os.path.join(run, "chunks", "chunk_000")
    hints = sorted(os.listdir(os.path.join(chunk, "hints")))
    if len(hints) < 3:
        print(f"{chunk} holds no finished first chunk", file=sys.stderr)
        return 1
    mid, last = hints[len(hints) // 2], hints[-1]
    tiles = [(Image.open(os.path.join(chunk, "hints", hints[0])), "start image"),
             (Image.open(os.path.join(chunk, "hints", mid)), f"cache at frame {int(mid[:-4])}"),
             (Image.open(os.path.join(chunk, "hints", last)), f"cache at frame {int(last[:-4])}"),
             (Image.open(os.path.join(chunk, "masks", last)), "valid (white) / holes")]
    w, h = tiles[0][0].size
    schedule = Image.open(os.path.join(chunk, "schedule.png")).convert("RGB")
    scale = 4 * (w + 8) / schedule.size[0]
    schedule = schedule.resize((round(schedule.size[0] * scale), round(schedule.size[1] * scale)), Image.LANCZOS)
    canvas = Image.new("RGB", (4 * (w + 8) + 8, h + 30 + schedule.size[1] + 8), (30, 30, 30))
    draw, font = ImageDraw.Draw(canvas), _font(13)
    for i, (tile, label) in enumerate(tiles):
        x = 8 + i * (w + 8)
        canvas.paste(tile.convert("RGB"), (x, 8))
        draw.text((x, h + 12), label, fill=(220, 220, 220), font=font)
    canvas.paste(schedule, (4, h + 30))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    canvas.save(OUT, optimize=True)
    print("wrote", os.path.relpath(OUT, ROOT), canvas.size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "output/demo"))
