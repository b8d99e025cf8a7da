"""Small e3nn interaction networks on QM9: Clebsch–Gordan vs Gaunt, with and without LayerNorm.

Predicts the isotropic polarizability alpha (bohr^3) of QM9 molecules
(qm9pack's bundled copy, offline) with a NequIP-style interaction network in
four variants: {CG, Gaunt} tensor products x {no norm, EquivariantLayerNorm}.
Reports the test MAE in bohr^3 on the fixed test split of
:func:`geonorm.datasets.load_qm9`, the time per epoch, learning curves and a
bar chart, and checks that every model is E(3)-invariant.

Usage::

    python examples/qm9_irreps.py           # short run (2,000 training molecules, 3 epochs)
    python examples/qm9_irreps.py --full    # the documented run (docs/qm9.md)
    GEONORM_SMOKE=1 python examples/qm9_irreps.py   # CI size (seconds)

The checkpoint reported is the epoch with the lowest validation MAE; the test
split is read only to report.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from e3nn import nn as enn
from e3nn import o3
from e3nn.math import soft_one_hot_linspace
from torch import nn

from geonorm.datasets import QM9Dataset, load_qm9, radius_graph
from geonorm.o3 import EquivariantLayerNorm, GauntTensorProduct, gaunt_coefficients

TARGET = "alpha"  # isotropic polarizability, bohr^3
VARIANTS = ("cg", "cg+ln", "gaunt", "gaunt+ln")
ELEMENTS = (1, 6, 7, 8, 9)  # H, C, N, O, F


@dataclass
class Config:
    train_size: int = 2_000  # first molecules of the train split's fixed random order
    valid_size: int = 1_000
    test_size: int | None = None  # None: the whole test split
    limit: int | None = None  # read only the first `limit` molecules of QM9 (smoke runs)
    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-3
    channels: int = 16
    layers: int = 3
    lmax: int = 2
    cutoff: float = 5.0  # Å
    num_basis: int = 8
    variants: tuple[str, ...] = VARIANTS
    seed: int = 0
    progress: bool = True
    out: Path = Path("results")


def smoke_config() -> Config:
    """CI size: the first 1,000 molecules of QM9 only, a tiny model, one epoch."""
    return Config(train_size=120, valid_size=40, test_size=40, limit=1_000, epochs=1, channels=8, layers=2)


def full_config() -> Config:
    """The documented run (docs/qm9.md)."""
    return Config(train_size=5_000, valid_size=1_000, epochs=8)


@dataclass
class Result:
    variant: str
    test_mae: float = math.nan
    best_epoch: int = 0
    epoch_seconds: list[float] = field(default_factory=list)
    train_mae: list[float] = field(default_factory=list)
    valid_mae: list[float] = field(default_factory=list)
    parameters: int = 0
    invariance_error: float = math.nan


class Interaction(nn.Module):
    """Message passing ``h_i += Gate(W sum_j TP(h_j, Y(r_ij); R(|r_ij|)) + W' h_i)``, then an optional norm.

    ``"cg"``: e3nn ``TensorProduct`` with one ``"uvu"`` path per allowed
    ``(l1, l2, l3)``, each weighted per channel by the radial MLP (NequIP).
    ``"gaunt"``: geonorm's channelwise ``GauntTensorProduct`` of the node
    features with ``C`` copies of ``Y(r_ij)``, copy ``c`` of degree ``l``
    scaled by the radial MLP; the path weights are the fixed Gaunt
    coefficients. With hidden irreps ``0e + 1o + 2e`` both couple the same
    paths (``l1 + l2 + l3`` even).
    """

    def __init__(
        self, irreps: o3.Irreps, kind: str, norm: bool, num_basis: int, avg_neighbors: float
    ) -> None:
        super().__init__()
        c, lmax = irreps[0].mul, irreps.lmax
        self.sh_irreps = o3.Irreps.spherical_harmonics(lmax)
        self.kind, self.scale = kind, avg_neighbors**-0.5
        self.lin_in = o3.Linear(irreps, irreps)
        if kind == "cg":
            mid, instructions = [], []
            for i1, (mul, ir1) in enumerate(irreps):
                for i2, (_, ir2) in enumerate(self.sh_irreps):
                    for ir3 in ir1 * ir2:
                        if ir3 in irreps:
                            instructions.append((i1, i2, len(mid), "uvu", True))
                            mid.append((mul, ir3))
            self.tp = o3.TensorProduct(irreps, self.sh_irreps, o3.Irreps(mid), instructions,
                                       shared_weights=False, internal_weights=False)  # fmt: skip
            n_weights = self.tp.weight_numel
        elif kind == "gaunt":
            edge = o3.Irreps([(c, ir) for _, ir in self.sh_irreps])
            self.tp = GauntTensorProduct(irreps, edge, lmax_out=lmax)
            n_weights = c * len(self.sh_irreps)  # one radial weight per channel and degree
            # Unit-variance output for unit-variance inputs, as e3nn's path normalization does
            # for the CG product: E[z_l3^2] = sum_{l1,l2} |G^(l1,l2,l3)|_F^2 / (2 l3 + 1).
            var = {l3: sum(float(gaunt_coefficients(l1, l2, l3).square().sum())
                           for l1 in range(lmax + 1) for l2 in range(lmax + 1)) / (2 * l3 + 1)
                   for l3 in range(lmax + 1)}  # fmt: skip
            scale = [var[ir.l] ** -0.5 for mul, ir in self.tp.irreps_out for _ in range(mul * ir.dim)]
            self.register_buffer("out_scale", torch.tensor(scale))  # [tp.irreps_out.dim]
        else:
            raise ValueError(f"kind: expected 'cg' or 'gaunt', got {kind!r}")
        self.radial = enn.FullyConnectedNet([num_basis, 32, n_weights], torch.nn.functional.silu)
        scalars, gated = irreps[:1], irreps[1:]
        self.gate = enn.Gate(scalars, [torch.nn.functional.silu],
                             o3.Irreps(f"{gated.num_irreps}x0e"), [torch.sigmoid], gated)  # fmt: skip
        self.lin_out = o3.Linear(self.tp.irreps_out, self.gate.irreps_in)
        self.self_int = o3.Linear(irreps, self.gate.irreps_in)
        self.norm = EquivariantLayerNorm(irreps) if norm else None

    def forward(self, h, sh, basis, src, dst):
        w = self.radial(basis)  # [E, n_weights]
        x = self.lin_in(h)[src]  # [E, dim]
        if self.kind == "cg":
            msg = self.tp(x, sh, w)  # [E, tp.irreps_out.dim]
        else:
            parts, start = [], 0
            for k, (_, ir) in enumerate(self.sh_irreps):  # copy c of degree l: Y_l * w[c, l]
                y = sh[:, None, start : start + ir.dim]  # [E, 1, 2l+1]
                parts.append((w[:, k :: len(self.sh_irreps), None] * y).flatten(1))  # [E, C*(2l+1)]
                start += ir.dim
            msg = self.tp(x, torch.cat(parts, dim=1)) * self.out_scale  # [E, C x (0e+1o+2e)]
        agg = torch.zeros(h.shape[0], msg.shape[1], dtype=msg.dtype, device=msg.device)
        agg.index_add_(0, dst, msg)  # [N, dim]
        h = h + self.gate(self.lin_out(agg * self.scale) + self.self_int(h))
        return h if self.norm is None else self.norm(h)


class QM9Net(nn.Module):
    """Atom-type embedding, interactions, sum over atoms of an invariant readout.

    ``forward(pos, z, batch)`` returns one scalar per molecule; the output is
    ``scale * sum_i f(h_i) + sum_i shift[z_i]`` with ``shift`` and ``scale``
    fixed from the training set (:func:`atom_reference`).
    """

    def __init__(
        self, variant: str, cfg: Config, shift: torch.Tensor, scale: float, avg_neighbors: float
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
        c = cfg.channels
        self.irreps = o3.Irreps([(c, (l, (-1) ** l)) for l in range(cfg.lmax + 1)])  # Cx0e+Cx1o+Cx2e
        self.cutoff, self.num_basis, self.lmax = cfg.cutoff, cfg.num_basis, cfg.lmax
        self.embed = nn.Embedding(max(ELEMENTS) + 1, c)
        kind, norm = variant.split("+")[0], variant.endswith("+ln")
        self.layers = nn.ModuleList(
            Interaction(self.irreps, kind, norm, cfg.num_basis, avg_neighbors) for _ in range(cfg.layers)
        )
        self.readout = nn.Sequential(nn.Linear(c, c), nn.SiLU(), nn.Linear(c, 1))
        self.register_buffer("shift", shift.clone())  # [max(ELEMENTS) + 1]
        self.scale = scale

    def forward(self, pos: torch.Tensor, z: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        src, dst = radius_graph(pos, self.cutoff, batch)
        vec = pos[src] - pos[dst]  # [E, 3] from atom i to its neighbour j
        sh = o3.spherical_harmonics(list(range(self.lmax + 1)), vec, True, normalization="component")
        basis = soft_one_hot_linspace(vec.norm(dim=1), 0.0, self.cutoff, self.num_basis,
                                      basis="smooth_finite", cutoff=True) * self.num_basis**0.5  # fmt: skip
        h = torch.cat([self.embed(z), pos.new_zeros(len(z), self.irreps.dim - self.irreps[0].mul)], dim=1)
        for layer in self.layers:
            h = layer(h, sh, basis, src, dst)  # [N, irreps.dim]
        atom = self.readout(h[:, : self.irreps[0].mul]).squeeze(1) * self.scale + self.shift[z]  # [N]
        n_graphs = int(batch.max()) + 1 if len(batch) else 0
        return torch.zeros(n_graphs, dtype=atom.dtype, device=atom.device).index_add_(0, batch, atom)


def element_counts(ds: QM9Dataset) -> torch.Tensor:
    """Atoms of each element in each molecule, ``[molecules, max(ELEMENTS) + 1]`` (float64)."""
    counts = torch.zeros(len(ds), max(ELEMENTS) + 1, dtype=torch.float64)
    mol = torch.repeat_interleave(torch.arange(len(ds)), ds.num_atoms)
    counts.index_put_((mol, ds.z), torch.ones(len(ds.z), dtype=torch.float64), accumulate=True)
    return counts


def atom_reference(ds: QM9Dataset) -> tuple[torch.Tensor, float]:
    """Least-squares per-element contributions to the target, and the residual's std per sqrt(atom)."""
    counts = element_counts(ds)
    cols = [e for e in ELEMENTS if counts[:, e].any()]  # absent elements keep a zero shift
    coef = torch.linalg.lstsq(counts[:, cols], ds.y.double()[:, None], driver="gelsd").solution[:, 0]
    shift = torch.zeros(max(ELEMENTS) + 1, dtype=torch.float64)
    shift[cols] = coef
    residual = ds.y.double() - counts @ shift
    return shift, float(residual.std() / ds.num_atoms.double().mean().sqrt())


def average_neighbors(ds: QM9Dataset, cutoff: float) -> float:
    """Mean number of neighbours within ``cutoff`` per atom, over the first 256 molecules."""
    sample = ds.batch(range(min(256, len(ds))))
    return radius_graph(sample.pos, cutoff, sample.batch).shape[1] / len(sample.z)


def composition_baseline(test: QM9Dataset, shift: torch.Tensor) -> Result:
    """Test MAE of the per-element linear fit ``shift`` alone (what the networks add to)."""
    pred = element_counts(test) @ shift
    return Result("composition", test_mae=float((pred - test.y.double()).abs().mean()))


def mae(model: nn.Module, ds: QM9Dataset, batch_size: int = 128) -> float:
    model.eval()
    err = 0.0
    with torch.no_grad():
        for i in range(0, len(ds), batch_size):
            b = ds.batch(range(i, min(i + batch_size, len(ds))))
            err += float((model(b.pos, b.z, b.batch) - b.y).abs().sum())
    return err / len(ds)


def invariance_error(model: nn.Module, ds: QM9Dataset) -> float:
    """Worst relative change of the predictions under random E(3) elements (asserted < 1e-9)."""
    from geonorm.testing import JointAction, PointCloudAction, TrivialAction, assert_invariant

    b = ds.batch(range(min(4, len(ds))))
    action = JointAction(PointCloudAction(group="e3"), TrivialAction(), TrivialAction())
    return assert_invariant(model, action, (b.pos, b.z, b.batch), mode="eval", rtol=1e-9).rel_error


def load(cfg: Config) -> dict[str, QM9Dataset]:
    sizes = {"train": cfg.train_size, "valid": cfg.valid_size, "test": cfg.test_size}
    return {
        s: load_qm9(s, target=TARGET, limit=cfg.limit, size=n, dtype=torch.float32)
        for s, n in sizes.items()
    }


class Trainer:
    """One variant's model, optimizer and history; :meth:`epoch` trains one epoch."""

    def __init__(
        self,
        variant: str,
        data: dict[str, QM9Dataset],
        cfg: Config,
        shift: torch.Tensor,
        scale: float,
        avg_neighbors: float,
    ) -> None:
        torch.manual_seed(cfg.seed)  # same initial weights wherever the variants share a shape
        self.model = QM9Net(variant, cfg, shift.float(), scale, avg_neighbors)
        self.data, self.cfg, self.scale = data, cfg, scale
        self.result = Result(variant, parameters=sum(p.numel() for p in self.model.parameters()))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        steps = cfg.epochs * math.ceil(len(data["train"]) / cfg.batch_size)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, cfg.lr, total_steps=steps, pct_start=0.1)
        self.gen = torch.Generator().manual_seed(cfg.seed)  # same batches for every variant
        self.best_state: dict | None = None

    def epoch(self, bar=None) -> None:
        model, train, res = self.model, self.data["train"], self.result
        model.train()
        start, err = time.perf_counter(), 0.0
        for idx in torch.randperm(len(train), generator=self.gen).split(self.cfg.batch_size):
            b = train.batch(idx)
            pred = model(b.pos, b.z, b.batch)
            loss = (pred - b.y).abs().mean() / self.scale  # L1 on the normalized target
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.sched.step()
            err += float((pred.detach() - b.y).abs().sum())
            if bar is not None:
                bar.update(len(idx))
        res.epoch_seconds.append(time.perf_counter() - start)
        res.train_mae.append(err / len(train))
        res.valid_mae.append(mae(model, self.data["valid"]))
        if res.valid_mae[-1] <= min(res.valid_mae):  # checkpoint chosen on validation only
            self.best_state = {k: v.clone() for k, v in model.state_dict().items()}
            res.best_epoch = len(res.valid_mae)
        if bar is not None:
            bar.set_postfix_str(f"{res.variant} epoch {len(res.valid_mae)} valid MAE {res.valid_mae[-1]:.3f}")

    def finish(self) -> Result:
        self.model.load_state_dict(self.best_state)
        self.result.test_mae = mae(self.model, self.data["test"])
        self.result.invariance_error = invariance_error(self.model, self.data["test"])
        return self.result


def run(cfg: Config) -> list[Result]:
    """Train every variant, epoch by epoch in turn (their times are measured side by side)."""
    data = load(cfg)
    shift, scale = atom_reference(data["train"])  # fixed from the training set, shared by all
    avg_neighbors = average_neighbors(data["train"], cfg.cutoff)
    trainers = [Trainer(v, data, cfg, shift, scale, avg_neighbors) for v in cfg.variants]
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        total = len(cfg.variants) * cfg.epochs * len(data["train"])
        bar = tqdm(total=total, desc="training", unit="mol", file=sys.stderr)
    for _ in range(cfg.epochs):
        for t in trainers:
            t.epoch(bar)
    if bar is not None:
        bar.close()
    return [composition_baseline(data["test"], shift)] + [t.finish() for t in trainers]


def print_table(results: list[Result], cfg: Config) -> None:
    print(f"\nQM9 {TARGET} (bohr^3): test MAE on {cfg.test_size or 'all'} test molecules, "
          f"{cfg.train_size} training molecules, {cfg.epochs} epochs (best validation epoch)")  # fmt: skip
    heads = ("test MAE", "best ep", "s/epoch", "params", "E(3) error")
    print(f"{'variant':11s} {heads[0]:>9s} {heads[1]:>7s} {heads[2]:>8s} {heads[3]:>7s} {heads[4]:>10s}")
    # s/epoch: the median over epochs (robust to load spikes on a shared machine)
    for r in results:
        if not r.epoch_seconds:  # the composition baseline
            print(f"{r.variant:11s} {r.test_mae:9.4f} {'-':>7s} {'-':>8s} {5:7d} {'exact':>10s}")
            continue
        print(f"{r.variant:11s} {r.test_mae:9.4f} {r.best_epoch:7d} {np.median(r.epoch_seconds):8.1f} "
              f"{r.parameters:7d} {r.invariance_error:10.1e}")  # fmt: skip


def plot(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for k, r in enumerate(results):
        if not r.valid_mae:
            ax1.axhline(r.test_mae, color="0.5", ls=":", label=f"{r.variant} (test)")
            continue
        epochs = range(1, len(r.valid_mae) + 1)
        ax1.plot(epochs, r.train_mae, "--", color=f"C{k}", alpha=0.6)
        ax1.plot(epochs, r.valid_mae, "-o", color=f"C{k}", label=r.variant)
    ax1.set(xlabel="epoch", ylabel="MAE (bohr³)", yscale="log", title="learning curves (dashed: train)")
    ax1.legend()
    x = np.arange(len(results))
    colors = [f"C{k}" if r.valid_mae else "0.6" for k, r in enumerate(results)]  # grey: baseline
    ax2.bar(x, [r.test_mae for r in results], color=colors)
    for k, r in enumerate(results):
        if r.epoch_seconds:
            ax2.annotate(f"{np.median(r.epoch_seconds):.1f} s/ep", (k, r.test_mae), ha="center", va="bottom")
    ax2.set_xticks(x, [r.variant for r in results])
    ax2.set(ylabel="test MAE (bohr³)", title="QM9 α, test split (labels: time per epoch)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the documented run")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--train-size", type=int)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    smoke = os.environ.get("GEONORM_SMOKE") == "1"
    cfg = smoke_config() if smoke else full_config() if args.full else Config()
    cfg.out, cfg.progress = args.out, not args.no_progress
    for key in ("epochs", "train_size", "variants"):
        if getattr(args, key) is not None:
            setattr(cfg, key, tuple(args.variants) if key == "variants" else getattr(args, key))
    torch.set_num_threads(args.threads)  # one by default: small kernels, shared machines
    start = time.perf_counter()
    results = run(cfg)
    print_table(results, cfg)
    print(f"total time {(time.perf_counter() - start) / 60:.1f} min, {torch.get_num_threads()} thread(s)")
    save(results, cfg)
    return results


def save(results: list[Result], cfg: Config) -> None:
    """Write ``qm9_irreps.png`` (plots) and ``qm9_irreps.json`` (config and results) to ``cfg.out``."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    plot(results, cfg.out / "qm9_irreps.png")
    payload = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
               "results": [asdict(r) for r in results]}  # fmt: skip
    (cfg.out / "qm9_irreps.json").write_text(json.dumps(payload, indent=1))
    print(f"saved {cfg.out / 'qm9_irreps.png'} and {cfg.out / 'qm9_irreps.json'}")


if __name__ == "__main__":
    main()
