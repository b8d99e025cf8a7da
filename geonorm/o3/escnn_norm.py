r"""Layer and instance norm for escnn ``GeometricTensor`` s, equivariant for any field type.

A field :math:`f` of an escnn ``FieldType`` transforms by an orthogonal
representation :math:`\rho_f(g) = Q_f \big(\bigoplus_j \psi_j(g)\big) Q_f^{-1}`
(``rep.change_of_basis`` :math:`Q_f`, ``rep.irreps`` :math:`\psi_j`). Two kinds
of quantities are invariant, and only they are touched:

* the *trivial coordinates* :math:`t_{f,j} = (Q_f^{-1} x_f)_j` for the trivial
  irreps :math:`\psi_j` in the decomposition (the one of a trivial field, the
  mean-like component of a regular field). Centring subtracts their mean
  :math:`\mu` along the fixed vectors :math:`Q_f e_j`:
  :math:`x_f \leftarrow x_f - \mu \sum_{j\,\text{trivial}} Q_f e_j`, which
  leaves every non-trivial coordinate alone;
* the squared norm :math:`\|x_f\|^2` (invariant because :math:`\rho_f` is
  orthogonal). Fields are grouped by representation (*type*); each group
  :math:`k` gets one statistic

  .. math::

      \sigma_k^2 = \operatorname{mean}_{f \in k,\; p}\; \frac{\|x_f(p)\|^2}{n_f}
      \quad (\texttt{"component"}), \qquad
      \operatorname{mean}_{f \in k,\; p}\; \|x_f(p)\|^2 \quad (\texttt{"norm"}),

  over the fields :math:`f` of the type and the positions :math:`p` of one
  sample (``mode="layer"``), or over the positions only, field by field
  (``mode="instance"``); :math:`n_f` is the field size.

Then :math:`y_f = w_f\, x_f / \sqrt{\sigma_k^2 + \epsilon} + \beta_f`, with one
weight per field and a bias only on trivial fields. Centring uses the same
grouping (mean over the trivial coordinates of the type's fields and the
positions). This is :class:`~geonorm.o3.norm.EquivariantLayerNorm` with
``scope="per_irrep"`` carried over to escnn; both need escnn only at
construction (``pip install escnn``, which needs a Fortran compiler), so this
module imports without it.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .._numerics import compute_dtype, eps_for
from ._irreps_utils import NORMALIZATIONS, check_option

Tensor = torch.Tensor

__all__ = ["FieldInstanceNorm", "FieldLayerNorm"]

MODES = ("layer", "instance")


def _escnn() -> Any:
    try:
        import escnn.nn
    except ImportError as err:  # pragma: no cover - exercised in the main environment
        raise ImportError(
            "FieldLayerNorm needs escnn: pip install 'geonorm[escnn]' (py3nj needs gfortran)"
        ) from err
    return escnn


def _tables(in_type: Any, mode: str, normalization: str) -> dict[str, Any]:
    """Per-channel statistic, centring and parameter tables of ``in_type`` (numpy, float64)."""
    reps = list(in_type.representations)
    groups: dict[str, int] = {}
    group_of = [
        groups.setdefault(r.name, len(groups)) if mode == "layer" else i for i, r in enumerate(reps)
    ]
    k = len(groups) if mode == "layer" else len(reps)
    c = in_type.size
    stat, expand = np.zeros((c, k)), np.zeros((k, c))  # [C, K], [K, C]
    read, write = np.zeros((c, k)), np.zeros((k, c))  # trivial coordinates: in, out
    n_fields, n_trivial = np.zeros(k), np.zeros(k)
    for f, rep in enumerate(reps):
        n_fields[group_of[f]] += 1
        n_trivial[group_of[f]] += sum(
            rep.group.irrep(*i).size for i in rep.irreps if rep.group.irrep(*i).is_trivial()
        )
    field_of_channel, trivial_channels, offset = [], [], 0
    for f, rep in enumerate(reps):
        g, n = group_of[f], rep.size
        q, q_inv = np.asarray(rep.change_of_basis), np.asarray(rep.change_of_basis_inv)
        if not np.allclose(q.T @ q, np.eye(n), atol=1e-8):
            raise ValueError(
                f"in_type: field {f} ({rep.name}) has a non-orthogonal change of basis"
            )
        sl = slice(offset, offset + n)
        stat[sl, g] = 1.0 / (n_fields[g] * (n if normalization == "component" else 1))
        expand[g, sl] = 1.0
        pos = 0
        for irrep_id in rep.irreps:
            irrep = rep.group.irrep(*irrep_id)
            if irrep.is_trivial():
                for j in range(pos, pos + irrep.size):
                    read[sl, g] += q_inv[j] / n_trivial[g]
                    write[g, sl] += q[:, j]
            pos += irrep.size
        field_of_channel += [f] * n
        if rep.is_trivial():
            trivial_channels += list(range(offset, offset + n))
        offset += n
    return {
        "stat": stat, "expand": expand, "read": read, "write": write, "num_fields": len(reps),
        "field_of_channel": field_of_channel, "trivial_channels": trivial_channels,
        "centre": bool(n_trivial.any()),
    }  # fmt: skip


class FieldLayerNorm(nn.Module):
    r"""Layer norm of escnn ``GeometricTensor`` s: centre trivial parts, scale by field norms.

    Formulas in :mod:`geonorm.o3.escnn_norm`. The layer is registered as a
    virtual subclass of ``escnn.nn.EquivariantModule``, so it goes into
    ``escnn.nn.SequentialModule``; :meth:`check_equivariance` tests it on the
    fibres (no spatial interpolation).

    Parameters
    ----------
    in_type : escnn.nn.FieldType
        Type of the input (and output) fields; any representations, as long as
        their change of basis is orthogonal (true of escnn's own).
    eps : float or None
        Added to every statistic; ``None``: ``eps_for`` of the compute dtype.
    affine : bool
        Learn ``weight`` ``[num_fields]`` (one per field).
    bias : bool
        With ``affine``, learn ``bias`` on the channels of trivial fields.
    normalization : {"component", "norm"}
    mode : {"layer", "instance"}
        Statistics per sample over fields of a type and positions, or per
        sample and field over positions.
    device, dtype
        Of the parameters.

    Examples
    --------
    >>> from escnn import gspaces, nn as enn  # doctest: +SKIP
    >>> gs = gspaces.rot2dOnR2(8)  # doctest: +SKIP
    >>> t = enn.FieldType(gs, [gs.trivial_repr] * 2 + [gs.regular_repr] * 3)  # doctest: +SKIP
    >>> FieldLayerNorm(t)(t(torch.randn(4, t.size, 9, 9))).shape  # doctest: +SKIP
    torch.Size([4, 26, 9, 9])
    """

    def __init__(
        self,
        in_type: Any,
        *,
        eps: float | None = 1e-5,
        affine: bool = True,
        bias: bool = True,
        normalization: str = "component",
        mode: str = "layer",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        escnn = _escnn()
        super().__init__()
        if not isinstance(in_type, escnn.nn.FieldType):
            raise TypeError(
                f"in_type: expected an escnn.nn.FieldType, got {type(in_type).__name__}"
            )
        if eps is not None and (
            isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < math.inf
        ):
            raise ValueError(f"eps: expected a positive finite float or None, got {eps!r}")
        self.normalization = check_option(normalization, "normalization", NORMALIZATIONS)
        self.mode = check_option(mode, "mode", MODES)
        escnn.nn.EquivariantModule.register(type(self))  # usable in escnn.nn.SequentialModule
        self.in_type = self.out_type = in_type
        self.eps, self.affine = eps, bool(affine)
        t = _tables(in_type, mode, normalization)
        self._centre = t["centre"]
        for name in ("stat", "expand", "read", "write"):  # float64, cast at use
            self.register_buffer(
                f"_{name}",
                torch.tensor(t[name], dtype=torch.float64, device=device),
                persistent=False,
            )
        self.register_buffer(
            "_field_of_channel",
            torch.tensor(t["field_of_channel"], dtype=torch.long, device=device),
            persistent=False,
        )
        self.register_buffer(
            "_trivial_channels",
            torch.tensor(t["trivial_channels"], dtype=torch.long, device=device),
            persistent=False,
        )
        kw = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.ones(t["num_fields"], **kw)) if affine else None
        n_bias = len(t["trivial_channels"])
        self.bias = nn.Parameter(torch.zeros(n_bias, **kw)) if affine and bias and n_bias else None

    def _apply(self, fn, recurse=True):  # keep the float64 tables float64 under .to(dtype)
        tables = {k: self._buffers[k] for k in ("_stat", "_expand", "_read", "_write")}
        super()._apply(fn, recurse)
        for k, v in tables.items():
            device = fn(torch.zeros((), dtype=v.dtype, device=v.device)).device
            self._buffers[k] = v.to(device=device)
        return self

    def forward(self, input: Any) -> Any:
        """Normalize a ``GeometricTensor`` of type ``in_type`` ``[B, C, *spatial]``."""
        escnn = _escnn()
        if not isinstance(input, escnn.nn.GeometricTensor):
            raise TypeError(f"input: expected an escnn GeometricTensor, got {type(input).__name__}")
        if input.type != self.in_type:
            raise ValueError(f"input: expected field type {self.in_type}, got {input.type}")
        x = input.tensor
        cd = compute_dtype(x.dtype)
        eps = eps_for(cd) if self.eps is None else self.eps
        auto = (
            torch.autocast(x.device.type, enabled=False)
            if torch.amp.is_autocast_available(x.device.type)
            else contextlib.nullcontext()
        )
        with auto:
            xs = x.to(cd).reshape(x.shape[0], x.shape[1], -1)  # [B, C, P]
            if self._centre:
                mu = torch.einsum("bcp,ck->bk", xs, self._read.to(cd)) / xs.shape[-1]  # [B, K]
                xs = xs - (mu @ self._write.to(cd)).unsqueeze(-1)  # [B, C, P]
            sq = xs.square().mean(-1)  # [B, C]
            inv = torch.rsqrt(sq @ self._stat.to(cd) + eps)  # [B, K]
            scale = inv @ self._expand.to(cd)  # [B, C]
            if self.weight is not None:
                scale = scale * self.weight.to(cd).index_select(0, self._field_of_channel)
            out = xs * scale.unsqueeze(-1)  # [B, C, P]
            if self.bias is not None:
                shift = xs.new_zeros(xs.shape[1]).index_copy(
                    0, self._trivial_channels, self.bias.to(cd)
                )
                out = out + shift.view(1, -1, 1)
        return escnn.nn.GeometricTensor(
            out.reshape(x.shape).to(x.dtype), self.out_type, input.coords
        )

    def evaluate_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Output shape (the input's): the escnn ``EquivariantModule`` protocol."""
        return tuple(input_shape)

    def check_equivariance(self, atol: float = 1e-6, rtol: float = 1e-5) -> list[tuple[Any, float]]:
        """Compare ``f(g x)`` with ``g f(x)`` on the fibres for ``in_type.testing_elements``."""
        escnn = _escnn()
        gen = torch.Generator().manual_seed(0)
        dims = [5] * self.in_type.gspace.dimensionality
        x = escnn.nn.GeometricTensor(
            torch.randn(3, self.in_type.size, *dims, generator=gen), self.in_type
        )
        errors = []
        for el in self.in_type.testing_elements:
            with torch.no_grad():
                out1, out2 = (
                    self(x).transform_fibers(el).tensor,
                    self(x.transform_fibers(el)).tensor,
                )
            if not torch.allclose(out1, out2, atol=atol, rtol=rtol):
                raise AssertionError(
                    f"equivariance error {float((out1 - out2).abs().max()):.3e} at {el}"
                )
            errors.append((el, float((out1 - out2).abs().mean())))
        return errors

    def extra_repr(self) -> str:
        options = f"mode={self.mode!r}, normalization={self.normalization!r}, eps={self.eps}"
        return f"{self.in_type}, {options}"


class FieldInstanceNorm(FieldLayerNorm):
    r"""Instance norm of escnn ``GeometricTensor`` s: :class:`FieldLayerNorm`, ``mode="instance"``.

    Each field of each sample is centred (trivial part) and scaled by its own
    statistic over the positions.
    """

    def __init__(
        self,
        in_type: Any,
        *,
        eps: float | None = 1e-5,
        affine: bool = True,
        bias: bool = True,
        normalization: str = "component",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            in_type, eps=eps, affine=affine, bias=bias, normalization=normalization,
            mode="instance", device=device, dtype=dtype,
        )  # fmt: skip
