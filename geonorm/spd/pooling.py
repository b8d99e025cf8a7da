r"""Covariance pooling of multichannel signals, with shrinkage and augmentation.

Signals are ``[batch, channels, times]``; trials of unequal length are
zero-padded to a common ``times`` and passed with ``lengths`` ``[batch]``:
every statistic is computed from each trial's own samples (masked sums), so
padding never enters an estimate. The estimators match pyRiemann's
``Covariances`` (and scikit-learn's):

* ``shrinkage=None`` (or pyRiemann's name ``"scm"``): the empirical covariance
  :math:`S = \frac1T \sum_t (x_t - \bar x)(x_t - \bar x)^\top`, or with
  ``unbiased=True`` (or ``"cov"``) the :math:`\frac{1}{T-1}` version;
* ``"ledoit_wolf"`` (``"lwf"``, Ledoit & Wolf 2004) and ``"oas"`` (Chen et al.
  2010): :math:`(1 - \rho) S + \rho\, \mu I` with :math:`\mu = \mathrm{tr}(S)/C`
  and the estimators' data-driven :math:`\rho`;
* a float :math:`\rho \in [0, 1]`: fixed shrinkage towards :math:`\mu I`.

Augmented covariances fold what a plain covariance discards into a larger
SPD matrix: ``augment="mean"`` embeds the Gaussian :math:`\mathcal N(\bar x,
S)` as :math:`\begin{pmatrix} S + \bar x \bar x^\top & \bar x \\ \bar x^\top
& 1 \end{pmatrix}` (Lovrić et al. 2000), and ``augment="delay"`` stacks
time-delayed copies :math:`(x_t, x_{t-\tau}, \dots, x_{t-(p-1)\tau})`
(``order`` :math:`p`, ``lag`` :math:`\tau`) before pooling, the augmented
covariance matrix of Carrara & Papadopoulo (2024, "Classification of BCI-EEG
based on augmented covariance matrix").
"""

from __future__ import annotations

import math

import torch
from torch import nn

import warnings

from .._checks import check_finite, check_floating, check_int
from .._numerics import machine_eps

Tensor = torch.Tensor

__all__ = ["covariance", "Covariance", "delay_embed", "SHRINKAGE_ESTIMATORS", "ESTIMATOR_NAMES"]

SHRINKAGE_ESTIMATORS = ("ledoit_wolf", "oas")
# pyRiemann's ``Covariances(estimator=...)`` names -> (shrinkage, unbiased)
ESTIMATOR_NAMES = {"scm": (None, False), "cov": (None, True), "lwf": ("ledoit_wolf", False), "oas": ("oas", False)}
_AUGMENTS = (None, "mean", "delay")


def _unpack_signals(x, lengths):
    """A :class:`geonorm.datasets.Signals` (duck-typed: ``data`` and ``lengths``) to tensors."""
    if isinstance(x, Tensor) or not (hasattr(x, "data") and hasattr(x, "lengths")):
        return x, lengths
    if lengths is not None:
        raise ValueError("lengths: given together with a Signals, which carries its own lengths")
    return x.data, x.lengths


def _warn_if_zero_padded(x: Tensor) -> None:
    """Trials whose last sample is exactly zero on every channel look zero-padded."""
    ends = (x[..., -1] == 0).all(-1)  # [B]
    n_padded = int(ends.sum())
    if n_padded:
        warnings.warn(
            f"x: {n_padded} of {ends.numel()} trials end with a sample that is zero on every "
            "channel, as zero padding does; pass lengths= (or the Signals itself) so that "
            "padding does not enter the covariance",
            UserWarning,
            stacklevel=3,
        )


def _lengths(x: Tensor, lengths: Tensor | None) -> Tensor:
    b, _, t = x.shape
    if lengths is None:
        return torch.full((b,), t, dtype=torch.long, device=x.device)
    if not isinstance(lengths, Tensor) or lengths.shape != (b,) or lengths.is_floating_point():
        raise ValueError(
            f"lengths: expected an integer tensor of shape [{b}], got "
            f"{type(lengths).__name__} {list(getattr(lengths, 'shape', []))}"
        )
    if bool((lengths < 1).any()) or bool((lengths > t).any()):
        raise ValueError(f"lengths: expected values in [1, {t}], got {lengths.min()}..{lengths.max()}")
    return lengths.to(x.device)


def delay_embed(x: Tensor, order: int, lag: int, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
    r"""Time-delay (Takens) embedding: ``[B, C, T] -> [B, order*C, T - (order-1)*lag]``.

    Row block :math:`k` holds :math:`x_{t - k\tau}`; returns the embedded
    signals and their new lengths.

    >>> x = torch.arange(5.0).reshape(1, 1, 5)
    >>> delay_embed(x, order=2, lag=1)[0]
    tensor([[[1., 2., 3., 4.],
             [0., 1., 2., 3.]]])
    """
    check_int(order, "order")
    check_int(lag, "lag")
    lengths = _lengths(x, lengths)
    span = (order - 1) * lag
    t_out = x.shape[-1] - span
    if t_out < 1 or bool((lengths - span < 1).any()):
        raise ValueError(
            f"x: expected at least {span + 1} time samples per trial for order={order}, "
            f"lag={lag}, got {int(lengths.min())}"
        )
    blocks = [x[..., span - k * lag : span - k * lag + t_out] for k in range(order)]
    return torch.cat(blocks, dim=-2), lengths - span  # [B, order*C, T']


def _shrinkage_coefficient(kind: str, s: Tensor, xc: Tensor, mask: Tensor, t: Tensor) -> Tensor:
    """Ledoit–Wolf or OAS coefficient per trial, as scikit-learn computes them."""
    c = s.shape[-1]
    mu = torch.diagonal(s, dim1=-2, dim2=-1).sum(-1) / c  # [B]
    fro2 = s.square().sum((-2, -1))  # ||S||_F^2, [B]
    if kind == "oas":
        alpha = fro2 / c**2
        num = alpha + mu**2
        den = (t + 1) * (alpha - mu**2 / c)
        return torch.where(den == 0, torch.ones_like(den), torch.clamp(num / torch.where(den == 0, 1.0, den), max=1.0))
    # Ledoit-Wolf: beta = (sum_t |x_t|^4 / T - ||S||^2) / (C T), delta = ||S - mu I||^2 / C
    fourth = ((xc.square().sum(-2)) ** 2 * mask).sum(-1)  # [B]
    beta = (fourth / t - fro2) / (c * t)
    delta = (fro2 - 2 * mu * mu * c + c * mu**2) / c
    beta = torch.minimum(beta, delta)
    return torch.where(beta == 0, torch.zeros_like(beta), beta / torch.where(delta == 0, 1.0, delta))


def _check_options(shrinkage, unbiased: bool, augment):
    """Validate the options; returns ``(shrinkage, unbiased)`` with pyRiemann names resolved."""
    if augment not in _AUGMENTS:
        raise ValueError(f"augment: expected one of {_AUGMENTS}, got {augment!r}")
    if isinstance(shrinkage, str) and shrinkage in ESTIMATOR_NAMES:
        shrinkage, implied = ESTIMATOR_NAMES[shrinkage]
        unbiased = unbiased or implied
    if isinstance(shrinkage, str):
        if shrinkage not in SHRINKAGE_ESTIMATORS:
            raise ValueError(
                f"shrinkage: expected one of {SHRINKAGE_ESTIMATORS + tuple(ESTIMATOR_NAMES)}, "
                f"a float or None, got {shrinkage!r}"
            )
    elif shrinkage is not None and (
        isinstance(shrinkage, bool) or not isinstance(shrinkage, (int, float)) or not 0 <= shrinkage <= 1
    ):
        raise ValueError(f"shrinkage: expected a float in [0, 1], got {shrinkage!r}")
    if unbiased and shrinkage is not None:
        raise ValueError("unbiased: the shrinkage estimators use the 1/T empirical covariance")
    return shrinkage, unbiased


def covariance(
    x,
    *,
    lengths: Tensor | None = None,
    shrinkage: str | float | None = None,
    unbiased: bool = False,
    trace_normalize: bool = False,
    augment: str | None = None,
    order: int = 2,
    lag: int = 1,
) -> Tensor:
    r"""Covariance matrices ``[B, ..., C', C']`` of signals ``[B, ..., C, T]`` (see module notes).

    Parameters
    ----------
    x : Tensor or Signals
        ``[batch, channels, times]`` signals (zero-padded if ``lengths``), or
        ``[batch, bands, channels, times]`` (a filter bank: one covariance per
        band, any number of middle dimensions), or a
        :class:`geonorm.datasets.Signals`, whose ``lengths`` are used.
    lengths : Tensor, optional
        ``[batch]`` number of valid samples per trial. Without it, trials that
        end in an all-zero sample (zero padding) get a ``UserWarning``.
    shrinkage : str or float, optional
        ``"ledoit_wolf"`` (``"lwf"``) or ``"oas"``: shrinkage towards
        :math:`\mathrm{tr}(S)/C \cdot I` with the estimator's coefficient; a
        float in [0, 1]: that coefficient; ``None`` (``"scm"``, or ``"cov"``
        for the unbiased version): none.
    unbiased : bool
        Divide by :math:`T - 1` instead of :math:`T` (only without shrinkage).
    trace_normalize : bool
        Divide each matrix by its trace: removes the overall scale of the
        signals (EEG in volts gives eigenvalues of 1e-13 to 1e-9, far below
        :class:`~geonorm.spd.ReEig`'s default floor 1e-4).
    augment : {None, "mean", "delay"}
        Augmented covariance (``C' = C + 1`` or ``order * C``).
    order, lag : int
        Delay embedding parameters for ``augment="delay"``.

    Raises
    ------
    ValueError
        Fewer samples than channels, or a constant channel, without shrinkage
        (the covariance would be singular); non-finite samples; bad options.

    Examples
    --------
    >>> x = torch.tensor([[[1.0, -1.0, 1.0, -1.0], [2.0, 0.0, 2.0, 0.0]]])
    >>> covariance(x)
    tensor([[[1., 1.],
             [1., 1.]]])
    >>> covariance(x, shrinkage=0.5)
    tensor([[[1.0000, 0.5000],
             [0.5000, 1.0000]]])
    >>> covariance(torch.randn(4, 3, 2, 50), shrinkage="lwf").shape  # [B, bands, C, C]
    torch.Size([4, 3, 2, 2])
    """
    x, lengths = _unpack_signals(x, lengths)
    check_floating(x, "x")
    if x.ndim < 3:
        raise ValueError(
            f"x: expected signals of shape [batch, channels, times] (or [batch, bands, "
            f"channels, times]), got {list(x.shape)}"
        )
    check_finite(x, "x")
    shrinkage, unbiased = _check_options(shrinkage, unbiased, augment)
    if lengths is None:
        _warn_if_zero_padded(x.reshape((-1,) + x.shape[-2:]))
    lengths = _lengths(x.reshape((x.shape[0], -1, x.shape[-1])), lengths)
    middle = x.shape[1:-2]
    if middle:  # [B, *bands, C, T] -> [B * bands, C, T], lengths repeated per band
        lengths = lengths.repeat_interleave(math.prod(middle))
        x = x.reshape((-1,) + x.shape[-2:])
    s = _covariance_3d(x, lengths, shrinkage, unbiased, trace_normalize, augment, order, lag)
    return s if not middle else s.reshape((-1, *middle) + s.shape[-2:])  # [B, *bands, C', C']


def _covariance_3d(x, lengths, shrinkage, unbiased, trace_normalize, augment, order, lag) -> Tensor:
    """:func:`covariance` of ``[B, C, T]`` signals with validated options."""
    if augment == "delay":
        x, lengths = delay_embed(x, order, lag, lengths)
    b, c, t_max = x.shape
    mask = (torch.arange(t_max, device=x.device) < lengths[:, None]).to(x.dtype)  # [B, T]
    t = lengths.to(x.dtype)  # [B]
    mean = (x * mask[:, None, :]).sum(-1) / t[:, None]  # [B, C]
    xc = (x - mean[..., None]) * mask[:, None, :]  # [B, C, T], zero on padding
    if shrinkage is None and bool((lengths <= c).any()):
        raise ValueError(
            f"x: expected more time samples than channels for a full-rank covariance "
            f"without shrinkage, got {int(lengths.min())} samples for {c} channels; "
            "use shrinkage='oas', 'ledoit_wolf' or a float"
        )
    denom = (t - 1) if unbiased else t
    s = xc @ xc.transpose(-1, -2) / denom[:, None, None]  # [B, C, C]
    if shrinkage is None:
        _check_no_constant_channel(s)
    if shrinkage is not None:
        if isinstance(shrinkage, str):
            rho = _shrinkage_coefficient(shrinkage, s, xc, mask, t)  # [B]
        else:
            rho = torch.full((b,), float(shrinkage), dtype=x.dtype, device=x.device)
        mu = torch.diagonal(s, dim1=-2, dim2=-1).sum(-1) / c  # [B]
        eye = torch.eye(c, dtype=x.dtype, device=x.device)
        s = (1 - rho)[:, None, None] * s + (rho * mu)[:, None, None] * eye
    if augment == "mean":
        top = torch.cat([s + mean[:, :, None] * mean[:, None, :], mean[:, :, None]], dim=-1)  # [B, C, C+1]
        bottom = torch.cat([mean, torch.ones(b, 1, dtype=x.dtype, device=x.device)], dim=-1)  # [B, C+1]
        s = torch.cat([top, bottom[:, None, :]], dim=-2)  # [B, C+1, C+1]
    if trace_normalize:
        s = s / torch.diagonal(s, dim1=-2, dim2=-1).sum(-1)[:, None, None]
    return 0.5 * (s + s.transpose(-1, -2))


def _check_no_constant_channel(s: Tensor) -> None:
    """A channel whose variance is at rounding level of the largest makes ``s`` singular."""
    var = torch.diagonal(s, dim1=-2, dim2=-1)  # [B, C]
    flat = var <= machine_eps(var.dtype) * var.amax(-1, keepdim=True)
    if bool(flat.any()):
        trial, channel = (int(i) for i in flat.nonzero()[0])
        raise ValueError(
            f"x: channel {channel} of trial {trial} is constant ({int(flat.sum())} constant "
            "channel(s) in all), so its covariance is singular (not SPD); drop the channel "
            "or use shrinkage='oas', 'ledoit_wolf' or a float"
        )


class Covariance(nn.Module):
    """Covariance pooling layer: ``[B, (bands,) C, T]`` signals to ``[B, (bands,) C', C']`` SPD matrices.

    Holds the options of :func:`covariance` (pyRiemann's estimator names
    ``"scm"``, ``"cov"``, ``"lwf"``, ``"oas"`` are accepted as ``shrinkage``,
    and ``trace_normalize=True`` removes the signals' scale);
    ``forward(x, lengths=None)`` takes a tensor or a
    :class:`geonorm.datasets.Signals`.

    >>> Covariance(shrinkage="oas")(torch.randn(2, 3, 50)).shape
    torch.Size([2, 3, 3])
    """

    def __init__(
        self,
        *,
        shrinkage: str | float | None = None,
        unbiased: bool = False,
        trace_normalize: bool = False,
        augment: str | None = None,
        order: int = 2,
        lag: int = 1,
    ) -> None:
        super().__init__()
        shrinkage, unbiased = _check_options(shrinkage, unbiased, augment)
        self.options = dict(
            shrinkage=shrinkage, unbiased=unbiased, trace_normalize=trace_normalize,
            augment=augment, order=order, lag=lag,
        )
        if augment == "delay":
            delay_embed(torch.zeros(1, 1, (order - 1) * lag + 1), order, lag)  # validates order and lag

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())

    def forward(self, x, lengths: Tensor | None = None) -> Tensor:
        return covariance(x, lengths=lengths, **self.options)
