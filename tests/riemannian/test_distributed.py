"""Synchronised batch norm (SPD metrics and the Poincaré ball) over 2 gloo processes equals one process on the whole batch."""

import os
import socket
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from geonorm.nn import BuresWassersteinBatchNorm, LieBatchNorm, PoincareBatchNorm, SPDBatchNorm

from .._spd import random_spd

N, B = 4, 8
LAYERS = {
    "lie-aim(theta=0.5)": lambda **kw: LieBatchNorm(N, "aim", theta=0.5, karcher_steps=3, **kw),
    "lie-lem": lambda **kw: LieBatchNorm(N, "lem", **kw),
    "lie-lcm": lambda **kw: LieBatchNorm(N, "lcm", **kw),
    "gbw": lambda **kw: BuresWassersteinBatchNorm(N, theta=0.5, karcher_steps=3, **kw),
    "spdbn": lambda **kw: SPDBatchNorm(N, karcher_steps=3, **kw),
    # the ball's statistics go through the same reduce path
    "poincare-midpoint": lambda **kw: PoincareBatchNorm(N, c=0.7, **kw),
    "poincare-frechet": lambda **kw: PoincareBatchNorm(N, c=0.7, mean="frechet", **kw),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _inputs(name: str):
    g = torch.randn(B, N, N, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    if name.startswith("poincare"):
        x = 0.6 * torch.rand(B, N, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 0.3
        return x, g[..., 0]
    x = random_spd(N, torch.Generator().manual_seed(0), batch=(B,), cond=20.0)
    return x, g + g.transpose(-1, -2)


def _run(layer, x, g):
    """Forward and backward in train mode, a second train step, then eval."""
    x = x.clone().requires_grad_()
    y = layer(x)
    (y * g).sum().backward()
    layer(x.detach())
    layer.eval()
    return {
        "y": y.detach(),
        "grad": x.grad,
        "running_mean": layer.running_mean.clone(),
        "running_var": None if layer.running_var is None else layer.running_var.clone(),
        "eval": layer(x.detach()).detach(),
    }


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.set_num_threads(1)
        part = slice(rank * B // 2, (rank + 1) * B // 2)
        results = {}
        for name, make in LAYERS.items():
            x, g = _inputs(name)
            layer = make(sync=True, detach_stats=False, dtype=torch.float64)
            with warnings.catch_warnings():
                # the differentiable all-reduce must not use deprecated collectives
                warnings.simplefilter("error", DeprecationWarning)
                results[name] = _run(layer, x[part], g[part])
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_sync_batchnorm_equals_single_process_on_the_concatenated_batch(tmp_path):
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for name, make in LAYERS.items():
        x, g = _inputs(name)
        single = _run(make(detach_stats=False, dtype=torch.float64), x, g)
        for key in ("y", "grad", "eval"):
            joined = torch.cat([ranks[0][name][key], ranks[1][name][key]])
            assert torch.allclose(joined, single[key], atol=1e-10), (name, key)
        for key in ("running_mean", "running_var"):
            for r in range(2):
                if single[key] is None:  # SPDNetBN keeps no running variance
                    assert ranks[r][name][key] is None
                    continue
                assert torch.allclose(ranks[r][name][key], single[key], atol=1e-12), (name, key)
