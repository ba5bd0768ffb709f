"""Checks of a run's inputs, shared by the CLI, the Python API and the nodes.

Every check raises one ``ValueError`` line that names the input (file, option, frame) and says
what to do, with the nearest valid value where there is one. They are cheap and run before any
model loads or any file is written or deleted.

Limits (stated in the README, enforced here):

* image: width and height multiples of 16, each side from ``MIN_SIDE`` (32) to ``MAX_SIDE``
  (2048) pixels, at most ``MAX_PIXELS`` (2048·1152) pixels, an aspect ratio of at most
  ``MAX_ASPECT`` (4:1: the depth models scale the shorter side to ~518 pixels, so a 64:1 strip
  would become a 33k-pixel-wide input), values in 0..1 and finite.
  Wan 2.1 was trained at 480x832 (1.3B) and up to 1280x720 (14B); larger frames mostly cost memory:
  one 49-frame chunk at 2048x1152 holds 13x72x128 latents and 30k tokens per frame batch.
* image files: 8- or 16-bit (16-bit values are scaled by 65535, not clipped); an alpha channel
  with transparent pixels is refused unless a background to composite over is chosen.
* seed: 0 .. ``SEED_MAX`` (2**31 - 1, the range of the nodes' seed widgets).
* frames and cameras: at most ``MAX_FRAMES`` (10,000) frames per video and ``MAX_CAMERAS``
  (10,000) cameras per camera file; a camera file is at most ``MAX_CAMERA_FILE_BYTES`` (16 MiB,
  ~1.6 KB per camera), refused by its size before it is read.
* hints: one Render Warp Hints call renders at most ``MAX_HINT_PIXELS`` view pixels (views x
  width x height; 161 views at 2048x1152, the largest chunk at the largest frame): its outputs
  take 16 bytes per pixel.
* JSON (route bodies, keyframes, camera files): integers of at most ``MAX_JSON_INT_DIGITS``
  digits, nesting at most ``MAX_JSON_DEPTH`` levels.
* names (output folders, filename prefixes): valid on Windows and Linux alike (``check_name``).
* files the nodes read come from ComfyUI's input folder only (``input_file``); files they write
  go under its output folder only (``path_inside``), links resolved first.
"""

from __future__ import annotations

import errno
import json
import math
import operator
import os
from typing import Literal

import numpy as np
import torch
from torch import Tensor

# the limits are defined in limits.py (the bottom of the library: cameras.py reads them too)
from .limits import (  # noqa: E402
    MAX_ASPECT,
    MAX_CAMERA_FILE_BYTES,
    MAX_CAMERAS,
    MAX_CHUNK_FRAMES,
    MAX_FRAMES,
    MAX_HINT_PIXELS,
    MAX_JSON_DEPTH,
    MAX_JSON_INT_DIGITS,
    MAX_PIXELS,
    MAX_SIDE,
    MIN_SIDE,
    SEED_MAX,
    loads_json,
    read_text_file,
)

Alpha = Literal["refuse", "white", "black"]
ALPHA_CHOICES = ("refuse", "white", "black")


# ----------------------------------------------------------------------------- numbers
def _show(value) -> str:
    """``repr`` of a value, shortened (a 5,000-digit integer is not printed whole)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 100:
        return f"a {'negative ' if value < 0 else ''}{value.bit_length()}-bit integer"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_int(value, option: str, lo: int | None = None, hi: int | None = None) -> int:
    """A whole number (``9.0`` and ``True`` are refused, numpy integers accepted) within ``[lo, hi]``."""
    if isinstance(value, bool):
        raise ValueError(f"{option} must be a whole number, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise ValueError(f"{option} must be a whole number, got {_show(value)}") from None
    if v.bit_length() > 100:
        raise ValueError(f"{option} must be a whole number in range, got {_show(v)}"
                         + (f"; use {lo if v < 0 and lo is not None else hi}" if (lo if v < 0 else hi) is not None
                            else ""))
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        near = max(lo, v) if lo is not None else v
        near = min(hi, near) if hi is not None else near
        bounds = f">= {lo}" if hi is None else f"<= {hi}" if lo is None else f"in {lo}..{hi}"
        raise ValueError(f"{option} must be {bounds}, got {v}; use {near}")
    return v


def check_float(value, option: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                hi_open: bool = False, example: float | None = None) -> float:
    """A finite number within its bounds (NaN fails every comparison, so it is refused by name)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{option} must be a number, got {_show(value)}") from None
    except OverflowError:  # an integer too large for a float
        raise ValueError(f"{option} must be a finite number, got {_show(value)}") from None
    ok = math.isfinite(v)
    ok = ok and (lo is None or (v > lo if lo_open else v >= lo))
    ok = ok and (hi is None or (v < hi if hi_open else v <= hi))
    if not ok:
        lo_s = None if lo is None else f"{'>' if lo_open else '>='} {lo:g}"
        hi_s = None if hi is None else f"{'<' if hi_open else '<='} {hi:g}"
        bounds = " and ".join(s for s in (lo_s, hi_s) if s) or "finite"
        if example is None:
            example = lo if lo is not None and not lo_open else hi if hi is not None and not hi_open else None
            if example is not None and math.isfinite(v) and lo is not None and hi is not None:
                example = min(max(v, lo), hi)
        hint = f"; use e.g. {example:g}" if example is not None else ""
        raise ValueError(f"{option} must be a finite number {bounds}, got {value!r}{hint}")
    return v


def check_seed(seed, option: str = "seed") -> int:
    return check_int(seed, option, 0, SEED_MAX)


def check_choice(value, option: str, choices) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{option} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


# ----------------------------------------------------------------------------- sizes and images
def nearest_size(width: int, height: int) -> tuple[int, int]:
    """The valid frame size nearest to ``width x height``: the aspect ratio clamped to ``MAX_ASPECT``,
    one scale for both sides to meet the side and pixel limits, then multiples of 16."""
    w, h = float(max(width, 1)), float(max(height, 1))
    if w > MAX_ASPECT * h:
        h = w / MAX_ASPECT
    elif h > MAX_ASPECT * w:
        w = h / MAX_ASPECT
    f = min(1.0, MAX_SIDE / max(w, h), math.sqrt(MAX_PIXELS / (w * h)))
    f = max(f, MIN_SIDE / min(w, h))
    w, h = w * f, h * f

    def side(v: float, rounding=round) -> int:
        return int(min(MAX_SIDE, max(MIN_SIDE, 16 * rounding(v / 16))))

    W, H = side(w), side(h)
    if W * H > MAX_PIXELS:
        W, H = side(w, math.floor), side(h, math.floor)
    while max(W, H) > MAX_ASPECT * min(W, H):  # rounding tipped the ratio: shorten the longer side
        W, H = (W - 16, H) if W > H else (W, H - 16)
    return W, H


def size_problem(width: int, height: int) -> str | None:
    """Why ``width x height`` is not a valid frame size, or None."""
    problems = []
    if width % 16 or height % 16:
        problems.append("width and height must be multiples of 16")
    if min(width, height) < MIN_SIDE or max(width, height) > MAX_SIDE:
        problems.append(f"each side must be {MIN_SIDE}..{MAX_SIDE} pixels")
    elif width * height > MAX_PIXELS:
        problems.append(f"at most {MAX_PIXELS} pixels (e.g. 2048x1152)")
    if max(width, height) > MAX_ASPECT * max(min(width, height), 1):
        problems.append(f"the longer side may be at most {MAX_ASPECT}x the shorter")
    return " and ".join(problems) or None


def check_size(width: int, height: int, what: str = "image", fix: str | None = None) -> None:
    """``fix`` is how the user changes the size, e.g. ``"pass --resize {size}"`` (``{size}``: the nearest)."""
    problem = size_problem(width, height)
    if problem:
        w, h = nearest_size(width, height)
        todo = (fix or "resize or crop it to {size}").format(size=f"{w}x{h}")
        raise ValueError(f"{what} is {width}x{height}: {problem}; {todo}")


def check_image(image, what: str = "start image") -> Tensor:
    """An ``IMAGE``-style tensor ``[H, W, 3]`` float in 0..1, finite, of a valid size; returned as is."""
    if not isinstance(image, Tensor):
        raise ValueError(f"{what} must be a torch tensor [H, W, 3] in 0..1, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[-1] != 3:
        extra = ("; it has an alpha channel: composite it over a background or drop the 4th channel"
                 if image.ndim == 3 and image.shape[-1] == 4 else "")
        raise ValueError(f"{what} must be [H, W, 3] in 0..1, got shape {list(image.shape)}{extra}")
    if not image.is_floating_point():
        raise ValueError(f"{what} has dtype {image.dtype}; give floats in 0..1 (e.g. image.float() / 255)")
    bad = int((~torch.isfinite(image)).sum())
    if bad:
        raise ValueError(f"{what} has {bad} NaN/inf values; give finite values in 0..1")
    lo, hi = float(image.min()), float(image.max())
    if lo < 0 or hi > 1:
        hint = "; it looks like 0..255: divide by 255" if hi > 1.5 else "; clamp it to 0..1"
        raise ValueError(f"{what} values must be in 0..1, got {lo:g}..{hi:g}{hint}")
    H, W = int(image.shape[0]), int(image.shape[1])
    check_size(W, H, what)
    return image


def check_video(frames, what: str = "frames", masks=None) -> Tensor:
    """Frames ``[F, H, W, 3]`` float in 0..1, finite, of a valid size; ``masks [F, H, W]`` alike if given."""
    if not isinstance(frames, Tensor) or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = list(frames.shape) if isinstance(frames, Tensor) else type(frames).__name__
        raise ValueError(f"{what} must be [F, H, W, 3] in 0..1, got {shape}")
    check_image(frames[0], f"{what} (frame 0)")
    bad = int((~torch.isfinite(frames)).sum())
    if bad or float(frames.min()) < 0 or float(frames.max()) > 1:
        first = int(((~torch.isfinite(frames)) | (frames < 0) | (frames > 1)).flatten(1).any(1).nonzero()[0])
        raise ValueError(f"{what}: frame {first} has values outside 0..1 or NaN; give finite values in 0..1")
    if masks is not None:
        if not isinstance(masks, Tensor) or tuple(masks.shape) != tuple(frames.shape[:3]):
            shape = list(masks.shape) if isinstance(masks, Tensor) else type(masks).__name__
            raise ValueError(f"masks must be [F, H, W] = {list(frames.shape[:3])} like the {what}, got {shape}")
        if not bool(torch.isfinite(masks.float()).all()):
            raise ValueError("masks contain NaN/inf values; give values in 0..1")
    return frames


def load_camera_file(path: str, width: int, height: int, option: str = "--trajectory"):
    """A camera file (RealEstate10K .txt, our JSON, nerfstudio, or the official demo's ``.npz``
    pose cache, anchored at its first camera and fitted as ``video_path.pose_cache_path``) at
    ``width x height``, or one line naming the file."""
    from .cameras import Cameras

    if not os.path.isfile(path):
        raise ValueError(f"{option}: camera file not found: {path}")
    if path.lower().endswith(".npz"):  # the official demo's pose cache: anchored at its first camera
        try:
            cams = Cameras.from_pose_cache(path).anchored()
            return cams if (cams.width, cams.height) == (width, height) else cams.cover(width, height)
        except ValueError as e:
            raise ValueError(f"{option}: {e}") from None
    try:
        cams = Cameras.load(path, width, height)
    except ValueError as e:
        raise ValueError(str(e) if path in str(e) else f"{option} {path}: {e}") from None
    except (TypeError, KeyError, IndexError, AttributeError, UnicodeDecodeError) as e:
        raise ValueError(f"{option} {path}: not a valid camera file ({type(e).__name__}: {e})") from None
    return cams if (cams.width, cams.height) == (width, height) else cams.resize(width, height)


def parse_size(text: str, option: str = "--resize") -> tuple[int, int]:
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"{option} takes WIDTHxHEIGHT (e.g. 720x480), got {text!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"{option} sizes must be positive, got {text!r}; e.g. 720x480")
    return w, h


def _pixels(img, path: str, alpha: Alpha) -> np.ndarray:
    """PIL image -> float32 ``[H, W, 3]`` in 0..1, scaling by the file's bit depth."""

    mode = img.mode
    if mode.startswith("I;16") or (mode == "I" and img.format == "PNG"):
        gray = np.asarray(img, dtype=np.float64) / 65535.0  # 16-bit greyscale (PNG keeps 16 bits as I;16/I)
        return np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
    if mode in ("I", "F"):
        raise ValueError(f"{path}: {'32-bit integer' if mode == 'I' else 'floating-point'} images are not supported; "
                         "save it as an 8- or 16-bit PNG or JPEG")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info)
    if not has_alpha:
        return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
    a = rgba[..., 3:]
    if bool((a >= 1.0).all()):  # fully opaque: the alpha channel holds nothing
        return np.ascontiguousarray(rgba[..., :3])
    if alpha == "refuse":
        share = float((a < 1.0).mean())
        raise ValueError(f"{path} has transparent pixels ({100 * share:.1f} % of the image); WorldWarp needs an "
                         "opaque image: pass --alpha white or --alpha black to composite it over that background "
                         "(nodes: composite it first), or flatten it in an editor")
    bg = 1.0 if alpha == "white" else 0.0
    return (rgba[..., :3] * a + bg * (1.0 - a)).astype(np.float32)


def load_image(path: str, resize: str | tuple[int, int] | None = None, alpha: Alpha = "refuse",
               option: str = "--image") -> Tensor:
    """An image file -> ``[H, W, 3]`` float32 in 0..1 of a valid size (EXIF orientation applied).

    ``resize``: ``"WIDTHxHEIGHT"`` or ``(W, H)``; ``alpha``: what to do with transparent pixels
    (``refuse``, or composite over ``white`` / ``black``).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    check_choice(alpha, "--alpha", ALPHA_CHOICES)
    if not path:
        raise ValueError(f"{option} is empty; give an image file (PNG, JPEG, WebP)")
    if not os.path.isfile(path):
        raise ValueError(f"{option}: image not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            fmt = img.format
            img = ImageOps.exif_transpose(img)
            img.format = fmt
            pixels = _pixels(img, path, alpha)
    except (UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise ValueError(f"{option}: {path} is not an image this program can read ({str(e).splitlines()[0]}); "
                         "give a PNG, JPEG or WebP file") from None
    except OSError as e:
        raise ValueError(f"{option}: {path} could not be read ({e}); the file may be truncated or corrupt") from None
    image = torch.from_numpy(pixels)
    H, W = image.shape[:2]
    if resize:
        w, h = parse_size(resize) if isinstance(resize, str) else (int(resize[0]), int(resize[1]))
        check_size(w, h, "--resize", "use {size}")
        x = image.permute(2, 0, 1)[None]
        image = torch.nn.functional.interpolate(x, size=(h, w), mode="bicubic", align_corners=False,
                                                antialias=True)[0].permute(1, 2, 0).clamp(0, 1).contiguous()
        return image
    check_size(W, H, f"{path}", "pass --resize {size} (or another valid size) to resize it")
    return image


# ----------------------------------------------------------------------------- devices and folders
def check_device(device: str, option: str = "--device") -> str:
    """A torch device string that exists on this machine (``cpu``, ``cuda``, ``cuda:1``, ``mps``)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{option} {device!r} is not a device; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{option} {device}: CUDA is not available here (torch {torch.__version__}, "
                             f"CUDA build {torch.version.cuda}); use --device cpu or install a CUDA build of torch")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{option} {device}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                             f"use cuda:0..cuda:{torch.cuda.device_count() - 1}")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"{option} mps: Apple MPS is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise ValueError(f"{option} {device!r}: only cpu, cuda and mps devices are supported")
    return device


def check_output_folder(path: str, resume: bool = False, overwrite: bool = False, resume_flag: str = "--resume",
                        overwrite_flag: str = "--overwrite", option: str = "--out") -> None:
    """The output folder can hold this run: not a file, writable, and holding another run only
    when resume or overwrite is asked (the fingerprint is compared later, by ``RunFolder``)."""
    if not path:
        raise ValueError(f"{option} is empty; give an output folder")
    if resume and overwrite:
        raise ValueError(f"{resume_flag} and {overwrite_flag} exclude each other; pass one of them")
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{option} {path} is a file, not a folder; choose a folder (it is created if missing)")
    parent = path
    while not os.path.exists(parent):  # the nearest existing folder decides whether it can be created
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"{option} {path}: {parent} is a file, so the folder cannot be created; choose another")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: {parent} is not writable; choose a folder you can write to")
    if os.path.isfile(os.path.join(path, "run.json")):
        if not (resume or overwrite):
            raise ValueError(f"{path} already holds a run; pass {resume_flag} to continue it or {overwrite_flag} "
                             "to replace it, or choose another output folder")
    elif os.path.isdir(path) and os.listdir(path):  # overwrite only ever replaces a WorldWarp run
        raise ValueError(f"{path} is not empty and holds no WorldWarp run; choose an empty or new folder"
                         + (f" ({overwrite_flag} only replaces a WorldWarp run)" if overwrite else ""))


# ----------------------------------------------------------------------------- names, paths inside a folder
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10)),
                     "COM\u00b9", "COM\u00b2", "COM\u00b3", "LPT\u00b9", "LPT\u00b2", "LPT\u00b3"}
_BAD_CHARS = '<>:"|?*'


def check_name(text, option: str, what: str = "a folder under ComfyUI's output folder") -> str:
    """A relative name (``worldwarp/run``, ``worldwarp/cameras``) valid on Windows and Linux alike:
    not empty, no ``.``/``..``-only or hidden part, no NUL or control characters, none of
    ``<>:"|?*``, no part ending in a dot or space, no Windows device name (``CON``, ``NUL.txt``,
    ``COM1``...). ``/`` and ``\\`` separate folders. Returns the name as given."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{option} is empty; give {what}, e.g. worldwarp/run")
    bad = next((c for c in text if ord(c) < 32 or c in _BAD_CHARS), None)
    if bad is not None:
        shown = f"U+{ord(bad):04X}" if ord(bad) < 32 else repr(bad)
        raise ValueError(f"{option} holds the character {shown}, which file names cannot hold; use letters, digits, "
                         "'-', '_' and '/' for folders")
    parts = text.replace("\\", "/").split("/")
    if any(p == ".." for p in parts):
        raise ValueError(f"{option} {text!r} leaves ComfyUI's output folder; give {what} (no '..')")
    if not parts[-1] or parts[-1] == ".":
        base = text.rstrip("/\\.")
        raise ValueError(f"{option} {text!r} ends in a folder, not a name; add a name, e.g. "
                         f"{base + '/' if base else 'worldwarp/'}run")
    for part in parts:
        if part in ("", "."):
            continue
        if part.startswith("."):
            raise ValueError(f"{option} {text!r}: {part!r} would be a hidden file or folder; give a name that does "
                             "not start with '.'")
        if part.endswith((".", " ")) or part != part.strip():
            raise ValueError(f"{option} {text!r}: {part!r} starts or ends in a space or ends in a dot, which Windows "
                             "drops; remove it")
        if part.split(".")[0].upper().rstrip() in _WINDOWS_RESERVED:
            raise ValueError(f"{option} {text!r}: {part!r} is a reserved device name on Windows; choose another name")
    return text


def path_inside(root: str, relative: str, option: str, folder: str = "output") -> str:
    """``root/relative`` with every link resolved, refused unless it stays inside ``root`` (also
    resolved), as ComfyUI's own Save nodes check: a link inside the folder that points elsewhere
    does not take the writes with it."""
    real_root = os.path.realpath(root)
    path = os.path.realpath(os.path.join(real_root, relative))
    if os.path.commonpath([real_root, path]) != real_root:
        raise ValueError(f"{option} {relative!r} leaves ComfyUI's {folder} folder (a '..' or a link to another "
                         f"place); give a path inside the {folder} folder")
    return path


def input_file(root: str, name, option: str, extensions: tuple[str, ...] | None = None) -> str:
    """The file ``name`` of ComfyUI's input folder ``root`` (a name or a relative path in it), links
    resolved before the containment check. Refused with one line: an empty name, an absolute path,
    a path that leaves the folder (``..``, or a link to elsewhere), another extension than
    ``extensions``, a missing file. Which line depends on the name only, never on whether a file
    outside the folder exists: nothing about other files is revealed."""
    kinds = "/".join(extensions) + " file" if extensions else "file"
    rel = name.strip() if isinstance(name, str) else ""
    shown = os.path.abspath(root)
    if not rel:
        raise ValueError(f"{option}: give the name of a {kinds} in ComfyUI's input folder ({shown})")
    if "\x00" in rel or any(ord(c) < 32 for c in rel):
        raise ValueError(f"{option}: the name holds a control character (e.g. NUL); give the name of a {kinds} in "
                         "ComfyUI's input folder")
    if os.path.isabs(rel) or rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        raise ValueError(f"{option}: {rel!r} is an absolute path; put the file in ComfyUI's input folder ({shown}) "
                         "and give its name there")
    real_root = os.path.realpath(root)
    path = os.path.realpath(os.path.join(real_root, rel))
    if os.path.commonpath([real_root, path]) != real_root:
        raise ValueError(f"{option}: {rel!r} leaves ComfyUI's input folder (a '..' or a link to another place); "
                         "give a file inside it")
    if extensions and not rel.lower().endswith(tuple(extensions)):
        raise ValueError(f"{option}: {rel!r} is not a {kinds}")
    if not os.path.isfile(path):
        raise ValueError(f"{option}: {rel!r} not found in ComfyUI's input folder ({shown}); upload it there or "
                         "check the name")
    return path


def os_error_message(e: OSError, again: str = "run again with --resume") -> str:
    """One line for a failed write or read (disk full, read-only, permissions); ``again`` says how
    to continue the run (the CLI's flag, or the nodes' resume switch)."""
    what = e.filename or "a file"
    if e.errno == errno.ENOSPC:
        return f"disk full while writing {what}; free space and {again} (finished chunks are kept)"
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write {what}: {e.strerror}; choose an output folder you can write to"
    return f"{what}: {e.strerror or e}"


# ----------------------------------------------------------------------------- files of a run folder
def read_json(path: str, what: str, todo: str = "delete that chunk folder to redo it, or run with --overwrite") -> dict:
    """A JSON file of a run folder, or a one-line error naming it and saying what to do."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{what} {path} is missing; the run folder is damaged: {todo}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{what} {path} is corrupt ({e}); {todo}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} {path} is corrupt (not a JSON object); {todo}")
    return data


def read_npy(path: str, what: str, shape: tuple[int | None, ...] | None = None) -> np.ndarray:
    """A ``.npy`` of a run folder (``allow_pickle=False``), its shape checked, or a one-line error."""
    try:
        a = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"{what} {path} is missing; the run folder is damaged") from None
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{what} {path} is truncated or corrupt ({str(e).splitlines()[0]}); delete that chunk "
                         "folder to redo it, or run with --overwrite") from None
    if shape is not None and (a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape))):
        want = "x".join("*" if s is None else str(s) for s in shape)
        raise ValueError(f"{what} {path} has shape {list(a.shape)}, expected {want}; delete that chunk folder "
                         "to redo it, or run with --overwrite")
    return a


__all__ = [
    "ALPHA_CHOICES", "MAX_ASPECT", "MAX_CAMERAS", "MAX_CAMERA_FILE_BYTES", "MAX_CHUNK_FRAMES", "MAX_FRAMES",
    "MAX_HINT_PIXELS", "MAX_JSON_DEPTH", "MAX_JSON_INT_DIGITS", "MAX_PIXELS", "MAX_SIDE", "MIN_SIDE", "SEED_MAX",
    "check_name", "input_file", "loads_json", "path_inside", "read_text_file", "check_choice", "check_device", "check_float",
    "check_image", "check_int", "check_video", "load_camera_file", "check_output_folder", "check_seed", "check_size", "load_image", "nearest_size",
    "os_error_message", "parse_size", "read_json", "read_npy", "size_problem",
]
