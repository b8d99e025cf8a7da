r"""The charged-particle n-body data set of EGNN, frame averaging and CGENN.

Five particles with charges :math:`q_i = \pm 1` (probability ½ each) move under
the Coulomb-like force

.. math::

    F_i = \sum_{j \ne i} q_i q_j \frac{x_i - x_j}{\|x_i - x_j\|^3},

each component clipped to :math:`\pm 100`, integrated with the semi-implicit
(symplectic) Euler method of step :math:`\Delta t = 10^{-3}` — kick, then drift:

.. math::

    v_{n+1} = v_n + \Delta t\, F(x_n), \qquad x_{n+1} = x_n + \Delta t\, v_{n+1}.

Initial positions are :math:`\mathcal N(0, 1)` per coordinate and initial
velocities Gaussian directions rescaled to speed 0.5. A trajectory is 5,000
steps sampled every 100: frame :math:`k` is the state after step
:math:`100 (k + 1)` (49 frames). The task (Satorras, Hoogeboom & Welling,
*E(n) Equivariant Graph Neural Networks*, ICML 2021) is to predict the
positions at frame 40 from the positions and velocities at frame 30 (and the
charges); the splits have 3,000 training, 2,000 validation and 2,000 test
simulations.

What follows the reference code (``n_body_system/synthetic_sim.py`` of the
EGNN repository, ``ChargedParticlesSim``) exactly: the force law and its
sign (like charges repel), the per-component clip at ``0.1 / dt``, the order
kick-then-drift with the first kick before the first drift, the absence of
walls (the reference's ``_clamp`` inside the loop is commented out), the
sampling (the state saved at step ``i`` is the position after ``i`` drifts and
the velocity that drove it), unit masses, float64. What differs: the random
stream (torch's generator instead of NumPy's global one), the summation order
of the forces, and the splits are generated from three fixed seeds instead of
the reference's single run. The data are therefore statistically equivalent
to the published ones, not bit-identical. :func:`generate` stops after the
last stored frame (step 4,100): later steps cannot change earlier frames.

The clip makes the dynamics non-equivariant in rare close encounters (a
clipped force is not rotated with the system); everywhere else the simulator
is E(3)- and permutation-equivariant, as the tests check.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from .._checks import check_int, check_tensor

Tensor = torch.Tensor

__all__ = [
    "NBODY_SPLIT_SIZES",
    "NBodyData",
    "coulomb_forces",
    "energy",
    "generate",
    "load_nbody",
    "simulate",
]

#: Number of simulations per split, as EGNN and Puny et al.
NBODY_SPLIT_SIZES = {"train": 3000, "valid": 2000, "test": 2000}
_SEEDS = {"train": 43_000, "valid": 43_001, "test": 43_002}
DT = 1e-3
MAX_FORCE = 0.1 / DT  # the reference's per-component clip
SAMPLE_EVERY = 100
FRAME_INPUT, FRAME_TARGET = 30, 40
_FORMAT = "v1"  # bump when the simulation or the file layout changes


def coulomb_forces(x: Tensor, charges: Tensor, *, max_force: float | None = MAX_FORCE) -> Tensor:
    r"""Forces :math:`F_i = \sum_{j\ne i} q_i q_j (x_i - x_j) / \|x_i - x_j\|^3`.

    Parameters
    ----------
    x : Tensor ``[..., N, d]``
        Positions.
    charges : Tensor ``[..., N]``
        Charges.
    max_force : float or None
        Clip every component to ``[-max_force, max_force]`` (the reference's
        ``0.1 / dt``); ``None`` disables the clip.

    Returns
    -------
    Tensor ``[..., N, d]``

    Examples
    --------
    >>> x = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]], dtype=torch.float64)
    >>> coulomb_forces(x, torch.tensor([1.0, 1.0], dtype=torch.float64))
    tensor([[-0.2500,  0.0000,  0.0000],
            [ 0.2500,  0.0000,  0.0000]], dtype=torch.float64)
    """
    qq, eye = _pair_charges(charges)
    return _forces(x.movedim(-1, 0), qq, eye, max_force).movedim(0, -1)


def _pair_charges(charges: Tensor) -> tuple[Tensor, Tensor]:
    """:math:`q_i q_j` with a zero diagonal ``[..., N, N]``, and the identity ``[N, N]``."""
    n = charges.shape[-1]
    eye = torch.eye(n, dtype=charges.dtype, device=charges.device)
    return charges.unsqueeze(-1) * charges.unsqueeze(-2) * (1 - eye), eye


def _forces(xt: Tensor, qq: Tensor, eye: Tensor, max_force: float | None) -> Tensor:
    """Forces on coordinate-major positions ``xt`` ``[d, ..., N]`` (the fast layout)."""
    diff = xt.unsqueeze(-1) - xt.unsqueeze(-2)  # [d, ..., N, N]: x_i - x_j
    r2 = (diff * diff).sum(0).add_(eye)  # [..., N, N]; 1 on the diagonal avoids 0/0
    f = (qq * r2.pow_(-1.5) * diff).sum(-1)  # [d, ..., N]
    return f if max_force is None else f.clamp_(-max_force, max_force)


def energy(x: Tensor, v: Tensor, charges: Tensor) -> Tensor:
    r"""Total energy :math:`\tfrac12 \sum_i \|v_i\|^2 + \sum_{i<j} q_i q_j / \|x_i - x_j\|`.

    Shapes ``[..., N, d]``, ``[..., N, d]``, ``[..., N]`` → ``[...]`` (unit masses).
    """
    qq, eye = _pair_charges(charges)
    diff = x.unsqueeze(-2) - x.unsqueeze(-3)  # [..., N, N, d]
    r = torch.sqrt((diff * diff).sum(-1) + eye)  # [..., N, N]
    return 0.5 * (v * v).sum((-1, -2)) + 0.5 * (qq / r).sum((-1, -2))


def simulate(
    positions: Tensor,
    velocities: Tensor,
    charges: Tensor,
    steps: int,
    *,
    dt: float = DT,
    max_force: float | None = MAX_FORCE,
    sample_every: int | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Integrate whole batches of charged systems with semi-implicit Euler.

    Each step is a kick :math:`v \leftarrow v + \Delta t\,F(x)` followed by a
    drift :math:`x \leftarrow x + \Delta t\, v` (:func:`coulomb_forces`).

    Parameters
    ----------
    positions, velocities : Tensor ``[..., N, d]``
        The state to start from (float64 recommended, as the reference).
    charges : Tensor ``[..., N]``
    steps : int
        Number of steps.
    dt, max_force : float
        Step and force clip (``max_force=None``: no clip).
    sample_every : int, optional
        Return the states after steps ``sample_every, 2 sample_every, ...``
        stacked on a new axis ``-3`` (``[..., steps // sample_every, N, d]``)
        instead of the final state only.

    Returns
    -------
    (positions, velocities) : tuple of Tensor

    Examples
    --------
    >>> x = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]], dtype=torch.float64)
    >>> v, q = torch.zeros_like(x), torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    >>> xs, vs = simulate(x, v, q, 10, sample_every=5)
    >>> xs.shape, bool(xs[0, -1, 0, 0] > 0)   # opposite charges attract
    (torch.Size([1, 2, 2, 3]), True)
    """
    for name, t in (("positions", positions), ("velocities", velocities), ("charges", charges)):
        check_tensor(t, name)
    if velocities.shape != positions.shape or positions.ndim < 2:
        raise ValueError(
            f"velocities: expected the shape of positions {list(positions.shape)} "
            f"([..., N, d]), got {list(velocities.shape)}"
        )
    if charges.shape != positions.shape[:-1]:
        raise ValueError(
            f"charges: expected shape {list(positions.shape[:-1])}, got {list(charges.shape)}"
        )
    check_int(steps, "steps", minimum=0)
    check_int(sample_every, "sample_every", allow_none=True)
    qq, eye = _pair_charges(charges.to(positions.dtype))
    x = positions.movedim(-1, 0).clone()  # [d, ..., N]
    v = velocities.movedim(-1, 0).clone()  # [d, ..., N]
    xs, vs = [], []
    for step in range(1, steps + 1):
        v.add_(_forces(x, qq, eye, max_force), alpha=dt)
        x.add_(v, alpha=dt)
        if sample_every is not None and step % sample_every == 0:
            xs.append(x.movedim(0, -1).clone())
            vs.append(v.movedim(0, -1).clone())
    x, v = x.movedim(0, -1), v.movedim(0, -1)
    if sample_every is None:
        return x, v
    if not xs:
        empty = positions.new_zeros((*positions.shape[:-2], 0, *positions.shape[-2:]))
        return empty, empty.clone()
    return torch.stack(xs, dim=-3), torch.stack(vs, dim=-3)  # [..., T, N, d]


@dataclass(frozen=True)
class NBodyData:
    """Simulations of the charged n-body system (float64 tensors).

    Attributes
    ----------
    positions, velocities : Tensor ``[num, N, 3]``
        The state at frame 30 (the model's input).
    charges : Tensor ``[num, N]``
        Charges, ±1.
    target : Tensor ``[num, N, 3]``
        Positions at frame 40 (1,000 steps later).
    trajectory : Tensor ``[num, 11, N, 3]``
        Positions at frames 30, 31, ..., 40 (for plots).
    """

    positions: Tensor
    velocities: Tensor
    charges: Tensor
    target: Tensor
    trajectory: Tensor

    def __len__(self) -> int:
        return self.positions.shape[0]

    def __getitem__(self, index) -> "NBodyData":
        """Select simulations (an int, slice or index tensor); keeps the batch axis."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return NBodyData(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def to(self, *args, **kwargs) -> "NBodyData":
        """Move / cast every tensor (``Tensor.to`` arguments)."""
        return NBodyData(**{f.name: getattr(self, f.name).to(*args, **kwargs) for f in fields(self)})


def generate(num: int, seed: int, *, n_particles: int = 5) -> NBodyData:
    r"""Simulate ``num`` systems from seed ``seed`` (float64, vectorised over systems).

    Examples
    --------
    >>> data = generate(2, seed=0)
    >>> len(data), data.positions.shape, data.trajectory.shape
    (2, torch.Size([2, 5, 3]), torch.Size([2, 11, 5, 3]))
    >>> bool(torch.equal(data.trajectory[:, -1], data.target))
    True
    """
    check_int(num, "num")
    check_int(n_particles, "n_particles", minimum=2)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    gen = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    charges = torch.where(torch.rand(num, n_particles, generator=gen, dtype=f64) < 0.5, -1.0, 1.0)
    x0 = torch.randn(num, n_particles, 3, generator=gen, dtype=f64)
    v0 = torch.randn(num, n_particles, 3, generator=gen, dtype=f64)
    v0 = 0.5 * v0 / torch.linalg.vector_norm(v0, dim=-1, keepdim=True)
    last = SAMPLE_EVERY * (FRAME_TARGET + 1)  # step of the last frame kept (4,100)
    xs, vs = simulate(x0, v0, charges, last, sample_every=SAMPLE_EVERY)  # [num, 41, N, 3]
    return NBodyData(
        positions=xs[:, FRAME_INPUT].contiguous(),
        velocities=vs[:, FRAME_INPUT].contiguous(),
        charges=charges,
        target=xs[:, FRAME_TARGET].contiguous(),
        trajectory=xs[:, FRAME_INPUT : FRAME_TARGET + 1].contiguous(),
    )


def _cache_dir(root: str | os.PathLike | None) -> Path:
    if root is not None:
        return Path(root)
    env = os.environ.get("GEONORM_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "geonorm"
    return base / "nbody"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_nbody(split: str, root: str | os.PathLike | None = None) -> NBodyData:
    r"""The ``"train"`` (3,000), ``"valid"`` (2,000) or ``"test"`` (2,000) split.

    The first call simulates the split (about 10 s per 1,000 systems on one
    core) and caches it as ``charged_v1_<split>.npz`` with its SHA-256 in
    ``charged_v1_<split>.sha256`` under ``root``, else ``$GEONORM_CACHE/nbody``,
    else ``~/.cache/geonorm/nbody``. Later calls verify the checksum and read
    the file; a missing or corrupted file is regenerated (the seeds are
    fixed, so the result is the same).
    """
    if split not in NBODY_SPLIT_SIZES:
        raise ValueError(f"split: expected one of {', '.join(NBODY_SPLIT_SIZES)}, got {split!r}")
    folder = _cache_dir(root)
    path = folder / f"charged_{_FORMAT}_{split}.npz"
    digest = path.with_suffix(".sha256")
    if path.is_file() and digest.is_file() and digest.read_text().strip() == _sha256(path):
        with np.load(path) as cached:
            return NBodyData(**{k: torch.from_numpy(cached[k]) for k in cached.files})
    data = generate(NBODY_SPLIT_SIZES[split], _SEEDS[split])
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **{f.name: getattr(data, f.name).numpy() for f in fields(data)})
    os.replace(tmp, path)
    digest.write_text(_sha256(path) + "\n")
    return data
