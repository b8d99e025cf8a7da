r"""Reference CGENN networks: the multivector MLP and the n-body message-passing model.

The architecture of CGENN's n-body experiment (Ruhe, Brandstetter & Forré,
NeurIPS 2023, section 5): charges enter as scalars, centred positions and
velocities as vectors of :math:`\mathrm{Cl}(3, 0)`; every message and node
update is a multivector MLP (linear, gate, steerable geometric product,
layer norm); the prediction is the vector part of the read-out, added to the
centred input positions. E(3)-equivariant: O(3) through the layers, the
translations through the centring.
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_int, check_real
from .algebra import CliffordAlgebra
from .cgenn import MultivectorLayerNorm, MultivectorLinear, MultivectorSiLU, SteerableGeometricProduct

Tensor = torch.Tensor

__all__ = ["MultivectorMLP", "NBodyCGENN"]


class MultivectorMLP(nn.Sequential):
    r"""``layers`` blocks of linear → :class:`MultivectorSiLU` → :class:`SteerableGeometricProduct` → :class:`MultivectorLayerNorm`.

    ``[..., in_channels, 2^n] -> [..., out_channels, 2^n]``.

    >>> alg = CliffordAlgebra((1, 1, 1))
    >>> MultivectorMLP(alg, 3, 8, 2)(torch.randn(4, 3, 8)).shape
    torch.Size([4, 2, 8])
    """

    def __init__(self, algebra: CliffordAlgebra, in_channels: int, hidden: int, out_channels: int, *,
                 layers: int = 2, device=None, dtype=None) -> None:  # fmt: skip
        kw = {"device": device, "dtype": dtype}
        check_int(layers, "layers")
        blocks = []
        widths = [in_channels] + [hidden] * (layers - 1) + [out_channels]
        for a, b in zip(widths[:-1], widths[1:]):
            blocks += [MultivectorLinear(algebra, a, b, **kw), MultivectorSiLU(algebra, b, **kw),
                       SteerableGeometricProduct(algebra, b, **kw), MultivectorLayerNorm(algebra, b, **kw)]  # fmt: skip
        super().__init__(*blocks)


class NBodyCGENN(nn.Module):
    r"""CGENN for the charged n-body problem: ``model(pos, vel, charges) -> positions``.

    Node features (3 channels): the charge :math:`q_i` (scalar), the centred
    position :math:`x_i - \bar x` and the velocity :math:`v_i` (vectors),
    embedded by a shared-grade :class:`MultivectorLinear` to ``hidden``
    channels. Each of ``layers`` rounds on the complete graph:

    .. math::

        m_{ij} = \phi\bigl(h_i, h_j, q_i q_j,\, x_i - x_j\bigr), \qquad
        h_i \leftarrow h_i + \psi\Bigl(h_i, \tfrac{1}{N-1} \sum_{j \ne i} m_{ij}\Bigr),

    with :math:`\phi, \psi` :class:`MultivectorMLP`. The output is
    :math:`x_i + t\, v_i + \langle \mathrm{Lin}(h_i) \rangle_1` (``horizon``
    :math:`t`, the time to the target; CGENN's model is ``horizon=0``).

    Shapes: ``pos``, ``vel`` ``[B, N, 3]``, ``charges`` ``[B, N]`` → ``[B, N, 3]``.

    >>> m = NBodyCGENN(hidden=4, layers=1)
    >>> m(torch.randn(2, 5, 3), torch.randn(2, 5, 3), torch.randn(2, 5)).shape
    torch.Size([2, 5, 3])
    """

    def __init__(self, hidden: int = 28, layers: int = 4, *, horizon: float = 1.0,
                 device=None, dtype=None) -> None:  # fmt: skip
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.algebra = alg = CliffordAlgebra((1, 1, 1))
        self.hidden = check_int(hidden, "hidden")
        self.horizon = check_real(horizon, "horizon")
        check_int(layers, "layers")
        self.embed = MultivectorLinear(alg, 3, hidden, grade_wise=False, **kw)
        self.edge = nn.ModuleList(MultivectorMLP(alg, 2 * hidden + 2, hidden, hidden, **kw) for _ in range(layers))
        self.node = nn.ModuleList(MultivectorMLP(alg, 2 * hidden, hidden, hidden, **kw) for _ in range(layers))
        self.out = MultivectorLinear(alg, hidden, 1, **kw)

    def forward(self, pos: Tensor, vel: Tensor, charges: Tensor) -> Tensor:
        alg = self.algebra
        b, n, _ = pos.shape
        mean = pos.mean(1, keepdim=True)  # [B, 1, 3]
        x = pos - mean  # [B, N, 3]
        q = charges.unsqueeze(-1)  # [B, N, 1]
        h = torch.stack([alg.embed(q, 0), alg.embed(x, 1), alg.embed(vel, 1)], 2)  # [B, N, 3, 8]
        h = self.embed(h)  # [B, N, H, 8]
        qq = alg.embed((q.unsqueeze(2) * q.unsqueeze(1)), 0)  # [B, N, N, 8]
        rel = alg.embed(x.unsqueeze(2) - x.unsqueeze(1), 1)  # [B, N, N, 8]
        edge_attr = torch.stack([qq, rel], 3)  # [B, N, N, 2, 8]
        off = ~torch.eye(n, dtype=torch.bool, device=pos.device)
        ii, jj = off.nonzero(as_tuple=True)  # the N (N - 1) directed edges
        for edge, node in zip(self.edge, self.node):
            e_in = torch.cat([h[:, ii], h[:, jj], edge_attr[:, ii, jj]], 2)  # [B, E, 2H+2, 8]
            m = edge(e_in)  # [B, E, H, 8]
            agg = torch.zeros_like(h).index_add_(1, ii, m) / (n - 1)  # [B, N, H, 8]
            h = h + node(torch.cat([h, agg], 2))  # [B, N, H, 8]
        return pos + self.horizon * vel + self.out(h)[..., 0, 1:4]  # [B, N, 3]
