"""QM9 from qm9pack: offline loading, known molecules, the fixed split, radius graphs, batching,
and the E(3) invariance of the example's models. No test parses all 130,831 molecules."""

import importlib.util
import itertools
import math
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from geonorm.datasets import (
    QM9_SPLIT_SIZES,
    QM9_TARGETS,
    Molecule,
    collate_molecules,
    load_qm9,
    qm9_split,
    radius_graph,
)
from geonorm.datasets import qm9 as qm9_module

pytest.importorskip("pandas")
if importlib.util.find_spec("qm9pack") is None:
    pytest.skip("qm9pack (the QM9 data) is not installed", allow_module_level=True)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(autouse=True)
def offline_with_private_cache(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("GEONORM_CACHE", str(tmp_path / "cache"))


def test_first_molecules_are_methane_ammonia_water():
    ds = load_qm9("all", limit=3)
    assert ds.index.tolist() == [1, 2, 3]  # QM9 ids dsgdb9nsd_000001..3
    assert [ds[i].z.tolist() for i in range(3)] == [[6, 1, 1, 1, 1], [7, 1, 1, 1], [8, 1, 1]]
    assert ds.num_atoms.tolist() == [5, 4, 3]
    y = dict(zip(ds.targets, ds.y.T))
    # Values of the original QM9 files (dsgdb9nsd_000001.xyz ...): alpha in bohr^3,
    # orbital energies and U0 in hartree, mu in debye, Cv in cal/(mol K).
    assert y["alpha"].tolist() == [13.21, 9.46, 6.31]
    assert y["mu"].tolist() == [0.0, 1.6256, 1.8511]
    assert y["homo"][0] == -0.3877 and y["lumo"][0] == 0.1171 and y["gap"][0] == 0.5048
    assert y["U0"][0] == -40.47893 and y["Cv"][0] == 6.469
    assert torch.allclose(y["gap"], y["lumo"] - y["homo"], atol=1e-4)
    # B3LYP/6-31G(2df,p): CH4 r(CH) = 1.092 Å, tetrahedral; H2O r(OH) = 0.962 Å, 103.7°.
    for i, r, angle in ((0, 1.092, math.degrees(math.acos(-1 / 3))), (2, 0.962, 103.7)):
        pos = ds[i].pos
        bonds = pos[1:] - pos[0]  # heavy atom first
        assert torch.allclose(bonds.norm(dim=1), torch.tensor(r, dtype=torch.float64), atol=1e-3)
        u = bonds / bonds.norm(dim=1, keepdim=True)
        cos = (u @ u.T)[torch.triu_indices(len(u), len(u), 1).unbind()]
        angles = torch.rad2deg(torch.acos(cos))
        assert torch.allclose(angles, torch.tensor(angle, dtype=torch.float64), atol=0.1)


def test_alpha_is_the_trace_of_the_polarizability_tensor():
    # An independent file of qm9pack: the tensor, 3 decimals (alpha has 2), same molecules.
    import pandas as pd

    ds = load_qm9("all", target="alpha", limit=300)
    tensor = pd.read_csv(qm9_module._data_dir() / "qm9_polarizability.csv", nrows=300)
    assert tensor["XYZ_file"].str.slice(10, 16).astype(int).tolist() == ds.index.tolist()
    trace = (tensor["A_xx"] + tensor["A_yy"] + tensor["A_zz"]).to_numpy() / 3
    assert np.abs(trace - ds.y.numpy()).max() <= 0.0055


def test_targets_dtype_and_selection():
    all_targets = load_qm9("all", limit=20, dtype=torch.float32)
    assert all_targets.y.shape == (20, len(QM9_TARGETS)) and all_targets.y.dtype == torch.float32
    assert all_targets.pos.dtype == torch.float32 and all_targets.z.dtype == torch.long
    two = load_qm9("all", target=["gap", "alpha"], limit=20)
    assert two.y.shape == (20, 2) and two.targets == ("gap", "alpha")
    assert torch.allclose(two.y[:, 1], all_targets.y[:, 4].double(), atol=1e-5)


def test_split_is_fixed_disjoint_and_complete():
    split = qm9_split()
    sizes = {k: len(v) for k, v in split.items()}
    assert sizes == QM9_SPLIT_SIZES == {"train": 110_000, "valid": 10_000, "test": 10_831}
    every = np.concatenate(list(split.values()))
    assert np.array_equal(np.sort(every), np.arange(130_831))  # disjoint and complete
    # Pinned: the permutation of numpy.random.RandomState(0), stable across NumPy versions.
    assert split["train"][:3].tolist() == [130195, 68784, 7957]
    assert split["valid"][:3].tolist() == [92591, 68092, 21089]
    assert split["test"][:3].tolist() == [71444, 35215, 35713]
    small = qm9_split(limit=1000)  # the same membership, restricted to the first 1,000
    for k in split:
        assert np.array_equal(small[k], split[k][split[k] < 1000])


def test_loaded_splits_follow_the_split_and_size():
    every = load_qm9("all", target="alpha", limit=400)
    parts = {k: load_qm9(k, target="alpha", limit=400) for k in ("train", "valid", "test")}
    for k, ds in parts.items():
        rows = qm9_split(limit=400)[k]
        assert torch.equal(ds.index, every.index[rows]) and torch.equal(ds.y, every.y[rows])
        assert torch.equal(ds[0].pos, every[int(rows[0])].pos)
    assert sum(map(len, parts.values())) == 400
    head = load_qm9("train", target="alpha", limit=400, size=10)
    assert torch.equal(head.index, parts["train"].index[:10])
    assert torch.equal(head[-1].z, parts["train"][9].z)


def test_cache_is_built_once_then_read_and_sliced(monkeypatch):
    # A stand-in QM9 of 60 molecules, so the test never parses all 130,831.
    parse = qm9_module._parse
    monkeypatch.setattr(qm9_module, "QM9_SIZE", 60)
    monkeypatch.setattr(qm9_module, "_parse", lambda limit: parse(60 if limit is None else limit))
    parsed = load_qm9("all", limit=40)  # a limit never writes the cache
    assert not qm9_module._cache_path().exists()
    assert len(load_qm9("all")) == 60 and qm9_module._cache_path().is_file()

    def no_parse(limit):
        raise AssertionError("parsed although the cache was present")

    monkeypatch.setattr(qm9_module, "_parse", no_parse)
    cached = load_qm9("all", limit=40)  # sliced from the cache
    for name in ("z", "pos", "ptr", "y", "index"):
        assert torch.equal(getattr(cached, name), getattr(parsed, name))
    assert cached.smiles[:3] == ["C", "N", "O"] and len(load_qm9("all")) == 60
    assert "qm9pack" not in sys.modules  # its __init__ needs pkg_resources: never imported


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="split: expected one of"):
        load_qm9("validation", limit=5)
    with pytest.raises(ValueError, match="target: expected names from"):
        load_qm9("all", target="homo_lumo", limit=5)
    with pytest.raises(ValueError, match="limit: expected a positive int"):
        load_qm9("all", limit=0)
    with pytest.raises(ValueError, match="size: expected a positive int"):
        load_qm9("all", limit=5, size=2.5)
    with pytest.raises(TypeError, match="dtype: expected a floating"):
        load_qm9("all", limit=5, dtype=torch.int64)
    with pytest.raises(IndexError, match="i: expected an index"):
        load_qm9("all", limit=5)[5]


def test_missing_qm9pack_is_explained(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "qm9pack" else find_spec(name, *a)
    )
    with pytest.raises(ImportError, match=r"load_qm9 needs qm9pack's bundled data: pip install"):
        load_qm9("all", limit=3)


def _brute_force(pos, batch, cutoff):
    edges = set()
    for i, j in itertools.permutations(range(len(pos)), 2):
        if batch[i] == batch[j] and float(torch.linalg.vector_norm(pos[i] - pos[j])) < cutoff:
            edges.add((j, i))
    return edges


@pytest.mark.parametrize("cutoff", [1.2, 2.5, 5.0])
def test_radius_graph_matches_brute_force(cutoff):
    mols = load_qm9("all", limit=60)
    b = mols.batch([0, 7, 33, 59, 12])
    edges = radius_graph(b.pos, cutoff, b.batch)
    got = list(map(tuple, edges.T.tolist()))
    assert len(got) == len(set(got)) == len(_brute_force(b.pos, b.batch, cutoff))
    assert set(got) == _brute_force(b.pos, b.batch, cutoff)
    assert torch.equal(edges[1], torch.sort(edges[1]).values)  # sorted by target
    # random clouds of unequal sizes, one of them a single atom
    gen = torch.Generator().manual_seed(0)
    batch = torch.repeat_interleave(torch.arange(4), torch.tensor([6, 1, 9, 4]))
    pos = 2 * torch.randn(len(batch), 3, generator=gen)
    edges = radius_graph(pos, cutoff, batch)
    assert set(map(tuple, edges.T.tolist())) == _brute_force(pos, batch, cutoff)


def test_radius_graph_errors():
    pos = torch.zeros(3, 3)
    with pytest.raises(ValueError, match=r"pos: expected shape \[N, 3\], got \[3, 2\]"):
        radius_graph(torch.zeros(3, 2), 1.0)
    with pytest.raises(TypeError, match="pos: expected a floating torch.Tensor"):
        radius_graph(torch.zeros(3, 3, dtype=torch.long), 1.0)
    with pytest.raises(ValueError, match="cutoff: expected a positive float"):
        radius_graph(pos, -1.0)
    with pytest.raises(ValueError, match="batch: expected non-decreasing"):
        radius_graph(pos, 1.0, torch.tensor([1, 0, 1]))
    assert radius_graph(torch.zeros(0, 3), 1.0).shape == (2, 0)


def test_collate_builds_batch_vectors():
    ds = load_qm9("all", target="alpha", limit=10)
    mols = [ds[3], ds[0], ds[8]]
    b = collate_molecules(mols)
    counts = [len(m.z) for m in mols]
    assert b.batch.tolist() == [k for k, n in enumerate(counts) for _ in range(n)]
    assert torch.equal(b.pos, torch.cat([m.pos for m in mols]))
    assert torch.equal(b.z, torch.cat([m.z for m in mols]))
    assert b.y.tolist() == [m.y.item() for m in mols] and b.index.tolist() == [4, 1, 9]
    assert b.num_graphs == 3
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate_molecules)
    first = next(iter(loader))
    assert torch.equal(first.pos, ds.batch(range(4)).pos) and first.batch.max() == 3
    with pytest.raises(ValueError, match="molecules: expected at least one"):
        collate_molecules([])
    assert isinstance(ds[-1], Molecule) and ds[-1].index == 10


@pytest.fixture
def one_thread():
    # Small kernels: one thread is faster, and much faster on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def example():
    pytest.importorskip("e3nn")
    import sys

    sys.path.insert(0, str(EXAMPLES))
    try:
        import qm9_irreps
    finally:
        sys.path.remove(str(EXAMPLES))
    return qm9_irreps


@pytest.mark.parametrize("variant", ["cg", "cg+ln", "gaunt", "gaunt+ln"])
def test_example_models_are_e3_invariant(example, variant, one_thread):
    from geonorm.testing import JointAction, PointCloudAction, TrivialAction, assert_invariant

    cfg = example.Config(channels=4, layers=2)
    ds = load_qm9("all", target="alpha", limit=30)
    torch.manual_seed(0)
    model = example.QM9Net(variant, cfg, torch.zeros(10), 1.0, avg_neighbors=10.0)
    b = ds.batch([4, 17, 29])
    action = JointAction(PointCloudAction(group="e3"), TrivialAction(), TrivialAction())
    result = assert_invariant(model, action, (b.pos, b.z, b.batch), mode="both", n_samples=2)
    assert result.rel_error < 1e-10
    # permuting the atoms inside each molecule changes nothing either
    perm = torch.cat([torch.nonzero(b.batch == g).flatten().flip(0) for g in range(3)])
    with torch.no_grad():
        model = model.double()
        out, out_perm = model(b.pos, b.z, b.batch), model(b.pos[perm], b.z[perm], b.batch[perm])
    assert torch.allclose(out, out_perm, rtol=1e-10)
