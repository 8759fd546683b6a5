"""GaussianStats.all_reduce across two CPU processes (gloo) equals a single pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
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


_TEARDOWN_SCRIPT = """
import os, sys, torch, torch.distributed as dist
from dotlib.distributed import end_processes, start_processes
from dotlib.encoders import load_encoder
rank, world, device = start_processes("cpu")
load_encoder("embedded")          # imports diffusers (and torch._dynamo) after the group exists
total = torch.ones(3, dtype=torch.float64)
dist.all_reduce(total)
end_processes()
names = sorted(open(f"/proc/self/task/{task}/comm").read().strip() for task in os.listdir("/proc/self/task"))
open(os.path.join(sys.argv[1], f"rank{rank}.txt"), "w").write(f"{total.tolist()}\\n" + "\\n".join(names))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread names from /proc")
def test_the_process_group_ends_before_interpreter_shutdown(tmp_path) -> None:
    """No gloo thread outlives end_processes, even when diffusers is imported after the group started.

    A group kept alive past destroy_process_group left gloo's worker threads running into
    interpreter shutdown, where they aborted the process now and then (SIGABRT, 1 run in 10
    under load): this checks the cause deterministically instead of the symptom.
    """
    script = tmp_path / "teardown.py"
    script.write_text(_TEARDOWN_SCRIPT)
    completed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                                str(script), str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    for rank in range(2):
        total, *threads = (tmp_path / f"rank{rank}.txt").read_text().splitlines()
        assert total == "[2.0, 2.0, 2.0]"
        assert not [name for name in threads if "gloo" in name], threads
