"""A persistent world (beyond the paper): every chunk's optimised Gaussians merged into one scene.

The per-chunk cache that renders hints stays as in the paper (built from the latest history
only). Alongside, each chunk's Gaussians are merged into a world model: a voxel hash of size
``voxel_size`` keeps one Gaussian per cell, the newer chunk winning (it saw the region most
recently and the paper trusts the latest history most), so revisiting a place does not pile up
duplicates. The whole explored scene exports as one ``.ply``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .gaussians import Gaussians, voxel_dedup


@dataclass
class WorldModel:
    voxel_size: float
    gaussians: Gaussians | None = None
    chunks: int = 0
    sizes: list[int] = field(default_factory=list)

    def add(self, g: Gaussians) -> "WorldModel":
        """Merge a chunk's Gaussians; in each voxel the newest Gaussian is kept."""
        g = g.detach().to("cpu")
        if self.gaussians is None:
            merged = g
            stamp = torch.zeros(len(g))
        else:
            merged = Gaussians.cat([self.gaussians, g])
            stamp = torch.cat([torch.zeros(len(self.gaussians)), torch.ones(len(g))])
        keep = voxel_dedup(merged.means, self.voxel_size, priority=stamp)
        self.gaussians = merged.select(keep)
        self.chunks += 1
        self.sizes.append(len(self.gaussians))
        return self
