"""GaussianStats.all_reduce across two CPU processes (gloo) equals a single pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dotlib.gaussian import GaussianStats

WORLD_SIZE = 2
DIM = 6


def shards() -> list[torch.Tensor]:
    """Uneven shards of one data set, far from the origin and anisotropic."""
    rng = np.random.default_rng(11)
    data = rng.standard_normal((700, DIM)) @ rng.standard_normal((DIM, DIM)) + 50.0
    return [torch.from_numpy(data[:230]), torch.from_numpy(data[230:])]


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    try:
        stats = GaussianStats(DIM)
        shard = shards()[rank]
        for start in range(0, shard.shape[0], 100):  # streamed, then reduced
            stats.update(shard[start:start + 100])
        stats.all_reduce()
        torch.save(stats.state_dict(), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_all_reduce_equals_single_pass(tmp_path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    single = GaussianStats(DIM).update(torch.cat(shards()))
    for rank in range(WORLD_SIZE):
        reduced = GaussianStats.from_state_dict(torch.load(tmp_path / f"rank{rank}.pt", weights_only=True))
        assert reduced.count == single.count == 700
        np.testing.assert_allclose(reduced.mean.numpy(), single.mean.numpy(), rtol=1e-10, atol=0)
        np.testing.assert_allclose(reduced.cov.numpy(), single.cov.numpy(), rtol=1e-10, atol=1e-10)
