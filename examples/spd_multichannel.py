"""SPDNet with Riemannian batch norms on real multichannel signals (UEA, offline).

Trains an SPDNet on covariance matrices of JapaneseVowels and BasicMotions
(aeon's bundled copies, official train/test splits) with each batch norm —
none, SPDNetBN, LieBN (AIM, LEM, LCM) and GBWBN — over several seeds, and
runs pyRiemann's MDM and tangent space + logistic regression on the same
covariances of the same split. Prints a table (test accuracy mean ± std,
time per epoch) and saves a plot and a JSON file.

Usage::

    python examples/spd_multichannel.py           # short run: JapaneseVowels, 2 seeds
    python examples/spd_multichannel.py --full    # both data sets, 5 seeds (documented run)
    python examples/spd_multichannel.py --select  # model selection on the training split

Each method's BiMap output size, depth, dropout, learning rate and number of epochs come from
``examples/spd_multichannel_selected.json``, written by ``--select``: a grid
search scored by stratified 4-fold cross-validation on the *training* set
(every training trial validated once; one training seed per fold). pyRiemann's
MDM and TS+LR are cross-validated on the same folds, so the selection also
records how the baselines score under that protocol. The test split is read
only to report.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import geoopt
import numpy as np
import torch
from torch import nn

from geonorm.datasets import load_uea, stratified_folds, stratified_split
from geonorm.spd import covariance
from geonorm.spd.spdnet import SPDNet

BATCHNORMS = ("none", "spdbn", "lie-aim", "lie-lem", "lie-lcm", "gbw")
DATASETS = ("JapaneseVowels", "BasicMotions")
COVARIANCES = {
    # Shrinkage is needed: JapaneseVowels trials have 7-29 samples for 12 channels.
    "plain": dict(shrinkage="oas"),
    # The Gaussian embedding [[S + m m^T, m], [m^T, 1]] keeps the trial mean.
    "augmented": dict(shrinkage="oas", augment="mean"),
}
SELECTED = Path(__file__).with_name("spd_multichannel_selected.json")
LEARNING_RATES = (1e-2, 3e-2)
DROPS = (0,)  # the BiMap maps n x n covariances to (n - drop) x (n - drop)
DEPTHS = (1, 2)  # BiMap -> [BN] -> ReEig blocks of that size (deeper stacks, as in Huang & Van Gool)
DROPOUTS = (0.0, 0.5)  # on the log-vector before the classifier
CHECKPOINTS = (10, 20, 40, 80, 160)  # epochs at which --select scores the model
BATCH_SIZE = 30
SELECT_FOLDS = 4  # cross-validation folds of the training set for --select


@dataclass
class Config:
    datasets: tuple[str, ...] = ("JapaneseVowels",)
    batchnorms: tuple[str, ...] = BATCHNORMS
    covariances: tuple[str, ...] = tuple(COVARIANCES)
    seeds: int = 2
    epochs: int | None = None  # override the selected number of epochs (smoke runs)
    out: Path = Path("results")
    progress: bool = True


@dataclass
class Result:
    dataset: str
    covariance: str
    method: str
    accuracies: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    lr: float | None = None
    epochs: int | None = None
    drop: int | None = None
    dropout: float = 0.0
    depth: int = 1

    def summary(self) -> str:
        acc = np.array(self.accuracies)
        t = f"{np.mean(self.epoch_seconds) * 1e3:7.1f} ms" if self.epoch_seconds else "      -   "
        setting = (
            f"{self.depth}x n-{self.drop}, dropout {self.dropout:g}, lr {self.lr:g}, {self.epochs} ep" if self.lr else ""
        )
        return f"{self.dataset:15s} {self.covariance:9s} {self.method:15s} {acc.mean():.3f} ± {acc.std():.3f}  {t}  {setting}"


def load(name: str, kind: str, split_seed: int | None = None, *, fold: int | None = None):
    """Covariances and labels of (train, evaluation) splits.

    With ``fold``, the evaluation split is that fold of a stratified
    ``SELECT_FOLDS``-fold partition of the training set; with ``split_seed``,
    a seeded stratified 25 % of it (the BiMap ablation's splits); the test set
    is not read in either case. Otherwise it is the test set.
    """
    train = load_uea(name, "train")
    if fold is not None:
        test = train
        train_idx, eval_idx = stratified_folds(train.labels.numpy(), SELECT_FOLDS, seed=0)[fold]
    elif split_seed is not None:
        test = train
        train_idx, eval_idx = stratified_split(train.labels.numpy(), 0.25, seed=split_seed)
    else:
        test, train_idx = load_uea(name, "test"), np.arange(len(train))
        eval_idx = np.arange(len(test))

    def cov(ds, idx):
        s = ds.signals[torch.as_tensor(idx)]
        return covariance(s.data, lengths=s.lengths, **COVARIANCES[kind])

    return (
        (cov(train, train_idx), train.labels[train_idx]),
        (cov(test, eval_idx), test.labels[eval_idx]),
        len(train.classes),
    )


def pyriemann_baselines(train, test) -> dict[str, float]:
    from pyriemann.classification import MDM
    from pyriemann.tangentspace import TangentSpace
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    (xtr, ytr), (xte, yte) = [(x.numpy(), y.numpy()) for x, y in (train, test)]
    mdm = MDM().fit(xtr, ytr).score(xte, yte)
    ts = make_pipeline(TangentSpace(), LogisticRegression(max_iter=5000)).fit(xtr, ytr).score(xte, yte)
    return {"MDM": float(mdm), "TS+LR": float(ts)}


def train_spdnet(train, evaluation, n_classes, batchnorm, seed, lr, checkpoints, drop, dropout=0.0, bar=None, depth=1):
    """Train one SPDNet; returns accuracies at each checkpoint epoch and seconds per epoch.

    A run that stops with geonorm's ``ValueError`` (the matrices left what
    float64 represents, e.g. a condition number beyond 1/eps) scores 0 at
    every checkpoint it did not reach; the message is printed.
    """
    try:
        return _train_spdnet(train, evaluation, n_classes, batchnorm, seed, lr, checkpoints, drop, dropout, bar, depth)
    except _Diverged as stopped:
        print(f"  {batchnorm} {depth}x lr {lr:g} dropout {dropout:g} seed {seed}: {stopped}", flush=True)
        accuracies = stopped.accuracies + [0.0] * (len(checkpoints) - len(stopped.accuracies))
        return accuracies, stopped.seconds


class _Diverged(Exception):
    def __init__(self, epoch: int, error: ValueError, accuracies: list[float], seconds: float):
        super().__init__(f"stopped in epoch {epoch}: {str(error).split(' (')[0]}")
        self.accuracies, self.seconds = accuracies, seconds


def _train_spdnet(train, evaluation, n_classes, batchnorm, seed, lr, checkpoints, drop, dropout, bar, depth):
    torch.manual_seed(seed)
    (xtr, ytr), (xev, yev) = train, evaluation
    n = xtr.shape[-1]
    model = SPDNet(n, n_classes, dims=(n - drop,) * depth, batchnorm=batchnorm, dropout=dropout, dtype=torch.float64)
    opt = geoopt.optim.RiemannianAdam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    times, accuracies = [], []
    for epoch in range(1, max(checkpoints) + 1):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(ytr), generator=gen)
        for i in range(0, len(order), BATCH_SIZE):
            idx = order[i : i + BATCH_SIZE]
            if len(idx) < 2:  # batch norm needs two samples per batch
                continue
            opt.zero_grad()
            try:
                loss_fn(model(xtr[idx]), ytr[idx]).backward()
            except ValueError as error:
                _stop(bar, checkpoints, epoch, error, accuracies, times)
            opt.step()
        times.append(time.perf_counter() - start)
        if bar is not None:
            bar.update(1)
        if epoch in checkpoints:
            model.eval()
            with torch.no_grad():
                try:
                    accuracies.append((model(xev).argmax(-1) == yev).double().mean().item())
                except ValueError as error:
                    _stop(bar, checkpoints, epoch + 1, error, accuracies, times)
    return accuracies, float(np.mean(times))


def _stop(bar, checkpoints, epoch, error, accuracies, times):
    if bar is not None:
        bar.update(max(checkpoints) - epoch + 1)
    raise _Diverged(epoch, error, accuracies, float(np.mean(times)) if times else 0.0) from error


def _bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="training", unit="epoch", file=sys.stderr)


def select(cfg: Config) -> dict:
    """Grid search of (drop, depth, dropout, lr, epochs) per method by cross-validation on the training set."""
    grid = list(itertools.product(cfg.datasets, cfg.covariances))
    runs = len(grid) * len(cfg.batchnorms) * len(DROPS) * len(DEPTHS) * len(DROPOUTS) * len(LEARNING_RATES)
    bar = _bar(runs * SELECT_FOLDS * max(CHECKPOINTS), cfg.progress)
    chosen = {}
    for name, kind in grid:
        folds = [load(name, kind, fold=f) for f in range(SELECT_FOLDS)]
        baselines = [pyriemann_baselines(tr, va) for tr, va, _ in folds]
        for method in baselines[0]:
            acc = float(np.mean([b[method] for b in baselines]))
            chosen[f"{name}/{kind}/{method}"] = {"validation_accuracy": acc}
            print(f"{name:15s} {kind:9s} {method:8s} cross-validated {acc:.3f}", flush=True)
        _save_selection({k: v for k, v in chosen.items() if k.startswith(f"{name}/{kind}/")})
        for bn in cfg.batchnorms:
            scores = {}
            for drop, depth, dropout, lr in itertools.product(DROPS, DEPTHS, DROPOUTS, LEARNING_RATES):
                curves = [  # fold f trained with seed f
                    train_spdnet(tr, va, k, bn, f, lr, CHECKPOINTS, drop, dropout, bar, depth)[0]
                    for f, (tr, va, k) in enumerate(folds)
                ]
                for epochs, acc in zip(CHECKPOINTS, np.mean(curves, axis=0)):
                    scores[(drop, depth, dropout, lr, epochs)] = float(acc)
            # ties: fewer epochs, then the smaller reduction, depth, dropout and learning rate (grid order)
            (drop, depth, dropout, lr, epochs), acc = max(scores.items(), key=lambda kv: (kv[1], -kv[0][4]))
            chosen[f"{name}/{kind}/{bn}"] = {
                "drop": drop, "depth": depth, "dropout": dropout, "lr": lr, "epochs": epochs,
                "validation_accuracy": acc,
            }  # fmt: skip
            _save_selection({f"{name}/{kind}/{bn}": chosen[f"{name}/{kind}/{bn}"]})
            print(
                f"{name:15s} {kind:9s} {bn:8s} {depth}x n-{drop} dropout {dropout:g} lr {lr:g} epochs {epochs:3d} "
                f"cross-validated {acc:.3f}",
                flush=True,
            )
    if bar is not None:
        bar.close()
    return chosen


def _save_selection(chosen: dict) -> None:
    """Merge into the file as it is now (selections of other data sets may run in parallel)."""
    merged = json.loads(SELECTED.read_text()) if SELECTED.exists() else {}
    merged.update(chosen)
    SELECTED.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")


def run(cfg: Config) -> list[Result]:
    chosen = json.loads(SELECTED.read_text())
    settings = {
        key: (
            chosen[key]["drop"], chosen[key].get("depth", 1), chosen[key].get("dropout", 0.0), chosen[key]["lr"],
            cfg.epochs or chosen[key]["epochs"],
        )  # fmt: skip
        for key in (f"{d}/{c}/{b}" for d in cfg.datasets for c in cfg.covariances for b in cfg.batchnorms)
    }
    bar = _bar(sum(e for *_, e in settings.values()) * cfg.seeds, cfg.progress)
    results: list[Result] = []
    for name in cfg.datasets:
        for kind in cfg.covariances:
            train, test, n_classes = load(name, kind)
            for method, acc in pyriemann_baselines(train, test).items():
                results.append(Result(name, kind, method, [acc]))
            for bn in cfg.batchnorms:
                drop, depth, dropout, lr, epochs = settings[f"{name}/{kind}/{bn}"]
                res = Result(name, kind, f"SPDNet/{bn}", lr=lr, epochs=epochs, drop=drop, dropout=dropout, depth=depth)
                for seed in range(cfg.seeds):
                    if bar is not None:
                        bar.set_postfix_str(f"{name} {kind} {bn} seed {seed}")
                    (acc,), sec = train_spdnet(
                        train, test, n_classes, bn, seed, lr, (epochs,), drop, dropout, bar, depth
                    )
                    res.accuracies.append(acc)
                    res.epoch_seconds.append(sec)
                results.append(res)
    if bar is not None:
        bar.close()
    return results


def print_table(results: list[Result], cfg: Config) -> None:
    print(f"\nofficial test split; SPDNet: mean ± std over {cfg.seeds} seeds (size, lr, epochs from --select)")
    print(f"{'dataset':15s} {'covariance':9s} {'method':15s} {'accuracy':13s}  time/epoch")
    for r in results:
        print(r.summary())


def markdown_table(results: list[Result], seeds: int, source: str) -> str:
    """The results as a Markdown table (for the README and the docs).

    ``source`` says where they came from: the exact command line of the run
    (or the JSON a table was re-rendered from), never an assumed one.
    """
    lines = [
        f"Test accuracy on the official splits (SPDNet: mean ± std over {seeds} seeds; "
        "number of BiMap blocks, their size n - drop, dropout, learning rate and epochs chosen by `--select`), "
        f"from {source}.",
        "",
        "| data set | covariances | method | accuracy | time / epoch | setting |",
        "|:--|:--|:--|--:|--:|:--|",
    ]
    for r in results:
        acc = np.array(r.accuracies)
        cell = f"{acc.mean():.3f} ± {acc.std():.3f}" if len(acc) > 1 else f"{acc.mean():.3f}"
        t = f"{np.mean(r.epoch_seconds) * 1e3:.0f} ms" if r.epoch_seconds else ""
        setting = f"{r.depth}× n−{r.drop}, dropout {r.dropout:g}, lr {r.lr:g}, {r.epochs} epochs" if r.lr else ""
        lines.append(f"| {r.dataset} | {r.covariance} | {r.method} | {cell} | {t} | {setting} |")
    return "\n".join(lines) + "\n"


def plot(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(r.dataset, r.covariance) for r in results})
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
    for ax, (ds, kind) in zip(axes[0], groups):
        rs = [r for r in results if (r.dataset, r.covariance) == (ds, kind)]
        means = [np.mean(r.accuracies) for r in rs]
        stds = [np.std(r.accuracies) for r in rs]
        ax.bar(range(len(rs)), means, yerr=stds, color=["0.6" if "/" not in r.method else "C0" for r in rs])
        ax.set_xticks(range(len(rs)), [r.method.replace("SPDNet/", "") for r in rs], rotation=45, ha="right")
        ax.set_ylim(max(0.0, min(means) - 0.1), 1.0)
        ax.set_title(f"{ds} ({kind} covariances)")
        ax.set_ylabel("test accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> list[Result] | dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="both data sets, 5 seeds")
    parser.add_argument("--select", action="store_true", help="grid search on the training split")
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--epochs", type=int, help="override the selected epochs (smoke runs)")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS)
    parser.add_argument("--batchnorms", nargs="+", choices=BATCHNORMS)
    parser.add_argument("--covariances", nargs="+", choices=tuple(COVARIANCES))
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--from-json", type=Path, help="re-render the table and plot of a saved run")
    args = parser.parse_args(argv)
    command = " ".join(["python examples/spd_multichannel.py", *(sys.argv[1:] if argv is None else argv)])
    source = f"`{command.strip()}`"
    cfg = Config(out=args.out, progress=not args.no_progress, epochs=args.epochs)
    if args.full or args.select:
        cfg.datasets, cfg.seeds = DATASETS, 5
    if args.seeds is not None:
        cfg.seeds = args.seeds
    for key in ("datasets", "batchnorms", "covariances"):
        if getattr(args, key) is not None:
            setattr(cfg, key, tuple(getattr(args, key)))
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    torch.set_num_threads(1)  # small matrices: threads cost more than they give
    if args.select:
        return select(cfg)
    if args.from_json:
        results = [Result(**r) for r in json.loads(args.from_json.read_text())]
        cfg.seeds = max(len(r.accuracies) for r in results)
        source = f"the saved run `{args.from_json}` (re-rendered by {source})"
    else:
        results = run(cfg)
    print_table(results, cfg)
    cfg.out.mkdir(parents=True, exist_ok=True)
    plot(results, cfg.out / "spd_multichannel.png")
    (cfg.out / "spd_multichannel.md").write_text(markdown_table(results, cfg.seeds, source))
    if not args.from_json:
        (cfg.out / "spd_multichannel.json").write_text(json.dumps([r.__dict__ for r in results], indent=1))
    print(f"\nsaved {cfg.out}/spd_multichannel.png, .md and .json")
    return results


if __name__ == "__main__":
    main()
