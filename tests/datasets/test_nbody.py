"""Charged n-body simulator and data: physics, equivariance, reproducibility, cache."""

import itertools

import pytest
import torch

from geonorm.datasets import nbody
from geonorm.datasets.nbody import coulomb_forces, energy, generate, load_nbody, simulate
from geonorm.testing import (
    ComposedAction,
    JointAction,
    PermutationAction,
    PointCloudAction,
    TrivialAction,
    assert_equivariant,
)

F64 = torch.float64


def _repulsive(num=4, seed=0):
    """Like charges only: no close encounters, so the dynamics are smooth and the clip idle."""
    gen = torch.Generator().manual_seed(seed)
    x = 2.0 * torch.randn(num, 5, 3, generator=gen, dtype=F64)
    v = 0.5 * torch.randn(num, 5, 3, generator=gen, dtype=F64)
    return x, v, torch.ones(num, 5, dtype=F64)


def test_forces_match_a_pairwise_loop():
    x, _, _ = _repulsive(2)
    q = torch.tensor([[1.0, -1, 1, 1, -1], [-1, -1, 1, -1, 1]], dtype=F64)
    ref = torch.zeros_like(x)
    for b, i, j in itertools.product(range(2), range(5), range(5)):
        if i != j:
            r = x[b, i] - x[b, j]
            ref[b, i] += q[b, i] * q[b, j] * r / r.norm() ** 3
    torch.testing.assert_close(coulomb_forces(x, q, max_force=None), ref, rtol=1e-13, atol=1e-15)
    close = torch.tensor([[[0.0, 0, 0], [1e-3, 0, 0]]], dtype=F64)
    clipped = coulomb_forces(close, torch.ones(1, 2, dtype=F64))
    assert clipped.abs().max() == 100.0  # each component clipped to 0.1 / dt


def test_energy_is_conserved_to_first_order():
    """Symplectic Euler: the energy error is O(dt); halving dt halves it."""
    x, v, q = _repulsive(4, seed=1)
    e0 = energy(x, v, q)
    errors = []
    for dt, steps in ((2e-3, 500), (1e-3, 1000), (5e-4, 2000)):
        xs, vs = simulate(x, v, q, steps, dt=dt, sample_every=steps // 50)  # same physical times
        err = (energy(xs, vs, q.unsqueeze(1)) - e0.unsqueeze(1)).abs().amax()
        errors.append(float(err))
        forces = coulomb_forces(xs, q.unsqueeze(1), max_force=None)
        assert forces.abs().max() < 100  # the clip never acts: a smooth trajectory
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(1.8 < r < 2.2 for r in ratios), (errors, ratios)
    assert errors[1] < 1e-2 * float(e0.abs().min())


def test_simulator_is_e3_and_permutation_equivariant():
    x, v, q = _repulsive(3, seed=2)

    def final_positions(pos, vel, charges):
        return simulate(pos, vel, charges, 200)[0]

    pos, vec = PointCloudAction(group="e3"), PointCloudAction(group="e3", kind="vector")
    assert_equivariant(final_positions, JointAction(pos, vec, TrivialAction()),
                       (x, v, q), pos, n_samples=4, rtol=1e-9)  # fmt: skip
    perm = PermutationAction(5, dim=-2)
    assert_equivariant(
        final_positions,
        JointAction(ComposedAction(perm, pos), ComposedAction(perm, vec), PermutationAction(5, dim=-1)),
        (x, v, torch.tensor([[1.0, -1, 1, -1, 1]], dtype=F64).expand(3, 5)),
        ComposedAction(perm, pos),
        n_samples=4,
        rtol=1e-9,
    )


def test_reintegrating_frame_30_reproduces_the_target():
    data = generate(3, seed=7)
    assert data.positions.dtype == F64 and set(data.charges.unique().tolist()) <= {-1.0, 1.0}
    x, v = simulate(data.positions, data.velocities, data.charges, 1000)
    torch.testing.assert_close(x, data.target, rtol=1e-12, atol=1e-12)
    # and the stored trajectory is the state every 100 steps
    xs, _ = simulate(data.positions, data.velocities, data.charges, 1000, sample_every=100)
    torch.testing.assert_close(xs, data.trajectory[:, 1:], rtol=1e-12, atol=1e-12)


def test_generate_is_seeded_and_sliceable():
    a, b = generate(2, seed=3), generate(2, seed=3)
    assert torch.equal(a.target, b.target)
    assert not torch.equal(a.target[0], a.target[1])  # two different systems
    assert len(a[1]) == 1 and torch.equal(a[1].positions, a.positions[1:])


def test_load_nbody_caches_with_a_checksum(tmp_path, monkeypatch):
    monkeypatch.setitem(nbody.NBODY_SPLIT_SIZES, "valid", 3)
    first = load_nbody("valid", root=tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["charged_v1_valid.npz", "charged_v1_valid.sha256"]
    again = load_nbody("valid", root=tmp_path)
    assert torch.equal(first.target, again.target) and len(again) == 3
    (tmp_path / "charged_v1_valid.npz").write_bytes(b"corrupted")  # checksum mismatch: regenerate
    assert torch.equal(load_nbody("valid", root=tmp_path).target, first.target)
    with pytest.raises(ValueError, match="split: expected one of train, valid, test, got 'val'"):
        load_nbody("val", root=tmp_path)


def test_bad_input():
    x, v, q = _repulsive(2)
    with pytest.raises(ValueError, match=r"velocities: expected the shape of positions \[2, 5, 3\]"):
        simulate(x, v[:, :4], q, 1)
    with pytest.raises(ValueError, match=r"charges: expected shape \[2, 5\], got \[2, 4\]"):
        simulate(x, v, q[:, :4], 1)
    with pytest.raises(ValueError, match="steps: expected a non-negative int, got -1"):
        simulate(x, v, q, -1)
    with pytest.raises(TypeError, match="positions: expected a torch.Tensor"):
        simulate(x.numpy(), v, q, 1)
