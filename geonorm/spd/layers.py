r"""SPDNet layers: BiMap, ReEig, LogEig, ExpEig (Huang & Van Gool, AAAI 2017).

All eigen-functions go through :mod:`geonorm.linalg` (one ``eigh`` per
matrix, Daleckii–Krein backward, exact for repeated eigenvalues), work in
float32 and float64 (half precision is computed in float32 and returned in the
input's dtype), and act on any leading batch/channel dimensions without
Python loops over matrices.

Input checks cost no extra decomposition: symmetry and finiteness are one
reduction, and positive (semi-)definiteness is read off the spectrum the layer
computes anyway. Under ``torch.compile`` the value checks are skipped (they
need a host synchronisation); shapes and dtypes are always checked.

dtype policy (as ``torch.nn.Linear``): :class:`BiMap`, the layer with
parameters, raises ``TypeError`` for input of another floating dtype than its
weight (except under autocast); the parameter-free layers return the input's
dtype.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import NamedTuple, Sequence

import geoopt
import torch
from torch import nn

from .._checks import (
    check_choice,
    check_dtype_matches,
    check_floating,
    check_int,
    check_real,
    check_sym_and_spectrum,
    check_symmetric,
)
from ..linalg import (
    apply_spectral,
    eigh,
    clamped,
    exp_function,
    identity_function,
    log_function,
    sym,
    sym_to_vec,
    vec_to_sym,
)
from ..linalg.eig import eigh_and_asymmetry
from ..linalg.vectorize import VECTORIZATIONS

Tensor = torch.Tensor

__all__ = [
    "semi_orthogonal",
    "complete_orthogonal",
    "orthogonal_map",
    "BIMAP_INITS",
    "BIMAP_PARAMETRIZATIONS",
    "BiMap",
    "ReEig",
    "LogEig",
    "ExpEig",
]


def _check_matrices(x: Tensor, n: int | None, lead: int | None, name: str = "x") -> None:
    check_floating(x, name)
    if x.ndim < 2 or x.shape[-1] != x.shape[-2] or (n is not None and x.shape[-1] != n):
        want = "[..., n, n]" if n is None else f"[..., {n}, {n}]"
        raise ValueError(f"{name}: expected matrices of shape {want}, got {list(x.shape)}")
    if lead is not None and x.ndim != lead:
        raise ValueError(f"{name}: expected a {lead}-d tensor, got shape {list(x.shape)}")


def _checking() -> bool:
    """Value checks (a host synchronisation each) run in eager mode only."""
    return not torch.compiler.is_compiling()


_EIG_ATTR = "_geonorm_reeig"  # ReEig's output carries a _ReEigRecord: the next layer reuses it


class _ReEigRecord(NamedTuple):
    """What ``y = ReEig(eps)(x)`` knows: ``y = U max(Λ, eps) Uᵀ`` with ``x = U Λ Uᵀ``."""

    version: int  # y's, when recorded
    u: Tensor
    x: Tensor
    x_version: int
    s: Tensor  # Λ, x's eigenvalues
    eps: float


def _record(y: Tensor) -> _ReEigRecord | None:
    """The record of ``y`` when ``y`` is an unmodified :class:`ReEig` output."""
    known = getattr(y, _EIG_ATTR, None)
    return None if known is None or known.version != y._version else known


def _known_spectrum(x: Tensor) -> tuple[Tensor, Tensor] | None:
    """``(eigenvalues, eigenvectors)`` of ``x`` when ``x`` is an unmodified :class:`ReEig` output."""
    known = _record(x)
    return None if known is None else (known.s.clamp(min=known.eps), known.u)


def _spectral_layer(
    x: Tensor, fn, *, semidefinite: bool | None, layer: str, extra=None
) -> tuple[Tensor, Tensor, Tensor, list[float]]:
    """Eigenvalues ``[..., n]``, eigenvectors, ``U fn(Λ) Uᵀ`` of symmetric ``x``, ``extra(s)`` on the host.

    One eigendecomposition and one host synchronisation: symmetry,
    finiteness and (``semidefinite``: ``False`` positive definite, ``True``
    positive semi-definite up to rounding, ``None`` any symmetric input) the
    spectrum are checked together, and the 0-d tensors ``extra(s)`` (for a
    warning) are read back with them. An input that is a :class:`ReEig`
    output (unmodified since) reuses ReEig's eigendecomposition: it is
    symmetric with eigenvalues at least ReEig's ``eps`` by construction, so
    nothing is decomposed or checked again. Under ``torch.compile`` nothing
    is checked and nothing is reused.
    """
    _check_matrices(x, None, None)
    checking = _checking()
    known = _known_spectrum(x) if checking else None
    asym = None
    try:
        if known is not None:
            eig = known
        elif checking:  # with the asymmetry the check reads
            eig, asym = eigh_and_asymmetry(x)
        else:
            eig = eigh(x)
    except RuntimeError:  # LAPACK refuses some non-finite input: say why
        check_symmetric(x, "x")
        raise
    y = apply_spectral(x, [fn], check=False, eig=eig)[0]
    s, u = eig
    if not checking:
        return s, u, y, []
    if known is not None:
        return s, u, y, [] if extra is None else torch.stack(extra(s)).tolist()
    values = check_sym_and_spectrum(
        x, s, "x", positive=semidefinite is not None, semidefinite=bool(semidefinite),
        what=f" for {layer}", extra=() if extra is None else tuple(extra(s)), asymmetry=asym,
    )
    return s, u, y, values


BIMAP_INITS = ("orthogonal", "stiefel", "kaiming")
BIMAP_PARAMETRIZATIONS = ("cayley", "stiefel", "matrix_exp")


def semi_orthogonal(shape: Sequence[int], method: str = "orthogonal", *, generator=None) -> Tensor:
    r"""A random ``[..., n, k]`` matrix with orthonormal columns (``n >= k``), float64.

    - ``"orthogonal"``: :math:`Q` of the QR factorization :math:`G = QR` of a
      standard Gaussian :math:`G`, with :math:`\operatorname{diag} R > 0`
      (``torch.nn.init.orthogonal_``, Mezzadri 2007): Haar (uniform)
      distributed on the Stiefel manifold :math:`\mathrm{St}(n, k)`.
    - ``"stiefel"``: the polar factor :math:`G (G^\top G)^{-1/2}` of a
      Gaussian :math:`G` (spd-learn's ``stiefel_``): also Haar distributed.
    - ``"kaiming"``: :math:`Q` (with :math:`\operatorname{diag} R > 0`) of a
      matrix with i.i.d. uniform entries, as spd-learn's default BiMap
      (``kaiming_uniform_``, then the orthogonal parametrization's QR); not
      exactly Haar.

    Under Haar measure each entry squared is
    :math:`W_{ij}^2 \sim \mathrm{Beta}(\tfrac12, \tfrac{n-1}2)` and the law is
    invariant under :math:`W \mapsto O W` for every orthogonal :math:`O`.

    >>> w = semi_orthogonal((5, 3), generator=torch.Generator().manual_seed(0))
    >>> torch.allclose(w.mT @ w, torch.eye(3, dtype=torch.float64))
    True
    """
    method = check_choice(method, "init", BIMAP_INITS)
    shape = tuple(shape)
    if method == "kaiming":
        a = 2 * torch.rand(shape, dtype=torch.float64, generator=generator) - 1  # U(-1, 1)
    else:
        a = torch.randn(shape, dtype=torch.float64, generator=generator)
    if method == "stiefel":
        u, _, vh = torch.linalg.svd(a, full_matrices=False)
        return u @ vh  # G (G^T G)^{-1/2}
    q, r = torch.linalg.qr(a)
    return q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)


def complete_orthogonal(w: Tensor) -> Tensor:
    r"""``[..., n, n]`` orthogonal matrix whose first ``k`` columns are ``w`` ``[..., n, k]``.

    Complete QR of ``w`` with its column signs fixed (``w`` has orthonormal
    columns, so :math:`R` is diagonal with entries :math:`\pm 1`); no random draw.
    """
    k = w.shape[-1]
    q, r = torch.linalg.qr(w, mode="complete")  # q: [..., n, n], r: [..., n, k]
    signs = torch.ones(q.shape[:-1], dtype=q.dtype, device=q.device)  # [..., n]
    signs[..., :k] = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
    base = q * signs.unsqueeze(-2)
    base[..., :k] = w
    return base


def orthogonal_map(skew: Tensor, base: Tensor, kind: str) -> Tensor:
    r"""``[..., n, k]`` matrix :math:`B\,\phi(A)_{[:, :k]}` with orthonormal columns.

    :math:`A = Y - Y^\top`, :math:`Y = [\operatorname{tril}(X),\ 0] \in
    \mathbb{R}^{n \times n}` from the coordinates ``skew`` :math:`X`
    ``[..., n, k]``; :math:`\phi` is the Cayley map :math:`(I - A/2)^{-1}(I +
    A/2)` or the matrix exponential; ``base`` :math:`B` ``[..., n, n]`` is
    orthogonal. The same map as ``torch.nn.utils.parametrizations.orthogonal``
    (with its default ``use_trivialization=True``). Half precision is computed
    in float32 (no half-precision ``solve``/``matrix_exp``) and returned in
    the parameter's dtype.
    """
    if skew.dtype in (torch.float16, torch.bfloat16):
        return orthogonal_map(skew.float(), base.float(), kind).to(skew.dtype)
    n, k = skew.shape[-2:]
    y = torch.tril(skew)
    if n != k:
        y = torch.cat([y, y.new_zeros(*y.shape[:-1], n - k)], dim=-1)  # [..., n, n]
    a = y - y.mT  # skew-symmetric
    if kind == "cayley":
        eye = torch.eye(n, dtype=a.dtype, device=a.device)
        q = torch.linalg.solve(eye - a / 2, eye + a / 2)  # [..., n, n]
    else:
        q = torch.linalg.matrix_exp(a)
    return base @ q[..., :k]  # [..., n, k]


def _stiefel_weight_to_parametrized(module, state_dict, prefix, *_) -> None:
    """Load a ``weight`` (a ``"stiefel"`` BiMap's state) into a parametrized BiMap.

    The base becomes the weight completed to an orthogonal matrix and the
    coordinates zero, so ``layer.weight`` is the saved weight.
    """
    key = prefix + "weight"
    if module.parametrization == "stiefel" or key not in state_dict or prefix + "skew" in state_dict:
        return
    w = state_dict.pop(key)  # [..., n, k], orthonormal columns
    state_dict[prefix + "base"] = complete_orthogonal(w)
    state_dict[prefix + "skew"] = torch.zeros_like(w)


class BiMap(nn.Module):
    r"""Bilinear map :math:`X \mapsto W^\top X W` with :math:`W` on the Stiefel manifold.

    For ``out_n <= in_n`` the weight :math:`W \in \mathbb{R}^{n \times m}`
    has orthonormal columns, so :math:`W^\top X W` is SPD whenever :math:`X`
    is. For ``out_n > in_n`` the weight is stored as an ``[out_n, in_n]``
    Stiefel matrix :math:`V` and the map is :math:`V X V^\top` (positive
    semi-definite of rank ``in_n``: follow it with :class:`ReEig`).

    Channels: with ``channels=C`` each channel has its own weight
    (``[B, C, n, n] -> [B, C, m, m]``); with ``out_channels=D`` as well,
    outputs mix the input channels, :math:`Y_d = \sum_c W_{dc}^\top X_c W_{dc}`
    (``[B, C, n, n] -> [B, D, m, m]``), as in multi-channel SPDNet.

    Parameters
    ----------
    in_n, out_n : int
        Input and output matrix sizes.
    channels, out_channels : int, optional
        See above.
    init : {"orthogonal", "stiefel", "kaiming"}
        How the weight is drawn (:func:`semi_orthogonal`): ``"orthogonal"``
        (default) and ``"stiefel"`` are Haar distributed on the Stiefel
        manifold (QR, resp. polar factor, of a Gaussian); ``"kaiming"`` is the
        QR of a uniform matrix, spd-learn's default.
    parametrization : {"cayley", "stiefel", "matrix_exp"}
        ``"cayley"`` (default) and ``"matrix_exp"``: the orthogonal
        parametrization of ``torch.nn.utils.parametrizations.orthogonal``
        (:func:`orthogonal_map`), :math:`W = B\,\phi(A)_{[:, :m]}` with a
        fixed orthogonal base :math:`B` (the initial weight completed to
        :math:`n \times n`, buffer ``base``) and :math:`\phi(A) = (I -
        A/2)^{-1}(I + A/2)` or :math:`e^{A}` of a skew-symmetric :math:`A`
        whose coordinates are the Euclidean parameter ``skew`` (zero at
        initialisation), as spd-learn's default BiMap: orthonormal columns
        under any optimiser, and Adam adapts a step size per coordinate.
        ``"stiefel"``: ``weight`` is a geoopt ``ManifoldParameter`` on
        ``geoopt.Stiefel()``, kept on the manifold by
        ``geoopt.optim.RiemannianAdam``/``RiemannianSGD`` only (a plain
        optimiser leaves it); RiemannianAdam then keeps one second moment
        per matrix. On JapaneseVowels the Cayley parametrization trains the
        two-block SPDNet of issue 14 to 1.5-5 points higher validation
        accuracy at learning rates 3e-3 to 3e-2, whatever the initialisation;
        the initialisation changes less than the seed-to-seed spread (the
        ablation in the docs page *SPD networks*, ``examples/bimap_ablation.py``).

    Notes
    -----
    Either way ``layer.weight`` is the matrix with orthonormal columns, of
    shape ``[..., n, m]``, or ``[..., out_n, in_n]`` when expanding. The
    state dict holds ``skew`` and ``base`` for ``"cayley"`` and
    ``"matrix_exp"``, and ``weight`` for ``"stiefel"``. A ``"stiefel"`` state
    dict, the only form before ``parametrization`` existed, loads into a
    parametrized BiMap: ``base`` becomes the weight completed and ``skew``
    zero. The other way round is not supported.

    Examples
    --------
    >>> layer = BiMap(4, 2, dtype=torch.float64)
    >>> w = layer.weight
    >>> torch.allclose(w.mT @ w, torch.eye(2, dtype=torch.float64))
    True
    >>> layer(torch.eye(4, dtype=torch.float64).expand(3, 4, 4)).shape
    torch.Size([3, 2, 2])
    >>> stiefel = BiMap(4, 2, parametrization="stiefel", dtype=torch.float64)
    >>> type(stiefel.weight).__name__, sorted(k for k, _ in layer.named_parameters())
    ('ManifoldParameter', ['skew'])
    """

    def __init__(
        self,
        in_n: int,
        out_n: int,
        *,
        channels: int | None = None,
        out_channels: int | None = None,
        init: str = "orthogonal",
        parametrization: str = "cayley",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.in_n = check_int(in_n, "in_n")
        self.out_n = check_int(out_n, "out_n")
        self.channels = None if channels is None else check_int(channels, "channels")
        self.out_channels = None if out_channels is None else check_int(out_channels, "out_channels")
        if self.out_channels is not None and self.channels is None:
            raise ValueError("out_channels: given without channels (the number of input channels)")
        self.init = check_choice(init, "init", BIMAP_INITS)
        self.parametrization = check_choice(parametrization, "parametrization", BIMAP_PARAMETRIZATIONS)
        self.expand = out_n > in_n
        lead: tuple[int, ...] = ()
        if self.channels is not None:
            lead = (self.channels,) if self.out_channels is None else (self.out_channels, self.channels)
        shape = lead + ((out_n, in_n) if self.expand else (in_n, out_n))
        empty = torch.empty(shape, device=device, dtype=dtype)
        if self.parametrization == "stiefel":
            self.weight = geoopt.ManifoldParameter(empty, manifold=geoopt.Stiefel())
        else:
            self.skew = nn.Parameter(empty)  # [..., n, k], coordinates of A (lower trapezoid)
            self.register_buffer("base", empty.new_empty(shape[:-1] + (shape[-2],)))  # [..., n, n]
            self._register_load_state_dict_pre_hook(_stiefel_weight_to_parametrized, with_module=True)
        self.reset_parameters()

    @property
    def weight(self) -> Tensor:
        """The ``[..., n, m]`` (``[..., out_n, in_n]`` when expanding) weight, orthonormal columns."""
        params = self._parameters
        if "weight" in params:
            return params["weight"]
        if "skew" in params:
            return orthogonal_map(params["skew"], self._buffers["base"], self.parametrization)
        raise AttributeError("weight")  # during __init__, before registration

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Draw a new weight (see ``init``); the parametrized forms get a new base."""
        if self.parametrization == "stiefel":
            w = self.weight
            w.copy_(semi_orthogonal(w.shape, self.init).to(w))
        else:
            self.base.copy_(complete_orthogonal(semi_orthogonal(self.skew.shape, self.init)).to(self.base))
            self.skew.zero_()

    def extra_repr(self) -> str:
        return (
            f"in_n={self.in_n}, out_n={self.out_n}, channels={self.channels}, "
            f"out_channels={self.out_channels}, init={self.init!r}, "
            f"parametrization={self.parametrization!r}"
        )

    def forward(self, x: Tensor) -> Tensor:
        want = 3 if self.channels is None else 4
        _check_matrices(x, self.in_n, want)
        if self.channels is not None and x.shape[1] != self.channels:
            raise ValueError(
                f"x: expected {self.channels} channels in dimension 1, got shape {list(x.shape)}"
            )
        w = self.weight
        check_dtype_matches(x, "x", w.dtype, "the BiMap weight")
        if self.expand:
            w = w.transpose(-1, -2)  # [..., in_n, out_n]
        if self.out_channels is None:
            return sym(w.transpose(-1, -2) @ x @ w)  # [B, (C,) m, m]
        # Y_d = sum_c W_dc^T X_c W_dc
        y = torch.einsum("dcnm,bcnk,dckl->bdml", w, x, w)  # [B, D, m, m]
        return sym(y)


class ReEig(nn.Module):
    r"""Eigenvalue rectification :math:`X \mapsto U \max(\Lambda, \epsilon) U^\top`.

    The non-linearity of SPDNet; its backward is the Daleckii–Krein
    derivative of the clamped function (zero along directions that only move
    eigenvalues below ``eps``), exact for repeated eigenvalues.

    Parameters
    ----------
    eps : float
        The eigenvalue floor :math:`\epsilon` (default ``1e-4``, SPDNet's). It
        is absolute: choose it relative to the scale of the data.
    warn_fraction : float or None
        Warn (``UserWarning``) when at least this fraction of the batch's
        eigenvalues is clamped (default ``0.9``): the input's scale is then
        far below ``eps`` (EEG in volts gives covariance eigenvalues of
        1e-13 to 1e-9), the output is nearly ``eps * I`` and the network cannot
        learn. ``None`` never warns.

    Notes
    -----
    Input: ``[..., n, n]`` symmetric positive semi-definite matrices (the
    output of :class:`BiMap`). Non-symmetric, non-finite or indefinite input
    (an eigenvalue below :math:`-\sqrt{\epsilon_{\text{mach}}}\,
    \lambda_{\max}`, see :func:`geonorm._numerics.semidefinite_rtol`) raises
    ``ValueError``; the check reads the spectrum the layer computes anyway.

    Examples
    --------
    >>> ReEig(0.5)(torch.diag(torch.tensor([0.1, 2.0]))).diagonal()
    tensor([0.5000, 2.0000])
    """

    def __init__(self, eps: float = 1e-4, *, warn_fraction: float | None = 0.9) -> None:
        super().__init__()
        self.eps = check_real(eps, "eps", low=0.0, low_open=True)
        self.warn_fraction = (
            None if warn_fraction is None else check_real(warn_fraction, "warn_fraction", low=0.0, high=1.0)
        )
        self._fn = clamped(identity_function(), self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps:g}"

    def forward(self, x: Tensor) -> Tensor:
        warn = self.warn_fraction is not None and x.numel() > 0
        s, u, y, stats = _spectral_layer(
            x, self._fn, semidefinite=True, layer="ReEig", extra=self._clamp_stats if warn else None
        )
        if stats:
            self._warn_if_clamped(s, stats[0])
        if _checking() and y.dtype == s.dtype:  # not for half input (decomposed in float32)
            # y = U max(Λ, eps) Uᵀ: a following LogEig/ReEig reuses this decomposition
            setattr(y, _EIG_ATTR, _ReEigRecord(y._version, u, x, x._version, s, self.eps))
        return y

    def _clamp_stats(self, s: Tensor) -> list[Tensor]:
        r"""A necessary condition for the warning, read back with the input check.

        If a fraction :math:`w` of the batch's eigenvalues is at most ``eps``,
        some matrix has at least :math:`\lceil w n \rceil` of its ``n`` there,
        so its eigenvalue of (0-based, ascending) index
        :math:`k = \lceil w n \rceil - 1` is at most ``eps``: the smallest
        such eigenvalue over the batch is the probe (``k`` rounded down, which
        only weakens it). The exact fraction is counted only when it passes.
        """
        k = max(int(self.warn_fraction * s.shape[-1]) - 1, 0)
        return [s[..., k].min()]

    def _warn_if_clamped(self, s: Tensor, probe: float) -> None:
        if probe > self.eps and self.warn_fraction > 0:
            return
        fraction = float((s <= self.eps).to(s.dtype).mean())
        if fraction >= self.warn_fraction:
            largest = float(s[..., -1].max())
            warnings.warn(
                f"ReEig clamped {100 * fraction:.0f}% of the batch's eigenvalues to "
                f"eps={self.eps:g} (largest eigenvalue {largest:.3e}): the output is nearly "
                "eps * I and carries no information. Rescale the input (EEG in volts: "
                "multiply by 1e6 for microvolts), use covariance(..., trace_normalize=True), "
                "or lower eps.",
                UserWarning,
                stacklevel=2,
            )


class LogEig(nn.Module):
    r"""Matrix logarithm, then vectorization: :math:`X \mapsto \mathrm{vec}(\log X)`.

    Parameters
    ----------
    vectorize : {"triu", "full", None}
        ``"triu"``: upper triangle with :math:`\sqrt{2}`-scaled off-diagonal
        entries (``[..., n(n+1)/2]``, norm-preserving); ``"full"``: flattened
        (``[..., n*n]``); ``None``: keep the matrix ``[..., n, n]``.
    clamp_min : float, optional
        Floor for eigenvalues before the logarithm (see
        :func:`geonorm.linalg.sym_logm`); with it, positive semi-definite
        input is accepted.

    Notes
    -----
    Non-symmetric, non-finite or non-positive-definite input raises
    ``ValueError`` (read off the spectrum the layer computes anyway).

    On the unmodified output of a :class:`ReEig` (eager mode) nothing is
    decomposed or checked again, and the result is computed as the one
    matrix function :math:`U \log(\max(\Lambda, \epsilon)) U^\top` of ReEig's
    input: its gradient goes to that input directly, in one Daleckii–Krein
    step instead of two (the same derivative; ReEig's own backward then runs
    only if something else uses its output).

    Examples
    --------
    >>> LogEig()(torch.diag(torch.tensor([1.0, torch.e])))
    tensor([0., 0., 1.])
    """

    def __init__(self, vectorize: str | None = "triu", *, clamp_min: float | None = None) -> None:
        super().__init__()
        if vectorize is not None and vectorize not in VECTORIZATIONS:
            raise ValueError(f"vectorize: expected one of {VECTORIZATIONS} or None, got {vectorize!r}")
        self.vectorize = vectorize
        self.clamp_min = None if clamp_min is None else check_real(clamp_min, "clamp_min", low=0.0, low_open=True)
        self._fn = log_function() if clamp_min is None else clamped(log_function(), self.clamp_min)

    def extra_repr(self) -> str:
        return f"vectorize={self.vectorize!r}" + (
            "" if self.clamp_min is None else f", clamp_min={self.clamp_min:g}"
        )

    def forward(self, x: Tensor) -> Tensor:
        log = log_of_reeig_output(x, self.clamp_min)  # a ReEig output needs no check
        if log is None:
            log = _spectral_layer(x, self._fn, semidefinite=self.clamp_min is not None, layer="LogEig")[2]
        return log if self.vectorize is None else sym_to_vec(log, self.vectorize)


def reeig_output(x: Tensor) -> bool:
    """``x`` is an unmodified :class:`ReEig` output (eager mode): symmetric, eigenvalues at least its ``eps`` > 0."""
    return _checking() and _known_spectrum(x) is not None


def log_of_reeig_output(x: Tensor, clamp_min: float | None = None) -> Tensor | None:
    r""":math:`\log x` for ``x = ReEig(eps)(y)`` as the one matrix function :math:`U \log(\max(\Lambda, eps)) U^\top` of ``y``.

    Its gradient goes to ReEig's input ``y`` directly: one Daleckii–Krein
    backward instead of two (to ``x``, then to ``y``), and no decomposition.
    ``None`` unless ``x`` is an unmodified ReEig output whose input is
    unmodified too (eager mode only). ``clamp_min`` floors the eigenvalues
    once more (LogEig's option).
    """
    source = _reeig_source(x) if _checking() else None
    if source is None:
        return None
    inner, s, u, eps = source
    fn = _log_of_clamped(max(eps, clamp_min or 0.0))
    return apply_spectral(inner, [fn], check=False, eig=(s, u))[0]


def _reeig_source(y: Tensor) -> tuple[Tensor, Tensor, Tensor, float] | None:
    """``(x, eigenvalues, eigenvectors, eps)`` of ReEig's input when ``y = ReEig(eps)(x)``, both unmodified since."""
    known = _record(y)
    if known is None or known.x_version != known.x._version:
        return None
    return known.x, known.s, known.u, known.eps


@functools.lru_cache(maxsize=32)
def _log_of_clamped(lo: float):
    r""":math:`\log(\max(\lambda, lo))` as one spectral function (ReEig followed by LogEig)."""
    return clamped(log_function(), lo)


class ExpEig(nn.Module):
    r"""Matrix exponential of symmetric matrices (the inverse of :class:`LogEig`).

    With ``vectorize`` set, the input is a vector ``[..., d]`` that is first
    unvectorized into ``[..., n, n]`` (``n`` is inferred from ``d``).

    Examples
    --------
    >>> ExpEig("triu")(torch.tensor([0.0, 0.0, 1.0])).diagonal()
    tensor([1.0000, 2.7183])
    """

    def __init__(self, vectorize: str | None = None) -> None:
        super().__init__()
        if vectorize is not None and vectorize not in VECTORIZATIONS:
            raise ValueError(f"vectorize: expected one of {VECTORIZATIONS} or None, got {vectorize!r}")
        self.vectorize = vectorize

    def extra_repr(self) -> str:
        return f"vectorize={self.vectorize!r}"

    def forward(self, x: Tensor) -> Tensor:
        check_floating(x, "x")
        if self.vectorize is not None:  # the symmetric check below catches NaN too
            d = x.shape[-1]
            n = math.isqrt(d) if self.vectorize == "full" else (math.isqrt(8 * d + 1) - 1) // 2
            x = vec_to_sym(x, n, self.vectorize)
        return _spectral_layer(x, _EXP, semidefinite=None, layer="ExpEig")[2]


_EXP = exp_function()
