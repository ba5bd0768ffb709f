"""Cameras: the one camera convention of the project, and camera file formats.

Convention:
    OpenCV axes: x right, y down, z forward (the camera looks along +z).
    Extrinsics are world-to-camera matrices ``viewmats`` ``[F, 4, 4]`` (what gsplat's
    ``rasterization`` takes): ``x_cam = R @ x_world + t`` with ``viewmats[:, :3, :3] = R`` and
    ``viewmats[:, :3, 3] = t``. Camera-to-world ``c2w`` is always derived, never stored.
    Intrinsics ``Ks`` ``[F, 3, 3]`` are in pixels of the stored ``width`` x ``height``, with the
    pixel centre of pixel (u, v) at (u + 0.5, v + 0.5): a point projects to
    ``u = fx * x / z + cx``, ``v = fy * y / z + cy`` and pixel index ``floor(u)``.
    Scene scale: trajectory presets are expressed in units of the first frame's median depth.

Every other module takes this convention from here and re-derives nothing.

File formats:
    * RealEstate10K txt: optional first line (the source video URL), then one line per frame
      ``timestamp fx fy cx cy 0 0 r11 r12 r13 t1 r21 r22 r23 t2 r31 r32 r33 t3`` with fx, cx
      divided by the width, fy, cy by the height, and a world-to-camera 3x4 matrix, row-major,
      OpenCV axes. Values read back exactly as written (matrix via ``repr``, normalised
      intrinsics to 15 significant digits).
    * JSON (ours): ``{"width", "height", "frames": [{"viewmat": 4x4, "K": 3x3, "timestamp"}]}``.
    * nerfstudio ``transforms.json``: camera-to-world ``transform_matrix`` in OpenGL axes
      (x right, y up, z backward); converted on read and write.
    * The official WorldWarp demo's pose cache ``.npz`` (``np.savez``, read without pickles):
      ``poses`` float32 ``[1, N, 4, 4]`` camera-to-world in OpenCV axes and ``intrinsics`` float32
      ``[1, N, 3, 3]`` in pixels, principal point at the image centre; the file holds no image
      size, so it is read from the principal point (``W = 2·cx``, ``H = 2·cy``) unless given.
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

# OpenCV <-> OpenGL camera axes: flip y and z. The matrix is its own inverse.
_CV_TO_GL = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))

_ORTHO_TOL = 1e-3


def _check_finite(name: str, value: Tensor) -> None:
    bad = ~torch.isfinite(value.reshape(value.shape[0], -1)).all(dim=1)
    if bool(bad.any()):
        frame = int(torch.nonzero(bad)[0])
        raise ValueError(f"{name} of frame {frame} has a non-finite value (NaN or inf): {value[frame].tolist()}")


def validate_viewmats(viewmats: Tensor, tol: float = _ORTHO_TOL) -> None:
    """Raise ``ValueError`` naming the first bad frame of world-to-camera matrices ``[F, 4, 4]``."""
    if viewmats.ndim != 3 or tuple(viewmats.shape[1:]) != (4, 4):
        raise ValueError(f"viewmats must have shape [F, 4, 4], got {list(viewmats.shape)}")
    _check_finite("viewmat", viewmats)
    v = viewmats.double()
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64, device=v.device)
    bad_row = (v[:, 3, :] - bottom).abs().amax(dim=1) > 1e-6
    if bool(bad_row.any()):
        frame = int(torch.nonzero(bad_row)[0])
        raise ValueError(f"viewmat of frame {frame}: last row must be [0, 0, 0, 1], got {v[frame, 3].tolist()}")
    R = v[:, :3, :3]
    eye = torch.eye(3, dtype=torch.float64, device=v.device)
    err = (R @ R.transpose(1, 2) - eye).abs().amax(dim=(1, 2))
    det = torch.linalg.det(R)
    bad = (err > tol) | ((det - 1.0).abs() > tol)
    if bool(bad.any()):
        frame = int(torch.nonzero(bad)[0])
        raise ValueError(
            f"viewmat of frame {frame}: rotation is not orthonormal with det +1 "
            f"(max |R R^T - I| = {float(err[frame]):.3g}, det = {float(det[frame]):.6g})"
        )


def validate_intrinsics(Ks: Tensor) -> None:
    """Raise ``ValueError`` naming the first bad frame of pinhole intrinsics ``[F, 3, 3]``."""
    if Ks.ndim != 3 or tuple(Ks.shape[1:]) != (3, 3):
        raise ValueError(f"Ks must have shape [F, 3, 3], got {list(Ks.shape)}")
    _check_finite("K", Ks)
    bad = (Ks[:, 0, 0] <= 0) | (Ks[:, 1, 1] <= 0)
    if bool(bad.any()):
        frame = int(torch.nonzero(bad)[0])
        raise ValueError(f"K of frame {frame}: focal lengths must be positive, got {Ks[frame].tolist()}")
    expected = torch.tensor([0.0, 0.0, 1.0], dtype=Ks.dtype, device=Ks.device)
    bad = (Ks[:, 2, :] - expected).abs().amax(dim=1) > 1e-6
    if bool(bad.any()):
        frame = int(torch.nonzero(bad)[0])
        raise ValueError(f"K of frame {frame}: last row must be [0, 0, 1], got {Ks[frame, 2].tolist()}")


def intrinsics_from_fov(fov_x_deg: float, width: int, height: int, frames: int = 1) -> Tensor:
    """Pinhole ``Ks`` ``[F, 3, 3]`` with a horizontal field of view in degrees, centred principal point."""
    if not 0.0 < fov_x_deg < 180.0:
        raise ValueError(f"horizontal field of view must be in (0, 180) degrees, got {fov_x_deg}")
    fx = 0.5 * width / math.tan(math.radians(fov_x_deg) / 2.0)
    K = torch.tensor([[fx, 0.0, width / 2.0], [0.0, fx, height / 2.0], [0.0, 0.0, 1.0]])
    return K.expand(frames, 3, 3).clone()


def look_at(eye: Tensor, target: Tensor, up: Sequence[float] = (0.0, -1.0, 0.0)) -> Tensor:
    """World-to-camera ``[..., 4, 4]`` for cameras at ``eye [..., 3]`` looking at ``target [..., 3]``.

    Computed in float64; returned in ``eye``'s floating dtype (float32 otherwise).

    ``up`` is the world direction that should appear up in the image; with OpenCV axes the
    default world frame has y down, so "up" is -y.
    """
    out_dtype = eye.dtype if isinstance(eye, Tensor) and eye.is_floating_point() else torch.float32
    eye = torch.as_tensor(eye, dtype=torch.float64)
    target = torch.as_tensor(target, dtype=torch.float64)
    up_t = torch.as_tensor(up, dtype=torch.float64).expand_as(eye)
    z = target - eye
    if bool((z.norm(dim=-1) < 1e-12).any()):
        raise ValueError("look_at: eye and target coincide")
    z = z / z.norm(dim=-1, keepdim=True)
    x = torch.cross(-up_t, z, dim=-1)  # right = down x forward (OpenCV: x = y cross z)
    if bool((x.norm(dim=-1) < 1e-9).any()):
        raise ValueError("look_at: viewing direction is parallel to the up vector")
    x = x / x.norm(dim=-1, keepdim=True)
    y = torch.cross(z, x, dim=-1)
    R = torch.stack([x, y, z], dim=-2)  # rows are camera axes in world coordinates
    w2c = torch.zeros(*eye.shape[:-1], 4, 4, dtype=torch.float64)
    w2c[..., :3, :3] = R
    w2c[..., :3, 3] = -(R @ eye.unsqueeze(-1)).squeeze(-1)
    w2c[..., 3, 3] = 1.0
    return w2c.to(out_dtype)


@dataclass
class Cameras:
    """A sequence of ``F`` pinhole cameras in the project's one convention (module docstring).

    Attributes:
        viewmats: world-to-camera ``[F, 4, 4]``.
        Ks: intrinsics ``[F, 3, 3]`` in pixels of ``width`` x ``height``.
        width, height: image size in pixels.
        timestamps: optional per-frame timestamps (RealEstate10K keeps microseconds); ``None``
            means "frame index".
    """

    viewmats: Tensor  # [F, 4, 4]
    Ks: Tensor  # [F, 3, 3]
    width: int
    height: int
    timestamps: list[int] | None = field(default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.viewmats, Tensor) or not isinstance(self.Ks, Tensor):
            raise ValueError("Cameras.viewmats and Cameras.Ks must be torch tensors")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"image size must be positive, got width={self.width}, height={self.height}")
        self.width, self.height = int(self.width), int(self.height)
        validate_viewmats(self.viewmats)
        validate_intrinsics(self.Ks)
        if self.viewmats.shape[0] != self.Ks.shape[0]:
            raise ValueError(
                f"viewmats has {self.viewmats.shape[0]} frames but Ks has {self.Ks.shape[0]}; give one K per frame"
            )
        if self.viewmats.shape[0] == 0:
            raise ValueError("Cameras needs at least one frame")
        if self.timestamps is not None and len(self.timestamps) != len(self):
            raise ValueError(f"{len(self.timestamps)} timestamps for {len(self)} frames")

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_c2w(cls, c2w: Tensor, Ks: Tensor, width: int, height: int, **kw) -> "Cameras":
        """Build from camera-to-world ``[F, 4, 4]`` (OpenCV axes)."""
        if c2w.ndim != 3 or tuple(c2w.shape[1:]) != (4, 4):
            raise ValueError(f"c2w must have shape [F, 4, 4], got {list(c2w.shape)}")
        _check_finite("c2w", c2w)
        return cls(invert_rigid(c2w), Ks, width, height, **kw)

    # ----------------------------------------------------------------- properties
    def __len__(self) -> int:
        return int(self.viewmats.shape[0])

    @property
    def c2w(self) -> Tensor:  # [F, 4, 4]
        return invert_rigid(self.viewmats)

    @property
    def centers(self) -> Tensor:  # [F, 3] camera centres in world coordinates
        return self.c2w[:, :3, 3]

    @property
    def rotations(self) -> Tensor:  # [F, 3, 3] world-to-camera rotations
        return self.viewmats[:, :3, :3]

    @property
    def device(self) -> torch.device:
        return self.viewmats.device

    # ----------------------------------------------------------------- sequence ops
    def __getitem__(self, index) -> "Cameras":
        if isinstance(index, int):
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        vm = self.viewmats[index]
        if vm.ndim != 3:
            raise ValueError(f"Cameras index {index!r} must select frames, not a single element")
        ts = None
        if self.timestamps is not None:
            idx = torch.arange(len(self))[index]
            ts = [self.timestamps[int(i)] for i in idx.reshape(-1)]
        return Cameras(vm, self.Ks[index], self.width, self.height, ts)

    @staticmethod
    def cat(cameras: Sequence["Cameras"]) -> "Cameras":
        """Concatenate along frames; all parts must share the image size."""
        if len(cameras) == 0:
            raise ValueError("Cameras.cat needs at least one Cameras")
        w, h = cameras[0].width, cameras[0].height
        for i, c in enumerate(cameras):
            if (c.width, c.height) != (w, h):
                raise ValueError(f"Cameras.cat: part {i} is {c.width}x{c.height}, part 0 is {w}x{h}; resize first")
        ts = None
        if all(c.timestamps is not None for c in cameras):
            ts = [t for c in cameras for t in c.timestamps]
        dev = cameras[0].device
        return Cameras(
            torch.cat([c.viewmats.to(dev) for c in cameras]),
            torch.cat([c.Ks.to(dev) for c in cameras]),
            w,
            h,
            ts,
        )

    def to(self, device=None, dtype: torch.dtype | None = None) -> "Cameras":
        return Cameras(
            self.viewmats.to(device=device, dtype=dtype),
            self.Ks.to(device=device, dtype=dtype),
            self.width,
            self.height,
            self.timestamps,
        )

    # ----------------------------------------------------------------- image-space ops
    def resize(self, width: int, height: int) -> "Cameras":
        """The same cameras for an image resized to ``width`` x ``height`` (intrinsics scaled)."""
        if width <= 0 or height <= 0:
            raise ValueError(f"resize target must be positive, got {width}x{height}")
        sx, sy = width / self.width, height / self.height
        Ks = self.Ks.clone()
        Ks[:, 0, :] *= sx
        Ks[:, 1, :] *= sy
        Ks[:, 2, :] = torch.tensor([0.0, 0.0, 1.0], dtype=Ks.dtype, device=Ks.device)
        return Cameras(self.viewmats, Ks, width, height, self.timestamps)

    def crop(self, left: int, top: int, width: int, height: int) -> "Cameras":
        """The same cameras for the crop ``[top:top+height, left:left+width]`` of the image."""
        if left < 0 or top < 0 or left + width > self.width or top + height > self.height or width <= 0 or height <= 0:
            raise ValueError(
                f"crop (left={left}, top={top}, width={width}, height={height}) does not fit "
                f"in a {self.width}x{self.height} image"
            )
        Ks = self.Ks.clone()
        Ks[:, 0, 2] -= left
        Ks[:, 1, 2] -= top
        return Cameras(self.viewmats, Ks, width, height, self.timestamps)

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """Project world points ``[N, 3]`` into every camera: pixel coords ``[F, N, 2]``, depth ``[F, N]``."""
        pts = points.to(self.viewmats.dtype)
        cam = pts @ self.viewmats[:, :3, :3].transpose(1, 2) + self.viewmats[:, None, :3, 3]
        z = cam[..., 2]
        uv = (cam @ self.Ks.transpose(1, 2))[..., :2] / z.unsqueeze(-1)
        return uv, z

    # ----------------------------------------------------------------- RealEstate10K
    @classmethod
    def from_re10k(cls, path: str | os.PathLike, width: int, height: int) -> "Cameras":
        """Read a RealEstate10K pose file; ``width``/``height`` give the pixel size of the intrinsics."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ValueError(f"RealEstate10K pose file not found: {path}")
        return cls.from_re10k_text(_read_text(path, "RealEstate10K pose file"), width, height, path)

    @classmethod
    def from_re10k_text(cls, text: str, width: int, height: int, where: str = "RealEstate10K text") -> "Cameras":
        """Read the content of a RealEstate10K pose file (``where`` names it in errors).

        Strict: the optional first line is the source URL only when it is one word that is not a
        number; every other non-empty line must be one frame of exactly 19 numbers (an integer
        timestamp first). A file that ends without a newline in a number shorter than the same
        number on every other line (fixed-precision files) was cut off, and is refused.
        """
        path = where
        numbered = [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
        url = None
        if numbered:
            words = numbered[0][1].split()
            if len(words) == 1 and not _is_number(words[0]):
                url, numbered = words[0], numbered[1:]
        if not numbered:
            raise ValueError(f"{path}: no camera lines (expected 19 numbers per line)")
        _check_count(len(numbered), path)
        rows, stamps, tokens = [], [], []
        for i, (n, ln) in enumerate(numbered):
            parts = ln.split()
            if len(parts) != 19:
                raise ValueError(f"{path}: frame {i} (line {n}) has {len(parts)} values, expected 19 "
                                 "(timestamp fx fy cx cy 0 0 and a 3x4 world-to-camera matrix); "
                                 "the line is cut short or is not a camera line")
            if not re.fullmatch(r"[+-]?\d+", parts[0]):
                raise ValueError(f"{path}: frame {i} (line {n}): timestamp {parts[0]!r} is not a whole number "
                                 "(microseconds)")
            for k, word in enumerate(parts[1:], start=2):
                if not _is_number(word):
                    raise ValueError(f"{path}: frame {i} (line {n}): value {k} of 19, {word!r}, is not a number")
            stamps.append(int(parts[0]))
            rows.append([float(w) for w in parts[1:]])
            tokens.append(parts)
        if not text.endswith(("\n", "\r")) and len(tokens) > 1:
            decimals = {_decimals(t[-1]) for t in tokens[:-1]}
            last = tokens[-1][-1]
            if len(decimals) == 1 and _decimals(last) < decimals.pop():
                raise ValueError(f"{path}: frame {len(tokens) - 1} (line {numbered[-1][0]}) ends the file in "
                                 f"{last!r}, shorter than that number on every other line, and the file has no "
                                 "final newline: it was cut off mid-number; restore the complete file")
        data = torch.tensor(rows, dtype=torch.float64)
        F = data.shape[0]
        Ks = torch.zeros(F, 3, 3, dtype=torch.float64)
        Ks[:, 0, 0] = data[:, 0] * width
        Ks[:, 1, 1] = data[:, 1] * height
        Ks[:, 0, 2] = data[:, 2] * width
        Ks[:, 1, 2] = data[:, 3] * height
        Ks[:, 2, 2] = 1.0
        vm = torch.eye(4, dtype=torch.float64).repeat(F, 1, 1)
        vm[:, :3, :] = data[:, 6:18].reshape(F, 3, 4)
        with _naming(path):
            cams = cls(vm, Ks, width, height, stamps)
        cams.source_url = url  # type: ignore[attr-defined]
        return cams

    def to_re10k(self, path: str | os.PathLike, url: str | None = None) -> None:
        """Write a RealEstate10K pose file (float64 values written with ``repr`` so reading is lossless)."""
        _atomic_write_text(path, self.to_re10k_text(url))

    def to_re10k_text(self, url: str | None = None) -> str:
        """The content of a RealEstate10K pose file (see ``to_re10k``)."""
        url = url if url is not None else getattr(self, "source_url", None)
        vm = self.viewmats.detach().double().cpu()
        K = self.Ks.detach().double().cpu()
        stamps = self.timestamps if self.timestamps is not None else list(range(len(self)))
        lines = [url] if url else []
        for i in range(len(self)):
            intr = [K[i, 0, 0] / self.width, K[i, 1, 1] / self.height, K[i, 0, 2] / self.width, K[i, 1, 2] / self.height]
            # Intrinsics go through K / size, which can move the last bit of a value read from a
            # file (0.474812461 -> 0.4748124610000001); 15 significant digits undo that. The
            # matrix is written with repr, exact.
            words = [str(int(stamps[i]))] + [f"{float(v):.15g}" for v in intr] + ["0", "0"]
            words += [repr(float(v)) for v in vm[i, :3, :].reshape(-1)]
            lines.append(" ".join(words))
        return "\n".join(lines) + "\n"

    # ----------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        vm = self.viewmats.detach().double().cpu()
        K = self.Ks.detach().double().cpu()
        frames = []
        for i in range(len(self)):
            fr = {"viewmat": vm[i].tolist(), "K": K[i].tolist()}
            if self.timestamps is not None:
                fr["timestamp"] = int(self.timestamps[i])
            frames.append(fr)
        return {"convention": "opencv_w2c", "width": self.width, "height": self.height, "frames": frames}

    @classmethod
    def from_dict(cls, data: dict, where: str = "camera JSON") -> "Cameras":
        """Cameras from ``to_dict``'s layout; every field is checked (``where`` names the source in errors)."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: a camera JSON holds an object with width, height and frames, "
                             f"got {type(data).__name__}")
        missing = [k for k in ("width", "height", "frames") if k not in data]
        if missing:
            raise ValueError(f"{where}: missing {', '.join(repr(k) for k in missing)}; "
                             "expected keys width, height, frames[].viewmat, frames[].K")
        convention = data.get("convention", "opencv_w2c")
        if convention != "opencv_w2c":
            raise ValueError(f"{where}: convention {convention!r} is not 'opencv_w2c'")
        width = _json_size(data["width"], f"{where}: 'width'")
        height = _json_size(data["height"], f"{where}: 'height'")
        frames = data["frames"]
        if not isinstance(frames, list) or not frames:
            raise ValueError(f"{where}: 'frames' must be a non-empty list of cameras, got {_short(frames)}")
        _check_count(len(frames), where)
        vms, Ks, ts = [], [], []
        for i, fr in enumerate(frames):
            at = f"{where}: frame {i}"
            if not isinstance(fr, dict):
                raise ValueError(f"{at} must be an object with viewmat and K, got {_short(fr)}")
            for key in ("viewmat", "K"):
                if key not in fr:
                    raise ValueError(f"{at} has no {key!r}")
            vms.append(_json_matrix(fr["viewmat"], 4, 4, f"{at} 'viewmat'"))
            Ks.append(_json_matrix(fr["K"], 3, 3, f"{at} 'K'"))
            if "timestamp" in fr:
                ts.append(_json_integer(fr["timestamp"], f"{at} 'timestamp'"))
        if ts and len(ts) != len(frames):
            raise ValueError(f"{where}: {len(ts)} of {len(frames)} frames have a 'timestamp'; give all or none")
        with _naming(where):
            return cls(torch.tensor(vms, dtype=torch.float64), torch.tensor(Ks, dtype=torch.float64),
                       width, height, ts or None)

    def to_json(self, path: str | os.PathLike) -> None:
        _atomic_write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "Cameras":
        path = _existing(path, "camera JSON")
        return cls.from_dict(_parse_json(_read_text(path, "camera JSON"), path), path)

    def cover(self, width: int, height: int) -> "Cameras":
        """The same cameras for the image scaled to cover ``width`` x ``height`` and centre-cropped
        (``cover_geometry``; how the official demo fits a reference video's frames)."""
        hr, wr, top, left = cover_geometry(self.width, self.height, width, height)
        scaled = self.resize(wr, hr) if (wr, hr) != (self.width, self.height) else self
        return scaled.crop(left, top, width, height)

    def anchored(self) -> "Cameras":
        """The path relative to its first camera (``c2w_0^-1 · c2w``; frame 0 becomes the identity)."""
        c2w = self.c2w.double()
        rel = torch.linalg.inv(c2w[0]) @ c2w
        rel[0] = torch.eye(4, dtype=torch.float64, device=rel.device)
        return Cameras.from_c2w(rel, self.Ks.double(), self.width, self.height)

    # ----------------------------------------------------------------- the official pose cache
    def pose_cache_arrays(self) -> dict:
        """The official cache's arrays: ``poses [1, N, 4, 4]`` camera-to-world, ``intrinsics [1, N, 3, 3]``, float32."""
        return {"poses": self.c2w.double().cpu().numpy().astype(np.float32)[None],
                "intrinsics": self.Ks.double().cpu().numpy().astype(np.float32)[None]}

    def to_pose_cache(self, path: str | os.PathLike) -> None:
        """Write the official demo's ``.npz`` pose cache (``np.savez``), atomically."""
        path = os.fspath(path)
        if not path.lower().endswith(".npz"):
            raise ValueError(f"a pose cache is a .npz file; got {path!r}")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = path[:-4] + ".partial.npz"
        try:
            np.savez(tmp, **self.pose_cache_arrays())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def from_pose_cache(cls, path: str | os.PathLike, width: int | None = None,
                        height: int | None = None) -> "Cameras":
        """Read an official ``.npz`` pose cache as stored (module docstring)."""
        path = _existing(path, "pose cache")
        _check_archive(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in ("poses", "intrinsics") if k not in data.files]
                if missing:
                    raise ValueError(f"{path}: not an official pose cache (no {', '.join(missing)}; it holds "
                                     f"{', '.join(data.files) or 'nothing'})")
                poses, Ks = data["poses"], data["intrinsics"]
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise ValueError(f"{path}: not a NumPy .npz pose cache ({type(e).__name__}: {e})") from None
        except ValueError as e:
            if str(e).startswith(path):
                raise
            raise ValueError(f"{path}: not a NumPy .npz pose cache ({e})") from None
        for arr, name, tail in ((poses, "poses", (4, 4)), (Ks, "intrinsics", (3, 3))):
            if (arr.dtype.kind != "f" or arr.ndim not in (3, 4) or arr.shape[-2:] != tail
                    or (arr.ndim == 4 and arr.shape[0] != 1)):
                raise ValueError(f"{path}: '{name}' must be float [1, N, {tail[0]}, {tail[1]}], got {arr.dtype} "
                                 f"{list(arr.shape)}")
        _check_count(int(np.prod(poses.shape[:-2])), path)
        poses = poses.reshape(-1, 4, 4).astype(np.float64)
        Ks = Ks.reshape(-1, 3, 3).astype(np.float64)
        if poses.shape[0] != Ks.shape[0] or poses.shape[0] == 0:
            raise ValueError(f"{path}: {poses.shape[0]} poses and {Ks.shape[0]} intrinsics; they must match (and be "
                             "at least one)")
        if not (np.isfinite(poses).all() and np.isfinite(Ks).all()):
            raise ValueError(f"{path}: the cache holds NaN or infinite values")
        if (width is None) != (height is None):
            raise ValueError("give both the width and the height of the pose cache, or neither")
        if width is None:
            cx, cy = float(Ks[0, 0, 2]), float(Ks[0, 1, 2])
            W, H = 2 * cx, 2 * cy
            if not (W >= 1 and H >= 1 and abs(W - round(W)) < 1e-3 and abs(H - round(H)) < 1e-3):
                raise ValueError(f"{path}: the principal point ({cx:g}, {cy:g}) is not an image centre, so the image "
                                 "size is unknown; give the width and height the cache was made at")
            width, height = int(round(W)), int(round(H))
        with _naming(path):
            return cls.from_c2w(torch.from_numpy(poses), torch.from_numpy(Ks), width, height)

    # ----------------------------------------------------------------- nerfstudio
    def to_nerfstudio(self, path: str | os.PathLike) -> None:
        """Write a nerfstudio ``transforms.json`` (camera-to-world in OpenGL axes, per-frame intrinsics)."""
        _atomic_write_text(path, json.dumps(self.to_nerfstudio_dict(), indent=1))

    def to_nerfstudio_dict(self) -> dict:
        """The content of a nerfstudio ``transforms.json`` (see ``to_nerfstudio``)."""
        c2w_gl = self.c2w.detach().double().cpu() @ _CV_TO_GL
        K = self.Ks.detach().double().cpu()
        frames = []
        for i in range(len(self)):
            frames.append({
                "file_path": f"images/frame_{i:05d}.png",
                "transform_matrix": c2w_gl[i].tolist(),
                "fl_x": float(K[i, 0, 0]), "fl_y": float(K[i, 1, 1]),
                "cx": float(K[i, 0, 2]), "cy": float(K[i, 1, 2]),
                "w": self.width, "h": self.height,
            })
        return {"camera_model": "OPENCV", "w": self.width, "h": self.height, "frames": frames}

    @classmethod
    def from_nerfstudio(cls, path: str | os.PathLike) -> "Cameras":
        """Read a nerfstudio ``transforms.json`` (OpenGL axes) into OpenCV world-to-camera."""
        path = _existing(path, "nerfstudio transforms.json")
        return cls.from_nerfstudio_dict(_parse_json(_read_text(path, "nerfstudio transforms.json"), path), path)

    @classmethod
    def from_nerfstudio_dict(cls, data: dict, path: str = "transforms.json") -> "Cameras":
        """Read the content of a nerfstudio ``transforms.json`` (``path`` names it in errors).

        Per-frame ``w``, ``h``, ``fl_x``, ``fl_y``, ``cx``, ``cy`` fall back to the file header; each
        must be a number (sizes whole and positive), ``transform_matrix`` a 3x4 or 4x4 list.
        """
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a transforms.json holds a JSON object, got {type(data).__name__}")
        if "frames" not in data:
            raise ValueError(f"{path}: no 'frames' in transforms.json")
        frames = data["frames"]
        if not isinstance(frames, list) or not frames:
            raise ValueError(f"{path}: 'frames' must be a non-empty list of cameras, got {_short(frames)}")
        _check_count(len(frames), path)
        c2w, Ks = [], []
        width = height = None
        for i, fr in enumerate(frames):
            at = f"{path}: frame {i}"
            if not isinstance(fr, dict):
                raise ValueError(f"{at} must be an object with a transform_matrix, got {_short(fr)}")

            def get(key, fr=fr, at=at):
                if key in fr:
                    return fr[key], f"{at} {key!r}"
                if key in data:
                    return data[key], f"{path}: header {key!r}"
                raise ValueError(f"{at} has no {key!r} (nor does the file header)")

            if "transform_matrix" not in fr:
                raise ValueError(f"{at} has no 'transform_matrix'")
            mat = fr["transform_matrix"]
            rows = len(mat) if isinstance(mat, list) else 0
            mat = _json_matrix(mat, 3 if rows == 3 else 4, 4, f"{at} 'transform_matrix'")
            if rows == 3:
                mat.append([0.0, 0.0, 0.0, 1.0])
            w, h = _json_size(*get("w")), _json_size(*get("h"))
            if width is None:
                width, height = w, h
            elif (w, h) != (width, height):
                raise ValueError(f"{at} is {w}x{h}, frame 0 is {width}x{height}; one size per file")
            c2w.append(torch.tensor(mat, dtype=torch.float64) @ _CV_TO_GL)
            fx, fy = _json_number(*get("fl_x")), _json_number(*get("fl_y"))
            cx, cy = _json_number(*get("cx")), _json_number(*get("cy"))
            Ks.append([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        with _naming(path):
            return cls.from_c2w(torch.stack(c2w), torch.tensor(Ks, dtype=torch.float64), width, height)

    @classmethod
    def load(cls, path: str | os.PathLike, width: int | None = None, height: int | None = None) -> "Cameras":
        """Load any supported camera file, chosen by content: RealEstate10K txt (needs width/height),
        our JSON, or nerfstudio transforms.json."""
        path = _existing(path, "camera file")
        return cls.parse(_read_text(path, "camera file"), path, width, height)

    @classmethod
    def _from_json_data(cls, data, where: str) -> "Cameras":
        if _looks_nerfstudio(data):
            return cls.from_nerfstudio_dict(data, where)
        return cls.from_dict(data, where)

    @classmethod
    def parse(cls, text: str, name: str, width: int | None = None, height: int | None = None) -> "Cameras":
        """Like ``load``, from a file's content: ``name`` ending in ``.txt`` is RealEstate10K (needs
        width/height), anything else our JSON or a nerfstudio transforms.json."""
        if name.lower().endswith(".txt"):
            if width is None or height is None:
                raise ValueError(f"{name}: RealEstate10K intrinsics are normalised; give the image width and height")
            return cls.from_re10k_text(text, width, height, name)
        data = _parse_json(text, name, ": not a RealEstate10K .txt and not valid JSON")
        return cls._from_json_data(data, name)


def cover_geometry(w: int, h: int, width: int, height: int) -> tuple[int, int, int, int]:
    """``(scaled height, scaled width, top, left)`` of scaling a ``w`` x ``h`` image to cover
    ``width`` x ``height`` and cropping the centre, as the official ``preprocess_video_from_path``:
    factor ``max(W/w, H/h)``, sides ``int(side·factor)`` (never below the target: 720·832/720 is
    831.99...), crop offsets ``(scaled - target) // 2``."""
    for v, what in ((width, "width"), (height, "height")):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"the target {what} must be a positive whole number, got {v!r}")
    scale = max(width / w, height / h)
    hr, wr = max(int(h * scale), height), max(int(w * scale), width)
    return hr, wr, (hr - height) // 2, (wr - width) // 2


def invert_rigid(m: Tensor) -> Tensor:
    """Inverse of rigid 4x4 transforms ``[..., 4, 4]`` (exact transpose for the rotation)."""
    R = m[..., :3, :3]
    t = m[..., :3, 3:]
    out = torch.zeros_like(m)
    Rt = R.transpose(-1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -Rt @ t
    out[..., 3, 3] = 1.0
    return out


def _existing(path, what: str) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{what} not found: {path}")
    return path


def _atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write then rename, so a crash never leaves half a file."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:  # a failed write (disk full) leaves no temporary beside the file
        if os.path.lexists(tmp):
            os.remove(tmp)


# ----------------------------------------------------------------------------- strict file reading


def _read_text(path: str, what: str) -> str:
    """A file's text (at most ``inputs.MAX_CAMERA_FILE_BYTES``, refused by its size before it is
    read); a binary or non-UTF-8 file is a ``ValueError`` naming it."""
    from .limits import read_text_file

    return read_text_file(path, what)


def _parse_json(text: str, where: str, bad: str = ": not valid JSON"):
    from .limits import loads_json

    return loads_json(text, where, bad)


def _check_archive(path: str) -> None:
    """A ``.npz`` within the camera file limits, on disk and unpacked (a small compressed file can
    hold gigabytes), checked from its zip directory before any array is read."""
    from .limits import MAX_CAMERA_FILE_BYTES

    size = os.path.getsize(path)
    if size > MAX_CAMERA_FILE_BYTES:
        raise ValueError(f"{path}: {size:,} bytes; a pose cache is at most {MAX_CAMERA_FILE_BYTES:,} bytes")
    try:
        with zipfile.ZipFile(path) as z:
            unpacked = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{path}: not a NumPy .npz pose cache ({type(e).__name__}: {e})") from None
    if unpacked > MAX_CAMERA_FILE_BYTES:
        raise ValueError(f"{path}: unpacks to {unpacked:,} bytes; a pose cache is at most "
                         f"{MAX_CAMERA_FILE_BYTES:,} bytes")


def _check_count(count: int, where: str) -> None:
    from .limits import MAX_CAMERAS

    if count > MAX_CAMERAS:
        raise ValueError(f"{where} holds {count:,} cameras; the limit is {MAX_CAMERAS:,} (the frames limit)")


def _looks_nerfstudio(data) -> bool:
    """A nerfstudio transforms.json: header intrinsics / camera model, or frames with a
    transform_matrix or file_path and no viewmat (ours)."""
    if not isinstance(data, dict) or "convention" in data:
        return False
    frames = data.get("frames")
    frames = [f for f in frames if isinstance(f, dict)] if isinstance(frames, list) else []
    if any("viewmat" in f for f in frames):
        return False
    return (any(k in data for k in ("camera_model", "fl_x", "w", "h"))
            or any("transform_matrix" in f or "file_path" in f for f in frames))


class _naming:
    """Prefix ``where`` to a ``ValueError`` raised inside (the Cameras validators name the frame,
    not the file)."""

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if kind is ValueError and not str(exc).startswith(self.where):
            raise ValueError(f"{self.where}: {exc}") from None
        return False


def _short(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 100:
        return f"a {value.bit_length()}-bit integer"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def _decimals(word: str) -> int:
    mantissa = re.split(r"[eE]", word)[0]
    return len(mantissa.split(".")[1]) if "." in mantissa else 0


def _finite(value) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _json_number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number, got {_short(value)}")
    if not _finite(value):
        raise ValueError(f"{where} must be finite, got {_short(value)}")
    return float(value)


def _json_integer(value, where: str) -> int:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value)
            or not float(value).is_integer()):
        raise ValueError(f"{where} must be a whole number, got {_short(value)}")
    return int(value)


def _json_size(value, where: str) -> int:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value)
            or not float(value).is_integer() or value <= 0):
        raise ValueError(f"{where} must be a positive whole number of pixels, got {_short(value)}")
    return int(value)


def _json_matrix(value, rows: int, cols: int, where: str) -> list[list[float]]:
    if not (isinstance(value, list) and len(value) == rows
            and all(isinstance(r, list) and len(r) == cols for r in value)):
        raise ValueError(f"{where} must be a {rows}x{cols} list of lists of numbers, got {_short(value)}")
    return [[_json_number(x, f"{where}[{i}][{j}]") for j, x in enumerate(r)] for i, r in enumerate(value)]
