r"""Equivariance checks of interatomic potentials: energies and forces from positions and species.

MACE, NequIP and Allegro-style models take one dict per batch of molecules,
stored atom-wise (ragged, as in torch_geometric), and return a dict with a
per-molecule ``energy`` and per-atom ``forces``
:math:`F_i = -\partial E / \partial x_i`. :func:`check_potential` checks the
symmetries such a model must have, from nothing but positions and species:

* E(3) (or the group asked for): :math:`E(Rx + t) = E(x)` and
  :math:`F(Rx + t) = R F(x)`;
* permutations of the atoms *within* each molecule, moving each atom's
  species with it: :math:`E(\pi x) = E(x)`, :math:`F(\pi x) = \pi F(x)`.

The graph is rebuilt from the transformed positions for every call
(:func:`atomistic_batch`), as a data loader would, so a model is not handed
a stale neighbour list. Energy and forces are judged separately (an energy
of :math:`-8000` with realistic reference energies cannot hide a force
error).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from .._checks import check_int
from .actions import ComposedAction, JointAction, PermutationAction, TrivialAction
from .assertions import equivariance_error
from .euclidean import PointCloudAction
from .groups import BlockPermutationGroup
from .result import EquivarianceResult

Tensor = torch.Tensor

__all__ = ["radius_graph", "atomistic_batch", "check_potential"]


def _check_atoms(positions: object, species: object, batch: object) -> Tensor:
    if not isinstance(positions, Tensor) or positions.ndim != 2 or positions.shape[-1] != 3:
        got = list(positions.shape) if isinstance(positions, Tensor) else type(positions).__name__
        raise ValueError(f"positions: expected a tensor of shape [N, 3], got {got}")
    n = positions.shape[0]
    for name, t in (("species", species), ("batch", batch)):
        if t is None and name == "batch":
            continue
        if not isinstance(t, Tensor) or t.dtype not in (torch.int32, torch.int64) or t.shape != (n,):
            got = f"{t.dtype} {list(t.shape)}" if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name}: expected an integer tensor of shape [{n}], got {got}")
    if batch is None:
        return torch.zeros(n, dtype=torch.long, device=positions.device)
    batch = batch.long()
    if n and (bool((batch[1:] < batch[:-1]).any()) or int(batch[0]) != 0):
        raise ValueError("batch: expected sorted molecule ids starting at 0 (atoms of one "
                         "molecule stored together), got an unsorted vector")
    return batch


def radius_graph(positions: Tensor, batch: Tensor, cutoff: float) -> Tensor:
    r"""Directed edges :math:`(j \to i)` between distinct atoms of one molecule closer than ``cutoff``.

    Returns ``edge_index`` ``[2, E]`` (row 0: sender :math:`j`, row 1:
    receiver :math:`i`, the torch_geometric / MACE convention), both
    directions of each pair, sorted by receiver. Dense per batch
    (:math:`O(N^2)` memory): meant for the small batches of a check.

    >>> pos = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [5.0, 0, 0]])
    >>> radius_graph(pos, torch.zeros(3, dtype=torch.long), 2.0)
    tensor([[1, 0],
            [0, 1]])
    """
    if not cutoff > 0:
        raise ValueError(f"cutoff: expected a positive float, got {cutoff!r}")
    d = torch.cdist(positions.detach(), positions.detach())  # [N, N]
    same = batch[:, None] == batch[None, :]  # [N, N]
    near = (d < cutoff) & same
    near.fill_diagonal_(False)
    receiver, sender = near.nonzero(as_tuple=True)
    return torch.stack([sender, receiver])  # [2, E]


def atomistic_batch(
    positions: Tensor,
    species: Tensor,
    batch: Tensor | None = None,
    *,
    cutoff: float,
    num_species: int | None = None,
) -> dict[str, Tensor]:
    """The dict a MACE/NequIP-style model takes, built from positions and species.

    Parameters
    ----------
    positions : Tensor
        ``[N, 3]`` atom positions (several molecules stored one after another).
    species : LongTensor
        ``[N]`` species index of each atom, ``0 .. num_species - 1``.
    batch : LongTensor, optional
        ``[N]`` molecule of each atom (sorted, from 0; int32 accepted);
        default one molecule.
    cutoff : float
        Neighbour cutoff of :func:`radius_graph`.
    num_species : int, optional
        Width of the one-hot ``node_attrs``; default ``species.max() + 1``.

    Returns
    -------
    dict
        ``positions [N, 3]``, ``species [N]``, ``node_attrs [N, num_species]``
        (one-hot, the dtype of ``positions``), ``batch [N]``, ``ptr [M + 1]``
        (first atom of each molecule), ``edge_index [2, E]``, ``shifts [E, 3]``
        and ``unit_shifts [E, 3]`` (zeros: no periodic cell), ``cell [3 M, 3]``
        (zeros) and ``num_graphs`` (a 0-d long tensor, :math:`M`).

    Examples
    --------
    >>> d = atomistic_batch(torch.zeros(3, 3), torch.tensor([0, 1, 1]),
    ...                     torch.tensor([0, 0, 1]), cutoff=1.0)
    >>> d["ptr"].tolist(), d["node_attrs"].tolist(), d["edge_index"].tolist()
    ([0, 2, 3], [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], [[1, 0], [0, 1]])
    """
    batch = _check_atoms(positions, species, batch)
    species = species.long()
    n = positions.shape[0]
    num_graphs = int(batch[-1]) + 1 if n else 0
    if num_species is None:
        num_species = int(species.max()) + 1 if n else 1
    check_int(num_species, "num_species")
    if n and (int(species.min()) < 0 or int(species.max()) >= num_species):
        raise ValueError(
            f"species: expected indices in 0 .. {num_species - 1}, got "
            f"{int(species.min())} .. {int(species.max())}"
        )
    counts = torch.bincount(batch, minlength=num_graphs)  # [M]
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])  # [M + 1]
    edge_index = radius_graph(positions, batch, cutoff)  # [2, E]
    dtype = positions.dtype
    zeros = positions.new_zeros(edge_index.shape[1], 3)  # [E, 3]
    return {
        "positions": positions,
        "species": species,
        "node_attrs": torch.nn.functional.one_hot(species, num_species).to(dtype),  # [N, S]
        "batch": batch,
        "ptr": ptr,
        "edge_index": edge_index,
        "shifts": zeros,
        "unit_shifts": zeros.clone(),
        "cell": positions.new_zeros(3 * num_graphs, 3),
        "num_graphs": torch.tensor(num_graphs),
    }


def check_potential(
    model: Callable[[dict[str, Tensor]], dict[str, Tensor]],
    positions: Tensor,
    species: Tensor,
    batch: Tensor | None = None,
    *,
    cutoff: float,
    num_species: int | None = None,
    energy_key: str = "energy",
    forces_key: str | None = "forces",
    group: str = "e3",
    permutations: bool = True,
    **kwargs: Any,
) -> EquivarianceResult:
    r"""Check a potential's energy (invariant) and forces (equivariant) under E(3) and permutations.

    Builds the model's input with :func:`atomistic_batch` from the
    transformed positions and species at every call, and runs
    :func:`~geonorm.testing.equivariance_error` with the outputs
    ``{energy_key: invariant, forces_key: vectors}``; with ``permutations``
    the element also permutes the atoms of each molecule among themselves
    (:class:`~geonorm.testing.BlockPermutationGroup`), species included.

    Parameters
    ----------
    model : callable
        ``model(data) -> dict`` (an ``nn.Module`` or a function). It is
        closed over by the checked function, so a module is copied and cast
        to the check's dtype; it computes forces itself (autograd is on).
    positions, species, batch
        As for :func:`atomistic_batch`.
    cutoff, num_species
        As for :func:`atomistic_batch`.
    energy_key, forces_key : str
        Keys of the outputs; ``forces_key=None`` checks the energy alone.
    group : {"e3", "se3", "o3", "so3", "t3"}
        The Euclidean group (``"t3"``: translations only).
    permutations : bool
        Also permute atoms within molecules.
    **kwargs
        Passed to :func:`~geonorm.testing.equivariance_error` (``n_samples``,
        ``dtype``, ``rtol``, ``generator``, ...).

    Returns
    -------
    EquivarianceResult
        With one verdict for the energy and one for the forces.

    Examples
    --------
    >>> def pair_potential(data):  # E = sum over bonds of |r|^2 - 1000 per atom, F = -dE/dx
    ...     x = data["positions"].requires_grad_(True)
    ...     s, r = data["edge_index"]
    ...     bond = ((x[r] - x[s]) ** 2).sum(-1)
    ...     e = torch.zeros(int(data["num_graphs"]), dtype=x.dtype).index_add(
    ...         0, data["batch"][r], bond) - 1000.0 * torch.bincount(data["batch"]).to(x.dtype)
    ...     (g,) = torch.autograd.grad(e.sum(), x)
    ...     return {"energy": e, "forces": -g}
    >>> pos = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    >>> r = check_potential(pair_potential, pos, torch.tensor([0, 1, 0, 1, 1]),
    ...                     torch.tensor([0, 0, 0, 1, 1]), cutoff=3.0)
    >>> r.passed
    True
    """
    batch = _check_atoms(positions, species, batch)
    n = positions.shape[0]
    sizes = torch.bincount(batch).tolist() if n else []
    vec = PointCloudAction(group=group, kind="vector")
    pos_act: Any = PointCloudAction(group=group)
    species_act: Any = TrivialAction()
    if permutations and n:
        perm = PermutationAction(n, dim=0, group=BlockPermutationGroup(sizes))
        pos_act, vec = ComposedAction(perm, pos_act), ComposedAction(perm, vec)
        species_act = perm

    def potential(pos: Tensor, spec: Tensor) -> dict[str, Tensor]:
        data = atomistic_batch(pos, spec, batch, cutoff=cutoff, num_species=num_species)
        return model(data)

    potential.__name__ = getattr(model, "__name__", None) or type(model).__name__
    outs: dict[str, Any] = {energy_key: TrivialAction()}
    if forces_key is not None:
        outs[forces_key] = vec
    return equivariance_error(potential, JointAction(pos_act, species_act),
                              (positions, species), outs, **kwargs)
