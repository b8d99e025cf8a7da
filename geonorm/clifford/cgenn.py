r"""CGENN layers: Clifford group equivariant linear maps, products, gates and norms.

Ruhe, Brandstetter & Forré, "Clifford Group Equivariant Neural Networks",
NeurIPS 2023. Features are ``[batch, channels, 2^n]`` multivectors of one
:class:`~geonorm.clifford.CliffordAlgebra`. Every layer commutes with the
twisted sandwich :math:`\rho(w)` of every versor :math:`w` (so with O(n) for a
non-degenerate metric, and with E(n) once positions are centred), because it
only

* mixes channels within a grade (:math:`\rho(w)` preserves grades and is linear),
* takes weighted geometric products per grade path (:math:`\rho(w)` is an
  algebra automorphism that preserves grades),
* scales grades by functions of the invariants :math:`\bar q(\langle x \rangle_k)`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import check_int, check_real
from .._numerics import eps_for, safe_sqrt
from .algebra import CliffordAlgebra

Tensor = torch.Tensor

__all__ = [
    "MultivectorLinear",
    "MultivectorGradeNorm",
    "SteerableGeometricProduct",
    "MultivectorSiLU",
    "MultivectorLayerNorm",
]


def _check_algebra(algebra: object) -> CliffordAlgebra:
    if not isinstance(algebra, CliffordAlgebra):
        raise TypeError(f"algebra: expected a CliffordAlgebra, got {type(algebra).__name__}")
    return algebra


def check_features(algebra: CliffordAlgebra, x: object, channels: int, name: str = "x") -> Tensor:
    """Raise unless ``x`` is ``[batch..., channels, 2^n]`` of ``algebra``."""
    algebra.check(x, name)
    if x.ndim < 2 or x.shape[-2] != channels:
        raise ValueError(
            f"{name}: expected shape [..., {channels}, {algebra.dim}] (channels, blades of {algebra}), "
            f"got {list(x.shape)}"
        )
    return x


class MultivectorLinear(nn.Module):
    r"""Grade-wise channel mixing with a bias on the scalar part (CGENN eq. 9).

    .. math::

        y_{o} = \sum_{i} \sum_k W_{o i k}\, \langle x_i \rangle_k + b_o,
        \qquad b_o \in \mathrm{Cl}^{(0)}.

    Parameters
    ----------
    algebra : CliffordAlgebra
    in_channels, out_channels : int
    bias : bool
        Learn the scalar bias :math:`b`.
    grade_wise : bool
        One weight per grade (default); ``False`` shares one weight over the
        grades (the embedding layer of CGENN's n-body model).

    Shapes: ``[..., in_channels, 2^n] -> [..., out_channels, 2^n]``.

    >>> alg = CliffordAlgebra((1, 1, 1))
    >>> MultivectorLinear(alg, 4, 2)(torch.randn(5, 4, 8)).shape
    torch.Size([5, 2, 8])
    """

    def __init__(self, algebra: CliffordAlgebra, in_channels: int, out_channels: int, *,
                 bias: bool = True, grade_wise: bool = True, device=None, dtype=None) -> None:  # fmt: skip
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.algebra = _check_algebra(algebra)
        self.in_channels = check_int(in_channels, "in_channels")
        self.out_channels = check_int(out_channels, "out_channels")
        self.grade_wise = bool(grade_wise)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, algebra.n + 1 if grade_wise else 1, **kw))
        self.bias = nn.Parameter(torch.empty(out_channels, **kw)) if bias else None
        self.register_buffer("grade_index", algebra.blade_grade_index(device), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=1 / math.sqrt(self.in_channels))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        check_features(self.algebra, x, self.in_channels)
        w = self.weight[..., self.grade_index] if self.grade_wise else self.weight  # [out, in, 2^n | 1]
        y = torch.einsum("...im,oim->...om", x, w.expand(-1, -1, self.algebra.dim))  # [..., out, 2^n]
        if self.bias is not None:
            y = torch.cat([y[..., :1] + self.bias[:, None], y[..., 1:]], -1)
        return y

    def extra_repr(self) -> str:
        return (f"{self.algebra}, {self.in_channels}, {self.out_channels}, bias={self.bias is not None}, "
                f"grade_wise={self.grade_wise}")  # fmt: skip


class MultivectorGradeNorm(nn.Module):
    r"""Learned partial normalisation of each grade (CGENN's normalisation layer).

    .. math::

        \langle x \rangle_k \mapsto
        \frac{\langle x \rangle_k}{\sigma(a_{ck}) (\|\langle x \rangle_k\| - 1) + 1 + \epsilon},
        \qquad \|\langle x \rangle_k\| = \sqrt{|\bar q(\langle x \rangle_k)|},

    with :math:`a_{ck}` per channel and grade (initialised to ``init``;
    :math:`\sigma(a) \to 1` divides by the norm, :math:`\to 0` leaves ``x``).
    """

    def __init__(self, algebra: CliffordAlgebra, channels: int, *, init: float = 0.0,
                 device=None, dtype=None) -> None:  # fmt: skip
        super().__init__()
        self.algebra = _check_algebra(algebra)
        self.channels = check_int(channels, "channels")
        self.init = check_real(init, "init")
        self.a = nn.Parameter(torch.full((channels, algebra.n + 1), self.init, device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        check_features(self.algebra, x, self.channels)
        norms = self.algebra.grade_norms(x)  # [..., C, n+1]
        denom = torch.sigmoid(self.a) * (norms - 1) + 1 + eps_for(x.dtype)  # [..., C, n+1]
        return x / self.algebra.expand_grades(denom)  # [..., C, 2^n]


class SteerableGeometricProduct(nn.Module):
    r"""The weighted geometric product of CGENN (eq. 10), with a linear first-order term.

    .. math::

        y_c = \frac{1}{\sqrt 2}\Bigl(L_1(x)_c + \sum_{k, l, m}
        w_{c k l m} \bigl\langle \langle x_c \rangle_k\,
        \langle N(L_2(x))_c \rangle_l \bigr\rangle_m\Bigr),

    :math:`L_1, L_2` :class:`MultivectorLinear` (:math:`L_1` with bias),
    :math:`N` :class:`MultivectorGradeNorm`, :math:`w` one weight per channel
    and grade path (:meth:`CliffordAlgebra.weighted_product`).

    Parameters
    ----------
    algebra, channels
    first_order : bool
        Add the linear term :math:`L_1(x)` (default, as the paper).
    normalization_init : float
        Initial logit :math:`a` of :math:`N`.

    >>> alg = CliffordAlgebra((1, 1, 1))
    >>> SteerableGeometricProduct(alg, 3)(torch.randn(2, 3, 8)).shape
    torch.Size([2, 3, 8])
    """

    def __init__(self, algebra: CliffordAlgebra, channels: int, *, first_order: bool = True,
                 normalization_init: float = 0.0, device=None, dtype=None) -> None:  # fmt: skip
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.algebra = _check_algebra(algebra)
        self.channels = check_int(channels, "channels")
        self.right = MultivectorLinear(algebra, channels, channels, bias=False, **kw)
        self.left = MultivectorLinear(algebra, channels, channels, **kw) if first_order else None
        self.normalization = MultivectorGradeNorm(algebra, channels, init=normalization_init, **kw)
        g = algebra.n + 1
        self.weight = nn.Parameter(torch.empty(channels, g, g, g, **kw))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=1 / math.sqrt(self.algebra.n + 1))

    def forward(self, x: Tensor) -> Tensor:
        check_features(self.algebra, x, self.channels)
        right = self.normalization(self.right(x))  # [..., C, 2^n]
        out = self.algebra.weighted_product(x, right, self.weight)  # [..., C, 2^n]
        if self.left is None:
            return out
        return (self.left(x) + out) / math.sqrt(2)


class MultivectorSiLU(nn.Module):
    r"""Gate each grade by a sigmoid of its invariant (CGENN).

    .. math::

        \langle x_c \rangle_k \mapsto \sigma\bigl(a_{ck}\, s_{ck}(x) + b_{ck}\bigr)\,
        \langle x_c \rangle_k,
        \qquad s_{c0} = x_{c,0},\quad s_{ck} = \bar q(\langle x_c \rangle_k)\ (k \ge 1).

    >>> alg = CliffordAlgebra((1, 1, 1))
    >>> MultivectorSiLU(alg, 3)(torch.randn(2, 3, 8)).shape
    torch.Size([2, 3, 8])
    """

    def __init__(self, algebra: CliffordAlgebra, channels: int, *, device=None, dtype=None) -> None:
        super().__init__()
        self.algebra = _check_algebra(algebra)
        self.channels = check_int(channels, "channels")
        self.a = nn.Parameter(torch.ones(channels, algebra.n + 1, device=device, dtype=dtype))
        self.b = nn.Parameter(torch.zeros(channels, algebra.n + 1, device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        check_features(self.algebra, x, self.channels)
        inv = self.algebra.grade_quadratic_forms(x)  # [..., C, n+1]
        inv = torch.cat([x[..., :1], inv[..., 1:]], -1)  # the scalar itself for grade 0
        gate = torch.sigmoid(self.a * inv + self.b)  # [..., C, n+1]
        return x * self.algebra.expand_grades(gate)  # [..., C, 2^n]


class MultivectorLayerNorm(nn.Module):
    r"""Divide by the mean multivector norm over channels, times a learned scale (CGENN).

    .. math::

        x_c \mapsto \gamma_c\, \frac{x_c}{\frac1C \sum_{c'} \|x_{c'}\| + \epsilon},
        \qquad \|x\| = \Bigl(\sum_k |\bar q(\langle x \rangle_k)|\Bigr)^{1/2},

    a norm that is invariant for every signature (the sum of grade-wise
    :math:`|\bar q|` cannot cancel) and safe at zero.

    >>> alg = CliffordAlgebra((1, 1, 1))
    >>> MultivectorLayerNorm(alg, 3)(torch.randn(2, 3, 8)).shape
    torch.Size([2, 3, 8])
    """

    def __init__(self, algebra: CliffordAlgebra, channels: int, *, device=None, dtype=None) -> None:
        super().__init__()
        self.algebra = _check_algebra(algebra)
        self.channels = check_int(channels, "channels")
        self.weight = nn.Parameter(torch.ones(channels, device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        check_features(self.algebra, x, self.channels)
        norm = safe_sqrt(self.algebra.grade_quadratic_forms(x).abs().sum(-1))  # [..., C]
        scale = norm.mean(-1, keepdim=True) + eps_for(x.dtype)  # [..., 1]
        return x * (self.weight / scale)[..., None]  # [..., C, 2^n]
