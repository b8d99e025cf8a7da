"""BiMap initialisation x parametrization x learning rate, and geonorm vs spd-learn.

The network of issue 14: ``BiMap n->n-2 -> ReEig(1e-4) -> [batch norm] ->
BiMap n-2->n-4 -> ReEig -> LogEig (upper triangle) -> Linear``, float64,
``geoopt.optim.RiemannianAdam``, batch 30, 40 epochs, OAS covariances of
JapaneseVowels and BasicMotions (aeon's bundled copies, offline).

Two studies::

    python examples/bimap_ablation.py ablation   # choose BiMap's default (validation only)
    python examples/bimap_ablation.py compare    # geonorm vs spd-learn layers (test split)

``ablation`` scores every BiMap variant — initialisation ``orthogonal`` (QR of
a Gaussian), ``stiefel`` (its polar factor), ``kaiming`` (QR of a uniform
matrix, spd-learn's default) x parametrization ``stiefel`` (geoopt manifold
parameter) or ``cayley`` (``torch.nn.utils.parametrizations.orthogonal``),
and spd-learn's own BiMap as a reference — at four learning rates with
LieBN-AIM, on stratified 25 % validation splits of the *training* sets (two
splits x three seeds): the test split is not read. ``compare`` runs the same
network with geonorm's layers (default BiMap) and with spd-learn's layers
(``BiMap``, ``ReEig``, ``SPDBatchNormLie``, ``LogEig``) at one budget on the
official test split, five seeds. Both write Markdown and JSON to ``--out``.
Run with ``OMP_NUM_THREADS=1`` (small matrices: threads cost more than they give).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
import warnings
from pathlib import Path

import geoopt
import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spd_multichannel import load  # noqa: E402  (the flagship's covariances and splits)

from geonorm.nn import BiMap, LieBatchNorm, LogEig, ReEig  # noqa: E402

DATASETS = ("JapaneseVowels", "BasicMotions")
INITS = ("orthogonal", "stiefel", "kaiming")
PARAMETRIZATIONS = ("stiefel", "cayley")
LEARNING_RATES = (3e-3, 1e-2, 3e-2, 1e-1)
BATCH_SIZE = 30


def geonorm_bimap(init: str, parametrization: str):
    return lambda n, m: BiMap(n, m, init=init, parametrization=parametrization, dtype=torch.float64)


def default_bimap(n: int, m: int) -> nn.Module:
    return BiMap(n, m, dtype=torch.float64)  # geonorm's defaults


def spd_learn_bimap(n: int, m: int) -> nn.Module:
    from spd_learn.modules import BiMap as PeerBiMap

    return nn.Sequential(PeerBiMap(n, m, dtype=torch.float64), _Squeeze())


class _Squeeze(nn.Module):
    """spd-learn's BiMap returns ``[B, 1, m, m]`` (one depthwise map)."""

    def forward(self, x):
        return x.squeeze(-3) if x.ndim == 4 else x


def network(n: int, n_classes: int, bimap, batchnorm: str, *, library: str = "geonorm") -> nn.Module:
    """The issue's two-block SPDNet; ``library`` chooses whose ReEig/BN/LogEig."""
    d1, d2 = n - 2, n - 4
    if library == "geonorm":
        reeig, logeig = (lambda: ReEig(1e-4)), (lambda: LogEig("triu"))
        norm = (lambda d: nn.Identity()) if batchnorm == "none" else (
            lambda d: LieBatchNorm(d, metric=batchnorm.split("-")[1], dtype=torch.float64)
        )
    else:
        from spd_learn.modules import LogEig as PeerLogEig
        from spd_learn.modules import ReEig as PeerReEig
        from spd_learn.modules import SPDBatchNormLie

        reeig, logeig = (lambda: PeerReEig(threshold=1e-4)), (lambda: PeerLogEig(upper=True))
        norm = (lambda d: nn.Identity()) if batchnorm == "none" else (
            lambda d: SPDBatchNormLie(d, metric=batchnorm.split("-")[1].upper(), dtype=torch.float64)
        )
    return nn.Sequential(
        bimap(n, d1), reeig(), norm(d1), bimap(d1, d2), reeig(), logeig(),
        nn.Linear(d2 * (d2 + 1) // 2, n_classes, dtype=torch.float64),
    )  # fmt: skip


def train(make_model, train_set, eval_set, *, seed: int, lr: float, epochs: int) -> float:
    """Accuracy on ``eval_set`` after ``epochs`` of RiemannianAdam."""
    torch.manual_seed(seed)
    model = make_model()
    (xtr, ytr), (xev, yev) = train_set, eval_set
    opt = geoopt.optim.RiemannianAdam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(ytr), generator=gen)
        for i in range(0, len(order), BATCH_SIZE):
            idx = order[i : i + BATCH_SIZE]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            opt.zero_grad()
            loss_fn(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return (model(xev).argmax(-1) == yev).double().mean().item()


def ablation(args) -> list[dict]:
    variants = {f"{i} / {p}": geonorm_bimap(i, p) for i, p in itertools.product(INITS, PARAMETRIZATIONS)}
    variants["spd-learn BiMap"] = spd_learn_bimap
    rows = []
    for name in args.datasets:
        splits = [load(name, "plain", split_seed=s) for s in range(args.splits)]
        for (variant, bimap), lr in itertools.product(variants.items(), args.lrs):
            start = time.perf_counter()
            accs = [
                train(lambda: network(tr[0].shape[-1], k, bimap, args.batchnorm), tr, va,
                      seed=seed, lr=lr, epochs=args.epochs)
                for tr, va, k in splits
                for seed in range(args.seeds)
            ]  # fmt: skip
            rows.append({"dataset": name, "variant": variant, "lr": lr, "accuracies": accs})
            print(f"{name:15s} {variant:24s} lr {lr:<6g} validation {np.mean(accs):.3f} ± {np.std(accs):.3f}"
                  f"  ({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    return rows


def compare(args) -> list[dict]:
    rows = []
    for name in args.datasets:
        tr, te, k = load(name, "plain")
        n = tr[0].shape[-1]
        for bn, library in itertools.product(args.batchnorms, ("geonorm", "spd-learn")):
            bimap = default_bimap if library == "geonorm" else spd_learn_bimap
            accs = [
                train(lambda: network(n, k, bimap, bn, library=library), tr, te, seed=s, lr=args.lr, epochs=args.epochs)
                for s in range(args.seeds)
            ]
            rows.append({"dataset": name, "batchnorm": bn, "library": library, "accuracies": accs})
            print(f"{name:15s} {bn:8s} {library:9s} test {np.mean(accs):.3f} ± {np.std(accs):.3f}", flush=True)
    return rows


def _cell(accs) -> str:
    return f"{np.mean(accs):.3f} ± {np.std(accs):.3f}"


def ablation_table(rows: list[dict], source: str) -> str:
    lrs = sorted({r["lr"] for r in rows})
    lines = [f"Validation accuracy (mean ± std over splits x seeds), from `{source}`.", ""]
    for name in dict.fromkeys(r["dataset"] for r in rows):
        lines += [f"**{name}**", "", "| BiMap init / parametrization | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |",
                  "|:--|" + "--:|" * len(lrs)]  # fmt: skip
        for variant in dict.fromkeys(r["variant"] for r in rows if r["dataset"] == name):
            cells = {r["lr"]: _cell(r["accuracies"]) for r in rows if r["dataset"] == name and r["variant"] == variant}
            lines.append(f"| {variant} | " + " | ".join(cells[lr] for lr in lrs) + " |")
        lines.append("")
    return "\n".join(lines)


def compare_table(rows: list[dict], source: str) -> str:
    lines = [f"Test accuracy (official split, mean ± std over seeds), from `{source}`.", "",
             "| data set | batch norm | geonorm layers | spd-learn layers |", "|:--|:--|--:|--:|"]  # fmt: skip
    for name, bn in dict.fromkeys((r["dataset"], r["batchnorm"]) for r in rows):
        cell = {r["library"]: _cell(r["accuracies"]) for r in rows if (r["dataset"], r["batchnorm"]) == (name, bn)}
        lines.append(f"| {name} | {bn} | {cell['geonorm']} | {cell['spd-learn']} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", choices=("ablation", "compare"))
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seeds", type=int, help="seeds per split (ablation: 3) or in all (compare: 5)")
    parser.add_argument("--splits", type=int, default=2, help="validation splits (ablation)")
    parser.add_argument("--lrs", type=float, nargs="+", default=list(LEARNING_RATES), help="ablation")
    parser.add_argument("--batchnorm", default="lie-aim", choices=("none", "lie-aim", "lie-lem"), help="ablation")
    parser.add_argument("--batchnorms", nargs="+", default=["none", "lie-aim", "lie-lem"], help="compare")
    parser.add_argument("--lr", type=float, default=1e-2, help="compare")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    args.seeds = args.seeds or (3 if args.study == "ablation" else 5)
    source = " ".join(["python examples/bimap_ablation.py", *(sys.argv[1:] if argv is None else argv)])
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    torch.set_num_threads(1)
    rows = ablation(args) if args.study == "ablation" else compare(args)
    table = (ablation_table if args.study == "ablation" else compare_table)(rows, source)
    print("\n" + table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"bimap_{args.study}.md").write_text(table)
    (args.out / f"bimap_{args.study}.json").write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
