r"""Equivariant layer and RMS normalization of e3nn irreps features.

Features are ``[..., irreps.dim]`` tensors in e3nn's ``mul x ir`` layout. Equal
irreps are merged: the *block* :math:`b = (l, p)` gathers every channel of that
irrep in ``irreps`` (so ``"2x1o+4x0e+1x1o"`` has a ``1o`` block of multiplicity
3), with multiplicity :math:`m_b`, dimension :math:`d_b = 2l+1` and vectors
:math:`x_{b,u} \in \mathbb{R}^{d_b}`, :math:`u = 1..m_b`. Per sample:

1. (LayerNorm only) centre the ``0e`` scalars:
   :math:`\tilde x_{0e,u} = x_{0e,u} - \frac{1}{m_{0e}}\sum_v x_{0e,v}`; every
   other block is left as is (:math:`\tilde x_b = x_b`), since subtracting
   anything from a ``0o`` or :math:`l > 0` vector breaks equivariance;
2. form the block statistic

   .. math::

       \sigma_b^2 = \frac{1}{m_b}\sum_{u=1}^{m_b} \frac{\|\tilde x_{b,u}\|^2}{d_b}
       \quad (\texttt{"component"}), \qquad
       \sigma_b^2 = \frac{1}{m_b}\sum_{u=1}^{m_b} \|\tilde x_{b,u}\|^2
       \quad (\texttt{"norm"}),

   and, with ``scope="balanced"``, replace it for every :math:`l > 0` block by
   the degree-balanced average over the set :math:`B` of :math:`l > 0` blocks,
   :math:`\sigma_>^2 = \frac{1}{|B|}\sum_{b \in B} \sigma_b^2` (scalar blocks
   ``0e``/``0o`` keep their own);
3. :math:`y_{b,u} = w_{b,u}\, \tilde x_{b,u} / \sqrt{\sigma_b^2 + \epsilon}
   + \beta_u [b = 0e]`: one weight per channel scales the whole vector, the
   bias goes to ``0e`` only.

Each step commutes with :math:`D(R)` (block statistics are built from norms,
which O(3) preserves), so the layers are O(3)-equivariant, parity included.
With ``"component"`` and ``"balanced"`` this is the separable-:math:`S^2`
layer norm of EquiformerV2 (Liao et al., 2024, ``layer_norm_sh`` with
``std_balance_degrees``): there, :math:`\sigma_>^2 = \frac{1}{L}\sum_{l=1}^{L}
\frac{1}{C}\sum_c \frac{\|x_{l,c}\|^2}{2l+1}`, which is the formula above when
each degree occurs once, with :math:`C` channels.

Numerics: statistics and the output are computed in
:func:`geonorm._numerics.compute_dtype` of the input (float32 for
float16/bfloat16, also under ``torch.autocast``, whose matmul downcasting is
switched off inside) and cast back to the input dtype. ``eps`` is added to
:math:`\sigma^2` before :func:`torch.rsqrt`, so all-zero features give zero
outputs and finite gradients; ``eps=None`` takes
:func:`geonorm._numerics.eps_for` of the compute dtype (1e-6 in float32,
1e-12 in float64).
"""

from __future__ import annotations

import contextlib
import math

import torch
from e3nn import o3
from torch import nn

from .._checks import check_floating
from .._numerics import compute_dtype, eps_for
from ._irreps_utils import (
    NORMALIZATIONS,
    SCOPES,
    IrrepsNormFunction,
    IrrepsNormLayout,
    check_option,
    reference_irreps_norm,
)
from ._segments import make_segments

Tensor = torch.Tensor

__all__ = [
    "EquivariantLayerNorm",
    "EquivariantRMSNorm",
    "IrrepsNormLayout",
    "equivariant_layer_norm",
    "equivariant_rms_norm",
]


def _check_eps(eps: object) -> float | None:
    if eps is None:
        return None
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < math.inf:
        raise ValueError(f"eps: expected a positive finite float or None, got {eps!r}")
    return float(eps)


def _layout(irreps, normalization: str, scope: str, device: torch.device) -> IrrepsNormLayout:
    check_option(normalization, "normalization", NORMALIZATIONS)
    check_option(scope, "scope", SCOPES)
    if isinstance(irreps, IrrepsNormLayout):
        if (irreps.normalization, irreps.scope) != (normalization, scope):
            raise ValueError(
                f"irreps: the layout was built for normalization={irreps.normalization!r}, "
                f"scope={irreps.scope!r}, got normalization={normalization!r}, scope={scope!r}"
            )
        return irreps
    return IrrepsNormLayout(irreps, normalization=normalization, scope=scope, device=device)


def _check_param(p: Tensor | None, size: int, name: str, what: str) -> None:
    if p is None:
        return
    check_floating(p, name)
    if p.shape != (size,):
        raise ValueError(f"{name}: expected shape [{size}] ({what}), got {list(p.shape)}")


def _irreps_norm(
    x, irreps, weight, bias, *, centre, eps, normalization, scope, batch, num_segments, fast=True
):
    check_floating(x, "x")
    lay = _layout(irreps, normalization, scope, x.device)
    if x.ndim == 0 or x.shape[-1] != lay.dim:
        raise ValueError(
            f"x: expected shape [..., {lay.dim}] (irreps {lay.irreps}), got {list(x.shape)}"
        )
    _check_param(weight, lay.num_channels, "weight", "one per multiplicity channel")
    _check_param(bias, lay.num_scalars, "bias", "one per 0e channel")
    eps = _check_eps(eps)
    cd = compute_dtype(x.dtype)
    eps = eps_for(cd) if eps is None else eps
    seg = None if batch is None else make_segments(batch, x, num_segments, cd)
    lead = x.shape[:-1]
    no_autocast = (
        torch.autocast(x.device.type, enabled=False)
        if torch.amp.is_autocast_available(x.device.type)
        else contextlib.nullcontext()
    )
    with no_autocast:  # statistics in cd, whatever autocast would do to the matmuls
        x2 = x.reshape(-1, lay.dim).to(cd).contiguous()  # [N, dim]
        w = None if weight is None else weight.to(cd)
        b = None if bias is None or lay.num_scalars == 0 else bias.to(cd)
        if fast:
            out = IrrepsNormFunction.apply(
                x2, w, b, lay.channel, lay.scalar_pos,
                None if seg is None else seg.batch, None if seg is None else seg.counts,
                lay.entries, lay.num_slots, eps, centre,
            )  # fmt: skip
        else:
            out = reference_irreps_norm(x2, w, b, lay.entries, lay.num_slots, eps, centre, seg)
    return out.reshape(*lead, lay.dim).to(x.dtype)


def equivariant_layer_norm(
    x: Tensor,
    irreps: str | o3.Irreps | IrrepsNormLayout,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    *,
    eps: float | None = 1e-5,
    normalization: str = "component",
    scope: str = "per_irrep",
    batch: Tensor | None = None,
    num_segments: int | None = None,
) -> Tensor:
    r"""Equivariant layer norm of irreps features (Ba et al., 2016; Liao et al., 2024).

    .. math::

        y_{b,u} = w_{b,u}\,\frac{\tilde x_{b,u}}{\sqrt{\sigma_b^2 + \epsilon}}
        + \beta_u\,[b = 0e],

    with ``0e`` centred (:math:`\tilde x`) and :math:`\sigma_b^2` as in
    :mod:`geonorm.o3.norm`. Before the affine map, per sample (or segment),
    the ``0e`` channels have mean zero and every block's statistic is
    :math:`\sigma_b^2 / (\sigma_b^2 + \epsilon)`.

    Parameters
    ----------
    x : Tensor
        Features ``[..., irreps.dim]``; ``[N, irreps.dim]`` in segment mode.
    irreps : str, e3nn.o3.Irreps or IrrepsNormLayout
        Irreps of the features, or a layout precomputed for them (the modules
        pass theirs).
    weight : Tensor, optional
        ``[irreps.num_irreps]``: one weight per multiplicity channel, in the
        order of ``irreps``, multiplying the channel's whole vector.
    bias : Tensor, optional
        ``[m_0e]``: one bias per ``0e`` channel, in order.
    eps : float or None
        Added to each statistic :math:`\sigma^2`; ``None``:
        :func:`~geonorm._numerics.eps_for` of the compute dtype.
    normalization : {"component", "norm"}
        Mean square component or mean squared norm (formulas in
        :mod:`geonorm.o3.norm`).
    scope : {"per_irrep", "balanced"}
        One statistic per irrep, or one degree-balanced statistic shared by all
        :math:`l > 0` irreps.
    batch : LongTensor or IntTensor, optional
        Segment id ``[N]`` of each row of ``x`` (graph mode; int64 or int32):
        statistics are then averaged over all nodes of a segment as well as
        over channels.
    num_segments : int, optional
        Number of segments; default ``batch.max() + 1`` (a host sync, and a
        graph break under ``torch.compile``: pass it to avoid both). Ids
        outside ``0 .. num_segments - 1`` raise ``ValueError`` (checked in
        eager mode; not under ``torch.compile``).

    Returns
    -------
    Tensor
        Same shape and dtype as ``x``.
    Examples
    --------
    >>> gen = torch.Generator().manual_seed(0)
    >>> x = torch.randn(5, 10, generator=gen)        # "4x0e+2x1o": 4 + 2*3
    >>> y = equivariant_layer_norm(x, "4x0e+2x1o", eps=1e-6)
    >>> torch.allclose(y[:, :4].mean(-1), torch.zeros(5), atol=1e-6)
    True
    >>> torch.allclose(y[:, 4:].pow(2).mean(-1), torch.ones(5), atol=1e-4)
    True
    """
    return _irreps_norm(
        x, irreps, weight, bias, centre=True, eps=eps, normalization=normalization,
        scope=scope, batch=batch, num_segments=num_segments,
    )  # fmt: skip


def equivariant_rms_norm(
    x: Tensor,
    irreps: str | o3.Irreps | IrrepsNormLayout,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    *,
    eps: float | None = 1e-5,
    normalization: str = "component",
    scope: str = "per_irrep",
    batch: Tensor | None = None,
    num_segments: int | None = None,
) -> Tensor:
    r"""Equivariant RMS norm of irreps features (Zhang & Sennrich, 2019): no centring.

    .. math::

        y_{b,u} = w_{b,u}\,\frac{x_{b,u}}{\sqrt{\sigma_b^2 + \epsilon}}
        + \beta_u\,[b = 0e],

    :math:`\sigma_b^2` as in :mod:`geonorm.o3.norm`, computed from the raw
    ``x`` (the ``0e`` block is not centred).

    Parameters
    ----------
    x : Tensor
        Features ``[..., irreps.dim]``; ``[N, irreps.dim]`` in segment mode.
    irreps : str, e3nn.o3.Irreps or IrrepsNormLayout
        Irreps of the features, or a layout precomputed for them (the modules
        pass theirs).
    weight : Tensor, optional
        ``[irreps.num_irreps]``: one weight per multiplicity channel, in the
        order of ``irreps``, multiplying the channel's whole vector.
    bias : Tensor, optional
        ``[m_0e]``: one bias per ``0e`` channel, in order.
    eps : float or None
        Added to each statistic :math:`\sigma^2`; ``None``:
        :func:`~geonorm._numerics.eps_for` of the compute dtype.
    normalization : {"component", "norm"}
        Mean square component or mean squared norm (formulas in
        :mod:`geonorm.o3.norm`).
    scope : {"per_irrep", "balanced"}
        One statistic per irrep, or one degree-balanced statistic shared by all
        :math:`l > 0` irreps.
    batch : LongTensor or IntTensor, optional
        Segment id ``[N]`` of each row of ``x`` (graph mode; int64 or int32):
        statistics are then averaged over all nodes of a segment as well as
        over channels.
    num_segments : int, optional
        Number of segments; default ``batch.max() + 1`` (a host sync, and a
        graph break under ``torch.compile``: pass it to avoid both). Ids
        outside ``0 .. num_segments - 1`` raise ``ValueError`` (checked in
        eager mode; not under ``torch.compile``).

    Returns
    -------
    Tensor
        Same shape and dtype as ``x``.
    Examples
    --------
    >>> gen = torch.Generator().manual_seed(0)
    >>> x = torch.randn(3, 4, 8, generator=gen)      # "2x0e+2x1e"
    >>> y = equivariant_rms_norm(x, "2x0e+2x1e", eps=1e-6)
    >>> torch.allclose(y[..., :2].pow(2).mean(-1), torch.ones(3, 4), atol=1e-4)
    True
    """
    return _irreps_norm(
        x, irreps, weight, bias, centre=False, eps=eps, normalization=normalization,
        scope=scope, batch=batch, num_segments=num_segments,
    )  # fmt: skip


class _IrrepsNorm(nn.Module):
    _function = staticmethod(equivariant_layer_norm)

    def __init__(
        self,
        irreps: str | o3.Irreps,
        *,
        eps: float | None = 1e-5,
        affine: bool = True,
        bias: bool = True,
        normalization: str = "component",
        scope: str = "per_irrep",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.layout = IrrepsNormLayout(
            irreps, normalization=normalization, scope=scope, device=device
        )
        self.irreps_in = self.irreps_out = self.layout.irreps
        self.eps = _check_eps(eps)
        self.normalization, self.scope = normalization, scope
        self.affine = bool(affine)
        kw = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.ones(self.layout.num_channels, **kw)) if affine else None
        has_bias = self.affine and bool(bias) and self.layout.num_scalars > 0
        self.bias = nn.Parameter(torch.zeros(self.layout.num_scalars, **kw)) if has_bias else None

    def reset_parameters(self) -> None:
        """Weights to one, bias to zero."""
        with torch.no_grad():
            if self.weight is not None:
                self.weight.fill_(1.0)
            if self.bias is not None:
                self.bias.zero_()

    def forward(
        self, x: Tensor, batch: Tensor | None = None, *, num_segments: int | None = None
    ) -> Tensor:
        """Normalize ``x`` ``[..., dim]``; with ``batch`` ``[N]``, per segment of ``[N, dim]``."""
        return self._function(
            x, self.layout, self.weight, self.bias, eps=self.eps, normalization=self.normalization,
            scope=self.scope, batch=batch, num_segments=num_segments,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"{self.irreps_in}, eps={self.eps}, affine={self.affine}, "
            f"bias={self.bias is not None}, "
            f"normalization={self.normalization!r}, scope={self.scope!r}"
        )


class EquivariantLayerNorm(_IrrepsNorm):
    r"""Layer norm for e3nn irreps features: centre ``0e``, scale every irrep by its norm.

    Computes :func:`equivariant_layer_norm` (formulas in :mod:`geonorm.o3.norm`)
    with learned per-channel weights :math:`w` and a ``0e`` bias
    :math:`\beta`. Follows Ba et al. (2016), LayerNorm, made equivariant as in
    EquiformerV2 (Liao, Wood, Das & Smidt, ICLR 2024); ``scope="balanced"`` is
    EquiformerV2's degree-balanced statistic. The scalar-plus-vector features
    of EDGI (Brehmer et al., 2023) are the irreps ``"Nx0e+Mx1o"``.

    Parameters
    ----------
    irreps : str or e3nn.o3.Irreps
        Irreps of the features (``irreps_in == irreps_out``).
    eps : float or None
        Added to every statistic; ``None``: ``eps_for`` of the compute dtype.
    affine : bool
        Learn the per-channel weights ``weight`` ``[irreps.num_irreps]``.
    bias : bool
        With ``affine``, learn ``bias`` ``[m_0e]`` on the ``0e`` channels
        (never on ``0o`` or :math:`l > 0`).
    normalization : {"component", "norm"}
    scope : {"per_irrep", "balanced"}
    device, dtype
        Of the parameters.

    Notes
    -----
    Shapes: ``forward(x, batch=None, *, num_segments=None)`` takes ``x``
    ``[..., dim]``, or ``[N, dim]`` with a segment-id vector ``batch`` ``[N]``
    (graph mode: statistics over all nodes of a segment), and returns the
    same shape.

    Examples
    --------
    >>> norm = EquivariantLayerNorm("16x0e+8x1o+4x2e")
    >>> norm(torch.randn(32, 16 + 24 + 20)).shape
    torch.Size([32, 60])
    >>> batch = torch.tensor([0, 0, 0, 1, 1])
    >>> norm(torch.randn(5, 60), batch).shape
    torch.Size([5, 60])
    """


class EquivariantRMSNorm(_IrrepsNorm):
    r"""RMS norm for e3nn irreps features (Zhang & Sennrich, 2019): no centring at all.

    Computes :func:`equivariant_rms_norm`; same options as
    :class:`EquivariantLayerNorm` except that ``bias`` defaults to ``False``
    (as in ``torch.nn.RMSNorm``).

    Examples
    --------
    >>> norm = EquivariantRMSNorm("8x0e+8x1o", scope="balanced")
    >>> norm(torch.randn(4, 32)).shape
    torch.Size([4, 32])
    """

    _function = staticmethod(equivariant_rms_norm)

    def __init__(
        self,
        irreps: str | o3.Irreps,
        *,
        eps: float | None = 1e-5,
        affine: bool = True,
        bias: bool = False,
        normalization: str = "component",
        scope: str = "per_irrep",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            irreps, eps=eps, affine=affine, bias=bias, normalization=normalization,
            scope=scope, device=device, dtype=dtype,
        )  # fmt: skip
