"""check_potential on a small e3nn potential: energy + autograd forces, large reference energies."""

from __future__ import annotations

import functools

import pytest
import torch
from e3nn import o3
from torch import nn

from geonorm.testing import atomistic_batch, check_potential, radius_graph

F32, F64 = torch.float32, torch.float64
E0 = (-1030.5, -2040.25, -1500.0)  # realistic per-species reference energies (eV)


class TinyPotential(nn.Module):
    """One e3nn interaction (radial MLP weights per edge) -> per-atom energies; F = -dE/dx."""

    def __init__(self, num_species: int = 3, *, force_bias: float = 0.0) -> None:
        super().__init__()
        self.sh = o3.Irreps.spherical_harmonics(2)
        self.embed = nn.Linear(num_species, 4)
        self.tp = o3.FullyConnectedTensorProduct("4x0e", self.sh, "4x0e+2x1o",
                                                 shared_weights=False)
        self.radial = nn.Sequential(nn.Linear(4, 16), nn.SiLU(), nn.Linear(16, self.tp.weight_numel))
        self.readout = o3.Linear("4x0e+2x1o", "1x0e")
        self.register_buffer("e0", torch.tensor(E0))
        self.force_bias = force_bias

    def forward(self, data):
        pos = data["positions"].requires_grad_(True)
        sender, receiver = data["edge_index"]
        vec = pos[receiver] - pos[sender]  # [E, 3]
        length = vec.norm(dim=-1, keepdim=True)  # [E, 1]
        sh = o3.spherical_harmonics(self.sh, vec, normalize=True)  # [E, 9]
        basis = torch.cat([torch.exp(-length * k) for k in (0.5, 1.0, 2.0, 4.0)], -1)  # [E, 4]
        h = self.embed(data["node_attrs"])  # [N, 4]
        msg = self.tp(h[sender], sh, self.radial(basis))  # [E, 10]
        node = pos.new_zeros(pos.shape[0], msg.shape[-1]).index_add(0, receiver, msg)  # [N, 10]
        e_atom = self.readout(node)[:, 0] + self.e0[data["species"]]  # [N]
        energy = pos.new_zeros(int(data["num_graphs"])).index_add(0, data["batch"], e_atom)
        (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=self.training)
        return {"energy": energy, "forces": -grad + self.force_bias, "node_energy": e_atom}


@functools.cache
def _model(force_bias: float = 0.0) -> TinyPotential:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return TinyPotential(force_bias=force_bias)


def _molecules(dtype=F64):
    gen = torch.Generator().manual_seed(0)
    sizes = [3, 5]  # ragged: two molecules
    pos = torch.randn(sum(sizes), 3, generator=gen, dtype=dtype) * 1.2
    species = torch.randint(0, 3, (sum(sizes),), generator=gen)
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor(sizes)).int()  # int32, as PyG
    return pos, species, batch


def test_radius_graph_and_batch_match_a_direct_computation():
    pos, species, batch = _molecules()
    d = atomistic_batch(pos, species, batch, cutoff=2.0)
    assert d["ptr"].tolist() == [0, 3, 8] and int(d["num_graphs"]) == 2
    assert torch.equal(d["node_attrs"].argmax(-1), species)
    expected = {(j, i) for i in range(8) for j in range(8)
                if i != j and batch[i] == batch[j] and float((pos[i] - pos[j]).norm()) < 2.0}
    assert set(map(tuple, d["edge_index"].T.tolist())) == expected
    assert d["shifts"].shape == (d["edge_index"].shape[1], 3) and not d["shifts"].any()
    with pytest.raises(ValueError, match="batch: expected sorted molecule ids"):
        atomistic_batch(pos, species, batch.flip(0), cutoff=2.0)
    with pytest.raises(ValueError, match="species: expected indices in 0 .. 1"):
        atomistic_batch(pos, species, batch, cutoff=2.0, num_species=2)
    with pytest.raises(ValueError, match="cutoff: expected a positive float"):
        radius_graph(pos, batch.long(), 0.0)


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
def test_intact_potential_passes(dtype):
    pos, species, batch = _molecules()
    r = check_potential(_model(), pos, species, batch, cutoff=2.5, dtype=dtype, n_samples=2)
    assert r.passed, r.report
    assert [o.name for o in r.worst.outputs] == ["energy", "forces"]
    assert r.unchecked == ("node_energy",)
    assert "S(3) × S(5) (blocks)" in r.group and "E(3)" in r.group
    # the energy is large (reference energies), the forces are O(1)
    e = _model()(atomistic_batch(pos.float(), species, batch, cutoff=2.5))["energy"]
    assert float(e.detach().abs().min()) > 3000


def test_force_bias_of_0_1_fails_in_float32_although_the_energy_passes():
    """45 % off forces used to hide under a combined error dominated by the energy."""
    pos, species, batch = _molecules()
    r = check_potential(_model(0.1), pos, species, batch, cutoff=2.5, dtype=F32, n_samples=2)
    assert not r.passed
    out = {o.name: o for o in r.worst.outputs}
    assert out["energy"].passed and not out["forces"].passed
    assert "forces" in r.report and "fails only for output(s) forces" in r.report


def test_permutations_move_species_with_atoms():
    pos, species, batch = _molecules()

    def species_blind_to_order(data):  # energy depends on which atom index has which species
        x = data["positions"].requires_grad_(True)
        w = torch.arange(x.shape[0], dtype=x.dtype)  # position in storage order: not a symmetry
        e = (w * data["node_attrs"][:, 0] * x.square().sum(-1)).sum().reshape(1)
        (g,) = torch.autograd.grad(e.sum(), x)
        return {"energy": e.expand(2), "forces": -g}

    r = check_potential(species_blind_to_order, pos, species, batch, cutoff=2.5, n_samples=2)
    assert not r.passed
    # without the permutations it is O(3)-invariant (|x|^2 per atom), so the check passes
    assert check_potential(species_blind_to_order, pos, species, batch, cutoff=2.5,
                           permutations=False, group="o3", n_samples=2).passed
