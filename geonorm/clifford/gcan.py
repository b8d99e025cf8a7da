r"""GCAN layers: learned versors acting by sandwich products, combined linearly.

Ruhe, Gupta, de Keninck, Welling & Brandstetter, "Geometric Clifford Algebra
Networks", ICML 2023. A group-action linear layer maps channels by

.. math::

    y_o = \sum_i w_{oi}\, a_{oi}\, x_i\, a_{oi}^{-1} \;(+\, b_o),

with :math:`a_{oi}` unit versors (rotors in :math:`\mathrm{Cl}(3,0)`, motors —
rotations and translations — in projective GA :math:`\mathrm{Cl}(3,0,1)`) and
:math:`w_{oi}` scalars. Each term is an isometry only if :math:`a_{oi}` is
exactly normalised (:math:`a \tilde a = 1`); here that holds by construction
after any parameter update:

* ``parametrization="exp"``: :math:`a = \exp(B)`, :math:`B` a learned
  bivector (any signature; :meth:`CliffordAlgebra.exp`);
* ``parametrization="normalize"``: :math:`a` a learned even multivector,
  divided every forward pass by :math:`\sqrt{a \tilde a}`; for
  :math:`a \tilde a = s + p I` with a null pseudoscalar :math:`I` (projective
  GA) the square root of the dual number,
  :math:`(s + pI)^{-1/2} = s^{-1/2}(1 - \tfrac{p}{2s} I)`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import check_int
from .._numerics import eps_for
from .algebra import CliffordAlgebra
from .cgenn import _check_algebra, check_features

Tensor = torch.Tensor

__all__ = ["GroupActionLinear", "MultivectorScalarGate", "normalize_versor", "pga_points", "pga_point_coordinates"]

_PARAMETRIZATIONS = ("exp", "normalize")


def _dual_number_case(algebra: CliffordAlgebra) -> bool:
    """True if :math:`a \\tilde a` of every even ``a`` lies in span{1, I} with I null (checked on random even ``a``)."""
    gen = torch.Generator().manual_seed(0)
    a = algebra.grade_projection(torch.randn(4, algebra.dim, generator=gen, dtype=torch.float64),
                                 [k for k in algebra.grades if k % 2 == 0])  # fmt: skip
    m = algebra.geometric_product(a, algebra.reverse(a))
    rest = m.clone()
    rest[..., 0] = 0
    if algebra.metric.count(0) == 1 and algebra.n % 2 == 0:
        rest[..., -1] = 0
    return bool(rest.abs().max() <= 1e-12 * m.abs().max())


def normalize_versor(algebra: CliffordAlgebra, a: Tensor) -> Tensor:
    r"""``a`` divided by :math:`\sqrt{a \tilde a}`, so that :math:`a \tilde a = 1` (``[..., 2^n]``).

    Valid where :math:`a \tilde a = s + pI`, :math:`s > 0`, :math:`I^2 = 0`
    (or :math:`p = 0`): every even element of :math:`\mathrm{Cl}(n)`,
    :math:`n \le 3`, and of projective GA :math:`\mathrm{Cl}(3,0,1)`.

    >>> alg = CliffordAlgebra((0, 1, 1, 1))
    >>> a = alg.grade_projection(torch.randn(16, dtype=torch.float64), [0, 2, 4])
    >>> m = normalize_versor(alg, a)
    >>> aa = alg.geometric_product(m, alg.reverse(m))
    >>> bool(torch.allclose(aa, torch.eye(16, dtype=torch.float64)[0], atol=1e-12))
    True
    """
    m = algebra.geometric_product(a, algebra.reverse(a))  # [..., 2^n]: s + p I
    s = m[..., :1]
    if bool((s <= 0).any()):
        raise ValueError("a: expected versors with a positive squared norm a~a, got a null or negative one")
    out = a / s.sqrt()
    if algebra.metric.count(0) == 1 and algebra.n % 2 == 0:
        p = m[..., -1:]
        pseudo = torch.zeros_like(a)
        pseudo[..., -1:] = -p / (2 * s)
        pseudo[..., 0] = 1
        out = algebra.geometric_product(out, pseudo)  # a s^{-1/2} (1 - p/(2s) I)
    return out


class GroupActionLinear(nn.Module):
    r"""The GCAN group-action linear layer :math:`y_o = \sum_i w_{oi}\, a_{oi} x_i \tilde a_{oi} + b_o`.

    Parameters
    ----------
    algebra : CliffordAlgebra
        :math:`\mathrm{Cl}(3,0,1)` (``(0, 1, 1, 1)``) gives motors, i.e. E(3).
    in_channels, out_channels : int
    parametrization : {"exp", "normalize"}
        How :math:`a_{oi}` stays a unit versor (module notes).
    bias : bool
        A scalar bias :math:`b_o` (invariant, so equivariance is kept).

    Shapes: ``[..., in_channels, 2^n] -> [..., out_channels, 2^n]``.

    >>> alg = CliffordAlgebra((0, 1, 1, 1))
    >>> layer = GroupActionLinear(alg, 3, 2)
    >>> layer(torch.randn(5, 3, 16)).shape
    torch.Size([5, 2, 16])
    """

    def __init__(self, algebra: CliffordAlgebra, in_channels: int, out_channels: int, *,
                 parametrization: str = "exp", bias: bool = False, device=None, dtype=None) -> None:  # fmt: skip
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.algebra = _check_algebra(algebra)
        self.in_channels = check_int(in_channels, "in_channels")
        self.out_channels = check_int(out_channels, "out_channels")
        if parametrization not in _PARAMETRIZATIONS:
            raise ValueError(f"parametrization: expected one of {', '.join(_PARAMETRIZATIONS)}, got {parametrization!r}")
        if parametrization == "normalize" and not _dual_number_case(algebra):
            raise ValueError(
                f"parametrization: 'normalize' needs a~a in span{{1, I}} (n <= 3 or projective GA), "
                f"not so for {algebra}; use 'exp'"
            )
        self.parametrization = parametrization
        grades = [2] if parametrization == "exp" else [k for k in algebra.grades if k % 2 == 0]
        self.register_buffer("action_mask", algebra.grade_mask(grades).to(dtype or torch.get_default_dtype()),
                             persistent=False)  # fmt: skip
        self.action = nn.Parameter(torch.empty(out_channels, in_channels, algebra.dim, **kw))
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, **kw))
        self.bias = nn.Parameter(torch.empty(out_channels, **kw)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            nn.init.normal_(self.action, std=0.5)
            if self.parametrization == "normalize":
                self.action[..., 0] += 1
            self.action.mul_(self.action_mask.to(self.action))
        nn.init.normal_(self.weight, std=1 / math.sqrt(self.in_channels))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def versors(self) -> Tensor:
        r"""The unit versors :math:`a_{oi}`, ``[out, in, 2^n]`` (:math:`a \tilde a = 1`)."""
        raw = self.action * self.action_mask.to(self.action)
        if self.parametrization == "exp":
            return self.algebra.exp(raw)
        return normalize_versor(self.algebra, raw)

    def forward(self, x: Tensor) -> Tensor:
        check_features(self.algebra, x, self.in_channels)
        alg = self.algebra
        a = self.versors()  # [O, I, 2^n]
        # the sandwich x -> a x a~ is linear in x: its matrix L_a R_a~ (row k: a e_k a~), once per forward
        mat = alg.left_multiplication(a) @ alg.right_multiplication(alg.reverse(a))  # [O, I, k, m]
        y = torch.einsum("...ik,oikm,oi->...om", x, mat, self.weight)  # [..., O, 2^n]
        if self.bias is not None:
            y = torch.cat([y[..., :1] + self.bias[:, None], y[..., 1:]], -1)
        return y

    def extra_repr(self) -> str:
        return (f"{self.algebra}, {self.in_channels}, {self.out_channels}, "
                f"parametrization={self.parametrization!r}, bias={self.bias is not None}")  # fmt: skip


class MultivectorScalarGate(nn.Module):
    r"""GCAN's activation: each multivector scaled by a SiLU-type gate of its scalar part.

    .. math:: x_c \mapsto \sigma(a_c \langle x_c \rangle_0 + b_c)\, x_c,

    the scalar part being invariant under every sandwich :math:`a x \tilde a`.

    >>> alg = CliffordAlgebra((0, 1, 1, 1))
    >>> MultivectorScalarGate(alg, 2)(torch.randn(3, 2, 16)).shape
    torch.Size([3, 2, 16])
    """

    def __init__(self, algebra: CliffordAlgebra, channels: int, *, device=None, dtype=None) -> None:
        super().__init__()
        self.algebra = _check_algebra(algebra)
        self.channels = check_int(channels, "channels")
        self.a = nn.Parameter(torch.ones(channels, device=device, dtype=dtype))
        self.b = nn.Parameter(torch.zeros(channels, device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        check_features(self.algebra, x, self.channels)
        return x * torch.sigmoid(self.a * x[..., 0] + self.b).unsqueeze(-1)  # [..., C, 2^n]


def pga_points(algebra: CliffordAlgebra, x: Tensor) -> Tensor:
    r"""Points of :math:`\mathbb{R}^3` as trivectors of plane-based PGA :math:`\mathrm{Cl}(3,0,1)`.

    :math:`P = e_{123} - x_1 e_{023} + x_2 e_{013} - x_3 e_{012}` (``e_0`` null),
    ``[..., 3] -> [..., 16]``; motors move them rigidly, :math:`P \mapsto M P \tilde M`.
    """
    if algebra.metric != (0, 1, 1, 1):
        raise ValueError(f"algebra: expected Cl(3,0,1) with metric (0, 1, 1, 1), got {algebra.metric}")
    if x.shape[-1] != 3:
        raise ValueError(f"x: expected points of shape [..., 3], got {list(x.shape)}")
    out = x.new_zeros(*x.shape[:-1], 16)
    blades = algebra.blades
    out[..., blades.index((1, 2, 3))] = 1
    out[..., blades.index((0, 2, 3))] = -x[..., 0]
    out[..., blades.index((0, 1, 3))] = x[..., 1]
    out[..., blades.index((0, 1, 2))] = -x[..., 2]
    return out


def pga_point_coordinates(algebra: CliffordAlgebra, p: Tensor) -> Tensor:
    """Inverse of :func:`pga_points` (dividing by the :math:`e_{123}` weight), ``[..., 16] -> [..., 3]``."""
    algebra.check(p, "p")
    b = algebra.blades
    w = p[..., b.index((1, 2, 3))]
    safe = torch.where(w.abs() > eps_for(p.dtype), w, torch.ones_like(w))
    coords = torch.stack([-p[..., b.index((0, 2, 3))], p[..., b.index((0, 1, 3))], -p[..., b.index((0, 1, 2))]], -1)
    return coords / safe.unsqueeze(-1)
