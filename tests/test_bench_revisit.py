"""The loop-closure benchmark measures what it says: its paths come back to their start, the inventing
filler keeps every valid hint pixel and invents only holes, and the report has the promised keys."""

import importlib.util
import json
import os

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("bench_revisit", os.path.join(ROOT, "benchmarks", "bench_revisit.py"))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


@pytest.mark.parametrize("name", bench.PATHS)
def test_every_path_ends_where_it_began(name):
    path = bench.make_path(name, 33, 32, 32)
    assert len(path) == 33
    assert torch.allclose(path.c2w[-1], path.c2w[0], atol=1e-5)
    assert float((path.c2w[1:, :3, 3] - path.c2w[:-1, :3, 3]).norm(dim=1).max()) < 0.5  # no jumps


def test_the_filler_keeps_valid_pixels_and_invents_holes_anew():
    a, b = bench.invented(3, 2, 16, 16), bench.invented(4, 2, 16, 16)
    assert torch.equal(a, bench.invented(3, 2, 16, 16)) and not torch.allclose(a, b)  # seeded by the chunk
    assert not torch.allclose(a[0], a[1])  # and by the frame
    with pytest.raises(ValueError, match="is not one of orbit, out_and_back, square"):
        bench.make_path("spiral", 9, 32, 32)


def test_the_report_and_the_memory_on_a_short_orbit(capsys):
    bench.main(["--size", "32x32", "--chunks", "4", "--paths", "orbit", "--iterations", "4", "--world-views", "1",
                "--json"])
    report = json.loads(capsys.readouterr().out)
    online, world = report["paths"]["orbit"]["online"], report["paths"]["orbit"]["world"]
    for r in (online, world):
        assert {"coverage", "revisit_psnr", "drift", "chunk_s"} <= set(r) and len(r["chunk_s"]) == 4
        assert set(r["drift"]) == {"scale", "pose", "coverage"}
    assert world["coverage"] > online["coverage"]
    assert world["revisit_psnr"] > online["revisit_psnr"]
    assert 0 < world["remembered_gaussians"][-1] <= world["world_gaussians"][-1]
    # exact depth: the geometry each chunk's hints come from keeps the room's scale (chunk 0: the start depth)
    for r in (online, world):
        assert len(r["chunk_scale"]) == 4 and abs(r["chunk_scale"][0]) < 0.05 and r["mean_abs_scale"] < 0.1
    retrieved = report["paths"]["orbit"]["world + 1 retrieved views"]
    assert all(v is None for v in world["world_views"])
    assert [len(v) <= 1 for v in retrieved["world_views"]] == [True] * 4 and retrieved["world_views"][0] == []
