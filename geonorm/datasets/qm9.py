r"""QM9 (130,831 small organic molecules) from qm9pack, offline, with a fixed split.

`qm9pack <https://pypi.org/project/qm9pack/>`_ ships QM9 (Ramakrishnan,
Dral, Rupp & von Lilienfeld, *Sci. Data* 1, 140022, 2014; B3LYP/6-31G(2df,p))
as CSV files inside the package: ``data/qm9_part{1,2,3}.csv`` hold one row per
molecule (ordered by the QM9 id ``Index``, 1 to 133,885, without the 3,054
molecules that failed QM9's geometry consistency check) with the elements
(``"['C','H','H','H','H']"``), the relaxed coordinates in Å
(``"[[x, y, z], ...]"``) and the properties below, in the units of the
original QM9 files. :func:`load_qm9` reads them with no network access and
without importing qm9pack (its ``__init__`` needs ``pkg_resources``): the
data folder is found with :func:`importlib.util.find_spec`.

The first call parses all molecules (a few seconds) and caches a compact copy
(``qm9_v1.npz``, about 80 MB) in ``$GEONORM_CACHE/qm9`` or else
``~/.cache/geonorm/qm9``; later calls read the cache. ``limit=n`` reads only
the first ``n`` molecules of the CSVs and bypasses the cache (quick runs,
tests).

Targets (:data:`QM9_TARGETS`) keep the dataset's own units, nothing converted:
rotational constants ``A, B, C`` (GHz), dipole moment ``mu`` (debye),
isotropic polarizability ``alpha`` (bohr³), ``homo``, ``lumo``, ``gap``,
``zpve``, ``U0``, ``U``, ``H``, ``G`` (hartree; multiply by
:data:`HARTREE_TO_EV` for eV), electronic spatial extent ``r2`` (bohr²) and
heat capacity ``Cv`` (cal/(mol K)); see :doc:`/qm9`.

The split (:func:`qm9_split`) is fixed: molecule positions ``0 .. 130830``
(the CSV order) are permuted by ``numpy.random.RandomState(0)`` (a stream
NumPy keeps identical across versions); the first 110,000 are ``"train"``,
the next 10,000 ``"valid"`` and the remaining 10,831 ``"test"`` — the sizes
of SchNet, DimeNet and PaiNN (their random draws differ from ours). With
``limit=n`` each split keeps its members among the first ``n`` molecules, so
a molecule never changes split.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._checks import check_int

__all__ = [
    "collate_molecules",
    "HARTREE_TO_EV",
    "load_qm9",
    "Molecule",
    "MoleculeBatch",
    "qm9_split",
    "QM9_SPLIT_SIZES",
    "QM9_TARGETS",
    "QM9Dataset",
    "radius_graph",
]

#: CODATA 2018 hartree energy in eV.
HARTREE_TO_EV = 27.211386245988
#: Target name -> (CSV column, unit), in the order of ``y``'s columns.
QM9_TARGETS: dict[str, tuple[str, str]] = {
    "A": ("RotA_GHz", "GHz"),  # rotational constants; A = 0 for linear molecules
    "B": ("RotB_GHz", "GHz"),
    "C": ("RotC_GHz", "GHz"),
    "mu": ("Dipole_debye", "D"),  # dipole moment
    "alpha": ("Polarizability_bohr3", "bohr^3"),  # isotropic polarizability
    "homo": ("HOMO_au", "hartree"),
    "lumo": ("LUMO_au", "hartree"),
    "gap": ("HOMO_LUMO_gap_au", "hartree"),  # LUMO - HOMO
    "r2": ("R2_bohr2", "bohr^2"),  # electronic spatial extent <R^2>
    "zpve": ("ZPVE_au", "hartree"),  # zero-point vibrational energy
    "U0": ("InternalEnergy_0K_au", "hartree"),  # internal energy at 0 K
    "U": ("InternalEnergy_298K_au", "hartree"),  # internal energy at 298.15 K
    "H": ("Enthalphy_298K_au", "hartree"),  # enthalpy at 298.15 K (sic: the CSV's spelling)
    "G": ("GibbsFreeEnergy_298K_au", "hartree"),  # free energy at 298.15 K
    "Cv": ("Heatcapacity_Cv_cal_mol_K", "cal/(mol K)"),  # heat capacity at 298.15 K
}
QM9_SIZE = 130_831
QM9_SPLIT_SIZES = {"train": 110_000, "valid": 10_000, "test": 10_831}
_SPLITS = ("train", "valid", "test", "all")
_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
_ELEMENTS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}


@dataclass
class Molecule:
    """One molecule: ``pos`` ``[n, 3]`` (Å), atomic numbers ``z`` ``[n]``, target(s) ``y``, id."""

    pos: torch.Tensor
    z: torch.Tensor
    y: torch.Tensor
    index: int


@dataclass
class MoleculeBatch:
    """Molecules concatenated: ``pos`` ``[N, 3]``, ``z`` ``[N]``, graph id ``batch`` ``[N]``,
    ``y`` ``[B]`` or ``[B, T]``, QM9 ids ``index`` ``[B]``."""

    pos: torch.Tensor
    z: torch.Tensor
    batch: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor

    @property
    def num_graphs(self) -> int:
        return len(self.index)

    def to(self, device: torch.device | str) -> MoleculeBatch:
        tensors = (self.pos, self.z, self.batch, self.y, self.index)
        return MoleculeBatch(*(t.to(device) for t in tensors))


class QM9Dataset(torch.utils.data.Dataset):
    """Molecules of one split, stored flat (``ptr`` marks where each molecule starts).

    Attributes: ``z`` ``[atoms]`` atomic numbers, ``pos`` ``[atoms, 3]`` (Å),
    ``ptr`` ``[molecules + 1]``, ``y`` ``[molecules]`` or ``[molecules, T]``
    (units in :data:`QM9_TARGETS`), ``index`` ``[molecules]`` QM9 ids,
    ``smiles`` (list of str), ``targets`` (names of ``y``'s columns), ``split``.

    ``ds[i]`` is a :class:`Molecule`; :meth:`batch` (or a ``DataLoader`` with
    ``collate_fn=collate_molecules``) batches them.
    """

    def __init__(
        self, z, pos, ptr, y, index, *, targets: tuple[str, ...], split: str, smiles: list[str]
    ) -> None:
        self.z, self.pos, self.ptr, self.y, self.index = z, pos, ptr, y, index
        self.targets, self.split, self.smiles = targets, split, smiles

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> Molecule:
        if not -len(self) <= i < len(self):
            raise IndexError(f"i: expected an index in [-{len(self)}, {len(self)}), got {i}")
        i = int(i) % len(self)
        a, b = int(self.ptr[i]), int(self.ptr[i + 1])
        return Molecule(self.pos[a:b], self.z[a:b], self.y[i], int(self.index[i]))

    @property
    def num_atoms(self) -> torch.Tensor:
        """Atoms per molecule, ``[len(self)]``."""
        return self.ptr[1:] - self.ptr[:-1]

    def batch(self, indices: Sequence[int] | torch.Tensor) -> MoleculeBatch:
        """The molecules at ``indices`` as one :class:`MoleculeBatch`."""
        return collate_molecules([self[int(i)] for i in indices])

    def __repr__(self) -> str:
        return f"QM9Dataset({self.split!r}, {len(self)} molecules, targets={list(self.targets)})"


def qm9_split(limit: int | None = None) -> dict[str, np.ndarray]:
    """Positions (0-based, CSV order) of the fixed train/valid/test split.

    Each array is in the split's fixed random order, so its first ``k``
    entries are a uniform random sample of the split. With ``limit``, only
    positions ``< limit`` are kept (the same membership as the full split).

    >>> s = qm9_split()
    >>> {k: len(v) for k, v in s.items()}
    {'train': 110000, 'valid': 10000, 'test': 10831}
    >>> {k: len(v) for k, v in qm9_split(limit=1000).items()}
    {'train': 851, 'valid': 67, 'test': 82}
    """
    limit = _check_limit(limit)
    perm = np.random.RandomState(0).permutation(QM9_SIZE)
    ends = np.cumsum(list(QM9_SPLIT_SIZES.values()))
    parts = dict(zip(QM9_SPLIT_SIZES, np.split(perm, ends[:-1])))
    return {k: (v if limit is None else v[v < limit]) for k, v in parts.items()}


def _check_limit(limit) -> int | None:
    limit = check_int(limit, "limit", allow_none=True)
    return None if limit is None or limit >= QM9_SIZE else limit


def _data_dir() -> Path:
    """qm9pack's data folder, found without running the package's ``__init__``."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or spec.origin is None:
        raise ImportError("load_qm9 needs qm9pack's bundled data: pip install 'geonorm[data]'")
    folder = Path(spec.origin).parent / "data"
    missing = [p for p in _PARTS if not (folder / p).is_file()]
    if missing:
        raise FileNotFoundError(f"qm9pack data: expected {', '.join(missing)} in {folder}")
    return folder


def _cache_path() -> Path:
    root = os.environ.get("GEONORM_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "geonorm"
    return base / "qm9" / "qm9_v1.npz"  # bump the version when the format changes


def _parse(limit: int | None) -> dict[str, np.ndarray]:
    """Read the CSVs (the first ``limit`` rows) into flat arrays."""
    import pandas as pd

    folder = _data_dir()
    target_columns = [c for c, _ in QM9_TARGETS.values()]
    columns = ["Index", "SMILES", "N_atoms", "Elements", "XYZ_Ang", *target_columns]
    frames, left = [], limit
    for name in _PARTS:
        frames.append(pd.read_csv(folder / name, usecols=columns, nrows=left))
        left = None if left is None else left - len(frames[-1])
        if left == 0:
            break
    df = pd.concat(frames, ignore_index=True)
    n_atoms = df["N_atoms"].to_numpy(np.int64)
    # "['C','H']" strings -> one comma-separated list of symbols for all molecules.
    symbols = ",".join(df["Elements"]).translate(str.maketrans("", "", "[]' ")).split(",")
    z = np.array([_ELEMENTS[s] for s in symbols], dtype=np.int8)  # [atoms]
    coords = ",".join(df["XYZ_Ang"]).translate(str.maketrans("", "", "[] "))
    pos = np.array(coords.split(","), dtype=np.float64).reshape(-1, 3)  # [atoms, 3]
    if len(z) != n_atoms.sum() or len(pos) != n_atoms.sum():
        raise ValueError(
            f"qm9pack data: expected {n_atoms.sum()} atoms (sum of N_atoms), "
            f"got {len(z)} elements and {len(pos)} coordinate triples"
        )
    ptr = np.concatenate([[0], np.cumsum(n_atoms)])  # [molecules + 1]
    y = df[target_columns].to_numpy(np.float64)  # [molecules, 15]
    index, smiles = df["Index"].to_numpy(np.int64), df["SMILES"].to_numpy().astype("S")
    return {"z": z, "pos": pos, "ptr": ptr, "y": y, "index": index, "smiles": smiles}


def _arrays(limit: int | None) -> dict[str, np.ndarray]:
    """All molecules (or the first ``limit``): from the cache if built, else parsed."""
    path = _cache_path()
    if path.is_file():  # reading (and slicing) the cache is faster than parsing
        with np.load(path) as cached:
            arrays = dict(cached)
        if len(arrays["index"]) == QM9_SIZE:
            return arrays if limit is None else _slice(arrays, limit)
    if limit is not None:
        return _parse(limit)  # quick runs: no full parse, no cache
    arrays = _parse(None)
    if len(arrays["index"]) != QM9_SIZE:
        raise ValueError(f"qm9pack data: expected {QM9_SIZE} molecules, got {len(arrays['index'])}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # atomic: concurrent loaders never read half a file
    return arrays


def _slice(arrays: dict[str, np.ndarray], limit: int) -> dict[str, np.ndarray]:
    end = int(arrays["ptr"][limit])
    out = {k: arrays[k][:limit] for k in ("y", "index", "smiles")}
    atoms = {"z": arrays["z"][:end], "pos": arrays["pos"][:end], "ptr": arrays["ptr"][: limit + 1]}
    return {**out, **atoms}


def load_qm9(
    split: str = "train",
    *,
    target: str | Sequence[str] | None = None,
    limit: int | None = None,
    size: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> QM9Dataset:
    """Load one split of QM9 from qm9pack's bundled CSVs (offline).

    Parameters
    ----------
    split : {"train", "valid", "test", "all"}
        The fixed split of :func:`qm9_split` (``"all"``: every molecule, CSV order).
    target : str or sequence of str, optional
        Name(s) from :data:`QM9_TARGETS`; ``y`` is ``[molecules]`` for one
        name, ``[molecules, T]`` for a sequence, all 15 targets if ``None``.
    limit : int, optional
        Use only the first ``limit`` molecules of QM9 (no full parse).
    size : int, optional
        Keep the first ``size`` molecules of the split in its fixed random
        order (a seeded random subset; CSV order for ``"all"``).
    dtype : torch.dtype
        Floating dtype of ``pos`` and ``y``.

    Examples
    --------
    >>> ds = load_qm9("all", target="alpha", limit=3)  # CH4, NH3, H2O
    >>> [m.z.tolist() for m in (ds[0], ds[1], ds[2])]
    [[6, 1, 1, 1, 1], [7, 1, 1, 1], [8, 1, 1]]
    >>> ds.y.tolist()
    [13.21, 9.46, 6.31]
    """
    if split not in _SPLITS:
        raise ValueError(f"split: expected one of {', '.join(map(repr, _SPLITS))}, got {split!r}")
    names = (target,) if isinstance(target, str) else tuple(QM9_TARGETS if target is None else target)
    unknown = [t for t in names if t not in QM9_TARGETS]
    if unknown or not names:
        raise ValueError(f"target: expected names from {list(QM9_TARGETS)}, got {target!r}")
    check_int(size, "size", allow_none=True)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype: expected a floating torch.dtype, got {dtype!r}")
    limit = _check_limit(limit)
    arrays = _arrays(limit)
    rows = np.arange(len(arrays["index"])) if split == "all" else qm9_split(limit)[split]
    rows = rows[:size]  # [molecules] rows of the CSVs
    ptr = arrays["ptr"]
    counts = ptr[rows + 1] - ptr[rows]
    offsets = np.cumsum(counts) - counts  # where each kept molecule starts in the output
    atoms = np.repeat(ptr[rows] - offsets, counts) + np.arange(counts.sum())  # rows of z and pos
    cols = [list(QM9_TARGETS).index(t) for t in names]
    y = torch.as_tensor(arrays["y"][rows][:, cols], dtype=dtype)  # [molecules, T]
    return QM9Dataset(
        torch.as_tensor(arrays["z"][atoms], dtype=torch.long),
        torch.as_tensor(arrays["pos"][atoms], dtype=dtype),
        torch.as_tensor(np.concatenate([[0], np.cumsum(counts)]), dtype=torch.long),
        y[:, 0] if isinstance(target, str) else y,
        torch.as_tensor(arrays["index"][rows], dtype=torch.long),
        targets=names,
        split=split,
        smiles=[s.decode() for s in arrays["smiles"][rows]],
    )


def collate_molecules(molecules: Sequence[Molecule]) -> MoleculeBatch:
    """Concatenate molecules into a :class:`MoleculeBatch` with a graph-id vector ``batch``.

    >>> m = Molecule(torch.zeros(2, 3), torch.tensor([1, 1]), torch.tensor(1.0), 7)
    >>> collate_molecules([m, m]).batch.tolist()
    [0, 0, 1, 1]
    """
    if not molecules:
        raise ValueError("molecules: expected at least one Molecule, got an empty sequence")
    counts = torch.tensor([len(m.z) for m in molecules])
    return MoleculeBatch(
        torch.cat([m.pos for m in molecules]),
        torch.cat([m.z for m in molecules]),
        torch.repeat_interleave(torch.arange(len(molecules)), counts),
        torch.stack([m.y for m in molecules]),
        torch.tensor([m.index for m in molecules]),
    )


def radius_graph(
    pos: torch.Tensor, cutoff: float, batch: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Directed edges between distinct atoms of one molecule closer than ``cutoff``.

    Pure torch: the molecules are padded to ``[B, n_max, 3]`` and all pairs
    compared (``n_max`` ≤ 29 in QM9), so the cost is :math:`O(B\,n_{max}^2)`.

    Parameters
    ----------
    pos : Tensor
        ``[N, 3]`` positions.
    cutoff : float
        Edges join atoms with :math:`\|x_i - x_j\| < r_c`.
    batch : LongTensor, optional
        ``[N]`` graph id of each atom, non-decreasing (the atoms of a graph
        contiguous, as :func:`collate_molecules` makes them); ``None``: one graph.

    Returns
    -------
    LongTensor
        ``edge_index`` ``[2, E]``: row 0 the source (neighbour) ``j``, row 1
        the target ``i``, sorted by target then source; both directions occur.

    >>> radius_graph(torch.tensor([[0.0, 0, 0], [1, 0, 0], [3, 0, 0]]), 1.5).tolist()
    [[1, 0], [0, 1]]
    """
    if not isinstance(pos, torch.Tensor) or not pos.is_floating_point():
        got = pos.dtype if isinstance(pos, torch.Tensor) else type(pos).__name__
        raise TypeError(f"pos: expected a floating torch.Tensor, got {got}")
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"pos: expected shape [N, 3], got {list(pos.shape)}")
    if isinstance(cutoff, bool) or not isinstance(cutoff, (int, float)) or not cutoff > 0:
        raise ValueError(f"cutoff: expected a positive float, got {cutoff!r}")
    n = pos.shape[0]
    if batch is None:
        batch = torch.zeros(n, dtype=torch.long, device=pos.device)
    if batch.shape != (n,) or batch.dtype != torch.long:
        raise ValueError(
            f"batch: expected a LongTensor of shape [{n}], got {batch.dtype} {list(batch.shape)}"
        )
    if n == 0:
        return torch.zeros(2, 0, dtype=torch.long, device=pos.device)
    if bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("batch: expected non-decreasing graph ids (atoms of a graph contiguous)")
    counts = torch.bincount(batch)  # [B]
    start = torch.cumsum(counts, 0) - counts  # [B]
    local = torch.arange(n, device=pos.device) - start[batch]  # [N] position within its graph
    n_max = int(counts.max())
    pos = pos.detach()
    padded = pos.new_full((len(counts), n_max, 3), float("nan"))
    padded[batch, local] = pos  # [B, n_max, 3]; NaN padding is never < cutoff
    # exact differences, not the |a|^2 + |b|^2 - 2ab matmul form (rounding near the cutoff)
    dist = torch.cdist(padded, padded, compute_mode="donot_use_mm_for_euclid_dist")  # [B, n, n]
    dist.diagonal(dim1=1, dim2=2).fill_(float("inf"))
    g, i, j = torch.nonzero(dist < cutoff, as_tuple=True)  # sorted by (graph, target, source)
    return torch.stack([start[g] + j, start[g] + i])  # [2, E]
