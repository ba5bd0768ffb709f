"""Export: the standard 3DGS ``.ply`` and ComfyUI core's ``SPLAT`` layout.

The ``.ply`` is binary little-endian with one ``vertex`` element per Gaussian and the float
properties common viewers read: ``x y z nx ny nz f_dc_0..2 f_rest_* opacity scale_0..2 rot_0..3``,
opacity as a logit, scales as logs, rotations wxyz, ``f_rest`` channel-major (all of the red
coefficients, then green, then blue) as the 3DGS reference code writes them.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .gaussians import Gaussians


def _attributes(k_rest: int) -> list[str]:
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(3 * k_rest)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def save_ply(g: Gaussians, path: str, extra: dict | None = None) -> str:
    """Write ``g`` as a standard 3DGS ``.ply`` (written to ``path.tmp``, then renamed: ``path`` is never
    half a file; the temporary is removed if the write fails). ``extra``: more float properties
    ``{name: [N] tensor}`` after the standard ones (viewers skip them; :func:`ply_property` reads one)."""
    N, K = len(g), g.sh.shape[1]
    extra = extra or {}
    if N == 0:
        raise ValueError("cannot save an empty set of Gaussians")
    sh = g.sh.detach().float().cpu().numpy()
    rest = sh[:, 1:, :].transpose(0, 2, 1).reshape(N, -1)
    cols = [g.means.detach().float().cpu().numpy(), np.zeros((N, 3), np.float32), sh[:, 0, :], rest,
            g.opacity_logits.detach().float().cpu().numpy()[:, None], g.log_scales.detach().float().cpu().numpy(),
            g.quats.detach().float().cpu().numpy()]
    for name, values in extra.items():
        if tuple(values.shape) != (N,):
            raise ValueError(f"ply property {name} has shape {list(values.shape)}; one value per Gaussian ({N})")
        cols.append(values.detach().float().cpu().numpy()[:, None])
    data = np.concatenate(cols, axis=1).astype("<f4")
    names = _attributes(K - 1) + list(extra)
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {N}\n"
    header += "".join(f"property float {n}\n" for n in names) + "end_header\n"
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(header.encode("ascii"))
            f.write(np.ascontiguousarray(data).tobytes())
        os.replace(tmp, path)
    finally:  # a failed write (disk full) leaves no scene.ply.tmp beside the outputs
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_ply(path: str) -> Gaussians:
    """Read a 3DGS ``.ply`` (binary little-endian, float properties) written by us or by 3DGS tools."""
    names, data = _read_ply(path)
    return _gaussians(path, names, data)


def ply_property(path: str, name: str) -> torch.Tensor | None:
    """One float property ``[N]`` of the ``.ply`` at ``path`` (None when the file has no such property)."""
    names, data = _read_ply(path)
    return torch.from_numpy(data[:, names.index(name)].copy()) if name in names else None


def _read_ply(path: str) -> tuple[list[str], np.ndarray]:
    if not os.path.isfile(path):
        raise ValueError(f"splat file not found: {path}")
    with open(path, "rb") as f:
        if f.readline().strip() != b"ply":
            raise ValueError(f"{path} is not a PLY file")
        names, count, fmt = [], None, None
        while True:
            line = f.readline(1024)
            if not line or f.tell() > 1 << 16:  # 64 KB of header is far more than any splat needs
                raise ValueError(f"{path}: PLY header has no end_header")
            words = line.decode("ascii", "replace").split()
            if words[:1] == ["format"]:
                fmt = words[1]
            elif words[:2] == ["element", "vertex"]:
                try:
                    count = int(words[2])
                except (IndexError, ValueError):
                    raise ValueError(f"{path}: unreadable PLY header line {line.strip()!r}") from None
            elif words[:1] == ["property"]:
                if len(words) < 3:
                    raise ValueError(f"{path}: unreadable PLY header line {line.strip()!r}")
                if words[1] != "float":
                    raise ValueError(f"{path}: property {words[-1]} is {words[1]}; a 3DGS .ply stores floats")
                names.append(words[2])
            elif words[:1] == ["end_header"]:
                break
        if fmt != "binary_little_endian" or count is None:
            raise ValueError(f"{path}: expected a binary_little_endian PLY with a vertex element (got {fmt})")
        # the header's vertex count is checked against the file's size before anything is allocated
        need, have = 4 * len(names) * count, os.path.getsize(path) - f.tell()
        if count < 0 or need > have:
            raise ValueError(f"{path}: the header claims {count} vertices ({need} bytes) but the file holds {have} "
                             "bytes after it; the file is truncated or corrupt")
        data = np.frombuffer(f.read(need), dtype="<f4").reshape(count, len(names))
    return names, data


def _gaussians(path: str, names: list[str], data: np.ndarray) -> Gaussians:
    count = len(data)
    col = {n: i for i, n in enumerate(names)}
    need = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
            "rot_0", "rot_1", "rot_2", "rot_3"]
    missing = [n for n in need if n not in col]
    if missing:
        raise ValueError(f"{path} is not a 3DGS splat file: missing properties {missing}")

    def take(keys):
        return torch.from_numpy(np.stack([data[:, col[k]] for k in keys], axis=1).copy())

    n_rest = len([n for n in names if n.startswith("f_rest_")])
    dc = take(["f_dc_0", "f_dc_1", "f_dc_2"]).unsqueeze(1)
    if n_rest:
        rest = take([f"f_rest_{i}" for i in range(n_rest)]).reshape(count, 3, n_rest // 3).transpose(1, 2)
        sh = torch.cat([dc, rest], dim=1)
    else:
        sh = dc
    return Gaussians(take(["x", "y", "z"]), take(["rot_0", "rot_1", "rot_2", "rot_3"]),
                     take(["scale_0", "scale_1", "scale_2"]), take(["opacity"])[:, 0], sh)


def to_comfy_splat(g: Gaussians) -> dict:
    """The fields of ComfyUI core's ``SPLAT`` (``comfy_api.latest.Types.SPLAT``): activated, batched.

    positions ``[1,N,3]``, scales ``[1,N,3]`` (linear std), rotations ``[1,N,4]`` (normalised wxyz),
    opacities ``[1,N,1]`` in [0,1], sh ``[1,N,K,3]``, counts ``None``. The ComfyUI node wraps them
    in the core class; this library never imports ComfyUI.
    """
    q = g.quats.detach().float()
    return {
        "positions": g.means.detach().float()[None],
        "scales": g.scales.detach().float()[None],
        "rotations": (q / q.norm(dim=1, keepdim=True).clamp_min(1e-12))[None],
        "opacities": g.opacities.detach().float()[:, None][None],
        "sh": g.sh.detach().float()[None],
        "counts": None,
    }


def from_comfy_splat(positions, scales, rotations, opacities, sh, counts=None, index: int = 0) -> Gaussians:
    """Inverse of :func:`to_comfy_splat` for batch item ``index`` (honours ``counts``)."""
    n = int(counts[index]) if counts is not None else positions.shape[1]
    op = opacities[index, :n, 0].float().clamp(1e-6, 1 - 1e-6)
    return Gaussians(positions[index, :n].float(), rotations[index, :n].float(),
                     scales[index, :n].float().clamp_min(1e-12).log(), torch.logit(op), sh[index, :n].float())
