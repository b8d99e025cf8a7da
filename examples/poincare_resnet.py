"""Fashion-MNIST: Euclidean ResNet vs Poincaré ResNet with midpoint or Fréchet batch norm.

The claim checked (van Spengler, Berkhout & Mettes, *Poincaré ResNet*, ICCV
2023): batch norm with the gyromidpoint is as effective as with the Fréchet
mean, and much faster. Three models of the same depth and widths, trained
with the same optimiser, learning rate, batch size and number of epochs:

* ``euclidean``: :class:`geonorm.models.ResNet` (``torch.nn.BatchNorm2d``);
* ``midpoint``: :class:`geonorm.models.PoincareResNet` with ``bn="midpoint"``;
* ``frechet``: the same with ``bn="frechet"``.

Batch norm: every model (the Euclidean one included) is evaluated with
running statistics re-estimated for its current weights on ``recal_size``
training images (:func:`geonorm.hyperbolic.recalibrate_running_stats`,
"precise BN"); the moving averages kept during training lag a network
trained this fast, and a Poincaré ResNet evaluated with them falls to
chance (docs/poincare_resnet.md). The Poincaré batch norms differentiate
through the batch mean and variance (the Poincaré ResNet code's choice).

Model selection uses the validation split only (carved from the official
training set by :func:`geonorm.datasets.load_fashion_mnist` with a fixed
seed): the checkpoint kept is the epoch of best validation accuracy; the
test set is read once per run, for that checkpoint. The learning rate is
fixed beforehand (no search: the CPU budget allows none) and reported.
Besides accuracies (mean ± std over seeds), the script measures the time
per training epoch and the time per batch-norm call (forward + backward of
one ``PoincareBatchNorm2d`` on a feature map of the network's second
group, midpoint vs Fréchet).

Usage::

    python examples/poincare_resnet.py            # the documented run (docs/poincare_resnet.md)
    GEONORM_SMOKE=1 python examples/poincare_resnet.py   # CI size (seconds)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

import geoopt
from geonorm.datasets import ImageSplit, load_fashion_mnist
from geonorm.hyperbolic import recalibrate_running_stats
from geonorm.models import PoincareResNet, ResNet
from geonorm.nn import PoincareBatchNorm2d

MODELS = ("euclidean", "midpoint", "frechet")


@dataclass
class Config:
    train_size: int = 2_500
    val_size: int = 1_000
    test_size: int = 10_000
    epochs: int = 6
    batch_size: int = 64
    lr: float = 3e-3
    depth: int = 8
    widths: tuple[int, int, int] = (8, 16, 32)
    c: float = 0.1  # the paper's CIFAR curvature, fixed beforehand
    seeds: tuple[int, ...] = (0, 1, 2)
    models: tuple[str, ...] = MODELS
    bn_timing_repeats: int = 20
    recal_size: int = 1_024  # training images that re-estimate the BN statistics before each evaluation
    out: Path = field(default_factory=lambda: Path("poincare_resnet_out"))
    progress: bool = True


def full_config() -> Config:
    """The documented run (about 30 min on one CPU thread)."""
    return Config()


def smoke_config() -> Config:
    """Seconds: a few hundred images, one epoch, two seeds."""
    return Config(
        train_size=128, val_size=64, test_size=64, epochs=1, batch_size=64, widths=(8, 8, 8),
        seeds=(0, 1), bn_timing_repeats=2, recal_size=128, progress=False,
    )


@dataclass
class Result:
    model: str
    seed: int
    test_acc: float
    best_epoch: int
    val_acc: list[float]
    train_loss: list[float]
    epoch_seconds: list[float]


def build(model: str, cfg: Config) -> torch.nn.Module:
    if model == "euclidean":
        return ResNet(depth=cfg.depth, widths=cfg.widths, in_channels=1, classes=10)
    if model in ("midpoint", "frechet"):
        return PoincareResNet(depth=cfg.depth, widths=cfg.widths, bn=model, c=cfg.c, in_channels=1, classes=10)
    raise ValueError(f"model: expected one of {MODELS}, got {model!r}")


def data(cfg: Config) -> tuple[ImageSplit, ImageSplit, ImageSplit]:
    """Seeded subsets of the official training split (train / val) and of the test set."""
    full = load_fashion_mnist(val_size=cfg.val_size, seed=0)
    train = full.train.subset(cfg.train_size, seed=0)
    test = full.test if cfg.test_size >= len(full.test) else full.test.subset(cfg.test_size, seed=0)
    mean, std = train.images.mean(), train.images.std()  # training statistics only

    def norm(s: ImageSplit) -> ImageSplit:
        return ImageSplit((s.images - mean) / std, s.labels)

    return norm(train), norm(full.val), norm(test)


@torch.no_grad()
def accuracy(net: torch.nn.Module, split: ImageSplit, batch: int = 500) -> float:
    net.eval()
    hits = sum(
        int((net(split.images[i:i + batch]).argmax(-1) == split.labels[i:i + batch]).sum())
        for i in range(0, len(split), batch)
    )
    return hits / len(split)


def train_one(model: str, seed: int, cfg: Config, splits, bar=None) -> Result:
    train, val, test = splits
    torch.manual_seed(seed)
    net = build(model, cfg)
    opt = geoopt.optim.RiemannianAdam(net.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    val_acc, losses, seconds = [], [], []
    best, best_state = -1.0, None
    for epoch in range(cfg.epochs):
        net.train()
        start, total = time.perf_counter(), 0.0
        order = torch.randperm(len(train), generator=gen)
        for i in range(0, len(train), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(train.images[idx]), train.labels[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            if bar is not None:
                bar.update(len(idx))
        seconds.append(time.perf_counter() - start)
        losses.append(total / len(train))
        recalibrate_running_stats(net, train.images[:cfg.recal_size].split(cfg.batch_size))
        val_acc.append(accuracy(net, val))
        if val_acc[-1] > best:
            best, best_state, best_epoch = val_acc[-1], copy.deepcopy(net.state_dict()), epoch
    net.load_state_dict(best_state)
    return Result(model, seed, accuracy(net, test), best_epoch, val_acc, losses, seconds)


def bn_call_seconds(cfg: Config) -> dict[str, float]:
    """Median seconds of one forward + backward of PoincareBatchNorm2d, midpoint vs Fréchet."""
    gen = torch.Generator().manual_seed(0)
    side = 14  # the second group's resolution on 28x28 images
    x = 0.3 * torch.randn(cfg.batch_size, cfg.widths[1], side, side, generator=gen) / cfg.widths[1] ** 0.5
    out = {}
    for mean in ("midpoint", "frechet"):
        bn = PoincareBatchNorm2d(cfg.widths[1], mean=mean, c=cfg.c)
        times = []
        for _ in range(cfg.bn_timing_repeats + 1):
            xi = x.clone().requires_grad_(True)
            start = time.perf_counter()
            bn(xi).square().sum().backward()
            times.append(time.perf_counter() - start)
        out[mean] = float(np.median(times[1:]))  # the first call warms up
    return out


def summarise(results: list[Result], bn_seconds: dict[str, float]) -> dict:
    summary = {}
    for model in dict.fromkeys(r.model for r in results):
        rs = [r for r in results if r.model == model]
        acc = np.array([r.test_acc for r in rs]) * 100
        summary[model] = {
            "test_acc_mean": float(acc.mean()),
            "test_acc_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "seconds_per_epoch": float(np.mean([s for r in rs for s in r.epoch_seconds])),
            "seeds": len(rs),
        }
    summary["bn_call_seconds"] = bn_seconds
    if bn_seconds.get("midpoint"):
        summary["frechet_over_midpoint_bn_call"] = bn_seconds["frechet"] / bn_seconds["midpoint"]
    return summary


def table(summary: dict) -> str:
    rows = ["| model | test accuracy (%) | s / epoch |", "|---|---|---|"]
    for model in MODELS:
        if model in summary:
            s = summary[model]
            rows.append(f"| {model} | {s['test_acc_mean']:.2f} ± {s['test_acc_std']:.2f} | {s['seconds_per_epoch']:.1f} |")
    bn = summary["bn_call_seconds"]
    rows.append("")
    rows.append(
        f"BN call (fwd+bwd): midpoint {bn['midpoint'] * 1e3:.2f} ms, Fréchet {bn['frechet'] * 1e3:.2f} ms "
        f"(Fréchet / midpoint = {summary['frechet_over_midpoint_bn_call']:.2f}x)"
    )
    return "\n".join(rows)


def plot(results: list[Result], summary: dict, path: Path) -> None:
    import matplotlib

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    colours = {"euclidean": "tab:grey", "midpoint": "tab:blue", "frechet": "tab:orange"}
    for r in results:
        axes[0].plot(np.arange(1, len(r.val_acc) + 1), np.array(r.val_acc) * 100, color=colours[r.model], alpha=0.7,
                     label=r.model if r.seed == results[0].seed else None)
    axes[0].set(xlabel="epoch", ylabel="validation accuracy (%)", title="accuracy curves (all seeds)")
    axes[0].legend()
    models = [m for m in MODELS if m in summary]
    axes[1].bar(models, [summary[m]["seconds_per_epoch"] for m in models], color=[colours[m] for m in models])
    axes[1].set(ylabel="seconds", title="time per training epoch")
    bn = summary["bn_call_seconds"]
    axes[2].bar(["midpoint", "frechet"], [bn["midpoint"] * 1e3, bn["frechet"] * 1e3],
                color=[colours["midpoint"], colours["frechet"]])
    axes[2].set(ylabel="ms", title="one Poincaré BN call (fwd+bwd)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run(cfg: Config) -> tuple[list[Result], dict]:
    splits = data(cfg)
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cfg.models) * len(cfg.seeds) * cfg.epochs * len(splits[0]), desc="training",
                   unit="img", file=sys.stderr)
    results = []
    for seed in cfg.seeds:
        for model in cfg.models:
            results.append(train_one(model, seed, cfg, splits, bar))
            r = results[-1]
            print(f"{model:9s} seed {seed}: test {r.test_acc * 100:.2f}% (best val epoch {r.best_epoch + 1}, "
                  f"val {max(r.val_acc) * 100:.2f}%, {np.mean(r.epoch_seconds):.1f} s/epoch)", flush=True)
    if bar is not None:
        bar.close()
    summary = summarise(results, bn_call_seconds(cfg))
    cfg.out.mkdir(parents=True, exist_ok=True)
    payload = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
               "results": [asdict(r) for r in results], "summary": summary}
    (cfg.out / "poincare_resnet.json").write_text(json.dumps(payload, indent=1))
    plot(results, summary, cfg.out / "poincare_resnet.png")
    return results, summary


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=None, help="override the configuration's epochs")
    parser.add_argument("--train-size", type=int, default=None, help="override the number of training images")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = smoke_config() if os.environ.get("GEONORM_SMOKE") == "1" else full_config()
    if args.out is not None:
        cfg.out = args.out
    if args.epochs is not None:
        cfg.epochs = args.epochs
    if args.train_size is not None:
        cfg.train_size = args.train_size
    start = time.perf_counter()
    _, summary = run(cfg)
    print(table(summary))
    print(f"wall time {time.perf_counter() - start:.0f} s")
    return summary


if __name__ == "__main__":
    main()
