r"""Gaunt tensor product: the product of two spherical functions, in :math:`O(L^3)`.

Luo, Chen and Krishnapriyan, "Enabling Efficient Equivariant Operations in
the Fourier Basis via Gaunt Tensor Products", ICLR 2024.

Read a channel of an e3nn feature as a function on the sphere,
:math:`f(r) = \sum_{l,m} x_{lm} Y_{lm}(r)` (e3nn's real harmonics, see
:mod:`geonorm.o3._gaunt_basis`), and multiply two such functions pointwise.
The harmonic coefficients of the product are

.. math::

    z_{l_3 m_3} = \sum_{l_1 m_1 l_2 m_2} G^{l_3 m_3}_{l_1 m_1, l_2 m_2}\,
        x_{l_1 m_1}\, y_{l_2 m_2},
    \qquad
    G^{l_3 m_3}_{l_1 m_1, l_2 m_2} = \frac{\int_{S^2} Y_{l_1 m_1} Y_{l_2 m_2}
        Y_{l_3 m_3}\, d\Omega}{\int_{S^2} Y_{l_3 m_3}^2\, d\Omega},

the real Gaunt coefficients. They are the Clebsch–Gordan coefficients with
one fixed weight per path: with e3nn's ``wigner_3j`` :math:`C` (unit
Frobenius norm) and "component" harmonics,

.. math::

    G^{(l_1, l_2, l_3)} = \sqrt{(2l_1+1)(2l_2+1)(2l_3+1)}\,
        \left|\begin{pmatrix} l_1 & l_2 & l_3 \\ 0 & 0 & 0 \end{pmatrix}\right|
        C^{(l_1, l_2, l_3)}

(the 3j symbol has the sign :math:`(-1)^{(l_1+l_2+l_3)/2}`; with e3nn's signs
the factor is positive). It vanishes unless :math:`l_1 + l_2 + l_3` is even
(the integrand is odd under :math:`r \mapsto -r` otherwise). Computing the
product on a grid instead of path by path costs :math:`O(L^3)` per channel
instead of the :math:`O(L^6)` of a full Clebsch–Gordan product. See :doc:`/gaunt` for the
method, the conventions and benchmarks.
"""

from __future__ import annotations

import math
import warnings
from functools import cache
from typing import NamedTuple

import numpy as np
import torch
from e3nn import o3
from torch import nn

from .._checks import check_floating, check_int
from .._numerics import compute_dtype
from ._gaunt_backends import (
    BACKENDS,
    backend_arrays,
    fft_forward,
    fft_sizes,
    grid_forward,
    grid_sizes,
)
from ._gaunt_basis import NORMALIZATIONS, coefficient_scale, gauss_legendre, legendre
from ._gaunt_layout import GauntLayout, build_layout, parse_irreps

Tensor = torch.Tensor

__all__ = ["GauntPath", "GauntTensorProduct", "gaunt_coefficients", "gaunt_tensor_product"]

# The batch is processed in chunks whose grid values take about this many bytes:
# the intermediates then stay in cache and in reused allocations (about 2x
# faster on CPU at lmax = 10 than one pass over a batch of 1024).
_CHUNK_BYTES = 2 << 20


def _check_choice(value, name: str, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")


def _layout(irreps_in1, irreps_in2, lmax_out, filter_ir_out, channelwise) -> GauntLayout:
    ir1 = parse_irreps(irreps_in1, "irreps_in1")
    ir2 = parse_irreps(irreps_in2, "irreps_in2")
    check_int(lmax_out, "lmax_out", minimum=0, allow_none=True)
    if not isinstance(channelwise, bool):
        raise TypeError(f"channelwise: expected True or False, got {channelwise!r}")
    if filter_ir_out is not None:
        items = [filter_ir_out] if isinstance(filter_ir_out, (str, o3.Irrep)) else filter_ir_out
        filter_ir_out = tuple(str(ir) for ir in items)
    lay = build_layout(str(ir1), str(ir2), lmax_out, filter_ir_out, channelwise)
    if lay.dropped:
        warnings.warn(
            f"filter_ir_out: {', '.join(lay.dropped)} requested but no Gaunt path of "
            f"{lay.irreps_in1} x {lay.irreps_in2} (lmax_out={lmax_out}) reaches it: the "
            "Gaunt product only couples l1 + l2 + l3 even (no cross product 1o x 1o -> 1e), "
            f"within the triangle |l1 - l2| <= l3 <= l1 + l2; irreps_out is {lay.irreps_out}",
            UserWarning,
            stacklevel=3,
        )
    return lay


class GauntPath(NamedTuple):
    r"""One coupling of :class:`GauntTensorProduct`, in the fields of e3nn's ``Instruction``.

    ``i_in1``, ``i_in2`` index ``irreps_in1`` / ``irreps_in2`` (the entries as
    given), ``i_out`` indexes ``irreps_out``. ``has_weight`` is ``False``: the
    Gaunt product has no free weight per path (see ``weight_numel``).
    ``path_weight`` is the square of the Gaunt factor, so that e3nn's
    ``TensorProduct(..., instructions, irrep_normalization="none",
    path_normalization="none")``, which multiplies each path by
    :math:`\sqrt{\text{path\_weight}}`, computes the same product (when
    every irrep of an input has the input's full multiplicity).
    """

    i_in1: int
    i_in2: int
    i_out: int
    connection_mode: str
    has_weight: bool
    path_weight: float
    path_shape: tuple[int, ...]


def _gaunt_paths(lay: GauntLayout, normalization: str) -> list[GauntPath]:
    c1, c2 = lay.mul1, lay.mul2
    if not lay.channelwise:
        mode = "uvuv"
    else:
        mode = "uuu" if c1 == c2 else ("uvu" if c2 == 1 else "uvv")
    out_index = {(ir.l, ir.p): i for i, (_, ir) in enumerate(lay.irreps_out)}
    paths = []
    for i1, (m1, a) in enumerate(lay.irreps_in1):
        for i2, (m2, b) in enumerate(lay.irreps_in2):
            for l3 in range(abs(a.l - b.l), a.l + b.l + 1, 2):
                i3 = out_index.get((l3, a.p * b.p))
                if i3 is None or m1 == 0 or m2 == 0:
                    continue
                shape = (m1,) if mode == "uuu" else ((m2,) if mode == "uvv" else (m1, m2))
                w = _gaunt_path_weight(a.l, b.l, l3, normalization)
                paths.append(GauntPath(i1, i2, i3, mode, False, w, shape))
    return paths


def _gaunt_path_weight(l1: int, l2: int, l3: int, normalization: str) -> float:
    r"""e3nn's ``path_weight`` of a Gaunt path: :math:`f^2 = \|G^{(l_1,l_2,l_3)}\|_F^2`.

    The Gaunt coefficients are a multiple :math:`G = f C` of e3nn's unit-norm
    ``wigner_3j`` :math:`C`, and e3nn scales a path by the square root of its
    ``path_weight``. By the addition theorem, :math:`\sum_m Y_{lm}(x) Y_{lm}(y)
    = K_l(x \cdot y)` with :math:`K_l = \frac{2l+1}{4\pi} P_l`, so for the
    orthonormal harmonics

    .. math::

        \|G\|_F^2 = \int\!\!\int \prod_{i=1}^3 K_{l_i}(x \cdot y)\, dx\, dy
        = 8\pi^2 \int_{-1}^{1} \prod_{i=1}^3 K_{l_i}(t)\, dt,

    exact with :math:`\lfloor (l_1+l_2+l_3)/2 \rfloor + 1` Gauss–Legendre
    nodes, then times :math:`(s_{l_1} s_{l_2} / s_{l_3})^2` for the chosen
    normalization. :math:`O(l)` work instead of the :math:`O(l^4)` of the
    coefficients themselves, and no Wigner 3j symbol (e3nn 0.4.4 stores them
    only up to :math:`l = 11`).
    """
    d = l1 + l2 + l3
    if d % 2 or not abs(l1 - l2) <= l3 <= l1 + l2:
        return 0.0
    t, w = gauss_legendre(d // 2 + 1)
    kernel = np.ones_like(t)
    for l in (l1, l2, l3):
        kernel = kernel * (2 * l + 1) / (4 * math.pi) * np.polynomial.legendre.legval(
            t, np.eye(l + 1)[l]
        )  # [n_nodes]
    s = coefficient_scale(max(l1, l2, l3), normalization)
    return float(8 * math.pi**2 * (w * kernel).sum() * (s[l1] * s[l2] / s[l3]) ** 2)


def _run(lay: GauntLayout, backend: str, mats, x1: Tensor, x2: Tensor, weights) -> Tensor:
    """``[B, dim1]``, ``[B, dim2]`` -> ``[B, dim_out]`` in chunks of the batch.

    ``weights`` are ``None``, shared ``[mul, J]`` or per sample ``[B, mul, J]``.
    """
    forward = grid_forward if backend == "grid" else fft_forward
    n_a, n_b = grid_sizes(lay) if backend == "grid" else fft_sizes(lay)
    per_sample = n_a * n_b * lay.num_products * lay.mul_out * x1.element_size()
    chunk = max(1, _CHUNK_BYTES // per_sample)
    if x1.shape[0] <= chunk:
        return forward(x1, x2, mats, lay, weights)
    # torch.split (not slicing): its backward is one concatenation, not a zero-filled
    # full-size gradient per chunk.
    n = -(-x1.shape[0] // chunk)
    ws = [w.split(chunk) if w is not None and w.ndim == 3 else (w,) * n for w in weights]
    parts = [
        forward(a, b, mats, lay, tuple(w[i] for w in ws))
        for i, (a, b) in enumerate(zip(torch.split(x1, chunk), torch.split(x2, chunk), strict=True))
    ]
    return torch.cat(parts, dim=0)  # [B, dim_out]


def _flatten_inputs(x1: Tensor, x2: Tensor, lay: GauntLayout) -> tuple[Tensor, Tensor, tuple]:
    check_floating(x1, "x1")
    check_floating(x2, "x2")
    if x1.dtype != x2.dtype:
        raise TypeError(f"x2: expected the dtype of x1 ({x1.dtype}), got {x2.dtype}")
    for x, k, dim in ((x1, 1, lay.dim1), (x2, 2, lay.dim2)):
        if x.ndim < 1 or x.shape[-1] != dim:
            irreps = lay.irreps_in1 if k == 1 else lay.irreps_in2
            raise ValueError(
                f"x{k}: expected shape [..., {dim}] (irreps_in{k} = {irreps}), "
                f"got {list(x.shape)}"
            )
    try:
        batch = torch.broadcast_shapes(x1.shape[:-1], x2.shape[:-1])
    except RuntimeError as err:
        raise ValueError(
            f"x2: expected leading dimensions broadcastable with x1's {list(x1.shape[:-1])}, "
            f"got {list(x2.shape[:-1])}"
        ) from err
    x1 = x1.expand(*batch, x1.shape[-1]).reshape(-1, x1.shape[-1])  # [B, dim1]
    x2 = x2.expand(*batch, x2.shape[-1]).reshape(-1, x2.shape[-1])  # [B, dim2]
    return x1, x2, tuple(batch)


def _matrices(lay, normalization, backend, like: Tensor, dtype) -> dict[str, Tensor]:
    master = backend_arrays(lay, normalization, backend)
    return {
        k: v.to(device=like.device, dtype=dtype if v.is_floating_point() else v.dtype)
        for k, v in master.items()
    }


def gaunt_tensor_product(
    x1: Tensor,
    x2: Tensor,
    irreps_in1: str | o3.Irreps,
    irreps_in2: str | o3.Irreps,
    *,
    lmax_out: int | None = None,
    filter_ir_out=None,
    channelwise: bool = True,
    backend: str = "grid",
    normalization: str = "component",
) -> Tensor:
    r"""Functional Gaunt tensor product (no weights); see :class:`GauntTensorProduct`.

    The layout and the float64 matrices are cached per set of arguments, so
    repeated calls only pay a cast to the input's dtype and device.

    Parameters
    ----------
    x1, x2 : Tensor
        ``[..., irreps_in1.dim]`` and ``[..., irreps_in2.dim]``, leading
        dimensions broadcastable.
    irreps_in1, irreps_in2, lmax_out, filter_ir_out, channelwise, backend, normalization
        As for :class:`GauntTensorProduct`.

    Returns
    -------
    Tensor
        ``[..., irreps_out.dim]`` in the dtype of the inputs.

    Examples
    --------
    >>> one = torch.tensor([1.0, 0.0, 0.0, 0.0])      # the constant function 1 ("0e+1o")
    >>> z = torch.tensor([0.0, 0.0, 0.0, 1.0])        # sqrt(3) r_z
    >>> out = gaunt_tensor_product(one, z, "0e+1o", "0e+1o")   # 1 * f = f, irreps 0e+1o+2e
    >>> torch.allclose(out, torch.cat([z, torch.zeros(5)]), atol=1e-6)
    True
    """
    lay = _layout(irreps_in1, irreps_in2, lmax_out, filter_ir_out, channelwise)
    _check_choice(backend, "backend", BACKENDS)
    _check_choice(normalization, "normalization", NORMALIZATIONS)
    a, b, batch = _flatten_inputs(x1, x2, lay)
    cdt = compute_dtype(a.dtype)
    mats = _matrices(lay, normalization, backend, a, cdt)
    if a.shape[0] == 0:
        return a.new_zeros(*batch, lay.dim_out)
    out = _run(lay, backend, mats, a.to(cdt), b.to(cdt), (None, None, None))
    return out.to(x1.dtype).reshape(*batch, lay.dim_out)  # [..., dim_out]


class GauntTensorProduct(nn.Module):
    r"""Gaunt tensor product of e3nn irreps features (Luo et al., ICLR 2024).

    Channel :math:`c` of each input is the spherical function
    :math:`f_c = \sum_{lm} x[\ldots, o_l + c(2l+1) + l + m] Y_{lm}` (every irrep
    of an input has the same multiplicity :math:`C`, the number of channels;
    absent degrees are zero). The output channel :math:`c` holds the
    harmonic coefficients of :math:`f^{(1)}_c f^{(2)}_c` (``channelwise=True``)
    or, with ``channelwise=False``, channel :math:`u C_2 + v` holds those of
    :math:`f^{(1)}_u f^{(2)}_v` (e3nn's ``"uvuv"`` order). Shapes:
    ``x1 [..., irreps_in1.dim]`` and ``x2 [..., irreps_in2.dim]`` (leading
    dimensions broadcast) give ``[..., irreps_out.dim]``, with

    .. math::

        z_{c, l_3 m_3} = w^{\text{out}}_{c, l_3 p_3} \sum G^{l_3 m_3}_{l_1 m_1, l_2 m_2}\,
            w^{(1)}_{c, l_1 p_1} x_{c, l_1 m_1}\; w^{(2)}_{c, l_2 p_2} y_{c, l_2 m_2}.

    **Parity.** :math:`Y_{lm}` has parity :math:`(-1)^l`, so an irrep
    :math:`(l, p)` with :math:`p \ne (-1)^l` (``0o``, ``1e``, ``2o`` …) is not
    an ordinary function: it is a function times the pseudoscalar
    :math:`\det R`. Inputs are split into an ordinary part (class
    :math:`\sigma = +1`) and a pseudo part (:math:`\sigma = -1`), multiplied
    with :math:`(\det R)^2 = 1`, and output degree :math:`l_3` of class
    :math:`\sigma_1 \sigma_2` is the irrep :math:`(l_3, \sigma_1 \sigma_2
    (-1)^{l_3})`. *Proof of O(3) equivariance:* for :math:`R = \pm Q`,
    :math:`Q \in SO(3)`, e3nn's :math:`D^{l,p}(R) = p^{[\det R < 0]} D^l(Q)` and
    :math:`Y_l(Rr) = D^{l,(-1)^l}(R) Y_l(r)` give
    :math:`(D^{l,p}(R)x) \cdot Y(r) = (\det R)^{[\sigma = -1]} f_x(R^{-1} r)`:
    ordinary parts transform as functions, pseudo parts as functions times
    :math:`\det R`. The pointwise product of :math:`f_1 \circ R^{-1}` and
    :math:`f_2 \circ R^{-1}` is :math:`(f_1 f_2) \circ R^{-1}` with the
    factor :math:`(\det R)^{[\sigma_1 = -1] + [\sigma_2 = -1]}`, and projecting
    onto degree :math:`l_3` commutes with rotations, so the output transforms
    by :math:`D^{l_3, p_3}(R)`, :math:`p_3 = \sigma_1\sigma_2(-1)^{l_3}`. Since
    only :math:`l_1 + l_2 + l_3` even couples, :math:`p_3 = p_1 p_2` on every
    path. Couplings with :math:`l_1 + l_2 + l_3` odd are lost: among them
    ``1o x 1o -> 1e`` (the cross product), ``1o x 2e -> 2o`` and
    ``2e x 2e -> 1e``; the product is symmetric in its two inputs.

    **Any irreps.** An input is :math:`C` channels, :math:`C` its largest
    multiplicity; ``"8x0e+4x1o+2x2e"`` is mapped onto 8 channels of
    ``0e+1o+2e`` (missing channels are zero, repeated irreps are
    concatenated; see :mod:`geonorm.o3._gaunt_layout`). That fixed map costs
    what 8 full channels cost. With ``channelwise`` the second input may have
    a single channel (spherical harmonics of an edge), broadcast over the
    first's: e3nn's ``"uvu"`` convolution.

    **Weights, as e3nn's** ``TensorProduct``. ``weight_numel`` numbers, in
    the order ``weight_in1`` (``weights="factorized"`` only), ``weight_in2``
    (idem), ``weight_out``, each ``[mul, number of irreps]`` flattened
    row-major: ``weight_out[c, j]`` multiplies channel ``c`` of output irrep
    ``j``, ``weight_in1[c, j]`` channel ``c`` of the ``j``-th distinct irrep of
    ``irreps_in1``. ``internal_weights=True`` (the default when
    ``shared_weights``) holds them as parameters. Otherwise ``forward(x1, x2,
    weight)`` takes them: ``[weight_numel]`` with ``shared_weights=True``,
    or ``[..., weight_numel]`` per sample with ``shared_weights=False`` (the
    leading dimensions broadcast with the inputs'), e.g. from a radial MLP per
    edge. :meth:`weight_views` splits such a tensor. :attr:`instructions`
    lists the paths in e3nn's ``Instruction`` fields (:class:`GauntPath`).

    Parameters
    ----------
    irreps_in1, irreps_in2 : str or e3nn.o3.Irreps
        Irreps of the inputs, e.g. ``"32x0e+32x1o+32x2e"`` or
        ``"8x0e+4x1o+2x2e"`` (any irreps; see above). With ``channelwise``
        the channel counts must be equal or one of them 1.
    lmax_out : int, optional
        Largest output degree (default :math:`L_1 + L_2`, the exact product).
    filter_ir_out : sequence of str or e3nn.o3.Irrep, optional
        Keep only these output irreps.
    channelwise : bool
        Multiply channel :math:`c` with channel :math:`c` (``True``), or every
        pair of channels (``False``, output multiplicity :math:`C_1 C_2`).
    backend : {"grid", "fft"}
        ``"grid"``: exact Gauss–Legendre × uniform quadrature on the sphere
        (fastest on CPU); ``"fft"``: the paper's 2-D Fourier basis and FFT
        convolution. Both are exact and :math:`O(L^3)` per channel.
    normalization : {"component", "integral", "norm"}
        e3nn normalization of the harmonics the coefficients refer to, for
        inputs and output alike (default ``"component"``, e3nn's features).
    weights : bool or {"out", "factorized"}, optional
        ``False``: none. ``True`` / ``"out"``: ``weight_out``
        ``[mul_out, len(irreps_out)]``, one per output channel and irrep (as in
        the paper's MACE layers). ``"factorized"``: also ``weight_in1``
        ``[mul1, number of distinct irreps of irreps_in1]`` and ``weight_in2``;
        the weight of path :math:`(l_1, l_2, l_3)` is then the product of the
        three. A free weight per path would cost :math:`O(L^6)` again.
        Internal weights start at one. Default (``None``): ``False``, or
        ``"factorized"`` when ``shared_weights`` or ``internal_weights`` is
        ``False`` (weights are then expected in ``forward``).
    internal_weights : bool, optional
        Hold the weights as parameters; default ``shared_weights``.
    shared_weights : bool, optional
        One set of weights for all samples (default ``True``) or one per
        sample (``False``: ``weight`` ``[..., weight_numel]`` in ``forward``).
    device, dtype
        Of the parameters and precomputed buffers.

    Attributes
    ----------
    irreps_in1, irreps_in2, irreps_out : e3nn.o3.Irreps
    weight_numel : int
        Number of weights (0 without weights).
    instructions : list of GauntPath
        The paths :math:`(l_1, l_2, l_3)` with :math:`l_1 + l_2 + l_3` even.
    grid_shape : tuple of int
        ``(n_theta, n_phi)`` (grid) or ``(n_u, n_phi)`` (fft) of the grid.

    Examples
    --------
    >>> tp = GauntTensorProduct("8x0e+8x1o+8x2e", "8x0e+8x1o+8x2e", lmax_out=2)
    >>> tp.irreps_out
    8x0e+8x1o+8x2e
    >>> tp(torch.randn(5, 72), torch.randn(5, 72)).shape
    torch.Size([5, 72])

    A convolution: node features times edge harmonics, radial weights per edge.

    >>> conv = GauntTensorProduct("8x0e+4x1o+2x2e", "0e+1o+2e", lmax_out=2,
    ...                           shared_weights=False)
    >>> conv.irreps_out, conv.weight_numel
    (8x0e+8x1o+8x2e, 51)
    >>> conv(torch.randn(20, 30), torch.randn(20, 9), torch.randn(20, 51)).shape
    torch.Size([20, 72])
    """

    def __init__(
        self,
        irreps_in1: str | o3.Irreps,
        irreps_in2: str | o3.Irreps,
        *,
        lmax_out: int | None = None,
        filter_ir_out=None,
        channelwise: bool = True,
        backend: str = "grid",
        normalization: str = "component",
        weights: bool | str | None = None,
        internal_weights: bool | None = None,
        shared_weights: bool | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        lay = _layout(irreps_in1, irreps_in2, lmax_out, filter_ir_out, channelwise)
        _check_choice(backend, "backend", BACKENDS)
        _check_choice(normalization, "normalization", NORMALIZATIONS)
        for name, flag in (("internal_weights", internal_weights),
                           ("shared_weights", shared_weights)):
            if flag is not None and not isinstance(flag, bool):
                raise TypeError(f"{name}: expected True, False or None, got {flag!r}")
        shared_weights = True if shared_weights is None else shared_weights
        internal_weights = shared_weights if internal_weights is None else internal_weights
        if internal_weights and not shared_weights:
            raise ValueError("internal_weights: expected False with shared_weights=False "
                             "(per-sample weights come from forward), got True")
        if weights is None:
            weights = False if internal_weights else "factorized"
        if not (isinstance(weights, bool) or weights in ("out", "factorized")):
            raise ValueError(
                f"weights: expected False, True, 'out' or 'factorized', got {weights!r}"
            )
        if weights is False and not internal_weights:
            raise ValueError("weights: expected 'out' or 'factorized' with "
                             "internal_weights=False (weights passed to forward), got False")
        self._layout = lay
        self.irreps_in1, self.irreps_in2, self.irreps_out = (
            lay.irreps_in1, lay.irreps_in2, lay.irreps_out,
        )  # fmt: skip
        self.lmax_out = lay.lmax_out
        self.channelwise = channelwise
        self.backend = backend
        self.normalization = normalization
        self.weights = "out" if weights is True else weights
        self.grid_shape = grid_sizes(lay) if backend == "grid" else fft_sizes(lay)
        dtype = dtype if dtype is not None else torch.get_default_dtype()
        factory = {"device": device, "dtype": dtype}
        shapes = {
            "weight_in1": (lay.mul1, len(lay.slots1)),
            "weight_in2": (lay.mul2, len(lay.slots2)),
            "weight_out": (lay.mul_out, len(lay.slots_out)),
        }
        self.internal_weights = internal_weights
        self.shared_weights = shared_weights
        self._weight_shapes = {
            name: shape for name, shape in shapes.items()
            if self.weights == "factorized" or (self.weights == "out" and name == "weight_out")
        }
        self.weight_numel = sum(math.prod(v) for v in self._weight_shapes.values())
        self.instructions = _gaunt_paths(lay, normalization)
        for name in shapes:
            used = internal_weights and name in self._weight_shapes
            param = nn.Parameter(torch.ones(shapes[name], **factory)) if used else None
            self.register_parameter(name, param)  # [mul, number of irreps]
        arrays = backend_arrays(lay, normalization, backend)
        self._buffer_names = tuple(arrays)
        for name, value in arrays.items():
            kind = dtype if value.is_floating_point() else value.dtype
            self.register_buffer(name, value.to(device=device, dtype=kind), persistent=False)

    def _apply(self, fn, *args, **kwargs):
        # Re-derive the float buffers from the exact float64 masters after any
        # dtype/device change, so that float32 -> float64 loses nothing.
        out = super()._apply(fn, *args, **kwargs)
        master = backend_arrays(self._layout, self.normalization, self.backend)
        for name, value in master.items():
            buf = self._buffers.get(name)
            if buf is not None and buf.is_floating_point():
                self._buffers[name] = value.to(device=buf.device, dtype=buf.dtype)
        return out

    def _mats(self, like: Tensor, dtype: torch.dtype) -> dict[str, Tensor]:
        bufs = {name: self._buffers[name] for name in self._buffer_names}
        ref = bufs["proj"]
        if ref.dtype == dtype and ref.device == like.device:
            return bufs
        return _matrices(self._layout, self.normalization, self.backend, like, dtype)

    def weight_views(self, weight: Tensor | None = None) -> dict[str, Tensor]:
        """``weight`` ``[..., weight_numel]`` (default: the parameters) split into ``[..., mul, J]`` views.

        Keys ``"weight_in1"``, ``"weight_in2"`` (``weights="factorized"``) and ``"weight_out"``.
        """
        if weight is None:
            if not self.internal_weights:
                raise ValueError("weight: expected a tensor (internal_weights=False), got None")
            return {k: getattr(self, k) for k in self._weight_shapes}
        views, start = {}, 0
        for name, shape in self._weight_shapes.items():
            n = math.prod(shape)
            views[name] = weight[..., start:start + n].unflatten(-1, shape)  # [..., mul, J]
            start += n
        return views

    def _weights(self, weight: Tensor | None, batch: tuple, cdt: torch.dtype):
        """The three weights as ``None``, ``[mul, J]`` or ``[B, mul, J]`` in ``cdt``."""
        if self.internal_weights or self.weight_numel == 0:
            if weight is not None:
                raise ValueError(
                    "weight: expected None (the weights are internal parameters"
                    + ("" if self.weight_numel else "; this product has none") + "), got a tensor"
                )
            ws = {k: getattr(self, k) for k in self._weight_shapes}
        else:
            if not isinstance(weight, Tensor):
                raise TypeError(
                    f"weight: expected a tensor [..., {self.weight_numel}] (internal_weights="
                    f"False), got {type(weight).__name__}"
                )
            if weight.ndim < 1 or weight.shape[-1] != self.weight_numel or (
                self.shared_weights and weight.ndim != 1
            ):
                want = f"[{self.weight_numel}]" if self.shared_weights else (
                    f"[..., {self.weight_numel}]")
                raise ValueError(
                    f"weight: expected shape {want} (shared_weights={self.shared_weights}), "
                    f"got {list(weight.shape)}"
                )
            if not self.shared_weights:
                try:
                    weight = weight.expand(*batch, self.weight_numel)
                except RuntimeError as err:
                    raise ValueError(
                        f"weight: expected leading dimensions broadcastable with the inputs' "
                        f"{list(batch)}, got {list(weight.shape[:-1])}"
                    ) from err
                weight = weight.reshape(-1, self.weight_numel)  # [B, weight_numel]
            ws = self.weight_views(weight)
        return tuple(
            None if ws.get(k) is None else ws[k].to(cdt)
            for k in ("weight_in1", "weight_in2", "weight_out")
        )

    def forward(self, x1: Tensor, x2: Tensor, weight: Tensor | None = None) -> Tensor:
        """Gaunt product of ``x1 [..., irreps_in1.dim]`` and ``x2 [..., irreps_in2.dim]``.

        ``weight``: ``[weight_numel]`` or ``[..., weight_numel]`` when the
        weights are not internal (see the class notes), else ``None``.
        """
        lay = self._layout
        a, b, batch = _flatten_inputs(x1, x2, lay)
        cdt = compute_dtype(a.dtype)
        weights = self._weights(weight, batch, cdt)
        if a.shape[0] == 0:
            return a.new_zeros(*batch, lay.dim_out)
        out = _run(lay, self.backend, self._mats(a, cdt), a.to(cdt), b.to(cdt), weights)
        return out.to(x1.dtype).reshape(*batch, lay.dim_out)  # [..., dim_out]

    def extra_repr(self) -> str:
        return (
            f"{self.irreps_in1} x {self.irreps_in2} -> {self.irreps_out}, "
            f"channelwise={self.channelwise}, backend={self.backend!r}, "
            f"normalization={self.normalization!r}, weights={self.weights!r}, "
            f"internal_weights={self.internal_weights}, shared_weights={self.shared_weights}, "
            f"weight_numel={self.weight_numel}, grid_shape={self.grid_shape}"
        )


@cache
def _gaunt_coefficients(l1: int, l2: int, l3: int, normalization: str) -> np.ndarray:
    d = l1 + l2 + l3
    z, w = gauss_legendre(d // 2 + 1)
    n_phi = d + 1
    phi = 2 * math.pi * np.arange(n_phi) / n_phi
    top = max(l1, l2, l3)
    p = legendre(top, z)  # [l, m, n_theta]

    def harmonics(l: int) -> np.ndarray:  # [2l+1, n_theta, n_phi]
        m = np.arange(-l, l + 1)
        az = np.where(
            m[:, None] < 0,
            math.sqrt(2) * np.sin(-m[:, None] * phi[None]),
            math.sqrt(2) * np.cos(m[:, None] * phi[None]),
        )
        az[l] = 1.0
        return p[l, np.abs(m)][:, :, None] * az[:, None, :]

    weights = w[:, None] * (2 * math.pi / n_phi)  # [n_theta, n_phi]
    g = np.einsum("itp,jtp,ktp,tp->ijk", harmonics(l1), harmonics(l2), harmonics(l3), weights)
    # g: [2 l1 + 1, 2 l2 + 1, 2 l3 + 1]
    s = coefficient_scale(top, normalization)
    g = g * (s[l1] * s[l2] / s[l3])  # integral -> chosen normalization
    if d % 2 or not abs(l1 - l2) <= l3 <= l1 + l2:  # selection rules: exactly zero
        g[...] = 0.0
    g[np.abs(g) < 1e-14 * np.abs(g).max(initial=0.0)] = 0.0  # rounding of vanishing entries
    g.setflags(write=False)
    return g


def gaunt_coefficients(
    l1: int, l2: int, l3: int, *, normalization: str = "component", dtype=torch.float64
) -> Tensor:
    r"""Real Gaunt coefficients :math:`G^{l_3 m_3}_{l_1 m_1, l_2 m_2}`, ``[2l1+1, 2l2+1, 2l3+1]``.

    In e3nn's real basis; with ``normalization`` :math:`N` the coefficient of
    :math:`Y^N_{l_3 m_3}` in :math:`Y^N_{l_1 m_1} Y^N_{l_2 m_2}`, i.e.
    :math:`s_{l_1} s_{l_2} / s_{l_3}` times :math:`\int Y_{l_1 m_1} Y_{l_2 m_2}
    Y_{l_3 m_3} d\Omega` with :math:`s_l` as in the module docs
    (:math:`\sqrt{4\pi}` for "component"). Exact Gauss–Legendre quadrature
    in float64, cached.

    >>> g = gaunt_coefficients(1, 1, 0)
    >>> torch.allclose(g[:, :, 0], torch.eye(3, dtype=torch.float64))  # degree-0 part of Y_1m Y_1n
    True
    """
    for name, value in (("l1", l1), ("l2", l2), ("l3", l3)):
        check_int(value, name, minimum=0)
    _check_choice(normalization, "normalization", NORMALIZATIONS)
    return torch.tensor(_gaunt_coefficients(l1, l2, l3, normalization), dtype=dtype)
