"""Charged n-body dynamics: frame-averaged GNN against the same GNN without frames.

Predicts the positions of 5 charged particles 1,000 integration steps ahead
from their positions, velocities and charges (the data set of EGNN, frame
averaging and CGENN, :func:`geonorm.datasets.load_nbody`). Models, all with
the same message-passing backbone and parameter count:

* ``gnn``: the backbone on raw coordinates (not equivariant);
* ``fa-gnn``: the backbone inside :class:`geonorm.nn.FrameAveraging` (E(3),
  positions and velocities moved into each of the 8 PCA frames, as Puny et
  al., ICLR 2022);
* ``sfa-gnn``: the same, trained with one random frame per system
  (``frames="stochastic"``, FAENet) and evaluated with the exact average;
* ``cgenn``: :class:`geonorm.models.NBodyCGENN`, the Clifford group
  equivariant network of Ruhe et al. (NeurIPS 2023): charges as scalars,
  centred positions and velocities as vectors of Cl(3,0), message passing with
  multivector MLPs (its own width and depth, ``cgenn_hidden``/``cgenn_layers``).

Every model is trained for several seeds; the checkpoint kept is the epoch of
lowest validation MSE, and the test split is read only to report the test MSE
(mean ± std over seeds). A constant-velocity baseline (x + v·t) is printed for
scale. Other models register in :data:`MODELS`.

Usage::

    python examples/nbody.py            # a short run
    python examples/nbody.py --full     # the documented run (docs/frames.md)
    GEONORM_SMOKE=1 python examples/nbody.py   # CI size (seconds)
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from geonorm.datasets import NBodyData, generate_nbody, load_nbody
from geonorm.models import NBodyCGENN
from geonorm.nn import FrameAveraging

HORIZON = 1.0  # time between input and target: 1,000 steps of dt = 0.001


@dataclass
class Config:
    train_size: int = 3_000
    valid_size: int = 2_000
    test_size: int = 2_000
    epochs: int = 30
    batch_size: int = 100
    lr: float = 1e-3
    hidden: int = 32
    layers: int = 3
    cgenn_hidden: int = 16  # multivector channels of NBodyCGENN (the paper: 28)
    cgenn_layers: int = 2  # message-passing rounds of NBodyCGENN (the paper: 4)
    models: tuple[str, ...] = ("gnn", "fa-gnn", "sfa-gnn")
    seeds: tuple[int, ...] = (0, 1, 2)
    eval_every: int = 1
    generate: bool = False  # simulate small splits instead of loading the cached ones (smoke)
    progress: bool = True
    out: Path = Path("results")


def smoke_config() -> Config:
    """CI size: a few simulated systems, two epochs, two seeds."""
    return Config(train_size=40, valid_size=20, test_size=20, epochs=2, batch_size=20,
                  hidden=8, layers=1, cgenn_hidden=4, cgenn_layers=1, seeds=(0, 1), generate=True,
                  models=("gnn", "fa-gnn", "sfa-gnn", "cgenn"))  # fmt: skip


def full_config() -> Config:
    """The documented run (docs/frames.md): the whole data set, 25 epochs (a ~15 min budget
    on a shared 2-core CPU). Exact-FA training (``fa-gnn``, 8x the cost per epoch) is left out
    of it; run it with ``--models fa-gnn``. The CGENN run (docs/clifford.md) is
    ``--full --models cgenn --epochs 12``."""
    return Config(epochs=25, batch_size=50, eval_every=5, models=("gnn", "sfa-gnn"))


# ----------------------------------------------------------------- the models
class GNN(nn.Module):
    r"""Message passing on the complete graph of the particles (not equivariant).

    Node inputs are positions, velocities and charges; edge inputs the
    relative position :math:`x_i - x_j`, its squared length and
    :math:`q_i q_j`. ``layers`` rounds of
    :math:`h_i \leftarrow h_i + \psi(h_i, \sum_{j \ne i} \varphi(h_i, h_j, e_{ij}))`,
    then a linear read-out of the displacement, returned as positions
    :math:`x_i + v_i t + \Delta_i`.
    """

    def __init__(self, hidden: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Linear(7, hidden)
        self.edge = nn.ModuleList(
            nn.Sequential(nn.Linear(2 * hidden + 5, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
            for _ in range(layers)
        )
        self.node = nn.ModuleList(
            nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
            for _ in range(layers)
        )
        self.out = nn.Linear(hidden, 3)

    def forward(self, pos: torch.Tensor, vel: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        n = pos.shape[1]
        q = charges.unsqueeze(-1)  # [B, N, 1]
        h = self.embed(torch.cat([pos, vel, q], -1))  # [B, N, H]
        rel = pos.unsqueeze(2) - pos.unsqueeze(1)  # [B, N, N, 3]
        e = torch.cat([rel, rel.square().sum(-1, keepdim=True), q.unsqueeze(2) * q.unsqueeze(1)], -1)  # [B, N, N, 5]
        off = 1 - torch.eye(n, dtype=pos.dtype, device=pos.device)  # no self-messages
        for edge, node in zip(self.edge, self.node):
            hi = h.unsqueeze(2).expand(-1, -1, n, -1)  # [B, N, N, H]
            hj = h.unsqueeze(1).expand(-1, n, -1, -1)  # [B, N, N, H]
            m = (edge(torch.cat([hi, hj, e], -1)) * off[..., None]).sum(2)  # [B, N, H]
            h = h + node(torch.cat([h, m], -1))  # [B, N, H]
        return pos + HORIZON * vel + self.out(h)  # [B, N, 3]


class Framed(nn.Module):
    """``FrameAveraging`` over :class:`GNN`, called as ``model(pos, vel, charges)``."""

    def __init__(self, backbone: nn.Module, frames: str) -> None:
        super().__init__()
        self.fa = FrameAveraging(backbone, group="E3", output="positions", vectors=("vector",), frames=frames)

    def forward(self, pos, vel, charges):
        return self.fa(pos, vel, charges=charges)


#: name -> factory(cfg) of a model ``model(pos, vel, charges) -> positions``.
MODELS: dict[str, Callable[[Config], nn.Module]] = {
    "gnn": lambda cfg: GNN(cfg.hidden, cfg.layers),
    "fa-gnn": lambda cfg: Framed(GNN(cfg.hidden, cfg.layers), "pca"),
    "sfa-gnn": lambda cfg: Framed(GNN(cfg.hidden, cfg.layers), "stochastic"),
    "cgenn": lambda cfg: NBodyCGENN(cfg.cgenn_hidden, cfg.cgenn_layers, horizon=HORIZON),
}


# --------------------------------------------------------------- train / test
def load(cfg: Config) -> dict[str, NBodyData]:
    if cfg.generate:  # small splits, simulated now (seconds)
        sizes = {"train": cfg.train_size, "valid": cfg.valid_size, "test": cfg.test_size}
        return {s: generate_nbody(n, seed=100 + k).to(torch.float32) for k, (s, n) in enumerate(sizes.items())}
    data = {s: load_nbody(s) for s in ("train", "valid", "test")}
    sizes = {"train": cfg.train_size, "valid": cfg.valid_size, "test": cfg.test_size}
    return {s: d[: sizes[s]].to(torch.float32) for s, d in data.items()}


@torch.no_grad()
def mse(model: nn.Module, data: NBodyData, batch: int = 500) -> float:
    model.eval()
    total = 0.0
    for i in range(0, len(data), batch):
        d = data[i : i + batch]
        total += float((model(d.positions, d.velocities, d.charges) - d.target).square().sum())
    return total / data.target.numel()


@dataclass
class Result:
    model: str
    seed: int
    test_mse: float = math.nan
    best_epoch: int = 0
    parameters: int = 0
    seconds: float = 0.0  # training wall time (evaluations included)
    epoch_seconds: float = 0.0  # median wall time of one training epoch (no evaluation)
    epochs: list[int] = field(default_factory=list)
    train_mse: list[float] = field(default_factory=list)
    valid_mse: list[float] = field(default_factory=list)


def train(name: str, seed: int, data: dict[str, NBodyData], cfg: Config, bar=None) -> tuple[Result, nn.Module]:
    torch.manual_seed(seed)
    model = MODELS[name](cfg)
    res = Result(name, seed, parameters=sum(p.numel() for p in model.parameters()))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    gen = torch.Generator().manual_seed(seed)
    best, best_state, start = math.inf, None, time.perf_counter()
    tr = data["train"]
    epoch_times = []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        run, count, tick = 0.0, 0, time.perf_counter()
        for idx in torch.randperm(len(tr), generator=gen).split(cfg.batch_size):
            d = tr[idx]
            loss = (model(d.positions, d.velocities, d.charges) - d.target).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            run, count = run + loss.item() * len(idx), count + len(idx)
            if bar is not None:
                bar.update(len(idx))
        sched.step()
        epoch_times.append(time.perf_counter() - tick)
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            v = mse(model, data["valid"])
            res.epochs.append(epoch)
            res.train_mse.append(run / count)
            res.valid_mse.append(v)
            if v < best:
                best, res.best_epoch, best_state = v, epoch, copy.deepcopy(model.state_dict())
            if bar is not None:
                bar.set_postfix_str(f"{name} seed {seed} epoch {epoch} valid MSE {v:.4f}")
    res.seconds = time.perf_counter() - start
    res.epoch_seconds = float(np.median(epoch_times))
    model.load_state_dict(best_state)
    res.test_mse = mse(model, data["test"])  # read once, after model selection
    return res, model


def run(cfg: Config) -> tuple[list[Result], dict[str, nn.Module], dict[str, NBodyData]]:
    """Train every model for every seed; returns the results and the first seed's models."""
    data = load(cfg)
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        total = len(cfg.models) * len(cfg.seeds) * cfg.epochs * len(data["train"])
        bar = tqdm(total=total, desc="training", unit="sys", file=sys.stderr)
    results, models = [], {}
    for name in cfg.models:
        for seed in cfg.seeds:
            res, model = train(name, seed, data, cfg, bar)
            results.append(res)
            models.setdefault(name, model)
    if bar is not None:
        bar.close()
    return results, models, data


def summary(results: list[Result]) -> dict[str, tuple[float, float, int]]:
    """model -> (mean test MSE, std over seeds, number of seeds)."""
    out = {}
    for name in dict.fromkeys(r.model for r in results):
        v = np.array([r.test_mse for r in results if r.model == name])
        out[name] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v))
    return out


def constant_velocity_mse(data: NBodyData) -> float:
    return float((data.positions + HORIZON * data.velocities - data.target).square().mean())


def print_table(results: list[Result], data: dict[str, NBodyData], cfg: Config) -> None:
    print(f"\nn-body: test MSE on {len(data['test'])} systems, {len(data['train'])} training systems, "
          f"{cfg.epochs} epochs, best validation epoch, mean ± std over seeds {list(cfg.seeds)}")  # fmt: skip
    print(f"{'model':16s} {'test MSE':>20s} {'params':>7s} {'s/run':>7s} {'s/epoch':>8s}")
    print(f"{'x + v t':16s} {constant_velocity_mse(data['test']):20.4f} {0:7d} {'-':>7s}")
    for name, (m, s, k) in summary(results).items():
        rs = [r for r in results if r.model == name]
        print(f"{name:16s} {m:11.4f} ± {s:6.4f} {rs[0].parameters:7d} {np.median([r.seconds for r in rs]):7.0f}"
              f" {np.median([r.epoch_seconds for r in rs]):8.1f}")  # fmt: skip
    print(f"{'EGNN (published)':16s} {0.0071:20.4f}\n{'FA-GNN (publ.)':16s} {0.0057:20.4f}")
    print(f"{'CGENN (publ.)':16s} {0.0039:20.4f}")


def plot(results: list[Result], models: dict[str, nn.Module], data: dict[str, NBodyData], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 4.2))
    ax = fig.add_subplot(1, 2, 1)
    for k, name in enumerate(dict.fromkeys(r.model for r in results)):
        for j, r in enumerate(x for x in results if x.model == name):
            ax.plot(r.epochs, r.valid_mse, "-", color=f"C{k}", alpha=0.8, label=name if j == 0 else None)
            ax.plot(r.epochs, r.train_mse, "--", color=f"C{k}", alpha=0.3)
    ax.set(xlabel="epoch", ylabel="MSE", yscale="log", title="learning curves (dashed: train)")
    ax.legend()
    ax3 = fig.add_subplot(1, 2, 2, projection="3d")
    d = data["test"][0]
    traj = d.trajectory[0].double()  # [11, N, 3]
    for i in range(traj.shape[1]):
        ax3.plot(*traj[:, i].T, color=f"C{i}", alpha=0.6)
        ax3.scatter(*traj[-1, i], color=f"C{i}", marker="o")
    markers = ("x", "^", "s", "d")
    for m, (name, model) in zip(markers, models.items()):
        with torch.no_grad():
            model.eval()
            pred = model(d.positions, d.velocities, d.charges)[0].double()  # [N, 3]
        ax3.scatter(*pred.T, color="k", marker=m, label=name)
    ax3.set_title("test system 0: true path (frames 30-40), o true, markers predicted")
    ax3.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save(results: list[Result], models, data, cfg: Config) -> None:
    """Write ``nbody.png`` (plots) and ``nbody.json`` (config, results, summary) to ``cfg.out``."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    plot(results, models, data, cfg.out / "nbody.png")
    payload = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
               "summary": summary(results), "results": [asdict(r) for r in results]}  # fmt: skip
    (cfg.out / "nbody.json").write_text(json.dumps(payload, indent=1))
    print(f"saved {cfg.out / 'nbody.png'} and {cfg.out / 'nbody.json'}")


def main(argv=None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the documented run")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--train-size", type=int)
    parser.add_argument("--cgenn-hidden", type=int)
    parser.add_argument("--cgenn-layers", type=int)
    parser.add_argument("--models", nargs="+", choices=tuple(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    smoke = os.environ.get("GEONORM_SMOKE") == "1"
    cfg = smoke_config() if smoke else full_config() if args.full else Config()
    cfg.out, cfg.progress = args.out, not args.no_progress
    for key in ("epochs", "train_size", "models", "seeds", "cgenn_hidden", "cgenn_layers"):
        value = getattr(args, key)
        if value is not None:
            setattr(cfg, key, tuple(value) if isinstance(value, list) else value)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    results, models, data = run(cfg)
    print_table(results, data, cfg)
    print(f"total time {(time.perf_counter() - start) / 60:.1f} min, {torch.get_num_threads()} thread(s)")
    save(results, models, data, cfg)
    return results


if __name__ == "__main__":
    main()
